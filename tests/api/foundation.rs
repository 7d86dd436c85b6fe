//! Foundation behaviour: health, readiness, request ids, JSON errors, upstream failures,
//! configuration and shutdown.

use crate::support::*;

#[tokio::test]
async fn health_answers_ok_without_calling_supabase() {
    let app = TestApp::spawn().await;
    let (status, body) = json_of(app.get("/health").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    // The background JWKS load at start-up is the only upstream traffic allowed.
    assert!(app
        .upstream_requests()
        .await
        .iter()
        .all(|r| r.url.path() == JWKS_PATH));
}
