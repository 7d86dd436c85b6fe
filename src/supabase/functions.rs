//! Supabase Edge Functions, invoked for a signed-in caller with their own token and the
//! project key, as functions-js does (docs/supabase-wire.md, Edge Functions). Only the
//! functions `[functions].allowed` lists can be reached.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::Supabase;
use crate::auth::AuthUser;
use crate::config::ConfigError;
use crate::http_client::UpstreamError;

/// `[functions]`: which Edge Functions clients may call through supagate, and how.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionsSettings {
    /// Function names (`/functions/v1/{name}`); any other name is 404 with no upstream call.
    #[serde(default)]
    pub allowed: Vec<String>,
    /// Largest request body forwarded; more is 413.
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// Deadline of one invocation (answer and body), in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for FunctionsSettings {
    fn default() -> Self {
        Self {
            allowed: Vec::new(),
            body_limit_bytes: default_body_limit(),
            timeout_ms: default_timeout_ms(),
        }
    }
}

fn default_body_limit() -> usize {
    64 * 1024
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl FunctionsSettings {
    pub fn is_allowed(&self, name: &str) -> bool {
        self.allowed.iter().any(|n| n == name)
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        // A function's slug: what the Supabase CLI accepts, and nothing a URL path treats
        // specially.
        if let Some(bad) = self.allowed.iter().find(|n| {
            n.is_empty()
                || n.len() > 64
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }) {
            return Err(ConfigError::invalid(
                "functions.allowed",
                format!("`{bad}` is not a function name (1-64 letters, digits, `-`, `_`)"),
            ));
        }
        if self.body_limit_bytes == 0 || self.timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "functions.body_limit_bytes",
                "body_limit_bytes and timeout_ms must be greater than 0",
            ));
        }
        Ok(())
    }
}

/// What a function answered with a 2xx: passed on as it is.
pub struct FunctionAnswer {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

/// Why an invocation did not produce the function's 2xx answer.
#[derive(Debug)]
pub enum FunctionError {
    /// The function itself answered non-2xx (functions-js: `FunctionsHttpError`).
    Function { status: StatusCode, body: Bytes },
    /// The relay in front of the function failed (`x-relay-error: true`, functions-js:
    /// `FunctionsRelayError`): the function did not run or did not answer.
    Relay { status: StatusCode, body: Bytes },
    /// Transport failure (functions-js: `FunctionsFetchError`), timeout, or a body too large.
    Upstream(UpstreamError),
}

impl From<UpstreamError> for FunctionError {
    fn from(e: UpstreamError) -> Self {
        FunctionError::Upstream(e)
    }
}

impl Supabase {
    /// `POST /functions/v1/{name}` with `Authorization: Bearer <caller's token>`, `apikey`,
    /// and the client's body and `Content-Type`. `name` is one of `[functions].allowed`.
    pub async fn invoke_function(
        &self,
        name: &str,
        content_type: Option<&HeaderValue>,
        body: Bytes,
        timeout: Duration,
        user: &AuthUser,
    ) -> Result<FunctionAnswer, FunctionError> {
        // A function answers whatever it likes: the default `Accept: application/json` would
        // claim a preference the client never stated.
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        if let Some(ct) = content_type {
            headers.insert(CONTENT_TYPE, ct.clone());
        }
        let call = self
            .functions
            .request(Method::POST, &format!("/{name}"))
            .headers(headers)
            .body(body)
            .timeout(timeout);
        let call = self.as_user(call, user);
        let res = self.functions.send(call).await?;
        let status = res.status();
        let relay = res
            .headers()
            .get("x-relay-error")
            .is_some_and(|v| v.as_bytes() == b"true");
        let content_type = res.headers().get(CONTENT_TYPE).cloned();
        let body = self.functions.read_body(res).await?;
        if relay {
            return Err(FunctionError::Relay { status, body });
        }
        if !status.is_success() {
            return Err(FunctionError::Function { status, body });
        }
        Ok(FunctionAnswer {
            status,
            content_type,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_are_checked_at_start_up() {
        let mut s = FunctionsSettings {
            allowed: vec!["hello-world".into(), "send_mail".into()],
            ..Default::default()
        };
        assert!(s.validate().is_ok());
        for bad in ["", "a/b", "../x", "a%2Fb", "a b", "é"] {
            s.allowed = vec![bad.into()];
            assert_eq!(
                s.validate().unwrap_err().setting,
                "functions.allowed",
                "{bad:?}"
            );
        }
    }
}
