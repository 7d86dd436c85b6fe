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

/// An incoming id is reused when it is 1–128 characters of `[A-Za-z0-9._:-]` (docs/api.md), so a
/// caller cannot inject log lines or oversized values through it.
pub fn sane_request_id(raw: &[u8]) -> bool {
    (1..=128).contains(&raw.len())
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

thread_local! {
    /// Per-worker generator of request ids (SplitMix64 seeded once from the OS): a fresh id
    /// costs a few instructions instead of a `getrandom` system call. Ids only need to be
    /// unique, not secret.
    static ID_STATE: std::cell::Cell<u64> = std::cell::Cell::new({
        let seed = Uuid::new_v4().as_u64_pair();
        seed.0 ^ seed.1.rotate_left(17)
    });
}

fn splitmix(state: &std::cell::Cell<u64>) -> u64 {
    let s = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
    state.set(s);
    let mut z = s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A new random (version 4) UUID for a request without a usable `X-Request-Id`.
pub fn new_request_id() -> Uuid {
    let (hi, lo) = ID_STATE.with(|s| (splitmix(s), splitmix(s)));
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_le_bytes());
    bytes[8..].copy_from_slice(&lo.to_le_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
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
    // Only the path is logged: query values may carry emails, tokens or other secrets. The
    // URI is shared bytes, so keeping it costs a reference count, not a copy of the path.
    let method = req.method().clone();
    let uri = req.uri().clone();
    req.extensions_mut().insert(RequestId(id));
    // Handlers' and extractors' errors arrive here already rendered as responses; an `Err`
    // only comes from inner middleware, and actix renders it after us.
    let mut res = next.call(req).await.inspect_err(|err| {
        log::warn!(
            target: "supagate::access",
            "{method} {path} {status} request_id={id} (middleware error)",
            path = uri.path(),
            status = err.as_response_error().status_code().as_u16(),
            id = id_header.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-"),
        )
    })?;

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
