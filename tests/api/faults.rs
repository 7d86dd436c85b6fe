//! Upstream faults, black-box: for PostgREST and Auth each — refused, reset before and in
//! the middle of an answer, a hang, a trickle, a 5xx, a non-JSON body, an oversized body —
//! the client gets the right 502/503/504 within the configured timeout, and everything
//! works again once the upstream does. Produced by the raw-TCP [`FaultServer`].

use std::time::{Duration, Instant};

use supagate::config::Settings;

use crate::fault::{Fault, FaultServer};
use crate::support::*;

/// Small timeouts so a fault resolves fast: connect 300 ms, whole request 600 ms.
const TIMEOUT_MS: u64 = 600;
/// Body cap for the tests (the fault server's bodies are far larger or far smaller).
const CAP: usize = 64 * 1024;

fn tight(s: &mut Settings, upstream: &str) {
    s.supabase.url = upstream.to_owned();
    s.upstream.connect_timeout_ms = 300;
    s.upstream.request_timeout_ms = TIMEOUT_MS;
    s.upstream.max_body_bytes = CAP;
    s.rate_limit.enabled = false;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    /// `GET /api/items`: PostgREST list, read whole (its ETag hashes it).
    RestList,
    /// `GET /api/items/{id}`: PostgREST single object, buffered.
    RestSingle,
    /// `GET /api/auth/user`: Auth, buffered, a read.
    AuthUser,
    /// `POST /api/auth/login`: Auth, buffered, a write (never retried).
    AuthLogin,
}

const CALLS: [Call; 4] = [
    Call::RestList,
    Call::RestSingle,
    Call::AuthUser,
    Call::AuthLogin,
];

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// A complete response with this status (and, for 200, a body that parses as JSON).
    Status(u16),
    /// A 200 whose body ended in a transport error: the client can tell it is incomplete.
    Truncated,
}

async fn call(app: &TestApp, which: Call) -> (Seen, Duration) {
    let started = Instant::now();
    let req = match which {
        Call::RestList => app.get("/api/items"),
        Call::RestSingle => app.get(&format!("/api/items/{ITEM_ID}")),
        Call::AuthUser => app.get("/api/auth/user").bearer_auth(user_token(USER_A)),
        Call::AuthLogin => app
            .post("/api/auth/login")
            .json(&serde_json::json!({"email": "ann@example.com", "password": "pw-123456"})),
    };
    let res = req
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("supagate answers");
    let status = res.status().as_u16();
    let seen = match res.bytes().await {
        Ok(body) => {
            if status == 200 {
                serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_else(|e| {
                    panic!("{which:?}: a 200 with a body that is not JSON ({e}): {body:?}")
                });
            } else {
                let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON error");
                assert!(v["code"].is_string(), "{v}");
                let text = String::from_utf8_lossy(&body);
                assert!(!text.contains("secret"), "upstream text leaked: {text}");
            }
            Seen::Status(status)
        }
        Err(_) if status == 200 => Seen::Truncated,
        Err(e) => panic!("{which:?}: error status {status} with a broken body: {e}"),
    };
    (seen, started.elapsed())
}

/// Everything answers normally: the upstream is back.
async fn assert_recovered(app: &TestApp, upstream: &FaultServer) {
    upstream.set(Fault::Ok);
    for which in CALLS {
        let (seen, _) = call(app, which).await;
        assert_eq!(seen, Seen::Status(200), "{which:?} after recovery");
    }
    let (status, _) = json_of(app.get("/health").send().await.unwrap()).await;
    assert_eq!(status, 200);
}

/// Runs every call against `fault` and checks status, timing and upstream attempts.
async fn check_fault(fault: Fault, expect: impl Fn(Call) -> Seen, min_elapsed: Duration) {
    let upstream = FaultServer::start(Fault::Ok).await;
    let uri = upstream.uri();
    let app = TestApp::spawn_with(|s| tight(s, &uri)).await;
    // Warm: the signing-key load and a pooled connection, as in production.
    assert_recovered(&app, &upstream).await;
    upstream.set(fault);
    for which in CALLS {
        let before = upstream.requests();
        let (seen, elapsed) = call(&app, which).await;
        assert_eq!(seen, expect(which), "{fault:?} on {which:?}");
        assert!(
            elapsed < Duration::from_millis(TIMEOUT_MS) * 2 + Duration::from_millis(900),
            "{fault:?} on {which:?} took {elapsed:?}"
        );
        assert!(
            elapsed >= min_elapsed,
            "{fault:?} on {which:?} too fast: {elapsed:?}"
        );
        let attempts = upstream.requests() - before;
        let retried = fault == Fault::ResetBeforeResponse && which != Call::AuthLogin;
        assert_eq!(
            attempts,
            if retried { 2 } else { 1 },
            "{fault:?} on {which:?}: upstream attempts"
        );
    }
    assert_recovered(&app, &upstream).await;
}

#[tokio::test]
async fn connection_refused_is_503_fast_and_recovers_when_the_upstream_listens_again() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let uri = format!("http://127.0.0.1:{port}");
    let app = TestApp::spawn_with(|s| tight(s, &uri)).await;
    for which in CALLS {
        let (seen, elapsed) = call(&app, which).await;
        assert_eq!(seen, Seen::Status(503), "{which:?}");
        assert!(
            elapsed < Duration::from_millis(300),
            "{which:?}: {elapsed:?}"
        );
    }
    let upstream = FaultServer::start_on(port, Fault::Ok).await;
    assert_recovered(&app, &upstream).await;
}

#[tokio::test]
async fn a_reset_before_any_answer_is_503_and_reads_are_retried_exactly_once() {
    check_fault(
        Fault::ResetBeforeResponse,
        |_| Seen::Status(503),
        Duration::ZERO,
    )
    .await;
}

#[tokio::test]
async fn a_reset_mid_body_is_502_never_a_short_valid_body() {
    // Lists are read whole before answering (their ETag is a hash of the body), so a list
    // fails as cleanly as a single row: a 502, not a cut stream.
    check_fault(Fault::ResetMidBody, |_| Seen::Status(502), Duration::ZERO).await;
}

#[tokio::test]
async fn a_hang_is_504_after_the_request_timeout_and_is_not_retried() {
    check_fault(
        Fault::Hang,
        |_| Seen::Status(504),
        Duration::from_millis(TIMEOUT_MS - 50),
    )
    .await;
}

#[tokio::test]
async fn a_trickle_is_cut_at_the_request_timeout() {
    check_fault(Fault::Trickle, |_| Seen::Status(504), Duration::ZERO).await;
}

#[tokio::test]
async fn an_upstream_5xx_is_502_without_its_text() {
    check_fault(Fault::Status5xx, |_| Seen::Status(502), Duration::ZERO).await;
}

#[tokio::test]
async fn a_non_json_answer_is_502() {
    check_fault(Fault::Html, |_| Seen::Status(502), Duration::ZERO).await;
}

#[tokio::test]
async fn a_declared_oversized_body_is_502_before_anything_is_streamed() {
    check_fault(Fault::HugeDeclared, |_| Seen::Status(502), Duration::ZERO).await;
}

#[tokio::test]
async fn an_undeclared_oversized_body_is_502_at_the_cap() {
    check_fault(Fault::HugeChunked, |_| Seen::Status(502), Duration::ZERO).await;
}

#[tokio::test]
async fn an_answer_that_arrives_in_pieces_is_read_whole() {
    check_fault(
        Fault::InPieces,
        |_| Seen::Status(200),
        Duration::from_millis(40),
    )
    .await;
}

#[tokio::test]
async fn one_reset_then_success_is_invisible_to_a_reader() {
    let upstream = FaultServer::start(Fault::Ok).await;
    let uri = upstream.uri();
    let app = TestApp::spawn_with(|s| tight(s, &uri)).await;
    for which in [Call::RestList, Call::RestSingle, Call::AuthUser] {
        let before = upstream.requests();
        upstream.script(&[Fault::ResetBeforeResponse]);
        let (seen, _) = call(&app, which).await;
        assert_eq!(seen, Seen::Status(200), "{which:?}");
        assert_eq!(upstream.requests() - before, 2, "{which:?}");
    }
    // Two failures in a row: one retry only.
    let before = upstream.requests();
    upstream.script(&[Fault::ResetBeforeResponse, Fault::ResetBeforeResponse]);
    let (seen, _) = call(&app, Call::RestSingle).await;
    assert_eq!(seen, Seen::Status(503));
    assert_eq!(upstream.requests() - before, 2);
}

#[tokio::test]
async fn writes_are_never_retried() {
    let upstream = FaultServer::start(Fault::Ok).await;
    let uri = upstream.uri();
    let app = TestApp::spawn_with(|s| tight(s, &uri)).await;
    let token = user_token(USER_A);
    let item = format!("/api/items/{ITEM_ID}");
    // (request, faults for the upstream calls it makes, the write's method)
    let writes = [
        (
            app.post("/api/auth/login")
                .json(&serde_json::json!({"email": "ann@example.com", "password": "pw-123456"})),
            vec![Fault::ResetBeforeResponse],
            "POST",
        ),
        (
            app.post("/api/auth/logout").bearer_auth(&token),
            vec![Fault::ResetBeforeResponse],
            "POST",
        ),
        // Item writes first read the owner (a GET, answered), then write (reset).
        (
            app.delete(&item).bearer_auth(&token),
            vec![Fault::Ok, Fault::ResetBeforeResponse],
            "DELETE",
        ),
        (
            app.patch(&item)
                .bearer_auth(&token)
                .json(&serde_json::json!({"name": "Cup"})),
            vec![Fault::Ok, Fault::ResetBeforeResponse],
            "PATCH",
        ),
    ];
    for (req, faults, write) in writes {
        upstream.script(&faults);
        let before = upstream.log().len();
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), 503, "{write}");
        let calls = upstream.log()[before..].to_vec();
        assert_eq!(calls.len(), faults.len(), "{write}: {calls:?}");
        assert_eq!(
            calls.iter().filter(|c| c.starts_with(write)).count(),
            1,
            "{write} attempted once: {calls:?}"
        );
    }
}
