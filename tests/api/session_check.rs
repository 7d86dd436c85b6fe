//! `auth.check_session_routes`: on the listed operations the token's session must still exist
//! at Auth (`GET /auth/v1/user`), confirmed at most once per `auth.session_check_secs`, and
//! forgotten at once by a logout, a password change or a user deletion through supagate.

use serde_json::json;
use supagate::config::Settings;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, ResponseTemplate};

use super::support::{
    error_code, item_row, json_of, test_settings, user_token, TestApp, ITEM_ID, USER_A,
};

const ITEM_ROUTE: &str = "GET /api/items/{id}";

fn checked(s: &mut Settings) {
    s.auth.check_session_routes = vec![ITEM_ROUTE.into()];
}

/// Auth's answer for a token whose session (or user) is gone.
fn auth_403(code: &str) -> ResponseTemplate {
    ResponseTemplate::new(403).set_body_json(json!({
        "code": 403, "error_code": code, "msg": "Session from session_id claim in JWT does not exist"
    }))
}

fn auth_user_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"id": USER_A, "factors": []}))
}

async fn spawn() -> TestApp {
    let app = TestApp::spawn_with(checked).await;
    Mock::given(method("GET"))
        .and(path("/rest/v1/items"))
        .respond_with(ResponseTemplate::new(200).set_body_json(item_row(ITEM_ID, USER_A)))
        .mount(&app.upstream)
        .await;
    app
}

async fn mount_user(app: &TestApp, answer: ResponseTemplate, times: Option<u64>) {
    let mock = Mock::given(method("GET"))
        .and(path("/auth/v1/user"))
        .respond_with(answer);
    let mock = match times {
        Some(n) => mock.up_to_n_times(n),
        None => mock,
    };
    mock.mount(&app.upstream).await;
}

async fn get_item(app: &TestApp) -> (u16, serde_json::Value) {
    json_of(
        app.get(&format!("/api/items/{ITEM_ID}"))
            .bearer_auth(user_token(USER_A))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn count(app: &TestApp, http_method: &str, p: &str) -> usize {
    app.upstream
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == http_method && r.url.path() == p)
        .count()
}

#[tokio::test]
async fn a_revoked_session_is_401_session_expired_on_a_listed_route_and_nothing_is_forwarded() {
    let app = spawn().await;
    mount_user(&app, auth_403("session_not_found"), None).await;
    let (status, body) = get_item(&app).await;
    assert_eq!((status, error_code(&body)), (401, "session_expired"));
    assert_eq!(count(&app, "GET", "/rest/v1/items").await, 0);
    let asked = app
        .upstream
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/auth/v1/user")
        .unwrap();
    assert_eq!(
        asked.headers["authorization"].to_str().unwrap(),
        format!("Bearer {}", user_token(USER_A)),
        "Auth is asked with the caller's own token"
    );
}

#[tokio::test]
async fn a_deleted_user_is_401_session_expired_on_a_listed_route() {
    let app = spawn().await;
    mount_user(&app, auth_403("user_not_found"), None).await;
    let (status, body) = get_item(&app).await;
    assert_eq!((status, error_code(&body)), (401, "session_expired"));
}

#[tokio::test]
async fn a_confirmed_session_is_asked_once_within_the_bound() {
    let app = spawn().await;
    mount_user(&app, auth_user_ok(), None).await;
    for _ in 0..3 {
        assert_eq!(get_item(&app).await.0, 200);
    }
    assert_eq!(count(&app, "GET", "/auth/v1/user").await, 1);
    assert_eq!(count(&app, "GET", "/rest/v1/items").await, 3);
}

#[tokio::test]
async fn routes_not_listed_never_ask_auth() {
    let app = spawn().await;
    mount_user(&app, auth_403("session_not_found"), None).await;
    let res = app
        .get("/api/items")
        .bearer_auth(user_token(USER_A))
        .send()
        .await
        .unwrap();
    assert_ne!(res.status(), 401);
    assert_eq!(count(&app, "GET", "/auth/v1/user").await, 0);
}

#[tokio::test]
async fn auth_unreachable_fails_closed_with_a_5xx() {
    let app = spawn().await;
    mount_user(&app, ResponseTemplate::new(500), None).await;
    let (status, _) = get_item(&app).await;
    assert!((502..=504).contains(&status), "{status}");
    assert_eq!(count(&app, "GET", "/rest/v1/items").await, 0);
}

/// Confirms the session once, then makes Auth say it is gone: only a forgotten confirmation
/// can turn the next request into a 401.
async fn confirmed_then_revoked(app: &TestApp) {
    mount_user(app, auth_user_ok(), Some(1)).await;
    mount_user(app, auth_403("session_not_found"), None).await;
    assert_eq!(get_item(app).await.0, 200);
    assert_eq!(get_item(app).await.0, 200, "still the cached confirmation");
}

/// `action` (answered `want`) made the confirmation go: the next request asks Auth again.
async fn forgotten_after(app: &TestApp, action: reqwest::RequestBuilder, want: u16) {
    let res = action.bearer_auth(user_token(USER_A)).send().await.unwrap();
    assert_eq!(res.status(), want);
    let (status, body) = get_item(app).await;
    assert_eq!((status, error_code(&body)), (401, "session_expired"));
}

#[tokio::test]
async fn logout_through_supagate_forgets_the_confirmation_at_once() {
    let app = spawn().await;
    confirmed_then_revoked(&app).await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/logout"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&app.upstream)
        .await;
    forgotten_after(&app, app.post("/api/auth/logout"), 204).await;
}

#[tokio::test]
async fn a_password_change_through_supagate_forgets_the_confirmation_at_once() {
    let app = spawn().await;
    confirmed_then_revoked(&app).await;
    Mock::given(method("PUT"))
        .and(path("/auth/v1/user"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": USER_A})))
        .mount(&app.upstream)
        .await;
    let change = app
        .put("/api/auth/user")
        .json(&json!({"password": "a new long password"}));
    forgotten_after(&app, change, 200).await;
}

#[tokio::test]
async fn deleting_the_user_through_supagate_forgets_the_confirmation_at_once() {
    let app = spawn().await;
    confirmed_then_revoked(&app).await;
    Mock::given(method("DELETE"))
        .and(path_regex("^/auth/v1/admin/users/.+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&app.upstream)
        .await;
    forgotten_after(&app, app.delete(&format!("/api/users/{USER_A}")), 204).await;
}

#[test]
fn a_check_session_route_supagate_does_not_serve_stops_start_up_naming_the_setting() {
    let mut settings = test_settings("http://127.0.0.1:9");
    settings.auth.check_session_routes = vec!["GET /api/nowhere".into()];
    let err = supagate::server::check(&settings).err().expect("refused");
    assert_eq!(err.setting, "auth.check_session_routes");
}
