//! The one upstream error: what PostgREST or Auth answered, or that a Supabase surface could
//! not be used at all, and the one place each becomes the client's `ApiError` (PostgREST's
//! table, Auth's table, transport failures).
//!
//! The same upstream answer gets the same client answer on every route: a handler never maps
//! an upstream status itself. What only a call site knows (which conflict a unique violation
//! means) is said there with [`OnConflict::on_conflict`].

use std::fmt;

use bytes::Bytes;
use http::header::HeaderMap;
use http::StatusCode;
use serde::Deserialize;

use serde_json::json;

use super::functions::FunctionError;
use super::gotrue::{AuthCall, AuthError, AuthFailure};
use super::storage::StorageError;
use crate::error::ApiError;
use crate::http_client::UpstreamError;

/// Why a Supabase call did not produce the answer asked for.
#[derive(Debug)]
pub enum SupabaseError {
    /// No usable answer: refused, reset, timed out, an unreadable or oversized body, or an
    /// error status from a surface whose body we do not interpret.
    Transport(UpstreamError),
    /// PostgREST answered with an error status.
    Rest(RestFailure),
}

/// A PostgREST error answer, reduced to what the mapping needs.
#[derive(Debug)]
pub struct RestFailure {
    pub status: StatusCode,
    /// PostgREST's `code`: a `PGRSTnnn` or a PostgreSQL SQLSTATE (`23505`, `42501`, ...).
    /// From the JSON body, or from `Proxy-Status: PostgREST; error=<code>` when there is no
    /// body (a failing `HEAD`).
    pub code: Option<String>,
    /// PostgREST's `message`, for the log only.
    pub message: Option<String>,
    /// The call was made with the anon key: a permission error then means "sign in" (401).
    pub anonymous: bool,
}

#[derive(Deserialize)]
struct RestErrorBody {
    code: Option<String>,
    message: Option<String>,
}

impl RestFailure {
    pub fn parse(status: StatusCode, headers: &HeaderMap, body: &[u8], anonymous: bool) -> Self {
        let parsed: Option<RestErrorBody> = serde_json::from_slice(body).ok();
        let (code, message) = match parsed {
            Some(b) => (b.code, b.message),
            None => (None, None),
        };
        Self {
            status,
            code: code.or_else(|| proxy_status_error(headers)),
            message,
            anonymous,
        }
    }

    fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("")
    }

    /// A failure that the same request will meet again: the data or the request is wrong,
    /// not the service. Webhook effects use this to stop retrying a write that cannot succeed.
    /// Authorization failures (401/403) are not permanent: they come from a misconfigured or
    /// rotated key, which an operator fixes.
    pub fn is_permanent(&self) -> bool {
        let code = self.code();
        let sql_data_error = code.starts_with("22") || code.starts_with("23");
        let request_error = code.starts_with("PGRST1") || code == "PGRST204";
        self.status.is_client_error()
            && !matches!(self.status.as_u16(), 401 | 403 | 408 | 429)
            && (sql_data_error || request_error || code.is_empty() || code == "P0001")
    }
}

/// `Proxy-Status: PostgREST; error=PGRST301` → `PGRST301` (PostgREST 13+, RFC 9209).
fn proxy_status_error(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("proxy-status")?.to_str().ok()?;
    value.split([';', ',']).find_map(|param| {
        let (key, code) = param.trim().split_once('=')?;
        (key.trim().eq_ignore_ascii_case("error"))
            .then(|| code.trim().trim_matches('"').to_owned())
            .filter(|c| !c.is_empty())
    })
}

impl SupabaseError {
    /// A non-2xx PostgREST answer.
    pub fn rest(status: StatusCode, headers: &HeaderMap, body: &Bytes, anonymous: bool) -> Self {
        SupabaseError::Rest(RestFailure::parse(status, headers, body, anonymous))
    }

    /// Whether retrying the same call can only fail the same way (see
    /// [`RestFailure::is_permanent`]); transport failures are always worth a retry.
    pub fn is_permanent(&self) -> bool {
        match self {
            SupabaseError::Rest(f) => f.is_permanent(),
            SupabaseError::Transport(_) => false,
        }
    }

    fn is_unique_violation(&self) -> bool {
        matches!(self, SupabaseError::Rest(f) if f.code() == "23505")
    }
}

impl From<UpstreamError> for SupabaseError {
    fn from(e: UpstreamError) -> Self {
        SupabaseError::Transport(e)
    }
}

impl fmt::Display for SupabaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SupabaseError::Transport(e) => e.fmt(f),
            SupabaseError::Rest(r) => write!(
                f,
                "postgrest {} {}: {}",
                r.status.as_u16(),
                r.code(),
                r.message.as_deref().unwrap_or("(no JSON error body)")
            ),
        }
    }
}

impl std::error::Error for SupabaseError {}

/// The one mapping (docs/api.md codes). Upstream text goes to the log only, never to the client.
impl From<SupabaseError> for ApiError {
    fn from(e: SupabaseError) -> Self {
        let mapped = match &e {
            SupabaseError::Transport(t) => match t {
                UpstreamError::Unavailable { .. } => ApiError::upstream_unavailable(&e),
                UpstreamError::Timeout { .. } => ApiError::upstream_timeout(&e),
                // A surface saying it is unavailable or timed out is just that; the caller
                // may retry. Any other error status we do not interpret is a bad gateway.
                UpstreamError::Status { status, .. }
                    if *status == StatusCode::SERVICE_UNAVAILABLE =>
                {
                    ApiError::upstream_unavailable(&e)
                }
                UpstreamError::Status { status, .. } if *status == StatusCode::GATEWAY_TIMEOUT => {
                    ApiError::upstream_timeout(&e)
                }
                UpstreamError::Status { .. }
                | UpstreamError::InvalidBody { .. }
                | UpstreamError::TooLarge { .. } => ApiError::upstream_error(&e),
            },
            SupabaseError::Rest(r) => rest_error(r),
        };
        mapped.with_internal(e)
    }
}

/// Lets `?` carry a transport failure from code that talks to `JsonApi` directly (the JWKS
/// fetch) through the same table.
impl From<UpstreamError> for ApiError {
    fn from(e: UpstreamError) -> Self {
        SupabaseError::from(e).into()
    }
}

fn rest_error(r: &RestFailure) -> ApiError {
    match r.code() {
        "PGRST116" => ApiError::not_found("Not found"),
        "23505" => ApiError::conflict("conflict", "A record with these values already exists"),
        "23503" => {
            ApiError::unprocessable("invalid_reference", "A referenced record does not exist")
        }
        "23514" | "22P02" | "23502" => ApiError::validation(
            serde_json::json!({}),
            vec!["A value was rejected by the database".to_owned()],
        ),
        // Raised by the items insert trigger (supabase/migrations/..._item_limit.sql) with
        // SQLSTATE PGRST, which lets it choose this code and the 403 itself.
        "plan_limit_reached" => ApiError::forbidden(
            "plan_limit_reached",
            "The free plan's item limit is reached; subscribe to add more",
        ),
        // Raised by the keyed writes (`Idempotency-Key`), SQLSTATE PGRST as above.
        "idempotency_key_in_use" => ApiError::conflict(
            "idempotency_key_in_use",
            "A request with this Idempotency-Key is still being processed; retry it later",
        ),
        "idempotency_key_reused" => ApiError::unprocessable(
            "idempotency_key_reused",
            "This Idempotency-Key was used for a different request",
        ),
        // no_data_found: a keyed update that matched no row.
        "P0002" => ApiError::not_found("Not found"),
        "42501" if r.anonymous => ApiError::unauthorized(),
        "42501" => ApiError::forbidden("forbidden", "Not allowed"),
        "PGRST301" | "PGRST302" | "PGRST303" => {
            ApiError::invalid_token("invalid_token", "Supabase rejected the token")
        }
        "PGRST000" | "PGRST001" | "PGRST002" => {
            ApiError::upstream_unavailable("postgrest cannot reach the database")
        }
        "PGRST003" => ApiError::upstream_timeout("postgrest timed out waiting for a connection"),
        // No code (a bodyless HEAD from an older PostgREST, or a proxy's page): the status is
        // all there is, and the statuses PostgREST gives these cases are unambiguous.
        "" => match r.status.as_u16() {
            401 if r.anonymous => ApiError::unauthorized(),
            401 => ApiError::invalid_token("invalid_token", "Supabase rejected the token"),
            403 if r.anonymous => ApiError::unauthorized(),
            403 => ApiError::forbidden("forbidden", "Not allowed"),
            _ => ApiError::upstream_error("postgrest answered without an error code"),
        },
        _ => ApiError::upstream_error("postgrest answered with an unexpected error"),
    }
}

// ---- Supabase Auth ----

impl AuthFailure {
    /// The table: Auth's `error_code` (its `apierrors/errorcode.go` list) → our answer. Client
    /// errors stay 4xx with a stable code of ours; a 4xx we do not know is 400
    /// `auth_rejected`, never a 502 (502 means Auth broke). `call` says which Auth call
    /// answered, for the few codes whose meaning depends on it.
    pub fn to_api_error(&self, call: AuthCall) -> ApiError {
        let log = format!(
            "auth {call:?}: answered {} with code `{}`: {}",
            self.status.as_u16(),
            self.code(),
            self.message.as_deref().unwrap_or("")
        );
        if self.is_rate_limit() {
            return ApiError::rate_limited_after(self.retry_after).with_internal(log);
        }
        let code = self.code();
        let e = match (call, code) {
            // Auth's answer to an anonymous user on `/factors…` (`requireNotAnonymous`): the
            // session is fine, so not `session_expired` (which clients read as signed out).
            (AuthCall::Mfa, "no_authorization") if self.status == StatusCode::FORBIDDEN => {
                ApiError::anonymous_without_factors()
            }
            // Whatever the reason (unknown, reused, expired, revoked), the token is spent.
            // A token we verified locally, whose session or user Auth no longer has.
            (
                AuthCall::User | AuthCall::Logout,
                "bad_jwt" | "no_authorization" | "session_not_found" | "session_expired"
                | "user_not_found",
            ) => ApiError::session_expired(),
            (AuthCall::Admin, "user_not_found") => ApiError::not_found("User not found"),
            // Auth refused our secret key: our configuration is broken, not the request.
            (AuthCall::Admin, "not_admin" | "no_authorization" | "bad_jwt") => {
                ApiError::internal("Auth refused the service-role key")
            }
            (_, "invalid_credentials" | "invalid_grant") => {
                ApiError::auth_failed("invalid_credentials", "Invalid login credentials")
            }
            (_, "email_not_confirmed" | "phone_not_confirmed") => {
                ApiError::forbidden("email_not_confirmed", "Email address is not confirmed")
            }
            (_, "user_banned") => ApiError::forbidden("user_banned", "This user is banned"),
            (
                _,
                "user_already_exists" | "email_exists" | "phone_exists" | "identity_already_exists",
            ) => ApiError::conflict(
                "user_already_exists",
                "An account with this email already exists",
            ),
            (_, "weak_password") => {
                let e = ApiError::unprocessable("weak_password", "The password is too weak");
                match &self.reasons {
                    Some(reasons) => e.with_details(json!({ "reasons": reasons })),
                    None => e,
                }
            }
            (_, "same_password") => ApiError::unprocessable(
                "same_password",
                "The new password must differ from the current one",
            ),
            // MFA: a wrong code, a challenge past its 300 s, or verified from another IP
            // than the one that asked for it.
            (_, "mfa_verification_failed") => {
                ApiError::unprocessable("mfa_verification_failed", "The code is not correct")
            }
            (_, "mfa_challenge_expired") => ApiError::unprocessable(
                "mfa_challenge_expired",
                "The challenge has expired; ask for a new one",
            ),
            (_, "mfa_ip_address_mismatch") => ApiError::unprocessable(
                "mfa_ip_address_mismatch",
                "Challenge and verify must come from the same network address",
            ),
            (_, "mfa_factor_not_found") => ApiError::not_found("No such factor"),
            // The OAuth (PKCE) code exchange: unknown or already used code, too late, or a
            // verifier that is not the one the sign-in started with.
            (_, "flow_state_not_found") => ApiError::bad_request(
                "oauth_code_invalid",
                "This sign-in link was already used or is unknown; start the sign-in again",
            ),
            (_, "flow_state_expired") => ApiError::bad_request(
                "oauth_code_expired",
                "The sign-in took too long; start it again",
            ),
            (_, "bad_code_verifier") => ApiError::bad_request(
                "code_verifier_mismatch",
                "This sign-in was started in another browser or tab; start it again here",
            ),
            // A code or link that is wrong, used or expired (Auth cannot tell them apart).
            (_, "otp_expired") => {
                ApiError::auth_failed("otp_expired", "The code or link is invalid or has expired")
            }
            // `create_user: false` and no such account: Auth's own wording is "Signups not
            // allowed for otp".
            (_, "signup_disabled" | "otp_disabled") => {
                ApiError::forbidden("signup_disabled", "Sign-ups are disabled")
            }
            (
                _,
                "email_provider_disabled"
                | "phone_provider_disabled"
                | "anonymous_provider_disabled"
                | "provider_disabled"
                | "oauth_provider_not_supported"
                | "saml_provider_disabled"
                | "sso_provider_disabled"
                | "web3_provider_disabled",
            ) => ApiError::forbidden(
                "provider_disabled",
                "This sign-in method is disabled for the project",
            ),
            (_, "captcha_failed") => {
                ApiError::bad_request("captcha_failed", "The CAPTCHA check failed")
            }
            (_, "email_address_invalid") => ApiError::bad_request(
                "email_address_invalid",
                "Supabase Auth cannot send mail to this address",
            ),
            (_, "email_address_not_authorized") => ApiError::bad_request(
                "email_address_not_authorized",
                "The project's mail sender may not send to this address",
            ),
            (_, "validation_failed" | "bad_json") => ApiError::validation(
                json!({}),
                vec!["Supabase Auth rejected the request data".to_owned()],
            ),
            (_, "insufficient_aal") => ApiError::forbidden(
                "mfa_required",
                "This action needs a multi-factor authenticated session",
            ),
            (
                _,
                "session_not_found"
                | "session_expired"
                | "refresh_token_not_found"
                | "refresh_token_already_used"
                | "bad_jwt"
                | "no_authorization",
            ) => ApiError::session_expired(),
            (_, "user_not_found") => ApiError::not_found("User not found"),
            (_, "conflict") => {
                ApiError::conflict("conflict", "The request conflicts with the current state")
            }
            (_, "request_timeout" | "hook_timeout" | "hook_timeout_after_retry") => {
                ApiError::upstream_timeout("auth: timed out answering")
            }
            (AuthCall::Admin, _) if self.status == StatusCode::NOT_FOUND => {
                ApiError::not_found("User not found")
            }
            _ => ApiError::bad_request("auth_rejected", "Supabase Auth refused the request"),
        };
        e.with_internal(log)
    }
}

impl AuthError {
    /// An Auth call's failure as the client's answer: Auth's 4xx through the table above,
    /// anything else (unreachable, timed out, 5xx, unreadable) as every upstream's is.
    pub fn into_api(self, call: AuthCall) -> ApiError {
        match self {
            AuthError::Auth(f) => f.to_api_error(call),
            AuthError::Upstream(e) => SupabaseError::Transport(e).into(),
        }
    }
}

/// Says, at the call site, what a unique violation (23505) means for that call.
pub trait OnConflict<T> {
    fn on_conflict(self, conflict: impl FnOnce() -> ApiError) -> Result<T, ApiError>;
}

impl<T> OnConflict<T> for Result<T, SupabaseError> {
    fn on_conflict(self, conflict: impl FnOnce() -> ApiError) -> Result<T, ApiError> {
        self.map_err(|e| {
            if e.is_unique_violation() {
                conflict().with_internal(e)
            } else {
                e.into()
            }
        })
    }
}

// ---- Supabase Storage ----

/// Storage's answers to the signing calls (its `ERRORS` table, `src/internal/errors/codes.ts`),
/// by the status it meant (`statusCode`, see [`StorageFailure`]) and its code.
impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        let f = match e {
            StorageError::Upstream(u) => return u.into(),
            StorageError::Storage(f) => f,
        };
        let log = format!(
            "storage: answered {} (statusCode {}) `{}`: {}",
            f.http_status,
            f.meant_status(),
            f.code,
            f.message
        );
        let mapped = match (f.meant_status(), f.code.as_str()) {
            (404, _) | (_, "NoSuchKey" | "NoSuchBucket" | "not_found") => {
                ApiError::not_found("No such file, or no access to it")
            }
            // RLS refused the caller (`new row violates row-level security policy`), or
            // Storage refused the token.
            (403, _) | (_, "AccessDenied" | "Unauthorized") => {
                ApiError::forbidden("forbidden", "Not allowed")
            }
            (_, "InvalidJWT") => {
                ApiError::invalid_token("invalid_token", "Supabase rejected the token")
            }
            (409, _) | (_, "Duplicate" | "ResourceAlreadyExists" | "KeyAlreadyExists") => {
                ApiError::conflict("conflict", "A file already exists at this path")
            }
            (413, _) | (_, "EntityTooLarge") => {
                ApiError::file_too_large("The file is larger than the bucket allows")
            }
            (415, _) | (_, "InvalidMimeType" | "invalid_mime_type") => {
                ApiError::content_type_not_allowed("The bucket does not take this file type")
            }
            (_, "InvalidKey") => ApiError::invalid_path("Storage refused the object name"),
            (429, _) | (_, "SlowDown") => ApiError::rate_limited_after(None),
            (503, _) => ApiError::upstream_unavailable("storage unavailable"),
            (504 | 544, _) | (_, "DatabaseTimeout") => {
                ApiError::upstream_timeout("storage timed out")
            }
            // What supagate sent was wrong (InvalidRequest), or Storage broke: not the
            // client's to fix.
            _ => ApiError::upstream_error("storage answered with an unexpected error"),
        };
        mapped.with_internal(log)
    }
}

// ---- Edge Functions ----

/// functions-js's three errors: the function's own non-2xx (`FunctionsHttpError`), the
/// relay's (`x-relay-error: true`, `FunctionsRelayError`), and transport (`FunctionsFetchError`).
impl From<FunctionError> for ApiError {
    fn from(e: FunctionError) -> Self {
        match e {
            FunctionError::Upstream(u) => u.into(),
            FunctionError::Relay { status, body } => {
                let cause = UpstreamError::Status {
                    upstream: "functions",
                    status,
                    body,
                };
                // The relay's 503/504 stay what they are; anything else is a bad gateway.
                SupabaseError::Transport(cause).into()
            }
            // The gateway in front of the function refused the token we forwarded.
            FunctionError::Function { status, body } if status == StatusCode::UNAUTHORIZED => {
                ApiError::invalid_token("invalid_token", "Supabase rejected the token")
                    .with_internal(format!("functions: 401: {}", preview(&body)))
            }
            // The team's function refused: its status, and its JSON body under `details` (a
            // body that is not JSON is left out).
            FunctionError::Function { status, body } if status.is_client_error() => {
                let mut details = json!({ "status": status.as_u16() });
                if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) {
                    details["body"] = value;
                }
                ApiError::function_rejected(status.as_u16()).with_details(details)
            }
            FunctionError::Function { status, body } => match status.as_u16() {
                503 => {
                    ApiError::upstream_unavailable(format!("functions: 503: {}", preview(&body)))
                }
                504 => ApiError::upstream_timeout(format!("functions: 504: {}", preview(&body))),
                _ => ApiError::function_failed(format!("functions: {status}: {}", preview(&body)))
                    .with_details(json!({ "status": status.as_u16() })),
            },
        }
    }
}

fn preview(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(256)]).replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use http::header::HeaderValue;

    use super::*;

    fn rest(status: u16, body: &str, anonymous: bool) -> ApiError {
        let status = StatusCode::from_u16(status).unwrap();
        SupabaseError::rest(
            status,
            &HeaderMap::new(),
            &Bytes::from(body.to_owned()),
            anonymous,
        )
        .into()
    }

    #[test]
    fn postgrest_codes_map_to_the_api_codes() {
        let cases = [
            ("PGRST116", 406, 404, "not_found"),
            ("23505", 409, 409, "conflict"),
            ("23503", 409, 422, "invalid_reference"),
            ("23514", 400, 400, "validation_failed"),
            ("22P02", 400, 400, "validation_failed"),
            ("42501", 403, 403, "forbidden"),
            ("plan_limit_reached", 403, 403, "plan_limit_reached"),
            ("idempotency_key_in_use", 409, 409, "idempotency_key_in_use"),
            ("idempotency_key_reused", 422, 422, "idempotency_key_reused"),
            ("P0002", 404, 404, "not_found"),
            ("PGRST301", 401, 401, "invalid_token"),
            ("PGRST302", 401, 401, "invalid_token"),
            ("PGRST303", 401, 401, "invalid_token"),
            ("PGRST000", 503, 503, "upstream_unavailable"),
            ("PGRST003", 504, 504, "upstream_timeout"),
            ("PGRST100", 400, 502, "upstream_error"),
            ("XX000", 500, 502, "upstream_error"),
        ];
        for (code, upstream, status, api_code) in cases {
            let body = serde_json::json!({"code": code, "message": "m"}).to_string();
            let e = rest(upstream, &body, false);
            assert_eq!(
                (e.status().as_u16(), e.code()),
                (status, api_code),
                "{code}"
            );
        }
        assert_eq!(rest(502, "<html>", false).code(), "upstream_error");
        assert_eq!(
            rest(401, r#"{"code":"42501"}"#, true).status().as_u16(),
            401
        );
    }

    #[test]
    fn a_bodyless_head_failure_is_mapped_from_proxy_status() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "proxy-status",
            HeaderValue::from_static("PostgREST; error=PGRST303"),
        );
        let e: ApiError =
            SupabaseError::rest(StatusCode::UNAUTHORIZED, &headers, &Bytes::new(), false).into();
        assert_eq!((e.status().as_u16(), e.code()), (401, "invalid_token"));
    }

    #[test]
    fn a_bodyless_answer_without_proxy_status_is_mapped_from_its_status() {
        assert_eq!(rest(401, "", false).code(), "invalid_token");
        assert_eq!(rest(403, "", false).code(), "forbidden");
        assert_eq!(rest(403, "", true).code(), "unauthorized");
        assert_eq!(rest(500, "", false).code(), "upstream_error");
    }

    #[test]
    fn the_call_site_names_the_conflict() {
        let e = Err::<(), _>(SupabaseError::rest(
            StatusCode::CONFLICT,
            &HeaderMap::new(),
            &Bytes::from_static(br#"{"code":"23505"}"#),
            false,
        ))
        .on_conflict(|| ApiError::conflict("username_taken", "taken"))
        .unwrap_err();
        assert_eq!((e.status().as_u16(), e.code()), (409, "username_taken"));
    }

    #[test]
    fn data_errors_are_permanent_and_outages_are_not() {
        let failure = |status: u16, code: &str| {
            SupabaseError::rest(
                StatusCode::from_u16(status).unwrap(),
                &HeaderMap::new(),
                &Bytes::from(format!(r#"{{"code":"{code}"}}"#)),
                false,
            )
        };
        assert!(failure(409, "23505").is_permanent());
        assert!(failure(400, "22P02").is_permanent());
        assert!(failure(400, "PGRST100").is_permanent());
        assert!(!failure(401, "PGRST301").is_permanent());
        assert!(!failure(503, "PGRST001").is_permanent());
        assert!(!failure(500, "XX000").is_permanent());
        let refused = SupabaseError::Transport(UpstreamError::Unavailable {
            upstream: "rest",
            cause: "refused".into(),
        });
        assert!(!refused.is_permanent());
    }
}
