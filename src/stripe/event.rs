//! The Stripe event envelope and the few objects supagate reads from it (checkout sessions,
//! subscriptions, payment intents); every other field is ignored. Parsed only after the
//! signature over the raw bytes was verified.

use serde::Deserialize;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::supabase::stripe_data::{Payment, SubscriptionEvent};

fn invalid_event(why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_event", "Not a Stripe event this endpoint handles")
        .with_internal(why)
}

#[derive(Debug, Deserialize)]
pub(crate) struct Event {
    pub(crate) id: String,
    object: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) created: i64,
    #[serde(default)]
    data: Option<EventData>,
}

/// The write an event calls for.
#[derive(Debug, PartialEq)]
pub(crate) enum Effect {
    LinkCustomer {
        user: uuid::Uuid,
        customer: String,
    },
    Subscription(SubscriptionEvent),
    Payment(Payment),
    /// Acknowledged, nothing stored; says why for the log.
    None(&'static str),
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: Value,
}

impl Event {
    pub(crate) fn parse(body: &[u8]) -> ApiResult<Self> {
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

    /// What the event asks to store, decided from the event alone (no I/O).
    pub(crate) fn effect(&self) -> ApiResult<Effect> {
        Ok(match self.kind.as_str() {
            "checkout.session.completed" => match self.object::<CheckoutSession>()?.link() {
                Some((user, customer)) => Effect::LinkCustomer { user, customer },
                None => Effect::None("a checkout session without a user id or customer"),
            },
            "customer.subscription.created"
            | "customer.subscription.updated"
            | "customer.subscription.deleted" => {
                Effect::Subscription(self.object::<Subscription>()?.into_state(self.created))
            }
            "payment_intent.succeeded" => {
                Effect::Payment(self.object::<PaymentIntent>()?.into_payment())
            }
            _ => Effect::None("an event type supagate does not store"),
        })
    }

    pub(crate) fn object<T: serde::de::DeserializeOwned>(&self) -> ApiResult<T> {
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
pub(crate) enum Expandable {
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
pub(crate) struct CheckoutSession {
    client_reference_id: Option<String>,
    customer: Option<Expandable>,
}

impl CheckoutSession {
    /// The user (our `client_reference_id`) and the Stripe customer to link, when both exist.
    pub(crate) fn link(self) -> Option<(uuid::Uuid, String)> {
        let user = uuid::Uuid::parse_str(self.client_reference_id.as_deref()?).ok()?;
        let customer = self.customer?.id();
        is_stripe_id(&customer).then_some((user, customer))
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Subscription {
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
pub(crate) struct List<T> {
    data: Vec<T>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SubscriptionItem {
    price: Option<Expandable>,
    current_period_end: Option<i64>,
}

impl Subscription {
    pub(crate) fn into_state(self, event_created: i64) -> SubscriptionEvent {
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
pub(crate) struct PaymentIntent {
    id: String,
    amount: i64,
    amount_received: Option<i64>,
    currency: String,
    status: String,
    customer: Option<Expandable>,
}

impl PaymentIntent {
    pub(crate) fn into_payment(self) -> Payment {
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
    use serde_json::json;

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
