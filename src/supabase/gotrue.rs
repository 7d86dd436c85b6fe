//! Supabase Auth (GoTrue) user flows: signup, token grants, logout, user, recover, and the
//! three shapes its error bodies come in. No decisions about our own statuses live here.

use bytes::Bytes;
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::Supabase;
use crate::http_client::{bearer, UpstreamError};

/// An error answer from Auth, normalised across its three body shapes:
/// `{code:int, error_code, msg}`, `{code:"…", message}` and OAuth `{error, error_description}`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthFailure {
    pub status: StatusCode,
    /// The string error code (`invalid_credentials`, `invalid_grant`, ...), when present.
    pub code: Option<String>,
    /// Auth's human-readable message (`msg`, `message` or `error_description`).
    pub message: Option<String>,
    /// `weak_password.reasons`, when Auth sent them.
    pub reasons: Option<Value>,
}

impl AuthFailure {
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
        }
    }

    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("")
    }
}

/// What an Auth call can end in besides success.
#[derive(Debug)]
pub enum AuthError {
    /// Auth answered with an error status.
    Auth(AuthFailure),
    /// Transport failure, 5xx or an unusable body.
    Upstream(UpstreamError),
}

impl From<UpstreamError> for AuthError {
    fn from(e: UpstreamError) -> Self {
        AuthError::Upstream(e)
    }
}

/// supabase-js sends this; Auth then answers errors in the versioned `{code, message}` shape.
const API_VERSION: &str = "2024-01-01";

impl Supabase {
    fn auth_request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.gotrue.request(method, path).header(
            "x-supabase-api-version",
            HeaderValue::from_static(API_VERSION),
        )
    }

    /// Sends, and splits the outcome: 2xx body, Auth 4xx, or anything else as upstream.
    async fn auth_call(&self, request: reqwest::RequestBuilder) -> Result<Bytes, AuthError> {
        let res = self.gotrue.send(request).await?;
        let status = res.status();
        let header_code = res
            .headers()
            .get("x-sb-error-code")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = self.gotrue.read_body(res).await?;
        if status.is_success() {
            Ok(body)
        } else if status.is_client_error() {
            Err(AuthError::Auth(AuthFailure::parse(
                status,
                &body,
                header_code.as_deref(),
            )))
        } else {
            Err(AuthError::Upstream(UpstreamError::Status {
                upstream: self.gotrue.name(),
                status,
                body,
            }))
        }
    }

    async fn auth_json(&self, request: reqwest::RequestBuilder) -> Result<Value, AuthError> {
        let body = self.auth_call(request).await?;
        Ok(self.gotrue.decode(&body)?)
    }

    /// `POST /signup`: a session (auto-confirm) or a bare user (confirmation required).
    pub async fn signup(&self, body: &Value) -> Result<Value, AuthError> {
        let request = self.anon_bearer(self.auth_request(Method::POST, "/signup").json(body));
        self.auth_json(request).await
    }

    /// `POST /token?grant_type=<grant>`.
    pub async fn token(&self, grant: &str, body: &Value) -> Result<Value, AuthError> {
        let request = self.anon_bearer(
            self.auth_request(Method::POST, "/token")
                .query(&[("grant_type", grant)])
                .json(body),
        );
        self.auth_json(request).await
    }

    /// `POST /logout?scope=global`: revokes every session of the user (supabase-js default).
    pub async fn logout(&self, access_token: &str) -> Result<(), AuthError> {
        let request = bearer(
            self.auth_request(Method::POST, "/logout")
                .query(&[("scope", "global")]),
            access_token,
        );
        self.auth_call(request).await.map(|_| ())
    }

    /// `GET /user` for the token's owner.
    pub async fn user(&self, access_token: &str) -> Result<Value, AuthError> {
        let request = bearer(self.auth_request(Method::GET, "/user"), access_token);
        self.auth_json(request).await
    }

    /// `POST /recover`: sends the reset mail if the address has an account.
    pub async fn recover(&self, email: &str) -> Result<(), AuthError> {
        let request = self.anon_bearer(
            self.auth_request(Method::POST, "/recover")
                .json(&serde_json::json!({ "email": email })),
        );
        self.auth_call(request).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
