//! Reading billing state (the `subscriptions` table) as the signed-in user, so RLS decides
//! what is visible. Both `GET /api/billing/subscription` and the items plan limit use this.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::Supabase;
use crate::auth::AuthUser;
use crate::http_client::{bearer, UpstreamError};

/// A subscription as stored from Stripe events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionState {
    pub status: String,
    pub price_id: Option<String>,
    pub current_period_end: Option<String>,
    pub cancel_at_period_end: bool,
}

impl SubscriptionState {
    /// Statuses that grant the paid plan: Stripe's `active` and `trialing`.
    pub fn is_active(&self) -> bool {
        matches!(self.status.as_str(), "active" | "trialing")
    }
}

impl Supabase {
    /// The caller's most relevant subscription: an active one if any, else the latest.
    pub async fn subscription_of(
        &self,
        user: &AuthUser,
    ) -> Result<Option<SubscriptionState>, UpstreamError> {
        let query = [
            (
                "select",
                "status,price_id,current_period_end,cancel_at_period_end".to_owned(),
            ),
            ("user_id", format!("eq.{}", user.id)),
            ("order", "stripe_event_created.desc".to_owned()),
            ("limit", "10".to_owned()),
        ];
        let request = bearer(
            self.rest
                .request(Method::GET, "/subscriptions")
                .query(&query),
            user.token(),
        );
        let rows: Vec<SubscriptionState> = self.rest.json(request).await?;
        let active = rows.iter().find(|s| s.is_active()).cloned();
        Ok(active.or_else(|| rows.into_iter().next()))
    }
}
