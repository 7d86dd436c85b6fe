//! The consumer loop behind `supagate worker`: reads each registered queue through PostgREST,
//! runs handlers under one concurrency limit, archives what succeeded, retries with backoff
//! (by moving the message's visibility timeout) and dead-letters what cannot succeed.
//!
//! Delivery is at least once: a worker that dies mid-job (even SIGKILL) leaves the message in
//! the queue, and it is read again once its visibility timeout passes. Handlers are therefore
//! idempotent; `read_ct` (pgmq's read count) is the attempt number.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{watch, Semaphore};

use super::{dlq_name, HandlerFn, Handlers, JobError};
use crate::config::{IdempotencySettings, QueueSettings, WorkerSettings};
use crate::metrics::metrics;
use crate::supabase::queues::QueueMessage;
use crate::supabase::Supabase;

/// Messages asked for per read, at most (and never more than free slots).
const MAX_BATCH: usize = 10;
/// How often the queue depth gauges are refreshed.
const DEPTH_INTERVAL: Duration = Duration::from_secs(10);

pub struct Worker {
    supabase: Supabase,
    handlers: Handlers,
    settings: WorkerSettings,
    /// Idempotency keys older than this are pruned (`idempotency.key_ttl_secs`).
    key_ttl_secs: u32,
}

impl Worker {
    pub fn new(supabase: Supabase, handlers: Handlers, settings: WorkerSettings) -> Self {
        Self {
            supabase,
            handlers,
            settings,
            key_ttl_secs: IdempotencySettings::default().key_ttl_secs,
        }
    }

    /// Prunes idempotency keys older than `idempotency`'s lifetime (24 h unless set).
    pub fn with_idempotency(mut self, idempotency: &IdempotencySettings) -> Self {
        self.key_ttl_secs = idempotency.key_ttl_secs;
        self
    }

    /// Consumes until `shutdown` completes, then reads nothing more and waits up to
    /// `worker.shutdown_timeout_secs` for the jobs in flight. A job still running then is
    /// abandoned; its message reappears after its visibility timeout.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let slots = self.settings.concurrency.max(1);
        let semaphore = Arc::new(Semaphore::new(slots));
        let (stop_tx, stop_rx) = watch::channel(false);
        let queues: Vec<String> = self.handlers.queues().map(str::to_owned).collect();
        tracing::info!("worker consuming {queues:?} with {slots} slots");

        let mut loops = tokio::task::JoinSet::new();
        for queue in &queues {
            let Some(handler) = self.handlers.get(queue) else {
                continue;
            };
            let consumer = Consumer {
                supabase: self.supabase.clone(),
                queue: queue.clone(),
                settings: self.settings.queue(queue),
                handler,
                semaphore: Arc::clone(&semaphore),
                poll: Duration::from_millis(self.settings.poll_interval_ms),
            };
            loops.spawn(consumer.run(stop_rx.clone()));
        }
        if self.settings.housekeeping_interval_secs > 0 {
            loops.spawn(housekeeping(
                self.supabase.clone(),
                queues.clone(),
                Duration::from_secs(self.settings.housekeeping_interval_secs),
                (self.settings.history_retention_secs, self.key_ttl_secs),
                stop_rx.clone(),
            ));
        }
        loops.spawn(watch_depth(self.supabase.clone(), queues, stop_rx));

        shutdown.await;
        tracing::info!("worker stopping: no new reads, finishing jobs in flight");
        let _ = stop_tx.send(true);
        while loops.join_next().await.is_some() {}

        let grace = Duration::from_secs(self.settings.shutdown_timeout_secs);
        let all = u32::try_from(slots).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(grace, semaphore.acquire_many(all))
            .await
            .is_ok();
        if drained {
            tracing::info!("worker stopped");
        } else {
            tracing::warn!(
                "worker stopped with jobs still running after {grace:?}; their messages \
                 reappear after the visibility timeout"
            );
        }
    }
}

struct Consumer {
    supabase: Supabase,
    queue: String,
    settings: QueueSettings,
    handler: Arc<HandlerFn>,
    semaphore: Arc<Semaphore>,
    poll: Duration,
}

impl Consumer {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        loop {
            if *stop.borrow() {
                return;
            }
            // A slot first: a read never takes a message that could not start at once, since
            // its visibility timeout starts ticking at the read.
            let first = tokio::select! {
                permit = Arc::clone(&this.semaphore).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = stop.changed() => return,
            };
            let mut permits = vec![first];
            while permits.len() < MAX_BATCH {
                match Arc::clone(&this.semaphore).try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            let read = this
                .supabase
                .queue_read(
                    &this.queue,
                    this.settings.visibility_timeout_secs,
                    permits.len(),
                )
                .await;
            let messages = match read {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("queue {}: read failed: {e}", this.queue);
                    Vec::new()
                }
            };
            if messages.is_empty() {
                drop(permits);
                tokio::select! {
                    _ = tokio::time::sleep(this.poll) => {}
                    _ = stop.changed() => return,
                }
                continue;
            }
            for message in messages {
                let Some(permit) = permits.pop() else { break };
                let this = Arc::clone(&this);
                tokio::spawn(async move {
                    this.process(message).await;
                    drop(permit);
                });
            }
        }
    }

    /// One attempt at one message, and what happens to the message after it.
    async fn process(&self, message: QueueMessage) {
        let queue = self.queue.as_str();
        let id = message.msg_id;
        let attempt = u32::try_from(message.read_ct).unwrap_or(u32::MAX);
        let vt = Duration::from_secs(self.settings.visibility_timeout_secs.into());
        // Finish before the message becomes visible to another read.
        let limit = vt
            .saturating_sub(Duration::from_secs(1))
            .max(Duration::from_secs(1));
        let started = Instant::now();
        let result =
            match tokio::time::timeout(limit, (self.handler)(message.message.clone())).await {
                Ok(r) => r,
                Err(_) => Err(JobError::Transient(format!(
                    "did not finish within {}s",
                    limit.as_secs()
                ))),
            };
        let elapsed = started.elapsed();
        match result {
            Ok(()) => {
                metrics().job(queue, "done", elapsed);
                // Archived rather than deleted: the queue's archive is the record of what ran.
                if let Err(e) = self.supabase.queue_archive(queue, id).await {
                    tracing::warn!("queue {queue}: message {id} done but not archived ({e}); it will run again");
                }
            }
            Err(e) if e.is_permanent() || attempt >= self.settings.max_attempts => {
                metrics().job(queue, "dead_lettered", elapsed);
                tracing::error!(
                    "queue {queue}: message {id} dead-lettered after attempt {attempt}: {e}"
                );
                self.dead_letter(&message, attempt, &e).await;
            }
            Err(e) => {
                metrics().job(queue, "retried", elapsed);
                let delay = backoff(&self.settings, attempt);
                tracing::warn!(
                    "queue {queue}: message {id} attempt {attempt} failed ({e}); retry in {delay}s"
                );
                if let Err(e) = self.supabase.queue_set_vt(queue, id, delay).await {
                    // It reappears after its visibility timeout anyway.
                    tracing::warn!("queue {queue}: message {id}: backoff not set ({e})");
                }
            }
        }
    }

    /// Archives the message and sends it with its last error to `<queue>_dlq`, in one
    /// database transaction: a crash cannot leave a copy in both (a duplicate letter once the
    /// message is read again) or in neither. If the call fails, nothing moved and the message
    /// is read again.
    async fn dead_letter(&self, message: &QueueMessage, attempts: u32, error: &JobError) {
        let queue = self.queue.as_str();
        let letter = json!({
            "queue": queue,
            "msg_id": message.msg_id,
            "attempts": attempts,
            "error": error.to_string(),
            "enqueued_at": message.enqueued_at,
            "message": message.message,
        });
        match self
            .supabase
            .queue_dead_letter(queue, message.msg_id, &letter)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "queue {queue}: message {} was gone before it could be dead-lettered",
                message.msg_id
            ),
            Err(e) => tracing::error!(
                "queue {queue}: message {} not dead-lettered ({e}); it will be read again",
                message.msg_id
            ),
        }
    }
}

/// Seconds before attempt `attempt + 1`: `base * 2^(attempt - 1)`, capped.
pub fn backoff(settings: &QueueSettings, attempt: u32) -> u32 {
    let exponent = attempt.saturating_sub(1).min(31);
    settings
        .backoff_base_secs
        .saturating_mul(1u32 << exponent)
        .min(settings.backoff_max_secs)
}

/// Every `worker.housekeeping_interval_secs`, from start-up: deletes each queue's archived
/// messages and dead letters older than `worker.history_retention_secs`, and idempotency keys
/// past `idempotency.key_ttl_secs`. A failed run is logged and tried again next time.
async fn housekeeping(
    supabase: Supabase,
    queues: Vec<String>,
    interval: Duration,
    (retention, key_ttl_secs): (u32, u32),
    mut stop: watch::Receiver<bool>,
) {
    loop {
        for queue in &queues {
            match supabase.prune_queue_history(queue, retention).await {
                Ok(n) => {
                    tracing::info!("queue {queue}: {n} archived messages and dead letters pruned")
                }
                Err(e) => tracing::warn!("queue {queue}: history not pruned: {e}"),
            }
        }
        match supabase.prune_idempotency_keys(key_ttl_secs).await {
            Ok(n) => tracing::info!("{n} expired idempotency keys pruned"),
            Err(e) => tracing::warn!("idempotency keys not pruned: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn watch_depth(supabase: Supabase, queues: Vec<String>, mut stop: watch::Receiver<bool>) {
    loop {
        for queue in &queues {
            for name in [queue.clone(), dlq_name(queue)] {
                match supabase.queue_depth(&name).await {
                    Ok(depth) => metrics().set_queue_depth(&name, depth),
                    Err(e) => tracing::debug!("queue {name}: depth not read: {e}"),
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(DEPTH_INTERVAL) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The worker's `/metrics` on `addr` (it has no other HTTP surface).
pub fn metrics_server(addr: &str) -> anyhow::Result<actix_web::dev::Server> {
    use actix_web::{web, App, HttpServer};
    let server =
        HttpServer::new(|| App::new().route("/metrics", web::get().to(crate::metrics::handler)))
            .workers(1)
            .disable_signals()
            .bind(addr)?
            .run();
    tracing::info!("worker metrics on http://{addr}/metrics");
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_and_stops_at_the_cap() {
        let s = QueueSettings {
            visibility_timeout_secs: 30,
            max_attempts: 10,
            backoff_base_secs: 5,
            backoff_max_secs: 60,
        };
        let waits: Vec<u32> = (1..=6).map(|a| backoff(&s, a)).collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
        assert_eq!(backoff(&s, u32::MAX), 60);
    }
}
