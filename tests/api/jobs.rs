//! Background jobs: the webhook in queue mode and `supagate worker`'s HTTP side, with wiremock
//! playing PostgREST. The queue fake answers as `pgmq_public` does on real PostgreSQL (the row
//! shapes, `read_ct`, visibility timeouts; see tests/db/queues.rs) and the billing fake stores
//! the effects, so each test checks what ends up where, as well as what was sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use supagate::config::{QueueSettings, StripeProcessing};
use supagate::jobs::worker::Worker;
use supagate::jobs::{default_handlers, Handlers, JobError};
use supagate::supabase::Supabase;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::*;

const ENQUEUE: &str = "/rest/v1/rpc/enqueue_stripe_event";
const READ: &str = "/rest/v1/rpc/read";
const PAYMENTS: &str = "/rest/v1/payments";

#[derive(Clone, Debug)]
struct Stored {
    id: i64,
    read_ct: i32,
    visible_at: Instant,
    message: Value,
}

#[derive(Default)]
struct QueueState {
    next_id: i64,
    queues: HashMap<String, Vec<Stored>>,
    archived: HashMap<String, Vec<Stored>>,
    /// `webhook_events` as `enqueue_stripe_event` writes it.
    events: Vec<String>,
}

/// pgmq behind PostgREST: `pgmq_public.{send,read,archive}` (only with `Content-Profile:
/// pgmq_public`, else 404 as PostgREST answers for a function not in the schema) and
/// `public.{enqueue_stripe_event,queue_set_vt,queue_depth,queue_dead_letter}` (the pruning
/// functions answer that nothing was old enough).
#[derive(Clone, Default)]
struct FakeQueues {
    state: Arc<Mutex<QueueState>>,
}

impl FakeQueues {
    async fn mount(server: &MockServer) -> Self {
        let fake = Self::default();
        for function in [
            "send",
            "read",
            "archive",
            "enqueue_stripe_event",
            "queue_set_vt",
            "queue_depth",
            "queue_dead_letter",
            "prune_queue_history",
            "prune_idempotency_keys",
        ] {
            let fake = fake.clone();
            Mock::given(method("POST"))
                .and(path(format!("/rest/v1/rpc/{function}")))
                .respond_with(move |req: &Request| fake.answer(function, req))
                .mount(server)
                .await;
        }
        fake
    }

    fn push(s: &mut QueueState, queue: &str, message: Value, delay: u64) -> i64 {
        s.next_id += 1;
        let id = s.next_id;
        s.queues.entry(queue.to_owned()).or_default().push(Stored {
            id,
            read_ct: 0,
            visible_at: Instant::now() + Duration::from_secs(delay),
            message,
        });
        id
    }

    fn answer(&self, function: &str, req: &Request) -> ResponseTemplate {
        let profile = header_of(req, "content-profile");
        let in_pgmq_public = matches!(function, "send" | "read" | "archive");
        if in_pgmq_public != (profile == Some("pgmq_public")) {
            return ResponseTemplate::new(404).set_body_json(json!({
                "code": "PGRST202", "message": "Could not find the function", "details": null, "hint": null
            }));
        }
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        let mut s = self.state.lock().unwrap();
        let queue = body["queue_name"]
            .as_str()
            .or(body["p_queue_name"].as_str())
            .unwrap_or_default()
            .to_owned();
        let now = Instant::now();
        match function {
            "send" => {
                let delay = body["sleep_seconds"].as_u64().unwrap_or(0);
                let id = Self::push(&mut s, &queue, body["message"].clone(), delay);
                ResponseTemplate::new(200).set_body_json(json!([id]))
            }
            "read" => {
                let vt = body["sleep_seconds"].as_u64().unwrap();
                let n = body["n"].as_u64().unwrap() as usize;
                let rows: Vec<Value> = s
                    .queues
                    .entry(queue)
                    .or_default()
                    .iter_mut()
                    .filter(|m| m.visible_at <= now)
                    .take(n)
                    .map(|m| {
                        m.read_ct += 1;
                        m.visible_at = now + Duration::from_secs(vt);
                        // The columns of pgmq.message_record, as tests/db/queues.rs reads them.
                        json!({
                            "msg_id": m.id, "read_ct": m.read_ct,
                            "enqueued_at": "2026-11-30T04:00:00.000000+00:00",
                            "last_read_at": "2026-11-30T04:00:01.000000+00:00",
                            "vt": "2026-11-30T04:00:31.000000+00:00",
                            "message": m.message, "headers": null,
                        })
                    })
                    .collect();
                ResponseTemplate::new(200).set_body_json(rows)
            }
            "archive" => {
                let id = body["message_id"].as_i64().unwrap();
                let list = s.queues.entry(queue.clone()).or_default();
                let found = list.iter().position(|m| m.id == id).map(|i| list.remove(i));
                let hit = found.is_some();
                if let Some(m) = found {
                    s.archived.entry(queue).or_default().push(m);
                }
                ResponseTemplate::new(200).set_body_json(hit)
            }
            "queue_dead_letter" => {
                // Archive and send together, as the SQL function does in one transaction.
                let id = body["p_msg_id"].as_i64().unwrap();
                let list = s.queues.entry(queue.clone()).or_default();
                let Some(m) = list.iter().position(|m| m.id == id).map(|i| list.remove(i)) else {
                    return ResponseTemplate::new(200).set_body_json(false);
                };
                s.archived.entry(queue.clone()).or_default().push(m);
                Self::push(&mut s, &format!("{queue}_dlq"), body["p_letter"].clone(), 0);
                ResponseTemplate::new(200).set_body_json(true)
            }
            "prune_queue_history" | "prune_idempotency_keys" => {
                ResponseTemplate::new(200).set_body_json(0)
            }
            "queue_set_vt" => {
                let id = body["p_msg_id"].as_i64().unwrap();
                let delay = body["p_sleep_seconds"].as_u64().unwrap();
                let hit = s
                    .queues
                    .entry(queue)
                    .or_default()
                    .iter_mut()
                    .find(|m| m.id == id)
                    .map(|m| {
                        m.visible_at = now + Duration::from_secs(delay);
                    });
                ResponseTemplate::new(200).set_body_json(hit.is_some())
            }
            "queue_depth" => {
                let depth = s.queues.get(&queue).map_or(0, Vec::len);
                ResponseTemplate::new(200).set_body_json(depth)
            }
            "enqueue_stripe_event" => {
                let id = body["p_event_id"].as_str().unwrap().to_owned();
                if s.events.contains(&id) {
                    return ResponseTemplate::new(200).set_body_json(false);
                }
                s.events.push(id);
                Self::push(&mut s, "stripe_events", body["p_event"].clone(), 0);
                ResponseTemplate::new(200).set_body_json(true)
            }
            _ => ResponseTemplate::new(404),
        }
    }

    fn waiting(&self, queue: &str) -> Vec<Stored> {
        self.state
            .lock()
            .unwrap()
            .queues
            .get(queue)
            .cloned()
            .unwrap_or_default()
    }

    fn archived(&self, queue: &str) -> Vec<Stored> {
        self.state
            .lock()
            .unwrap()
            .archived
            .get(queue)
            .cloned()
            .unwrap_or_default()
    }
}

fn queue_settings(max_attempts: u32, backoff_base_secs: u32) -> QueueSettings {
    QueueSettings {
        visibility_timeout_secs: 30,
        max_attempts,
        backoff_base_secs,
        backoff_max_secs: 60,
    }
}

/// Runs a worker against `upstream` until `done` holds (or 10 s pass), then shuts it down.
async fn run_worker_until(
    upstream: &str,
    handlers: Option<Handlers>,
    queues: &[(&str, QueueSettings)],
    done: impl Fn() -> bool,
) {
    let mut settings = test_settings(upstream);
    settings.worker.poll_interval_ms = 20;
    for (name, q) in queues {
        settings.worker.queues.insert((*name).to_owned(), q.clone());
    }
    let supabase = Supabase::new(&settings).unwrap();
    let handlers =
        handlers.unwrap_or_else(|| default_handlers(&settings, supabase.clone()).unwrap());
    let worker = Worker::new(supabase, handlers, settings.worker.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    worker
        .run(async {
            while !done() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    assert!(done(), "the worker did not get there within 10 s");
}

async fn queue_mode_app() -> (TestApp, FakeQueues, FakeBilling) {
    let app = TestApp::spawn_with(|s| s.stripe.processing = StripeProcessing::Queue).await;
    let queues = FakeQueues::mount(&app.upstream).await;
    let billing = FakeBilling::mount(&app).await;
    (app, queues, billing)
}

fn payload(name: &str) -> String {
    stripe_event(name)["payload"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn queued_webhook_is_acknowledged_after_one_enqueue_and_applied_by_the_worker() {
    let (app, queues, billing) = queue_mode_app().await;
    let event = payload("payment_intent_succeeded");

    let (status, body) = json_of(app.deliver_signed(&event).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"received": true}));
    // Acknowledged on one durable write, the event exactly as Stripe sent it; no effect yet.
    let sent = app.upstream_requests().await;
    assert_eq!(
        sent.len(),
        1,
        "{:?}",
        sent.iter()
            .map(|r| r.url.path().to_owned())
            .collect::<Vec<_>>()
    );
    assert_eq!(sent[0].url.path(), ENQUEUE);
    assert_eq!(
        header_of(&sent[0], "authorization"),
        Some(&*format!("Bearer {SERVICE_KEY}"))
    );
    let args: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(args["p_event_id"], "evt_1Sb4gTSupaGateEv000005");
    assert_eq!(args["p_event_type"], "payment_intent.succeeded");
    assert_eq!(
        args["p_event"],
        serde_json::from_str::<Value>(&event).unwrap()
    );
    assert!(billing.state.lock().unwrap().payments.is_empty());

    let uri = app.upstream.uri();
    run_worker_until(&uri, None, &[], || {
        queues.archived("stripe_events").len() == 1
    })
    .await;
    let payments = billing.state.lock().unwrap().payments.clone();
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert!(queues.waiting("stripe_events").is_empty());
    // The worker read through Supabase's wrapper, in its schema, with the secret key.
    let reads = app.requests_to("POST", READ).await;
    assert!(!reads.is_empty());
    for r in &reads {
        assert_eq!(header_of(r, "content-profile"), Some("pgmq_public"));
        assert_eq!(header_of(r, "apikey"), Some(SERVICE_KEY));
    }
}

#[tokio::test]
async fn redelivered_event_is_a_duplicate_and_queued_once() {
    let (app, queues, _billing) = queue_mode_app().await;
    let event = payload("subscription_created");
    assert_eq!(app.deliver_signed(&event).await.status(), 200);
    let (status, body) = json_of(app.deliver_signed(&event).await).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"received": true, "duplicate": true}));
    assert_eq!(queues.waiting("stripe_events").len(), 1);
}

#[tokio::test]
async fn queue_outage_answers_503_so_stripe_retries() {
    let app = TestApp::spawn_with(|s| s.stripe.processing = StripeProcessing::Queue).await;
    Mock::given(method("POST"))
        .and(path(ENQUEUE))
        .respond_with(pg_error(503, "PGRST001"))
        .mount(&app.upstream)
        .await;
    let res = app.deliver_signed(&payload("subscription_created")).await;
    assert_eq!(res.status(), 503);
}

#[tokio::test]
async fn unreadable_event_is_refused_before_anything_is_queued() {
    let (app, queues, _billing) = queue_mode_app().await;
    let mut event: Value = serde_json::from_str(&payload("subscription_created")).unwrap();
    event["data"]["object"]
        .as_object_mut()
        .unwrap()
        .remove("status");
    let res = app.deliver_signed(&event.to_string()).await;
    assert_eq!(res.status(), 400);
    assert!(queues.waiting("stripe_events").is_empty());
    assert!(app.requests_to("POST", ENQUEUE).await.is_empty());
}

#[tokio::test]
async fn permanent_write_error_dead_letters_the_event_at_once() {
    let (app, queues, _billing) = queue_mode_app().await;
    // The customer is already linked to another user: 23505, which no retry can fix.
    Mock::given(method("POST"))
        .and(path("/rest/v1/rpc/link_stripe_customer"))
        .respond_with(pg_error(409, "23505"))
        .with_priority(1)
        .mount(&app.upstream)
        .await;
    assert_eq!(
        app.deliver_signed(&payload("checkout_session_completed"))
            .await
            .status(),
        200
    );

    let uri = app.upstream.uri();
    run_worker_until(&uri, None, &[], || {
        queues.waiting("stripe_events_dlq").len() == 1
    })
    .await;
    let letter = &queues.waiting("stripe_events_dlq")[0].message;
    assert_eq!(letter["queue"], "stripe_events");
    assert_eq!(letter["attempts"], 1, "{letter}");
    assert!(
        letter["error"].as_str().unwrap().contains("23505"),
        "{letter}"
    );
    assert_eq!(letter["message"]["id"], "evt_1Sb4gTSupaGateEv000000");
    assert_eq!(
        queues.archived("stripe_events").len(),
        1,
        "taken off the source queue"
    );
    assert!(queues.waiting("stripe_events").is_empty());
    // One call moves it (one transaction in the database), no separate send and archive.
    let moves = app
        .requests_to("POST", "/rest/v1/rpc/queue_dead_letter")
        .await;
    assert_eq!(moves.len(), 1);
    let sent: Value = serde_json::from_slice(&moves[0].body).unwrap();
    assert_eq!(sent["p_queue_name"], "stripe_events");
    assert!(app
        .requests_to("POST", "/rest/v1/rpc/send")
        .await
        .is_empty());
    assert!(app
        .requests_to("POST", "/rest/v1/rpc/archive")
        .await
        .is_empty());

    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(r#"supagate_jobs_total{queue="stripe_events",outcome="dead_lettered"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff_then_dead_lettered_after_max_attempts() {
    let (app, queues, billing) = queue_mode_app().await;
    billing.fail_next(PAYMENTS, 100);
    assert_eq!(
        app.deliver_signed(&payload("payment_intent_succeeded"))
            .await
            .status(),
        200
    );

    let uri = app.upstream.uri();
    let started = Instant::now();
    run_worker_until(
        &uri,
        None,
        &[("stripe_events", queue_settings(3, 1))],
        || queues.waiting("stripe_events_dlq").len() == 1,
    )
    .await;
    // Attempt 1 fails → visible again in 1 s; attempt 2 → in 2 s; attempt 3 → dead letter.
    let backoffs: Vec<u64> = app
        .requests_to("POST", "/rest/v1/rpc/queue_set_vt")
        .await
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["p_sleep_seconds"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(backoffs, [1, 2]);
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert_eq!(app.requests_to("POST", PAYMENTS).await.len(), 3);
    let letter = &queues.waiting("stripe_events_dlq")[0].message;
    assert_eq!(letter["attempts"], 3);
    assert!(
        letter["error"].as_str().unwrap().contains("transient"),
        "{letter}"
    );
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_job_in_flight_and_reads_nothing_more() {
    let upstream = MockServer::start().await;
    let queues = FakeQueues::mount(&upstream).await;
    {
        let mut s = queues.state.lock().unwrap();
        FakeQueues::push(&mut s, "slow", json!({"n": 1}), 0);
    }
    let started = Arc::new(Mutex::new(None::<Instant>));
    let finished = Arc::new(Mutex::new(false));
    let handlers = Handlers::new().on("slow", {
        let (started, finished) = (Arc::clone(&started), Arc::clone(&finished));
        move |_: Value| {
            let (started, finished) = (Arc::clone(&started), Arc::clone(&finished));
            async move {
                *started.lock().unwrap() = Some(Instant::now());
                tokio::time::sleep(Duration::from_millis(800)).await;
                *finished.lock().unwrap() = true;
                Ok::<_, JobError>(())
            }
        }
    });
    let mut settings = test_settings(&upstream.uri());
    settings.worker.poll_interval_ms = 20;
    let worker = Worker::new(
        Supabase::new(&settings).unwrap(),
        handlers,
        settings.worker.clone(),
    );
    // Shut down as soon as the job has started.
    let signal = {
        let started = Arc::clone(&started);
        async move {
            while started.lock().unwrap().is_none() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    worker.run(signal).await;
    let reads_at_stop = upstream
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == READ)
        .count();

    assert!(
        *finished.lock().unwrap(),
        "the job in flight ran to its end"
    );
    assert_eq!(
        queues.archived("slow").len(),
        1,
        "and its message was archived"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reads_later = upstream
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == READ)
        .count();
    assert_eq!(
        reads_later, reads_at_stop,
        "no read after the worker returned"
    );
}

#[tokio::test]
async fn concurrency_limit_caps_jobs_running_at_once() {
    let upstream = MockServer::start().await;
    let queues = FakeQueues::mount(&upstream).await;
    {
        let mut s = queues.state.lock().unwrap();
        for n in 0..12 {
            FakeQueues::push(&mut s, "work", json!({ "n": n }), 0);
        }
    }
    let running = Arc::new(Mutex::new((0usize, 0usize))); // (now, peak)
    let handlers = Handlers::new().on("work", {
        let running = Arc::clone(&running);
        move |_: Value| {
            let running = Arc::clone(&running);
            async move {
                {
                    let mut r = running.lock().unwrap();
                    r.0 += 1;
                    r.1 = r.1.max(r.0);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                running.lock().unwrap().0 -= 1;
                Ok::<_, JobError>(())
            }
        }
    });
    let mut settings = test_settings(&upstream.uri());
    settings.worker.poll_interval_ms = 10;
    settings.worker.concurrency = 3;
    let worker = Worker::new(
        Supabase::new(&settings).unwrap(),
        handlers,
        settings.worker.clone(),
    );
    let q = queues.clone();
    worker
        .run(async move {
            while q.archived("work").len() < 12 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    assert_eq!(running.lock().unwrap().1, 3, "peak concurrency");
}

// ---- user.registered → the external API ----

async fn user_registered_run(
    answer: ResponseTemplate,
    settings_attempts: u32,
) -> (MockServer, FakeQueues, MockServer) {
    let upstream = MockServer::start().await;
    let queues = FakeQueues::mount(&upstream).await;
    let mailer = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/contacts"))
        .respond_with(answer)
        .mount(&mailer)
        .await;
    {
        let mut s = queues.state.lock().unwrap();
        FakeQueues::push(
            &mut s,
            "user_registered",
            json!({"user_id": USER_A, "email": "new@example.com"}),
            0,
        );
    }
    let mut settings = test_settings(&upstream.uri());
    settings.worker.poll_interval_ms = 20;
    settings.worker.queues.insert(
        "user_registered".into(),
        queue_settings(settings_attempts, 0),
    );
    settings.jobs.user_registered.url = format!("{}/v1/contacts", mailer.uri());
    settings.jobs.user_registered.api_key = supagate::config::Secret::new("mail-key");
    settings.jobs.user_registered.timeout_ms = 200;
    let supabase = Supabase::new(&settings).unwrap();
    let handlers = default_handlers(&settings, supabase.clone()).unwrap();
    let worker = Worker::new(supabase, handlers, settings.worker.clone());
    let q = queues.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    worker
        .run(async move {
            while q.waiting("user_registered").len() == 1 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    (upstream, queues, mailer)
}

#[tokio::test]
async fn user_registered_job_posts_the_user_to_the_external_api_with_its_key() {
    let (_upstream, queues, mailer) = user_registered_run(ResponseTemplate::new(202), 3).await;
    let calls = mailer.received_requests().await.unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        header_of(&calls[0], "authorization"),
        Some("Bearer mail-key")
    );
    let body: Value = serde_json::from_slice(&calls[0].body).unwrap();
    assert_eq!(
        body,
        json!({"event": "user.registered", "user_id": USER_A, "email": "new@example.com"})
    );
    assert_eq!(queues.archived("user_registered").len(), 1);
}

#[tokio::test]
async fn user_registered_job_retries_a_5xx_and_dead_letters_a_4xx_at_once() {
    let (_u, queues, mailer) = user_registered_run(ResponseTemplate::new(503), 3).await;
    assert_eq!(
        mailer.received_requests().await.unwrap().len(),
        3,
        "three attempts"
    );
    assert_eq!(queues.waiting("user_registered_dlq").len(), 1);

    let (_u, queues, mailer) = user_registered_run(ResponseTemplate::new(422), 3).await;
    assert_eq!(
        mailer.received_requests().await.unwrap().len(),
        1,
        "a refusal is not retried"
    );
    let letter = &queues.waiting("user_registered_dlq")[0].message;
    assert!(
        letter["error"].as_str().unwrap().contains("422"),
        "{letter}"
    );
}

#[tokio::test]
async fn user_registered_call_slower_than_its_timeout_is_retried() {
    // timeout_ms is 200: each attempt is cut off, counted transient, and tried again.
    let slow = ResponseTemplate::new(202).set_delay(Duration::from_millis(600));
    let (_u, queues, mailer) = user_registered_run(slow, 2).await;
    assert_eq!(mailer.received_requests().await.unwrap().len(), 2);
    let letter = &queues.waiting("user_registered_dlq")[0].message;
    assert!(
        letter["error"].as_str().unwrap().starts_with("transient"),
        "{letter}"
    );
    assert_eq!(queues.archived("user_registered").len(), 1);
}

#[tokio::test]
async fn poison_message_goes_to_the_dead_letter_queue_without_a_retry() {
    let upstream = MockServer::start().await;
    let queues = FakeQueues::mount(&upstream).await;
    {
        let mut s = queues.state.lock().unwrap();
        FakeQueues::push(&mut s, "stripe_events", json!({"not": "an event"}), 0);
    }
    let uri = upstream.uri();
    run_worker_until(&uri, None, &[], || {
        queues.waiting("stripe_events_dlq").len() == 1
    })
    .await;
    let letter = &queues.waiting("stripe_events_dlq")[0].message;
    assert_eq!(letter["attempts"], 1);
    assert_eq!(letter["message"], json!({"not": "an event"}));
    assert!(
        letter["error"].as_str().unwrap().starts_with("permanent"),
        "{letter}"
    );
}

// ---- the gateway queues user.registered ----

async fn register_with_signup_answer(user: Value) -> (TestApp, FakeQueues) {
    let app =
        TestApp::spawn_with(|s| s.jobs.user_registered.url = "http://127.0.0.1:9/hook".into())
            .await;
    let queues = FakeQueues::mount(&app.upstream).await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/signup"))
        .respond_with(ResponseTemplate::new(200).set_body_json(user))
        .mount(&app.upstream)
        .await;
    let res = app
        .post("/api/auth/register")
        .json(&json!({"email": "ann@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    (app, queues)
}

#[tokio::test]
async fn registration_queues_user_registered_for_a_new_user() {
    let (app, queues) = register_with_signup_answer(json!({
        "id": USER_A, "email": "ann@example.com",
        "identities": [{"provider": "email", "identity_id": "x"}],
    }))
    .await;
    let waiting = queues.waiting("user_registered");
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        waiting[0].message,
        json!({"user_id": USER_A, "email": "ann@example.com"})
    );
    let sends = app.requests_to("POST", "/rest/v1/rpc/send").await;
    assert_eq!(header_of(&sends[0], "content-profile"), Some("pgmq_public"));
    assert_eq!(header_of(&sends[0], "apikey"), Some(SERVICE_KEY));
}

#[tokio::test]
async fn registration_of_a_known_address_queues_nothing() {
    // Auth's answer for an address it already has (enumeration protection): no identities.
    let (_app, queues) = register_with_signup_answer(json!({
        "id": USER_B, "email": "ann@example.com", "identities": [],
    }))
    .await;
    assert!(queues.waiting("user_registered").is_empty());
}

#[tokio::test]
async fn the_worker_prunes_queue_history_and_expired_idempotency_keys_at_start_up() {
    let (app, _queues, _billing) = queue_mode_app().await;
    let mut settings = test_settings(&app.upstream.uri());
    settings.worker.history_retention_secs = 7 * 24 * 3600;
    settings.idempotency.key_ttl_secs = 3600;
    let supabase = Supabase::new(&settings).unwrap();
    let handlers = default_handlers(&settings, supabase.clone()).unwrap();
    let worker = Worker::new(supabase, handlers, settings.worker.clone())
        .with_idempotency(&settings.idempotency);
    let deadline = Instant::now() + Duration::from_secs(10);
    worker
        .run(async {
            while app
                .requests_to("POST", "/rest/v1/rpc/prune_idempotency_keys")
                .await
                .is_empty()
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;

    let history = app
        .requests_to("POST", "/rest/v1/rpc/prune_queue_history")
        .await;
    let pruned: Vec<Value> = history.iter().map(body_json).collect();
    assert_eq!(
        pruned,
        [json!({"p_queue_name": "stripe_events", "p_older_than_secs": 604800})],
        "each consumed queue (and with it its _dlq), with the configured retention"
    );
    assert_eq!(header_of(&history[0], "apikey"), Some(SERVICE_KEY));
    let keys = app
        .requests_to("POST", "/rest/v1/rpc/prune_idempotency_keys")
        .await;
    assert_eq!(keys.len(), 1);
    assert_eq!(body_json(&keys[0]), json!({"p_older_than_secs": 3600}));
}
