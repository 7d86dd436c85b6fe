//! Black-box tests over real HTTP: the application on port 0, Supabase played by wiremock.

mod foundation;
mod metrics;
mod support;
