//! The one outbound HTTP client (pooled, keep-alive, timeouts on every call) and a small
//! JSON API wrapper on top of it. Every upstream — PostgREST, Supabase Auth, a job's external
//! API, anything a team adds later — goes through here, so transport failures map to
//! 502/503/504 in one place. Calls are plain `http` requests sent by hyper-util's pool.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT,
};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Secret, UpstreamSettings};
use crate::metrics::metrics;
use crate::trace_context;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const APIKEY: HeaderName = HeaderName::from_static("apikey");

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

impl std::fmt::Debug for Deadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deadline").finish_non_exhaustive()
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

    /// A failure while the body was read: the call's deadline passing is a timeout (504);
    /// anything else (a reset mid-body, a broken chunk) left an answer that cannot be used.
    /// hyper's messages name no URL, so the cause is safe to log.
    fn from_body(upstream: &'static str, e: &(dyn std::error::Error + 'static)) -> Self {
        let mut cause = String::new();
        let mut timed_out = false;
        let mut source = Some(e);
        while let Some(inner) = source {
            if !cause.is_empty() {
                cause.push_str(": ");
            }
            cause.push_str(&inner.to_string());
            timed_out |= inner
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
            source = inner.source();
        }
        if timed_out {
            UpstreamError::Timeout { upstream, cause }
        } else {
            UpstreamError::InvalidBody { upstream, cause }
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

type Transport = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
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
    async fn slot(&self, upstream: &'static str) -> Result<OwnedSemaphorePermit, UpstreamError> {
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => Ok(permit),
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
                    })
            }
        }
    }
}

/// One outbound call as its call site builds it, relative to a [`JsonApi`]'s base: it becomes
/// an `http::Request` only when sent, so the base's parts are joined to it once, there.
#[derive(Clone, Debug)]
pub struct Call {
    method: Method,
    /// Appended to the base path as given: callers encode their paths and queries.
    path_and_query: String,
    headers: HeaderMap,
    body: Bytes,
    /// This call's deadline when it is not the client's `upstream.request_timeout_ms`.
    timeout: Option<Duration>,
    /// Why the call cannot be sent (a header or body that could not be made): the builder
    /// methods chain without a `Result`, and [`JsonApi::send`] reports the first problem.
    invalid: Option<String>,
}

impl Call {
    fn new(method: Method, path_and_query: &str, headers: HeaderMap) -> Self {
        Self {
            method,
            path_and_query: path_and_query.to_owned(),
            headers,
            body: Bytes::new(),
            timeout: None,
            invalid: None,
        }
    }

    fn refuse(&mut self, cause: impl Into<String>) {
        self.invalid.get_or_insert_with(|| cause.into());
    }

    /// Adds a header (a second value of the same name is added beside the first).
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        HeaderValue: TryFrom<V>,
    {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(name), Ok(value)) => {
                self.headers.append(name, value);
            }
            // Neither the name nor the value is echoed: a value may be a key.
            _ => self.refuse("a request header is not valid HTTP"),
        }
        self
    }

    /// Sets these headers, replacing any value already set under the same names (the
    /// default `Accept`, for one).
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        self.headers.extend(headers);
        self
    }

    /// Appends `name=value` pairs to the query, form-encoded (a space as `+`).
    pub fn query<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Self {
        use url::form_urlencoded::byte_serialize;
        for (name, value) in pairs {
            let separator = if self.path_and_query.contains('?') {
                '&'
            } else {
                '?'
            };
            self.path_and_query.push(separator);
            self.path_and_query
                .extend(byte_serialize(name.as_ref().as_bytes()));
            self.path_and_query.push('=');
            self.path_and_query
                .extend(byte_serialize(value.as_ref().as_bytes()));
        }
        self
    }

    /// `value` as the JSON body, with `Content-Type: application/json` unless one is set.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => {
                self.headers
                    .entry(CONTENT_TYPE)
                    .or_insert(HeaderValue::from_static("application/json"));
                self.body = Bytes::from(body);
            }
            Err(e) => self.refuse(format!("request body: {e}")),
        }
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// A deadline for this call (connection, answer and body) other than the client's.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Adds `Authorization: Bearer <token>`, marked sensitive so it never shows in debug
    /// output.
    pub fn bearer(self, token: &str) -> Self {
        match HeaderValue::from_str(&format!("Bearer {token}")) {
            Ok(mut value) => {
                value.set_sensitive(true);
                self.header(AUTHORIZATION, value)
            }
            // Tokens reaching here were verified and are ASCII; a bad one simply goes without.
            Err(_) => self,
        }
    }
}

/// An upstream's answer: its status and headers, and the body still to be read (bounded by
/// the call's deadline). It holds the call's connection slot until it is read or dropped.
#[derive(Debug)]
pub struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Deadline,
    slot: OwnedSemaphorePermit,
}

impl Answer {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body's length when the upstream declared it (`Content-Length`), as hyper read it.
    pub fn content_length(&self) -> Option<u64> {
        http_body::Body::size_hint(&self.body).exact()
    }
}

/// A JSON API: a base URI, default headers (keys), and the shared client.
#[derive(Clone, Debug)]
pub struct JsonApi {
    name: &'static str,
    client: HttpClient,
    /// The base, parsed once: a call's URI is these with the base path and the call's path
    /// and query, so no call parses a host or re-encodes a path.
    scheme: Scheme,
    authority: Authority,
    /// The base's path without its trailing slash (`/rest/v1`).
    base_path: Arc<str>,
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
        // Once, at start-up, through the URL rules the configuration was validated with (an
        // international host becomes its ASCII form, a path is percent-encoded); the result
        // is then a valid `http::Uri` whose parts every call reuses.
        let base = url::Url::parse(base.into().trim_end_matches('/'))?;
        anyhow::ensure!(
            base.query().is_none() && base.fragment().is_none(),
            "{name}: the base URL may not carry a query or fragment"
        );
        anyhow::ensure!(
            matches!(base.scheme(), "http" | "https"),
            "{name}: the base URL must be http or https"
        );
        let parts = base.as_str().parse::<Uri>()?.into_parts();
        let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
            anyhow::bail!("{name}: the base URL must have a host");
        };
        Ok(Self {
            name,
            client,
            scheme,
            authority,
            base_path: base.path().trim_end_matches('/').into(),
            apikey,
            max_body_bytes,
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The base with `path` (which may carry a `?query`) appended, byte for byte.
    fn uri(&self, path: &str) -> Result<Uri, http::Error> {
        let mut full = String::with_capacity(self.base_path.len() + path.len() + 1);
        full.push_str(&self.base_path);
        full.push_str(path);
        if !full.starts_with('/') {
            // Only with an empty base path: the root itself, or a bare `?query`.
            full.insert(0, '/');
        }
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(PathAndQuery::try_from(full)?);
        Ok(Uri::from_parts(parts)?)
    }

    /// A call with the default headers (`Accept: application/json`, the key as `apikey`);
    /// add the caller's bearer with [`Call::bearer`].
    pub fn request(&self, method: Method, path: &str) -> Call {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(key) = &self.apikey {
            headers.insert(APIKEY, key.clone());
        }
        Call::new(method, path, headers)
    }

    /// Sends and returns the raw answer for any status (for callers that stream or map
    /// upstream error bodies themselves). Transport failures become [`UpstreamError`].
    ///
    /// `GET` and `HEAD` are idempotent reads: they get exactly one retry when the first
    /// attempt failed at the connection level before any response arrived (connection
    /// refused, reset or closed before the status line). Never on a timeout (the upstream may
    /// be working on it, and a retry would double the caller's wait), never for a write.
    pub async fn send(&self, call: Call) -> Result<Answer, UpstreamError> {
        let (request, timeout) = self.outgoing(call)?;
        let retry = if matches!(*request.method(), Method::GET | Method::HEAD) {
            Some(copy(&request))
        } else {
            None
        };
        let first = self.attempt(request, timeout).await;
        match (first, retry) {
            (Err(e), Some(again)) if e.is_retryable() => {
                tracing::debug!("{}: retrying an idempotent read once after: {e}", self.name);
                // Boxed: inline, rustc kept room for both attempts in every call's future
                // (720 bytes more, measured with size_of_val), and each of 1 000 calls
                // waiting for an upstream slot holds its whole future.
                Box::pin(self.attempt(again, timeout)).await
            }
            (first, _) => first,
        }
    }

    /// The request hyper sends, and its deadline. It carries the trace of the request being
    /// served (W3C `traceparent`, and the client's `tracestate` with a continued trace) and its
    /// `X-Request-Id`, so Supabase's logs can be matched to ours. Background calls (the
    /// periodic JWKS refresh) serve no request and carry none.
    fn outgoing(
        &self,
        call: Call,
    ) -> Result<(http::Request<Full<Bytes>>, Duration), UpstreamError> {
        let unbuilt = |cause: String| UpstreamError::Unavailable {
            upstream: self.name,
            cause,
        };
        if let Some(cause) = call.invalid {
            return Err(unbuilt(cause));
        }
        // The error names the fault, never the path or query (they may carry user values).
        let uri = self
            .uri(&call.path_and_query)
            .map_err(|e| unbuilt(format!("request URI: {e}")))?;
        let mut request = http::Request::new(Full::new(call.body));
        *request.method_mut() = call.method;
        *request.uri_mut() = uri;
        *request.headers_mut() = call.headers;
        let headers = request.headers_mut();
        trace_context::with_current(|trace| {
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
        // The request id too: PostgREST hands request headers to SQL (`request.headers`), where
        // the audit trigger records it beside each write.
        crate::telemetry::with_request_id(|id| {
            if let Ok(value) = HeaderValue::from_str(id) {
                headers.insert(HeaderName::from_static("x-request-id"), value);
            }
        });
        headers
            .entry(USER_AGENT)
            .or_insert(HeaderValue::from_static(AGENT));
        Ok((request, call.timeout.unwrap_or(self.client.request_timeout)))
    }

    /// The one place every outbound call passes: waits for a slot, sends through hyper's
    /// pool, and hands back the answer whose body fails with `TimedOut` at the deadline.
    async fn attempt(
        &self,
        request: http::Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Answer, UpstreamError> {
        let started = std::time::Instant::now();
        let slot = self.client.slot(self.name).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        let result =
            match tokio::time::timeout_at(deadline, self.client.transport.request(request)).await {
                Err(_) => Err(UpstreamError::Timeout {
                    upstream: self.name,
                    cause: format!("no answer within {} ms", timeout.as_millis()),
                }),
                Ok(Err(e)) => Err(UpstreamError::from_transport(self.name, e)),
                Ok(Ok(res)) => {
                    let (parts, body) = res.into_parts();
                    Ok(Answer {
                        status: parts.status,
                        headers: parts.headers,
                        body: Deadline::new(body, deadline),
                        slot,
                    })
                }
            };
        let outcome = match &result {
            Ok(res) if res.status.is_server_error() => "http_5xx",
            Ok(res) if res.status.is_client_error() => "http_4xx",
            Ok(_) => "ok",
            Err(UpstreamError::Timeout { .. }) => "timeout",
            Err(UpstreamError::InvalidBody { .. }) => "invalid_body",
            Err(_) => "unavailable",
        };
        metrics().observe_upstream(self.name, outcome, started.elapsed());
        result
    }

    fn too_large(&self) -> UpstreamError {
        UpstreamError::TooLarge {
            upstream: self.name,
            limit: self.max_body_bytes,
        }
    }

    /// Reads a whole body, refusing more than the configured cap.
    pub async fn read_body(&self, res: Answer) -> Result<Bytes, UpstreamError> {
        if res
            .content_length()
            .is_some_and(|len| len > self.max_body_bytes as u64)
        {
            return Err(self.too_large());
        }
        let expected = res.content_length();
        // The slot is released when the body has been read, with the answer.
        let Answer { mut body, slot, .. } = res;
        // A body that arrives as one chunk is handed on as it is (no copy); only a second
        // chunk starts a buffer, sized for the whole body when its length is known.
        let mut first: Option<Bytes> = None;
        let mut buf: Option<bytes::BytesMut> = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| UpstreamError::from_body(self.name, &*e))?;
            // Trailers (never sent by Supabase) are not part of the body.
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            let held = buf.as_ref().map_or(0, |b| b.len()) + first.as_ref().map_or(0, |b| b.len());
            if held + chunk.len() > self.max_body_bytes {
                return Err(self.too_large());
            }
            match (&mut buf, first.take()) {
                (Some(buf), _) => buf.extend_from_slice(&chunk),
                (None, None) => first = Some(chunk),
                (None, Some(earlier)) => {
                    let size = expected.map_or(0, |n| usize::try_from(n).unwrap_or(0));
                    let mut joined =
                        bytes::BytesMut::with_capacity(size.max(earlier.len() + chunk.len()));
                    joined.extend_from_slice(&earlier);
                    joined.extend_from_slice(&chunk);
                    buf = Some(joined);
                }
            }
        }
        drop(slot);
        Ok(match buf {
            Some(buf) => buf.freeze(),
            None => first.unwrap_or_default(),
        })
    }

    /// Sends and returns `(status, body)` for 2xx; non-2xx becomes [`UpstreamError::Status`].
    pub async fn execute(
        &self,
        call: Call,
    ) -> Result<(StatusCode, HeaderMap, Bytes), UpstreamError> {
        let mut res = self.send(call).await?;
        let status = res.status;
        let headers = std::mem::take(&mut res.headers);
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

/// A second copy of a request for its one retry: the body is `Bytes`, so its data is shared,
/// not copied (hyper consumes the request it sends, and gives nothing back on failure).
fn copy(request: &http::Request<Full<Bytes>>) -> http::Request<Full<Bytes>> {
    let mut again = http::Request::new(request.body().clone());
    *again.method_mut() = request.method().clone();
    *again.uri_mut() = request.uri().clone();
    *again.headers_mut() = request.headers().clone();
    again
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
        assert_eq!(rest.uri(path).unwrap().to_string(), expected);
        assert_eq!(
            rest.uri("/").unwrap().to_string(),
            "http://127.0.0.1:54321/rest/v1/",
            "the PostgREST root (readiness probe)"
        );
        let root = api("https://abc.supabase.co");
        assert_eq!(
            root.uri("/health?x=1").unwrap().to_string(),
            "https://abc.supabase.co/health?x=1"
        );
    }

    #[test]
    fn query_pairs_are_form_encoded_after_the_query_already_in_the_path() {
        let rest = api("http://127.0.0.1:54321/rest/v1");
        let call = rest
            .request(Method::GET, "/webhook_events?select=id")
            .query(&[("id", "eq.evt 1&x=é")]);
        assert_eq!(
            rest.uri(&call.path_and_query).unwrap().to_string(),
            "http://127.0.0.1:54321/rest/v1/webhook_events?select=id&id=eq.evt+1%26x%3D%C3%A9"
        );
        let call = rest
            .request(Method::POST, "/logout")
            .query(&[("scope", "local")]);
        assert_eq!(call.path_and_query, "/logout?scope=local");
    }

    #[test]
    fn set_headers_replace_the_defaults_and_added_ones_go_beside_them() {
        let rest = api("http://127.0.0.1:54321/rest/v1");
        let mut accept = HeaderMap::new();
        accept.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.pgrst.object+json"),
        );
        let call = rest
            .request(Method::GET, "/items")
            .headers(accept)
            .header("prefer", "a")
            .header("prefer", "b")
            .bearer("token");
        let values = |name| call.headers.get_all(name).iter().count();
        assert_eq!(values(ACCEPT), 1);
        assert_eq!(call.headers[ACCEPT], "application/vnd.pgrst.object+json");
        assert_eq!(values(HeaderName::from_static("prefer")), 2);
        assert!(call.headers[AUTHORIZATION].is_sensitive());
    }

    #[tokio::test]
    async fn a_call_that_cannot_be_built_fails_without_naming_its_values() {
        let rest = api("http://127.0.0.1:54321/rest/v1");
        let call = rest
            .request(Method::GET, "/items")
            .header("x-key", "secret\nvalue");
        match rest.send(call).await {
            Err(e @ UpstreamError::Unavailable { .. }) => {
                assert!(!e.to_string().contains("secret"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        let call = rest.request(Method::GET, "/items?q=secret value");
        match rest.send(call).await {
            Err(e @ UpstreamError::Unavailable { .. }) => {
                assert!(!e.to_string().contains("secret"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
}
