//! `GET /api/billing/subscription`: the caller's subscription as the webhooks stored it, read
//! with the caller's own token so RLS decides what is visible.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Permanent;
use crate::error::ApiResult;
use crate::openapi::responses;
use crate::state::AppState;

/// The caller's subscription as the webhooks stored it, or `{"status": "none"}` (the other
/// fields absent).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "active", "price_id": "price_1PqXyZ", "current_period_end": "2025-07-01T00:00:00+00:00", "cancel_at_period_end": false}))]
pub(crate) struct BillingSubscription {
    /// Stripe's subscription status, or `none` when there is no subscription.
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    price_id: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    current_period_end: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancel_at_period_end: Option<bool>,
}

#[utoipa::path(
    get,
    path = "/api/billing/subscription",
    operation_id = "getSubscription",
    tag = "billing",
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        (status = 200, description = "The caller's subscription, or `{\"status\": \"none\"}`", body = BillingSubscription),
        (status = 401, response = responses::Unauthorized),
        (status = 403, response = responses::Forbidden),
    )
)]
pub async fn subscription(
    state: web::Data<AppState>,
    Permanent(user): Permanent,
) -> ApiResult<HttpResponse> {
    let body = match state.supabase.subscription_of(&user).await? {
        Some(sub) => BillingSubscription {
            status: sub.status,
            price_id: Some(sub.price_id),
            current_period_end: Some(sub.current_period_end),
            cancel_at_period_end: Some(sub.cancel_at_period_end),
        },
        None => BillingSubscription {
            status: "none".to_owned(),
            price_id: None,
            current_period_end: None,
            cancel_at_period_end: None,
        },
    };
    Ok(HttpResponse::Ok().json(body))
}
