//! Foundation behaviour: health, readiness, request ids, JSON errors, upstream failures,
//! configuration and shutdown.

use std::collections::HashMap;

use crate::support::*;

#[tokio::test]
async fn health_answers_ok_without_calling_supabase() {
    let app = TestApp::spawn().await;
    let (status, body) = json_of(app.get("/health").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(app.upstream_requests().await.is_empty());
}

use std::time::Duration;

use serde_json::Value;
use supagate::error::ApiError;
use supagate::http_client::{build_client, JsonApi};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

async fn mount_healthy_supabase(app: &TestApp) {
    Mock::given(method("GET"))
        .and(path("/auth/v1/health"))
        .and(header("apikey", ANON_KEY))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"version": "v2.170.0", "name": "GoTrue"})),
        )
        .mount(&app.upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/v1/"))
        .and(header("apikey", ANON_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
        .mount(&app.upstream)
        .await;
}

#[tokio::test]
async fn ready_is_ok_when_auth_and_postgrest_answer_with_the_apikey() {
    let app = TestApp::spawn().await;
    mount_healthy_supabase(&app).await;
    let (status, body) = json_of(app.get("/ready").send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["auth"]["ok"], true);
    assert_eq!(body["checks"]["rest"]["ok"], true);
    assert_eq!(body["checks"]["item_limit"]["ok"], true);
    assert_eq!(app.upstream_requests().await.len(), 2);
}

#[tokio::test]
async fn ready_is_503_while_the_item_limit_is_not_written() {
    // PGRST202: the function is missing, i.e. the migration was not applied.
    let missing = Mock::given(path(ITEM_LIMIT_RULE_PATH)).respond_with(pg_error(404, "PGRST202"));
    let app = TestApp::spawn_with_mocks(vec![missing], |_| {}).await;
    mount_healthy_supabase(&app).await;
    let (status, body) = json_of(app.get("/ready").send().await.unwrap()).await;
    assert_eq!(status, 503, "{body}");
    let check = &body["details"]["checks"]["item_limit"];
    assert_eq!(check["ok"], false);
    assert_eq!(check["error"], "set_item_limit_rule answered 404 PGRST202");
    assert_eq!(body["details"]["checks"]["rest"]["ok"], true);
}

#[tokio::test]
async fn ready_without_a_secret_key_says_the_item_limit_cannot_be_written() {
    let app = TestApp::spawn_with(|s| s.supabase.service_role_key = None).await;
    mount_healthy_supabase(&app).await;
    let (status, body) = json_of(app.get("/ready").send().await.unwrap()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["details"]["checks"]["item_limit"]["error"],
        "no secret key configured (SUPABASE_SERVICE_ROLE_KEY)"
    );
    let writes = app.all_upstream_requests().await;
    assert!(writes.iter().all(|r| r.url.path() != ITEM_LIMIT_RULE_PATH));
}

#[tokio::test]
async fn ready_is_503_naming_the_failing_upstream() {
    let app = TestApp::spawn().await;
    Mock::given(path("/auth/v1/health"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&app.upstream)
        .await;
    Mock::given(path("/rest/v1/"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&app.upstream)
        .await;
    let (status, body) = json_of(app.get("/ready").send().await.unwrap()).await;
    assert_eq!(status, 503);
    assert_eq!(error_code(&body), "upstream_unavailable");
    assert_eq!(body["details"]["checks"]["auth"]["ok"], false);
    assert_eq!(body["details"]["checks"]["auth"]["status"], 500);
    assert_eq!(body["details"]["checks"]["rest"]["ok"], true);
}

#[tokio::test]
async fn ready_is_503_when_supabase_is_unreachable_and_the_service_keeps_serving() {
    let app = TestApp::spawn_with(|s| s.supabase.url = closed_port_url()).await;
    let (status, body) = json_of(app.get("/ready").send().await.unwrap()).await;
    assert_eq!(status, 503);
    assert_eq!(body["details"]["checks"]["auth"]["error"], "unreachable");
    assert_eq!(body["details"]["checks"]["rest"]["error"], "unreachable");
    let (status, _) = json_of(app.get("/health").send().await.unwrap()).await;
    assert_eq!(status, 200);
}

/// A URL on which nothing listens: bind a port, then release it.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn a_sane_incoming_request_id_is_echoed() {
    let app = TestApp::spawn().await;
    let res = app
        .get("/health")
        .header("x-request-id", "trace-42.a:b_c")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-42.a:b_c");
}

#[tokio::test]
async fn an_insane_request_id_is_replaced_by_a_uuid() {
    let app = TestApp::spawn().await;
    for bad in ["has space", &"x".repeat(129), "semi;colon"] {
        let res = app
            .get("/health")
            .header("x-request-id", bad)
            .send()
            .await
            .unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(id, bad);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    }
}

#[tokio::test]
async fn a_request_without_an_id_gets_a_fresh_one_on_every_response() {
    let app = TestApp::spawn().await;
    let a = app.get("/health").send().await.unwrap();
    let b = app.get("/nope").send().await.unwrap();
    let a = a.headers()["x-request-id"].to_str().unwrap().to_owned();
    let b = b.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&a).is_ok());
    assert_ne!(a, b);
}

#[tokio::test]
async fn responses_carry_the_security_headers() {
    let app = TestApp::spawn().await;
    let res = app.get("/health").send().await.unwrap();
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
}

#[tokio::test]
async fn cors_allows_the_configured_origin_and_exposes_pagination_headers() {
    let app = TestApp::spawn().await;
    let res = app
        .get("/health")
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in ["content-range", "x-total-count", "x-request-id"] {
        assert!(exposed.contains(h), "{exposed}");
    }
    let other = app
        .get("/health")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn unknown_routes_answer_a_json_404() {
    let app = TestApp::spawn().await;
    let (status, body) = json_of(app.get("/no/such/route").send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "not_found");
}

#[tokio::test]
async fn a_wrong_method_answers_405_with_allow() {
    let app = TestApp::spawn().await;
    let res = app.delete("/health").send().await.unwrap();
    assert_eq!(res.headers()["allow"], "GET");
    let (status, body) = json_of(res).await;
    assert_eq!(status, 405);
    assert_eq!(error_code(&body), "method_not_allowed");
}

// ---- upstream failures, at the shared client ----

fn api_at(base: &str, timeout_ms: u64) -> JsonApi {
    let mut settings = test_settings(base).upstream;
    settings.request_timeout_ms = timeout_ms;
    let client = build_client(&settings).unwrap();
    JsonApi::new("rest", client, base, None, 1024).unwrap()
}

#[tokio::test]
async fn a_refused_connection_is_503_upstream_unavailable() {
    let api = api_at(&closed_port_url(), 2000);
    let err: ApiError = get_json(&api, "/x").await.unwrap_err().into();
    assert_eq!(err.status().as_u16(), 503);
    assert_eq!(err.code(), "upstream_unavailable");
}

#[tokio::test]
async fn an_upstream_timeout_is_504_upstream_timeout() {
    let server = wiremock::MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(800)))
        .mount(&server)
        .await;
    let api = api_at(&server.uri(), 200);
    let err: ApiError = get_json(&api, "/slow").await.unwrap_err().into();
    assert_eq!(err.status().as_u16(), 504);
    assert_eq!(err.code(), "upstream_timeout");
}

#[tokio::test]
async fn a_garbage_upstream_answer_is_502_and_its_text_is_not_returned() {
    let server = wiremock::MockServer::start().await;
    Mock::given(path("/html"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>secret stack trace</html>"))
        .mount(&server)
        .await;
    Mock::given(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_string("[".repeat(4096)))
        .mount(&server)
        .await;
    let api = api_at(&server.uri(), 2000);
    for p in ["/html", "/big"] {
        let err: ApiError = get_json(&api, p).await.unwrap_err().into();
        assert_eq!(err.status().as_u16(), 502, "{p}");
        assert_eq!(err.code(), "upstream_error");
        assert!(!err.to_string().contains("secret stack trace"));
    }
}

#[tokio::test]
async fn an_upstream_error_status_is_502_carrying_the_status_for_mapping() {
    let server = wiremock::MockServer::start().await;
    Mock::given(path("/boom"))
        .respond_with(ResponseTemplate::new(500).set_body_string("db exploded"))
        .mount(&server)
        .await;
    let api = api_at(&server.uri(), 2000);
    let err = get_json(&api, "/boom").await.unwrap_err();
    assert!(
        matches!(&err, supagate::http_client::UpstreamError::Status { status, .. } if status.as_u16() == 500)
    );
    let err: ApiError = err.into();
    assert_eq!(err.status().as_u16(), 502);
}

// ---- configuration ----

#[test]
fn check_config_prints_the_effective_configuration_with_secrets_redacted() {
    let mut env = test_env("http://127.0.0.1:9");
    env.insert(
        "SUPABASE_SERVICE_ROLE_KEY".into(),
        "sb_secret_TOPSECRET".into(),
    );
    env.insert("STRIPE_WEBHOOK_SECRET".into(), "whsec_AAA,whsec_BBB".into());
    let (code, out, err) = run_binary(&["check-config"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("url = \"http://127.0.0.1:9\""), "{out}");
    assert!(out.contains("[REDACTED]"));
    for secret in ["sb_secret_TOPSECRET", "whsec_AAA", "whsec_BBB", ANON_KEY] {
        assert!(!out.contains(secret), "{secret} leaked: {out}");
    }
    let hs = fixture("jwt.json")["hs256_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!out.contains(&hs));
}

/// The defaults are compiled in: from a directory with no `config/`, and with no
/// `SUPAGATE_CONFIG_DIR`, the binary has every setting (the default rate-limit rules
/// included); a config directory named explicitly must exist.
#[test]
fn the_binary_runs_from_any_directory_on_its_compiled_in_defaults() {
    let env = test_env("http://127.0.0.1:9");
    let (code, out, err) = run_binary_alone(&["check-config"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("url = \"http://127.0.0.1:9\""), "{out}");
    assert!(
        out.contains("server-side refresh"),
        "the default rules: {out}"
    );
    assert!(
        out.contains("forward_client_ip = \"self_hosted\""),
        "test.toml: {out}"
    );
    let mut env = env;
    env.insert(
        "SUPAGATE_CONFIG_DIR".into(),
        "/nonexistent/supagate-config".into(),
    );
    let (code, _, err) = run_binary_alone(&["check-config"], &env);
    assert_eq!(code, 2);
    assert!(err.contains("SUPAGATE_CONFIG_DIR"), "{err}");
}

/// `--help` and `--version` answer on every subcommand and start nothing (a started worker
/// or server would fail here: no key, no URL).
#[test]
fn every_subcommand_answers_help_and_version_without_running() {
    let nothing = HashMap::new();
    for sub in ["serve", "worker", "check-config", "openapi"] {
        let (code, out, err) = run_binary_alone(&[sub, "--help"], &nothing);
        assert_eq!(code, 0, "{sub} --help: {err}");
        assert!(
            out.contains(&format!("Usage: supagate {sub}")),
            "{sub}: {out}"
        );
        let (code, out, _) = run_binary_alone(&[sub, "--version"], &nothing);
        assert_eq!(code, 0, "{sub} --version");
        assert!(out.contains(env!("CARGO_PKG_VERSION")), "{sub}: {out}");
    }
    let (code, out, _) = run_binary_alone(&["--help"], &nothing);
    assert_eq!(code, 0);
    assert!(out.contains("check-config"), "{out}");
    let (code, _, err) = run_binary_alone(&["serv"], &nothing);
    assert_eq!(code, 2, "a wrong word is a usage error");
    assert!(err.contains("serv"), "{err}");
}

#[test]
fn settings_debug_output_redacts_every_secret() {
    let settings = test_settings("http://127.0.0.1:9");
    let debug = format!("{settings:?}");
    assert!(!debug.contains(ANON_KEY));
    assert!(!debug.contains(SERVICE_KEY));
    assert!(!debug.contains(STRIPE_SECRET));
    assert!(debug.contains("[REDACTED]"));
}

#[test]
fn start_up_fails_with_one_line_naming_a_missing_supabase_url() {
    let mut env = test_env("unused");
    env.remove("SUPABASE_URL");
    env.insert("APP_ENV".into(), "production".into());
    let (code, _, err) = run_binary(&["serve"], &env);
    assert_eq!(code, 2);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("SUPABASE_URL"), "{err}");
    assert!(lines[0].contains("missing"), "{err}");
}

#[test]
fn start_up_fails_naming_a_malformed_setting() {
    let mut env = test_env("http://127.0.0.1:9");
    env.insert("PORT".into(), "eighty".into());
    let (code, _, err) = run_binary(&["check-config"], &env);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("PORT"), "{err}");
}

#[test]
fn next_public_names_are_read_when_the_canonical_ones_are_absent() {
    let mut env = test_env("unused");
    env.remove("SUPABASE_URL");
    env.remove("SUPABASE_ANON_KEY");
    env.insert(
        "NEXT_PUBLIC_SUPABASE_URL".into(),
        "https://abcdefghijklmnopqrst.supabase.co".into(),
    );
    env.insert("NEXT_PUBLIC_SUPABASE_ANON_KEY".into(), "k".into());
    let settings = supagate::config::Settings::load(&repo_path("config"), &env).unwrap();
    assert_eq!(
        settings.supabase.url,
        "https://abcdefghijklmnopqrst.supabase.co"
    );
    assert_eq!(settings.supabase.anon_key.expose(), "k");
    assert_eq!(
        settings.session_cookie_name(),
        "sb-abcdefghijklmnopqrst-auth-token"
    );
}

#[test]
fn prefixed_environment_variables_override_nested_settings() {
    let mut env = test_env("http://127.0.0.1:9");
    env.insert("SUPAGATE_SERVER__BODY_LIMIT_BYTES".into(), "1234".into());
    env.insert("SUPAGATE_BUSINESS__FREE_ITEM_LIMIT".into(), "3".into());
    let settings = supagate::config::Settings::load(&repo_path("config"), &env).unwrap();
    assert_eq!(settings.server.body_limit_bytes, 1234);
    assert_eq!(settings.business.free_item_limit, 3);
    assert_eq!(settings.stripe.webhook_secrets.len(), 1);
}

// ---- shutdown ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_0() {
    let upstream = wiremock::MockServer::start().await;
    Mock::given(path("/auth/v1/health"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(1500)))
        .mount(&upstream)
        .await;
    Mock::given(path("/rest/v1/"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&upstream)
        .await;
    upstream.register(item_limit_rule_accepted()).await;
    let mut process = Process::start(&test_env(&upstream.uri()));
    let url = process.url("/ready");
    let in_flight = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(400)).await;
    process.signal("TERM");
    let status = in_flight
        .await
        .unwrap()
        .expect("in-flight request completes");
    assert_eq!(status.as_u16(), 200);
    let code = tokio::task::spawn_blocking(move || {
        let code = process.wait_exit(Duration::from_secs(10));
        (code, process)
    })
    .await
    .unwrap();
    assert_eq!(code.0, Some(0));
    // Once stopped, nothing accepts connections on that port.
    assert!(reqwest::get(code.1.url("/health")).await.is_err());
}

/// A JSON GET through the client, as every upstream read goes.
async fn get_json(
    api: &JsonApi,
    path: &str,
) -> Result<Value, supagate::http_client::UpstreamError> {
    let (_, _, body) = api.execute(api.request(reqwest::Method::GET, path)).await?;
    api.decode(&body)
}
