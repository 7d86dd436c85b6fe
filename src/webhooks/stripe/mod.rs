//! Stripe webhooks: the `Stripe-Signature` scheme over the raw bytes, and the event model read
//! once a delivery is verified.

mod event;
mod signature;

pub(crate) use event::{Effect, Event};
pub use signature::*;
