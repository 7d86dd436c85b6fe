//! Cross-cutting request handling: request id, security headers and the access log line.
//! CORS and body limits are configured in `server.rs`, next to the route table.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use uuid::Uuid;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, in request extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Set by the authentication extractor so the access log can name the caller.
#[derive(Clone, Copy, Debug)]
pub struct LoggedUser(pub Uuid);

/// An incoming id is reused when it is 1–128 characters of `[A-Za-z0-9._:-]` (API.md), so a
/// caller cannot inject log lines or oversized values through it.
pub fn sane_request_id(raw: &[u8]) -> bool {
    (1..=128).contains(&raw.len())
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
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
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    // Only the path: query values may carry emails, tokens or other secrets.
    let method = req.method().clone();
    let path = req.path().to_owned();
    // Handlers' and extractors' errors arrive here already rendered as responses; an `Err`
    // only comes from inner middleware, and actix renders it after us.
    let mut res = next.call(req).await.inspect_err(|err| {
        log::warn!(
            target: "supagate::access",
            "{method} {path} {status} request_id={id} (middleware error)",
            status = err.as_response_error().status_code().as_u16()
        )
    })?;

    let headers = res.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&id) {
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
    crate::metrics::metrics().observe_request(
        method.as_str(),
        res.request()
            .match_pattern()
            .as_deref()
            .unwrap_or("unmatched"),
        res.status().as_u16(),
        elapsed,
    );
    if log::log_enabled!(target: "supagate::access", log::Level::Info) {
        let user = res
            .request()
            .extensions()
            .get::<LoggedUser>()
            .map(|u| u.0.to_string())
            .unwrap_or_else(|| "-".to_owned());
        log::info!(
            target: "supagate::access",
            "{method} {path} {status} {ms:.3}ms request_id={id} user={user}",
            status = res.status().as_u16(),
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
}
