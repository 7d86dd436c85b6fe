//! supagate: verifies Supabase sessions, validates input, applies business rules in Rust and
//! forwards the resulting calls to Supabase's PostgREST and Auth with the caller's own token.

pub mod api;
pub mod auth;
pub(crate) mod body_timeout;
pub mod checked;
pub mod client_ip;
pub mod conditional;
pub mod config;
pub(crate) mod docs;
pub mod error;
pub mod http_client;
pub mod jobs;
pub(crate) mod metrics;
pub mod middleware;
pub mod openapi;
pub mod rate_limit;
pub mod read_cache;
pub mod redis_conn;
pub mod route_template;
pub mod rules;
pub mod server;
pub mod state;
pub mod stripe;
pub mod supabase;
pub mod telemetry;
pub mod trace_context;
