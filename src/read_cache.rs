//! The read cache: answers of the `GET` routes `[[cache.routes]]` names, kept in this process
//! per who is asking (the caller's database role, or the user), and served without an upstream
//! call until their TTL ends or a write through supagate touches their resource. Identical
//! concurrent misses make one upstream call; the others wait for its answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use bytes::Bytes;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;

use crate::auth::Identity;
use crate::conditional::Taken;
use crate::config::{CacheKey, CacheSettings, ConfigError};
use crate::metrics::metrics;

/// `[[cache.routes]]`, checked against the route table where the app is built.
#[derive(Debug, Default)]
pub struct CacheRoutes(Vec<(String, Duration, CacheKey)>);

impl CacheRoutes {
    /// Each route must be a `GET` template supagate serves, with a TTL.
    pub fn compile(
        settings: &CacheSettings,
        served: &[(Method, String)],
    ) -> Result<Self, ConfigError> {
        let mut routes = Vec::with_capacity(settings.routes.len());
        for rule in &settings.routes {
            let route = rule.route.trim();
            if !served.iter().any(|(m, p)| *m == Method::GET && p == route) {
                return Err(ConfigError::invalid(
                    "cache.routes",
                    format!("`{route}` is no GET route supagate serves (write the template as /openapi.json lists it)"),
                ));
            }
            if rule.ttl_secs == 0 {
                return Err(ConfigError::invalid(
                    "cache.routes",
                    format!("`{route}`: ttl_secs must be at least 1"),
                ));
            }
            routes.push((
                route.to_owned(),
                Duration::from_secs(rule.ttl_secs),
                rule.key,
            ));
        }
        Ok(Self(routes))
    }
}

/// One cached answer: what the client gets, and until when.
struct Entry {
    body: Bytes,
    /// `Content-Type` and the list headers, as the handler wrote them.
    headers: Vec<(HeaderName, HeaderValue)>,
    etag: HeaderValue,
    expires: Instant,
}

impl Entry {
    fn response(&self) -> HttpResponse {
        let mut res = HttpResponse::Ok();
        for (name, value) in &self.headers {
            res.insert_header((name.clone(), value.clone()));
        }
        res.insert_header((header::ETAG, self.etag.clone()));
        res.body(self.body.clone())
    }
}

/// Answers are weighed by their bytes (and a share for the key and headers).
#[derive(Clone)]
struct ByBytes;

impl quick_cache::Weighter<String, Arc<Entry>> for ByBytes {
    fn weight(&self, key: &String, entry: &Arc<Entry>) -> u64 {
        (key.len() + entry.body.len() + 256) as u64
    }
}

/// Counts what the weight bound pushed out.
#[derive(Clone)]
struct CountEvictions(Counter);

impl quick_cache::Lifecycle<String, Arc<Entry>> for CountEvictions {
    type RequestState = ();

    fn begin_request(&self) -> Self::RequestState {}

    fn on_evict(&self, _: &mut (), _: String, _: Arc<Entry>) {
        self.0.inc();
    }
}

type Entries = quick_cache::sync::Cache<
    String,
    Arc<Entry>,
    ByBytes,
    quick_cache::DefaultHashBuilder,
    CountEvictions,
>;

struct Rule {
    ttl: Duration,
    key: CacheKey,
    /// The resource's generation: a write through supagate bumps it, and the entries stored
    /// under the old one are never found again.
    generation: Arc<AtomicU64>,
    hit: Counter,
    miss: Counter,
    coalesced: Counter,
    bypass: Counter,
}

pub struct ReadCache {
    rules: HashMap<String, Rule>,
    /// Resource (`/api/categories`) → its generation, shared by the rules of its routes.
    generations: HashMap<String, Arc<AtomicU64>>,
    entries: Entries,
    /// Misses being fetched, by key: the followers wait on the receiver.
    in_flight: Mutex<HashMap<String, watch::Receiver<()>>>,
}

/// The resource a route template belongs to: its first two segments (`/api/items/{id}` →
/// `/api/items`). A write to any route of a resource invalidates the cached reads of all.
fn resource(template: &str) -> &str {
    let mut slashes = template.match_indices('/').map(|(i, _)| i).skip(2);
    match slashes.next() {
        Some(end) => &template[..end],
        None => template,
    }
}

impl ReadCache {
    pub fn new(settings: &CacheSettings, routes: &CacheRoutes) -> Self {
        let mut generations: HashMap<String, Arc<AtomicU64>> = HashMap::new();
        let mut rules = HashMap::new();
        for (template, ttl, key) in &routes.0 {
            let generation = Arc::clone(
                generations
                    .entry(resource(template).to_owned())
                    .or_default(),
            );
            let counter = |outcome| metrics().cache_lookups(template, outcome);
            rules.insert(
                template.clone(),
                Rule {
                    ttl: *ttl,
                    key: *key,
                    generation,
                    hit: counter("hit"),
                    miss: counter("miss"),
                    coalesced: counter("coalesced"),
                    bypass: counter("bypass"),
                },
            );
        }
        let max_bytes = settings.max_bytes.max(1);
        let entries = Entries::with(
            // A typical answer is a few KB.
            usize::try_from(max_bytes / 4096)
                .unwrap_or(usize::MAX)
                .max(16),
            max_bytes,
            ByBytes,
            quick_cache::DefaultHashBuilder::default(),
            CountEvictions(metrics().cache_evictions()),
        );
        Self {
            rules,
            generations,
            entries,
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// A write through supagate to `template` answered 2xx: the cached reads of its resource
    /// are dropped (for every caller: a write may change what others see too).
    pub fn invalidate(&self, template: &str) {
        if let Some(generation) = self.generations.get(resource(template)) {
            generation.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn fresh(&self, key: &str) -> Option<Arc<Entry>> {
        self.entries
            .get(key)
            .filter(|entry| entry.expires > Instant::now())
    }
}

/// Whose answer a request gets: `None` when it must not be cached at all.
fn who(rule: &Rule, identity: &Identity) -> Option<String> {
    match (identity, rule.key) {
        (Identity::Anonymous, _) => Some("anon".to_owned()),
        (Identity::User(user), CacheKey::Role) => Some(format!("role:{}", user.role)),
        (Identity::User(user), CacheKey::User) => Some(format!("user:{}", user.id)),
        // Its cookies are being cleared: the handler's own answer, uncached.
        (Identity::SignedOut { .. }, _) => None,
    }
}

/// The middleware of a cached route (`api::register` puts it on the `GET` of each, with its
/// template).
pub async fn serve(
    template: Arc<str>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(cache) = req.app_data::<web::Data<ReadCache>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let Some(rule) = cache.rules.get(&*template) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    // Who asks decides whose entry serves; a caller the extractor would refuse, or whose
    // session is being refreshed (the answer sets cookies), is answered by the handler alone.
    let who = match crate::auth::extract::authenticate(req.request()).await {
        Ok(identity) if !crate::auth::cookie::is_scheduled(req.request()) => who(rule, &identity),
        _ => None,
    };
    let Some(who) = who else {
        rule.bypass.inc();
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let generation = rule.generation.load(Ordering::Relaxed);
    let key = format!("{generation} {who} {}?{}", req.path(), req.query_string());
    if let Some(entry) = cache.fresh(&key) {
        rule.hit.inc();
        return Ok(req.into_response(entry.response()));
    }
    // One call per key at a time: the first caller fetches, the others wait for it.
    let leading = {
        let mut in_flight = cache.in_flight.lock();
        match in_flight.get(&key) {
            Some(receiver) => Err(receiver.clone()),
            None => {
                let (sender, receiver) = watch::channel(());
                in_flight.insert(key.clone(), receiver);
                Ok(Leading {
                    cache: cache.clone(),
                    key: key.clone(),
                    _sender: sender,
                })
            }
        }
    };
    let lead = match leading {
        Ok(lead) => Some(lead),
        Err(mut receiver) => {
            // Wakes when the leader is done (its sender dropped), whatever it got.
            let _ = receiver.changed().await;
            if let Some(entry) = cache.fresh(&key) {
                rule.coalesced.inc();
                return Ok(req.into_response(entry.response()));
            }
            // The leader got nothing to share (an error, or it was cancelled): ask alone.
            None
        }
    };
    rule.miss.inc();
    let res = next.call(req).await?;
    let res = store(&cache, rule, key, res);
    drop(lead);
    Ok(res)
}

/// The leader of a miss: dropping it (done, failed or cancelled) wakes the followers.
struct Leading {
    cache: web::Data<ReadCache>,
    key: String,
    _sender: watch::Sender<()>,
}

impl Drop for Leading {
    fn drop(&mut self) {
        self.cache.in_flight.lock().remove(&self.key);
    }
}

/// Keeps a `200` JSON answer held in memory that sets no cookie; passes anything else.
fn store(
    cache: &ReadCache,
    rule: &Rule,
    key: String,
    res: ServiceResponse<impl MessageBody + 'static>,
) -> ServiceResponse<BoxBody> {
    let res = res.map_into_boxed_body();
    if res.status() != StatusCode::OK || crate::auth::cookie::is_scheduled(res.request()) {
        return res;
    }
    let mut answer = match crate::conditional::in_memory(res) {
        Taken::InMemory(answer) => answer,
        Taken::Streamed(res) => return res,
    };
    let (head, body) = (&mut answer.head, &answer.body);
    let kept = [header::CONTENT_TYPE, header::CONTENT_RANGE, X_TOTAL_COUNT];
    let headers = kept
        .iter()
        .filter_map(|name| Some((name.clone(), head.headers().get(name)?.clone())))
        .collect();
    let etag = crate::conditional::etag_of(body);
    head.headers_mut().insert(header::ETAG, etag.clone());
    cache.entries.insert(
        key,
        Arc::new(Entry {
            body: body.clone(),
            headers,
            etag,
            expires: Instant::now() + rule.ttl,
        }),
    );
    answer.into_response()
}

const X_TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_is_the_first_two_segments_of_a_template() {
        assert_eq!(resource("/api/items/{id}"), "/api/items");
        assert_eq!(resource("/api/items"), "/api/items");
        assert_eq!(resource("/api/users/{id}/profile"), "/api/users");
        assert_eq!(resource("/health"), "/health");
    }
}
