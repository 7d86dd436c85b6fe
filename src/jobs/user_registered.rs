//! The `user.registered` job: tells an external API (a mailing service) about a new user, with
//! a bearer key and a timeout; 5xx, 429 and transport failures are retried, other 4xx are not.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Secret, UserRegisteredSettings};
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
    http: reqwest::Client,
    url: String,
    api_key: Secret,
}

impl Client {
    pub fn new(settings: &UserRegisteredSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .build()?;
        Ok(Self {
            http,
            url: settings.url.clone(),
            api_key: settings.api_key.clone(),
        })
    }

    pub async fn send(&self, job: UserRegistered) -> Result<(), JobError> {
        let mut request = self.http.post(&self.url).json(&serde_json::json!({
            "event": "user.registered",
            "user_id": job.user_id,
            "email": job.email,
        }));
        if !self.api_key.is_blank() {
            request = request.bearer_auth(self.api_key.expose());
        }
        let res = request
            .send()
            .await
            // The URL is configuration, not a secret, but strip it like every upstream error.
            .map_err(|e| JobError::Transient(e.without_url().to_string()))?;
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
