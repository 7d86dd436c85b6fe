//! Black-box tests over real HTTP: the application on port 0, Supabase played by wiremock.

mod audit;
mod auth;
mod billing;
mod cache;
mod categories;
mod fault;
mod faults;
mod foundation;
mod hostile;
mod idempotency;
mod items;
mod jobs;
mod metrics;
mod openapi;
mod rate_limit;
mod redis_server;
mod secrets;
mod sessions;
mod shutdown;
mod signin;
mod support;
mod telemetry;
mod upstream_errors;
mod users;
mod validation;
mod webhooks;
