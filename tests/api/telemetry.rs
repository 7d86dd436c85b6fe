//! Logs and traces as an operator sees them: every line a request causes names it (request
//! id, user), `RUST_LOG` filters, and the calls to Supabase carry a W3C `traceparent` that
//! continues the client's trace or starts a new one.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::*;

const CLIENT_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_PARENT_ID: &str = "00f067aa0ba902b7";

/// `(trace id, parent id, flags)` of a syntactically valid version-00 `traceparent`.
fn parse_traceparent(value: &str) -> (String, String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    let lower_hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    assert!(
        parts.len() == 4
            && parts[0] == "00"
            && lower_hex(parts[1], 32)
            && lower_hex(parts[2], 16)
            && lower_hex(parts[3], 2)
            && parts[1].bytes().any(|b| b != b'0')
            && parts[2].bytes().any(|b| b != b'0'),
        "not a valid traceparent: {value:?}"
    );
    (parts[1].into(), parts[2].into(), parts[3].into())
}

/// The one `traceparent` a recorded upstream request carried.
fn traceparent_of(req: &wiremock::Request) -> (String, String, String) {
    let sent = headers_of(req, "traceparent");
    assert_eq!(sent.len(), 1, "{} {}: {sent:?}", req.method, req.url);
    parse_traceparent(&sent[0])
}

/// Starts the binary with `RUST_LOG` (unset when `None`) against a fake Supabase whose
/// PostgREST answers `GET /rest/v1/items` with a 500.
async fn process_with_failing_postgrest(rust_log: Option<&str>) -> (Process, wiremock::MockServer) {
    let upstream = wiremock::MockServer::start().await;
    upstream.register(jwks_mock("jwks_initial")).await;
    Mock::given(method("GET"))
        .and(path("/rest/v1/items"))
        .respond_with(pg_error(500, "XX000"))
        .mount(&upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/v1/categories"))
        .respond_with(pg_list(json!([]), "*/0"))
        .mount(&upstream)
        .await;
    let mut env = test_env(&upstream.uri());
    let process = match rust_log {
        Some(filter) => {
            env.insert("RUST_LOG".into(), filter.into());
            Process::start_quiet(&env)
        }
        None => Process::start(&env),
    };
    (process, upstream)
}

/// Waits for the process to log what the requests so far caused, and returns it.
async fn settled_log(process: &Process) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    process.drain_log()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_failure_is_logged_with_the_request_id_the_client_sent_and_its_user() {
    let (process, _upstream) = process_with_failing_postgrest(None).await;
    let res = reqwest::Client::new()
        .get(process.url("/api/items?limit=5"))
        .header("X-Request-Id", "client-chosen-id-42")
        .bearer_auth(user_token(USER_A))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);

    let log = settled_log(&process).await;
    let failure: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("ERROR") && l.contains("upstream_error"))
        .collect();
    assert!(!failure.is_empty(), "no upstream failure line in {log:#?}");
    for line in failure {
        assert!(
            line.contains("request_id=client-chosen-id-42"),
            "the failure line does not name its request: {line}"
        );
        assert!(
            line.contains(&format!("user_id={USER_A}")),
            "the failure line does not name its user: {line}"
        );
        assert!(
            line.contains("route=/api/items"),
            "the failure line does not name its route: {line}"
        );
    }
    // The access line keeps its own fields, the path without its query.
    let access: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("supagate::access"))
        .collect();
    assert_eq!(access.len(), 1, "{log:#?}");
    assert!(
        access[0].contains("GET /api/items 502 ")
            && access[0].contains("request_id=client-chosen-id-42")
            && access[0].contains(&format!("user={USER_A}"))
            && !access[0].contains("limit=5"),
        "{}",
        access[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_warn_hides_the_access_line_but_keeps_failures_with_their_request_id() {
    let (process, _upstream) = process_with_failing_postgrest(Some("warn")).await;
    let client = reqwest::Client::new();
    let ok = client
        .get(process.url("/api/categories"))
        .header("X-Request-Id", "quiet-success")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let failed = client
        .get(process.url("/api/items"))
        .header("X-Request-Id", "loud-failure")
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 502);

    let log = settled_log(&process).await;
    assert!(
        !log.iter()
            .any(|l| l.contains("supagate::access") || l.contains(" INFO ")),
        "RUST_LOG=warn still logs at info: {log:#?}"
    );
    assert!(!log.iter().any(|l| l.contains("quiet-success")), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.contains("ERROR") && l.contains("request_id=loud-failure")),
        "the failure is not logged with its request id at RUST_LOG=warn: {log:#?}"
    );
}

#[tokio::test]
async fn a_client_traceparent_continues_into_every_upstream_call_with_a_new_parent_id() {
    let app = TestApp::spawn().await;
    // An update makes two upstream calls: the owner read, then the write.
    mock_rest(
        &app,
        "GET",
        "items",
        ResponseTemplate::new(200).set_body_json(json!({"user_id": USER_A})),
    )
    .await;
    mock_rest(
        &app,
        "PATCH",
        "items",
        ResponseTemplate::new(200)
            .insert_header("content-type", "application/vnd.pgrst.object+json")
            .set_body_json(item_row(ITEM_ID, USER_A)),
    )
    .await;
    let res = app
        .patch(&format!("/api/items/{ITEM_ID}"))
        .bearer_auth(user_token(USER_A))
        .header(
            "traceparent",
            format!("00-{CLIENT_TRACE_ID}-{CLIENT_PARENT_ID}-01"),
        )
        .header("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        .json(&json!({"name": "Mug", "price": 12.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get("traceparent").is_none(),
        "nothing new is echoed to the client"
    );

    let sent = app.upstream_requests().await;
    assert_eq!(sent.len(), 2, "the owner read, then the write");
    let mut parents = Vec::new();
    for req in &sent {
        let (trace_id, parent_id, flags) = traceparent_of(req);
        assert_eq!(trace_id, CLIENT_TRACE_ID, "{} {}", req.method, req.url);
        assert_ne!(parent_id, CLIENT_PARENT_ID, "supagate is the parent now");
        assert_eq!(flags, "01", "the client's sampling decision is kept");
        assert_eq!(
            headers_of(req, "tracestate"),
            ["congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"]
        );
        parents.push(parent_id);
    }
    parents.dedup();
    assert_eq!(
        parents.len(),
        1,
        "one request, one supagate span: {parents:?}"
    );
}

#[tokio::test]
async fn without_a_valid_traceparent_each_request_starts_its_own_trace_upstream() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "GET", "items", pg_list(json!([]), "*/0")).await;
    for traceparent in [
        None,
        // Invalid: upper-case hex, an all-zero trace id, a wrong length.
        Some(format!(
            "00-{}-{CLIENT_PARENT_ID}-01",
            CLIENT_TRACE_ID.to_uppercase()
        )),
        Some(format!("00-{}-{CLIENT_PARENT_ID}-01", "0".repeat(32))),
        Some(format!("00-{CLIENT_TRACE_ID}-{CLIENT_PARENT_ID}-1")),
    ] {
        let mut req = app.get("/api/items");
        if let Some(value) = &traceparent {
            req = req
                .header("traceparent", value)
                .header("tracestate", "congo=x");
        }
        assert_eq!(req.send().await.unwrap().status(), 200);
    }
    let sent = app.upstream_requests().await;
    assert_eq!(sent.len(), 4);
    let mut traces = std::collections::HashSet::new();
    for req in &sent {
        let (trace_id, _, _) = traceparent_of(req);
        assert!(
            !trace_id.eq_ignore_ascii_case(CLIENT_TRACE_ID),
            "an invalid traceparent was continued"
        );
        assert!(
            headers_of(req, "tracestate").is_empty(),
            "a tracestate without a valid traceparent was forwarded"
        );
        traces.insert(trace_id);
    }
    assert_eq!(traces.len(), 4, "every request starts its own trace");
}

#[tokio::test]
async fn a_signing_key_fetch_caused_by_a_request_carries_its_trace_and_background_ones_none() {
    let app = TestApp::spawn_with_mocks(vec![jwks_mock("jwks_initial")], |s| {
        s.auth.jwks_min_refetch_interval_secs = 0;
    })
    .await;
    // The start-up load runs in the background, for no request.
    for _ in 0..100 {
        if jwks_fetches(&app).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let res = app
        .get("/api/items")
        .bearer_auth(fixture_token("unknown_kid_es256"))
        .header(
            "traceparent",
            format!("00-{CLIENT_TRACE_ID}-{CLIENT_PARENT_ID}-00"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let fetches: Vec<wiremock::Request> = app
        .all_upstream_requests()
        .await
        .into_iter()
        .filter(|r| r.url.path() == JWKS_PATH)
        .collect();
    assert!(fetches.len() >= 2, "the unknown kid caused a refetch");
    assert!(
        headers_of(&fetches[0], "traceparent").is_empty(),
        "the start-up load belongs to no request"
    );
    let (trace_id, _, _) = traceparent_of(fetches.last().unwrap());
    assert_eq!(trace_id, CLIENT_TRACE_ID);
}

#[tokio::test]
async fn a_browser_on_an_allowed_origin_may_send_its_trace_headers() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/items"))
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "traceparent,tracestate")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let allowed = res.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in ["traceparent", "tracestate"] {
        assert!(allowed.contains(h), "{allowed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_clients_own_log_records_are_filtered_by_rust_log_and_name_the_request() {
    let (process, _upstream) =
        process_with_failing_postgrest(Some("warn,hyper_util=debug,reqwest=debug")).await;
    let res = reqwest::Client::new()
        .get(process.url("/api/categories"))
        .header("X-Request-Id", "bridged-log-record")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let log = settled_log(&process).await;
    // hyper-util and reqwest log through the `log` crate; the bridge turns their records
    // into events, and those emitted while the request's future runs are inside its span.
    // (Lines from their own background tasks, like the start-up JWKS load, name no request.)
    let bridged: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("hyper_util::") || l.contains("reqwest::"))
        .collect();
    assert!(
        bridged.iter().any(|l| l
            .contains("request{request_id=bridged-log-record method=GET route=/api/categories")),
        "no bridged log record names the request: {bridged:#?}"
    );
    assert!(
        !log.iter()
            .any(|l| l.contains("actix_server") || l.contains(" INFO ")),
        "other crates stay at warn: {log:#?}"
    );
}
