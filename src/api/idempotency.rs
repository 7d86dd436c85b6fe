//! `Idempotency-Key` on writes: the header read and checked, the request's fingerprint, and the
//! keyed write itself, an RPC that records the key and the answer in the write's own
//! transaction (`supabase/migrations/20250601000701_idempotency.sql`), so a retry after a lost
//! answer replays the stored answer instead of writing again.

use actix_web::dev::Payload;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::future::{ready, Ready};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::common::{created, json_response};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::supabase::postgrest::{Caller, Query};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// On an answer replayed from a stored key (Stripe's name for it).
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// A key: 1..=[`Key::MAX_LEN`] printable ASCII characters.
#[derive(Debug, Clone, PartialEq)]
pub struct Key(String);

impl Key {
    pub const MAX_LEN: usize = 255;

    /// The header's value: a Structured Fields string (`"…"`, as the IETF draft defines the
    /// field) or the bare text Stripe's clients send. Quotes and backslashes are refused inside
    /// either, so both spellings of one key are the same key.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let inner = match raw {
            [b'"', inner @ .., b'"'] => inner,
            bare => bare,
        };
        let printable = |b: &u8| (0x20..=0x7e).contains(b) && !matches!(b, b'"' | b'\\');
        let valid = (1..=Self::MAX_LEN).contains(&inner.len())
            && inner.iter().all(printable)
            && inner.first() != Some(&b' ')
            && inner.last() != Some(&b' ');
        valid
            .then(|| std::str::from_utf8(inner).ok().map(|s| Self(s.to_owned())))
            .flatten()
    }
}

/// The request's `Idempotency-Key`, if it sent one; a malformed or repeated one is 400
/// `invalid_idempotency_key`. Only the writes that take it read it: elsewhere it is ignored.
pub struct IdempotencyKey(pub Option<Key>);

impl FromRequest for IdempotencyKey {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let mut values = req.headers().get_all(IDEMPOTENCY_KEY);
        let key = match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(value), None) => Key::parse(value.as_bytes())
                .map(Some)
                .ok_or_else(invalid_key),
            (Some(_), Some(_)) => Err(invalid_key()),
        };
        ready(key.map(IdempotencyKey).map_err(Into::into))
    }
}

/// The header as an operation parameter of the OpenAPI document (`params(IdempotencyKeyHeader)`).
pub struct IdempotencyKeyHeader;

impl utoipa::IntoParams for IdempotencyKeyHeader {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::Required;
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(Key::MAX_LEN))
            // Bare, or quoted as a whole: a lone quote is refused.
            .pattern(Some(
                r#"^(?:"[!#-\[\]-~](?:[ !#-\[\]-~]*[!#-\[\]-~])?"|[!#-\[\]-~](?:[ !#-\[\]-~]*[!#-\[\]-~])?)$"#,
            ));
        vec![ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .schema(Some(schema))
            .description(Some(
                "Makes the write safe to retry: 1 to 255 printable ASCII characters (a fresh \
                 UUID per logical write), bare or as a Structured Fields string. The first request \
                 with a key runs and its answer is stored in the write's own transaction; a \
                 retry with the same key and request gets that answer again, with \
                 `Idempotent-Replayed: true`; the same key with another request is 422 \
                 `idempotency_key_reused`; while the first is still running, 409 \
                 `idempotency_key_in_use`. Keys are the caller's own, kept \
                 `idempotency.key_ttl_secs` (24 h by default). A write that fails stores \
                 nothing, so its retry runs again. Malformed: 400 `invalid_idempotency_key`.",
            ))
            .build()]
    }
}

fn invalid_key() -> ApiError {
    ApiError::bad_request(
        "invalid_idempotency_key",
        format!(
            "Idempotency-Key must be one value of 1 to {} printable ASCII characters, without quotes or backslashes",
            Key::MAX_LEN
        ),
    )
}

/// What makes two requests "the same" for one key: method, path, caller and the write they
/// ask for (the validated row, so formatting of the JSON does not matter). XXH3-128 with no
/// seed, so every instance agrees on it across restarts. Not a security boundary: keys are
/// the caller's own, so a crafted collision could only replay the caller's own answer; a
/// cryptographic hash cost ~12 k instructions a request here (callgrind, no SHA extensions).
pub fn fingerprint(method: &str, path: &str, user: &AuthUser, row: &[u8]) -> String {
    let mut hash = xxhash_rust::xxh3::Xxh3::new();
    for part in [
        method.as_bytes(),
        path.as_bytes(),
        user.id.as_bytes().as_slice(),
    ] {
        hash.update(&(part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.update(row);
    format!("{:032x}", hash.digest128())
}

/// One keyed write: which RPC runs it, and the request it stands for.
pub struct KeyedWrite<'a> {
    /// `rpc/create_item`, ...: a constant.
    pub function: &'static str,
    pub method: &'static str,
    /// The request's path (`/api/items/<id>`), part of the fingerprint.
    pub path: &'a str,
    /// The function's own arguments beside the key's (`"item": {...}`), as JSON members.
    pub args: &'a [(&'static str, &'a [u8])],
    /// Whose write (the bearer of the call, and the key's scope).
    pub user: &'a AuthUser,
    pub key: &'a Key,
    /// The fingerprinted write: the row sent.
    pub row: &'a [u8],
}

#[derive(Deserialize)]
struct Envelope<'a> {
    replayed: bool,
    status: u16,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// The answer of a keyed write, first or replayed: the same status and body bytes each time.
pub struct Stored {
    status: StatusCode,
    body: Bytes,
    replayed: bool,
}

impl Stored {
    /// The answer, `Location` included for a create (`collection`/`<id>` of the stored row),
    /// marked `Idempotent-Replayed: true` when it was replayed.
    pub fn respond(self, collection: &str) -> ApiResult<HttpResponse> {
        let mut res = if self.status == StatusCode::CREATED {
            created(collection, self.body)?
        } else {
            json_response(self.status, self.body)
        };
        if self.replayed {
            res.headers_mut()
                .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
        }
        Ok(res)
    }
}

/// Runs `write` through its RPC: one upstream call, as the caller.
pub async fn run(state: &AppState, write: KeyedWrite<'_>) -> ApiResult<Stored> {
    let fingerprint = fingerprint(write.method, write.path, write.user, write.row);
    let mut body =
        Vec::with_capacity(160 + write.args.iter().map(|(_, v)| v.len() + 24).sum::<usize>());
    body.extend_from_slice(b"{\"idempotency_key\":");
    serde_json::to_writer(&mut body, &write.key.0)
        .map_err(|e| ApiError::internal(format!("idempotency key: {e}")))?;
    body.extend_from_slice(b",\"fingerprint\":\"");
    body.extend_from_slice(fingerprint.as_bytes());
    body.extend_from_slice(b"\",\"key_ttl_secs\":");
    body.extend_from_slice(
        itoa::Buffer::new()
            .format(state.settings.idempotency.key_ttl_secs)
            .as_bytes(),
    );
    for (name, value) in write.args {
        body.extend_from_slice(b",\"");
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(b"\":");
        body.extend_from_slice(value);
    }
    body.push(b'}');
    let answer = state
        .supabase
        .pg_rpc(
            &Query::table(write.function),
            body,
            Caller::User(write.user),
        )
        .await?;
    let envelope: Envelope<'_> = serde_json::from_slice(&answer)
        .map_err(|e| ApiError::upstream_error(format!("keyed write answer unreadable: {e}")))?;
    let status = StatusCode::from_u16(envelope.status)
        .ok()
        .filter(StatusCode::is_success)
        .ok_or_else(|| ApiError::upstream_error("keyed write answer with an unusable status"))?;
    Ok(Stored {
        status,
        body: Bytes::copy_from_slice(envelope.body.get().as_bytes()),
        replayed: envelope.replayed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_changes_with_each_part_and_parts_cannot_run_together() {
        let ann = AuthUser::for_tests(uuid::Uuid::from_u128(1), "t", 0);
        let bob = AuthUser::for_tests(uuid::Uuid::from_u128(2), "t", 0);
        let base = fingerprint("POST", "/api/items", &ann, b"{}");
        assert_eq!(base, fingerprint("POST", "/api/items", &ann, b"{}"));
        assert_eq!(base.len(), 32);
        for other in [
            fingerprint("PATCH", "/api/items", &ann, b"{}"),
            fingerprint("POST", "/api/items/", &ann, b"{}"),
            fingerprint("POST", "/api/items", &bob, b"{}"),
            fingerprint("POST", "/api/items", &ann, b"{ }"),
            fingerprint("POS", "T/api/items", &ann, b"{}"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn keys_are_printable_ascii_quoted_or_bare() {
        assert_eq!(Key::parse(b"abc-123"), Some(Key("abc-123".into())));
        assert_eq!(Key::parse(b"\"abc-123\""), Some(Key("abc-123".into())));
        assert_eq!(Key::parse(b"a b"), Some(Key("a b".into())));
        assert!(Key::parse(&[b'k'; 255]).is_some());
        for bad in [
            &b""[..],
            b"\"\"",
            b"a\"b",
            b"a\\b",
            b"\"abc",
            b"tab\there",
            b" lead",
            b"trail ",
            "caf\u{e9}".as_bytes(),
            &[b'k'; 256],
        ] {
            assert_eq!(Key::parse(bad), None, "{bad:?}");
        }
    }
}
