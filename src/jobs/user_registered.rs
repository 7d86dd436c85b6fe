//! The `user.registered` job: tells an external API (a mailing service) about a new user, with
//! a bearer key and a timeout; 5xx, 429 and transport failures are retried, other 4xx are not.

use std::time::Duration;

use http::Method;
use serde::{Deserialize, Serialize};

use crate::config::{Secret, UserRegisteredSettings};
use crate::http_client::{HttpClient, JsonApi};
use crate::supabase::Supabase;

use super::JobError;

pub const QUEUE: &str = "user_registered";

/// The message the gateway queues after a successful registration, and the body posted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserRegistered {
    pub user_id: uuid::Uuid,
    pub email: String,
}

#[derive(Clone)]
pub struct Client {
    /// The configured URL's scheme and host as the base, sent through the gateway's one pooled
    /// client: its TLS setup, connection bound, metrics and error mapping apply here too.
    api: JsonApi,
    /// The configured URL's path and query, relative to `api`.
    path: String,
    timeout: Duration,
    api_key: Secret,
}

impl Client {
    pub fn new(
        settings: &UserRegisteredSettings,
        http: HttpClient,
        max_body_bytes: usize,
    ) -> anyhow::Result<Self> {
        let url = url::Url::parse(settings.url.trim())?;
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let base = &url[..url::Position::BeforePath];
        Ok(Self {
            api: JsonApi::new(QUEUE, http, base, None, max_body_bytes)?,
            path,
            timeout: Duration::from_millis(settings.timeout_ms),
            api_key: settings.api_key.clone(),
        })
    }

    pub async fn send(&self, job: UserRegistered) -> Result<(), JobError> {
        let mut request = self
            .api
            .request(Method::POST, &self.path)
            .timeout(self.timeout)
            .json(&serde_json::json!({
                "event": "user.registered",
                "user_id": job.user_id,
                "email": job.email,
            }));
        if !self.api_key.is_blank() {
            request = request.bearer(self.api_key.expose());
        }
        // Transport errors never carry the URL. The answer's body is not needed: dropping it
        // frees the connection slot.
        let res = self
            .api
            .send(request)
            .await
            .map_err(|e| JobError::Transient(e.to_string()))?;
        let status = res.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
            Err(JobError::Transient(format!("answered {status}")))
        } else {
            Err(JobError::Permanent(format!("answered {status}")))
        }
    }
}

/// Queues the job for a user Auth just created. Auth answers an existing address with an
/// obfuscated user without identities (email enumeration protection): that one is skipped.
/// A failure is logged, not returned: the account exists, and a 5xx would only make the client
/// register again and get `user_already_exists`.
pub async fn enqueue(supabase: &Supabase, user: &serde_json::Value) {
    let new = user["identities"].as_array().is_some_and(|i| !i.is_empty());
    let id = user["id"]
        .as_str()
        .and_then(|id| uuid::Uuid::parse_str(id).ok());
    let email = user["email"].as_str();
    let (true, Some(user_id), Some(email)) = (new, id, email) else {
        return;
    };
    let job = UserRegistered {
        user_id,
        email: email.to_owned(),
    };
    let message = serde_json::to_value(&job).unwrap_or_default();
    if let Err(e) = supabase.queue_send(QUEUE, &message, 0).await {
        tracing::error!("user {user_id}: user.registered not queued: {e}");
    }
}
