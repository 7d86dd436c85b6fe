//! The one outbound HTTP client (pooled, keep-alive, timeouts on every call) and a small
//! JSON API wrapper on top of it. Every upstream — PostgREST, Supabase Auth, anything a team
//! adds later — goes through here, so transport failures map to 502/503/504 in one place.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, USER_AGENT};
use reqwest::{Method, ResponseBuilderExt as _, StatusCode};
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

use crate::config::{Secret, UpstreamSettings};
use crate::metrics::metrics;
use crate::trace_context;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const APIKEY: HeaderName = HeaderName::from_static("apikey");
/// Distinct upstream paths whose parsed URL is kept (a few hundred bytes each).
const URL_CACHE_ENTRIES: usize = 1024;

/// Why an outbound call failed, before any upstream-specific interpretation.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{upstream}: unreachable: {cause}")]
    Unavailable {
        upstream: &'static str,
        cause: String,
    },
    #[error("{upstream}: timed out: {cause}")]
    Timeout {
        upstream: &'static str,
        cause: String,
    },
    /// A non-2xx answer; the body is kept for the caller's error mapping and the log.
    #[error("{upstream}: answered {status}: {}", body_preview(body))]
    Status {
        upstream: &'static str,
        status: StatusCode,
        body: Bytes,
    },
    /// An answer that was not what we asked for: a 2xx body that is not JSON (HTML from a
    /// proxy, truncated JSON), or an answer that is not valid HTTP at all.
    #[error("{upstream}: unexpected body: {cause}")]
    InvalidBody {
        upstream: &'static str,
        cause: String,
    },
    #[error("{upstream}: answer larger than {limit} bytes")]
    TooLarge {
        upstream: &'static str,
        limit: usize,
    },
}

/// The reqwest client a request builder carries; requests are sent by [`HttpClient`].
fn builder_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(reqwest::Client::new)
}

/// An upstream body that fails with `TimedOut` once the call's deadline passes, so the
/// request timeout bounds the whole call, body included (a trickling upstream is cut).
struct Deadline {
    body: hyper::body::Incoming,
    expires: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    fn new(body: hyper::body::Incoming, deadline: tokio::time::Instant) -> Self {
        Self {
            body,
            expires: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use std::future::Future;
        use std::task::Poll;
        // The body first: a body that is ready never starts the timer.
        if let Poll::Ready(frame) = std::pin::Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        match self.expires.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "upstream body not complete within the request timeout",
            ))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

fn body_preview(body: &Bytes) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    text.replace(['\n', '\r'], " ")
}

/// A capped upstream body for `HttpResponse::streaming` (polled on the worker thread that
/// serves the request, so it need not be `Send`).
pub type BodyStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, UpstreamError>>>>;

impl UpstreamError {
    /// A failure at the connection level with no response received: safe to retry a read.
    /// Timeouts are excluded (they map to [`UpstreamError::Timeout`]).
    fn is_retryable(&self) -> bool {
        matches!(self, UpstreamError::Unavailable { .. })
    }

    /// A failure of hyper's client before any answer arrived: the connection could not be
    /// made, or it broke before the status line. Both are "unavailable" (and retryable).
    /// The exception: an answer that is not valid HTTP, or whose head outgrows the read
    /// buffer, came from a working upstream; that is a bad answer (502), and not retried.
    fn from_transport(upstream: &'static str, e: hyper_util::client::legacy::Error) -> Self {
        use std::error::Error as _;
        let mut cause = e.to_string();
        let mut malformed = false;
        let mut source = e.source();
        while let Some(inner) = source {
            cause.push_str(": ");
            cause.push_str(&inner.to_string());
            // `is_parse` covers a head over the buffer too (Parse::TooLarge).
            malformed |= inner
                .downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_parse);
            source = inner.source();
        }
        if malformed {
            UpstreamError::InvalidBody { upstream, cause }
        } else {
            UpstreamError::Unavailable { upstream, cause }
        }
    }

    fn from_reqwest(upstream: &'static str, e: reqwest::Error) -> Self {
        // Strip the URL: it may carry query values, and the log line names the upstream anyway.
        let (timeout, connect, body) =
            (e.is_timeout(), e.is_connect(), e.is_decode() || e.is_body());
        let cause = e.without_url().to_string();
        if timeout {
            UpstreamError::Timeout { upstream, cause }
        } else if connect {
            UpstreamError::Unavailable { upstream, cause }
        } else if body {
            UpstreamError::InvalidBody { upstream, cause }
        } else {
            // Reset mid-request and similar transport faults: the upstream is not usable.
            UpstreamError::Unavailable { upstream, cause }
        }
    }
}

/// The pooled client and its bound on concurrent upstream calls, shared by every [`JsonApi`].
#[derive(Clone, Debug)]
pub struct HttpClient {
    transport: Transport,
    request_timeout: Duration,
    /// One permit per call in flight (held until its body is read or dropped), so the pool
    /// never holds more than `upstream.max_connections` connections, whatever the number of
    /// clients: each costs buffers and a task, and 1 000 clients would otherwise open 1 000.
    slots: Arc<Semaphore>,
    /// How long a call may wait for a slot before it fails as a timeout.
    slot_wait: Duration,
}

/// A call's slot, kept with its response until the body is read or dropped.
#[derive(Clone)]
struct Slot(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

type Transport = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    reqwest::Body,
>;

/// Per pooled connection; also the largest response head accepted (Supabase's are < 2 KiB).
const UPSTREAM_READ_BUFFER: usize = 16 * 1024;

const AGENT: &str = concat!("supagate/", env!("CARGO_PKG_VERSION"));

/// Builds the single pooled client from configuration. hyper never follows redirects: from an
/// API they are a misconfiguration, and following one could leak the key.
pub fn build_client(settings: &UpstreamSettings) -> anyhow::Result<HttpClient> {
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)));
    http.set_nodelay(true);
    http.enforce_http(false);
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    })
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let transport = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(settings.pool_idle_timeout_secs))
        .pool_max_idle_per_host(settings.pool_max_idle_per_host)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        // hyper's adaptive read buffer doubles past a read that fills it: a 9 KB list answer
        // left every pooled connection holding 32 KiB. A fixed 16 KiB holds a PostgREST
        // head and a typical page in one read; a longer body is read in 16 KiB pieces.
        .http1_read_buf_exact_size(UPSTREAM_READ_BUFFER)
        .build(https);
    Ok(HttpClient {
        transport,
        request_timeout: Duration::from_millis(settings.request_timeout_ms),
        slots: Arc::new(Semaphore::new(settings.max_connections.max(1))),
        slot_wait: Duration::from_millis(settings.request_timeout_ms),
    })
}

impl HttpClient {
    /// A slot for one call: at once when one is free (the usual case, no timer), else after
    /// waiting up to the request timeout.
    async fn slot(&self, upstream: &'static str) -> Result<Slot, UpstreamError> {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                metrics().observe_upstream(upstream, "queued", Duration::ZERO);
                tokio::time::timeout(self.slot_wait, self.slots.clone().acquire_owned())
                    .await
                    .map_err(|_| UpstreamError::Timeout {
                        upstream,
                        cause: "no free upstream connection (upstream.max_connections)".into(),
                    })?
                    .map_err(|_| UpstreamError::Unavailable {
                        upstream,
                        cause: "client closed".into(),
                    })?
            }
        };
        Ok(Slot(Arc::new(permit)))
    }
}

/// A JSON API: a base URL, default headers (keys), and the shared client.
#[derive(Clone, Debug)]
pub struct JsonApi {
    name: &'static str,
    client: HttpClient,
    /// Parsed once: a call's URL is this with its path and query set, so no call parses a
    /// host (reqwest would run the IDNA host rules on every `Url::parse`).
    base: Url,
    /// The base's path without its trailing slash (`/rest/v1`).
    base_path: String,
    /// Built URLs by path and query. reqwest takes a parsed `Url`, and parsing a PostgREST
    /// query (a select list, filters, order) cost ~8 % of a proxied GET's instructions
    /// (callgrind); the same few queries repeat, so each is parsed once. Bounded.
    urls: Arc<quick_cache::sync::Cache<String, Url>>,
    apikey: Option<HeaderValue>,
    max_body_bytes: usize,
}

impl JsonApi {
    /// `name` labels logs and errors (`rest`, `auth`, ...). `key`, when given, is sent as
    /// `apikey` on every call (the Supabase gateway convention); the bearer is per call.
    pub fn new(
        name: &'static str,
        client: HttpClient,
        base: impl Into<String>,
        key: Option<&Secret>,
        max_body_bytes: usize,
    ) -> anyhow::Result<Self> {
        let apikey = key
            .map(|key| {
                let mut apikey = HeaderValue::from_str(key.expose())?;
                apikey.set_sensitive(true);
                anyhow::Ok(apikey)
            })
            .transpose()?;
        let base = Url::parse(base.into().trim_end_matches('/'))?;
        anyhow::ensure!(
            base.query().is_none() && base.fragment().is_none(),
            "{name}: the base URL may not carry a query or fragment"
        );
        Ok(Self {
            name,
            urls: Arc::new(quick_cache::sync::Cache::new(URL_CACHE_ENTRIES)),
            base_path: base.path().trim_end_matches('/').to_owned(),
            client,
            base,
            apikey,
            max_body_bytes,
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The base with `path` (which may carry a `?query`) appended.
    pub fn url(&self, path: &str) -> Url {
        if let Some(url) = self.urls.get(path) {
            return url;
        }
        let url = self.build_url(path);
        self.urls.insert(path.to_owned(), url.clone());
        url
    }

    fn build_url(&self, path: &str) -> Url {
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        let mut url = self.base.clone();
        if self.base_path.is_empty() {
            url.set_path(path);
        } else {
            let mut full = String::with_capacity(self.base_path.len() + path.len());
            full.push_str(&self.base_path);
            full.push_str(path);
            url.set_path(&full);
        }
        url.set_query(query);
        url
    }

    /// A request with the default headers (`Accept: application/json`, the key as
    /// `apikey`); add the caller's bearer with [`bearer`].
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = reqwest::Request::new(method, self.url(path));
        let headers = request.headers_mut();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(key) = &self.apikey {
            headers.insert(APIKEY, key.clone());
        }
        // The builder's client is never used to send (see `attempt`): a default one is cheap
        // to clone and keeps reqwest's builder API for every call site.
        reqwest::RequestBuilder::from_parts(builder_client().clone(), request)
    }

    /// Sends and returns the raw response for any status (for callers that stream or map
    /// upstream error bodies themselves). Transport failures become [`UpstreamError`].
    ///
    /// `GET` and `HEAD` are idempotent reads: they get exactly one retry when the first
    /// attempt failed at the connection level before any response arrived (connection
    /// refused, reset or closed before the status line). Never on a timeout (the upstream may
    /// be working on it, and a retry would double the caller's wait), never for a write.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, UpstreamError> {
        let request = request
            .build()
            .map_err(|e| UpstreamError::from_reqwest(self.name, e))?;
        let retry = if matches!(*request.method(), Method::GET | Method::HEAD) {
            request.try_clone()
        } else {
            None
        };
        let first = self.attempt(request).await;
        match (first, retry) {
            (Err(e), Some(again)) if e.is_retryable() => {
                tracing::debug!("{}: retrying an idempotent read once after: {e}", self.name);
                // Boxed: inline, rustc kept room for both attempts in every call's future
                // (720 bytes more, measured with size_of_val), and each of 1 000 calls
                // waiting for an upstream slot holds its whole future.
                Box::pin(self.attempt(again)).await
            }
            (first, _) => first,
        }
    }

    /// The one place every outbound call passes: it carries the trace of the request being
    /// served (W3C `traceparent`, and the client's `tracestate` with a continued trace), so
    /// Supabase's logs can be matched to ours. Background calls (the periodic JWKS refresh)
    /// serve no request and carry none.
    ///
    /// reqwest builds the request; hyper's pooled client sends it. reqwest's own `execute`
    /// parses the URL twice more per call (in its redirect layer and for its response), which
    /// callgrind put at an eighth of a proxied GET's instructions (README, dependency notes).
    /// The answer is handed back as a `reqwest::Response` over the hyper body, with the
    /// request timeout covering the body as reqwest's total timeout did.
    async fn attempt(
        &self,
        mut request: reqwest::Request,
    ) -> Result<reqwest::Response, UpstreamError> {
        trace_context::with_current(|trace| {
            let headers = request.headers_mut();
            if let Ok(value) = HeaderValue::from_bytes(&trace.traceparent()) {
                headers.insert(TRACEPARENT, value);
            }
            if let Some(value) = trace
                .tracestate()
                .and_then(|s| HeaderValue::from_str(s).ok())
            {
                headers.insert(TRACESTATE, value);
            }
        });
        let started = std::time::Instant::now();
        let slot = self.client.slot(self.name).await?;
        let timeout = request
            .timeout()
            .copied()
            .unwrap_or(self.client.request_timeout);
        let deadline = tokio::time::Instant::now() + timeout;
        // For the answer: without its request's URL attached, reqwest's `Response::from`
        // parses a placeholder URL on every call (callgrind: 3.2k instructions a call).
        let url = request.url().clone();
        let mut outgoing: http::Request<reqwest::Body> = request
            .try_into()
            .map_err(|e| UpstreamError::from_reqwest(self.name, e))?;
        outgoing
            .headers_mut()
            .entry(USER_AGENT)
            .or_insert(HeaderValue::from_static(AGENT));
        let result = match tokio::time::timeout_at(
            deadline,
            self.client.transport.request(outgoing),
        )
        .await
        {
            Err(_) => Err(UpstreamError::Timeout {
                upstream: self.name,
                cause: format!("no answer within {} ms", timeout.as_millis()),
            }),
            Ok(Err(e)) => Err(UpstreamError::from_transport(self.name, e)),
            Ok(Ok(res)) => {
                let (mut parts, body) = res.into_parts();
                let mut tagged = http::response::Builder::new().url(url);
                if let Some(extensions) = tagged.extensions_mut() {
                    parts.extensions.extend(std::mem::take(extensions));
                }
                let body = reqwest::Body::wrap(Deadline::new(body, deadline));
                let mut res = reqwest::Response::from(http::Response::from_parts(parts, body));
                res.extensions_mut().insert(slot);
                Ok(res)
            }
        };
        let outcome = match &result {
            Ok(res) if res.status().is_server_error() => "http_5xx",
            Ok(res) if res.status().is_client_error() => "http_4xx",
            Ok(_) => "ok",
            Err(UpstreamError::Timeout { .. }) => "timeout",
            Err(UpstreamError::InvalidBody { .. }) => "invalid_body",
            Err(_) => "unavailable",
        };
        metrics().observe_upstream(self.name, outcome, started.elapsed());
        result
    }

    /// A response body to stream through to a client, capped at `upstream.max_body_bytes`:
    /// a declared `Content-Length` over the cap is refused before anything is sent (502); an
    /// undeclared body that grows past it, or a transport failure mid-body (reset, timeout),
    /// ends the stream with an error. The status and headers are already on the wire by then,
    /// so actix aborts the connection without the terminating chunk: the client sees a
    /// truncated response, never a short body that looks complete.
    pub fn stream_body(&self, res: reqwest::Response) -> Result<BodyStream, UpstreamError> {
        let limit = self.max_body_bytes;
        if res.content_length().is_some_and(|len| len > limit as u64) {
            return Err(UpstreamError::TooLarge {
                upstream: self.name,
                limit,
            });
        }
        let name = self.name;
        // The call's slot is held until the body has been streamed (or the client left).
        let slot = res.extensions().get::<Slot>().cloned();
        // The body is polled after the handler returned, outside the request's log context:
        // the context is kept so an aborted stream is still logged under its request.
        let request = crate::telemetry::current_request();
        let mut seen = 0usize;
        let mut failed = false;
        let stream = res.bytes_stream().map(move |chunk| {
            let _slot = &slot;
            if failed {
                // Unreachable in practice: actix stops polling after the first error.
                return Err(UpstreamError::InvalidBody {
                    upstream: name,
                    cause: "stream already failed".to_owned(),
                });
            }
            let result = match chunk {
                Ok(chunk) if seen + chunk.len() > limit => Err(UpstreamError::TooLarge {
                    upstream: name,
                    limit,
                }),
                Ok(chunk) => {
                    seen += chunk.len();
                    Ok(chunk)
                }
                Err(e) => Err(UpstreamError::from_reqwest(name, e)),
            };
            if let Err(e) = &result {
                failed = true;
                let log =
                    || tracing::warn!("{name}: streamed body aborted after {seen} bytes: {e}");
                match &request {
                    Some(request) => request.in_scope(log),
                    None => log(),
                }
                metrics().observe_upstream(name, "aborted_stream", Duration::ZERO);
            }
            result
        });
        Ok(Box::pin(stream))
    }

    /// Reads a whole body, refusing more than the configured cap.
    pub async fn read_body(&self, mut res: reqwest::Response) -> Result<Bytes, UpstreamError> {
        if let Some(len) = res.content_length() {
            if len > self.max_body_bytes as u64 {
                return Err(UpstreamError::TooLarge {
                    upstream: self.name,
                    limit: self.max_body_bytes,
                });
            }
        }
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = res
            .chunk()
            .await
            .map_err(|e| UpstreamError::from_reqwest(self.name, e))?
        {
            if buf.len() + chunk.len() > self.max_body_bytes {
                return Err(UpstreamError::TooLarge {
                    upstream: self.name,
                    limit: self.max_body_bytes,
                });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// Sends and returns `(status, body)` for 2xx; non-2xx becomes [`UpstreamError::Status`].
    pub async fn execute(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, HeaderMap, Bytes), UpstreamError> {
        let res = self.send(request).await?;
        let status = res.status();
        let headers = res.headers().clone();
        let body = self.read_body(res).await?;
        if !status.is_success() {
            return Err(UpstreamError::Status {
                upstream: self.name,
                status,
                body,
            });
        }
        Ok((status, headers, body))
    }

    pub fn decode<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, UpstreamError> {
        serde_json::from_slice(body).map_err(|e| UpstreamError::InvalidBody {
            upstream: self.name,
            cause: e.to_string(),
        })
    }
}

/// Adds `Authorization: Bearer <token>`, marked sensitive so it never shows in debug output.
pub fn bearer(request: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    match HeaderValue::from_str(&format!("Bearer {token}")) {
        Ok(mut value) => {
            value.set_sensitive(true);
            request.header(AUTHORIZATION, value)
        }
        // Tokens reaching here were verified and are ASCII; a bad one simply goes without.
        Err(_) => request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(base: &str) -> JsonApi {
        let settings = UpstreamSettings {
            connect_timeout_ms: 100,
            request_timeout_ms: 100,
            pool_idle_timeout_secs: 1,
            pool_max_idle_per_host: 1,
            max_connections: 1,
            max_body_bytes: 1024,
        };
        let client = build_client(&settings).unwrap();
        JsonApi::new("rest", client, base, None, 1024).unwrap()
    }

    #[test]
    fn call_urls_are_the_base_path_followed_by_the_path_and_query_byte_for_byte() {
        let rest = api("http://127.0.0.1:54321/rest/v1/");
        let path = "/items?select=id%2Cname&order=created_at.desc%2Cid.desc&limit=20";
        let expected = format!("http://127.0.0.1:54321/rest/v1{path}");
        assert_eq!(rest.url(path).as_str(), expected);
        // The second call is served from the parsed-URL cache: the same URL.
        assert_eq!(rest.url(path).as_str(), expected);
        assert_eq!(
            rest.url("/").as_str(),
            "http://127.0.0.1:54321/rest/v1/",
            "the PostgREST root (readiness probe)"
        );
        let root = api("https://abc.supabase.co");
        assert_eq!(
            root.url("/health?x=1").as_str(),
            "https://abc.supabase.co/health?x=1"
        );
    }
}
