//! Writes the free plan's item limit (`business.free_item_limit`, `rules::plan`) into the
//! database, which enforces it on every insert: once at start-up, retried in the background
//! until it succeeds; `/ready` stays 503 until then.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::OnceCell;

use super::error::SupabaseError;
use super::{ReadyCheck, Supabase};
use crate::http_client::UpstreamError;
use crate::rules::plan::SUBSCRIBED_STATUSES;

/// First pause between attempts; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// The rule as the database stores it, in the argument names of `set_item_limit_rule`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ItemLimitRule {
    pub p_free_item_limit: u32,
    pub p_subscribed_statuses: [&'static str; 2],
}

impl ItemLimitRule {
    /// `business.free_item_limit`, with the statuses `rules::plan` counts as subscribed.
    pub fn new(free_item_limit: u32) -> Self {
        Self {
            p_free_item_limit: free_item_limit,
            p_subscribed_statuses: SUBSCRIBED_STATUSES,
        }
    }
}

impl Supabase {
    /// `POST /rest/v1/rpc/set_item_limit_rule` with the secret key (an idempotent upsert of
    /// the one rule row; `void`, so PostgREST answers 204).
    pub async fn write_item_limit_rule(&self, rule: &ItemLimitRule) -> Result<(), SupabaseError> {
        self.service_rpc("set_item_limit_rule", rule)
            .await
            .map(drop)
    }
}

/// The rule this instance declares, and whether the database holds it yet. Cloning shares
/// the state; concurrent attempts (the background task, `/ready`) make one call, not several.
#[derive(Clone, Debug)]
pub struct ItemLimitSync {
    rule: ItemLimitRule,
    written: Arc<OnceCell<()>>,
}

impl ItemLimitSync {
    pub fn new(rule: ItemLimitRule) -> Self {
        Self {
            rule,
            written: Arc::new(OnceCell::new()),
        }
    }

    /// Writes the rule unless that already succeeded (then no call is made).
    pub async fn ensure(&self, supabase: &Supabase) -> Result<(), SupabaseError> {
        self.written
            .get_or_try_init(|| supabase.write_item_limit_rule(&self.rule))
            .await
            .map(drop)
    }

    /// Tries now and, on failure, again after 1 s, 2 s, 4 s, … (at most 30 s apart) until it
    /// succeeds. Needs a Tokio runtime; without one (a synchronous caller) nothing starts and
    /// the first `/ready` writes the rule.
    pub fn spawn(&self, supabase: &Supabase) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        if supabase.rest_service.is_none() {
            tracing::warn!(
                "no secret key (SUPABASE_SERVICE_ROLE_KEY): business.free_item_limit cannot be \
                 written to the database, which keeps the limit it holds; /ready answers 503"
            );
            return;
        }
        let (sync, supabase) = (self.clone(), supabase.clone());
        tokio::spawn(async move {
            let mut pause = FIRST_RETRY;
            while let Err(e) = sync.ensure(&supabase).await {
                tracing::warn!(
                    "the free plan's item limit is not written to the database yet \
                     (retrying in {}s; /ready answers 503 until then): {e}",
                    pause.as_secs()
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_RETRY);
            }
            tracing::info!(
                free_item_limit = sync.rule.p_free_item_limit,
                "the free plan's item limit is written to the database"
            );
        });
    }

    /// The readiness check: written already, or written by this attempt.
    pub async fn check(&self, supabase: &Supabase) -> ReadyCheck {
        if supabase.rest_service.is_none() {
            return ReadyCheck {
                ok: false,
                status: None,
                error: Some("no secret key configured (SUPABASE_SERVICE_ROLE_KEY)".to_owned()),
            };
        }
        match self.ensure(supabase).await {
            Ok(()) => ReadyCheck {
                ok: true,
                status: None,
                error: None,
            },
            Err(e) => ReadyCheck {
                ok: false,
                status: match &e {
                    SupabaseError::Rest(r) => Some(r.status.as_u16()),
                    SupabaseError::Transport(_) => None,
                },
                error: Some(why_not_written(&e)),
            },
        }
    }
}

/// A short reason for `/ready`: no upstream text, no key.
fn why_not_written(e: &SupabaseError) -> String {
    match e {
        SupabaseError::Transport(UpstreamError::Timeout { .. }) => "timed out".to_owned(),
        SupabaseError::Transport(UpstreamError::Unavailable { .. }) => "unreachable".to_owned(),
        SupabaseError::Transport(_) => "unusable answer".to_owned(),
        SupabaseError::Rest(r) => format!(
            "set_item_limit_rule answered {} {}",
            r.status.as_u16(),
            r.code.as_deref().unwrap_or("")
        )
        .trim_end()
        .to_owned(),
    }
}
