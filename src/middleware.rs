//! Cross-cutting request handling: request id, the request's tracing span and trace
//! context, security headers and the access log line. CORS and body limits are configured in
//! `server.rs`, next to the route table.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest};
use tracing::Instrument;
use uuid::Uuid;

use crate::trace_context::TraceContext;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, in request extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Set by the authentication extractor (through [`set_logged_user`]) so the access log can
/// name the caller.
#[derive(Clone, Copy, Debug)]
pub struct LoggedUser(pub Uuid);

/// Names the caller of the request being served: in the request extensions for the access
/// log line, and as the `user_id` of the request's span for every line logged after it.
pub fn set_logged_user(req: &HttpRequest, id: Uuid) {
    req.extensions_mut().insert(LoggedUser(id));
    tracing::Span::current().record("user_id", tracing::field::display(id));
}

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
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .map(HeaderValue::as_bytes)
        .filter(|raw| sane_request_id(raw))
        .and_then(|raw| std::str::from_utf8(raw).ok())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let mut buf = Uuid::encode_buffer();
            new_request_id()
                .hyphenated()
                .encode_lower(&mut buf)
                .to_owned()
        });
    // The header value is built once, before the id moves into the request.
    let id_header = HeaderValue::from_str(&id).ok();
    let trace = TraceContext::from_headers(req.headers());
    // Only the path is logged: query values may carry emails, tokens or other secrets. The
    // URI is shared bytes, so keeping it costs a reference count, not a copy of the path.
    let method = req.method().clone();
    let uri = req.uri().clone();
    // Every line the request causes (handlers, extractors, the outbound client, and actix's
    // and reqwest's `log` records) is logged inside this span, so it names its request. The
    // span is ERROR-level so that it exists whenever any line is logged at all: at
    // `RUST_LOG=warn` an upstream failure still names its request. With logging off it is
    // disabled and its fields are never evaluated. The route is the resource's name, which is
    // its template (`api::endpoint`), looked up in the resource map before routing.
    let span = tracing::error_span!(
        target: "supagate::request",
        "request",
        request_id = %id,
        method = %method,
        route = %req.match_name().unwrap_or("unmatched"),
        trace_id = %trace.trace_id(),
        user_id = tracing::field::Empty,
    );
    req.extensions_mut().insert(RequestId(id));
    // The span is entered for the synchronous part of the inner services' `call` as well;
    // the trace context rides in a task-local, where the outbound client reads it.
    let inner = span.in_scope(|| next.call(req));
    // Handlers' and extractors' errors arrive here already rendered as responses; an `Err`
    // only comes from inner middleware, and actix renders it after us. The access line is
    // logged outside the span: it names the request and the user itself, as it always has.
    let mut res = trace
        .scope(inner)
        .instrument(span)
        .await
        .inspect_err(|err| {
            tracing::warn!(
                target: "supagate::access",
                "{method} {path} {status} request_id={id} (middleware error)",
                path = uri.path(),
                status = err.as_response_error().status_code().as_u16(),
                id = id_header.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-"),
            )
        })?;

    // A session refreshed or ended while serving this request reaches the browser whatever
    // the handler answered.
    crate::auth::cookie::apply_scheduled(&mut res);
    let headers = res.headers_mut();
    if let Some(value) = id_header.clone() {
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
    {
        // Resources are named after their template (`api::endpoint`): no allocation. The
        // pattern lookup is the fallback for anything registered without a name.
        let request = res.request();
        let pattern;
        let route = match request.match_name() {
            Some(name) => name,
            None => {
                pattern = request.match_pattern();
                pattern.as_deref().unwrap_or("unmatched")
            }
        };
        crate::metrics::metrics().observe_request(method.as_str(), route, status, elapsed);
    }
    if tracing::enabled!(target: "supagate::access", tracing::Level::INFO) {
        let user = res
            .request()
            .extensions()
            .get::<LoggedUser>()
            .map(|u| u.0.to_string())
            .unwrap_or_else(|| "-".to_owned());
        tracing::info!(
            target: "supagate::access",
            "{method} {path} {status} {ms:.3}ms request_id={id} user={user}",
            path = uri.path(),
            id = id_header.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-"),
            ms = elapsed.as_secs_f64() * 1000.0,
        );
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
