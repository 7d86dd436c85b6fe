//! The read cache: answers of the `GET` routes `[[cache.routes]]` names, kept in this process
//! or in Redis (`cache.store`) per who is asking (the caller's database role, or the user), and served without an upstream
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
use crate::config::{CacheKey, CacheSettings, CacheStore, ConfigError};
use crate::metrics::metrics;
use crate::redis_conn::RedisConn;

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

/// One cached answer: what the client gets.
struct Entry {
    body: Bytes,
    /// `Content-Type` and the list headers, as the handler wrote them.
    headers: Vec<(HeaderName, HeaderValue)>,
    etag: HeaderValue,
}

impl Entry {
    /// Straight into the header map: the builder's conversions cost a hit ~1 k instructions.
    fn response(&self) -> HttpResponse {
        let mut res = HttpResponse::with_body(StatusCode::OK, BoxBody::new(self.body.clone()));
        // Room for what the middleware adds on the way out as well (request id, security,
        // caching and CORS headers): growing the map from empty rehashed it twice a hit.
        let headers = res.headers_mut();
        headers.reserve(self.headers.len() + 12);
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        headers.insert(header::ETAG, self.etag.clone());
        res
    }

    /// The Redis form: the generation it was read under, the headers as HTTP writes them
    /// (values cannot hold CR or LF), a blank line, the body.
    fn encode(&self, generation: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 256);
        out.extend_from_slice(generation.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        let etag = (header::ETAG, self.etag.clone());
        for (name, value) in self.headers.iter().chain(std::iter::once(&etag)) {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    /// The entry `encode` wrote, with its generation; `None` for anything else.
    fn decode(raw: Vec<u8>) -> Option<(u64, Self)> {
        let raw = Bytes::from(raw);
        let mut rest = &raw[..];
        let mut line = || {
            let end = rest.windows(2).position(|w| w == b"\r\n")?;
            let line = &rest[..end];
            rest = &rest[end + 2..];
            Some(line)
        };
        let generation = std::str::from_utf8(line()?).ok()?.parse().ok()?;
        let (mut headers, mut etag) = (Vec::new(), None);
        loop {
            let text = line()?;
            if text.is_empty() {
                break;
            }
            let colon = text.iter().position(|b| *b == b':')?;
            let name = HeaderName::from_bytes(&text[..colon]).ok()?;
            let value = HeaderValue::from_bytes(text[colon + 1..].trim_ascii_start()).ok()?;
            if name == header::ETAG {
                etag = Some(value);
            } else {
                headers.push((name, value));
            }
        }
        let body = raw.slice(raw.len() - rest.len()..);
        Some((
            generation,
            Self {
                body,
                headers,
                etag: etag?,
            },
        ))
    }
}

/// An entry in this process's store, and until when it may serve.
#[derive(Clone)]
struct Held {
    entry: Arc<Entry>,
    expires: Instant,
}

/// Answers are weighed by their bytes (and a share for the key and headers).
#[derive(Clone)]
struct ByBytes;

impl quick_cache::Weighter<String, Held> for ByBytes {
    fn weight(&self, key: &String, held: &Held) -> u64 {
        (key.len() + held.entry.body.len() + 256) as u64
    }
}

/// Counts what the weight bound pushed out.
#[derive(Clone)]
struct CountEvictions(Counter);

impl quick_cache::Lifecycle<String, Held> for CountEvictions {
    type RequestState = ();

    fn begin_request(&self) -> Self::RequestState {}

    fn on_evict(&self, _: &mut (), _: String, _: Held) {
        self.0.inc();
    }
}

type Entries = quick_cache::sync::Cache<
    String,
    Held,
    ByBytes,
    quick_cache::DefaultHashBuilder,
    CountEvictions,
>;

/// Where entries and generations live.
enum Store {
    /// This process: entries bounded by `cache.max_bytes`, a counter per resource.
    Memory {
        entries: Entries,
        generations: foldhash::HashMap<String, AtomicU64>,
    },
    /// Redis, shared by every instance: per resource one counter
    /// (`supagate:cache:{resource}:gen`) and one string per entry, expiring with its TTL. The
    /// resource in braces is a cluster hash tag: both keys of a lookup live on one node.
    Redis(Arc<RedisConn>),
}

struct Rule {
    ttl: Duration,
    key: CacheKey,
    /// The resource of the route (`resource`): a write through supagate to it moves its
    /// generation on, and the entries stored under the old one are never served again.
    resource: String,
    hit: Counter,
    miss: Counter,
    coalesced: Counter,
    bypass: Counter,
    /// Redis did not answer a lookup: served by the handler, uncached.
    failed: Counter,
}

/// What a lookup found: the resource's generation now, and the entry if it is of that one.
struct Found {
    generation: u64,
    entry: Option<Arc<Entry>>,
}

pub struct ReadCache {
    /// By route template (set by the server, so a fast hash: this is read on every request).
    rules: foldhash::HashMap<String, Rule>,
    store: Store,
    /// Misses being fetched, by key: the followers wait for the answer the leader sends.
    in_flight: Mutex<HashMap<String, watch::Receiver<Option<Arc<Entry>>>>>,
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

fn generation_key(resource: &str) -> String {
    format!("supagate:cache:{{{resource}}}:gen")
}

fn entry_key(resource: &str, who_and_what: &str) -> String {
    format!("supagate:cache:{{{resource}}}:{who_and_what}")
}

impl ReadCache {
    /// `redis`: the instance's connection, required when `cache.store` is `"redis"`
    /// (`Settings::validate` makes sure `rate_limit.redis_url` is set then).
    pub fn new(
        settings: &CacheSettings,
        routes: &CacheRoutes,
        redis: Option<Arc<RedisConn>>,
    ) -> Self {
        let rules = routes
            .0
            .iter()
            .map(|(template, ttl, key)| {
                let counter = |outcome| metrics().cache_lookups(template, outcome);
                let rule = Rule {
                    ttl: *ttl,
                    key: *key,
                    resource: resource(template).to_owned(),
                    hit: counter("hit"),
                    miss: counter("miss"),
                    coalesced: counter("coalesced"),
                    bypass: counter("bypass"),
                    failed: counter("error"),
                };
                (template.clone(), rule)
            })
            .collect::<foldhash::HashMap<_, _>>();
        let store = match (settings.store, redis) {
            (CacheStore::Redis, Some(conn)) => Store::Redis(conn),
            _ => {
                let max_bytes = settings.max_bytes.max(1);
                Store::Memory {
                    entries: Entries::with(
                        // A typical answer is a few KB.
                        usize::try_from(max_bytes / 4096)
                            .unwrap_or(usize::MAX)
                            .max(16),
                        max_bytes,
                        ByBytes,
                        quick_cache::DefaultHashBuilder::default(),
                        CountEvictions(metrics().cache_evictions()),
                    ),
                    generations: rules
                        .values()
                        .map(|rule| (rule.resource.clone(), AtomicU64::new(0)))
                        .collect(),
                }
            }
        };
        Self {
            rules,
            store,
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    fn caches(&self, resource: &str) -> bool {
        self.rules.values().any(|rule| rule.resource == resource)
    }

    /// A write through supagate to `template` answered 2xx: the cached reads of its resource
    /// are dropped (for every caller: a write may change what others see too). With Redis,
    /// on every instance; if Redis cannot be told, they stay until their TTL ends.
    pub async fn invalidate(&self, template: &str) {
        let resource = resource(template);
        match &self.store {
            Store::Memory { generations, .. } => {
                if let Some(generation) = generations.get(resource) {
                    generation.fetch_add(1, Ordering::Relaxed);
                }
            }
            Store::Redis(conn) if self.caches(resource) => {
                let bump = async {
                    let mut c = conn.connection().await?;
                    redis::cmd("INCR")
                        .arg(generation_key(resource))
                        .query_async::<u64>(&mut c)
                        .await
                };
                match tokio::time::timeout(conn.timeout, bump).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(resource, error = %e, "read cache: redis did not take an invalidation; entries stay until their TTL"),
                    Err(_) => tracing::warn!(resource, "read cache: redis did not take an invalidation in time; entries stay until their TTL"),
                }
            }
            Store::Redis(_) => {}
        }
    }

    /// The generation of `rule`'s resource and the entry under `key` if it is of it and fresh.
    async fn lookup(&self, rule: &Rule, key: &str) -> Result<Found, redis::RedisError> {
        match &self.store {
            Store::Memory {
                entries,
                generations,
            } => {
                let generation = generations
                    .get(&rule.resource)
                    .map_or(0, |g| g.load(Ordering::Relaxed));
                let entry = entries
                    .get(&format!("{generation} {key}"))
                    .filter(|held| held.expires > Instant::now())
                    .map(|held| held.entry);
                Ok(Found { generation, entry })
            }
            Store::Redis(conn) => {
                let get = async {
                    let mut c = conn.connection().await?;
                    redis::cmd("MGET")
                        .arg(generation_key(&rule.resource))
                        .arg(entry_key(&rule.resource, key))
                        .query_async::<(Option<u64>, Option<Vec<u8>>)>(&mut c)
                        .await
                };
                let (generation, raw) =
                    tokio::time::timeout(conn.timeout, get)
                        .await
                        .map_err(|_| {
                            redis::RedisError::from(std::io::Error::from(
                                std::io::ErrorKind::TimedOut,
                            ))
                        })??;
                let generation = generation.unwrap_or(0);
                let entry = raw
                    .and_then(Entry::decode)
                    .filter(|(of, _)| *of == generation)
                    .map(|(_, entry)| Arc::new(entry));
                Ok(Found { generation, entry })
            }
        }
    }

    /// Keeps `entry` under `key` for `rule`'s TTL, as of `generation`. Redis is written in
    /// the background: the caller's answer does not wait for it.
    fn put(&self, rule: &Rule, key: &str, generation: u64, entry: Arc<Entry>) {
        match &self.store {
            Store::Memory { entries, .. } => entries.insert(
                format!("{generation} {key}"),
                Held {
                    entry,
                    expires: Instant::now() + rule.ttl,
                },
            ),
            Store::Redis(conn) => {
                let conn = Arc::clone(conn);
                let key = entry_key(&rule.resource, key);
                let ttl_ms = u64::try_from(rule.ttl.as_millis()).unwrap_or(u64::MAX);
                let value = entry.encode(generation);
                actix_web::rt::spawn(async move {
                    let set = async {
                        let mut c = conn.connection().await?;
                        redis::cmd("SET")
                            .arg(key)
                            .arg(value)
                            .arg("PX")
                            .arg(ttl_ms)
                            .query_async::<()>(&mut c)
                            .await
                    };
                    if !matches!(tokio::time::timeout(conn.timeout, set).await, Ok(Ok(()))) {
                        tracing::debug!("read cache: redis did not store an entry");
                    }
                });
            }
        }
    }
}

/// The entry key of a request: whose answer it gets, then what was asked
/// (`role:authenticated /api/categories?`). `None` when it must not be cached at all.
fn key_of(rule: &Rule, identity: &Identity, req: &ServiceRequest) -> Option<String> {
    let (path, query) = (req.path(), req.query_string());
    let mut key = String::with_capacity(48 + path.len() + query.len());
    match (identity, rule.key) {
        (Identity::Anonymous, _) => key.push_str("anon"),
        (Identity::User(user), CacheKey::Role) => {
            key.push_str("role:");
            key.push_str(&user.role);
        }
        (Identity::User(user), CacheKey::User) => {
            key.push_str("user:");
            key.push_str(
                user.id
                    .hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer()),
            );
        }
        // Its cookies are being cleared: the handler's own answer, uncached.
        (Identity::SignedOut { .. }, _) => return None,
    }
    key.push(' ');
    key.push_str(path);
    key.push('?');
    key.push_str(query);
    Some(key)
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
    // Boxed, as the lookup below: verification's future is ~4.4 KB, and inline it would stay
    // part of this one while a miss waits on PostgREST.
    let key = match Box::pin(crate::auth::extract::authenticate(req.request())).await {
        Ok(identity) if !crate::auth::cookie::is_scheduled(req.request()) => {
            key_of(rule, &identity, &req)
        }
        _ => None,
    };
    let Some(key) = key else {
        rule.bypass.inc();
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    // Boxed: the Redis lookup's future is large, and every read of a cached route would
    // otherwise carry it (in memory, the store answers at once).
    let found = match Box::pin(cache.lookup(rule, &key)).await {
        Ok(found) => found,
        Err(e) => {
            tracing::debug!(error = %e, "read cache: lookup failed; answered uncached");
            rule.failed.inc();
            return Ok(next.call(req).await?.map_into_boxed_body());
        }
    };
    if let Some(entry) = found.entry {
        rule.hit.inc();
        return Ok(req.into_response(entry.response()));
    }
    // One call per key and generation at a time: the first caller fetches, the others wait
    // for the answer it sends them.
    let flight = format!("{} {key}", found.generation);
    let leading = {
        let mut in_flight = cache.in_flight.lock();
        match in_flight.get(&flight) {
            Some(receiver) => Err(receiver.clone()),
            None => {
                let (sender, receiver) = watch::channel(None);
                in_flight.insert(flight.clone(), receiver);
                Ok(Leading {
                    cache: cache.clone(),
                    flight,
                    sender,
                })
            }
        }
    };
    let lead = match leading {
        Ok(lead) => lead,
        Err(mut receiver) => {
            // Ends when the leader sends its entry, or is done without one (its sender dropped).
            let shared = receiver
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|entry| entry.clone());
            if let Some(entry) = shared {
                rule.coalesced.inc();
                return Ok(req.into_response(entry.response()));
            }
            // The leader got nothing to share (an error, or it was cancelled): ask alone.
            rule.miss.inc();
            return Ok(next.call(req).await?.map_into_boxed_body());
        }
    };
    rule.miss.inc();
    let res = next.call(req).await?;
    let (res, entry) = keep(res);
    if let Some(entry) = entry {
        cache.put(rule, &key, found.generation, Arc::clone(&entry));
        lead.sender.send_replace(Some(entry));
    }
    drop(lead);
    Ok(res)
}

/// The leader of a miss: dropping it (done, failed or cancelled) wakes the followers.
struct Leading {
    cache: web::Data<ReadCache>,
    flight: String,
    sender: watch::Sender<Option<Arc<Entry>>>,
}

impl Drop for Leading {
    fn drop(&mut self) {
        self.cache.in_flight.lock().remove(&self.flight);
    }
}

/// The entry of a `200` JSON answer held in memory that sets no cookie (with its `ETag`
/// written); anything else passes with none.
fn keep(
    res: ServiceResponse<impl MessageBody + 'static>,
) -> (ServiceResponse<BoxBody>, Option<Arc<Entry>>) {
    let res = res.map_into_boxed_body();
    if res.status() != StatusCode::OK || crate::auth::cookie::is_scheduled(res.request()) {
        return (res, None);
    }
    let mut answer = match crate::conditional::in_memory(res) {
        Taken::InMemory(answer) => answer,
        Taken::Streamed(res) => return (res, None),
    };
    let (head, body) = (&mut answer.head, &answer.body);
    let kept = [header::CONTENT_TYPE, header::CONTENT_RANGE, X_TOTAL_COUNT];
    let headers = kept
        .iter()
        .filter_map(|name| Some((name.clone(), head.headers().get(name)?.clone())))
        .collect();
    let etag = crate::conditional::etag_of(body);
    head.headers_mut().insert(header::ETAG, etag.clone());
    let entry = Arc::new(Entry {
        body: body.clone(),
        headers,
        etag,
    });
    (answer.into_response(), Some(entry))
}

const X_TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_comes_back_from_its_redis_form_with_its_generation() {
        let entry = Entry {
            body: Bytes::from_static(b"[{\"id\":1}]\r\n\r\nx"),
            headers: vec![
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (X_TOTAL_COUNT, HeaderValue::from_static("1")),
            ],
            etag: crate::conditional::etag_of(b"x"),
        };
        let (generation, back) = Entry::decode(entry.encode(7)).unwrap();
        assert_eq!(generation, 7);
        assert_eq!(back.body, entry.body);
        assert_eq!(back.headers, entry.headers);
        assert_eq!(back.etag, entry.etag);
        assert!(Entry::decode(b"7\r\ncontent-type: a\r\n".to_vec()).is_none());
        assert!(Entry::decode(b"x\r\n\r\n".to_vec()).is_none());
    }

    #[test]
    fn a_resource_is_the_first_two_segments_of_a_template() {
        assert_eq!(resource("/api/items/{id}"), "/api/items");
        assert_eq!(resource("/api/items"), "/api/items");
        assert_eq!(resource("/api/users/{id}/profile"), "/api/users");
        assert_eq!(resource("/health"), "/health");
    }
}
