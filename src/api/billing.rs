//! `GET /api/billing/subscription`: the caller's subscription as the webhooks stored it, read
//! with the caller's own token so RLS decides what is visible.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::auth::User;
use crate::error::ApiResult;
use crate::openapi::responses;
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/api/billing/subscription",
    operation_id = "getSubscription",
    tag = "billing",
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        (status = 200, description = "The caller's subscription, or `{\"status\": \"none\"}`", body = crate::openapi::schemas::BillingSubscription),
        (status = 401, response = responses::Unauthorized),
        (status = 403, response = responses::Forbidden),
    )
)]
pub async fn subscription(state: web::Data<AppState>, User(user): User) -> ApiResult<HttpResponse> {
    let body = match state.supabase.subscription_of(&user).await? {
        Some(sub) => json!({
            "status": sub.status,
            "price_id": sub.price_id,
            "current_period_end": sub.current_period_end,
            "cancel_at_period_end": sub.cancel_at_period_end,
        }),
        None => json!({ "status": "none" }),
    };
    Ok(HttpResponse::Ok().json(body))
}
