//! Black-box tests over real HTTP: the application on port 0, Supabase played by wiremock.

mod auth;
mod billing;
mod foundation;
mod metrics;
mod support;
mod webhooks;
