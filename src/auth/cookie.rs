//! The `@supabase/ssr` session cookie, as pure functions: reading (`sb-<ref>-auth-token`,
//! raw JSON or `base64-` prefixed, possibly chunked `.0`, `.1`, ...) and writing the same
//! names, encoding and chunking so a Next.js app using `@supabase/ssr` shares the login.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

/// `@supabase/ssr`'s chunk limit, measured on the `encodeURIComponent` form of the value.
pub const MAX_CHUNK_SIZE: usize = 3180;
/// What `@supabase/ssr` forces on every write: 400 days.
pub const MAX_AGE_SECS: i64 = 34_560_000;
const BASE64_PREFIX: &str = "base64-";
/// A short-lived `@supabase/ssr` variant wrote this prefix; its payload is base64url too.
const BASE64L_PREFIX: &str = "base64l-";
/// More chunks than this is not a session anyone wrote; refuse rather than allocate.
const MAX_CHUNKS: usize = 32;

/// The two tokens a cookie session carries. `user` is ignored: the cookie is unsigned.
#[derive(Clone, PartialEq, Eq)]
pub struct CookieSession {
    pub access_token: String,
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for CookieSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieSession { .. }")
    }
}

/// Why a present session cookie could not be read. Never carries the cookie's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    #[error("session cookie is split into too many chunks")]
    TooManyChunks,
    #[error("session cookie is not valid percent-encoded UTF-8")]
    BadEncoding,
    #[error("session cookie is not valid base64url")]
    BadBase64,
    #[error("session cookie does not hold a JSON session")]
    NotASession,
}

/// `name=value` pairs of one or more `Cookie` header values, in order. Values are left as
/// sent (still percent-encoded); malformed pairs are skipped, as browsers do.
pub fn cookie_pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        Some((name.trim(), value))
    })
}

/// Whether `cookie` is the session cookie `name` itself or one of its `.N` chunks.
pub fn is_session_cookie(name: &str, cookie: &str) -> bool {
    match cookie.strip_prefix(name) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('.')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}

/// Reads the session stored under `name` from request cookies (`(name, raw value)` pairs).
/// `Ok(None)`: no session cookie. `<name>` wins over chunks; chunks are `.0`, `.1`, ... up to
/// the first missing index, joined before the `base64-` prefix (only on `.0`) is removed.
pub fn read_session<'a>(
    name: &str,
    cookies: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Option<CookieSession>, CookieError> {
    let mut whole: Option<&str> = None;
    let mut chunks: Vec<Option<&str>> = Vec::new();
    for (cookie, value) in cookies {
        let Some(rest) = cookie.strip_prefix(name) else {
            continue;
        };
        if rest.is_empty() {
            whole.get_or_insert(value);
        } else if let Some(index) = rest.strip_prefix('.').and_then(|n| n.parse::<usize>().ok()) {
            if index >= MAX_CHUNKS {
                return Err(CookieError::TooManyChunks);
            }
            if chunks.len() <= index {
                chunks.resize(index + 1, None);
            }
            chunks[index].get_or_insert(value);
        }
    }
    let joined = match whole {
        Some(value) => decode_percent(value)?,
        None => {
            let mut joined = String::new();
            for chunk in chunks.iter().map_while(|c| *c) {
                joined.push_str(&decode_percent(chunk)?);
            }
            if joined.is_empty() {
                return Ok(None);
            }
            joined
        }
    };
    decode_value(&joined).map(Some)
}

fn decode_percent(raw: &str) -> Result<String, CookieError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| CookieError::BadEncoding)
}

/// A joined cookie value → the session in it.
pub fn decode_value(value: &str) -> Result<CookieSession, CookieError> {
    let json = match value
        .strip_prefix(BASE64_PREFIX)
        .or_else(|| value.strip_prefix(BASE64L_PREFIX))
    {
        Some(b64) => {
            let bytes = URL_SAFE_NO_PAD
                .decode(b64.trim_end_matches('='))
                .map_err(|_| CookieError::BadBase64)?;
            String::from_utf8(bytes).map_err(|_| CookieError::BadEncoding)?
        }
        None => value.to_owned(),
    };
    let session: Value = serde_json::from_str(&json).map_err(|_| CookieError::NotASession)?;
    let access_token = session
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or(CookieError::NotASession)?
        .to_owned();
    let refresh_token = session
        .get("refresh_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    Ok(CookieSession {
        access_token,
        refresh_token,
    })
}

/// `encodeURIComponent`'s set: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )` is escaped.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// `encodeURIComponent(value)`, as the cookie serializer writes raw values.
pub fn encode_uri_component(value: &str) -> String {
    utf8_percent_encode(value, URI_COMPONENT).to_string()
}

/// Splits `value` like `@supabase/ssr`'s chunker: pieces whose `encodeURIComponent` length is
/// at most `max` (the whole value when it fits), cut only on UTF-8 character boundaries.
pub fn chunk_value(value: &str, max: usize) -> Vec<&str> {
    let max = max.max(12); // one character encodes to at most 12 bytes (4 × `%XX`)
    let mut out = Vec::new();
    let (mut start, mut len) = (0, 0);
    for (i, c) in value.char_indices() {
        let mut buf = [0u8; 4];
        let cost = encode_uri_component(c.encode_utf8(&mut buf)).len();
        if len + cost > max {
            out.push(&value[start..i]);
            start = i;
            len = 0;
        }
        len += cost;
    }
    if start < value.len() || out.is_empty() {
        out.push(&value[start..]);
    }
    out
}

/// How written cookies are flagged (from `[cookies]` settings).
#[derive(Clone, Debug)]
pub struct CookieOptions {
    pub http_only: bool,
    pub secure: bool,
    pub domain: Option<String>,
}

/// The session cookie as configured: its name (`sb-<ref>-auth-token`), whether login and
/// refresh write it, and the flags written cookies carry.
#[derive(Clone, Debug)]
pub struct SessionCookie {
    pub name: String,
    pub write: bool,
    pub options: CookieOptions,
}

impl SessionCookie {
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            name: settings.session_cookie_name(),
            write: settings.cookies.enabled,
            options: CookieOptions {
                http_only: settings.cookies.http_only,
                secure: settings.cookie_secure(),
                domain: settings.cookies.domain.clone(),
            },
        }
    }
}

fn build(name: String, value: String, max_age: i64, opts: &CookieOptions) -> Cookie<'static> {
    let mut cookie = Cookie::build(name, value)
        .path("/")
        .same_site(SameSite::Lax)
        .http_only(opts.http_only)
        .secure(opts.secure)
        .max_age(CookieDuration::seconds(max_age))
        .finish();
    if let Some(domain) = opts.domain.as_deref().filter(|d| !d.is_empty()) {
        cookie.set_domain(domain.to_owned());
    }
    cookie
}

/// The cookies that store `session_json` under `name` (base64url encoding, the ssr default),
/// preceded by deletions for every cookie in `present` (request cookie names) that the new
/// write does not overwrite — stale chunks would otherwise be joined into the next read.
pub fn session_cookies(
    name: &str,
    session_json: &str,
    present: &[String],
    opts: &CookieOptions,
) -> Vec<Cookie<'static>> {
    let value = format!("{BASE64_PREFIX}{}", URL_SAFE_NO_PAD.encode(session_json));
    let chunks = chunk_value(&value, MAX_CHUNK_SIZE);
    let written: Vec<(String, &str)> = if chunks.len() == 1 {
        vec![(name.to_owned(), value.as_str())]
    } else {
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("{name}.{i}"), *c))
            .collect()
    };
    let mut out: Vec<Cookie<'static>> = present
        .iter()
        .filter(|p| is_session_cookie(name, p) && !written.iter().any(|(w, _)| w == *p))
        .map(|p| build(p.clone(), String::new(), 0, opts))
        .collect();
    out.extend(
        written
            .into_iter()
            .map(|(n, v)| build(n, v.to_owned(), MAX_AGE_SECS, opts)),
    );
    out
}

/// Deletions (empty value, `Max-Age=0`) for every session cookie in `present`.
pub fn clear_cookies(name: &str, present: &[String], opts: &CookieOptions) -> Vec<Cookie<'static>> {
    present
        .iter()
        .filter(|p| is_session_cookie(name, p))
        .map(|p| build(p.clone(), String::new(), 0, opts))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NAME: &str = "sb-127-auth-token";

    fn session_json(access: &str, refresh: &str, meta: &str) -> String {
        serde_json::json!({
            "access_token": access, "token_type": "bearer", "expires_in": 3600,
            "expires_at": 1767229200, "refresh_token": refresh,
            "user": {"id": "4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90", "user_metadata": {"bio": meta}}
        })
        .to_string()
    }

    fn header_of(cookies: &[Cookie<'static>]) -> String {
        cookies
            .iter()
            .filter(|c| c.max_age() != Some(CookieDuration::ZERO))
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn opts() -> CookieOptions {
        CookieOptions {
            http_only: true,
            secure: true,
            domain: None,
        }
    }

    #[test]
    fn absent_cookie_is_no_session() {
        assert_eq!(read_session(NAME, cookie_pairs("other=1; a=b")), Ok(None));
    }

    #[test]
    fn whole_cookie_wins_over_chunks() {
        let a = format!(
            "base64-{}",
            URL_SAFE_NO_PAD.encode(session_json("A", "r", ""))
        );
        let header = format!("{NAME}.0=garbage; {NAME}={a}");
        let s = read_session(NAME, cookie_pairs(&header)).unwrap().unwrap();
        assert_eq!(s.access_token, "A");
    }

    #[test]
    fn malformed_values_are_errors() {
        for value in [
            "base64-!!!",
            "{not json",
            "%FF%FE",
            "base64-eyJ4Ijox",
            "[]",
            "{}",
        ] {
            let header = format!("{NAME}={value}");
            assert!(
                read_session(NAME, cookie_pairs(&header)).is_err(),
                "{value}"
            );
        }
        let header = format!("{NAME}.99=x");
        assert_eq!(
            read_session(NAME, cookie_pairs(&header)),
            Err(CookieError::TooManyChunks)
        );
    }

    #[test]
    fn chunk_names_are_recognised() {
        assert!(is_session_cookie(NAME, NAME));
        assert!(is_session_cookie(NAME, &format!("{NAME}.12")));
        assert!(!is_session_cookie(NAME, &format!("{NAME}-code-verifier")));
        assert!(!is_session_cookie(NAME, &format!("{NAME}.")));
    }

    #[test]
    fn raw_chunks_respect_the_encoded_length() {
        let value = "é".repeat(2000);
        for chunk in chunk_value(&value, MAX_CHUNK_SIZE) {
            assert!(encode_uri_component(chunk).len() <= MAX_CHUNK_SIZE);
        }
    }

    proptest! {
        /// Any session, written by us with any chunk size, reads back.
        #[test]
        fn written_sessions_round_trip(
            access in "[A-Za-z0-9._-]{1,200}",
            refresh in "[a-z0-9]{1,40}",
            meta in "\\PC{0,3000}",
        ) {
            let json = session_json(&access, &refresh, &meta);
            let cookies = session_cookies(NAME, &json, &[], &opts());
            let header = header_of(&cookies);
            let s = read_session(NAME, cookie_pairs(&header)).unwrap().unwrap();
            prop_assert_eq!(s.access_token, access);
            prop_assert_eq!(s.refresh_token, Some(refresh));
        }

        /// Any chunking (cut points anywhere for base64url, on char boundaries for raw JSON,
        /// each chunk percent-encoded like the cookie serializer does) reads back.
        #[test]
        fn any_chunking_round_trips(
            access in "[A-Za-z0-9._-]{1,100}",
            meta in "\\PC{0,400}",
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
            raw in any::<bool>(),
        ) {
            let json = session_json(&access, "rt", &meta);
            let value = if raw { json.clone() } else { format!("base64-{}", URL_SAFE_NO_PAD.encode(&json)) };
            let bounds: Vec<usize> = value.char_indices().map(|(i, _)| i).collect();
            let mut points: Vec<usize> = cuts.iter().map(|c| bounds[c.index(bounds.len())]).collect();
            points.push(0);
            points.push(value.len());
            points.sort_unstable();
            points.dedup();
            let header = points
                .windows(2)
                .enumerate()
                .map(|(i, w)| format!("{NAME}.{i}={}", encode_uri_component(&value[w[0]..w[1]])))
                .collect::<Vec<_>>()
                .join("; ");
            let s = read_session(NAME, cookie_pairs(&header)).unwrap().unwrap();
            prop_assert_eq!(s.access_token, access);
        }

        /// Garbage never panics.
        #[test]
        fn arbitrary_cookies_never_panic(header in "\\PC{0,600}", chunks in "[^;]{0,200}") {
            let _ = read_session(NAME, cookie_pairs(&header));
            let h = format!("{NAME}.0=base64-{chunks}; {NAME}.1={chunks}");
            let _ = read_session(NAME, cookie_pairs(&h));
        }
    }
}
