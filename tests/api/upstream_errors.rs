//! The same upstream answer gets the same client answer on every route: PostgREST's 401/403
//! on the billing read, a bodyless HEAD count failure, and a webhook write refused for good.

use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::*;

const USER: &str = "4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90";

async fn subscription_read_answers(app: &TestApp, response: ResponseTemplate) {
    mock_rest(app, "GET", "subscriptions", response).await;
}

#[tokio::test]
async fn billing_answers_401_when_postgrest_rejects_the_token() {
    let app = TestApp::spawn().await;
    subscription_read_answers(&app, pg_error(401, "PGRST303")).await;
    let res = app
        .get("/api/billing/subscription")
        .bearer_auth(user_token(USER))
        .send()
        .await
        .unwrap();
    assert!(res.headers().contains_key("www-authenticate"));
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_token"));
}

#[tokio::test]
async fn billing_answers_403_when_postgrest_denies_the_read() {
    let app = TestApp::spawn().await;
    subscription_read_answers(&app, pg_error(403, "42501")).await;
    let (status, body) = json_of(
        app.get("/api/billing/subscription")
            .bearer_auth(user_token(USER))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"));
}

/// A page past the end (PostgREST: 416) is answered from a HEAD count; PostgREST answers a
/// failing HEAD with no body, the code in `Proxy-Status`.
async fn past_the_end_count_answers(
    app: &TestApp,
    response: ResponseTemplate,
) -> (u16, serde_json::Value) {
    mock_rest(app, "GET", "items", pg_error(416, "PGRST103")).await;
    mock_rest(app, "HEAD", "items", response).await;
    let res = app
        .get("/api/items?offset=40")
        .bearer_auth(user_token(USER))
        .send()
        .await
        .unwrap();
    let answer = json_of(res).await;
    let sent = app.upstream_requests().await;
    assert!(sent.iter().any(|r| r.method.as_str() == "HEAD"), "counted");
    answer
}

#[tokio::test]
async fn an_expired_token_on_a_bodyless_count_is_401_from_proxy_status() {
    let app = TestApp::spawn().await;
    let refused = ResponseTemplate::new(401)
        .insert_header("proxy-status", "PostgREST; error=PGRST303")
        .insert_header("www-authenticate", "Bearer error=\"invalid_token\"");
    let (status, body) = past_the_end_count_answers(&app, refused).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_token"));
}

#[tokio::test]
async fn a_bodyless_count_failure_without_proxy_status_is_mapped_by_its_status() {
    let app = TestApp::spawn().await;
    let (status, body) = past_the_end_count_answers(&app, ResponseTemplate::new(403)).await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"));
}

#[tokio::test]
async fn a_webhook_write_refused_for_good_is_502_counted_as_permanent_and_not_recorded() {
    let app = TestApp::spawn().await;
    let _fake = FakeBilling::mount(&app).await;
    Mock::given(method("POST"))
        .and(path("/rest/v1/rpc/link_stripe_customer"))
        .respond_with(pg_error(409, "23505"))
        .with_priority(1)
        .mount(&app.upstream)
        .await;
    let payload = stripe_event("checkout_session_completed")["payload"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = json_of(app.deliver_signed(&payload).await).await;
    assert_eq!((status, error_code(&body)), (502, "upstream_error"));
    assert!(app
        .requests_to("POST", "/rest/v1/rpc/record_webhook_event")
        .await
        .is_empty());
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(
            r#"supagate_webhook_events_total{event_type="checkout.session.completed",outcome="permanent_error"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_webhook_write_during_an_outage_is_503_and_counted_as_an_error() {
    let app = TestApp::spawn().await;
    let fake = FakeBilling::mount(&app).await;
    fake.fail_next("/rest/v1/rpc/link_stripe_customer", 1);
    let payload = stripe_event("checkout_session_completed")["payload"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = json_of(app.deliver_signed(&payload).await).await;
    assert_eq!((status, error_code(&body)), (503, "upstream_unavailable"));
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(
            r#"supagate_webhook_events_total{event_type="checkout.session.completed",outcome="error"} 1"#
        ),
        "{metrics}"
    );
}
