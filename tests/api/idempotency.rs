//! `Idempotency-Key` over HTTP: what supagate sends for a keyed write (one RPC carrying the key,
//! the request's fingerprint, the key lifetime and the row) and how it answers what comes back.
//! PostgREST is played by a stand-in with the semantics of the SQL functions
//! (`supabase/migrations/20250601000701_idempotency.sql`, proven on real PostgreSQL in
//! tests/db/idempotency.rs): keys per bearer, a stored answer replayed, a different fingerprint
//! refused 422, a key held by an open transaction refused 409, a key past its lifetime new.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, ResponseTemplate};

use crate::support::*;

const CREATE_RPC: &str = "/rest/v1/rpc/create_item";
const UPDATE_RPC: &str = "/rest/v1/rpc/update_item";

struct StoredKey {
    fingerprint: String,
    status: u16,
    body: String,
    /// The first request's transaction is still open.
    held: bool,
    age_secs: u64,
}

#[derive(Default)]
struct KeyState {
    /// By (bearer, key): what `auth.uid()` and the key select in the database.
    keys: HashMap<(String, String), StoredKey>,
    /// Rows written (the writes that ran, not the replays).
    writes: usize,
    hold_next: bool,
    delay_next: Option<Duration>,
}

#[derive(Clone, Default)]
struct FakeKeys {
    state: Arc<Mutex<KeyState>>,
}

fn refusal(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "code": code, "message": format!("the database says {code}"), "details": null, "hint": null
    }))
}

impl FakeKeys {
    async fn mount(app: &TestApp) -> Self {
        let fake = Self::default();
        for rpc in [CREATE_RPC, UPDATE_RPC] {
            let fake = fake.clone();
            Mock::given(method("POST"))
                .and(path(rpc))
                .respond_with(move |req: &Request| fake.answer(req))
                .mount(&app.upstream)
                .await;
        }
        fake
    }

    fn answer(&self, req: &Request) -> ResponseTemplate {
        let args: Value = serde_json::from_slice(&req.body).unwrap();
        let scope = (
            header_of(req, "authorization")
                .unwrap_or_default()
                .to_owned(),
            args["idempotency_key"].as_str().unwrap().to_owned(),
        );
        let fingerprint = args["fingerprint"].as_str().unwrap().to_owned();
        let ttl = args["key_ttl_secs"].as_u64().unwrap();
        let mut s = self.state.lock().unwrap();
        if s.keys.get(&scope).is_some_and(|k| k.age_secs > ttl) {
            s.keys.remove(&scope);
        }
        if let Some(prior) = s.keys.get(&scope) {
            if prior.held {
                return refusal(409, "idempotency_key_in_use");
            }
            if prior.fingerprint != fingerprint {
                return refusal(422, "idempotency_key_reused");
            }
            let envelope = format!(
                r#"{{"replayed" : true, "status" : {}, "body" : {}}}"#,
                prior.status, prior.body
            );
            return ResponseTemplate::new(200).set_body_raw(envelope, "application/json");
        }
        s.writes += 1;
        let (status, body) = match args.get("item") {
            Some(item) => {
                let id = format!("00000000-0000-4000-8000-{:012}", s.writes);
                let mut row = item_row(&id, item["user_id"].as_str().unwrap());
                row["name"] = item["name"].clone();
                (201, row.to_string())
            }
            None => {
                let id = args["item_id"].as_str().unwrap();
                let mut row = item_row(id, USER_A);
                for (k, v) in args["changes"].as_object().unwrap() {
                    row[k] = v.clone();
                }
                (200, row.to_string())
            }
        };
        let envelope = format!(r#"{{"replayed" : false, "status" : {status}, "body" : {body}}}"#);
        let held = std::mem::take(&mut s.hold_next);
        s.keys.insert(
            scope,
            StoredKey {
                fingerprint,
                status,
                body,
                held,
                age_secs: 0,
            },
        );
        let mut answer = ResponseTemplate::new(200).set_body_raw(envelope, "application/json");
        if let Some(delay) = s.delay_next.take() {
            answer = answer.set_delay(delay);
        }
        answer
    }

    fn writes(&self) -> usize {
        self.state.lock().unwrap().writes
    }

    /// The next new key's transaction stays open until [`FakeKeys::commit_all`].
    fn hold_next(&self) {
        self.state.lock().unwrap().hold_next = true;
    }

    fn commit_all(&self) {
        for key in self.state.lock().unwrap().keys.values_mut() {
            key.held = false;
        }
    }

    /// The next new key's answer takes this long to come back.
    fn delay_next(&self, delay: Duration) {
        self.state.lock().unwrap().delay_next = Some(delay);
    }

    fn age_all(&self, secs: u64) {
        for key in self.state.lock().unwrap().keys.values_mut() {
            key.age_secs += secs;
        }
    }
}

fn mug() -> Value {
    json!({"name": "Mug", "price": 12.5, "category_id": CATEGORY_ID})
}

async fn create(app: &TestApp, token: &str, key: &str, item: &Value) -> reqwest::Response {
    app.post("/api/items")
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(item)
        .send()
        .await
        .unwrap()
}

/// Status, `Location`, `Idempotent-Replayed` and the body's bytes.
async fn parts(res: reqwest::Response) -> (u16, Option<String>, Option<String>, Vec<u8>) {
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (location, replayed) = (header("location"), header("idempotent-replayed"));
    let status = res.status().as_u16();
    (
        status,
        location,
        replayed,
        res.bytes().await.unwrap().to_vec(),
    )
}

#[tokio::test]
async fn a_keyed_create_is_one_rpc_carrying_key_fingerprint_lifetime_and_row() {
    let app = TestApp::spawn_with(|s| s.idempotency.key_ttl_secs = 3600).await;
    let fake = FakeKeys::mount(&app).await;
    let token = user_token(USER_A);
    let res = create(&app, &token, "\"order-7f3a\"", &mug()).await;
    let (status, location, replayed, body) = parts(res).await;
    assert_eq!(status, 201);
    assert_eq!(replayed, None, "a first answer is not a replay");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        location,
        Some(format!("/api/items/{}", body["id"].as_str().unwrap()))
    );
    assert_eq!(fake.writes(), 1);

    let requests = app.upstream_requests().await;
    assert_eq!(requests.len(), 1, "one upstream call, as without a key");
    let rpc = &requests[0];
    assert_eq!(rpc.url.path(), CREATE_RPC);
    assert_eq!(rpc.url.query(), None);
    assert_sent_as_user(rpc, &token);
    let args = body_json(rpc);
    assert_eq!(
        args["idempotency_key"], "order-7f3a",
        "the quotes are the field's"
    );
    assert_eq!(args["key_ttl_secs"], 3600);
    assert_eq!(args["fingerprint"].as_str().unwrap().len(), 32);
    assert_eq!(
        args["item"],
        json!({"name": "Mug", "price": 12.5, "category_id": CATEGORY_ID,
               "description": null, "user_id": USER_A})
    );
    assert_eq!(
        args.as_object().unwrap().len(),
        4,
        "nothing else reaches the function: {args}"
    );
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_writes_once_and_replays_the_first_answer_byte_for_byte() {
    let app = TestApp::spawn().await;
    let fake = FakeKeys::mount(&app).await;
    let token = user_token(USER_A);

    // The answer is lost: the client gives up before it arrives; the write committed.
    fake.delay_next(Duration::from_secs(2));
    let lost = app
        .post("/api/items")
        .bearer_auth(&token)
        .header("idempotency-key", "k-lost")
        .timeout(Duration::from_millis(200))
        .json(&mug())
        .send()
        .await;
    assert!(lost.is_err(), "the first answer never reached the client");

    let retry = parts(create(&app, &token, "k-lost", &mug()).await).await;
    let again = parts(create(&app, &token, "k-lost", &mug()).await).await;
    assert_eq!(fake.writes(), 1, "one row for three requests");
    assert_eq!(retry.0, 201);
    assert_eq!(retry.2.as_deref(), Some("true"));
    assert!(retry.1.is_some());
    assert_eq!(
        retry, again,
        "every replay is the same answer, byte for byte"
    );
}

#[tokio::test]
async fn a_replay_repeats_the_first_answer_byte_for_byte_marked_as_a_replay() {
    let app = TestApp::spawn().await;
    let fake = FakeKeys::mount(&app).await;
    let token = user_token(USER_A);
    let first = parts(create(&app, &token, "k-1", &mug()).await).await;
    // The same request formatted differently is the same request.
    let same = json!({"category_id": CATEGORY_ID, "price": 12.50, "name": " Mug "});
    let replay = parts(create(&app, &token, "k-1", &same).await).await;
    assert_eq!(fake.writes(), 1);
    assert_eq!(first.2, None);
    assert_eq!(replay.2.as_deref(), Some("true"));
    assert_eq!(
        (replay.0, &replay.1, &replay.3),
        (first.0, &first.1, &first.3)
    );
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_422_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let fake = FakeKeys::mount(&app).await;
    let token = user_token(USER_A);
    assert_eq!(create(&app, &token, "k-1", &mug()).await.status(), 201);
    let other = json!({"name": "Cup", "price": 12.5, "category_id": CATEGORY_ID});
    let (status, body) = json_of(create(&app, &token, "k-1", &other).await).await;
    assert_eq!(status, 422);
    assert_eq!(error_code(&body), "idempotency_key_reused");
    assert_eq!(fake.writes(), 1);
    let sent: Vec<String> = app
        .upstream_requests()
        .await
        .iter()
        .map(|r| body_json(r)["fingerprint"].as_str().unwrap().to_owned())
        .collect();
    assert_ne!(sent[0], sent[1], "another body, another fingerprint");
}

/// One write, one 409: the second request arrives while the first's transaction is open.
#[tokio::test]
async fn two_concurrent_requests_with_one_key_make_one_write_and_one_409() {
    let app = Arc::new(TestApp::spawn().await);
    let fake = FakeKeys::mount(&app).await;
    let token = user_token(USER_A);
    fake.hold_next();
    fake.delay_next(Duration::from_millis(300));
    let first = tokio::spawn({
        let (app, token) = (Arc::clone(&app), token.clone());
        async move { create(&app, &token, "k-1", &mug()).await.status() }
    });
    while fake.writes() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, body) = json_of(create(&app, &token, "k-1", &mug()).await).await;
    assert_eq!(status, 409);
    assert_eq!(error_code(&body), "idempotency_key_in_use");
    assert_eq!(first.await.unwrap(), 201);
    assert_eq!(fake.writes(), 1);

    // Once the first committed, the same request gets its answer.
    fake.commit_all();
    let res = create(&app, &token, "k-1", &mug()).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["idempotent-replayed"], "true");
    assert_eq!(fake.writes(), 1);
}

#[tokio::test]
async fn one_users_key_is_not_another_users() {
    let app = TestApp::spawn().await;
    let fake = FakeKeys::mount(&app).await;
    let (ann, bob) = (user_token(USER_A), user_token(USER_B));
    assert_eq!(create(&app, &ann, "shared", &mug()).await.status(), 201);
    let res = create(&app, &bob, "shared", &mug()).await;
    assert_eq!(res.status(), 201);
    assert!(res.headers().get("idempotent-replayed").is_none());
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["user_id"], USER_B,
        "Bob got his own write, not Ann's answer"
    );
    assert_eq!(fake.writes(), 2);
    let requests = app.upstream_requests().await;
    assert_sent_as_user(&requests[1], &bob);
    assert_ne!(
        body_json(&requests[0])["fingerprint"],
        body_json(&requests[1])["fingerprint"],
        "the caller is part of the request"
    );
}

#[tokio::test]
async fn a_key_past_its_lifetime_is_new_again() {
    let app = TestApp::spawn_with(|s| s.idempotency.key_ttl_secs = 60).await;
    let fake = FakeKeys::mount(&app).await;
    let token = user_token(USER_A);
    assert_eq!(create(&app, &token, "k-1", &mug()).await.status(), 201);
    fake.age_all(59);
    let replay = create(&app, &token, "k-1", &mug()).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    fake.age_all(2);
    let fresh = create(&app, &token, "k-1", &mug()).await;
    assert_eq!(fresh.status(), 201);
    assert!(fresh.headers().get("idempotent-replayed").is_none());
    assert_eq!(fake.writes(), 2);
}

#[tokio::test]
async fn a_malformed_key_is_400_and_nothing_is_sent() {
    let app = TestApp::spawn().await;
    let token = user_token(USER_A);
    let long = "k".repeat(256);
    for bad in [
        "",
        "a\"b",
        "back\\slash",
        "\"unclosed",
        "\" padded\"",
        long.as_str(),
    ] {
        let (status, body) = json_of(create(&app, &token, bad, &mug()).await).await;
        assert_eq!(status, 400, "{bad:?}");
        assert_eq!(error_code(&body), "invalid_idempotency_key", "{bad:?}");
    }
    let twice = app
        .post("/api/items")
        .bearer_auth(&token)
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .json(&mug())
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 400);
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn a_key_on_a_read_is_ignored() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "GET", "items", pg_list(json!([]), "*/0")).await;
    let res = app
        .get("/api/items")
        .header("idempotency-key", "not\\even\"valid")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let requests = app.upstream_requests().await;
    assert_eq!(requests[0].url.path(), "/rest/v1/items");
}

#[tokio::test]
async fn a_write_without_a_key_is_the_plain_table_write() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "POST",
        "items",
        ResponseTemplate::new(201).set_body_json(item_row(ITEM_ID, USER_A)),
    )
    .await;
    let res = app
        .post("/api/items")
        .bearer_auth(user_token(USER_A))
        .json(&mug())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let requests = app.upstream_requests().await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].url.path(), "/rest/v1/items");
}

#[tokio::test]
async fn a_keyed_patch_checks_the_owner_then_updates_through_the_rpc_and_replays() {
    let app = TestApp::spawn().await;
    let fake = FakeKeys::mount(&app).await;
    mock_rest(
        &app,
        "GET",
        "items",
        ResponseTemplate::new(200).set_body_json(json!({"user_id": USER_A})),
    )
    .await;
    let token = user_token(USER_A);
    let patch = || {
        app.patch(&format!("/api/items/{ITEM_ID}"))
            .bearer_auth(&token)
            .header("idempotency-key", "p-1")
            .json(&json!({"price": 9.5}))
            .send()
    };
    let first = parts(patch().await.unwrap()).await;
    let again = parts(patch().await.unwrap()).await;
    assert_eq!(first.0, 200);
    assert_eq!(first.1, None, "no Location on an update");
    assert_eq!(again.2.as_deref(), Some("true"));
    assert_eq!(again.3, first.3);
    assert_eq!(fake.writes(), 1);

    let requests = app.upstream_requests().await;
    let paths: Vec<&str> = requests.iter().map(|r| r.url.path()).collect();
    assert_eq!(
        paths,
        ["/rest/v1/items", UPDATE_RPC, "/rest/v1/items", UPDATE_RPC]
    );
    let args = body_json(&requests[1]);
    assert_eq!(args["item_id"], ITEM_ID);
    assert_eq!(args["changes"], json!({"price": 9.5}));
}

#[tokio::test]
async fn a_keyed_patch_by_someone_else_is_403_before_any_write() {
    let app = TestApp::spawn().await;
    let fake = FakeKeys::mount(&app).await;
    mock_rest(
        &app,
        "GET",
        "items",
        ResponseTemplate::new(200).set_body_json(json!({"user_id": USER_B})),
    )
    .await;
    let res = app
        .patch(&format!("/api/items/{ITEM_ID}"))
        .bearer_auth(user_token(USER_A))
        .header("idempotency-key", "p-1")
        .json(&json!({"price": 9.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(fake.writes(), 0);
    assert!(app.requests_to("POST", UPDATE_RPC).await.is_empty());
}

#[tokio::test]
async fn a_keyed_category_create_goes_through_its_rpc_as_the_admin() {
    let app = TestApp::spawn().await;
    Mock::given(method("POST"))
        .and(path("/rest/v1/rpc/create_category"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!(
                r#"{{"replayed" : true, "status" : 201, "body" : {{"id":"{CATEGORY_ID}","name":"Kitchen","slug":"kitchen"}}}}"#
            ),
            "application/json",
        ))
        .mount(&app.upstream)
        .await;
    let token = admin_token(USER_A);
    let res = app
        .post("/api/categories")
        .bearer_auth(&token)
        .header("idempotency-key", "c-1")
        .json(&json!({"name": "Kitchen", "slug": "kitchen"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(
        res.headers()["location"],
        format!("/api/categories/{CATEGORY_ID}").as_str()
    );
    assert_eq!(res.headers()["idempotent-replayed"], "true");
    assert_eq!(
        res.text().await.unwrap(),
        format!(r#"{{"id":"{CATEGORY_ID}","name":"Kitchen","slug":"kitchen"}}"#)
    );
    let requests = app.upstream_requests().await;
    assert_sent_as_user(&requests[0], &token);
    assert_eq!(
        body_json(&requests[0])["category"],
        json!({"name": "Kitchen", "slug": "kitchen"})
    );
}

#[tokio::test]
async fn every_upstream_call_carries_the_request_id_the_client_sees() {
    let app = TestApp::spawn().await;
    FakeKeys::mount(&app).await;
    let res = app
        .post("/api/items")
        .bearer_auth(user_token(USER_A))
        .header("idempotency-key", "k-1")
        .header("x-request-id", "trace-me-42")
        .json(&mug())
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-me-42");
    let generated = app
        .post("/api/items")
        .bearer_auth(user_token(USER_A))
        .header("idempotency-key", "k-2")
        .json(&mug())
        .send()
        .await
        .unwrap();
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let requests = app.upstream_requests().await;
    assert_eq!(headers_of(&requests[0], "x-request-id"), ["trace-me-42"]);
    assert_eq!(headers_of(&requests[1], "x-request-id"), [id]);
}
