//! `/metrics`: Prometheus exposition by route template, optionally on its own listener.

use crate::support::*;

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_status() {
    let app = TestApp::spawn().await;
    app.get("/health").send().await.unwrap();
    app.get("/no/such/thing").send().await.unwrap();
    let res = app.get("/metrics").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("openmetrics-text"));
    let text = res.text().await.unwrap();
    assert!(
        text.contains(r#"supagate_http_requests_total{method="GET",route="/health",status="200"}"#),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(text.contains("supagate_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn upstream_calls_are_counted_by_upstream_and_outcome() {
    let app = TestApp::spawn().await;
    // No mocks: wiremock answers 404 to both readiness probes.
    app.get("/ready").send().await.unwrap();
    let text = app.metrics_text().await;
    assert!(
        text.contains(r#"supagate_upstream_requests_total{upstream="auth",outcome="http_4xx"}"#),
        "{text}"
    );
    assert!(text.contains(r#"upstream="rest",outcome="http_4xx""#));
}

#[tokio::test]
async fn a_separate_metrics_listener_keeps_metrics_off_the_public_port() {
    let upstream = wiremock::MockServer::start().await;
    let mut settings = test_settings(&upstream.uri());
    settings.metrics.listen = "127.0.0.1:0".into();
    let app = supagate::server::Application::build(settings).unwrap();
    let public = format!("http://127.0.0.1:{}", app.port());
    let private = format!("http://127.0.0.1:{}", app.metrics_port().unwrap());
    tokio::spawn(app.run());
    let res = reqwest::get(format!("{public}/metrics")).await.unwrap();
    assert_eq!(res.status(), 404);
    let res = reqwest::get(format!("{private}/metrics")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("supagate_http_requests"));
}

fn metrics_line_value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn metrics_text(app: &TestApp) -> String {
    app.metrics_text().await
}

#[tokio::test]
async fn jwks_fetches_are_counted_by_outcome() {
    let app = TestApp::spawn_with_mocks(vec![jwks_mock("jwks_initial")], |_| {}).await;
    let ok = r#"supagate_jwks_refreshes_total{outcome="ok"}"#;
    // An ES256 token makes the verifier load the key set (if the background task has not).
    app.get("/api/auth/user")
        .bearer_auth(fixture_token("valid_es256"))
        .send()
        .await
        .unwrap();
    assert!(metrics_line_value(&metrics_text(&app).await, ok) >= 1.0);

    // A Supabase whose JWKS endpoint fails is counted as an error.
    let broken = TestApp::spawn().await;
    broken
        .get("/api/auth/user")
        .bearer_auth(fixture_token("valid_es256"))
        .send()
        .await
        .unwrap();
    let text = metrics_text(&broken).await;
    assert!(
        metrics_line_value(&text, r#"supagate_jwks_refreshes_total{outcome="error"}"#) >= 1.0,
        "{text}"
    );
}

#[tokio::test]
async fn webhook_deliveries_are_counted_by_type_and_outcome() {
    let app = TestApp::spawn().await;
    let forged = app
        .post("/api/webhooks/stripe")
        .header("content-type", "application/json")
        .header("stripe-signature", "t=1,v1=00")
        .body(r#"{"id":"evt_1","object":"event","type":"invoice.paid","created":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    let payload = r#"{"id":"evt_metrics_1","object":"event","type":"invoice.paid","created":1,"data":{"object":{}}}"#;
    let signed = app
        .post("/api/webhooks/stripe")
        .header("content-type", "application/json")
        .header(
            "stripe-signature",
            stripe_header(payload.as_bytes(), STRIPE_SECRET, unix_now()),
        )
        .body(payload)
        .send()
        .await
        .unwrap();
    // No mocks: the idempotency lookup fails upstream, so the delivery is not acknowledged.
    assert!(signed.status().is_server_error(), "{}", signed.status());
    let text = metrics_text(&app).await;
    assert!(
        text.contains(
            r#"supagate_webhook_events_total{event_type="unverified",outcome="invalid_signature"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"supagate_webhook_events_total{event_type="invoice.paid",outcome="error"}"#
        ),
        "{text}"
    );
}
