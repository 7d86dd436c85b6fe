//! Reading billing state (the `subscriptions` table) as the signed-in user, so RLS decides
//! what is visible (`GET /api/billing/subscription`), and the webhook's writes.

use http::Method;
use serde::{Deserialize, Serialize};

use super::error::SupabaseError;
use super::postgrest::{Caller, Query};
use super::Supabase;
use crate::auth::AuthUser;
use crate::http_client::{Call, JsonApi, UpstreamError};

/// A subscription as stored from Stripe events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionState {
    pub status: String,
    pub price_id: Option<String>,
    pub current_period_end: Option<String>,
    pub cancel_at_period_end: bool,
}

impl SubscriptionState {
    /// Whether this subscription grants the paid plan (`rules::plan`).
    pub fn is_active(&self) -> bool {
        crate::rules::plan::is_subscribed(&self.status)
    }
}

impl Supabase {
    /// The caller's most relevant subscription: an active one if any, else the latest.
    pub async fn subscription_of(
        &self,
        user: &AuthUser,
    ) -> Result<Option<SubscriptionState>, SupabaseError> {
        let query = Query::table("subscriptions")
            .select("status,price_id,current_period_end,cancel_at_period_end")
            .eq("user_id", user.id)
            .order("stripe_event_created.desc")
            .limit(10);
        let body = self.pg_read(&query, Caller::User(user)).await?;
        let rows: Vec<SubscriptionState> = self.rest.decode(&body)?;
        let active = rows.iter().find(|s| s.is_active()).cloned();
        Ok(active.or_else(|| rows.into_iter().next()))
    }
}

/// A subscription state to store, in the argument names of `apply_subscription_event`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubscriptionEvent {
    pub p_subscription_id: String,
    pub p_stripe_customer_id: String,
    pub p_status: String,
    pub p_price_id: Option<String>,
    /// RFC 3339, for the `timestamptz` argument.
    pub p_current_period_end: Option<String>,
    pub p_cancel_at_period_end: bool,
    pub p_event_created: i64,
}

/// A succeeded payment intent, in the column names of `payments`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Payment {
    pub id: String,
    /// Null for guest payments; `link_stripe_customer` back-fills `user_id` from it.
    pub stripe_customer_id: Option<String>,
    pub amount: i64,
    pub currency: String,
    pub status: String,
}

/// The webhook writes, made with the secret key (`apikey` and bearer) because the billing
/// tables and RPCs are granted to `service_role` only. Every one is idempotent, so a retried
/// delivery may repeat them safely.
impl Supabase {
    pub(crate) fn service_api(&self) -> Result<&JsonApi, SupabaseError> {
        // Config requires the key for webhooks; without it the event cannot be stored, and a
        // 5xx makes Stripe retry once the deployment is fixed.
        self.rest_service
            .as_ref()
            .ok_or(SupabaseError::Transport(UpstreamError::Unavailable {
                upstream: "rest",
                cause: "SUPABASE_SERVICE_ROLE_KEY is not configured".to_owned(),
            }))
    }

    pub(super) async fn service_rpc<B: Serialize + ?Sized>(
        &self,
        function: &str,
        args: &B,
    ) -> Result<bytes::Bytes, SupabaseError> {
        let api = self.service_api()?;
        let request = self.service_bearer(
            api.request(Method::POST, &format!("/rpc/{function}"))
                .json(args),
        );
        service_call(api, request).await
    }

    /// Whether `event_id` was already recorded (a read: a redelivery must cause no write).
    pub async fn webhook_event_recorded(&self, event_id: &str) -> Result<bool, SupabaseError> {
        let api = self.service_api()?;
        let query = [
            ("select", "id".to_owned()),
            ("id", format!("eq.{event_id}")),
        ];
        let request =
            self.service_bearer(api.request(Method::GET, "/webhook_events").query(&query));
        let body = service_call(api, request).await?;
        let rows: Vec<serde_json::Value> = api.decode(&body)?;
        Ok(!rows.is_empty())
    }

    /// Records `event_id` (`record_webhook_event`); false when it was already there.
    pub async fn record_webhook_event(
        &self,
        event_id: &str,
        event_type: &str,
    ) -> Result<bool, SupabaseError> {
        let body = self
            .service_rpc(
                "record_webhook_event",
                &serde_json::json!({ "p_event_id": event_id, "p_event_type": event_type }),
            )
            .await?;
        Ok(self.service_api()?.decode(&body)?)
    }

    /// Links a user to their Stripe customer (`link_stripe_customer`, an upsert).
    pub async fn link_stripe_customer(
        &self,
        user_id: uuid::Uuid,
        stripe_customer_id: &str,
    ) -> Result<(), SupabaseError> {
        self.service_rpc(
            "link_stripe_customer",
            &serde_json::json!({
                "p_user_id": user_id,
                "p_stripe_customer_id": stripe_customer_id,
            }),
        )
        .await
        .map(drop)
    }

    /// Stores a subscription state unless a newer one is held (`apply_subscription_event`);
    /// true when stored, false when the event was older.
    pub async fn apply_subscription_event(
        &self,
        event: &SubscriptionEvent,
    ) -> Result<bool, SupabaseError> {
        let body = self.service_rpc("apply_subscription_event", event).await?;
        Ok(self.service_api()?.decode(&body)?)
    }

    /// Inserts a payment; a payment already stored (a redelivery) is left as it is.
    pub async fn record_payment(&self, payment: &Payment) -> Result<(), SupabaseError> {
        let api = self.service_api()?;
        let request = self.service_bearer(
            api.request(Method::POST, "/payments")
                .query(&[("on_conflict", "id")])
                .header("Prefer", "resolution=ignore-duplicates,return=minimal")
                .json(payment),
        );
        service_call(api, request).await.map(drop)
    }
}

/// A service-role PostgREST call: a 2xx body, or the error through the one table (so a
/// permanent data error such as 23505 is told apart from an outage by the caller).
pub(crate) async fn service_call(
    api: &JsonApi,
    request: Call,
) -> Result<bytes::Bytes, SupabaseError> {
    let res = api.send(request).await?;
    let status = res.status();
    let headers = res.headers().clone();
    let body = api.read_body(res).await?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(SupabaseError::rest(status, &headers, &body, false))
    }
}
