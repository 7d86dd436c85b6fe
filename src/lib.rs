//! supagate: verifies Supabase sessions, validates input, applies business rules in Rust and
//! forwards the resulting calls to Supabase's PostgREST and Auth with the caller's own token.

// `ApiError` is ~140 bytes and only ever built on the (rare, already slow) error path;
// boxing it everywhere would buy nothing measurable.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod http_client;
pub mod middleware;
pub mod rate_limit;
pub mod server;
pub mod state;
pub mod supabase;
