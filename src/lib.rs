//! supagate: verifies Supabase sessions, validates input, applies business rules in Rust and
//! forwards the resulting calls to Supabase's PostgREST and Auth with the caller's own token.

// `ApiError` is ~136 bytes and built only on the failure path of a request; boxing it would cost
// an allocation on every error to save a copy nobody measures. Newer clippy flags every
// `Result<_, ApiError>` (the base commit is red on clippy 1.95 without this).
#![allow(clippy::result_large_err)]

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod http_client;
pub mod middleware;
pub mod rules;
pub mod server;
pub mod state;
pub mod supabase;
pub mod webhooks;
