//! Response bodies that the handlers pass through from PostgREST and Supabase Auth without
//! parsing (streamed or forwarded as bytes), described here for the document only: each
//! mirrors the `select` column list or Auth answer the handler forwards.

#![allow(dead_code)] // fields are read by the derive, never by code

use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

/// `{id, name}` of an item's category, embedded through the `category_id` foreign key.
#[derive(ToSchema)]
pub struct CategoryRef {
    id: Uuid,
    name: String,
}

/// An item as `ITEM_COLUMNS` (`src/api/items.rs`) selects it. PostgREST sends every selected
/// column, `null` included, so nullable fields are still `required`.
#[derive(ToSchema)]
#[schema(example = json!({
    "id": "0b6f1c2e-4a5d-4e8f-9b1a-2c3d4e5f6a7b", "name": "Desk lamp",
    "description": "Brass, 40 cm", "price": 49.9,
    "category_id": "5d3c2b1a-0f9e-4d8c-b7a6-958473625140",
    "user_id": "4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90",
    "created_at": "2025-06-01T12:00:00+00:00", "updated_at": "2025-06-01T12:00:00+00:00",
    "category": {"id": "5d3c2b1a-0f9e-4d8c-b7a6-958473625140", "name": "Lighting"}
}))]
pub struct Item {
    id: Uuid,
    name: String,
    #[schema(required = true)]
    description: Option<String>,
    /// Decimal with at most two places, 0 < price ≤ 1 000 000.
    price: f64,
    #[schema(required = true)]
    category_id: Option<Uuid>,
    user_id: Uuid,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    /// `null` when the item has no category (or the category is not visible).
    #[schema(required = true)]
    category: Option<CategoryRef>,
}

/// A category (`id,name,slug`).
#[derive(ToSchema)]
#[schema(example = json!({"id": "5d3c2b1a-0f9e-4d8c-b7a6-958473625140", "name": "Lighting", "slug": "lighting"}))]
pub struct Category {
    id: Uuid,
    name: String,
    slug: String,
}

/// A profile (one per Supabase user, created by a database trigger).
#[derive(ToSchema)]
#[schema(example = json!({
    "id": "4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90", "username": "ada_l", "full_name": "Ada Lovelace",
    "avatar_url": "https://example.com/ada.png",
    "created_at": "2025-06-01T12:00:00+00:00", "updated_at": "2025-06-01T12:00:00+00:00"
}))]
pub struct Profile {
    id: Uuid,
    #[schema(required = true)]
    username: Option<String>,
    #[schema(required = true)]
    full_name: Option<String>,
    #[schema(required = true)]
    avatar_url: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

/// The `get_user_stats(user_id)` RPC's answer, one object.
#[derive(ToSchema)]
#[schema(example = json!({"item_count": 3, "total_value": 149.7, "avg_price": 49.9, "last_item_at": "2025-06-01T12:00:00+00:00"}))]
pub struct UserStats {
    #[schema(minimum = 0)]
    item_count: i64,
    total_value: f64,
    /// `null` when the user owns no items.
    #[schema(required = true)]
    avg_price: Option<f64>,
    /// `null` when the user owns no items.
    #[schema(required = true, format = DateTime)]
    last_item_at: Option<String>,
}

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

/// The caller's subscription as the webhooks stored it, or `{"status": "none"}`.
#[derive(ToSchema)]
#[schema(example = json!({"status": "active", "price_id": "price_1PqXyZ", "current_period_end": "2025-07-01T00:00:00+00:00", "cancel_at_period_end": false}))]
pub struct BillingSubscription {
    /// Stripe's subscription status, or `none` when there is no subscription.
    status: String,
    price_id: Option<String>,
    #[schema(format = DateTime)]
    current_period_end: Option<String>,
    cancel_at_period_end: Option<bool>,
}

/// A webhook delivery was stored (or had been already: `duplicate`).
#[derive(ToSchema)]
#[schema(example = json!({"received": true}))]
pub struct WebhookReceived {
    received: bool,
    /// Present (and `true`) on a redelivery of an event already recorded.
    duplicate: Option<bool>,
}

/// `GET /health`.
#[derive(ToSchema)]
#[schema(example = json!({"status": "ok", "version": "0.1.0"}))]
pub struct Health {
    status: String,
    version: String,
}

/// One readiness probe.
#[derive(ToSchema)]
pub struct ReadyCheck {
    ok: bool,
    /// The HTTP status the probe got, when it got one.
    #[schema(minimum = 100, maximum = 599)]
    status: Option<u16>,
    /// Why the probe failed (connection error, timeout), when it did.
    error: Option<String>,
}

#[derive(ToSchema)]
pub struct ReadyChecks {
    auth: ReadyCheck,
    rest: ReadyCheck,
}

/// `GET /ready` when both probes pass. (When one fails the answer is a 503 `ErrorBody` with
/// the same `checks` under `details`.)
#[derive(ToSchema)]
#[schema(example = json!({"status": "ready", "checks": {"auth": {"ok": true, "status": 200}, "rest": {"ok": true, "status": 200}}}))]
pub struct Ready {
    status: String,
    checks: ReadyChecks,
}
