//! The `stripe_events` job: a verified Stripe event, applied with the same idempotent,
//! order-safe writes as the inline webhook (`apply`).

use crate::stripe::{Effect, Event};
use crate::supabase::error::SupabaseError;
use crate::supabase::Supabase;

use super::JobError;

pub const QUEUE: &str = "stripe_events";

/// Applies one queued event. An event the gateway accepted but cannot read now is permanent.
pub async fn handle(supabase: &Supabase, message: &serde_json::Value) -> Result<(), JobError> {
    let body = serde_json::to_vec(message).map_err(|e| JobError::Permanent(e.to_string()))?;
    let event = Event::parse(&body).map_err(|e| JobError::Permanent(e.to_string()))?;
    let effect = event
        .effect()
        .map_err(|e| JobError::Permanent(e.to_string()))?;
    apply(supabase, &event, effect).await.map_err(|e| {
        let e = JobError::from(e);
        tracing::warn!("stripe {} ({}): {e}", event.id, event.kind);
        e
    })
}

/// Stores what the event means. Every write is idempotent (a repeat changes nothing), so a
/// message processed twice, or a redelivery, is harmless.
pub(crate) async fn apply(
    supabase: &Supabase,
    event: &Event,
    effect: Effect,
) -> Result<(), SupabaseError> {
    match effect {
        Effect::LinkCustomer { user, customer } => {
            supabase.link_stripe_customer(user, &customer).await
        }
        Effect::Subscription(sub) => {
            if !supabase.apply_subscription_event(&sub).await? {
                tracing::info!(
                    "stripe {}: older than the stored state of {}; ignored",
                    event.id,
                    sub.p_subscription_id
                );
            }
            Ok(())
        }
        Effect::Payment(payment) => supabase.record_payment(&payment).await,
        Effect::None(why) => {
            tracing::info!("stripe {}: {why}; nothing to store", event.id);
            Ok(())
        }
    }
}
