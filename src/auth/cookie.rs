//! The one home of the `@supabase/ssr` session cookie: reading it from a request
//! (`sb-<ref>-auth-token`, raw JSON or `base64-` prefixed, possibly chunked `.0`, `.1`, ...),
//! and writing or clearing it on the response with the names, encoding, chunking and options
//! `@supabase/ssr` 0.12 uses, so a Next.js app and supagate share one login.
//!
//! Writes are *scheduled* on the request ([`SessionCookie::store`], [`SessionCookie::clear`])
//! and applied to whatever response leaves ([`apply_scheduled`], called by the request
//! middleware): a refresh done by the extractor must reach the browser even when the handler
//! then fails, or the browser would keep a spent refresh token.

use std::sync::Arc;

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue, COOKIE};
use actix_web::{HttpMessage, HttpRequest};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

/// `@supabase/ssr`'s chunk limit, measured on the `encodeURIComponent` form of the value.
pub const MAX_CHUNK_SIZE: usize = 3180;
/// What `@supabase/ssr` forces on every write: 400 days.
pub const MAX_AGE_SECS: i64 = 34_560_000;
const BASE64_PREFIX: &str = "base64-";
/// What `@supabase/ssr` sends with every cookie write; also keeps tokens out of every cache.
pub const NO_STORE: &str = "private, no-cache, no-store, must-revalidate, max-age=0";
/// More chunks than this is not a session anyone wrote; refuse rather than allocate.
const MAX_CHUNKS: usize = 32;

/// The two tokens a cookie session carries. `user` is ignored: the cookie is unsigned.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionTokens {
    pub access_token: String,
    pub refresh_token: String,
}

impl std::fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionTokens { .. }")
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

/// Whether `cookie` is the session cookie `name` itself or one of its `.N` chunks (ssr's
/// `isChunkLike`: `N` is `0` or has no leading zero).
pub fn is_session_cookie(name: &str, cookie: &str) -> bool {
    match cookie.strip_prefix(name) {
        Some("") => true,
        Some(rest) => rest.strip_prefix('.').is_some_and(|n| {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && (n == "0" || !n.starts_with('0'))
        }),
        None => false,
    }
}

/// Reads the session stored under `name` from request cookies (`(name, raw value)` pairs).
/// `Ok(None)`: no session cookie. `<name>` wins over chunks; chunks are `.0`, `.1`, ... up to
/// the first missing index, joined before the `base64-` prefix (only on `.0`) is removed.
pub fn read_session<'a>(
    name: &str,
    cookies: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Option<SessionTokens>, CookieError> {
    let mut whole: Option<&str> = None;
    let mut chunks: Vec<Option<&str>> = Vec::new();
    for (cookie, value) in cookies {
        let Some(rest) = cookie.strip_prefix(name) else {
            continue;
        };
        if value.is_empty() {
            // ssr reads an empty cookie as a missing one (a deletion the browser has not
            // applied yet).
            continue;
        }
        if rest.is_empty() {
            whole.get_or_insert(value);
        } else if let Some(index) = rest
            .strip_prefix('.')
            .filter(|_| is_session_cookie(name, cookie))
            .and_then(|n| n.parse::<usize>().ok())
        {
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

/// A storage item as ssr writes it: `base64-` + unpadded base64url of its JSON text.
pub(super) fn encode_item(json: &str) -> String {
    format!("{BASE64_PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
}

/// The JSON text of a storage item as ssr reads one: `base64-` decoded, anything else taken
/// as raw (percent-encoded) JSON.
pub(super) fn decode_item(raw: &str) -> Option<String> {
    let text = decode_percent(raw).ok()?;
    match text.strip_prefix(BASE64_PREFIX) {
        Some(b64) => {
            String::from_utf8(URL_SAFE_NO_PAD.decode(b64.trim_end_matches('=')).ok()?).ok()
        }
        None => Some(text),
    }
}

fn decode_percent(raw: &str) -> Result<String, CookieError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| CookieError::BadEncoding)
}

/// A joined cookie value → the session in it. Like ssr 0.12: `base64-` is base64url (padding
/// and whitespace skipped), anything else is raw JSON. That includes `base64l-<len>-<data>`,
/// which ssr 0.6.0 wrote for one day and no release since reads: such a cookie is not JSON,
/// so it is no session, exactly as ssr sees it (decoding it as base64url would mis-read it).
pub fn decode_value(value: &str) -> Result<SessionTokens, CookieError> {
    let json = match value.strip_prefix(BASE64_PREFIX) {
        Some(b64) => {
            // ssr writes no padding or whitespace: copy only when someone else did.
            let skipped = |c: char| c == '=' || c.is_ascii_whitespace();
            let bytes = if b64.contains(skipped) {
                URL_SAFE_NO_PAD.decode(b64.replace(skipped, ""))
            } else {
                URL_SAFE_NO_PAD.decode(b64)
            }
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
    // auth-js (`_isValidSession`) drops a stored session lacking any of these three.
    let refresh_token = session
        .get("refresh_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or(CookieError::NotASession)?
        .to_owned();
    if session.get("expires_at").is_none() {
        return Err(CookieError::NotASession);
    }
    Ok(SessionTokens {
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

/// The session cookie as configured: its name (`sb-<ref>-auth-token`), whether supagate
/// writes it (login, refresh, server-side refresh, clearing), and the flags it carries.
#[derive(Clone, Debug)]
pub struct SessionCookie {
    pub name: String,
    pub write: bool,
    pub options: CookieOptions,
}

/// A cookie change scheduled on a request, applied once to its response.
#[derive(Clone)]
struct Scheduled {
    cookie: Arc<SessionCookie>,
    /// `Some(session JSON)`: store it; `None`: clear the session.
    store: Option<Arc<str>>,
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

    /// The session in `req`'s cookies: `None` when it carries no session cookie at all,
    /// `Some(Ok(None))` when they are all empty, `Some(Err(_))` when they are no session.
    pub fn read(&self, req: &HttpRequest) -> Option<Result<Option<SessionTokens>, CookieError>> {
        let headers: Vec<&str> = req
            .headers()
            .get_all(COOKIE)
            .filter_map(|v| v.to_str().ok())
            .collect();
        let present = headers
            .iter()
            .flat_map(|h| cookie_pairs(h))
            .any(|(name, _)| is_session_cookie(&self.name, name));
        present.then(|| read_session(&self.name, headers.iter().flat_map(|h| cookie_pairs(h))))
    }

    /// Every cookie `req` carries, `(name, value as sent)`: what a write compares with (ssr
    /// writes only what changed and deletes only what the browser holds).
    pub fn present(req: &HttpRequest) -> Vec<(String, String)> {
        req.headers()
            .get_all(COOKIE)
            .filter_map(|v| v.to_str().ok())
            .flat_map(cookie_pairs)
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }

    /// Schedules `session_json` (Auth's session object) to be written on the response.
    /// A later call on the same request replaces an earlier one. No-op when writes are off.
    pub fn store(self: &Arc<Self>, req: &HttpRequest, session_json: Arc<str>) {
        self.schedule(req, Some(session_json));
    }

    /// Schedules the deletion of every session cookie the request carries.
    pub fn clear(self: &Arc<Self>, req: &HttpRequest) {
        self.schedule(req, None);
    }

    fn schedule(self: &Arc<Self>, req: &HttpRequest, store: Option<Arc<str>>) {
        if self.write {
            req.extensions_mut().insert(Scheduled {
                cookie: Arc::clone(self),
                store,
            });
        }
    }

    pub(super) fn build(
        &self,
        name: String,
        value: String,
        max_age: i64,
        domain: bool,
    ) -> Cookie<'static> {
        let opts = &self.options;
        let mut cookie = Cookie::build(name, value)
            .path("/")
            .same_site(SameSite::Lax)
            .http_only(opts.http_only)
            .secure(opts.secure)
            .max_age(CookieDuration::seconds(max_age))
            .finish();
        if let Some(d) = opts.domain.as_deref().filter(|d| domain && !d.is_empty()) {
            cookie.set_domain(d.to_owned());
        }
        cookie
    }

    /// Deletions (empty value, `Max-Age=0`) for `names`. With a `Domain` configured each is
    /// also sent host-only, so cookies written before the domain was set cannot resurrect
    /// the session; as ssr 0.12.7 orders them, every host-only deletion comes first and the
    /// `Domain` ones last (a cookie store keyed by name alone keeps the last).
    pub(super) fn deletions(&self, names: &[&str]) -> Vec<Cookie<'static>> {
        let with_domain = self
            .options
            .domain
            .as_deref()
            .is_some_and(|d| !d.is_empty());
        let mut out: Vec<Cookie<'static>> = Vec::new();
        if with_domain {
            out.extend(
                names
                    .iter()
                    .map(|n| self.build((*n).to_owned(), String::new(), 0, false)),
            );
        }
        out.extend(
            names
                .iter()
                .map(|n| self.build((*n).to_owned(), String::new(), 0, true)),
        );
        out
    }

    /// The cookies that store `session_json`, in ssr's order: deletions of the `present`
    /// cookies the write does not overwrite (stale chunks would be joined into the next
    /// read), then the new value (`base64-` + base64url, chunked). A chunk the browser
    /// already holds with the same value is not sent again (ssr since 0.12.1).
    pub fn session_cookies(
        &self,
        session_json: &str,
        present: &[(String, String)],
    ) -> Vec<Cookie<'static>> {
        let value = encode_item(session_json);
        let chunks = chunk_value(&value, MAX_CHUNK_SIZE);
        let written: Vec<(String, &str)> = if chunks.len() == 1 {
            vec![(self.name.clone(), value.as_str())]
        } else {
            chunks
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("{}.{i}", self.name), *c))
                .collect()
        };
        let stale: Vec<&str> = present
            .iter()
            .map(|(p, _)| p.as_str())
            .filter(|p| is_session_cookie(&self.name, p) && !written.iter().any(|(w, _)| w == p))
            .collect();
        let mut out = self.deletions(&stale);
        out.extend(
            written
                .into_iter()
                .filter(|(n, v)| !present.iter().any(|(p, pv)| p == n && pv == v))
                .map(|(n, v)| self.build(n, v.to_owned(), MAX_AGE_SECS, true)),
        );
        out
    }

    /// Deletions for every session cookie in `present` and, as auth-js's `_removeSession`
    /// does, every pending PKCE verifier (`removeAllPKCEVerifiers`).
    pub fn clear_cookies(&self, present: &[(String, String)]) -> Vec<Cookie<'static>> {
        let verifiers = self.all_verifier_names(present);
        let names: Vec<&str> = present
            .iter()
            .map(|(p, _)| p.as_str())
            .filter(|p| is_session_cookie(&self.name, p))
            .chain(verifiers.iter().map(String::as_str))
            .collect();
        self.deletions(&names)
    }
}

/// Whether a cookie change is scheduled on `req` (its answer will set cookies).
pub fn is_scheduled(req: &HttpRequest) -> bool {
    req.extensions().contains::<Scheduled>()
}

/// Applies the cookie change scheduled on the response's request, if any: `Set-Cookie`
/// headers plus the no-store headers ssr sends with them (the response now carries tokens).
pub fn apply_scheduled<B>(res: &mut ServiceResponse<B>) {
    let Some(scheduled) = res.request().extensions_mut().remove::<Scheduled>() else {
        return;
    };
    let cookie = &scheduled.cookie;
    let present = SessionCookie::present(res.request());
    let cookies = match &scheduled.store {
        Some(json) => cookie.session_cookies(json, &present),
        None => cookie.clear_cookies(&present),
    };
    if cookies.is_empty() {
        return;
    }
    let headers = res.headers_mut();
    for c in cookies {
        if let Ok(value) = HeaderValue::from_str(&c.to_string()) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    headers.insert(header::EXPIRES, HeaderValue::from_static("0"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
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

    fn jar(domain: Option<&str>) -> SessionCookie {
        SessionCookie {
            name: NAME.to_owned(),
            write: true,
            options: CookieOptions {
                http_only: true,
                secure: true,
                domain: domain.map(str::to_owned),
            },
        }
    }

    fn b64(json: &str) -> String {
        format!("base64-{}", URL_SAFE_NO_PAD.encode(json))
    }

    #[test]
    fn a_base64l_cookie_is_no_session_as_in_current_ssr() {
        // ssr 0.6.0's format: `base64l-<length in base 36>-<base64url>`. Current ssr reads
        // it as raw JSON, which it is not.
        let json = session_json("A", "r", "");
        let encoded = URL_SAFE_NO_PAD.encode(&json);
        let header = format!("{NAME}=base64l-{}-{encoded}", radix36(encoded.len()));
        assert_eq!(
            read_session(NAME, cookie_pairs(&header)),
            Err(CookieError::NotASession)
        );
    }

    fn radix36(mut n: usize) -> String {
        let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut out = Vec::new();
        while n > 0 {
            out.push(digits[n % 36]);
            n /= 36;
        }
        out.reverse();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn an_empty_whole_cookie_counts_as_missing_so_chunks_are_read() {
        let value = b64(&session_json("A", "r", ""));
        let header = format!(
            "{NAME}=; {NAME}.0={}; {NAME}.1={}",
            &value[..10],
            &value[10..]
        );
        let s = read_session(NAME, cookie_pairs(&header)).unwrap().unwrap();
        assert_eq!(s.access_token, "A");
    }

    #[test]
    fn a_session_without_refresh_token_or_expires_at_is_not_a_session() {
        for json in [
            r#"{"access_token":"A","expires_at":1}"#,
            r#"{"access_token":"A","refresh_token":"r"}"#,
        ] {
            let header = format!("{NAME}={}", b64(json));
            assert_eq!(
                read_session(NAME, cookie_pairs(&header)),
                Err(CookieError::NotASession),
                "{json}"
            );
        }
    }

    #[test]
    fn padded_base64_with_whitespace_is_read_like_ssr() {
        let json = session_json("A", "r", "");
        let padded = base64::engine::general_purpose::URL_SAFE.encode(&json);
        let header = format!("{NAME}=base64-{}", padded.replace('A', "A "));
        // Spaces inside a cookie value arrive percent-encoded.
        let header = header.replace(' ', "%20");
        let s = read_session(NAME, cookie_pairs(&header)).unwrap().unwrap();
        assert_eq!(s.access_token, "A");
    }

    #[test]
    fn replacing_a_chunked_session_deletes_stale_chunks_also_host_only_with_a_domain() {
        let present: Vec<(String, String)> = (0..3)
            .map(|i| (format!("{NAME}.{i}"), "x".to_owned()))
            .collect();
        let cookies =
            jar(Some("example.com")).session_cookies(&session_json("A", "r", ""), &present);
        let rendered: Vec<String> = cookies.iter().map(|c| c.to_string()).collect();
        // Three stale chunks, each cleared host-only first (ssr 0.12.7's order), then with
        // the domain, then the new value.
        assert_eq!(rendered.len(), 7, "{rendered:#?}");
        assert!(rendered[..3]
            .iter()
            .all(|c| c.contains("Max-Age=0") && !c.contains("Domain")));
        assert!(rendered[3..6]
            .iter()
            .all(|c| c.contains("Max-Age=0") && c.contains("Domain=example.com")));
        assert!(rendered[6].starts_with(&format!("{NAME}=base64-")));
        assert!(rendered[6].contains("Max-Age=34560000"));
    }

    fn ssr_case(name: &str) -> (Value, Vec<(String, String)>) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/ssr_cookies.json");
        let all: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let case = all["cases"][name].clone();
        let present = case["request_cookies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let text = |k: &str| c[k].as_str().unwrap().to_owned();
                (text("name"), text("value"))
            })
            .collect();
        (case, present)
    }

    /// `(name, value, Max-Age, Domain)` of each cookie, as ssr's `setAll` list or ours.
    fn described(cookies: &[Cookie<'static>]) -> Vec<(String, String, i64, Option<String>)> {
        cookies
            .iter()
            .map(|c| {
                let age = c.max_age().map_or(-1, |a| a.whole_seconds());
                let domain = c.domain().map(str::to_owned);
                (c.name().to_owned(), c.value().to_owned(), age, domain)
            })
            .collect()
    }

    fn ssr_described(case: &Value) -> Vec<(String, String, i64, Option<String>)> {
        case["set_cookies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let o = &c["options"];
                (
                    c["name"].as_str().unwrap().to_owned(),
                    c["value"].as_str().unwrap().to_owned(),
                    o["maxAge"].as_i64().unwrap(),
                    o["domain"].as_str().map(str::to_owned),
                )
            })
            .collect()
    }

    #[test]
    fn chunks_the_browser_already_holds_are_not_rewritten_as_in_ssr_0_12_7() {
        let (case, present) = ssr_case("rewrite_keeps_unchanged_chunks");
        let json = case["session_json"].as_str().unwrap();
        let ours = jar(None).session_cookies(json, &present);
        assert_eq!(described(&ours), ssr_described(&case));
    }

    #[test]
    fn with_a_domain_host_only_deletions_come_first_as_ssr_0_12_7_sends_them() {
        let (case, present) = ssr_case("sign_out_chunked_with_domain");
        let ours = jar(Some("example.com")).clear_cookies(&present);
        assert_eq!(described(&ours), ssr_described(&case));
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
        assert!(
            !is_session_cookie(NAME, &format!("{NAME}.01")),
            "ssr: no leading zero"
        );
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
            let cookies = jar(None).session_cookies(&json, &[]);
            let header = header_of(&cookies);
            let s = read_session(NAME, cookie_pairs(&header)).unwrap().unwrap();
            prop_assert_eq!(s.access_token, access);
            prop_assert_eq!(s.refresh_token, refresh);
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
