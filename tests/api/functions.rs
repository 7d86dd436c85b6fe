//! `POST /api/functions/{name}`: Edge Functions called as the caller, listed names only.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::*;

async fn app_with(allowed: &[&str]) -> TestApp {
    let allowed: Vec<String> = allowed.iter().map(|s| (*s).to_owned()).collect();
    TestApp::spawn_with(move |s| {
        s.functions.allowed = allowed;
        s.functions.body_limit_bytes = 64;
        s.functions.timeout_ms = 300;
    })
    .await
}

/// `POST /api/functions/{name}` with `{}`, as `token`'s user or with no credentials.
async fn call(app: &TestApp, name: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = app.post(&format!("/api/functions/{name}")).json(&json!({}));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    json_of(req.send().await.unwrap()).await
}

async fn answer(app: &TestApp, name: &str, res: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(format!("/functions/v1/{name}")))
        .respond_with(res)
        .mount(&app.upstream)
        .await;
}

#[tokio::test]
async fn a_listed_function_is_called_with_the_callers_token_and_the_project_key_and_its_answer_passed_on(
) {
    let app = app_with(&["hello-world"]).await;
    answer(
        &app,
        "hello-world",
        ResponseTemplate::new(201).set_body_raw("hi Ann", "text/plain; charset=utf-8"),
    )
    .await;
    let token = user_token(USER_A);
    let res = app
        .post("/api/functions/hello-world")
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"name":"Ann"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.text().await.unwrap(), "hi Ann");

    let requests = app.upstream_requests().await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    let call = &requests[0];
    assert_eq!(call.method.as_str(), "POST");
    assert_eq!(call.url.path(), "/functions/v1/hello-world");
    assert_eq!(call.url.query(), None);
    assert_sent_as_user(call, &token);
    assert_eq!(header_of(call, "content-type"), Some("application/json"));
    assert_eq!(call.body, br#"{"name":"Ann"}"#);
    assert_service_key_never_sent(&requests);
}

#[tokio::test]
async fn a_function_not_listed_is_404_without_an_upstream_call() {
    let app = app_with(&["hello-world"]).await;
    let token = user_token(USER_A);
    for name in ["send-mail", "hello-world2", "..%2Fhello-world", "%2E%2E"] {
        let res = app
            .post(&format!("/api/functions/{name}"))
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(res).await;
        assert_eq!((status, error_code(&body)), (404, "not_found"), "{name}");
    }
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn a_function_call_without_a_session_is_401_without_an_upstream_call() {
    let app = app_with(&["hello-world"]).await;
    let (status, body) = call(&app, "hello-world", None).await;
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn a_body_over_the_functions_limit_is_413_without_an_upstream_call() {
    let app = app_with(&["hello-world"]).await;
    let res = app
        .post("/api/functions/hello-world")
        .bearer_auth(user_token(USER_A))
        .header("content-type", "application/json")
        .body(format!(r#"{{"text":"{}"}}"#, "x".repeat(100)))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (413, "payload_too_large"));
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn a_functions_own_refusal_keeps_its_status_with_its_json_body_in_details() {
    let app = app_with(&["hello-world"]).await;
    answer(
        &app,
        "hello-world",
        ResponseTemplate::new(422).set_body_json(json!({"message": "name is required"})),
    )
    .await;
    let (status, body) = call(&app, "hello-world", Some(&user_token(USER_A))).await;
    assert_eq!((status, error_code(&body)), (422, "function_rejected"));
    assert_eq!(
        body["details"],
        json!({"status": 422, "body": {"message": "name is required"}})
    );
}

#[tokio::test]
async fn function_failures_relay_errors_and_unavailability_map_to_5xx() {
    let cases = [
        (
            ResponseTemplate::new(500).set_body_string("boom"),
            502,
            "function_failed",
        ),
        (
            ResponseTemplate::new(500)
                .insert_header("x-relay-error", "true")
                .set_body_string("relay"),
            502,
            "upstream_error",
        ),
        (
            ResponseTemplate::new(200).insert_header("x-relay-error", "true"),
            502,
            "upstream_error",
        ),
        (ResponseTemplate::new(503), 503, "upstream_unavailable"),
        (ResponseTemplate::new(504), 504, "upstream_timeout"),
        (
            ResponseTemplate::new(401)
                .set_body_json(json!({"code": 401, "message": "Invalid JWT"})),
            401,
            "invalid_token",
        ),
    ];
    for (i, (template, want_status, want_code)) in cases.into_iter().enumerate() {
        let app = app_with(&["hello-world"]).await;
        answer(&app, "hello-world", template).await;
        let (status, body) = call(&app, "hello-world", Some(&user_token(USER_A))).await;
        assert_eq!(
            (status, error_code(&body)),
            (want_status, want_code),
            "case {i}: {body}"
        );
        assert!(!body.to_string().contains("boom") && !body.to_string().contains("relay"));
    }
}

#[tokio::test]
async fn a_function_that_does_not_answer_within_its_timeout_is_504() {
    let app = app_with(&["slow"]).await;
    answer(
        &app,
        "slow",
        ResponseTemplate::new(200).set_delay(Duration::from_secs(5)),
    )
    .await;
    let (status, body) = call(&app, "slow", Some(&user_token(USER_A))).await;
    assert_eq!((status, error_code(&body)), (504, "upstream_timeout"));
}
