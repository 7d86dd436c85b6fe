//! Stripe's webhook format as pure functions over bytes, a header and a clock (no HTTP, no
//! I/O, so every edge case is unit- and property-tested without a server): the
//! `Stripe-Signature` scheme over the raw bytes, and the event model read once a delivery is
//! verified. The HTTP route is `api::webhooks`.

mod event;
mod signature;

pub(crate) use event::{Effect, Event};
pub use signature::*;
