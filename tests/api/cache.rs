//! Conditional reads (`ETag`, `304`, `Cache-Control`) and the read cache keyed by who is
//! asking: what a client sees, and how many calls reach PostgREST.

use std::time::Duration;

use serde_json::{json, Value};
use supagate::config::{CacheKey, CacheRoute, CacheStore, Secret, Settings};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::redis_server::RedisServer;
use crate::support::*;

fn cache(settings: &mut Settings, route: &str, ttl_secs: u64, key: CacheKey) {
    settings.cache.routes.push(CacheRoute {
        route: route.to_owned(),
        ttl_secs,
        key,
    });
}

fn categories(name: &str) -> Value {
    json!([{"id": CATEGORY_ID, "name": name, "slug": "kitchen"}])
}

/// PostgREST answering `rows` to calls that carry `bearer`.
async fn rows_for(app: &TestApp, table: &str, bearer: &str, rows: Value) {
    Mock::given(method("GET"))
        .and(path(format!("/rest/v1/{table}")))
        .and(header("authorization", format!("Bearer {bearer}").as_str()))
        .respond_with(pg_list(rows, "0-0/1"))
        .mount(&app.upstream)
        .await;
}

/// PostgREST answering the category list "before" once, then "after".
async fn reads_before_then_after(app: &TestApp) {
    Mock::given(method("GET"))
        .and(path("/rest/v1/categories"))
        .respond_with(pg_list(categories("before"), "0-0/1"))
        .up_to_n_times(1)
        .mount(&app.upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/v1/categories"))
        .respond_with(pg_list(categories("after"), "0-0/1"))
        .mount(&app.upstream)
        .await;
}

/// PostgREST creating a category named `name`.
async fn category_created(app: &TestApp, name: &str) {
    mock_rest(
        app,
        "POST",
        "categories",
        ResponseTemplate::new(201)
            .set_body_json(json!({"id": CATEGORY_ID, "name": name, "slug": name})),
    )
    .await;
}

async fn gets_to(app: &TestApp, table: &str) -> usize {
    let requests = app.upstream_requests().await;
    let path = format!("/rest/v1/{table}");
    requests
        .iter()
        .filter(|r| r.method.as_str() == "GET" && r.url.path() == path)
        .count()
}

#[tokio::test]
async fn a_get_answer_carries_a_strong_etag_and_a_matching_if_none_match_is_304_without_a_body() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "GET",
        "items",
        pg_list(json!([item_row(ITEM_ID, USER_A)]), "0-0/1"),
    )
    .await;
    let first = app.get("/api/items").send().await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34,
        "{etag}"
    );
    assert_eq!(first.headers()["cache-control"], "no-cache");
    let vary: Vec<String> = first
        .headers()
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        vary.iter().any(|v| v == "Authorization, Cookie"),
        "{vary:?}"
    );
    let body = first.bytes().await.unwrap();

    let again = app
        .get("/api/items")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    assert!(again.headers().get("content-type").is_none());
    assert!(again.bytes().await.unwrap().is_empty());

    // Another validator (or a weak form of another) is not a match: the whole answer again.
    for other in ["\"0123\"", "W/\"0123\""] {
        let res = app
            .get("/api/items")
            .header("if-none-match", other)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{other}");
        assert_eq!(res.bytes().await.unwrap(), body);
    }
}

#[tokio::test]
async fn a_signed_in_callers_answer_is_private_and_a_write_carries_no_validator() {
    let app = TestApp::spawn().await;
    let token = user_token(USER_A);
    mock_rest(&app, "GET", "items", pg_list(json!([]), "*/0")).await;
    let res = app
        .get("/api/items")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "private, no-cache");
    let res = app
        .delete(&format!("/api/items/{ITEM_ID}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("etag").is_none());
}

#[tokio::test]
async fn a_cached_route_answers_a_repeat_without_an_upstream_call_and_with_the_same_bytes() {
    let app = TestApp::spawn_with(|s| cache(s, "/api/items", 30, CacheKey::Role)).await;
    rows_for(&app, "items", ANON_KEY, json!([item_row(ITEM_ID, USER_A)])).await;
    let first = app.get("/api/items?limit=5").send().await.unwrap();
    let (etag, total) = (
        first.headers()["etag"].clone(),
        first.headers()["x-total-count"].clone(),
    );
    let body = first.bytes().await.unwrap();
    let second = app.get("/api/items?limit=5").send().await.unwrap();
    assert_eq!(second.headers()["etag"], etag);
    assert_eq!(second.headers()["x-total-count"], total);
    assert!(second.headers().get("set-cookie").is_none());
    assert_eq!(second.bytes().await.unwrap(), body);
    assert_eq!(gets_to(&app, "items").await, 1);
    // Another query is another answer.
    let _ = app.get("/api/items?limit=6").send().await.unwrap();
    assert_eq!(gets_to(&app, "items").await, 2);
}

#[tokio::test]
async fn two_users_with_different_rows_never_see_each_others_cached_answer() {
    let app = TestApp::spawn_with(|s| cache(s, "/api/items", 30, CacheKey::User)).await;
    let (a, b) = (user_token(USER_A), user_token(USER_B));
    rows_for(&app, "items", &a, json!([item_row(ITEM_ID, USER_A)])).await;
    rows_for(&app, "items", &b, json!([])).await;
    for _ in 0..2 {
        let (_, rows_a) =
            json_of(app.get("/api/items").bearer_auth(&a).send().await.unwrap()).await;
        assert_eq!(rows_a, json!([item_row(ITEM_ID, USER_A)]));
        let (_, rows_b) =
            json_of(app.get("/api/items").bearer_auth(&b).send().await.unwrap()).await;
        assert_eq!(rows_b, json!([]));
    }
    // Each user's second read came from the cache: one call per user.
    assert_eq!(gets_to(&app, "items").await, 2);
}

#[tokio::test]
async fn an_anonymous_caller_never_gets_a_signed_in_callers_cached_answer_nor_the_reverse() {
    let app = TestApp::spawn().await; // the default config caches categories per role
    let token = user_token(USER_A);
    rows_for(&app, "categories", &token, categories("members")).await;
    rows_for(&app, "categories", ANON_KEY, categories("public")).await;
    for _ in 0..2 {
        let (_, signed_in) = json_of(
            app.get("/api/categories")
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(signed_in, categories("members"));
        let (_, anonymous) = json_of(app.get("/api/categories").send().await.unwrap()).await;
        assert_eq!(anonymous, categories("public"));
    }
    assert_eq!(gets_to(&app, "categories").await, 2);
}

#[tokio::test]
async fn a_write_through_supagate_is_visible_to_its_author_on_the_next_read() {
    let app = TestApp::spawn().await;
    let admin = admin_token(USER_A);
    reads_before_then_after(&app).await;
    category_created(&app, "after").await;
    let read = || async {
        json_of(
            app.get("/api/categories")
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap(),
        )
        .await
        .1
    };
    assert_eq!(read().await, categories("before"));
    assert_eq!(read().await, categories("before"), "served from the cache");
    let res = app
        .post("/api/categories")
        .bearer_auth(&admin)
        .json(&json!({"name": "after", "slug": "after"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(read().await, categories("after"));
    assert_eq!(gets_to(&app, "categories").await, 2);
}

#[tokio::test]
async fn a_refused_write_keeps_the_cache() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "GET",
        "categories",
        pg_list(categories("kept"), "0-0/1"),
    )
    .await;
    let _ = app.get("/api/categories").send().await.unwrap();
    // Not an admin: 403 before anything is written.
    let res = app
        .post("/api/categories")
        .bearer_auth(user_token(USER_A))
        .json(&json!({"name": "x", "slug": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let _ = app.get("/api/categories").send().await.unwrap();
    assert_eq!(gets_to(&app, "categories").await, 1);
}

#[tokio::test]
async fn an_answer_that_sets_cookies_is_neither_cached_nor_304_and_a_cached_one_sets_none() {
    let app = TestApp::spawn_with(|s| s.cookies.enabled = true).await;
    mock_rest(&app, "GET", "categories", pg_list(categories("k"), "0-0/1")).await;
    // A session cookie that is no session: it is cleared on the answer (Set-Cookie).
    let res = app
        .get("/api/categories")
        .header("cookie", "sb-127-auth-token=not-a-session")
        .header("if-none-match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("set-cookie").is_some());
    assert_eq!(
        res.headers()["cache-control"],
        "private, no-cache, no-store, must-revalidate, max-age=0"
    );
    // Not stored: the next anonymous read asks PostgREST, the one after is served cached.
    let _ = app.get("/api/categories").send().await.unwrap();
    let cached = app.get("/api/categories").send().await.unwrap();
    assert!(cached.headers().get("set-cookie").is_none());
    assert_eq!(gets_to(&app, "categories").await, 2);
}

#[tokio::test]
async fn identical_concurrent_misses_make_one_upstream_call() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "GET",
        "categories",
        pg_list(categories("k"), "0-0/1").set_delay(Duration::from_millis(300)),
    )
    .await;
    let calls =
        (0..8).map(|_| async { json_of(app.get("/api/categories").send().await.unwrap()).await });
    let answers = futures_util::future::join_all(calls).await;
    for (status, body) in answers {
        assert_eq!((status, body), (200, categories("k")));
    }
    assert_eq!(gets_to(&app, "categories").await, 1);
}

#[tokio::test]
async fn an_entry_past_its_ttl_is_fetched_again() {
    let app = TestApp::spawn_with(|s| {
        s.cache.routes.clear();
        cache(s, "/api/categories", 1, CacheKey::Role);
    })
    .await;
    mock_rest(&app, "GET", "categories", pg_list(categories("k"), "0-0/1")).await;
    let _ = app.get("/api/categories").send().await.unwrap();
    let _ = app.get("/api/categories").send().await.unwrap();
    assert_eq!(gets_to(&app, "categories").await, 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _ = app.get("/api/categories").send().await.unwrap();
    assert_eq!(gets_to(&app, "categories").await, 2);
}

#[tokio::test]
async fn hits_and_misses_are_counted_by_route() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "GET", "categories", pg_list(categories("k"), "0-0/1")).await;
    for _ in 0..3 {
        let _ = app.get("/api/categories").send().await.unwrap();
    }
    let text = app.metrics_text().await;
    let line = |outcome: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("supagate_read_cache_lookups_total")
                    && l.contains("route=\"/api/categories\"")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .map(str::to_owned)
    };
    // The counters are process-wide: other tests add to them, never take away.
    let count = |outcome: &str| -> u64 {
        line(outcome)
            .and_then(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
            .unwrap_or(0)
    };
    assert!(count("hit") >= 2, "{text}");
    assert!(count("miss") >= 1, "{text}");
}

#[tokio::test]
async fn a_cache_route_that_is_not_a_served_get_is_refused_at_start_up() {
    let mut settings = test_settings("http://127.0.0.1:9");
    cache(&mut settings, "/api/nope", 30, CacheKey::Role);
    let err = supagate::server::check(&settings).err().expect("refused");
    assert!(err.to_string().contains("cache.routes"), "{err}");
    let mut settings = test_settings("http://127.0.0.1:9");
    cache(&mut settings, "/api/categories", 0, CacheKey::Role);
    assert!(supagate::server::check(&settings).is_err());
}

// ---- the Redis store, for real ----

fn shared_cache(url: String) -> impl Fn(&mut Settings) {
    move |s: &mut Settings| {
        s.cache.store = CacheStore::Redis;
        s.rate_limit.redis_url = Secret::new(url.clone());
        // A loaded CI machine must not turn a slow answer into a bypass here.
        s.rate_limit.redis_timeout_ms = 5_000;
    }
}

/// Waits until an answer is stored in Redis (written after the answer is sent), or panics.
async fn until_stored(url: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("supagate:cache:*:role:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "never stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn instances_sharing_redis_serve_each_others_cached_reads_and_a_write_through_one_drops_them_for_all(
) {
    let redis = RedisServer::start();
    let a = TestApp::spawn_with(shared_cache(redis.url())).await;
    let b = TestApp::spawn_with(shared_cache(redis.url())).await;
    let admin = admin_token(USER_A);
    reads_before_then_after(&a).await;
    category_created(&b, "after").await;
    let read = |app: &TestApp| app.get("/api/categories").bearer_auth(&admin).send();

    let first = read(&a).await.unwrap();
    let etag = first.headers()["etag"].clone();
    assert_eq!(json_of(first).await.1, categories("before"));
    until_stored(&redis.url()).await;

    // The other instance never asked its PostgREST: Redis had the answer, bytes and validator.
    let from_b = read(&b).await.unwrap();
    assert_eq!(from_b.headers()["etag"], etag);
    assert_eq!(from_b.headers()["x-total-count"], "1");
    assert_eq!(json_of(from_b).await.1, categories("before"));
    assert_eq!(gets_to(&b, "categories").await, 0);

    let res = b
        .post("/api/categories")
        .bearer_auth(&admin)
        .json(&json!({"name": "after", "slug": "after"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // The write went through b; a's next read is fresh all the same.
    assert_eq!(
        json_of(read(&a).await.unwrap()).await.1,
        categories("after")
    );
    assert_eq!(gets_to(&a, "categories").await, 2);
}

#[tokio::test]
async fn with_redis_down_a_cached_route_still_answers_from_postgrest_and_writes_still_succeed() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    redis.kill();
    let app = TestApp::spawn_with(|s| {
        shared_cache(url)(s);
        s.rate_limit.redis_timeout_ms = 200;
    })
    .await;
    mock_rest(&app, "GET", "categories", pg_list(categories("k"), "0-0/1")).await;
    category_created(&app, "k").await;
    for _ in 0..2 {
        let (status, body) = json_of(app.get("/api/categories").send().await.unwrap()).await;
        assert_eq!((status, body), (200, categories("k")));
    }
    assert_eq!(
        gets_to(&app, "categories").await,
        2,
        "each read asked PostgREST"
    );
    let res = app
        .post("/api/categories")
        .bearer_auth(admin_token(USER_A))
        .json(&json!({"name": "k", "slug": "k"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let metrics = app.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("supagate_read_cache_lookups_total")
                && l.contains("outcome=\"error\"")
                && !l.ends_with(" 0")),
        "{metrics}"
    );
}
