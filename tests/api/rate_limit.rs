//! Rate-limit rules on any route: per user or per IP, `RateLimit` / `RateLimit-Policy`
//! fields, rules checked at start-up, and the Redis store run for real (several instances
//! sharing one `redis-server`, Redis killed, restarted and paused).

use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::json;
use supagate::config::{OnStoreError, RateLimitRule, RateLimitStore, Secret, Settings};
use supagate::rate_limit::store::{Bucket, MemoryStore, Quota, RedisStore};
use supagate::redis_conn::RedisConn;

use crate::redis_server::RedisServer;
use crate::support::*;

fn rule(routes: &[&str], key: &str, per_minute: u32, burst: u32) -> RateLimitRule {
    RateLimitRule {
        routes: routes.iter().map(|r| (*r).to_owned()).collect(),
        key: key.to_owned(),
        per_minute,
        burst: Some(burst),
    }
}

/// An instance whose only rules are `rules`, its list route answering an empty page.
async fn app_with(rules: Vec<RateLimitRule>, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let app = TestApp::spawn_with(|s| {
        s.rate_limit.rules = rules;
        tweak(s);
    })
    .await;
    mock_rest(&app, "GET", "items", pg_list(json!([]), "*/0")).await;
    app
}

fn redis_settings(url: String, on_error: OnStoreError) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        s.rate_limit.store = RateLimitStore::Redis;
        s.rate_limit.redis_url = Secret::new(url);
        s.rate_limit.on_store_error = on_error;
        s.rate_limit.redis_timeout_ms = 200;
    }
}

async fn list_as(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let mut req = app.get("/api/items");
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

// ---- memory store ----

#[tokio::test]
async fn a_user_rule_limits_each_user_on_their_own_and_reports_the_budget() {
    let app = app_with(vec![rule(&["GET /api/items"], "user", 60, 2)], |_| {}).await;
    let (ann, bob) = (user_token(USER_A), user_token(USER_B));
    let first = list_as(&app, Some(&ann)).await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        header(&first, "ratelimit-policy").as_deref(),
        Some("\"rules[0]\";q=2;w=2")
    );
    assert_eq!(
        header(&first, "ratelimit").as_deref(),
        Some("\"rules[0]\";r=1;t=1")
    );
    assert_eq!(list_as(&app, Some(&ann)).await.status(), 200);
    let refused = list_as(&app, Some(&ann)).await;
    assert_eq!(header(&refused, "retry-after").as_deref(), Some("1"));
    assert!(header(&refused, "ratelimit")
        .unwrap()
        .starts_with("\"rules[0]\";r=0;"));
    let (status, body) = json_of(refused).await;
    assert_eq!((status, error_code(&body)), (429, "rate_limited"));
    // Bob has his own budget; the refused request never reached PostgREST.
    assert_eq!(list_as(&app, Some(&bob)).await.status(), 200);
    assert_eq!(app.upstream_requests().await.len(), 3);
}

#[tokio::test]
async fn anonymous_callers_of_a_user_rule_share_their_ips_budget() {
    let app = app_with(vec![rule(&["GET /api/items"], "user", 60, 1)], |_| {}).await;
    assert_eq!(list_as(&app, None).await.status(), 200);
    assert_eq!(list_as(&app, None).await.status(), 429);
    // A token that does not verify is not a user: same IP, same budget.
    assert_eq!(list_as(&app, Some("not-a-jwt")).await.status(), 429);
    assert_eq!(list_as(&app, Some(&user_token(USER_A))).await.status(), 200);
}

#[tokio::test]
async fn a_request_must_pass_every_rule_naming_its_route() {
    let app = app_with(
        vec![
            rule(&["GET /api/items"], "user", 60, 5),
            rule(&["GET /api/items", "POST /api/items"], "ip", 60, 2),
        ],
        |_| {},
    )
    .await;
    let token = user_token(USER_A);
    let res = list_as(&app, Some(&token)).await;
    assert_eq!(
        header(&res, "ratelimit-policy").as_deref(),
        Some("\"rules[0]\";q=5;w=5, \"rules[1]\";q=2;w=2")
    );
    assert_eq!(list_as(&app, Some(&token)).await.status(), 200);
    // The per-IP rule is spent although the per-user one is not.
    let refused = list_as(&app, Some(&token)).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(
        header(&refused, "ratelimit").as_deref(),
        Some("\"rules[0]\";r=3;t=2, \"rules[1]\";r=0;t=2")
    );
}

#[tokio::test]
async fn routes_no_rule_names_carry_no_rate_limit_fields() {
    let app = app_with(vec![rule(&["POST /api/items"], "user", 60, 1)], |_| {}).await;
    for _ in 0..3 {
        let res = list_as(&app, None).await;
        assert_eq!(res.status(), 200);
        assert!(header(&res, "ratelimit").is_none());
        assert!(header(&res, "ratelimit-policy").is_none());
    }
}

#[tokio::test]
async fn the_password_routes_keep_a_default_rule_of_ten_a_minute_per_ip() {
    let app = TestApp::spawn_with_mocks(vec![jwks_mock("jwks_initial")], |_| {}).await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/auth/v1/recover"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&app.upstream)
        .await;
    let mut statuses = Vec::new();
    for _ in 0..11 {
        let res = app
            .post("/api/auth/recover")
            .json(&json!({"email": "ann@example.com"}))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses[..10], [202; 10]);
    assert_eq!(statuses[10], 429);
}

// ---- configuration ----

/// Loads `config/` plus a test overlay holding `rules_toml`; the error line, if any.
fn load_with_rules(rules_toml: &str) -> Result<Settings, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_path("config/default.toml"),
        dir.path().join("default.toml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("test.toml"), rules_toml).unwrap();
    // Configuration is data; the rules are checked against the route table where the app
    // is built (and by `check-config`).
    let settings =
        Settings::load(dir.path(), &test_env("http://127.0.0.1:9")).map_err(|e| e.to_string())?;
    supagate::server::check(&settings).map_err(|e| e.to_string())?;
    Ok(settings)
}

#[test]
fn each_bad_rule_stops_start_up_with_one_line_naming_it() {
    let cases = [
        (
            r#"[[rate_limit.rules]]
routes = ["POST /api/itemz"]
key = "user"
per_minute = 5"#,
            "configuration error: rate_limit.rules[0].routes: `POST /api/itemz` is no route supagate serves",
        ),
        (
            r#"[[rate_limit.rules]]
routes = ["PATCH /api/categories"]
key = "ip"
per_minute = 5"#,
            "configuration error: rate_limit.rules[0].routes: `PATCH /api/categories` is no route",
        ),
        (
            r#"[[rate_limit.rules]]
routes = ["POST /api/items"]
key = "ip"
per_minute = 5
[[rate_limit.rules]]
routes = ["POST /api/items"]
key = "tenant"
per_minute = 5"#,
            "configuration error: rate_limit.rules[1].key: `tenant` is not one of ip, user",
        ),
        (
            r#"[[rate_limit.rules]]
routes = ["POST /api/items"]
key = "user"
per_minute = 0"#,
            "configuration error: rate_limit.rules[0].per_minute: must be greater than 0",
        ),
        (
            r#"[[rate_limit.rules]]
routes = ["POST /api/items"]
key = "user"
per_minute = 5
burst = 0"#,
            "configuration error: rate_limit.rules[0].burst: must be greater than 0",
        ),
        (
            "[rate_limit]\nstore = \"redis\"",
            "configuration error: rate_limit.redis_url (REDIS_URL / SUPAGATE_RATE_LIMIT__REDIS_URL): missing",
        ),
        (
            "[cache]\nstore = \"redis\"",
            "configuration error: rate_limit.redis_url (REDIS_URL / SUPAGATE_RATE_LIMIT__REDIS_URL): missing (cache.store is \"redis\")",
        ),
    ];
    for (toml, expected) in cases {
        let error = load_with_rules(toml).err().unwrap_or_default();
        assert!(error.starts_with(expected), "{toml}\n=> {error:?}");
        assert!(!error.contains('\n'), "one line: {error:?}");
    }
}

#[test]
fn the_issues_rule_shape_loads_as_written() {
    let settings = load_with_rules(
        r#"[rate_limit]
store = "memory"
redis_url = ""
on_store_error = "allow"

[[rate_limit.rules]]
routes = ["POST /api/items", "PUT /api/items/{id}", "PATCH /api/items/{id}", "DELETE /api/items/{id}"]
key = "user"
per_minute = 60
burst = 20"#,
    )
    .unwrap();
    assert_eq!(settings.rate_limit.rules.len(), 1);
    assert_eq!(settings.rate_limit.rules[0].burst, Some(20));
}

#[test]
fn the_store_and_redis_url_come_from_the_environment() {
    let mut env = test_env("http://127.0.0.1:9");
    env.insert("SUPAGATE_RATE_LIMIT__STORE".into(), "redis".into());
    env.insert("SUPAGATE_RATE_LIMIT__ON_STORE_ERROR".into(), "deny".into());
    env.insert("REDIS_URL".into(), "redis://:pw@127.0.0.1:6390/2".into());
    let settings = Settings::load(&repo_path("config"), &env).unwrap();
    assert_eq!(settings.rate_limit.store, RateLimitStore::Redis);
    assert_eq!(settings.rate_limit.on_store_error, OnStoreError::Deny);
    assert_eq!(
        settings.rate_limit.redis_url.expose(),
        "redis://:pw@127.0.0.1:6390/2"
    );
    // It may carry a password: check-config must not print it.
    assert!(!settings.to_redacted_toml().contains("pw@"));
}

#[tokio::test]
async fn a_percent_encoded_path_counts_against_the_rule_of_the_route_it_reaches() {
    let app = app_with(vec![rule(&["GET /api/items"], "ip", 60, 2)], |_| {}).await;
    // actix routes all three to `/api/items` (it decodes escapes of ordinary characters);
    // the limiter must see the same route, or encoding the path would dodge the rule.
    let mut statuses = Vec::new();
    for path in ["/api/items", "/api/%69tems", "/api/it%65ms"] {
        statuses.push(app.get(path).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
    let metrics = app.metrics_text().await;
    assert!(
        !metrics.contains("%69tems") && !metrics.contains("it%65ms"),
        "the metrics label is the template: {metrics}"
    );
}

// ---- the Redis store, for real ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_sharing_redis_let_exactly_n_requests_of_a_user_through() {
    const N: usize = 7;
    let redis = RedisServer::start();
    let rules = || vec![rule(&["GET /api/items"], "user", N as u32, N as u32)];
    let mut apps = Vec::new();
    for _ in 0..3 {
        let shared = redis_settings(redis.url(), OnStoreError::Deny);
        apps.push(
            app_with(rules(), |s| {
                shared(s);
                // A loaded CI machine must not turn a slow answer into a 503 here.
                s.rate_limit.redis_timeout_ms = 5_000;
            })
            .await,
        );
    }
    let token = user_token(USER_A);
    let requests = (0..30).map(|i| {
        let app = &apps[i % 3];
        let token = token.clone();
        async move { list_as(app, Some(&token)).await.status().as_u16() }
    });
    let statuses = futures_util::future::join_all(requests).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((ok, limited), (N, 30 - N), "{statuses:?}");
    let mut upstream = 0;
    for app in &apps {
        upstream += app.upstream_requests().await.len();
    }
    assert_eq!(upstream, N, "only allowed requests reach PostgREST");
}

/// Sends list requests until one carries `RateLimit` (Redis answered again), or panics.
async fn until_redis_decides(app: &TestApp, token: &str) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = list_as(app, Some(token)).await;
        if header(&res, "ratelimit").is_some() {
            return res;
        }
        assert!(Instant::now() < deadline, "redis never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn redis_killed_with_allow_serves_unlimited_then_limits_again_once_it_is_back() {
    let mut redis = RedisServer::start();
    let app = app_with(
        vec![rule(&["GET /api/items"], "user", 60, 2)],
        redis_settings(redis.url(), OnStoreError::Allow),
    )
    .await;
    let token = user_token(USER_A);
    assert_eq!(list_as(&app, Some(&token)).await.status(), 200);
    assert_eq!(list_as(&app, Some(&token)).await.status(), 200);
    assert_eq!(list_as(&app, Some(&token)).await.status(), 429);

    redis.kill();
    for _ in 0..3 {
        let res = list_as(&app, Some(&token)).await;
        assert_eq!(res.status(), 200, "allow: served while Redis is away");
        assert!(header(&res, "ratelimit").is_none(), "no budget is known");
    }
    assert_eq!(app.get("/health").send().await.unwrap().status(), 200);

    redis.restart();
    // A new, empty Redis: the budget starts again, and is enforced again.
    let res = until_redis_decides(&app, &token).await;
    assert_eq!(res.status(), 200);
    let mut statuses = vec![200];
    for _ in 0..2 {
        statuses.push(list_as(&app, Some(&token)).await.status().as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

#[tokio::test]
async fn redis_killed_with_deny_refuses_limited_routes_only_then_recovers() {
    let mut redis = RedisServer::start();
    let app = app_with(
        vec![rule(&["GET /api/items"], "user", 60, 5)],
        redis_settings(redis.url(), OnStoreError::Deny),
    )
    .await;
    let token = user_token(USER_A);
    assert_eq!(list_as(&app, Some(&token)).await.status(), 200);

    redis.kill();
    let (status, body) = json_of(list_as(&app, Some(&token)).await).await;
    assert_eq!((status, error_code(&body)), (503, "upstream_unavailable"));
    // Unlimited routes do not touch Redis.
    assert_eq!(app.get("/health").send().await.unwrap().status(), 200);
    assert_eq!(
        app.get("/api/items/not-a-uuid")
            .send()
            .await
            .unwrap()
            .status(),
        400
    );

    redis.restart();
    let res = until_redis_decides(&app, &token).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_paused_redis_times_out_and_the_policy_answers_quickly() {
    let redis = RedisServer::start();
    let app = app_with(
        vec![rule(&["GET /api/items"], "user", 60, 5)],
        redis_settings(redis.url(), OnStoreError::Deny),
    )
    .await;
    let token = user_token(USER_A);
    assert_eq!(list_as(&app, Some(&token)).await.status(), 200);

    redis.pause();
    let started = Instant::now();
    let res = list_as(&app, Some(&token)).await;
    let took = started.elapsed();
    assert_eq!(res.status(), 503);
    assert!(
        took < Duration::from_millis(1500),
        "redis_timeout_ms is 200, took {took:?}"
    );
    assert_eq!(app.get("/health").send().await.unwrap().status(), 200);

    redis.resume();
    let res = until_redis_decides(&app, &token).await;
    assert_eq!(res.status(), 200);
}

// ---- both stores decide alike ----

fn same_decisions_case(
    runtime: &tokio::runtime::Runtime,
    redis: &RedisStore,
    case: u64,
    quotas: &[(u32, u32)],
    steps: &[(usize, u64, usize)],
) -> Result<(), TestCaseError> {
    let memory = MemoryStore::default();
    // Far from 0 like a real clock, so the arithmetic sees realistic magnitudes.
    let mut now: i64 = 1_764_000_000_000_000;
    for (step, (first, advance_ms, count)) in steps.iter().enumerate() {
        now += i64::try_from(*advance_ms).unwrap() * 1000;
        // One or two rules per request, chosen from the case's quotas.
        let checks: Vec<Bucket> = (0..(*count).min(quotas.len()))
            .map(|j| {
                let q = (first + j) % quotas.len();
                Bucket {
                    key: format!("prop:{case}:{q}"),
                    quota: Quota::new(quotas[q].0, quotas[q].1),
                }
            })
            .collect();
        let expected = memory.decide_at(&checks, now);
        let got = runtime
            .block_on(redis.decide_at(&checks, Some(now)))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&got, &expected, "step {}", step);
    }
    Ok(())
}

#[test]
fn memory_and_redis_stores_decide_identically_for_the_same_requests() {
    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let redis = RedisStore::new(std::sync::Arc::new(
        RedisConn::new(&server.url(), Duration::from_secs(5)).unwrap(),
    ));
    // Every run (shrinking included) gets keys of its own.
    let case = std::cell::Cell::new(0u64);
    proptest!(ProptestConfig::with_cases(64), |(
        quotas in prop::collection::vec((1u32..=120, 1u32..=10), 1..=3),
        steps in prop::collection::vec((0usize..3, 0u64..3_000, 1usize..=2), 1..40),
    )| {
        case.set(case.get() + 1);
        same_decisions_case(&runtime, &redis, case.get(), &quotas, &steps)?;
    });
}
