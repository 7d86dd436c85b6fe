//! What every handler can reach: settings and the upstream clients, built once at start-up.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::cookie::SessionCookie;
use crate::auth::refresh::Refresher;
use crate::auth::session_check::SessionChecks;
use crate::auth::verify::Verifier;
use crate::checked::{Aal2Routes, Checked, RouteSet};
use crate::config::{CacheStore, RateLimitStore, Settings};
use crate::rate_limit::Limiter;
use crate::redis_conn::RedisConn;
use crate::supabase::item_limit::{ItemLimitRule, ItemLimitSync};
use crate::supabase::Supabase;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub supabase: Supabase,
    pub verifier: Arc<Verifier>,
    /// The `[[rate_limit.rules]]`, their store, and the client-IP rule.
    pub limiter: Arc<Limiter>,
    pub session_cookie: Arc<SessionCookie>,
    /// Server-side refreshes of cookie sessions, one per refresh token at a time.
    pub refresher: Arc<Refresher>,
    /// `business.free_item_limit`, written into the database that enforces it.
    pub item_limit: ItemLimitSync,
    /// `sign_in.aal2_routes`, parsed once.
    pub aal2_routes: Arc<Aal2Routes>,
    /// Registered as its own app data too: its middleware needs nothing else of the state.
    pub read_cache: Arc<crate::read_cache::ReadCache>,
    /// `auth.check_session_routes`, parsed once, and the sessions Auth confirmed.
    pub session_routes: Arc<RouteSet>,
    pub session_checks: Arc<SessionChecks>,
}

impl AppState {
    /// The state for `settings`, with what `server::check` made of them.
    pub fn new(settings: Settings, checked: Checked) -> anyhow::Result<Self> {
        let supabase = Supabase::new(&settings)?;
        let api_keys = crate::auth::api_key::ApiKeys::new(&settings, &supabase)?;
        let issuers = crate::auth::issuers::from_settings(
            &settings.auth,
            Some(supabase.http_client()),
            settings.upstream.max_body_bytes,
        )?;
        let verifier = Arc::new(
            Verifier::new(&settings, Some(supabase.gotrue.clone()))
                .with_api_keys(api_keys)
                .with_issuers(issuers),
        );
        // Loads the signing keys in the background: start-up never waits for Supabase.
        verifier.spawn_refresh();
        let item_limit = ItemLimitSync::new(ItemLimitRule::new(settings.business.free_item_limit));
        // Writes the rule in the background: start-up never waits for Supabase.
        item_limit.spawn(&supabase);
        let session_cookie = Arc::new(SessionCookie::from_settings(&settings));
        // One connection for every use of Redis in this instance.
        let redis = if settings.rate_limit.store == RateLimitStore::Redis
            || settings.cache.store == CacheStore::Redis
        {
            let rl = &settings.rate_limit;
            Some(Arc::new(
                RedisConn::new(
                    rl.redis_url.expose(),
                    Duration::from_millis(rl.redis_timeout_ms.max(1)),
                )
                .map_err(|e| anyhow::anyhow!("rate_limit.redis_url (REDIS_URL): {e}"))?,
            ))
        } else {
            None
        };
        let limiter = Arc::new(Limiter::new(
            &settings,
            redis.clone(),
            checked.rules,
            Arc::clone(&verifier),
            Arc::clone(&session_cookie),
        )?);
        let refresher = Arc::new(Refresher::new(Duration::from_secs(
            settings.auth.refresh_reuse_secs,
        )));
        let settings_cache = settings.cache.clone();
        let settings_session_secs = settings.auth.session_check_secs;
        Ok(Self {
            refresher,
            settings: Arc::new(settings),
            supabase,
            verifier,
            limiter,
            session_cookie,
            item_limit,
            aal2_routes: Arc::new(checked.aal2_routes),
            session_routes: Arc::new(checked.session_routes),
            session_checks: Arc::new(SessionChecks::new(settings_session_secs)),
            read_cache: Arc::new(crate::read_cache::ReadCache::new(
                &settings_cache,
                &checked.cache_routes,
                redis,
            )),
        })
    }

    /// `user_id`'s sessions or keys changed through supagate (logout, a new password, the
    /// account deleted): what was confirmed about them is forgotten at once.
    pub fn forget_user(&self, user_id: uuid::Uuid) {
        self.session_checks.evict_user(user_id);
        if let Some(keys) = self.verifier.api_keys() {
            keys.evict_user(user_id);
        }
    }
}
