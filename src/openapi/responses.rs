//! The shared error responses of the document, one per status, each naming the `code`s it
//! can carry, with example bodies in the one `ErrorBody` shape of `src/error.rs`.

use serde_json::{json, Value};
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::schema::ObjectBuilder;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder, Type};

/// A JSON error response referencing `ErrorBody`, with one named example per listed code.
fn error(description: &str, examples: &[(&str, Value)]) -> ResponseBuilder {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorBody")))
        .examples_from_iter(
            examples
                .iter()
                .map(|(name, value)| (*name, ExampleBuilder::new().value(Some(value.clone())))),
        )
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
}

fn body(code: &str, message: &str) -> Value {
    json!({ "error": message, "code": code })
}

pub(crate) fn string_header(description: &str) -> Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(description))
        .build()
}

pub(crate) fn integer_header(description: &str) -> Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        )
        .description(Some(description))
        .build()
}

/// Declares a unit type whose `ToResponse` is the given builder, so a handler writes
/// `(status = 401, response = Unauthorized)` and the document holds one shared definition.
macro_rules! shared_response {
    ($(#[$doc:meta])* $name:ident => $build:expr) => {
        $(#[$doc])*
        pub struct $name;
        impl<'s> utoipa::ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<Response>) {
                let build: fn() -> ResponseBuilder = $build;
                (stringify!($name), RefOr::T(build().build()))
            }
        }
    };
}

shared_response!(
    /// 400: the input is malformed or breaks a rule.
    BadRequest => || error(
        "Bad input. `code` is `validation_failed` (details in zod `flatten()` shape), \
         `invalid_json`, `unknown_parameter` (any query parameter this operation does not \
         list), `invalid_id` (a non-UUID `{id}` path segment), or `invalid_idempotency_key` \
         (a malformed `Idempotency-Key` on an operation that takes one).",
        &[
            ("validation_failed", json!({
                "error": "Validation failed", "code": "validation_failed",
                "details": {"formErrors": [], "fieldErrors": {"price": ["must be greater than 0"]}}
            })),
            ("unknown_parameter", json!({
                "error": "Unknown query parameter `select`", "code": "unknown_parameter",
                "details": {"parameter": "select"}
            })),
            ("invalid_json", body("invalid_json", "Malformed JSON body: EOF while parsing an object at line 1 column 9")),
            ("invalid_id", body("invalid_id", "The id in the path is not a valid UUID")),
        ],
    )
);

shared_response!(
    /// 401 on routes that take a session.
    Unauthorized => || error(
        "No credentials (`unauthorized`), or credentials that failed a check: `invalid_token`, \
         `token_expired`, `token_not_yet_valid`, `invalid_signature`, `invalid_audience`, \
         `invalid_issuer`, `invalid_algorithm`, `unknown_key`, `malformed_token`, \
         `invalid_claims`, `invalid_subject`, `invalid_role`, or `session_expired` (a cookie \
         session Auth would not refresh). A bad bearer token is refused even where \
         authentication is optional; a session cookie that is no session counts as signed out \
         there, as under `@supabase/ssr`.",
        &[
            ("unauthorized", body("unauthorized", "Authentication required")),
            ("token_expired", body("token_expired", "Token has expired")),
        ],
    )
    .header(
        "WWW-Authenticate",
        string_header("`Bearer`, or `Bearer error=\"invalid_token\"` when a token was presented and refused"),
    )
);

shared_response!(
    /// 403: authenticated, not allowed.
    Forbidden => || error(
        "Authenticated but not allowed (`forbidden`): not the owner, not an admin, or refused by \
         row-level security. `anonymous_not_allowed`: an anonymous sign-in on a write (unless \
         `business.allow_anonymous_writes`) or on billing. `mfa_required`: an `aal1` session on an \
         operation listed in `sign_in.aal2_routes` (`details.hint` says how to step up).",
        &[
            ("forbidden", body("forbidden", "Only the owner or an admin may change this item")),
            (
                "anonymous_not_allowed",
                body(
                    "anonymous_not_allowed",
                    "Anonymous users cannot change data; sign up to keep your work",
                ),
            ),
        ],
    )
);

shared_response!(
    /// 404: no such record (or not visible to the caller).
    NotFound => || error(
        "No such record, or row-level security hides it from the caller (`not_found`).",
        &[("not_found", body("not_found", "Not found"))],
    )
);

shared_response!(
    /// 409: a unique value is taken.
    Conflict => || error(
        "A unique value is already taken (`conflict`, unless the operation names a more specific code).",
        &[("conflict", body("conflict", "This record conflicts with an existing one"))],
    )
);

shared_response!(
    /// 409 of a write that takes `Idempotency-Key` and has no unique value to conflict on.
    IdempotencyKeyInUse => || error(
        "A request with the same `Idempotency-Key` is still being processed \
         (`idempotency_key_in_use`): retry once it finished, and get its answer.",
        &[key_in_use()],
    )
);

shared_response!(
    /// 409 of a create that takes `Idempotency-Key`: a unique value taken, or the key in use.
    ConflictOrKeyInUse => || error(
        "A unique value is already taken (`conflict`), or a request with the same \
         `Idempotency-Key` is still being processed (`idempotency_key_in_use`).",
        &[
            ("conflict", body("conflict", "This record conflicts with an existing one")),
            key_in_use(),
        ],
    )
);

shared_response!(
    /// 422 of a write that takes `Idempotency-Key`: an unknown reference, or the key reused.
    InvalidReferenceOrKeyReused => || error(
        "Refers to a record that does not exist (`invalid_reference`), or the \
         `Idempotency-Key` was first used for a different request (`idempotency_key_reused`).",
        &[
            ("invalid_reference", body("invalid_reference", "A referenced record does not exist")),
            key_reused(),
        ],
    )
);

shared_response!(
    /// 422 of a write that takes `Idempotency-Key` and refers to nothing.
    IdempotencyKeyReused => || error(
        "The `Idempotency-Key` was first used for a different request (`idempotency_key_reused`).",
        &[key_reused()],
    )
);

fn key_in_use() -> (&'static str, Value) {
    (
        "idempotency_key_in_use",
        body(
            "idempotency_key_in_use",
            "A request with this Idempotency-Key is still being processed; retry it later",
        ),
    )
}

fn key_reused() -> (&'static str, Value) {
    (
        "idempotency_key_reused",
        body(
            "idempotency_key_reused",
            "This Idempotency-Key was used for a different request",
        ),
    )
}

shared_response!(
    /// 413: over the body limit.
    PayloadTooLarge => || error(
        "The body is larger than the configured limit (`payload_too_large`; 64 KiB by default, \
         256 KiB for the Stripe webhook).",
        &[("payload_too_large", body("payload_too_large", "Request body is larger than 65536 bytes"))],
    )
);

shared_response!(
    /// 415: a body without a JSON content type.
    UnsupportedMediaType => || error(
        "The body's `Content-Type` is not `application/json` (`unsupported_media_type`).",
        &[("unsupported_media_type", body("unsupported_media_type", "Content-Type must be application/json"))],
    )
);

shared_response!(
    /// 422: a reference to a record that does not exist.
    InvalidReference => || error(
        "Well-formed, but refers to a record that does not exist (`invalid_reference`).",
        &[("invalid_reference", body("invalid_reference", "A referenced record does not exist"))],
    )
);

shared_response!(
    /// 429: rate limited, with `Retry-After`.
    RateLimited => || error(
        "A rate-limit rule naming this operation is spent for this caller (`rate_limited`; \
         counted per client IP or per user), or Supabase Auth's own rate limit was hit.",
        &[("rate_limited", body("rate_limited", "Too many requests, retry later"))],
    )
    .header(
        "Retry-After",
        integer_header(
            "Seconds to wait before retrying: always for a supagate rule; for Supabase Auth's \
             limits only where Auth states the wait (it sends no Retry-After of its own)",
        ),
    )
    .header(
        "RateLimit-Policy",
        string_header(
            "The rules naming this operation (draft-ietf-httpapi-ratelimit-headers-08), \
             e.g. `\"rules[0]\";q=10;w=60`; absent when only Auth limited the request",
        ),
    )
    .header(
        "RateLimit",
        string_header(
            "What is left of each rule's budget, e.g. `\"rules[0]\";r=0;t=60`; absent when \
             only Auth limited the request",
        ),
    )
);

shared_response!(
    /// 500: our fault (a missing server-side setting, say).
    Internal => || error(
        "An internal error (`internal`); the detail is in the server log only.",
        &[("internal", body("internal", "Internal server error"))],
    )
);

shared_response!(
    /// 502: Supabase answered with something it should not have.
    BadGateway => || error(
        "Supabase answered unexpectedly, e.g. an HTML page instead of JSON (`upstream_error`).",
        &[("upstream_error", body("upstream_error", "Supabase answered unexpectedly"))],
    )
);

shared_response!(
    /// 503: Supabase is unreachable.
    Unavailable => || error(
        "Supabase is unreachable (`upstream_unavailable`).",
        &[("upstream_unavailable", body("upstream_unavailable", "Supabase is unreachable"))],
    )
);

shared_response!(
    /// 504: Supabase did not answer in time.
    Timeout => || error(
        "Supabase did not answer within the configured timeout (`upstream_timeout`).",
        &[("upstream_timeout", body("upstream_timeout", "Supabase did not answer in time"))],
    )
);

/// Declares a group of shared responses: an operation lists the group once in its
/// `responses(...)` instead of one line per status. Each entry is a reference to the shared
/// response above, so the document holds every definition once.
macro_rules! response_group {
    ($(#[$doc:meta])* $name:ident => [$(($status:literal, $response:ident)),+ $(,)?]) => {
        $(#[$doc])*
        pub struct $name;
        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<String, RefOr<Response>> {
                [$((
                    $status.to_owned(),
                    RefOr::Ref(Ref::from_response_name(stringify!($response))),
                )),+]
                .into_iter()
                .collect()
            }
        }
    };
}

response_group!(
    /// Every operation that calls Supabase: 502, 503, 504.
    UpstreamErrors => [("502", BadGateway), ("503", Unavailable), ("504", Timeout)]
);

response_group!(
    /// Every `/api` data operation: bad input (400), credentials (401), permission (403).
    /// An operation whose 403 means more lists its own `(status = 403, ...)` after the group.
    CallerErrors => [("400", BadRequest), ("401", Unauthorized), ("403", Forbidden)]
);

response_group!(
    /// Every operation with a JSON body: too large (413), not JSON (415).
    BodyErrors => [("413", PayloadTooLarge), ("415", UnsupportedMediaType)]
);
