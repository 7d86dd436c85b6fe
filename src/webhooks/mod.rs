//! Webhook signature schemes as pure functions over bytes, a header and a clock: no HTTP, no
//! I/O, so every edge case is unit- and property-tested without a server.

pub mod stripe;
