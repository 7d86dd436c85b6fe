//! `GET /api/billing/subscription`: the caller's subscription, read with the caller's token.

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::*;

const USER: &str = "4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90";

async fn with_rows(rows: serde_json::Value) -> TestApp {
    let app = TestApp::spawn().await;
    Mock::given(method("GET"))
        .and(path("/rest/v1/subscriptions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(rows))
        .mount(&app.upstream)
        .await;
    app
}

#[tokio::test]
async fn an_active_subscription_is_returned() {
    let app = with_rows(json!([{
        "status": "active", "price_id": "price_pro",
        "current_period_end": "2026-02-01T00:00:00+00:00", "cancel_at_period_end": false
    }]))
    .await;
    let res = app
        .get("/api/billing/subscription")
        .bearer_auth(user_token(USER))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "active", "price_id": "price_pro",
               "current_period_end": "2026-02-01T00:00:00+00:00", "cancel_at_period_end": false})
    );
}

#[tokio::test]
async fn no_subscription_is_status_none() {
    let app = with_rows(json!([])).await;
    let res = app
        .get("/api/billing/subscription")
        .bearer_auth(user_token(USER))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(res).await, (200, json!({"status": "none"})));
}

#[tokio::test]
async fn the_read_uses_the_users_token_never_the_secret_key() {
    let app = with_rows(json!([])).await;
    let token = user_token(USER);
    app.get("/api/billing/subscription")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let calls = app.upstream_requests().await;
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(
        call.headers.get("authorization").unwrap(),
        &format!("Bearer {token}")
    );
    assert_eq!(call.headers.get("apikey").unwrap(), ANON_KEY);
    assert!(!format!("{:?}", call.headers).contains(SERVICE_KEY));
    let query: Vec<(String, String)> = call.url.query_pairs().into_owned().collect();
    assert!(
        query.contains(&("user_id".into(), format!("eq.{USER}"))),
        "{query:?}"
    );
}

#[tokio::test]
async fn signing_in_is_required() {
    let app = with_rows(json!([])).await;
    let (status, body) = json_of(app.get("/api/billing/subscription").send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&body), "unauthorized");
    assert!(app.upstream_requests().await.is_empty());
}
