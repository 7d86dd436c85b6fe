//! `/api/functions/{name}`: a Supabase Edge Function called for the signed-in caller, with
//! their own token and the project key. Only names in `[functions].allowed` are forwarded;
//! the body is passed on as sent (up to `functions.body_limit_bytes`).

use actix_web::http::header::{HeaderValue as ActixHeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{web, HttpRequest, HttpResponse};
use std::time::Duration;

use super::webhooks::body_error;
use crate::auth::User;
use crate::error::{ApiError, ApiResult};
use crate::openapi::responses;
use crate::state::AppState;

/// The raw body limit for this resource (`functions.body_limit_bytes`).
pub fn payload_config(limit: usize) -> web::PayloadConfig {
    web::PayloadConfig::new(limit)
}

#[utoipa::path(
    post,
    path = "/api/functions/{name}",
    operation_id = "invokeFunction",
    tag = "functions",
    params(("name" = String, Path, description = "A function `[functions].allowed` lists", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    request_body(content = Object, description = "Forwarded as sent, with its `Content-Type` (any type; JSON shown)", content_type = "application/json"),
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        (status = 200, description = "The function's own 2xx answer: its status, `Content-Type` and body, unchanged", body = Object),
        (status = 400, description = "`function_rejected`: the function answered 4xx; `details.status` is its status (kept as this answer's status) and `details.body` its JSON body", body = crate::error::ErrorBody, example = json!({"error": "The function refused the request", "code": "function_rejected", "details": {"status": 400, "body": {"message": "name is required"}}})),
        (status = 401, response = responses::Unauthorized),
        (status = 404, description = "`not_found`: no function of this name is listed in `[functions].allowed`", body = crate::error::ErrorBody, example = json!({"error": "No such function", "code": "not_found"})),
        (status = 413, response = responses::PayloadTooLarge),
        (status = 429, response = responses::RateLimited),
        (status = 502, description = "`function_failed` (the function answered 5xx, `details.status`), `upstream_error` (the relay failed: `x-relay-error`)", body = crate::error::ErrorBody),
    )
)]
pub async fn invoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    User(user): User,
    name: web::Path<String>,
    body: Result<web::Bytes, actix_web::Error>,
) -> ApiResult<HttpResponse> {
    let settings = &state.settings.functions;
    // Before the body counts: a name not listed never reaches Supabase, whatever is sent.
    if !settings.is_allowed(&name) {
        return Err(ApiError::not_found("No such function"));
    }
    let body = body.map_err(|e| body_error(e, settings.body_limit_bytes))?;
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| http::HeaderValue::from_bytes(v.as_bytes()).ok());
    let answer = state
        .supabase
        .invoke_function(
            &name,
            content_type.as_ref(),
            body,
            Duration::from_millis(settings.timeout_ms),
            &user,
        )
        .await?;
    let status = actix_web::http::StatusCode::from_u16(answer.status.as_u16())
        .map_err(|e| ApiError::upstream_error(format!("functions: status: {e}")))?;
    let mut res = HttpResponse::build(status);
    // An answer made for one user: no shared cache may keep it.
    res.insert_header((CACHE_CONTROL, "no-store"));
    if let Some(ct) = answer
        .content_type
        .and_then(|v| ActixHeaderValue::from_bytes(v.as_bytes()).ok())
    {
        res.insert_header((CONTENT_TYPE, ct));
    }
    Ok(res.body(answer.body))
}
