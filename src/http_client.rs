//! The one outbound HTTP client (pooled, keep-alive, timeouts on every call) and a small
//! JSON API wrapper on top of it. Every upstream — PostgREST, Supabase Auth, anything a team
//! adds later — goes through here, so transport failures map to 502/503/504 in one place.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::config::{Secret, UpstreamSettings};
use crate::metrics::metrics;
use crate::trace_context;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

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
    /// A 2xx answer whose body was not what we asked for (HTML from a proxy, truncated JSON).
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

fn body_preview(body: &Bytes) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    text.replace(['\n', '\r'], " ")
}

/// A capped upstream body for `HttpResponse::streaming`.
pub type BodyStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, UpstreamError>> + Send>>;

impl UpstreamError {
    /// A failure at the connection level with no response received: safe to retry a read.
    /// Timeouts are excluded (they map to [`UpstreamError::Timeout`]).
    fn is_retryable(&self) -> bool {
        matches!(self, UpstreamError::Unavailable { .. })
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

/// Builds the single pooled client from configuration.
pub fn build_client(settings: &UpstreamSettings) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
        .timeout(Duration::from_millis(settings.request_timeout_ms))
        .pool_idle_timeout(Duration::from_secs(settings.pool_idle_timeout_secs))
        .pool_max_idle_per_host(settings.pool_max_idle_per_host)
        .tcp_nodelay(true)
        .user_agent(concat!("supagate/", env!("CARGO_PKG_VERSION")))
        // Redirects from an API are a misconfiguration; following them could leak the key.
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// A JSON API: a base URL, default headers (keys), and the shared client.
#[derive(Clone, Debug)]
pub struct JsonApi {
    name: &'static str,
    client: reqwest::Client,
    base: String,
    headers: HeaderMap,
    max_body_bytes: usize,
}

impl JsonApi {
    /// `name` labels logs and errors (`rest`, `auth`, ...). `key`, when given, is sent as
    /// `apikey` on every call (the Supabase gateway convention); the bearer is per call.
    pub fn new(
        name: &'static str,
        client: reqwest::Client,
        base: impl Into<String>,
        key: Option<&Secret>,
        max_body_bytes: usize,
    ) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(key) = key {
            let mut apikey = HeaderValue::from_str(key.expose())?;
            apikey.set_sensitive(true);
            headers.insert(HeaderName::from_static("apikey"), apikey);
        }
        Ok(Self {
            name,
            client,
            base: base.into().trim_end_matches('/').to_owned(),
            headers,
            max_body_bytes,
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with the default headers; add the caller's bearer with [`bearer`].
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .headers(self.headers.clone())
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
        let (client, request) = request.build_split();
        let request = request.map_err(|e| UpstreamError::from_reqwest(self.name, e))?;
        let retry = if matches!(*request.method(), Method::GET | Method::HEAD) {
            request.try_clone()
        } else {
            None
        };
        let first = self.attempt(&client, request).await;
        match (first, retry) {
            (Err(e), Some(again)) if e.is_retryable() => {
                tracing::debug!("{}: retrying an idempotent read once after: {e}", self.name);
                self.attempt(&client, again).await
            }
            (first, _) => first,
        }
    }

    /// The one place every outbound call passes: it carries the trace of the request being
    /// served (W3C `traceparent`, and the client's `tracestate` with a continued trace), so
    /// Supabase's logs can be matched to ours. Background calls (the periodic JWKS refresh)
    /// serve no request and carry none.
    async fn attempt(
        &self,
        client: &reqwest::Client,
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
        let result = client
            .execute(request)
            .await
            .map_err(|e| UpstreamError::from_reqwest(self.name, e));
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
        // The body is polled after the handler returned, outside the request's span: the
        // span is kept so an aborted stream is still logged under its request.
        let span = tracing::Span::current();
        let mut seen = 0usize;
        let mut failed = false;
        let stream = res.bytes_stream().map(move |chunk| {
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
                span.in_scope(|| {
                    tracing::warn!("{name}: streamed body aborted after {seen} bytes: {e}")
                });
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
