//! `POST /api/webhooks/stripe`: verify the signature over the raw body, then parse, then either
//! queue the event (`stripe.processing = "queue"`, the default) or store its effects inline,
//! acknowledging only what is stored.
//!
//! Queue mode: `enqueue_stripe_event` records the event id and puts the event on the
//! `stripe_events` queue in one transaction, so a 200 means the event is durably in Postgres;
//! `supagate worker` applies it (`jobs::stripe`), retrying transient failures and
//! dead-lettering permanent ones instead of failing Stripe's delivery for days.
//!
//! Inline mode, retry safety: the effects (`link_stripe_customer`, `apply_subscription_event`, the payment
//! insert) are idempotent and run *before* `record_webhook_event`. If any write fails the
//! answer is 5xx and nothing marks the event as done, so Stripe's redelivery repeats the
//! effects (harmlessly) and then records it. A delivery whose id is already recorded is a
//! duplicate and writes nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::config::StripeProcessing;
use crate::error::{ApiError, ApiResult};
use crate::openapi::responses;
use crate::state::AppState;
use crate::stripe::{self, Event};

/// The raw body limit for this resource (`server.webhook_body_limit_bytes`).
pub fn payload_config(limit: usize) -> web::PayloadConfig {
    web::PayloadConfig::new(limit)
}

fn invalid_signature() -> ApiError {
    ApiError::bad_request("invalid_signature", "Invalid Stripe-Signature")
}

/// The body extractor's failure (413 from the `PayloadConfig` limit) in the ApiError shape.
pub(crate) fn body_error(err: actix_web::Error, limit: usize) -> ApiError {
    if err.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large(limit)
    } else {
        ApiError::bad_request("invalid_body", "The request body could not be read")
            .with_internal(err)
    }
}

#[utoipa::path(
    post,
    path = "/api/webhooks/stripe",
    operation_id = "stripeWebhook",
    tag = "billing",
    request_body(content = Object, description = "A Stripe event, verified over the raw bytes", content_type = "application/json"),
    security(("stripe_signature" = [])),
    responses(
        responses::UpstreamErrors,
        (status = 200, description = "Queued for the worker (`stripe.processing = \"queue\"`) or stored (`\"inline\"`), or a duplicate delivery (`duplicate: true`); other event types are acknowledged unprocessed", body = WebhookReceived),
        (status = 400, description = "`invalid_signature` (missing, malformed, stale or non-matching `Stripe-Signature`), `invalid_event` (not an event object this endpoint reads) or `invalid_body`", body = crate::error::ErrorBody, example = json!({"error": "Invalid Stripe-Signature", "code": "invalid_signature"})),
        (status = 413, response = responses::PayloadTooLarge),
        (status = 500, response = responses::Internal),
    )
)]
pub async fn stripe(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Result<web::Bytes, actix_web::Error>,
) -> ApiResult<HttpResponse> {
    // The event type is known only once the signature checked out; until then it is
    // `unverified`, so forged traffic shows up without inventing label values.
    let mut kind = None;
    let mut permanent = false;
    let queued = state.settings.stripe.processing == StripeProcessing::Queue;
    let result = handle(req, state, body, &mut kind, &mut permanent).await;
    let outcome = match &result {
        Ok(res) if res.status() == StatusCode::OK && queued => "queued",
        Ok(res) if res.status() == StatusCode::OK => "ok",
        Err(_) if permanent => "permanent_error",
        Ok(_) => "other",
        Err(e) if e.code() == "invalid_signature" => "invalid_signature",
        Err(e) if e.status().is_client_error() => "rejected",
        Err(_) => "error",
    };
    crate::metrics::metrics().webhook_event(kind.as_deref().unwrap_or("unverified"), outcome);
    result
}

async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Result<web::Bytes, actix_web::Error>,
    kind: &mut Option<String>,
    permanent: &mut bool,
) -> ApiResult<HttpResponse> {
    let settings = &state.settings;
    let body = body.map_err(|e| body_error(e, settings.server.webhook_body_limit_bytes))?;
    let header = req
        .headers()
        .get("stripe-signature")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let secrets: Vec<&[u8]> = settings
        .stripe
        .webhook_secrets
        .iter()
        .map(|s| s.expose().as_bytes())
        .collect();
    match stripe::verify(
        &body,
        header,
        &secrets,
        unix_now(),
        settings.stripe.tolerance_secs,
    ) {
        Ok(_) => {}
        Err(stripe::SignatureError::NoSecrets) => {
            // Our misconfiguration, not a forgery: 5xx so Stripe keeps the event for later.
            return Err(ApiError::internal(
                "STRIPE_WEBHOOK_SECRET is not configured",
            ));
        }
        Err(reason) => {
            tracing::debug!("stripe webhook refused: {reason}");
            return Err(invalid_signature());
        }
    }

    let event = Event::parse(&body)?;
    *kind = Some(event.kind.clone());
    let supabase = &state.supabase;
    if settings.stripe.processing == StripeProcessing::Queue {
        // Refused here (400) rather than dead-lettered later: the decision needs no I/O.
        event.effect()?;
        let raw: &serde_json::value::RawValue = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request("invalid_event", "Not a Stripe event this endpoint handles")
                .with_internal(e)
        })?;
        let new = supabase
            .enqueue_stripe_event(&event.id, &event.kind, raw)
            .await?;
        return Ok(received(!new));
    }
    if supabase.webhook_event_recorded(&event.id).await? {
        return Ok(received(true));
    }
    let effect = event.effect()?;
    if let Err(e) = crate::jobs::stripe::apply(supabase, &event, effect).await {
        if e.is_permanent() {
            // Stripe's retries cannot fix bad data; this needs a person (queue mode sends it to
            // the dead-letter queue instead). Still 5xx so the delivery is not lost meanwhile.
            *permanent = true;
            tracing::error!(
                "stripe {}: permanent failure storing the event: {e}",
                event.id
            );
            // Supabase refused the write for good: a bad gateway answer, not the sender's fault.
            return Err(ApiError::upstream_error(e));
        }
        return Err(e.into());
    }
    // Last: from here on a redelivery is a duplicate.
    let first = supabase
        .record_webhook_event(&event.id, &event.kind)
        .await?;
    // `false` means a concurrent delivery of the same event recorded it first; our effects
    // were idempotent repeats of its effects.
    Ok(received(!first))
}

/// A webhook delivery was stored (or had been already: `duplicate`).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({"received": true}))]
pub(crate) struct WebhookReceived {
    received: bool,
    /// Present (and `true`) on a redelivery of an event already recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate: Option<bool>,
}

fn received(duplicate: bool) -> HttpResponse {
    HttpResponse::Ok().json(WebhookReceived {
        received: true,
        duplicate: duplicate.then_some(true),
    })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
