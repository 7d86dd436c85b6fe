//! Liveness (`/health`, no upstream call) and readiness (`/ready`, probes Supabase).

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::openapi::responses;
use crate::state::AppState;
use crate::supabase::ReadyCheck;

/// `GET /health`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok", "version": "0.1.0"}))]
pub(crate) struct Health {
    status: &'static str,
    version: &'static str,
}

/// The readiness checks.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReadyChecks {
    auth: ReadyCheck,
    rest: ReadyCheck,
    /// `business.free_item_limit` is written to the database (which enforces it); needs the
    /// secret key.
    item_limit: ReadyCheck,
}

/// Whether Auth's per-IP rate limits count each client (`Sb-Forwarded-For` with a key Auth
/// honours) or every client shares supagate's address. Reported, never a reason for 503.
#[derive(Serialize, ToSchema)]
pub(crate) struct PerClientAuthLimits {
    on: bool,
    /// Why, in one line.
    detail: String,
}

impl PerClientAuthLimits {
    fn of(state: &AppState) -> Self {
        let forwarding = state.settings.client_ip_forwarding();
        Self {
            on: forwarding.is_on(),
            detail: forwarding.describe(),
        }
    }
}

/// `GET /ready` when every check passes. (When one fails the answer is a 503 `ErrorBody` with
/// the same `checks` under `details`.)
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ready", "checks": {"auth": {"ok": true, "status": 200}, "rest": {"ok": true, "status": 200}, "item_limit": {"ok": true}}, "per_client_auth_limits": {"on": false, "detail": "off: no sb_secret_ key is configured (SUPABASE_SECRET_KEY), and Auth honours Sb-Forwarded-For only with one; Auth counts every client against supagate's own address"}}))]
pub(crate) struct Ready {
    status: &'static str,
    checks: ReadyChecks,
    per_client_auth_limits: PerClientAuthLimits,
}

#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "service",
    security(()),
    responses(
        (status = 200, description = "Alive (no upstream call)", body = Health),
    )
)]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[utoipa::path(
    get,
    path = "/ready",
    operation_id = "ready",
    tag = "service",
    security(()),
    responses(
        (status = 200, description = "Supabase Auth and PostgREST answer, and the database holds the configured item limit", body = Ready),
        (status = 503, response = responses::Unavailable),
    )
)]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let ((auth, rest), item_limit) = tokio::join!(
        state.supabase.readiness(),
        state.item_limit.check(&state.supabase)
    );
    let checks = ReadyChecks {
        auth,
        rest,
        item_limit,
    };
    if checks.auth.ok && checks.rest.ok && checks.item_limit.ok {
        Ok(HttpResponse::Ok().json(Ready {
            status: "ready",
            checks,
            per_client_auth_limits: PerClientAuthLimits::of(&state),
        }))
    } else {
        let down: Vec<&str> = [
            ("auth", checks.auth.ok),
            ("rest", checks.rest.ok),
            ("item_limit", checks.item_limit.ok),
        ]
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| *name)
        .collect();
        Err(
            ApiError::upstream_unavailable(format!("readiness: {} not ready", down.join(", ")))
                .with_details(json!({
                    "checks": checks,
                    "per_client_auth_limits": PerClientAuthLimits::of(&state),
                })),
        )
    }
}
