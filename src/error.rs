//! The one error type of the HTTP boundary, and the one place it becomes a response:
//! `{"error": ..., "code": ..., "details"?: ...}` with the status docs/api.md assigns.

use std::borrow::Cow;
use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::Value;

type Message = Cow<'static, str>;

/// Everything a handler, extractor or middleware can fail with. Constructors name the cases
/// docs/api.md lists; the status and code are fixed by the constructor, so a handler cannot
/// invent an inconsistent pair.
/// Boxed so `Result<T, ApiError>` stays one pointer wide on the happy path; errors are cold.
#[derive(Debug)]
pub struct ApiError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    status: StatusCode,
    code: &'static str,
    message: Message,
    /// Boxed so `Result<_, ApiError>` stays small (clippy::result_large_err).
    details: Option<Value>,
    extra: Extra,
    /// Logged (at warn/error) when the response is built; never sent to the client.
    internal: Option<String>,
}

#[derive(Debug, Default)]
enum Extra {
    #[default]
    None,
    Allow(String),
    RetryAfter(u64),
    BearerChallenge(&'static str),
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<Message>) -> Self {
        Self(Box::new(Inner {
            status,
            code,
            message: message.into(),
            details: None,
            extra: Extra::None,
            internal: None,
        }))
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.0.details = Some(details);
        self
    }

    /// Attach text for the log only (upstream bodies, causes).
    pub fn with_internal(mut self, internal: impl fmt::Display) -> Self {
        self.0.internal = Some(internal.to_string());
        self
    }

    // 400
    pub fn bad_request(code: &'static str, message: impl Into<Message>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn invalid_json(message: impl Into<Message>) -> Self {
        Self::bad_request("invalid_json", message)
    }
    pub fn invalid_id() -> Self {
        Self::bad_request("invalid_id", "The id in the path is not a valid UUID")
    }
    pub fn unknown_parameter(name: &str) -> Self {
        Self::bad_request(
            "unknown_parameter",
            format!("Unknown query parameter `{name}`"),
        )
        .with_details(serde_json::json!({ "parameter": name }))
    }
    /// The zod `flatten()` shape the Next.js handlers returned.
    pub fn validation(field_errors: Value, form_errors: Vec<String>) -> Self {
        Self::bad_request("validation_failed", "Validation failed").with_details(
            serde_json::json!({ "formErrors": form_errors, "fieldErrors": field_errors }),
        )
    }

    // 401
    /// No credentials at all on a route that needs them.
    pub fn unauthorized() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
        );
        e.0.extra = Extra::BearerChallenge("");
        e
    }
    /// Credentials were presented and failed a check; `code` names the check.
    pub fn invalid_token(code: &'static str, message: impl Into<Message>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, code, message);
        e.0.extra = Extra::BearerChallenge("invalid_token");
        e
    }
    /// Auth refused credentials the caller sent in the body (a wrong password, a spent
    /// refresh token): 401 with a plain `Bearer` challenge, since every 401 carries one.
    pub fn auth_failed(code: &'static str, message: impl Into<Message>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, code, message);
        e.0.extra = Extra::BearerChallenge("");
        e
    }
    /// The session behind the credentials has ended (refresh refused, revoked upstream).
    pub fn session_expired() -> Self {
        Self::invalid_token("session_expired", "The session has ended; sign in again")
    }
    // 403 / 404 / 405 / 409 / 413 / 415 / 422 / 429
    pub fn forbidden(code: &'static str, message: impl Into<Message>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
    /// An anonymous sign-in on the MFA routes: the session is fine, the account kind is not.
    pub fn anonymous_without_factors() -> Self {
        Self::forbidden(
            "anonymous_not_allowed",
            "Anonymous users cannot use multi-factor authentication; sign up first",
        )
    }
    pub fn not_found(message: impl Into<Message>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn method_not_allowed(allow: &[actix_web::http::Method]) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
        );
        let list: Vec<&str> = allow.iter().map(|m| m.as_str()).collect();
        e.0.extra = Extra::Allow(list.join(", "));
        e
    }
    pub fn conflict(code: &'static str, message: impl Into<Message>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    /// 408: the request body did not arrive within `server.client_body_timeout_ms`.
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "The request body was not received in time",
        )
    }
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("Request body is larger than {limit} bytes"),
        )
    }
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json",
        )
    }
    /// A file declared larger than its bucket's `max_size_bytes` (or refused by Storage's
    /// own limit); `details.max_bytes` when the limit is ours.
    pub fn file_too_large(message: impl Into<Message>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large", message)
    }
    /// A file type its bucket does not take.
    pub fn content_type_not_allowed(message: impl Into<Message>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type_not_allowed",
            message,
        )
    }
    /// A file name or object path that could reach outside its folder or is not plain.
    pub fn invalid_path(message: impl Into<Message>) -> Self {
        Self::bad_request("invalid_path", message)
    }
    /// An answer of the team's own code (an Edge Function) with any status: the function
    /// refused, and says why in `details`.
    pub fn function_rejected(status: u16) -> Self {
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(StatusCode::is_client_error)
            .unwrap_or(StatusCode::BAD_REQUEST);
        Self::new(
            status,
            "function_rejected",
            "The function refused the request",
        )
    }
    /// 502: the function ran and failed (a 5xx of its own).
    pub fn function_failed(cause: impl fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "function_failed",
            "The function failed",
        )
        .with_internal(cause)
    }
    pub fn unprocessable(code: &'static str, message: impl Into<Message>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::rate_limited_after(Some(retry_after_secs))
    }
    /// 429 with `Retry-After` only where the wait is known (a rule of ours, or a wait Auth
    /// stated); Auth's per-IP limits state none, and an invented one would mislead.
    pub fn rate_limited_after(retry_after_secs: Option<u64>) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests, retry later",
        );
        if let Some(secs) = retry_after_secs {
            e.0.extra = Extra::RetryAfter(secs.max(1));
        }
        e
    }

    // 5xx
    pub fn internal(cause: impl fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
        )
        .with_internal(cause)
    }
    pub fn upstream_error(cause: impl fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "Supabase answered unexpectedly",
        )
        .with_internal(cause)
    }
    pub fn upstream_unavailable(cause: impl fmt::Display) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
            "Supabase is unreachable",
        )
        .with_internal(cause)
    }
    pub fn upstream_timeout(cause: impl fmt::Display) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "Supabase did not answer in time",
        )
        .with_internal(cause)
    }

    pub fn status(&self) -> StatusCode {
        self.0.status
    }
    pub fn code(&self) -> &'static str {
        self.0.code
    }
    pub fn details(&self) -> Option<&Value> {
        self.0.details.as_ref()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.0.status.as_u16(),
            self.0.code,
            self.0.message
        )
    }
}

impl std::error::Error for ApiError {}

/// The one error body. Also the OpenAPI `ErrorBody` schema, so the document cannot drift
/// from what is sent.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "error": "Validation failed", "code": "validation_failed",
    "details": {"formErrors": [], "fieldErrors": {"price": ["must be greater than 0"]}}
}))]
pub struct ErrorBody<'a> {
    /// Human-readable message (safe to show; never upstream text, SQL or keys).
    error: &'a str,
    /// Stable snake_case code to branch on.
    code: &'a str,
    /// Extra structure for some codes: zod `flatten()` shape `{formErrors, fieldErrors}` for
    /// `validation_failed`, `{parameter}` for `unknown_parameter`, `{checks}` for a failed
    /// `/ready`, `{reasons}` for `weak_password`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object, required = false)]
    details: Option<&'a Value>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        let this = &self.0;
        if let Some(internal) = &this.internal {
            if this.status.is_server_error() {
                tracing::error!("{} {}: {internal}", this.status.as_u16(), this.code);
            } else {
                tracing::debug!("{} {}: {internal}", this.status.as_u16(), this.code);
            }
        }
        let mut res = HttpResponse::build(this.status);
        match &this.extra {
            Extra::None => {}
            Extra::Allow(methods) => {
                res.insert_header((header::ALLOW, methods.as_str()));
            }
            Extra::RetryAfter(secs) => {
                res.insert_header((header::RETRY_AFTER, *secs));
            }
            Extra::BearerChallenge(error) => {
                let value = if error.is_empty() {
                    HeaderValue::from_static("Bearer")
                } else {
                    HeaderValue::from_str(&format!("Bearer error=\"{error}\""))
                        .unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
                };
                res.insert_header((header::WWW_AUTHENTICATE, value));
            }
        }
        res.json(ErrorBody {
            error: &this.message,
            code: this.code,
            details: this.details.as_ref(),
        })
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
