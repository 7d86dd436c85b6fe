//! Black-box tests over real HTTP: the application on port 0, Supabase played by wiremock.

mod categories;
mod foundation;
mod items;
mod support;
mod users;
