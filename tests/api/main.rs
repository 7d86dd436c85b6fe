//! Black-box tests over real HTTP: the application on port 0, Supabase played by wiremock.

mod auth;
mod foundation;
mod support;
