//! Liveness (`/health`, no upstream call) and readiness (`/ready`, probes Supabase).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::openapi::responses;
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "service",
    security(()),
    responses(
        (status = 200, description = "Alive (no upstream call)", body = crate::openapi::schemas::Health),
    )
)]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

#[utoipa::path(
    get,
    path = "/ready",
    operation_id = "ready",
    tag = "service",
    security(()),
    responses(
        (status = 200, description = "Supabase Auth and PostgREST both answer", body = crate::openapi::schemas::Ready),
        (status = 503, response = responses::Unavailable),
    )
)]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (auth, rest) = state.supabase.readiness().await;
    let checks = json!({"auth": auth, "rest": rest});
    if auth.ok && rest.ok {
        Ok(HttpResponse::Ok().json(json!({"status": "ready", "checks": checks})))
    } else {
        let down: Vec<&str> = [("auth", auth.ok), ("rest", rest.ok)]
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(name, _)| *name)
            .collect();
        Err(
            ApiError::upstream_unavailable(format!("readiness: {} not ready", down.join(", ")))
                .with_details(json!({ "checks": checks })),
        )
    }
}
