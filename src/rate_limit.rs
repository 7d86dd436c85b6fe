//! Rate-limit rules for any route: `[[rate_limit.rules]]` compiled against the route table,
//! applied by one middleware ([`enforce`]) keyed by verified user or client IP (trusted
//! proxies honoured), with counters in memory or in Redis (`store`), and the IETF
//! `RateLimit` / `RateLimit-Policy` fields (draft-ietf-httpapi-ratelimit-headers-08).

pub mod store;

use foldhash::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, ResponseError};

use crate::auth::cookie::SessionCookie;
use crate::auth::verify::Verifier;
use crate::auth::AuthUser;
use crate::config::{ConfigError, OnStoreError, RateLimitSettings, RateLimitStore, Settings};
use crate::error::ApiError;
use crate::redis_conn::RedisConn;
use store::{Bucket, MemoryStore, Quota, RedisStore, StoreError, Verdict};

pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// What a rule names (`routes = ["server-side refresh"]`) to count the refreshes supagate
/// makes of expired cookie sessions on ordinary requests. They are not the client's
/// `POST /api/auth/refresh`: a page view behind a NAT must not spend that route's budget.
pub const SERVER_REFRESH: &str = "server-side refresh";
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// The finest rate a rule may set: one request per microsecond, GCRA's step.
pub const MAX_PER_MINUTE: u32 = 60_000_000;

/// The limiter's answer for one request, where it is not answered by [`enforce`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Refused; the client may retry after this many seconds.
    Limited {
        retry_after_secs: u64,
    },
    /// The store failed and `on_store_error` is `deny`.
    StoreUnavailable,
}

/// What a rule counts per.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Ip,
    /// The verified token's `sub`; anonymous callers (or unverifiable tokens) by IP.
    User,
    /// The API key a request came with; other callers as `User`.
    ApiKey,
}

/// One compiled `[[rate_limit.rules]]` entry.
#[derive(Clone, Debug)]
pub struct LimitRule {
    /// `rules[i]`: the policy name in `RateLimit-Policy`, and part of the counter key.
    pub name: String,
    pub key: KeyKind,
    pub quota: Quota,
    /// `RateLimit-Policy` item, built once.
    policy: String,
}

/// The rules, indexed by route template then method.
#[derive(Debug, Default)]
pub struct LimitRules {
    pub rules: Vec<LimitRule>,
    by_route: HashMap<String, Vec<(Method, Vec<usize>)>>,
}

impl LimitRules {
    /// Checks every rule against `served` (the route table's `(method, template)` pairs); the
    /// first problem is one line naming the rule (`rate_limit.rules[2].routes: ...`).
    pub fn compile(
        settings: &RateLimitSettings,
        served: &[(Method, String)],
    ) -> Result<LimitRules, ConfigError> {
        let mut compiled = LimitRules::default();
        for (i, rule) in settings.rules.iter().enumerate() {
            let name = format!("rules[{i}]");
            let setting = |field: &str| format!("rate_limit.{name}.{field}");
            let key = match rule.key.as_str() {
                "ip" => KeyKind::Ip,
                "user" => KeyKind::User,
                "api_key" => KeyKind::ApiKey,
                other => {
                    return Err(ConfigError::invalid(
                        setting("key"),
                        format!("`{other}` is not one of ip, user, api_key"),
                    ))
                }
            };
            if rule.per_minute == 0 {
                return Err(ConfigError::invalid(
                    setting("per_minute"),
                    "must be greater than 0",
                ));
            }
            // GCRA counts in whole microseconds: a finer rate would be an emission interval
            // of 0 (found by the bench: every decision then divided by zero).
            if rule.per_minute > MAX_PER_MINUTE {
                return Err(ConfigError::invalid(
                    setting("per_minute"),
                    format!("must be at most {MAX_PER_MINUTE} (one request per microsecond)"),
                ));
            }
            let burst = rule.burst.unwrap_or(rule.per_minute);
            if burst == 0 {
                return Err(ConfigError::invalid(
                    setting("burst"),
                    "must be greater than 0",
                ));
            }
            if rule.routes.is_empty() {
                return Err(ConfigError::invalid(
                    setting("routes"),
                    "names no route (e.g. \"POST /api/items\")",
                ));
            }
            for route in &rule.routes {
                let parsed = route
                    .trim()
                    .split_once(' ')
                    .and_then(|(m, p)| Some((Method::from_bytes(m.as_bytes()).ok()?, p.trim())));
                let served_route = if route.trim() == SERVER_REFRESH {
                    Some((Method::POST, SERVER_REFRESH.to_owned()))
                } else {
                    parsed.and_then(|(m, p)| {
                        served.iter().find(|(sm, sp)| *sm == m && sp == p).cloned()
                    })
                };
                let Some((method, path)) = served_route else {
                    return Err(ConfigError::invalid(
                        setting("routes"),
                        format!(
                            "`{route}` is no route supagate serves (write \"METHOD /path/{{param}}\" as /openapi.json lists it, or \"{SERVER_REFRESH}\")"
                        ),
                    ));
                };
                let methods = compiled.by_route.entry(path).or_default();
                match methods.iter_mut().find(|(m, _)| *m == method) {
                    Some((_, rules)) if rules.last() == Some(&i) => {}
                    Some((_, rules)) => rules.push(i),
                    None => methods.push((method, vec![i])),
                }
            }
            let quota = Quota::new(rule.per_minute, burst);
            let window_secs = (quota.interval_us * quota.burst + 999_999) / 1_000_000;
            compiled.rules.push(LimitRule {
                policy: format!("\"{name}\";q={};w={window_secs}", quota.burst),
                name,
                key,
                quota,
            });
        }
        Ok(compiled)
    }

    /// Indexes of the rules a request to `route` (its template) with `method` must pass.
    pub fn matching(&self, method: &Method, route: Option<&str>) -> &[usize] {
        route
            .and_then(|r| self.by_route.get(r))
            .and_then(|methods| methods.iter().find(|(m, _)| m == method))
            .map_or(&[], |(_, rules)| rules.as_slice())
    }
}

enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

/// The outcome of the rules a request matched.
pub struct Outcome {
    /// Per matched rule: its index and verdict.
    verdicts: Vec<(usize, Verdict)>,
}

impl Outcome {
    pub fn allowed(&self) -> bool {
        self.verdicts.iter().all(|(_, v)| v.allowed)
    }

    /// Seconds until the request would pass every rule (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        let us = self
            .verdicts
            .iter()
            .map(|(_, v)| v.retry_us)
            .max()
            .unwrap_or(0);
        u64::try_from((us + 999_999) / 1_000_000)
            .unwrap_or(1)
            .max(1)
    }
}

/// What the middleware and the Auth handlers consult: rules, store, trusted-proxy rule.
pub struct Limiter {
    enabled: bool,
    rules: LimitRules,
    store: Store,
    on_store_error: OnStoreError,
    /// Unix seconds of the last store-error log line (one per interval, not one per request).
    last_store_log: AtomicU64,
    /// Who a caller is, for `user` rules (the application's own verifier and cookie).
    verifier: Arc<Verifier>,
    session_cookie: Arc<SessionCookie>,
}

/// How often a store outage is logged.
const STORE_LOG_EVERY_SECS: u64 = 10;

impl Limiter {
    /// The limiter for `rules` (compiled once, by `server::check`); `user` rules key on the
    /// `sub` `verifier` accepts, from the bearer token or `session_cookie`.
    /// `redis`: the instance's connection, required when `rate_limit.store` is `"redis"`.
    pub fn new(
        settings: &Settings,
        redis: Option<Arc<RedisConn>>,
        rules: LimitRules,
        verifier: Arc<Verifier>,
        session_cookie: Arc<SessionCookie>,
    ) -> anyhow::Result<Self> {
        let rl = &settings.rate_limit;
        let store = match (rl.store, redis) {
            (RateLimitStore::Redis, Some(conn)) => Store::Redis(RedisStore::new(conn)),
            (RateLimitStore::Redis, None) => {
                anyhow::bail!("rate_limit.store is \"redis\" but no Redis connection was made")
            }
            (RateLimitStore::Memory, _) => Store::Memory(MemoryStore::default()),
        };
        Ok(Self {
            enabled: rl.enabled,
            rules,
            store,
            on_store_error: rl.on_store_error,
            last_store_log: AtomicU64::new(0),
            verifier,
            session_cookie,
        })
    }

    /// The rules `method` on `route` (a template) must pass; none when limiting is off.
    pub fn rules_for(&self, method: &Method, route: Option<&str>) -> &[usize] {
        if !self.enabled {
            return &[];
        }
        self.rules.matching(method, route)
    }

    /// Counts `req` against `rules`. `Ok(None)`: the store failed and the policy is `allow`.
    pub async fn decide(
        &self,
        req: &HttpRequest,
        rules: &[usize],
    ) -> Result<Option<Outcome>, ApiError> {
        let mut ip: Option<String> = None;
        let mut user: Option<Option<AuthUser>> = None;
        let mut checks = Vec::with_capacity(rules.len());
        for &i in rules {
            let rule = &self.rules.rules[i];
            let subject = match rule.key {
                KeyKind::User | KeyKind::ApiKey => {
                    if user.is_none() {
                        user = Some(self.verified_caller(req).await);
                    }
                    user.as_ref()
                        .and_then(Option::as_ref)
                        .map(|u| match (&u.api_key, rule.key) {
                            (Some(key), KeyKind::ApiKey) => format!("key:{}", key.id),
                            _ => format!("user:{}", u.id),
                        })
                }
                KeyKind::Ip => None,
            };
            let subject = match subject {
                Some(sub) => sub,
                None => ip
                    .get_or_insert_with(|| {
                        let ip = crate::client_ip::of(req);
                        format!(
                            "ip:{}",
                            ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string())
                        )
                    })
                    .clone(),
            };
            checks.push(Bucket {
                key: format!("supagate:rl:{}:{subject}", rule.name),
                quota: rule.quota,
            });
        }
        let verdicts = match &self.store {
            Store::Memory(store) => Ok(store.decide_at(&checks, store.now())),
            Store::Redis(store) => store.decide_at(&checks, None).await,
        };
        match verdicts {
            Ok(verdicts) => Ok(Some(Outcome {
                verdicts: rules.iter().copied().zip(verdicts).collect(),
            })),
            Err(e) => self.store_failed(&e),
        }
    }

    fn store_failed(&self, e: &StoreError) -> Result<Option<Outcome>, ApiError> {
        let now = jsonwebtoken::get_current_timestamp();
        let last = self.last_store_log.load(Ordering::Relaxed);
        if now >= last + STORE_LOG_EVERY_SECS
            && self
                .last_store_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                "rate-limit store unavailable ({e}); on_store_error = {:?}",
                self.on_store_error
            );
        }
        match self.on_store_error {
            OnStoreError::Allow => Ok(None),
            OnStoreError::Deny => Err(ApiError::upstream_unavailable(format!(
                "rate-limit store: {e}"
            ))),
        }
    }

    /// Counts a request as if it were made to `method route` (the server-side session
    /// refresh is counted as the refresh route is), for callers that do not answer at once.
    pub async fn decide_as(&self, req: &HttpRequest, method: &Method, route: &str) -> Decision {
        let rules = self.rules_for(method, Some(route));
        if rules.is_empty() {
            return Decision::Allowed;
        }
        match self.decide(req, rules).await {
            Ok(Some(outcome)) if !outcome.allowed() => Decision::Limited {
                retry_after_secs: outcome.retry_after_secs(),
            },
            Ok(_) => Decision::Allowed,
            Err(_) => Decision::StoreUnavailable,
        }
    }

    /// `RateLimit-Policy` and `RateLimit` for `outcome` (draft-08: `"name";q=;w=` and
    /// `"name";r=;t=`, one list member per rule).
    fn headers(&self, outcome: &Outcome) -> (Option<HeaderValue>, Option<HeaderValue>) {
        let mut policy = String::new();
        let mut limit = String::new();
        for (i, verdict) in &outcome.verdicts {
            let rule = &self.rules.rules[*i];
            if !policy.is_empty() {
                policy.push_str(", ");
                limit.push_str(", ");
            }
            policy.push_str(&rule.policy);
            // A refused request counts against no rule: a rule that would have let it
            // through still has the request it was about to spend.
            let (remaining, reset_us) = if verdict.allowed && !outcome.allowed() {
                (
                    verdict.remaining + 1,
                    verdict.reset_us - rule.quota.interval_us,
                )
            } else {
                (verdict.remaining, verdict.reset_us)
            };
            let reset = (reset_us.max(0) + 999_999) / 1_000_000;
            limit.push_str(&format!("\"{}\";r={remaining};t={reset}", rule.name));
        }
        (
            HeaderValue::from_str(&policy).ok(),
            HeaderValue::from_str(&limit).ok(),
        )
    }
}

impl Limiter {
    /// The caller of the bearer credential (token or API key) or session cookie, without
    /// refreshing anything (an expired cookie session counts by IP for that request).
    async fn verified_caller(&self, req: &HttpRequest) -> Option<AuthUser> {
        let bearer = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned());
        match bearer {
            Some(token) => self.verifier.verify_bearer(&token).await.ok(),
            None => match self.session_cookie.read(req) {
                Some(Ok(Some(session))) => self.verifier.verify(&session.access_token).await.ok(),
                _ => None,
            },
        }
    }
}

/// The one place rules are applied: finds the rules naming this request's route (the
/// resource name is its template), counts it, and answers 429 `rate_limited` (or 503 under
/// `on_store_error = "deny"`) before the handler runs; limited routes report their budget.
pub async fn enforce(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(limiter) = req.app_data::<web::Data<Limiter>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let route = crate::route_template::of(req.request());
    let rules = limiter.rules_for(req.method(), route.as_deref());
    if rules.is_empty() {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    // Boxed: a decision may wait on Redis, and that future inline would make every
    // request's middleware future (rated routes or not) ~3.5 KB larger: 3.5 MB of resident
    // memory at 1 000 requests in flight (heaptrack, README "Memory").
    let outcome = match Box::pin(limiter.decide(req.request(), rules)).await {
        Ok(outcome) => outcome,
        Err(e) => {
            let res = e.error_response();
            return Ok(req.into_response(res).map_into_right_body());
        }
    };
    let Some(outcome) = outcome else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let (policy, limit) = limiter.headers(&outcome);
    let mut res = if outcome.allowed() {
        next.call(req).await?.map_into_left_body()
    } else {
        let res = ApiError::rate_limited(outcome.retry_after_secs()).error_response();
        req.into_response(res).map_into_right_body()
    };
    let headers = res.headers_mut();
    if let Some(policy) = policy {
        headers.insert(RATELIMIT_POLICY, policy);
    }
    if let Some(limit) = limit {
        headers.insert(RATELIMIT, limit);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(routes, key, per_minute, burst)`.
    type RuleSpec<'a> = (&'a [&'a str], &'a str, u32, Option<u32>);

    fn settings(rules: &[RuleSpec<'_>]) -> RateLimitSettings {
        RateLimitSettings {
            enabled: true,
            store: RateLimitStore::Memory,
            redis_url: crate::config::Secret::new(""),
            on_store_error: OnStoreError::Allow,
            redis_timeout_ms: 250,
            rules: rules
                .iter()
                .map(
                    |(routes, key, per_minute, burst)| crate::config::RateLimitRule {
                        routes: routes.iter().map(|r| (*r).to_owned()).collect(),
                        key: (*key).to_owned(),
                        per_minute: *per_minute,
                        burst: *burst,
                    },
                )
                .collect(),
        }
    }

    /// A route table for these tests (the real one is checked in `tests/api/rate_limit.rs`).
    fn served() -> Vec<(Method, String)> {
        [
            (Method::POST, "/api/items"),
            (Method::PATCH, "/api/items/{id}"),
            (Method::POST, "/api/auth/login"),
        ]
        .into_iter()
        .map(|(m, p)| (m, p.to_owned()))
        .collect()
    }

    #[test]
    fn rules_match_by_method_and_route_template_only() {
        let rules = LimitRules::compile(
            &settings(&[
                (
                    &["POST /api/items", "PATCH /api/items/{id}"],
                    "user",
                    60,
                    Some(20),
                ),
                (&["PATCH /api/items/{id}"], "ip", 10, None),
            ]),
            &served(),
        )
        .unwrap();
        assert_eq!(rules.matching(&Method::POST, Some("/api/items")), [0]);
        assert_eq!(
            rules.matching(&Method::PATCH, Some("/api/items/{id}")),
            [0, 1]
        );
        // Another method on a named template, an unnamed template, an unrouted request.
        assert!(rules.matching(&Method::GET, Some("/api/items")).is_empty());
        assert!(rules
            .matching(&Method::PUT, Some("/api/items/{id}"))
            .is_empty());
        assert!(rules
            .matching(&Method::POST, Some("/api/categories"))
            .is_empty());
        assert!(rules.matching(&Method::POST, None).is_empty());
        // A concrete path is not a template.
        let id = "/api/items/33333333-3333-4333-8333-333333333333";
        assert!(rules.matching(&Method::PATCH, Some(id)).is_empty());
    }

    #[test]
    fn a_route_named_twice_in_one_rule_is_counted_once() {
        let rules = LimitRules::compile(
            &settings(&[(&["POST /api/items", "POST /api/items"], "user", 60, None)]),
            &served(),
        )
        .unwrap();
        assert_eq!(rules.matching(&Method::POST, Some("/api/items")), [0]);
    }

    #[test]
    fn burst_defaults_to_the_rate_and_the_policy_names_the_rule() {
        let rules = LimitRules::compile(
            &settings(&[
                (&["POST /api/items"], "user", 60, Some(20)),
                (&["POST /api/auth/login"], "ip", 10, None),
            ]),
            &served(),
        )
        .unwrap();
        assert_eq!(rules.rules[0].policy, "\"rules[0]\";q=20;w=20");
        assert_eq!(rules.rules[1].policy, "\"rules[1]\";q=10;w=60");
        assert_eq!(rules.rules[1].key, KeyKind::Ip);
    }

    #[test]
    fn bad_rules_are_refused_naming_the_rule_and_field() {
        let cases: [(RuleSpec<'_>, &str); 8] = [
            ((&["POST /api/nope"], "ip", 1, None), "routes"),
            ((&["post /api/items"], "ip", 1, None), "routes"),
            ((&["/api/items"], "ip", 1, None), "routes"),
            ((&[], "ip", 1, None), "routes"),
            ((&["POST /api/items"], "session", 1, None), "key"),
            ((&["POST /api/items"], "ip", 0, None), "per_minute"),
            (
                (&["POST /api/items"], "ip", MAX_PER_MINUTE + 1, None),
                "per_minute",
            ),
            ((&["POST /api/items"], "ip", 1, Some(0)), "burst"),
        ];
        for (rule, field) in cases {
            let err = LimitRules::compile(&settings(&[rule]), &served()).unwrap_err();
            assert_eq!(
                err.setting,
                format!("rate_limit.rules[0].{field}"),
                "{rule:?}"
            );
        }
    }
}
