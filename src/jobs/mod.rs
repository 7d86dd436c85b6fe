//! Background jobs on Supabase Queues (pgmq): typed handlers registered by queue name, run by
//! `supagate worker` (see `worker`), with retries, backoff and a dead-letter queue per queue.

pub mod stripe;
pub mod user_registered;
pub mod worker;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::supabase::error::SupabaseError;

/// Why a job attempt failed, and whether another attempt can help.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The same message will fail the same way (bad payload, a constraint violation): it goes
    /// to the dead-letter queue at once.
    #[error("permanent: {0}")]
    Permanent(String),
    /// An outage, a timeout, a 5xx: retried with backoff until `max_attempts`.
    #[error("transient: {0}")]
    Transient(String),
}

impl JobError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, JobError::Permanent(_))
    }
}

impl From<SupabaseError> for JobError {
    fn from(e: SupabaseError) -> Self {
        if e.is_permanent() {
            JobError::Permanent(e.to_string())
        } else {
            JobError::Transient(e.to_string())
        }
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;
type HandlerFn = dyn Fn(Value) -> BoxFuture + Send + Sync;

/// Handlers by queue name. A message body that does not deserialize into the handler's type
/// is a permanent failure (a poison message), never retried.
#[derive(Clone, Default)]
pub struct Handlers {
    by_queue: Vec<(String, Arc<HandlerFn>)>,
}

impl Handlers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for the messages of `queue` (`T` is the message body).
    pub fn on<T, F, Fut>(mut self, queue: &str, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let run = move |raw: Value| -> BoxFuture {
            let handler = Arc::clone(&handler);
            Box::pin(async move {
                let job: T = serde_json::from_value(raw)
                    .map_err(|e| JobError::Permanent(format!("message body: {e}")))?;
                handler(job).await
            })
        };
        self.by_queue.push((queue.to_owned(), Arc::new(run)));
        self
    }

    pub fn queues(&self) -> impl Iterator<Item = &str> {
        self.by_queue.iter().map(|(q, _)| q.as_str())
    }

    fn get(&self, queue: &str) -> Option<Arc<HandlerFn>> {
        self.by_queue
            .iter()
            .find(|(q, _)| q == queue)
            .map(|(_, h)| Arc::clone(h))
    }
}

/// The dead-letter queue of `queue`.
pub fn dlq_name(queue: &str) -> String {
    format!("{queue}_dlq")
}

/// The handlers `supagate worker` runs with these settings: Stripe events always, the
/// `user.registered` call when its URL is configured.
pub fn default_handlers(
    settings: &crate::config::Settings,
    supabase: crate::supabase::Supabase,
) -> anyhow::Result<Handlers> {
    let mut handlers = Handlers::new().on(stripe::QUEUE, {
        let supabase = supabase.clone();
        move |event: Value| {
            let supabase = supabase.clone();
            async move { stripe::handle(&supabase, &event).await }
        }
    });
    if settings.jobs.user_registered.enabled() {
        let client = user_registered::Client::new(
            &settings.jobs.user_registered,
            supabase.http_client().clone(),
            settings.upstream.max_body_bytes,
        )?;
        handlers = handlers.on(user_registered::QUEUE, move |job| {
            let client = client.clone();
            async move { client.send(job).await }
        });
    }
    Ok(handlers)
}
