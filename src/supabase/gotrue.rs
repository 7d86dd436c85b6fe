//! Supabase Auth (GoTrue): the user flows (signup, token grants, logout, user, recover) and the
//! one parser for its three error-body shapes (the admin API in `gotrue_admin` uses it too).
//! Its `error_code` table is in `supabase::error`, beside every other upstream mapping.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::Supabase;
use crate::http_client::{Call, JsonApi, UpstreamError};

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

    /// The wait Auth states in words for a repeated mail or SMS to one recipient ("For
    /// security purposes, you can only request this after 42 seconds."); Auth sends no
    /// `Retry-After` header for any of its limits.
    pub fn stated_wait(&self) -> Option<u64> {
        let message = self.message.as_deref()?;
        let rest = message.split("after ").nth(1)?;
        let secs = rest.split_whitespace().next()?.parse::<u64>().ok()?;
        rest.contains("second").then_some(secs)
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
}

/// Which Auth call answered (the table is the same; a few codes mean different things).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthCall {
    Signup,
    PasswordGrant,
    User,
    Logout,
    Recover,
    Otp,
    Verify,
    Pkce,
    Mfa,
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

/// A request to Auth with the API-version header and, for a client, `Sb-Forwarded-For`
/// (`forward` false: never, see `Settings::client_ip_forwarding`).
pub(super) fn auth_request(
    api: &JsonApi,
    method: Method,
    path: &str,
    client: ForClient,
    forward: bool,
) -> Call {
    let request = api.request(method, path).header(
        "x-supabase-api-version",
        HeaderValue::from_static(API_VERSION),
    );
    match client.0.filter(|_| forward) {
        Some(ip) => match HeaderValue::from_str(&ip.to_string()) {
            Ok(value) => request.header(SB_FORWARDED_FOR, value),
            Err(_) => request,
        },
        None => request,
    }
}

/// Sends, and splits the outcome: 2xx body, Auth 4xx, or anything else as upstream.
pub(super) async fn auth_call(api: &JsonApi, request: Call) -> Result<Bytes, AuthError> {
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
        failure.retry_after = retry_after.or_else(|| failure.stated_wait());
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
    /// A call to Auth made for `client`: with the client key and, where Auth honours it,
    /// the client's IP.
    fn client_request(&self, method: Method, path: &str, client: ForClient) -> Call {
        auth_request(
            &self.gotrue_client,
            method,
            path,
            client,
            self.forward_client_ip,
        )
    }

    async fn auth_json(&self, request: Call) -> Result<Value, AuthError> {
        let body = auth_call(&self.gotrue_client, request).await?;
        Ok(self.gotrue_client.decode(&body)?)
    }

    /// `POST /signup`: a session (auto-confirm) or a bare user (confirmation required).
    pub async fn signup(&self, body: &Value, client: ForClient) -> Result<Value, AuthError> {
        let request = self
            .client_request(Method::POST, "/signup", client)
            .json(body);
        self.auth_json(self.client_bearer(request)).await
    }

    /// `POST /token?grant_type=<grant>`: the session as Auth wrote it (stored verbatim in the
    /// cookie, as auth-js does).
    pub async fn token(
        &self,
        grant: &str,
        body: &Value,
        client: ForClient,
    ) -> Result<Bytes, AuthError> {
        let request = self
            .client_request(Method::POST, "/token", client)
            .query(&[("grant_type", grant)])
            .json(body);
        auth_call(&self.gotrue_client, self.client_bearer(request)).await
    }

    /// `POST /logout?scope=<scope>` with the user's access token.
    pub async fn logout(
        &self,
        access_token: &str,
        scope: LogoutScope,
        client: ForClient,
    ) -> Result<(), AuthError> {
        let request = self
            .client_request(Method::POST, "/logout", client)
            .query(&[("scope", scope.as_str())]);
        auth_call(&self.gotrue_client, request.bearer(access_token))
            .await
            .map(|_| ())
    }

    /// `GET /user` for the token's owner.
    pub async fn user(&self, access_token: &str, client: ForClient) -> Result<Value, AuthError> {
        let request = self.client_request(Method::GET, "/user", client);
        self.auth_json(request.bearer(access_token)).await
    }

    /// `PUT /user`: changes the token owner's email, password or `data`. An anonymous user
    /// given an email (and password) becomes permanent once the address is confirmed; the
    /// id, and so every row, stays.
    pub async fn update_user(
        &self,
        access_token: &str,
        body: &Value,
        client: ForClient,
    ) -> Result<Value, AuthError> {
        let request = self.client_request(Method::PUT, "/user", client).json(body);
        self.auth_json(request.bearer(access_token)).await
    }

    /// `POST /otp`: mails a magic link / code, or texts a code (`{}` or `{message_id}`).
    pub async fn otp(&self, body: &Value, client: ForClient) -> Result<Value, AuthError> {
        let request = self.client_request(Method::POST, "/otp", client).json(body);
        self.auth_json(self.client_bearer(request)).await
    }

    /// `POST /verify`: a code or a link's `token_hash` for a session (as Auth wrote it).
    pub async fn verify(&self, body: &Value, client: ForClient) -> Result<Bytes, AuthError> {
        let request = self
            .client_request(Method::POST, "/verify", client)
            .json(body);
        auth_call(&self.gotrue_client, self.client_bearer(request)).await
    }

    /// A `/factors…` call (MFA) for the token's owner; the answer as Auth wrote it.
    pub async fn factors(
        &self,
        method: Method,
        path: &str,
        access_token: &str,
        body: Option<&Value>,
        client: ForClient,
    ) -> Result<Bytes, AuthError> {
        let mut request = self.client_request(method, path, client);
        if let Some(body) = body {
            request = request.json(body);
        }
        auth_call(&self.gotrue_client, request.bearer(access_token)).await
    }

    /// `POST /recover`: sends the reset mail if the address has an account.
    pub async fn recover(&self, email: &str, client: ForClient) -> Result<(), AuthError> {
        let request = self
            .client_request(Method::POST, "/recover", client)
            .json(&json!({ "email": email }));
        auth_call(&self.gotrue_client, self.client_bearer(request))
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
