//! Cross-cutting request handling: request id, the request's log context and trace
//! context, security headers and the access log line. CORS and body limits are configured in
//! `server.rs`, next to the route table.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use uuid::Uuid;

use crate::telemetry::{self, RequestLog};
use crate::trace_context::TraceContext;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// An incoming id is reused when it is 1–128 characters of `[A-Za-z0-9._:-]` (docs/api.md), so a
/// caller cannot inject log lines or oversized values through it.
pub fn sane_request_id(raw: &[u8]) -> bool {
    (1..=128).contains(&raw.len())
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A new random (version 4) UUID for a request without a usable `X-Request-Id`. uuid's
/// `fast-rng` draws it from `rand`'s per-thread generator, seeded from the OS: no system call
/// per id. Ids only need to be unique, not secret.
pub fn new_request_id() -> Uuid {
    Uuid::new_v4()
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let mut generated = Uuid::encode_buffer();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .map(HeaderValue::as_bytes)
        .filter(|raw| sane_request_id(raw))
        .and_then(|raw| std::str::from_utf8(raw).ok())
        .unwrap_or_else(|| new_request_id().hyphenated().encode_lower(&mut generated));
    let id_header = HeaderValue::from_str(id).ok();
    let trace = TraceContext::from_headers(req.headers());
    // Every line the request causes (handlers, extractors, the outbound client, and the `log`
    // records of actix and the crates under it) is logged with this context, so it names its
    // request. It is a task-local: its fields are only formatted when a line is written, so a
    // request that logs nothing formats nothing.
    // Found once here; everything after reads it from the log context (`route_template::of`).
    let route = crate::route_template::find(req.request());
    let log = RequestLog::new(&req, id, trace.trace_id(), route);
    // The context covers the synchronous part of the inner services' `call` as well; the
    // trace context rides in its own task-local, where the outbound client reads it.
    let inner = log.in_scope(|| next.call(req));
    // Handlers' and extractors' errors arrive here already rendered as responses; an `Err`
    // only comes from inner middleware, and actix renders it after us.
    let result = log.scope(trace.scope(inner)).await;
    let mut res = match result {
        Ok(res) => res,
        Err(err) => {
            if tracing::enabled!(target: "supagate::access", tracing::Level::WARN) {
                let status = err.as_response_error().status_code().as_u16();
                telemetry::access_line(&log, status, started.elapsed(), " (middleware error)");
            }
            return Err(err);
        }
    };

    // A session refreshed or ended while serving this request reaches the browser whatever
    // the handler answered.
    crate::auth::cookie::apply_scheduled(&mut res);
    // After the cookie writes: an answer that sets cookies is never a 304.
    let mut res = crate::conditional::finish(res.map_into_boxed_body(), log.user().is_some());
    let headers = res.headers_mut();
    if let Some(value) = id_header {
        headers.insert(REQUEST_ID, value);
    }
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );

    let elapsed = started.elapsed();
    let status = res.status().as_u16();
    // A write through supagate drops the cached reads of its resource (`read_cache`).
    if res.status().is_success() && !matches!(*log.method(), Method::GET | Method::HEAD) {
        if let Some(cache) = res
            .request()
            .app_data::<actix_web::web::Data<crate::read_cache::ReadCache>>()
        {
            // Boxed: with Redis this future is ~3.5 KB, and inline it would make every
            // request's context future that much larger, writes or not.
            Box::pin(cache.invalidate(log.route())).await;
        }
    }
    // The route was looked up once, for the log context (resource name, else pattern).
    crate::metrics::metrics().observe_request(log.method().as_str(), log.route(), status, elapsed);
    // Only the path is logged: query values may carry emails, tokens or other secrets.
    if tracing::enabled!(target: "supagate::access", tracing::Level::INFO) {
        telemetry::access_line(&log, status, elapsed, "");
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_reused_only_when_sane() {
        assert!(sane_request_id(b"abc-123_x.y:z"));
        assert!(!sane_request_id(b""));
        assert!(!sane_request_id(&[b'a'; 129]));
        assert!(sane_request_id(&[b'a'; 128]));
        assert!(!sane_request_id(b"evil\nline"));
        assert!(!sane_request_id(b"a b"));
    }

    #[test]
    fn generated_request_ids_are_distinct_v4_uuids() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        assert_eq!(a.get_version_num(), 4);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
    }
}
