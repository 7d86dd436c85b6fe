//! `POST /api/webhooks/stripe`: verify the signature over the raw body, then parse, then store
//! the event's effects and finally the event id, acknowledging only what is stored.
//!
//! Retry safety: the effects (`link_stripe_customer`, `apply_subscription_event`, the payment
//! insert) are idempotent and run *before* `record_webhook_event`. If any write fails the
//! answer is 5xx and nothing marks the event as done, so Stripe's redelivery repeats the
//! effects (harmlessly) and then records it. A delivery whose id is already recorded is a
//! duplicate and writes nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::supabase::billing::{Payment, SubscriptionEvent};
use crate::webhooks::stripe;

/// The raw body limit for this resource (`server.webhook_body_limit_bytes`).
pub fn payload_config(limit: usize) -> web::PayloadConfig {
    web::PayloadConfig::new(limit)
}

fn invalid_signature() -> ApiError {
    ApiError::bad_request("invalid_signature", "Invalid Stripe-Signature")
}

fn invalid_event(why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_event", "Not a Stripe event this endpoint handles")
        .with_internal(why)
}

/// The body extractor's failure (413 from the `PayloadConfig` limit) in the ApiError shape.
fn body_error(err: actix_web::Error, limit: usize) -> ApiError {
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
        (status = 200, description = "Stored (or a duplicate delivery: `duplicate: true`); other event types are acknowledged unprocessed", body = crate::openapi::schemas::WebhookReceived),
        (status = 400, description = "`invalid_signature` (missing, malformed, stale or non-matching `Stripe-Signature`), `invalid_event` (not an event object this endpoint reads) or `invalid_body`", body = crate::error::ErrorBody, example = json!({"error": "Invalid Stripe-Signature", "code": "invalid_signature"})),
        (status = 413, response = crate::openapi::responses::PayloadTooLarge),
        (status = 500, response = crate::openapi::responses::Internal),
        (status = 502, response = crate::openapi::responses::BadGateway),
        (status = 503, response = crate::openapi::responses::Unavailable),
        (status = 504, response = crate::openapi::responses::Timeout),
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
    let result = handle(req, state, body, &mut kind).await;
    let outcome = match &result {
        Ok(res) if res.status() == StatusCode::OK => "ok",
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
            log::debug!("stripe webhook refused: {reason}");
            return Err(invalid_signature());
        }
    }

    let event = Event::parse(&body)?;
    *kind = Some(event.kind.clone());
    let supabase = &state.supabase;
    if supabase.webhook_event_recorded(&event.id).await? {
        return Ok(received(true));
    }
    apply(&state, &event).await?;
    // Last: from here on a redelivery is a duplicate.
    let first = supabase
        .record_webhook_event(&event.id, &event.kind)
        .await?;
    // `false` means a concurrent delivery of the same event recorded it first; our effects
    // were idempotent repeats of its effects.
    Ok(received(!first))
}

fn received(duplicate: bool) -> HttpResponse {
    let body = if duplicate {
        json!({ "received": true, "duplicate": true })
    } else {
        json!({ "received": true })
    };
    HttpResponse::Ok().json(body)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Stores what the event means. Every call is idempotent (see the module docs).
async fn apply(state: &AppState, event: &Event) -> ApiResult<()> {
    let supabase = &state.supabase;
    match event.kind.as_str() {
        "checkout.session.completed" => {
            let session: CheckoutSession = event.object()?;
            match session.link() {
                Some((user, customer)) => supabase.link_stripe_customer(user, &customer).await?,
                None => log::info!(
                    "stripe {}: checkout session without a user id or customer; nothing to link",
                    event.id
                ),
            }
        }
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => {
            let subscription: Subscription = event.object()?;
            let state = subscription.into_state(event.created);
            if !supabase.apply_subscription_event(&state).await? {
                log::info!(
                    "stripe {}: older than the stored state of {}; ignored",
                    event.id,
                    state.p_subscription_id
                );
            }
        }
        "payment_intent.succeeded" => {
            let intent: PaymentIntent = event.object()?;
            supabase.record_payment(&intent.into_payment()).await?;
        }
        _ => {}
    }
    Ok(())
}

// ---- the event envelope and the objects we read (everything else is ignored) ----

#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    object: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    #[serde(default)]
    data: Option<EventData>,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: Value,
}

impl Event {
    fn parse(body: &[u8]) -> ApiResult<Self> {
        let event: Self = serde_json::from_slice(body).map_err(invalid_event)?;
        // Thin `v2.core.event` payloads carry no object and need a fetch: a different flow.
        if event.object != "event" {
            return Err(invalid_event(format!("object is {:?}", event.object)));
        }
        if !is_stripe_id(&event.id) || event.kind.is_empty() || event.kind.len() > 100 {
            return Err(invalid_event("event id or type is not plausible"));
        }
        Ok(event)
    }

    fn object<T: serde::de::DeserializeOwned>(&self) -> ApiResult<T> {
        let object = self
            .data
            .as_ref()
            .ok_or_else(|| invalid_event(format!("{}: no data.object", self.id)))?;
        T::deserialize(&object.object).map_err(|e| invalid_event(format!("{}: {e}", self.id)))
    }
}

/// Stripe ids are `prefix_` + alphanumerics; anything else is refused before it reaches a query.
fn is_stripe_id(id: &str) -> bool {
    (1..=255).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A field that is an id, or the object itself when the event was expanded.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Expandable {
    Id(String),
    Object { id: String },
}

impl Expandable {
    fn id(self) -> String {
        match self {
            Self::Id(id) | Self::Object { id } => id,
        }
    }
}

#[derive(Debug, Deserialize)]
struct CheckoutSession {
    client_reference_id: Option<String>,
    customer: Option<Expandable>,
}

impl CheckoutSession {
    /// The user (our `client_reference_id`) and the Stripe customer to link, when both exist.
    fn link(self) -> Option<(uuid::Uuid, String)> {
        let user = uuid::Uuid::parse_str(self.client_reference_id.as_deref()?).ok()?;
        let customer = self.customer?.id();
        is_stripe_id(&customer).then_some((user, customer))
    }
}

#[derive(Debug, Deserialize)]
struct Subscription {
    id: String,
    customer: Expandable,
    status: String,
    #[serde(default)]
    cancel_at_period_end: bool,
    /// Where API versions before `2025-03-31.basil` put it.
    current_period_end: Option<i64>,
    items: Option<List<SubscriptionItem>>,
}

#[derive(Debug, Deserialize)]
struct List<T> {
    data: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct SubscriptionItem {
    price: Option<Expandable>,
    current_period_end: Option<i64>,
}

impl Subscription {
    fn into_state(self, event_created: i64) -> SubscriptionEvent {
        let first = self.items.and_then(|l| l.data.into_iter().next());
        let (price, item_period_end) = match first {
            Some(item) => (item.price.map(Expandable::id), item.current_period_end),
            None => (None, None),
        };
        SubscriptionEvent {
            p_subscription_id: self.id,
            p_stripe_customer_id: self.customer.id(),
            p_status: self.status,
            p_price_id: price,
            p_current_period_end: item_period_end
                .or(self.current_period_end)
                .and_then(rfc3339),
            p_cancel_at_period_end: self.cancel_at_period_end,
            p_event_created: event_created,
        }
    }
}

fn rfc3339(unix: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[derive(Debug, Deserialize)]
struct PaymentIntent {
    id: String,
    amount: i64,
    amount_received: Option<i64>,
    currency: String,
    status: String,
    customer: Option<Expandable>,
}

impl PaymentIntent {
    fn into_payment(self) -> Payment {
        Payment {
            id: self.id,
            stripe_customer_id: self.customer.map(Expandable::id),
            amount: self.amount_received.unwrap_or(self.amount),
            currency: self.currency.to_ascii_lowercase(),
            status: self.status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_event(name: &str) -> Event {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/stripe.json");
        let fx: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let event = fx["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap();
        Event::parse(event["payload"].as_str().unwrap().as_bytes()).unwrap()
    }

    #[test]
    fn a_basil_subscription_reads_price_and_period_end_from_its_item() {
        let event = fixture_event("subscription_updated_cancel_at_period_end");
        let state = event
            .object::<Subscription>()
            .unwrap()
            .into_state(event.created);
        assert_eq!(
            state.p_price_id.as_deref(),
            Some("price_1Sb4gTSupaGatePrice01")
        );
        assert_eq!(
            state.p_current_period_end.as_deref(),
            Some("2026-02-01T00:00:00Z")
        );
        assert!(state.p_cancel_at_period_end);
        assert_eq!(state.p_event_created, 1_767_225_603);
    }

    #[test]
    fn an_older_api_version_subscription_reads_the_top_level_period_end() {
        let sub: Subscription = serde_json::from_value(json!({
            "id": "sub_1", "customer": {"id": "cus_1"}, "status": "active",
            "current_period_end": 0, "items": {"data": []}
        }))
        .unwrap();
        let state = sub.into_state(5);
        assert_eq!(state.p_stripe_customer_id, "cus_1");
        assert_eq!(
            state.p_current_period_end.as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
        assert_eq!(state.p_price_id, None);
    }

    #[test]
    fn thin_v2_events_and_non_events_are_refused() {
        for body in [
            r#"{"id":"evt_1","object":"v2.core.event","type":"x","created":1}"#,
            r#"{"id":"evt_1","object":"customer","type":"x","created":1}"#,
            r#"{"id":"evt 1","object":"event","type":"x","created":1}"#,
            r#"[]"#,
        ] {
            assert_eq!(
                Event::parse(body.as_bytes()).unwrap_err().code(),
                "invalid_event"
            );
        }
    }

    #[test]
    fn a_checkout_session_without_a_uuid_reference_links_nothing() {
        let session: CheckoutSession =
            serde_json::from_value(json!({"client_reference_id": "ann", "customer": "cus_1"}))
                .unwrap();
        assert_eq!(session.link(), None);
    }
}
