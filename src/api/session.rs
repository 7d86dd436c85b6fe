//! `/api/auth/*`: register, login, refresh, logout, user, recover — forwarded to Supabase
//! Auth with our validation, rate limits, error mapping (docs/api.md) and `@supabase/ssr` cookies.

use actix_web::error::JsonPayloadError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, HttpResponseBuilder};
use garde::Validate;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::auth::cookie::{clear_cookies, session_cookies};
use crate::auth::extract::{cookie_session, present_session_cookies};
use crate::auth::User;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::supabase::gotrue::{AuthError, AuthFailure};

/// `data` becomes user_metadata, which lands in every access token: keep it small.
const MAX_DATA_BYTES: usize = 4096;
/// What `@supabase/ssr` sends with auth cookies; also keeps tokens out of every cache.
const NO_STORE: &str = "private, no-cache, no-store, must-revalidate, max-age=0";

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery", "data": {"full_name": "Ada Lovelace"}}))]
pub struct RegisterBody {
    #[garde(email, length(max = 320))]
    #[schema(format = Email, max_length = 320)]
    email: String,
    /// Supabase Auth's password policy applies on top (422 `weak_password`).
    #[garde(length(min = 1, max = 1024))]
    #[schema(min_length = 1, max_length = 1024)]
    password: String,
    /// Becomes `user_metadata` (at most 4 KiB of JSON). Never used for authorization.
    #[garde(skip)]
    #[schema(value_type = Option<Object>)]
    data: Option<Map<String, Value>>,
}

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery"}))]
pub struct LoginBody {
    #[garde(email, length(max = 320))]
    #[schema(format = Email, max_length = 320)]
    email: String,
    #[garde(length(min = 1, max = 1024))]
    #[schema(min_length = 1, max_length = 1024)]
    password: String,
}

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "v3ryr4nd0m"}))]
pub struct RefreshBody {
    /// The refresh token. To use the `@supabase/ssr` session cookie's instead, send no body.
    /// (`{}` with a session cookie also works, but is not part of the contract.)
    #[garde(inner(length(min = 1, max = 4096)))]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 4096)]
    refresh_token: Option<String>,
}

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com"}))]
pub struct RecoverBody {
    #[garde(email, length(max = 320))]
    #[schema(format = Email, max_length = 320)]
    email: String,
}

/// `POST /api/auth/register` → 201 `{user, session}` (`session` null until confirmed).
#[utoipa::path(
    post,
    path = "/api/auth/register",
    operation_id = "register",
    tag = "auth",
    request_body = RegisterBody,
    security(()),
    responses(
        (status = 201, description = "Account created; `session` is `null` while email confirmation is on", body = crate::openapi::schemas::Registered, headers(("Location" = String, description = "Always `/api/auth/user`"))),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 413, response = crate::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::openapi::responses::UnsupportedMediaType),
        (status = 403, description = "`signup_disabled`", body = crate::error::ErrorBody, example = json!({"error": "Sign-ups are disabled", "code": "signup_disabled"})),
        (status = 409, description = "`user_already_exists`", body = crate::error::ErrorBody, example = json!({"error": "An account with this email already exists", "code": "user_already_exists"})),
        (status = 422, description = "`weak_password` (`details.reasons` lists Auth's reasons when given)", body = crate::error::ErrorBody, example = json!({"error": "The password is too weak", "code": "weak_password"})),
        (status = 429, response = crate::openapi::responses::RateLimited),
        (status = 502, response = crate::openapi::responses::BadGateway),
        (status = 503, response = crate::openapi::responses::Unavailable),
        (status = 504, response = crate::openapi::responses::Timeout),
    )
)]
pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<RegisterBody>,
) -> ApiResult<HttpResponse> {
    state.limiter.check(&req, "register").await?;
    let body = body.into_inner();
    body.validate()?;
    if let Some(data) = &body.data {
        if serde_json::to_vec(data).map_or(true, |b| b.len() > MAX_DATA_BYTES) {
            return Err(ApiError::validation(
                json!({ "data": [format!("must be at most {MAX_DATA_BYTES} bytes of JSON")] }),
                vec![],
            ));
        }
    }
    let mut upstream = json!({ "email": body.email, "password": body.password });
    if let Some(data) = body.data {
        upstream["data"] = Value::Object(data);
    }
    let answer = state
        .supabase
        .signup(&upstream)
        .await
        .map_err(|e| map_error(e, register_error))?;
    // Auto-confirm answers a session (with `user` inside); confirmation-required answers the
    // bare user. Auth says 200 either way; a created account is 201 here.
    let (user, session) = if answer.get("access_token").is_some() {
        (
            answer.get("user").cloned().unwrap_or(Value::Null),
            Some(answer),
        )
    } else {
        (answer, None)
    };
    let mut res = HttpResponse::Created();
    res.insert_header((header::LOCATION, "/api/auth/user"));
    if let Some(session) = &session {
        token_headers(&mut res);
        write_session_cookies(&mut res, &req, &state, session);
    }
    Ok(res.json(json!({ "user": user, "session": session })))
}

/// `POST /api/auth/login` → 200 session.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    operation_id = "login",
    tag = "auth",
    request_body = LoginBody,
    security(()),
    responses(
        (status = 200, description = "A session", body = crate::openapi::schemas::Session, headers(("Cache-Control" = String, description = "`private, no-cache, no-store, must-revalidate, max-age=0`"), ("Set-Cookie" = String, description = "The `@supabase/ssr` session cookies, when cookie sessions are enabled"))),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 413, response = crate::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::openapi::responses::UnsupportedMediaType),
        (status = 401, description = "`invalid_credentials`", body = crate::error::ErrorBody, example = json!({"error": "Invalid login credentials", "code": "invalid_credentials"})),
        (status = 403, description = "`email_not_confirmed` or `user_banned`", body = crate::error::ErrorBody, example = json!({"error": "Email address is not confirmed", "code": "email_not_confirmed"})),
        (status = 429, response = crate::openapi::responses::RateLimited),
        (status = 502, response = crate::openapi::responses::BadGateway),
        (status = 503, response = crate::openapi::responses::Unavailable),
        (status = 504, response = crate::openapi::responses::Timeout),
    )
)]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginBody>,
) -> ApiResult<HttpResponse> {
    state.limiter.check(&req, "login").await?;
    let body = body.into_inner();
    body.validate()?;
    let session = state
        .supabase
        .token(
            "password",
            &json!({ "email": body.email, "password": body.password }),
        )
        .await
        .map_err(|e| map_error(e, login_error))?;
    session_response(&req, &state, session)
}

/// `POST /api/auth/refresh` → 200 session. The refresh token comes from the body, else from
/// the session cookie; the body may be empty.
#[utoipa::path(
    post,
    path = "/api/auth/refresh",
    operation_id = "refreshSession",
    tag = "auth",
    request_body(content = RefreshBody, description = "With cookie sessions, send no body instead: the refresh token is then read from the `@supabase/ssr` session cookie (400 `validation_failed` when there is none)."),
    security(()),
    responses(
        (status = 200, description = "A new session", body = crate::openapi::schemas::Session, headers(("Cache-Control" = String, description = "`private, no-cache, no-store, must-revalidate, max-age=0`"), ("Set-Cookie" = String, description = "The `@supabase/ssr` session cookies, when cookie sessions are enabled"))),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 413, response = crate::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::openapi::responses::UnsupportedMediaType),
        (status = 401, description = "`invalid_refresh_token` (unknown, reused, expired or revoked), or `invalid_session_cookie`", body = crate::error::ErrorBody, example = json!({"error": "The refresh token is invalid", "code": "invalid_refresh_token"})),
        (status = 429, response = crate::openapi::responses::RateLimited),
        (status = 502, response = crate::openapi::responses::BadGateway),
        (status = 503, response = crate::openapi::responses::Unavailable),
        (status = 504, response = crate::openapi::responses::Timeout),
    )
)]
pub async fn refresh(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    state.limiter.check(&req, "refresh").await?;
    let from_body = optional_json::<RefreshBody>(&req, &state, &body)?
        .map(|b| b.validate().map(|()| b.refresh_token))
        .transpose()?
        .flatten();
    let refresh_token = match from_body {
        Some(token) => token,
        None => cookie_session(&req, &state.session_cookie.name)?
            .and_then(|s| s.refresh_token)
            .ok_or_else(|| {
                ApiError::validation(json!({ "refresh_token": ["is required"] }), vec![])
            })?,
    };
    let session = state
        .supabase
        .token("refresh_token", &json!({ "refresh_token": refresh_token }))
        .await
        .map_err(|e| map_error(e, refresh_error))?;
    session_response(&req, &state, session)
}

/// `POST /api/auth/logout` → 204; the Supabase session is revoked and cookies cleared.
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    operation_id = "logout",
    tag = "auth",
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        (status = 204, description = "The Supabase session is revoked and the session cookies cleared"),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 429, response = crate::openapi::responses::RateLimited),
        (status = 502, response = crate::openapi::responses::BadGateway),
        (status = 503, response = crate::openapi::responses::Unavailable),
        (status = 504, response = crate::openapi::responses::Timeout),
    )
)]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: User,
) -> ApiResult<HttpResponse> {
    match state.supabase.logout(user.0.token()).await {
        Ok(()) => {}
        // Already revoked, expired upstream or the user is gone: the caller is logged out.
        Err(AuthError::Auth(f)) if matches!(f.status.as_u16(), 401 | 403 | 404) => {}
        Err(e) => return Err(map_error(e, |_| None)),
    }
    let mut res = HttpResponse::NoContent();
    token_headers(&mut res);
    let cookie = &state.session_cookie;
    if cookie.write {
        let present = present_session_cookies(&req, &cookie.name);
        for c in clear_cookies(&cookie.name, &present, &cookie.options) {
            res.cookie(c);
        }
    }
    Ok(res.finish())
}

/// `GET /api/auth/user` → 200 the Supabase user object.
#[utoipa::path(
    get,
    path = "/api/auth/user",
    operation_id = "getAuthUser",
    tag = "auth",
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The Supabase user object", body = crate::openapi::schemas::SupabaseUser),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 429, response = crate::openapi::responses::RateLimited),
        (status = 502, response = crate::openapi::responses::BadGateway),
        (status = 503, response = crate::openapi::responses::Unavailable),
        (status = 504, response = crate::openapi::responses::Timeout),
    )
)]
pub async fn user(state: web::Data<AppState>, user: User) -> ApiResult<HttpResponse> {
    let answer = state
        .supabase
        .user(user.0.token())
        .await
        .map_err(|e| map_error(e, user_error))?;
    let mut res = HttpResponse::Ok();
    res.insert_header((header::CACHE_CONTROL, NO_STORE));
    Ok(res.json(answer))
}

/// `POST /api/auth/recover` → 202 whatever Auth says about the address, so the answer
/// cannot tell whether an account exists. Only an unreachable or failing Auth is reported.
#[utoipa::path(
    post,
    path = "/api/auth/recover",
    operation_id = "recoverPassword",
    tag = "auth",
    request_body = RecoverBody,
    security(()),
    responses(
        (status = 202, description = "Always, whether or not the account exists", body = crate::openapi::schemas::RecoverAccepted),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 413, response = crate::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::openapi::responses::UnsupportedMediaType),
        (status = 429, response = crate::openapi::responses::RateLimited),
        (status = 502, response = crate::openapi::responses::BadGateway),
        (status = 503, response = crate::openapi::responses::Unavailable),
        (status = 504, response = crate::openapi::responses::Timeout),
    )
)]
pub async fn recover(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<RecoverBody>,
) -> ApiResult<HttpResponse> {
    state.limiter.check(&req, "recover").await?;
    let body = body.into_inner();
    body.validate()?;
    match state.supabase.recover(&body.email).await {
        Ok(()) | Err(AuthError::Auth(_)) => {}
        Err(AuthError::Upstream(e)) => return Err(e.into()),
    }
    Ok(HttpResponse::Accepted().json(json!({
        "message": "If an account exists for this address, a recovery email is on its way"
    })))
}

// ---- responses ----

fn token_headers(res: &mut HttpResponseBuilder) {
    res.insert_header((header::CACHE_CONTROL, NO_STORE))
        .insert_header((header::EXPIRES, HeaderValue::from_static("0")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
}

/// 200 with Auth's session, plus the cookies when cookie sessions are on.
fn session_response(
    req: &HttpRequest,
    state: &AppState,
    session: Value,
) -> ApiResult<HttpResponse> {
    if !session.get("access_token").is_some_and(Value::is_string) {
        return Err(ApiError::upstream_error(
            "auth: token grant without access_token",
        ));
    }
    let mut res = HttpResponse::Ok();
    token_headers(&mut res);
    write_session_cookies(&mut res, req, state, &session);
    Ok(res.json(session))
}

/// Writes the session as `@supabase/ssr` stores it: auth-js's session object (no
/// `weak_password`, `expires_at` filled in), base64url-encoded, chunked, stale chunks expired.
fn write_session_cookies(
    res: &mut HttpResponseBuilder,
    req: &HttpRequest,
    state: &AppState,
    session: &Value,
) {
    let cookie = &state.session_cookie;
    if !cookie.write {
        return;
    }
    let mut stored = session.clone();
    if let Some(obj) = stored.as_object_mut() {
        obj.remove("weak_password");
        if !obj.contains_key("expires_at") {
            if let Some(expires_in) = obj.get("expires_in").and_then(Value::as_i64) {
                let now = jsonwebtoken::get_current_timestamp() as i64;
                obj.insert("expires_at".into(), json!(now + expires_in));
            }
        }
    }
    let present = present_session_cookies(req, &cookie.name);
    for c in session_cookies(&cookie.name, &stored.to_string(), &present, &cookie.options) {
        res.cookie(c);
    }
}

/// A JSON body that may also be absent (empty or `null`). Present bodies follow the same rules as
/// `web::Json` (415 without a JSON content type, 413, 400 `invalid_json`/`validation_failed`).
fn optional_json<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> ApiResult<Option<T>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let limit = state.settings.server.body_limit_bytes;
    if body.len() > limit {
        return Err(ApiError::payload_too_large(limit));
    }
    let is_json = req.mime_type().ok().flatten().is_some_and(|m| {
        m.subtype() == actix_web::mime::JSON || m.suffix() == Some(actix_web::mime::JSON)
    });
    if !is_json {
        return Err(ApiError::unsupported_media_type());
    }
    // A JSON `null` body means "no body", like an empty one.
    serde_json::from_slice::<Option<T>>(body)
        .map_err(|e| super::json_error(JsonPayloadError::Deserialize(e), limit))
}

// ---- Auth error mapping (by error code + status, never by message) ----

/// Route-specific mapping first; then what every route shares; anything else Auth refuses
/// means we sent something it did not expect: 502, with the detail in the log only.
fn map_error(e: AuthError, specific: impl Fn(&AuthFailure) -> Option<ApiError>) -> ApiError {
    let f = match e {
        AuthError::Upstream(e) => return e.into(),
        AuthError::Auth(f) => f,
    };
    if let Some(mapped) = specific(&f) {
        return mapped;
    }
    let code = f.code();
    if f.status.as_u16() == 429 || code.starts_with("over_") {
        return ApiError::rate_limited(60);
    }
    match code {
        "validation_failed"
        | "bad_json"
        | "email_address_invalid"
        | "email_address_not_authorized" => {
            ApiError::validation(json!({}), f.message.clone().into_iter().collect())
        }
        _ => ApiError::upstream_error(format!(
            "auth: answered {} with code `{code}`",
            f.status.as_u16()
        )),
    }
}

fn register_error(f: &AuthFailure) -> Option<ApiError> {
    Some(match f.code() {
        "user_already_exists" | "email_exists" | "phone_exists" => ApiError::conflict(
            "user_already_exists",
            "An account with this email already exists",
        ),
        "weak_password" => {
            let e = ApiError::unprocessable("weak_password", "The password is too weak");
            match &f.reasons {
                Some(reasons) => e.with_details(json!({ "reasons": reasons })),
                None => e,
            }
        }
        "signup_disabled" | "email_provider_disabled" => {
            ApiError::forbidden("signup_disabled", "Sign-ups are disabled")
        }
        _ => return None,
    })
}

fn login_error(f: &AuthFailure) -> Option<ApiError> {
    Some(match f.code() {
        // `invalid_grant` is the OAuth-shaped answer of older Auth versions.
        "invalid_credentials" | "invalid_grant" => {
            ApiError::unauthenticated("invalid_credentials", "Invalid login credentials")
        }
        "email_not_confirmed" | "phone_not_confirmed" => {
            ApiError::forbidden("email_not_confirmed", "Email address is not confirmed")
        }
        "user_banned" => ApiError::forbidden("user_banned", "This user is banned"),
        _ => return None,
    })
}

fn refresh_error(f: &AuthFailure) -> Option<ApiError> {
    // Unknown, reused, expired or revoked: whatever the reason, the token is spent.
    (f.status.as_u16() != 429 && !f.code().starts_with("over_"))
        .then(|| ApiError::unauthenticated("invalid_refresh_token", "The refresh token is invalid"))
}

fn user_error(f: &AuthFailure) -> Option<ApiError> {
    // The token verified locally but Auth no longer knows its session or user.
    matches!(f.status.as_u16(), 401 | 403 | 404)
        .then(|| ApiError::invalid_token("session_not_found", "The session is no longer valid"))
}
