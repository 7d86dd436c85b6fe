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
    let text = app
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
