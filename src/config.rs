//! Typed settings: `config/default.toml`, then the `APP_ENV` overlay, then environment
//! variables (the names Next.js `.env` files already use, then `SUPAGATE_*`), validated once.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

/// A secret value: `Debug`, `Display` and `Serialize` all print `[REDACTED]`, so a secret
/// cannot reach a log line or `check-config` output by accident. Use [`Secret::expose`] at
/// the one place the raw value is needed (an outbound header, an HMAC key).
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub(crate) fn is_blank(&self) -> bool {
        self.expose().trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[REDACTED]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// Which overlay was applied; also decides defaults such as the `Secure` cookie flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppEnv {
    Development,
    Test,
    Production,
}

impl AppEnv {
    fn parse(raw: &str) -> Result<Self, ConfigError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "" | "development" | "dev" => Ok(Self::Development),
            "test" => Ok(Self::Test),
            "production" | "prod" => Ok(Self::Production),
            other => Err(ConfigError::invalid(
                "APP_ENV",
                format!("`{other}` is not one of development, test, production"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Test => "test",
            Self::Production => "production",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default = "default_env")]
    pub app_env: AppEnv,
    pub server: ServerSettings,
    pub cors: CorsSettings,
    pub supabase: SupabaseSettings,
    pub upstream: UpstreamSettings,
    pub auth: AuthSettings,
    pub cookies: CookieSettings,
    pub rate_limit: RateLimitSettings,
    pub business: BusinessSettings,
    #[serde(default)]
    pub sign_in: SignInSettings,
    pub stripe: StripeSettings,
    pub metrics: MetricsSettings,
    #[serde(default)]
    pub worker: WorkerSettings,
    #[serde(default)]
    pub jobs: JobsSettings,
    #[serde(default)]
    pub cache: CacheSettings,
    #[serde(default)]
    pub idempotency: IdempotencySettings,
    #[serde(default)]
    pub storage: crate::rules::files::StorageSettings,
    #[serde(default)]
    pub functions: crate::supabase::functions::FunctionsSettings,
}

/// `[idempotency]`: how long an `Idempotency-Key` and its stored answer are kept.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencySettings {
    /// After this a key counts as new again; `supagate worker` prunes older ones.
    pub key_ttl_secs: u32,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        Self {
            key_ttl_secs: 24 * 60 * 60,
        }
    }
}

/// `[cache]`: answers of chosen `GET` routes kept in memory, per who is asking (see
/// `read_cache` and docs/scaling.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// Where the answers live: `"memory"` (this process) or `"redis"` (every instance, over
    /// `rate_limit.redis_url`).
    #[serde(default)]
    pub store: CacheStore,
    /// The bodies held in memory, in bytes, over every route; the least used go first.
    #[serde(default = "default_cache_max_bytes")]
    pub max_bytes: u64,
    /// Checked against the route table where the app is built (`server::check`).
    #[serde(default)]
    pub routes: Vec<CacheRoute>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            store: CacheStore::default(),
            max_bytes: default_cache_max_bytes(),
            routes: Vec::new(),
        }
    }
}

fn default_cache_max_bytes() -> u64 {
    16 * 1024 * 1024
}

/// `[[cache.routes]]`: one `GET` route template, how long its answers are kept, and whose
/// they are.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRoute {
    /// `"/api/categories/{id}"`, as /openapi.json lists it; `GET` is implied.
    pub route: String,
    pub ttl_secs: u64,
    /// `"role"`: every caller of a database role sees the same rows (public data);
    /// `"user"`: one entry per signed-in user.
    pub key: CacheKey,
}

/// Where cached answers live (see docs/scaling.md for what each lets go stale).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheStore {
    /// This process, bounded by `max_bytes`; a write through another instance shows here
    /// after at most the route's TTL.
    #[default]
    Memory,
    /// Redis, shared by every instance: a write through any of them drops the entries at once.
    Redis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheKey {
    Role,
    User,
}

/// `supagate worker`: how queues are consumed (see `jobs::worker`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    pub concurrency: usize,
    pub poll_interval_ms: u64,
    pub shutdown_timeout_secs: u64,
    /// `host:port` for the worker's `/metrics`; empty: not served.
    pub metrics_listen: String,
    /// Per queue; a handler whose queue is not listed here uses [`QueueSettings::default`].
    pub queues: std::collections::BTreeMap<String, QueueSettings>,
    /// Archived messages and dead letters older than this are deleted.
    #[serde(default = "default_history_retention_secs")]
    pub history_retention_secs: u32,
    /// How often the worker prunes queue history and expired idempotency keys; 0: never.
    #[serde(default = "default_housekeeping_interval_secs")]
    pub housekeeping_interval_secs: u64,
}

fn default_history_retention_secs() -> u32 {
    30 * 24 * 60 * 60
}

fn default_housekeeping_interval_secs() -> u64 {
    60 * 60
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 8,
            poll_interval_ms: 500,
            shutdown_timeout_secs: 30,
            metrics_listen: String::new(),
            queues: Default::default(),
            history_retention_secs: default_history_retention_secs(),
            housekeeping_interval_secs: default_housekeeping_interval_secs(),
        }
    }
}

impl WorkerSettings {
    pub fn queue(&self, name: &str) -> QueueSettings {
        self.queues.get(name).cloned().unwrap_or_default()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// A read message is invisible to other reads this long; the handler must finish in it.
    pub visibility_timeout_secs: u32,
    /// Attempts (reads) before the message goes to `<queue>_dlq`.
    pub max_attempts: u32,
    pub backoff_base_secs: u32,
    pub backoff_max_secs: u32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            visibility_timeout_secs: 30,
            max_attempts: 5,
            backoff_base_secs: 5,
            backoff_max_secs: 3600,
        }
    }
}

/// Settings of the job handlers themselves.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsSettings {
    #[serde(default)]
    pub user_registered: UserRegisteredSettings,
}

/// `user.registered`: the external API told about each new user.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRegisteredSettings {
    /// Empty: the job is off (nothing enqueued, queue not consumed).
    pub url: String,
    pub api_key: Secret,
    pub timeout_ms: u64,
}

impl Default for UserRegisteredSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            api_key: empty_secret(),
            timeout_ms: 5000,
        }
    }
}

impl UserRegisteredSettings {
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    pub enabled: bool,
    /// Empty: `/metrics` is served on the main listener. `host:port`: only there, so the
    /// metrics need not be public.
    pub listen: String,
}

fn default_env() -> AppEnv {
    AppEnv::Development
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    pub backlog: u32,
    pub max_connections: usize,
    pub body_limit_bytes: usize,
    pub webhook_body_limit_bytes: usize,
    pub shutdown_timeout_secs: u64,
    pub client_request_timeout_ms: u64,
    /// A request body must arrive within this from the end of its head (slow-body attacks).
    #[serde(default = "default_client_body_timeout_ms")]
    pub client_body_timeout_ms: u64,
    pub keep_alive_secs: u64,
    /// Peers whose `X-Forwarded-For` is believed (IPs or CIDRs).
    pub trusted_proxies: Vec<String>,
}

fn default_client_body_timeout_ms() -> u64 {
    10_000
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    pub allowed_origins: Vec<String>,
    pub max_age_secs: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupabaseSettings {
    pub url: String,
    pub anon_key: Secret,
    pub service_role_key: Option<Secret>,
    /// Overrides the project ref taken from the first DNS label of `url` (cookie name).
    pub project_ref: Option<String>,
    /// Whether Auth calls made for a client carry `Sb-Forwarded-For` (see
    /// [`Settings::client_ip_forwarding`]).
    #[serde(default)]
    pub forward_client_ip: ForwardClientIp,
}

/// `supabase.forward_client_ip`: how Auth learns the client's IP for its per-IP rate limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardClientIp {
    /// With an `sb_secret_` key configured, client Auth calls go with it and carry
    /// `Sb-Forwarded-For` (the hosted platform honours the header only with a secret key);
    /// without one, no header and per-client limits are reported off.
    #[default]
    Auto,
    /// The header with whichever key is configured: a self-hosted Auth started with
    /// `GOTRUE_SECURITY_SB_FORWARDED_FOR_ENABLED=true` honours it from any caller.
    SelfHosted,
    /// Never sent: Auth counts every client against supagate's own address.
    Off,
}

/// What [`Settings::client_ip_forwarding`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientIpForwarding {
    /// Client Auth calls go with the secret key and `Sb-Forwarded-For`.
    WithSecretKey,
    /// Client Auth calls go with the publishable key and `Sb-Forwarded-For`.
    SelfHosted,
    /// No header: every client shares supagate's Auth buckets (the reason says why).
    Off(&'static str),
}

impl ClientIpForwarding {
    pub fn is_on(self) -> bool {
        !matches!(self, Self::Off(_))
    }

    /// One line for the start-up warning, `check-config` and `/ready`.
    pub fn describe(self) -> String {
        match self {
            Self::WithSecretKey => "on: client Auth calls carry Sb-Forwarded-For with the sb_secret_ key (the project must have IP address forwarding enabled)".to_owned(),
            Self::SelfHosted => "on: client Auth calls carry Sb-Forwarded-For with the configured key (self-hosted Auth needs GOTRUE_SECURITY_SB_FORWARDED_FOR_ENABLED=true)".to_owned(),
            Self::Off(why) => format!("off: {why}; Auth counts every client against supagate's own address"),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub pool_idle_timeout_secs: u64,
    pub pool_max_idle_per_host: usize,
    /// Upstream calls in flight at once (and so pooled connections); more wait for a slot.
    pub max_connections: usize,
    /// Largest upstream body supagate buffers, and the cap on a streamed list body.
    pub max_body_bytes: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Legacy HS256 secret (`SUPABASE_JWT_SECRET`); HS256 tokens are refused without it.
    pub jwt_secret: Option<Secret>,
    pub verify_issuer: bool,
    /// Expected `iss`; empty means `{supabase.url}/auth/v1`.
    pub issuer: String,
    pub audience: String,
    pub leeway_secs: u64,
    pub jwks_refresh_interval_secs: u64,
    pub jwks_min_refetch_interval_secs: u64,
    /// Verified tokens remembered until their `exp` (0 disables the cache).
    pub token_cache_entries: usize,
    /// A cookie session whose access token expires within this is refreshed on the server
    /// (auth-js's `EXPIRY_MARGIN_MS` is 90 s).
    #[serde(default = "default_refresh_margin_secs")]
    pub refresh_margin_secs: u64,
    /// How long the outcome of a server-side refresh is reused for requests carrying the
    /// same refresh token (Auth's refresh-token reuse interval is 10 s on the platform).
    #[serde(default = "default_refresh_reuse_secs")]
    pub refresh_reuse_secs: u64,
    /// Operations (`"METHOD /template"`, as in /openapi.json) where the token's session must
    /// still exist at Auth (a revoked session is 401 at once, not at `exp`).
    #[serde(default)]
    pub check_session_routes: Vec<String>,
    /// How long a confirmed session is believed on those routes (revocation elsewhere than
    /// through supagate shows after at most this).
    #[serde(default = "default_session_check_secs")]
    pub session_check_secs: u64,
    #[serde(default)]
    pub api_keys: ApiKeySettings,
    /// `[[auth.issuers]]`: third-party issuers whose tokens are accepted besides Auth's.
    #[serde(default)]
    pub issuers: Vec<IssuerSettings>,
}

/// `[[auth.issuers]]`: an issuer the project trusts through Supabase's third-party auth
/// (Clerk, Auth0, Firebase Auth, Cognito, WorkOS, any OIDC provider). Its tokens are verified
/// like Auth's (keys by `kid`, one algorithm per key, the same caching) and forwarded to
/// PostgREST unchanged.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSettings {
    /// The tokens' `iss`, exactly.
    pub issuer: String,
    /// Where its JWKS is; empty: the `jwks_uri` of `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub jwks_url: String,
    /// The `aud` its tokens must carry (Firebase: the project id); empty: not checked.
    #[serde(default)]
    pub audience: String,
    /// The claim naming the Postgres role (`role`, which third-party auth also reads).
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// The claim holding the user's id (`sub`; Firebase also has `user_id`).
    #[serde(default = "default_user_id_claim")]
    pub user_id_claim: String,
}

fn default_role_claim() -> String {
    "role".to_owned()
}

fn default_user_id_claim() -> String {
    "sub".to_owned()
}

fn default_session_check_secs() -> u64 {
    10
}

/// `[auth.api_keys]`: keys users create for their own servers (docs/api-keys.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiKeySettings {
    /// Off: `Bearer sgk_...` is refused like any other bad token and `/api/keys` answers 404.
    pub enabled: bool,
    /// How a key's request reaches PostgREST as its owner: a short-lived token signed with
    /// the legacy HS256 secret, or by supagate itself as a third-party-auth issuer.
    pub signing: KeySigning,
    /// supagate's issuer URL as registered in the project's third-party auth (`https://...`,
    /// serving `/.well-known/openid-configuration`); `signing = "issuer"` only.
    pub issuer: String,
    /// PKCS#8 PEM of supagate's own P-256 signing key (`signing = "issuer"`).
    pub signing_key: Secret,
    /// A verified key is believed this long: the bound on how late a revocation made
    /// elsewhere than through this instance (or an expiry) takes effect.
    pub cache_secs: u64,
    /// Verified keys remembered (0 = every request looks its key up).
    pub cache_entries: usize,
}

impl Default for ApiKeySettings {
    fn default() -> Self {
        Self {
            enabled: false,
            signing: KeySigning::Auto,
            issuer: String::new(),
            signing_key: empty_secret(),
            cache_secs: 30,
            cache_entries: 4096,
        }
    }
}

/// `auth.api_keys.signing`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySigning {
    /// `hs256` when `auth.jwt_secret` is set, else `issuer`.
    #[default]
    Auto,
    /// Tokens signed with the legacy secret (projects that still have one).
    Hs256,
    /// Tokens signed with `signing_key`; the project trusts supagate as a third-party issuer.
    Issuer,
}

impl ApiKeySettings {
    /// What `auto` comes to.
    pub fn effective_signing(&self, auth: &AuthSettings) -> KeySigning {
        match self.signing {
            KeySigning::Auto if auth.jwt_secret.is_some() => KeySigning::Hs256,
            KeySigning::Auto => KeySigning::Issuer,
            other => other,
        }
    }
}

fn default_refresh_margin_secs() -> u64 {
    90
}

fn default_refresh_reuse_secs() -> u64 {
    10
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookieSettings {
    pub enabled: bool,
    pub http_only: bool,
    /// `None` means: `Secure` everywhere except `development`.
    pub secure: Option<bool>,
    pub domain: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Off: no rule is applied (the rules are still checked at start-up).
    pub enabled: bool,
    #[serde(default)]
    pub store: RateLimitStore,
    /// `redis://[:password@]host:port[/db]` (`REDIS_URL`); a secret, it may carry a password.
    #[serde(default = "empty_secret")]
    pub redis_url: Secret,
    #[serde(default)]
    pub on_store_error: OnStoreError,
    /// One decision may wait this long for Redis before `on_store_error` applies.
    #[serde(default = "default_redis_timeout_ms")]
    pub redis_timeout_ms: u64,
    /// Checked against the route table where the app is built (`server::check`).
    #[serde(default)]
    pub rules: Vec<RateLimitRule>,
}

/// `[[rate_limit.rules]]`: which operations, counted per what, at which rate.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRule {
    /// `"METHOD /route/{template}"`, as the OpenAPI document lists them.
    pub routes: Vec<String>,
    /// `"ip"` or `"user"` (anonymous callers fall back to their IP).
    pub key: String,
    pub per_minute: u32,
    /// Requests that may arrive at once; defaults to `per_minute`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

/// Where the counters live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitStore {
    /// This process only: each instance counts on its own.
    #[default]
    Memory,
    /// Shared by every instance.
    Redis,
}

/// What a limited request gets when the store cannot answer in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStoreError {
    /// Served, unlimited (a broken limiter must not lock every user out).
    #[default]
    Allow,
    /// 503 `upstream_unavailable`.
    Deny,
}

fn empty_secret() -> Secret {
    Secret::new("")
}

fn default_redis_timeout_ms() -> u64 {
    250
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessSettings {
    pub free_item_limit: u32,
    /// Anonymous sign-ins may write (create items, edit their profile). Off: 403
    /// `anonymous_not_allowed`. The RLS policies read the same switch from
    /// `private.settings` (see the anonymous migration); set both together.
    #[serde(default)]
    pub allow_anonymous_writes: bool,
}

/// `[sign_in]`: OAuth sign-in through Supabase Auth (PKCE).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignInSettings {
    /// Providers `/api/auth/oauth/{provider}` accepts, by Auth's names (`github`, `google`,
    /// ...); each must be enabled in the Supabase project too. Empty: OAuth is off.
    pub oauth_providers: Vec<String>,
    /// supagate's origin as browsers reach it (`https://app.example.com` behind the Next.js
    /// rewrite). Auth sends the browser back to `{public_url}/api/auth/callback`, which must be
    /// in the project's redirect allow list.
    pub public_url: String,
    /// Supabase's URL as browsers reach it, when it differs from `supabase.url` (a private
    /// address inside a cluster). Empty: `supabase.url`.
    pub supabase_public_url: String,
    /// Lifetime of the code-verifier cookie (Auth's flow state lives 300 s by default).
    pub code_verifier_max_age_secs: u64,
    /// Operations (`"METHOD /template"`, as in /openapi.json) that need an `aal2` session:
    /// an `aal1` caller gets 403 `mfa_required`.
    pub aal2_routes: Vec<String>,
    /// Off (default): a user with no verified factor passes an `aal2` route (nothing to step
    /// up with; Auth is asked). On: such a user is refused too.
    pub aal2_requires_factor: bool,
}

impl Default for SignInSettings {
    fn default() -> Self {
        Self {
            oauth_providers: Vec::new(),
            public_url: String::new(),
            supabase_public_url: String::new(),
            code_verifier_max_age_secs: 600,
            aal2_routes: Vec::new(),
            aal2_requires_factor: false,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeSettings {
    /// Comma-separated in the environment so a rotated secret and its successor both verify.
    #[serde(deserialize_with = "secret_list")]
    pub webhook_secrets: Vec<Secret>,
    pub tolerance_secs: u64,
    #[serde(default)]
    pub processing: StripeProcessing,
}

/// Where a verified Stripe event's effects are applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StripeProcessing {
    /// Recorded and put on the `stripe_events` queue in one transaction, then acknowledged;
    /// `supagate worker` applies it.
    #[default]
    Queue,
    /// Applied before the answer (projects without Supabase Queues).
    Inline,
}

fn secret_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let raw = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(str::to_owned).collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(raw
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .map(Secret::new)
        .collect())
}

/// A configuration problem, reported at start-up as one line naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {setting}: {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

impl ConfigError {
    pub(crate) fn invalid(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            problem: problem.into(),
        }
    }
}

/// Environment variable → settings key. Later entries win, so the canonical name beats the
/// `NEXT_PUBLIC_` alias a Next.js `.env` file may also carry.
const ENV_ALIASES: &[(&str, &str)] = &[
    ("NEXT_PUBLIC_SUPABASE_URL", "supabase.url"),
    ("SUPABASE_URL", "supabase.url"),
    ("NEXT_PUBLIC_SUPABASE_ANON_KEY", "supabase.anon_key"),
    ("NEXT_PUBLIC_SUPABASE_PUBLISHABLE_KEY", "supabase.anon_key"),
    ("SUPABASE_ANON_KEY", "supabase.anon_key"),
    ("SUPABASE_PUBLISHABLE_KEY", "supabase.anon_key"),
    ("SUPABASE_SECRET_KEY", "supabase.service_role_key"),
    ("SUPABASE_SERVICE_ROLE_KEY", "supabase.service_role_key"),
    ("SUPABASE_JWT_SECRET", "auth.jwt_secret"),
    ("STRIPE_WEBHOOK_SECRET", "stripe.webhook_secrets"),
    ("HOST", "server.host"),
    ("PORT", "server.port"),
    ("REDIS_URL", "rate_limit.redis_url"),
];

/// How a Supabase secret API key begins (the new key format; legacy keys are JWTs).
pub const SECRET_KEY_PREFIX: &str = "sb_secret_";

/// Prefix for every other setting: `SUPAGATE_SERVER__BODY_LIMIT_BYTES=1024`.
pub const ENV_PREFIX: &str = "SUPAGATE_";

/// Environment variable names shown next to a setting in error messages.
fn env_names_for(key: &str) -> String {
    let mut names: Vec<String> = ENV_ALIASES
        .iter()
        .rev()
        .filter(|(_, k)| *k == key)
        .map(|(env, _)| (*env).to_owned())
        .collect();
    names.push(format!(
        "{ENV_PREFIX}{}",
        key.replace('.', "__").to_ascii_uppercase()
    ));
    format!("{key} ({})", names.join(" / "))
}

impl Settings {
    /// Loads settings from `config_dir` and the given environment (pass `std::env::vars()`
    /// in the binary; tests pass their own map so they never race on process state).
    pub fn load(config_dir: &Path, env: &HashMap<String, String>) -> Result<Settings, ConfigError> {
        let app_env = AppEnv::parse(env.get("APP_ENV").map(String::as_str).unwrap_or(""))?;
        // The defaults are compiled in, so the binary runs from any directory; files in the
        // config directory are an overlay. A directory named explicitly must exist.
        if env.contains_key("SUPAGATE_CONFIG_DIR") && !config_dir.is_dir() {
            return Err(ConfigError::invalid(
                "SUPAGATE_CONFIG_DIR",
                format!("{} is not a directory", config_dir.display()),
            ));
        }
        let env_file = format!("{}.toml", app_env.as_str());
        let mut figment = Figment::new()
            .merge(Toml::string(DEFAULT_TOML))
            .merge(Toml::string(compiled_env_file(app_env)))
            .merge(Toml::file(config_dir.join("default.toml")))
            .merge(Toml::file(config_dir.join(env_file)))
            .merge(Serialized::default("app_env", app_env));

        // Prefixed names first, so the well-known names (which users set by habit) win.
        let mut prefixed: Vec<(&String, &String)> = env
            .iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.as_str() != "SUPAGATE_CONFIG_DIR")
            .collect();
        prefixed.sort();
        for (name, value) in prefixed {
            let key = name[ENV_PREFIX.len()..]
                .to_ascii_lowercase()
                .replace("__", ".");
            figment = figment.merge(Serialized::default(&key, env_value(&key, value)));
        }
        for (name, key) in ENV_ALIASES {
            if let Some(value) = env.get(*name) {
                figment = figment.merge(Serialized::default(key, env_value(key, value)));
            }
        }

        let settings: Settings = figment.extract().map_err(|e| {
            let key = e.path.join(".");
            let setting = if key.is_empty() {
                "config".to_owned()
            } else {
                env_names_for(&key)
            };
            ConfigError::invalid(setting, e.kind.to_string())
        })?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let url_setting = || env_names_for("supabase.url");
        if self.supabase.url.trim().is_empty() {
            return Err(ConfigError::invalid(url_setting(), "missing"));
        }
        let url = Url::parse(&self.supabase.url)
            .map_err(|e| ConfigError::invalid(url_setting(), format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ConfigError::invalid(
                url_setting(),
                "must be an http(s) URL with a host",
            ));
        }
        if self.supabase.anon_key.is_blank() {
            return Err(ConfigError::invalid(
                env_names_for("supabase.anon_key"),
                "missing",
            ));
        }
        if self.server.body_limit_bytes == 0 || self.server.webhook_body_limit_bytes == 0 {
            return Err(ConfigError::invalid(
                "server.body_limit_bytes",
                "must be greater than 0",
            ));
        }
        if self.upstream.request_timeout_ms == 0 || self.upstream.connect_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "upstream.request_timeout_ms",
                "timeouts must be greater than 0",
            ));
        }
        if self.rate_limit.store == RateLimitStore::Redis && self.rate_limit.redis_url.is_blank() {
            return Err(ConfigError::invalid(
                env_names_for("rate_limit.redis_url"),
                "missing (rate_limit.store is \"redis\")",
            ));
        }
        if self.cache.store == CacheStore::Redis && self.rate_limit.redis_url.is_blank() {
            return Err(ConfigError::invalid(
                env_names_for("rate_limit.redis_url"),
                "missing (cache.store is \"redis\")",
            ));
        }
        self.validate_worker()?;
        self.validate_sign_in()?;
        // The database takes both as an `integer` of seconds.
        if !(1..=i32::MAX as u32).contains(&self.idempotency.key_ttl_secs) {
            return Err(ConfigError::invalid(
                "idempotency.key_ttl_secs",
                "must be between 1 and 2147483647",
            ));
        }
        if !(1..=i32::MAX as u32).contains(&self.worker.history_retention_secs) {
            return Err(ConfigError::invalid(
                "worker.history_retention_secs",
                "must be between 1 and 2147483647",
            ));
        }
        self.validate_api_keys()?;
        self.validate_issuers()?;
        self.storage.validate()?;
        self.functions.validate()?;
        for proxy in &self.server.trusted_proxies {
            parse_ip_net(proxy).ok_or_else(|| {
                ConfigError::invalid(
                    env_names_for("server.trusted_proxies"),
                    format!("`{proxy}` is not an IP address or CIDR"),
                )
            })?;
        }
        Ok(())
    }

    fn validate_worker(&self) -> Result<(), ConfigError> {
        if self.worker.concurrency == 0 {
            return Err(ConfigError::invalid(
                "worker.concurrency",
                "must be greater than 0",
            ));
        }
        for (name, q) in &self.worker.queues {
            if q.visibility_timeout_secs == 0 || q.max_attempts == 0 {
                return Err(ConfigError::invalid(
                    format!("worker.queues.{name}"),
                    "visibility_timeout_secs and max_attempts must be greater than 0",
                ));
            }
        }
        let job = &self.jobs.user_registered;
        if job.enabled() {
            let url = Url::parse(&job.url).map_err(|e| {
                ConfigError::invalid("jobs.user_registered.url", format!("not a URL ({e})"))
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ConfigError::invalid(
                    "jobs.user_registered.url",
                    "must be an http(s) URL",
                ));
            }
        }
        Ok(())
    }

    fn validate_issuers(&self) -> Result<(), ConfigError> {
        let own = self.expected_issuer();
        for (i, issuer) in self.auth.issuers.iter().enumerate() {
            let setting = |field: &str| format!("auth.issuers[{i}].{field}");
            // Plain http only outside production (a local provider, the test suite).
            let acceptable = |raw: &str| {
                Url::parse(raw).is_ok_and(|u| {
                    u.host_str().is_some()
                        && (u.scheme() == "https"
                            || (u.scheme() == "http" && self.app_env != AppEnv::Production))
                })
            };
            if !acceptable(issuer.issuer.trim()) {
                return Err(ConfigError::invalid(
                    setting("issuer"),
                    "must be the issuer's https URL, as its tokens' `iss` names it",
                ));
            }
            if issuer.issuer.trim() == own {
                return Err(ConfigError::invalid(
                    setting("issuer"),
                    "is Supabase Auth's own issuer, which is always accepted",
                ));
            }
            if self.auth.issuers[..i]
                .iter()
                .any(|other| other.issuer.trim() == issuer.issuer.trim())
            {
                return Err(ConfigError::invalid(setting("issuer"), "is listed twice"));
            }
            if !issuer.jwks_url.trim().is_empty() && !acceptable(issuer.jwks_url.trim()) {
                return Err(ConfigError::invalid(
                    setting("jwks_url"),
                    "must be an https URL (or empty: OIDC discovery)",
                ));
            }
            if issuer.role_claim.trim().is_empty() || issuer.user_id_claim.trim().is_empty() {
                return Err(ConfigError::invalid(
                    setting("role_claim"),
                    "role_claim and user_id_claim must name a claim",
                ));
            }
        }
        Ok(())
    }

    fn validate_api_keys(&self) -> Result<(), ConfigError> {
        let keys = &self.auth.api_keys;
        if !keys.enabled {
            return Ok(());
        }
        if self.supabase.service_role_key.is_none() {
            return Err(ConfigError::invalid(
                "auth.api_keys.enabled",
                "keys are looked up with the secret key: set SUPABASE_SECRET_KEY (or SUPABASE_SERVICE_ROLE_KEY)",
            ));
        }
        if keys.cache_secs == 0 || keys.cache_secs > 3600 {
            return Err(ConfigError::invalid(
                "auth.api_keys.cache_secs",
                "must be between 1 and 3600",
            ));
        }
        match keys.effective_signing(&self.auth) {
            KeySigning::Hs256 if self.auth.jwt_secret.is_none() => Err(ConfigError::invalid(
                "auth.api_keys.signing",
                "\"hs256\" needs the legacy secret (SUPABASE_JWT_SECRET)",
            )),
            KeySigning::Issuer => {
                let https = Url::parse(keys.issuer.trim()).is_ok_and(|u| {
                    u.scheme() == "https" && u.host_str().is_some() && u.query().is_none()
                });
                if !https {
                    return Err(ConfigError::invalid(
                        "auth.api_keys.issuer",
                        "must be supagate's https URL as registered in the project's third-party auth",
                    ));
                }
                if keys.signing_key.is_blank() {
                    return Err(ConfigError::invalid(
                        env_names_for("auth.api_keys.signing_key"),
                        "missing: a PKCS#8 PEM P-256 key (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256)",
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn validate_sign_in(&self) -> Result<(), ConfigError> {
        let sign_in = &self.sign_in;
        if sign_in.oauth_providers.is_empty() {
            return Ok(());
        }
        for provider in &sign_in.oauth_providers {
            if provider.is_empty()
                || !provider
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            {
                return Err(ConfigError::invalid(
                    "sign_in.oauth_providers",
                    format!("`{provider}` is not a provider name (a-z, 0-9, _ and -)"),
                ));
            }
        }
        let is_origin = |raw: &str| {
            Url::parse(raw).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https") && u.host_str().is_some() && u.path() == "/"
            })
        };
        if !is_origin(&sign_in.public_url) {
            return Err(ConfigError::invalid(
                "sign_in.public_url",
                "must be supagate's public origin (http(s)://host[:port]) when oauth_providers is set",
            ));
        }
        if !sign_in.supabase_public_url.is_empty() && !is_origin(&sign_in.supabase_public_url) {
            return Err(ConfigError::invalid(
                "sign_in.supabase_public_url",
                "must be an http(s) origin",
            ));
        }
        if !self.cookies.enabled {
            return Err(ConfigError::invalid(
                "sign_in.oauth_providers",
                "OAuth sign-in ends in a cookie session: set cookies.enabled = true",
            ));
        }
        Ok(())
    }

    /// Where browsers go for Supabase Auth's `/authorize`.
    pub fn supabase_public_base(&self) -> &str {
        match self.sign_in.supabase_public_url.trim_end_matches('/') {
            "" => self.supabase_base(),
            url => url,
        }
    }

    /// `{url}` without a trailing slash.
    pub fn supabase_base(&self) -> &str {
        self.supabase.url.trim_end_matches('/')
    }

    /// The `iss` tokens must carry.
    pub fn expected_issuer(&self) -> String {
        if self.auth.issuer.trim().is_empty() {
            format!("{}/auth/v1", self.supabase_base())
        } else {
            self.auth.issuer.clone()
        }
    }

    /// `sb-<ref>-auth-token`, as `@supabase/ssr` names it: the first DNS label of the URL.
    pub fn session_cookie_name(&self) -> String {
        let project_ref = match &self.supabase.project_ref {
            Some(r) if !r.trim().is_empty() => r.trim().to_owned(),
            _ => Url::parse(&self.supabase.url)
                .ok()
                .and_then(|u| {
                    u.host_str()
                        .map(|h| h.split('.').next().unwrap_or(h).to_owned())
                })
                .unwrap_or_default(),
        };
        format!("sb-{project_ref}-auth-token")
    }

    pub fn cookie_secure(&self) -> bool {
        self.cookies
            .secure
            .unwrap_or(self.app_env != AppEnv::Development)
    }

    /// Whether Auth's per-IP limits can count each client. The hosted platform honours
    /// `Sb-Forwarded-For` only on a call made with a secret `sb_secret_` key (Supabase's
    /// rate-limit guide, "IP address forwarding"): publishable and legacy JWT keys are not
    /// supported there, so `auto` sends it only when such a key is configured.
    pub fn client_ip_forwarding(&self) -> ClientIpForwarding {
        let secret = self
            .supabase
            .service_role_key
            .as_ref()
            .is_some_and(|k| k.expose().starts_with(SECRET_KEY_PREFIX));
        match self.supabase.forward_client_ip {
            ForwardClientIp::Off => ClientIpForwarding::Off("supabase.forward_client_ip is \"off\""),
            ForwardClientIp::SelfHosted => ClientIpForwarding::SelfHosted,
            ForwardClientIp::Auto if secret => ClientIpForwarding::WithSecretKey,
            ForwardClientIp::Auto => ClientIpForwarding::Off(
                "no sb_secret_ key is configured (SUPABASE_SECRET_KEY), and Auth honours Sb-Forwarded-For only with one",
            ),
        }
    }

    /// The effective configuration as TOML with every secret shown as `[REDACTED]`, and
    /// what the settings come to where that is not obvious from them.
    pub fn to_redacted_toml(&self) -> String {
        format!(
            "# per-client Auth rate limits: {}\n{}",
            self.client_ip_forwarding().describe(),
            toml_string(self)
        )
    }
}

fn toml_string(settings: &Settings) -> String {
    toml::to_string_pretty(settings).unwrap_or_else(|e| format!("# unprintable: {e}"))
}

/// `raw` as a TOML array of strings (`["a", 'b']`, JSON's form included), if it is one.
fn toml_string_array(raw: &str) -> Option<Vec<String>> {
    let table: toml::Table = toml::from_str(&format!("v = {raw}")).ok()?;
    table
        .get("v")?
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// Environment values are strings; numbers and booleans are parsed so `PORT=9000` fills a
/// `u16`, and list settings accept comma-separated values.
fn env_value(key: &str, raw: &str) -> serde_json::Value {
    use serde_json::Value;
    const LIST_KEYS: &[&str] = &[
        "cors.allowed_origins",
        "server.trusted_proxies",
        "sign_in.oauth_providers",
        "sign_in.aal2_routes",
        "auth.check_session_routes",
        "functions.allowed",
    ];
    if LIST_KEYS.contains(&key) {
        // A list is comma-separated; a TOML (or JSON) array, as in the config files, is read
        // as one too rather than split into pieces that name nothing (`["POST /api/items"`).
        if raw.trim_start().starts_with('[') {
            if let Some(items) = toml_string_array(raw) {
                return Value::Array(items.into_iter().map(Value::String).collect());
            }
        }
        return Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        );
    }
    if key == "stripe.webhook_secrets"
        || key == "rate_limit.redis_url"
        || key.ends_with("key")
        || key.ends_with("secret")
    {
        return Value::String(raw.to_owned());
    }
    match raw.trim() {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        t => t
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.to_owned())),
    }
}

/// An IP network from `1.2.3.4`, `1.2.3.0/24` or `::1`.
pub fn parse_ip_net(raw: &str) -> Option<(std::net::IpAddr, u8)> {
    let (addr, len) = match raw.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (raw, None),
    };
    let ip: std::net::IpAddr = addr.trim().parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l.trim().parse::<u8>().ok().filter(|l| *l <= max)?,
        None => max,
    };
    Some((ip, len))
}

/// `config/default.toml` as built: every setting with its default.
const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// `config/<APP_ENV>.toml` as built.
fn compiled_env_file(app_env: AppEnv) -> &'static str {
    match app_env {
        AppEnv::Development => include_str!("../config/development.toml"),
        AppEnv::Test => include_str!("../config/test.toml"),
        AppEnv::Production => include_str!("../config/production.toml"),
    }
}

/// Where the optional config overlay is: `SUPAGATE_CONFIG_DIR`, else `./config` (its files
/// override the compiled-in ones; without it the compiled-in ones serve alone).
pub fn config_dir(env: &HashMap<String, String>) -> PathBuf {
    env.get("SUPAGATE_CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("config"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_and_serialize_are_redacted() {
        let s = Secret::new("sb_secret_abc123");
        assert_eq!(format!("{s:?}"), "[REDACTED]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[REDACTED]\"");
        assert_eq!(s.expose(), "sb_secret_abc123");
    }

    #[test]
    fn ip_nets_parse_with_and_without_prefix() {
        assert!(parse_ip_net("10.0.0.0/8").is_some());
        assert!(parse_ip_net("::1").is_some());
        assert!(parse_ip_net("10.0.0.0/33").is_none());
        assert!(parse_ip_net("nope").is_none());
        assert!(parse_ip_net("10.0.0.0/").is_none());
    }

    #[test]
    fn a_bare_address_is_a_single_host_and_blanks_around_parts_are_ignored() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(parse_ip_net(" 192.0.2.1 "), Some((ip("192.0.2.1"), 32)));
        assert_eq!(parse_ip_net("::1"), Some((ip("::1"), 128)));
        assert_eq!(parse_ip_net("10.1.2.3 / 8"), Some((ip("10.1.2.3"), 8)));
    }

    #[test]
    fn webhooks_go_through_the_queue_unless_configured_inline() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut env = HashMap::new();
        let settings = Settings::load(&dir, &env).unwrap();
        assert_eq!(settings.stripe.processing, StripeProcessing::Queue);
        assert_eq!(settings.worker.queue("stripe_events").max_attempts, 8);
        assert!(!settings.jobs.user_registered.enabled());
        env.insert(
            "SUPAGATE_STRIPE__PROCESSING".to_owned(),
            "inline".to_owned(),
        );
        env.insert(
            "SUPAGATE_WORKER__QUEUES__STRIPE_EVENTS__MAX_ATTEMPTS".to_owned(),
            "3".to_owned(),
        );
        let settings = Settings::load(&dir, &env).unwrap();
        assert_eq!(settings.stripe.processing, StripeProcessing::Inline);
        assert_eq!(settings.worker.queue("stripe_events").max_attempts, 3);
    }

    #[test]
    fn a_user_registered_url_that_is_not_http_stops_start_up() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
        let env = HashMap::from([(
            "SUPAGATE_JOBS__USER_REGISTERED__URL".to_owned(),
            "ftp://mail.example".to_owned(),
        )]);
        let err = Settings::load(&dir, &env).unwrap_err();
        assert_eq!(err.setting, "jobs.user_registered.url");
    }

    #[test]
    fn third_party_issuers_are_checked_at_start_up_naming_the_entry() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
        let base = Settings::load(&dir, &HashMap::new()).unwrap();
        let issuer = |url: &str| IssuerSettings {
            issuer: url.to_owned(),
            jwks_url: String::new(),
            audience: String::new(),
            role_claim: "role".into(),
            user_id_claim: "sub".into(),
        };
        let mut s = base.clone();
        s.auth.issuers = vec![
            issuer("https://clerk.example"),
            issuer("https://clerk.example"),
        ];
        assert_eq!(s.validate().unwrap_err().setting, "auth.issuers[1].issuer");
        let mut s = base.clone();
        s.auth.issuers = vec![issuer(&s.expected_issuer())];
        assert_eq!(s.validate().unwrap_err().setting, "auth.issuers[0].issuer");
        let mut s = base.clone();
        s.app_env = AppEnv::Production;
        s.auth.issuers = vec![issuer("http://clerk.example")];
        assert_eq!(s.validate().unwrap_err().setting, "auth.issuers[0].issuer");
        let mut s = base;
        s.auth.issuers = vec![issuer("https://clerk.example")];
        assert!(s.validate().is_ok());
    }

    #[test]
    fn api_keys_need_the_secret_key_and_a_way_to_sign() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut base = Settings::load(&dir, &HashMap::new()).unwrap();
        base.auth.api_keys.enabled = true;
        base.supabase.service_role_key = Some(Secret::new("sb_secret_x"));
        let mut s = base.clone();
        s.supabase.service_role_key = None;
        assert_eq!(s.validate().unwrap_err().setting, "auth.api_keys.enabled");
        let mut s = base.clone();
        s.auth.jwt_secret = None;
        assert_eq!(s.validate().unwrap_err().setting, "auth.api_keys.issuer");
        s.auth.api_keys.issuer = "https://gate.example".into();
        assert!(s
            .validate()
            .unwrap_err()
            .setting
            .starts_with("auth.api_keys.signing_key"));
        let mut s = base;
        s.auth.jwt_secret = Some(Secret::new("legacy"));
        assert!(s.validate().is_ok());
        assert_eq!(
            s.auth.api_keys.effective_signing(&s.auth),
            KeySigning::Hs256
        );
    }

    #[test]
    fn env_lists_split_on_commas() {
        assert_eq!(
            env_value("cors.allowed_origins", "http://a, http://b"),
            serde_json::json!(["http://a", "http://b"])
        );
        assert_eq!(env_value("server.port", "9000"), serde_json::json!(9000));
        // The config files' array form, given through the environment, is the same list.
        for array in [
            r#"["POST /api/items", 'DELETE /api/items/{id}']"#,
            r#" ["POST /api/items","DELETE /api/items/{id}"] "#,
        ] {
            assert_eq!(
                env_value("sign_in.aal2_routes", array),
                serde_json::json!(["POST /api/items", "DELETE /api/items/{id}"]),
                "{array}"
            );
        }
        assert_eq!(
            env_value("supabase.anon_key", "123"),
            serde_json::json!("123")
        );
    }
}
