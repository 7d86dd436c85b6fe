//! Supabase Storage's signing endpoints, called with the caller's token so Storage checks
//! RLS on `storage.objects` as that user (docs/supabase-wire.md, Storage). Only the URLs are
//! asked for here: file bytes go from the browser to Storage, never through supagate.

use base64::Engine as _;
use http::Method;
use serde::Deserialize;
use serde_json::json;

use super::Supabase;
use crate::auth::AuthUser;
use crate::http_client::{Call, UpstreamError};

const UPSERT: &str = "x-upsert";

/// Why a Storage call did not produce a signed URL.
#[derive(Debug)]
pub enum StorageError {
    /// Storage answered with an error body (mapped in `supabase::error`).
    Storage(StorageFailure),
    /// Transport failure, or an answer that is not Storage's JSON.
    Upstream(UpstreamError),
}

impl From<UpstreamError> for StorageError {
    fn from(e: UpstreamError) -> Self {
        StorageError::Upstream(e)
    }
}

/// Storage's error body `{statusCode, error, message}` (and `code` in newer versions).
/// Storage answers most errors with HTTP 400 and puts the meaningful status, as a string, in
/// `statusCode`; older versions sent the real status. Both are kept.
#[derive(Debug)]
pub struct StorageFailure {
    /// The HTTP status of the answer.
    pub http_status: u16,
    /// `statusCode` from the body (a string such as `"404"`, or a number), when present.
    pub status: Option<u16>,
    /// `code` (`NoSuchKey`, `AccessDenied`, ...) when present, else `error`.
    pub code: String,
    /// `message`, for the log only.
    pub message: String,
}

#[derive(Deserialize)]
struct FailureBody {
    #[serde(rename = "statusCode")]
    status_code: Option<serde_json::Value>,
    code: Option<String>,
    error: Option<String>,
    message: Option<String>,
}

impl StorageFailure {
    pub fn parse(http_status: u16, body: &[u8]) -> Option<Self> {
        let body: FailureBody = serde_json::from_slice(body).ok()?;
        let status = match &body.status_code {
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            _ => None,
        };
        Some(Self {
            http_status,
            status,
            code: body.code.or(body.error).unwrap_or_default(),
            message: body.message.unwrap_or_default(),
        })
    }

    /// The status Storage meant: `statusCode` when it gave one, else the HTTP status.
    pub fn meant_status(&self) -> u16 {
        self.status.unwrap_or(self.http_status)
    }
}

/// A signed URL as Storage gave it: a path relative to `/storage/v1` with its `token`.
pub struct Signed {
    /// `/object/upload/sign/<bucket>/<path>?token=...` or `/object/sign/<bucket>/<path>?token=...`.
    pub relative_url: String,
    pub token: String,
    /// The token's `exp` (Unix seconds), when it carries one.
    pub expires_at: Option<i64>,
}

#[derive(Deserialize)]
struct UploadAnswer {
    url: String,
    token: Option<String>,
}

#[derive(Deserialize)]
struct DownloadAnswer {
    #[serde(rename = "signedURL")]
    signed_url: String,
}

impl Supabase {
    fn storage_call(&self, path: String, user: &AuthUser) -> Call {
        self.as_user(self.storage.request(Method::POST, &path), user)
    }

    /// `POST /storage/v1/object/upload/sign/{bucket}/{path}` as `user` (Storage checks the
    /// `INSERT` policy, and `UPDATE` too with `upsert`). `bucket` and `path` are made of
    /// bytes that need no encoding (`rules::files`). The body is `{}`, as storage-js sends;
    /// the lifetime is Storage's own setting, read back from the token's `exp`.
    pub async fn sign_upload(
        &self,
        bucket: &str,
        path: &str,
        upsert: bool,
        user: &AuthUser,
    ) -> Result<Signed, StorageError> {
        let mut call = self
            .storage_call(format!("/object/upload/sign/{bucket}/{path}"), user)
            .json(&json!({}));
        if upsert {
            call = call.header(UPSERT, "true");
        }
        let body = self.storage_send(call).await?;
        let answer: UploadAnswer = self.storage.decode(&body)?;
        let token = answer
            .token
            .or_else(|| token_of(&answer.url))
            .ok_or_else(|| invalid("the signed upload URL carries no token"))?;
        Ok(Signed {
            expires_at: expiry_of(&token),
            relative_url: answer.url,
            token,
        })
    }

    /// `POST /storage/v1/object/sign/{bucket}/{path}` with `{"expiresIn": secs}` as `user`
    /// (Storage reads the object through the `SELECT` policy first).
    pub async fn sign_download(
        &self,
        bucket: &str,
        path: &str,
        expires_in: u64,
        user: &AuthUser,
    ) -> Result<Signed, StorageError> {
        let call = self
            .storage_call(format!("/object/sign/{bucket}/{path}"), user)
            .json(&json!({ "expiresIn": expires_in }));
        let body = self.storage_send(call).await?;
        let answer: DownloadAnswer = self.storage.decode(&body)?;
        let token = token_of(&answer.signed_url)
            .ok_or_else(|| invalid("the signed URL carries no token"))?;
        Ok(Signed {
            expires_at: expiry_of(&token),
            relative_url: answer.signed_url,
            token,
        })
    }

    async fn storage_send(&self, call: Call) -> Result<bytes::Bytes, StorageError> {
        match self.storage.execute(call).await {
            Ok((_, _, body)) => Ok(body),
            Err(UpstreamError::Status { status, body, .. }) => {
                match StorageFailure::parse(status.as_u16(), &body) {
                    Some(failure) => Err(StorageError::Storage(failure)),
                    None => Err(StorageError::Upstream(UpstreamError::Status {
                        upstream: "storage",
                        status,
                        body,
                    })),
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn invalid(cause: &str) -> UpstreamError {
    UpstreamError::InvalidBody {
        upstream: "storage",
        cause: cause.to_owned(),
    }
}

/// The `token` query parameter of a URL Storage returned.
fn token_of(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .filter(|t| !t.is_empty())
}

/// The `exp` claim of a signed-URL token. Storage signed it; supagate only reads when it
/// ends, to tell the client, and trusts nothing else in it.
fn expiry_of(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_error_bodies_keep_the_status_they_meant() {
        let f = StorageFailure::parse(
            400,
            br#"{"statusCode":"404","code":"NoSuchKey","error":"not_found","message":"Object not found"}"#,
        )
        .unwrap();
        assert_eq!((f.meant_status(), f.code.as_str()), (404, "NoSuchKey"));
        let f = StorageFailure::parse(
            403,
            br#"{"statusCode":403,"error":"Unauthorized","message":"x"}"#,
        )
        .unwrap();
        assert_eq!((f.meant_status(), f.code.as_str()), (403, "Unauthorized"));
        let f = StorageFailure::parse(409, br#"{"error":"Duplicate"}"#).unwrap();
        assert_eq!(f.meant_status(), 409);
        assert!(StorageFailure::parse(502, b"<html>").is_none());
    }

    #[test]
    fn the_token_and_its_expiry_are_read_from_storages_url() {
        // {"url":"b/p","exp":1700000000}
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJ1cmwiOiJiL3AiLCJleHAiOjE3MDAwMDAwMDB9.sig";
        let url = format!("/object/sign/b/p?token={token}");
        assert_eq!(token_of(&url).as_deref(), Some(token));
        assert_eq!(expiry_of(token), Some(1_700_000_000));
        assert_eq!(token_of("/object/sign/b/p"), None);
        assert_eq!(token_of("/object/sign/b/p?token="), None);
        assert_eq!(expiry_of("not-a-jwt"), None);
    }
}
