//! Prometheus metrics: requests by route template and status, upstream calls by upstream and
//! outcome, JWKS refreshes, webhook events, background jobs. One process-wide registry, rendered
//! at `/metrics` (the worker's on `worker.metrics_listen`).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    event_type: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    queue: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    route: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    key_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets from 0.1 ms (a cached verification and a fast upstream) to 10 s (the
/// default upstream timeout).
fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ])
}

pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_latency: HistogramFamily<HttpLabels>,
    upstream_requests: Family<UpstreamLabels, Counter>,
    upstream_latency: HistogramFamily<UpstreamLabels>,
    jwks_refreshes: Family<OutcomeLabels, Counter>,
    webhook_events: Family<WebhookLabels, Counter>,
    jobs: Family<JobLabels, Counter>,
    job_latency: HistogramFamily<QueueLabels>,
    queue_depth: Family<QueueLabels, Gauge>,
    cache_lookups: Family<CacheLabels, Counter>,
    cache_evictions: Counter,
    api_key_requests: Family<KeyLabels, Counter>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// `(method, status, latency, count)` per route, per worker thread (see `observe_request`).
type HandleList = Vec<(Box<str>, u16, Histogram, Counter)>;

/// Label sets cached per thread; beyond this, requests take the uncached path.
const MAX_CACHED_LABEL_SETS: usize = 1024;

thread_local! {
    static HTTP_HANDLES: std::cell::RefCell<foldhash::HashMap<Box<str>, HandleList>> =
        std::cell::RefCell::new(foldhash::HashMap::default());
    /// `(upstream, outcome, latency, count)`: a handful of pairs of static names, found by
    /// comparing pointers, so an upstream call does no label hashing and takes no lock.
    static UPSTREAM_HANDLES: std::cell::RefCell<Vec<(&'static str, &'static str, Histogram, Counter)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("supagate");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_latency: HistogramFamily<HttpLabels> =
            Family::new_with_constructor(latency_histogram);
        let upstream_requests = Family::<UpstreamLabels, Counter>::default();
        let upstream_latency: HistogramFamily<UpstreamLabels> =
            Family::new_with_constructor(latency_histogram);
        let jwks_refreshes = Family::<OutcomeLabels, Counter>::default();
        let webhook_events = Family::<WebhookLabels, Counter>::default();
        let jobs = Family::<JobLabels, Counter>::default();
        let job_latency: HistogramFamily<QueueLabels> =
            Family::new_with_constructor(latency_histogram);
        let queue_depth = Family::<QueueLabels, Gauge>::default();
        let cache_lookups = Family::<CacheLabels, Counter>::default();
        let cache_evictions = Counter::default();
        registry.register(
            "read_cache_lookups",
            "Reads of cached routes, by route template and outcome (hit, miss, coalesced, bypass)",
            cache_lookups.clone(),
        );
        registry.register(
            "read_cache_evictions",
            "Cached answers dropped to stay within cache.max_bytes",
            cache_evictions.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests served, by route template and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to produce the response head, by route template and status",
            http_latency.clone(),
        );
        registry.register(
            "upstream_requests",
            "Calls to Supabase, by upstream (rest, auth) and outcome",
            upstream_requests.clone(),
        );
        registry.register(
            "upstream_request_duration_seconds",
            "Latency of calls to Supabase, by upstream and outcome",
            upstream_latency.clone(),
        );
        registry.register(
            "jwks_refreshes",
            "Fetches of the Supabase signing keys, by outcome",
            jwks_refreshes.clone(),
        );
        registry.register(
            "webhook_events",
            "Stripe webhook deliveries, by event type and outcome",
            webhook_events.clone(),
        );
        registry.register(
            "jobs",
            "Queue messages handled by the worker, by queue and outcome (done, retried, dead_lettered)",
            jobs.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "Time a job handler ran, by queue (every outcome)",
            job_latency.clone(),
        );
        registry.register(
            "queue_depth",
            "Messages in a queue (visible or not) at the worker's last look",
            queue_depth.clone(),
        );
        let api_key_requests = Family::<KeyLabels, Counter>::default();
        registry.register(
            "api_key_requests",
            "Requests made with an API key, by key id (never the key)",
            api_key_requests.clone(),
        );
        Self {
            api_key_requests,
            registry,
            http_requests,
            http_latency,
            upstream_requests,
            upstream_latency,
            jwks_refreshes,
            webhook_events,
            jobs,
            job_latency,
            queue_depth,
            cache_lookups,
            cache_evictions,
        }
    }

    /// The counter of one route's read-cache outcome, taken once and kept by the cache, so a
    /// lookup counts with one atomic add.
    pub fn cache_lookups(&self, route: &str, outcome: &'static str) -> Counter {
        let labels = CacheLabels {
            route: route.to_owned(),
            outcome,
        };
        self.cache_lookups.get_or_create(&labels).clone()
    }

    /// The request counter of the key `key_id`, taken once per key lookup and kept with the
    /// verified key, so a request counts with one atomic add. One series per key that was
    /// used: keys are created by signed-in users only, and a revoked key's series stays until
    /// a restart.
    pub fn api_key_requests(&self, key_id: uuid::Uuid) -> Counter {
        let labels = KeyLabels {
            key_id: key_id.to_string(),
        };
        self.api_key_requests.get_or_create(&labels).clone()
    }

    pub fn cache_evictions(&self) -> Counter {
        self.cache_evictions.clone()
    }

    /// `route` is the matched template (`/api/items/{id}`), never the raw path, so ids do
    /// not explode the label space.
    ///
    /// Each worker thread keeps the metric handles of the label sets it has seen, so a
    /// request costs one small map lookup instead of two label allocations and two locked
    /// family lookups.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        HTTP_HANDLES.with(|cell| {
            let mut handles = cell.borrow_mut();
            if let Some((_, _, histogram, counter)) = handles.get(route).and_then(|list| {
                list.iter()
                    .find(|(m, s, ..)| *s == status && **m == *method)
            }) {
                histogram.observe(elapsed.as_secs_f64());
                counter.inc();
                return;
            }
            let labels = HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            };
            let histogram = self.http_latency.get_or_create(&labels).clone();
            let counter = self.http_requests.get_or_create(&labels).clone();
            histogram.observe(elapsed.as_secs_f64());
            counter.inc();
            if handles.values().map(Vec::len).sum::<usize>() < MAX_CACHED_LABEL_SETS {
                handles.entry(route.into()).or_default().push((
                    method.into(),
                    status,
                    histogram,
                    counter,
                ));
            }
        });
    }

    /// `outcome`: `ok`, `http_4xx`, `http_5xx`, `timeout`, `unavailable`, `invalid_body`.
    pub fn observe_upstream(
        &self,
        upstream: &'static str,
        outcome: &'static str,
        elapsed: Duration,
    ) {
        UPSTREAM_HANDLES.with(|cell| {
            let mut handles = cell.borrow_mut();
            let found = handles
                .iter()
                .find(|(u, o, ..)| std::ptr::eq(*u, upstream) && std::ptr::eq(*o, outcome));
            if let Some((_, _, histogram, counter)) = found {
                histogram.observe(elapsed.as_secs_f64());
                counter.inc();
                return;
            }
            let labels = UpstreamLabels { upstream, outcome };
            let histogram = self.upstream_latency.get_or_create(&labels).clone();
            let counter = self.upstream_requests.get_or_create(&labels).clone();
            histogram.observe(elapsed.as_secs_f64());
            counter.inc();
            // Names are static and few; the bound only guards against a future misuse.
            if handles.len() < 64 {
                handles.push((upstream, outcome, histogram, counter));
            }
        })
    }

    /// `outcome`: `ok` or `error`.
    pub fn jwks_refresh(&self, outcome: &'static str) {
        self.jwks_refreshes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Event types are bounded to the ones Stripe defines; unknown text is folded to `other`.
    pub fn webhook_event(&self, event_type: &str, outcome: &'static str) {
        let known = event_type.len() <= 64
            && event_type
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_');
        let event_type = if known { event_type } else { "other" };
        self.webhook_events
            .get_or_create(&WebhookLabels {
                event_type: event_type.to_owned(),
                outcome,
            })
            .inc();
    }

    /// A job finished one attempt: `outcome` is `done`, `retried` or `dead_lettered`.
    pub fn job(&self, queue: &str, outcome: &'static str, elapsed: Duration) {
        let queue = queue.to_owned();
        self.job_latency
            .get_or_create(&QueueLabels {
                queue: queue.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.jobs.get_or_create(&JobLabels { queue, outcome }).inc();
    }

    pub fn set_queue_depth(&self, queue: &str, depth: i64) {
        self.queue_depth
            .get_or_create(&QueueLabels {
                queue: queue.to_owned(),
            })
            .set(depth);
    }

    /// The OpenMetrics text exposition (Prometheus scrapes it natively).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!("metrics encoding failed: {e}");
        }
        out
    }
}

/// `GET /metrics`.
pub async fn handler() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics().render())
}
