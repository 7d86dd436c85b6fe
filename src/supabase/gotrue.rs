//! Supabase Auth (GoTrue): the user flows (signup, token grants, logout, user, recover), the
//! one parser for its three error-body shapes, and the one table from its `error_code`s to
//! our [`ApiError`]s (the admin API in `gotrue_admin` uses both too).

use std::net::IpAddr;

use bytes::Bytes;
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::Supabase;
use crate::error::ApiError;
use crate::http_client::{bearer, JsonApi, UpstreamError};

/// An error answer from Auth, normalised across its three body shapes:
/// `{code:int, error_code, msg}`, `{code:"…", message}` and OAuth `{error, error_description}`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthFailure {
    pub status: StatusCode,
    /// The string error code (`invalid_credentials`, `invalid_grant`, ...), when present.
    pub code: Option<String>,
    /// Auth's human-readable message (`msg`, `message` or `error_description`): log only.
    pub message: Option<String>,
    /// `weak_password.reasons`, when Auth sent them.
    pub reasons: Option<Value>,
    /// Auth's `Retry-After` (seconds), when it sent one with a 429.
    pub retry_after: Option<u64>,
}

impl AuthFailure {
    /// The one parser of Auth error bodies. `header_code` is Auth's `x-sb-error-code`, used
    /// when the body names no code (non-JSON bodies, versioned `weak_password`).
    pub fn parse(status: StatusCode, body: &[u8], header_code: Option<&str>) -> Self {
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let str_of = |key: &str| json.get(key).and_then(Value::as_str).map(str::to_owned);
        let code = str_of("error_code")
            .or_else(|| str_of("code"))
            .or_else(|| str_of("error"))
            .or_else(|| header_code.map(str::to_owned));
        let reasons = json
            .get("weak_password")
            .and_then(|w| w.get("reasons"))
            .cloned();
        let message = str_of("msg")
            .or_else(|| str_of("message"))
            .or_else(|| str_of("error_description"));
        Self {
            status,
            code,
            message,
            reasons,
            retry_after: None,
        }
    }

    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("")
    }

    /// Auth rate-limited the call (per client IP, or a mail/SMS quota).
    pub fn is_rate_limit(&self) -> bool {
        self.status == StatusCode::TOO_MANY_REQUESTS
            || matches!(
                self.code(),
                "over_request_rate_limit"
                    | "over_email_send_rate_limit"
                    | "over_sms_send_rate_limit"
            )
    }

    /// A refresh grant refused this way ends the session (auth-js: every non-retryable error
    /// does; a rate limit is only a "not now").
    pub fn ends_session(&self) -> bool {
        self.status.is_client_error() && !self.is_rate_limit()
    }

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
            return ApiError::rate_limited(self.retry_after.unwrap_or(DEFAULT_RETRY_AFTER_SECS))
                .with_internal(log);
        }
        let code = self.code();
        let e = match (call, code) {
            // Whatever the reason (unknown, reused, expired, revoked), the token is spent.
            (AuthCall::RefreshGrant, _) => {
                ApiError::auth_failed("invalid_refresh_token", "The refresh token is invalid")
            }
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
            (_, "signup_disabled") => {
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

/// When Auth's 429 says nothing about when to retry.
const DEFAULT_RETRY_AFTER_SECS: u64 = 60;

/// Which Auth call answered (the table is the same; a few codes mean different things).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthCall {
    Signup,
    PasswordGrant,
    RefreshGrant,
    User,
    Logout,
    Recover,
    Admin,
}

/// What an Auth call can end in besides success.
#[derive(Debug)]
pub enum AuthError {
    /// Auth answered with a 4xx.
    Auth(AuthFailure),
    /// Transport failure, 5xx or an unusable body.
    Upstream(UpstreamError),
}

impl From<UpstreamError> for AuthError {
    fn from(e: UpstreamError) -> Self {
        AuthError::Upstream(e)
    }
}

impl AuthError {
    /// The one place an Auth outcome becomes an [`ApiError`]. Auth's 503/504 stay 503/504
    /// (the caller may retry); any other 5xx or a body we cannot read is a 502.
    pub fn into_api(self, call: AuthCall) -> ApiError {
        match self {
            AuthError::Auth(f) => f.to_api_error(call),
            AuthError::Upstream(e) => upstream_to_api(e),
        }
    }

    /// Auth could not be used at all (unreachable, timed out, 5xx, garbage): nothing about
    /// the request or the session was decided.
    pub fn is_transient(&self) -> bool {
        matches!(self, AuthError::Upstream(_))
    }
}

fn upstream_to_api(e: UpstreamError) -> ApiError {
    match &e {
        UpstreamError::Status { status, .. } if *status == StatusCode::SERVICE_UNAVAILABLE => {
            ApiError::upstream_unavailable(e)
        }
        UpstreamError::Status { status, .. } if *status == StatusCode::GATEWAY_TIMEOUT => {
            ApiError::upstream_timeout(e)
        }
        _ => e.into(),
    }
}

/// The client an Auth call is made for. Its IP goes out as `Sb-Forwarded-For`, so Auth's
/// per-IP rate limits count this client rather than supagate's own address (Auth honours it
/// only with `GOTRUE_SECURITY_SB_FORWARDED_FOR_ENABLED`, see the README).
#[derive(Debug, Clone, Copy, Default)]
pub struct ForClient(pub Option<IpAddr>);

/// `POST /logout?scope=`: which sessions of the user end (Auth's and auth-js's default is
/// `global`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogoutScope {
    /// Every session of the user.
    #[default]
    Global,
    /// Only this session.
    Local,
    /// Every session but this one (the cookies stay).
    Others,
}

impl LogoutScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Local => "local",
            Self::Others => "others",
        }
    }
}

/// supabase-js sends this; Auth then answers errors in the versioned `{code, message}` shape.
const API_VERSION: &str = "2024-01-01";
const SB_FORWARDED_FOR: &str = "sb-forwarded-for";

/// A request to Auth with the API-version header and, for a client, `Sb-Forwarded-For`.
pub(super) fn auth_request(
    api: &JsonApi,
    method: Method,
    path: &str,
    client: ForClient,
) -> reqwest::RequestBuilder {
    let request = api.request(method, path).header(
        "x-supabase-api-version",
        HeaderValue::from_static(API_VERSION),
    );
    match client.0 {
        Some(ip) => match HeaderValue::from_str(&ip.to_string()) {
            Ok(value) => request.header(SB_FORWARDED_FOR, value),
            Err(_) => request,
        },
        None => request,
    }
}

/// Sends, and splits the outcome: 2xx body, Auth 4xx, or anything else as upstream.
pub(super) async fn auth_call(
    api: &JsonApi,
    request: reqwest::RequestBuilder,
) -> Result<Bytes, AuthError> {
    let res = api.send(request).await?;
    let status = res.status();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let header_code = header("x-sb-error-code");
    let retry_after = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok());
    let body = api.read_body(res).await?;
    if status.is_success() {
        Ok(body)
    } else if status.is_client_error() {
        let mut failure = AuthFailure::parse(status, &body, header_code.as_deref());
        failure.retry_after = retry_after;
        Err(AuthError::Auth(failure))
    } else {
        Err(AuthError::Upstream(UpstreamError::Status {
            upstream: api.name(),
            status,
            body,
        }))
    }
}

impl Supabase {
    async fn auth_json(&self, request: reqwest::RequestBuilder) -> Result<Value, AuthError> {
        let body = auth_call(&self.gotrue, request).await?;
        Ok(self.gotrue.decode(&body)?)
    }

    /// `POST /signup`: a session (auto-confirm) or a bare user (confirmation required).
    pub async fn signup(&self, body: &Value, client: ForClient) -> Result<Value, AuthError> {
        let request = auth_request(&self.gotrue, Method::POST, "/signup", client).json(body);
        self.auth_json(self.anon_bearer(request)).await
    }

    /// `POST /token?grant_type=<grant>`: the session as Auth wrote it (stored verbatim in the
    /// cookie, as auth-js does).
    pub async fn token(
        &self,
        grant: &str,
        body: &Value,
        client: ForClient,
    ) -> Result<Bytes, AuthError> {
        let request = auth_request(&self.gotrue, Method::POST, "/token", client)
            .query(&[("grant_type", grant)])
            .json(body);
        auth_call(&self.gotrue, self.anon_bearer(request)).await
    }

    /// `POST /logout?scope=<scope>` with the user's access token.
    pub async fn logout(
        &self,
        access_token: &str,
        scope: LogoutScope,
        client: ForClient,
    ) -> Result<(), AuthError> {
        let request = auth_request(&self.gotrue, Method::POST, "/logout", client)
            .query(&[("scope", scope.as_str())]);
        auth_call(&self.gotrue, bearer(request, access_token))
            .await
            .map(|_| ())
    }

    /// `GET /user` for the token's owner.
    pub async fn user(&self, access_token: &str, client: ForClient) -> Result<Value, AuthError> {
        let request = auth_request(&self.gotrue, Method::GET, "/user", client);
        self.auth_json(bearer(request, access_token)).await
    }

    /// `POST /recover`: sends the reset mail if the address has an account.
    pub async fn recover(&self, email: &str, client: ForClient) -> Result<(), AuthError> {
        let request = auth_request(&self.gotrue, Method::POST, "/recover", client)
            .json(&json!({ "email": email }));
        auth_call(&self.gotrue, self.anon_bearer(request))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, code: &str) -> AuthFailure {
        let body = json!({ "code": code, "message": "m" }).to_string();
        AuthFailure::parse(StatusCode::from_u16(status).unwrap(), body.as_bytes(), None)
    }

    #[test]
    fn all_three_error_shapes_yield_the_code() {
        let s = StatusCode::BAD_REQUEST;
        let legacy =
            br#"{"code":400,"error_code":"invalid_credentials","msg":"Invalid login credentials"}"#;
        let versioned = br#"{"code":"invalid_credentials","message":"Invalid login credentials"}"#;
        let oauth = br#"{"error":"invalid_grant","error_description":"Invalid login credentials"}"#;
        assert_eq!(
            AuthFailure::parse(s, legacy, None).code(),
            "invalid_credentials"
        );
        assert_eq!(
            AuthFailure::parse(s, versioned, None).code(),
            "invalid_credentials"
        );
        assert_eq!(AuthFailure::parse(s, oauth, None).code(), "invalid_grant");
        assert_eq!(
            AuthFailure::parse(s, b"<html>", Some("bad_json")).code(),
            "bad_json"
        );
        let weak = br#"{"code":422,"error_code":"weak_password","msg":"x","weak_password":{"reasons":["length"]}}"#;
        let f = AuthFailure::parse(StatusCode::UNPROCESSABLE_ENTITY, weak, None);
        assert_eq!(f.reasons, Some(serde_json::json!(["length"])));
    }

    #[test]
    fn client_errors_stay_client_errors_with_a_stable_code() {
        for (status, code, call, want_status, want_code) in [
            (
                400,
                "email_provider_disabled",
                AuthCall::Signup,
                403,
                "provider_disabled",
            ),
            (
                422,
                "phone_provider_disabled",
                AuthCall::PasswordGrant,
                403,
                "provider_disabled",
            ),
            (
                422,
                "signup_disabled",
                AuthCall::Signup,
                403,
                "signup_disabled",
            ),
            (
                400,
                "captcha_failed",
                AuthCall::PasswordGrant,
                400,
                "captcha_failed",
            ),
            (
                400,
                "email_address_invalid",
                AuthCall::Signup,
                400,
                "email_address_invalid",
            ),
            (
                429,
                "over_email_send_rate_limit",
                AuthCall::Signup,
                429,
                "rate_limited",
            ),
            (
                400,
                "invalid_credentials",
                AuthCall::PasswordGrant,
                401,
                "invalid_credentials",
            ),
            (
                400,
                "refresh_token_already_used",
                AuthCall::RefreshGrant,
                401,
                "invalid_refresh_token",
            ),
            (
                403,
                "session_not_found",
                AuthCall::User,
                401,
                "session_expired",
            ),
            (404, "user_not_found", AuthCall::Admin, 404, "not_found"),
            (403, "insufficient_aal", AuthCall::User, 403, "mfa_required"),
            (
                422,
                "a_code_from_the_future",
                AuthCall::Signup,
                400,
                "auth_rejected",
            ),
            (418, "", AuthCall::Recover, 400, "auth_rejected"),
        ] {
            let e = failure(status, code).to_api_error(call);
            assert_eq!(
                (e.status().as_u16(), e.code()),
                (want_status, want_code),
                "{status} {code} on {call:?}"
            );
        }
    }

    #[test]
    fn auth_5xx_is_502_but_503_and_504_keep_their_meaning() {
        let status = |s: u16| {
            AuthError::Upstream(UpstreamError::Status {
                upstream: "auth",
                status: StatusCode::from_u16(s).unwrap(),
                body: Bytes::new(),
            })
            .into_api(AuthCall::User)
            .status()
            .as_u16()
        };
        assert_eq!((status(500), status(503), status(504)), (502, 503, 504));
    }
}
