//! Response bodies that the handlers pass through from PostgREST and Supabase Auth without
//! parsing (streamed or forwarded as bytes), described here for the document only: each
//! mirrors the `select` column list or Auth answer the handler forwards.

#![allow(dead_code)] // fields are read by the derive, never by code

use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

/// Supabase Auth's user object, forwarded as Auth answers it (more fields than listed here
/// may be present).
#[derive(ToSchema)]
#[schema(example = json!({
    "id": "4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90", "aud": "authenticated", "role": "authenticated",
    "email": "ada@example.com", "app_metadata": {"provider": "email"}, "user_metadata": {}
}))]
pub struct SupabaseUser {
    id: Uuid,
    aud: Option<String>,
    role: Option<String>,
    email: Option<String>,
    app_metadata: Option<Map<String, Value>>,
    user_metadata: Option<Map<String, Value>>,
}

/// A Supabase Auth session, forwarded as Auth answers it.
#[derive(ToSchema)]
#[schema(example = json!({
    "access_token": "eyJhbGciOiJFUzI1NiIsImtpZCI6Ii4uLiJ9...", "token_type": "bearer",
    "expires_in": 3600, "expires_at": 1748779200, "refresh_token": "v3ryr4nd0m",
    "user": {"id": "4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90", "email": "ada@example.com"}
}))]
pub struct Session {
    access_token: String,
    token_type: String,
    expires_in: i64,
    expires_at: Option<i64>,
    refresh_token: String,
    user: SupabaseUser,
}

/// `POST /api/auth/register`'s answer; `session` is `null` while email confirmation is pending.
#[derive(ToSchema)]
pub struct Registered {
    user: SupabaseUser,
    #[schema(required = true)]
    session: Option<Session>,
}

/// `POST /api/auth/recover`'s answer, the same whether or not the account exists.
#[derive(ToSchema)]
#[schema(example = json!({"message": "If an account exists for this address, a recovery email is on its way"}))]
pub struct RecoverAccepted {
    message: String,
}
