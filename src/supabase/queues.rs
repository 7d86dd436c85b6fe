//! Supabase Queues (pgmq) over PostgREST with the secret key: Supabase's `pgmq_public`
//! wrappers (`send`, `read`, `archive`, `delete`), addressed with `Content-Profile:
//! pgmq_public`, and this project's `public` helpers (`queue_set_vt`, `queue_depth`,
//! `queue_dead_letter`, the pruning functions, `enqueue_stripe_event`). No direct database
//! connection.

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::SupabaseError;
use super::Supabase;

/// The schema Supabase exposes the queue wrappers in. PostgREST picks a non-default exposed
/// schema from `Content-Profile` on POST (and `Accept-Profile` on GET/HEAD); the project must
/// list it in the API's exposed schemas.
pub const QUEUE_SCHEMA: &str = "pgmq_public";

/// One row of `pgmq.message_record` as PostgREST returns it from `read`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct QueueMessage {
    pub msg_id: i64,
    /// How many times the message was read, this read included: the attempt number.
    pub read_ct: i32,
    pub enqueued_at: String,
    /// Until when the message stays invisible.
    pub vt: String,
    pub message: Value,
}

impl Supabase {
    /// `POST /rpc/<function>` in `pgmq_public`.
    async fn queue_rpc(&self, function: &str, args: &Value) -> Result<bytes::Bytes, SupabaseError> {
        self.service_rpc_in(Some(QUEUE_SCHEMA), function, args)
            .await
    }

    /// `pgmq_public.send`: the new message id.
    pub async fn queue_send(
        &self,
        queue: &str,
        message: &Value,
        delay_secs: u32,
    ) -> Result<i64, SupabaseError> {
        let body = self
            .queue_rpc(
                "send",
                &serde_json::json!({
                    "queue_name": queue, "message": message, "sleep_seconds": delay_secs,
                }),
            )
            .await?;
        // `returns setof bigint`: PostgREST answers a one-element array.
        let ids: Vec<i64> = self.service_api()?.decode(&body)?;
        ids.into_iter().next().ok_or_else(|| {
            SupabaseError::Transport(crate::http_client::UpstreamError::InvalidBody {
                upstream: "rest",
                cause: "send returned no message id".to_owned(),
            })
        })
    }

    /// `pgmq_public.read`: up to `n` messages, each invisible for `visibility_secs` from now.
    pub async fn queue_read(
        &self,
        queue: &str,
        visibility_secs: u32,
        n: usize,
    ) -> Result<Vec<QueueMessage>, SupabaseError> {
        let body = self
            .queue_rpc(
                "read",
                &serde_json::json!({
                    "queue_name": queue, "sleep_seconds": visibility_secs, "n": n,
                }),
            )
            .await?;
        Ok(self.service_api()?.decode(&body)?)
    }

    /// `pgmq_public.archive`: moves the message to the queue's archive; false if it was gone.
    pub async fn queue_archive(&self, queue: &str, msg_id: i64) -> Result<bool, SupabaseError> {
        let body = self
            .queue_rpc(
                "archive",
                &serde_json::json!({ "queue_name": queue, "message_id": msg_id }),
            )
            .await?;
        Ok(self.service_api()?.decode(&body)?)
    }

    /// `public.queue_set_vt`: the message becomes visible again `delay_secs` from now (the
    /// retry backoff). Not among Supabase's wrappers, hence this project's own function.
    pub async fn queue_set_vt(
        &self,
        queue: &str,
        msg_id: i64,
        delay_secs: u32,
    ) -> Result<(), SupabaseError> {
        self.service_rpc_in(
            None,
            "queue_set_vt",
            &serde_json::json!({
                "p_queue_name": queue, "p_msg_id": msg_id, "p_sleep_seconds": delay_secs,
            }),
        )
        .await
        .map(drop)
    }

    /// `public.queue_depth`: messages in the queue, visible or not.
    pub async fn queue_depth(&self, queue: &str) -> Result<i64, SupabaseError> {
        let body = self
            .service_rpc_in(
                None,
                "queue_depth",
                &serde_json::json!({ "p_queue_name": queue }),
            )
            .await?;
        // `null` when pgmq reports nothing (an unknown queue raises instead).
        let depth: Option<i64> = self.service_api()?.decode(&body)?;
        Ok(depth.unwrap_or(0))
    }

    /// `public.queue_dead_letter`: archives the message and sends `letter` to `<queue>_dlq`
    /// in one transaction; false when the message was no longer in the queue (nothing sent).
    pub async fn queue_dead_letter(
        &self,
        queue: &str,
        msg_id: i64,
        letter: &Value,
    ) -> Result<bool, SupabaseError> {
        let body = self
            .service_rpc_in(
                None,
                "queue_dead_letter",
                &serde_json::json!({
                    "p_queue_name": queue, "p_msg_id": msg_id, "p_letter": letter,
                }),
            )
            .await?;
        Ok(self.service_api()?.decode(&body)?)
    }

    /// `public.prune_queue_history`: deletes the queue's archived messages and its dead
    /// letters older than `older_than_secs`; how many went.
    pub async fn prune_queue_history(
        &self,
        queue: &str,
        older_than_secs: u32,
    ) -> Result<i64, SupabaseError> {
        let body = self
            .service_rpc_in(
                None,
                "prune_queue_history",
                &serde_json::json!({ "p_queue_name": queue, "p_older_than_secs": older_than_secs }),
            )
            .await?;
        Ok(self.service_api()?.decode(&body)?)
    }

    /// `public.prune_idempotency_keys`: deletes keys older than `older_than_secs`; how many.
    pub async fn prune_idempotency_keys(&self, older_than_secs: u32) -> Result<i64, SupabaseError> {
        let body = self
            .service_rpc_in(
                None,
                "prune_idempotency_keys",
                &serde_json::json!({ "p_older_than_secs": older_than_secs }),
            )
            .await?;
        Ok(self.service_api()?.decode(&body)?)
    }

    /// `public.enqueue_stripe_event`: records the event id and queues the event in one
    /// transaction; false for a redelivery (nothing queued).
    pub async fn enqueue_stripe_event(
        &self,
        event_id: &str,
        event_type: &str,
        event: &serde_json::value::RawValue,
    ) -> Result<bool, SupabaseError> {
        let body = self
            .service_rpc_in(
                None,
                "enqueue_stripe_event",
                &serde_json::json!({
                    "p_event_id": event_id, "p_event_type": event_type, "p_event": event,
                }),
            )
            .await?;
        Ok(self.service_api()?.decode(&body)?)
    }

    pub(crate) async fn service_rpc_in(
        &self,
        schema: Option<&str>,
        function: &str,
        args: &Value,
    ) -> Result<bytes::Bytes, SupabaseError> {
        let api = self.service_api()?;
        let mut request = api
            .request(Method::POST, &format!("/rpc/{function}"))
            .json(args);
        if let Some(schema) = schema {
            request = request.header("Content-Profile", schema);
        }
        super::stripe_data::service_call(api, self.service_bearer(request)).await
    }
}
