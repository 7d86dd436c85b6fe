//! Sign-in flows beyond the password: anonymous users and their conversion. Auth
//! and PostgREST are wiremock; each test checks what supagate sends as well as what it answers.

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::*;

const COOKIE: &str = "sb-127-auth-token";

/// An HS256 token of an anonymous sign-in (`is_anonymous: true`), as Auth mints it.
fn anonymous_token(sub: &str) -> String {
    let mut claims = user_claims(sub);
    claims["is_anonymous"] = json!(true);
    claims["email"] = json!("");
    claims["app_metadata"] = json!({"provider": "anonymous", "providers": ["anonymous"]});
    claims["amr"] = json!([{"method": "anonymous", "timestamp": unix_now()}]);
    mint_hs256(&claims)
}

fn anonymous_session(sub: &str) -> Value {
    json!({"access_token": anonymous_token(sub), "token_type": "bearer", "expires_in": 3600,
           "expires_at": unix_now() + 3600, "refresh_token": "anon-refresh",
           "user": {"id": sub, "aud": "authenticated", "role": "authenticated", "email": "",
                    "is_anonymous": true, "app_metadata": {"provider": "anonymous"}}})
}

fn signup_mock(answer: ResponseTemplate) -> Mock {
    Mock::given(method("POST"))
        .and(path("/auth/v1/signup"))
        .respond_with(answer)
}

// ---- anonymous sign-in ----

#[tokio::test]
async fn anonymous_sign_in_signs_up_without_credentials_and_writes_the_cookie_session() {
    let app = TestApp::spawn_with_mocks(
        vec![signup_mock(
            ResponseTemplate::new(200).set_body_json(anonymous_session(USER_A)),
        )],
        |s| {
            s.cookies.enabled = true;
            s.cookies.secure = Some(false);
        },
    )
    .await;
    let res = app
        .post("/api/auth/anonymous")
        .json(&json!({"data": {"theme": "dark"}}))
        .send()
        .await
        .unwrap();
    let cookies: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        res.headers()["cache-control"],
        "private, no-cache, no-store, must-revalidate, max-age=0"
    );
    let (status, body) = json_of(res).await;
    assert_eq!(status, 200);
    assert_eq!(body["user"]["is_anonymous"], true);
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with(&format!("{COOKIE}=base64-"))),
        "{cookies:?}"
    );

    let requests = app.upstream_requests().await;
    let signup = requests_to(&requests, "/auth/v1/signup");
    assert_eq!(signup.len(), 1);
    // auth-js signInAnonymously: no email, no phone, no password; only `data`.
    assert_eq!(body_json(signup[0]), json!({"data": {"theme": "dark"}}));
    assert_sent_anonymously(signup[0]);
    assert_eq!(header_of(signup[0], "sb-forwarded-for"), Some("127.0.0.1"));
}

#[tokio::test]
async fn anonymous_sign_in_without_a_body_sends_empty_data() {
    let app = TestApp::spawn_with_mocks(
        vec![signup_mock(
            ResponseTemplate::new(200).set_body_json(anonymous_session(USER_A)),
        )],
        |_| {},
    )
    .await;
    let res = app.post("/api/auth/anonymous").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let requests = app.upstream_requests().await;
    let signup = requests_to(&requests, "/auth/v1/signup");
    assert_eq!(body_json(signup[0]), json!({"data": {}}));
}

#[tokio::test]
async fn anonymous_sign_in_refuses_a_body_that_is_not_an_object() {
    let app = TestApp::spawn().await;
    for body in ["null", "[]", "\"x\""] {
        let res = app
            .post("/api/auth/anonymous")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, answer) = json_of(res).await;
        assert_eq!(
            (status, error_code(&answer)),
            (400, "validation_failed"),
            "{body}"
        );
    }
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn anonymous_sign_in_disabled_in_auth_is_403_provider_disabled() {
    let app = TestApp::spawn_with_mocks(
        vec![signup_mock(ResponseTemplate::new(422).set_body_json(
            json!({"code": "anonymous_provider_disabled", "message": "Anonymous sign-ins are disabled"}),
        ))],
        |_| {},
    )
    .await;
    let (status, body) = json_of(app.post("/api/auth/anonymous").send().await.unwrap()).await;
    assert_eq!((status, error_code(&body)), (403, "provider_disabled"));
}

#[tokio::test]
async fn anonymous_sign_in_refuses_oversized_metadata_before_calling_auth() {
    let app = TestApp::spawn().await;
    let big = "x".repeat(5000);
    let (status, body) = json_of(
        app.post("/api/auth/anonymous")
            .json(&json!({"data": {"note": big}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_field_error(&body, "data");
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn auths_429_on_anonymous_sign_in_is_429_with_retry_after() {
    let app = TestApp::spawn_with_mocks(
        vec![signup_mock(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "120")
                .set_body_json(json!({"code": "over_request_rate_limit", "message": "slow"})),
        )],
        |_| {},
    )
    .await;
    let res = app.post("/api/auth/anonymous").send().await.unwrap();
    assert_eq!(res.headers()["retry-after"], "120");
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (429, "rate_limited"));
}

// ---- what an anonymous user may do ----

#[tokio::test]
async fn an_anonymous_user_reads_items_like_a_signed_in_user() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "GET",
        "items",
        pg_list(json!([item_row(ITEM_ID, USER_B)]), "0-0/1"),
    )
    .await;
    let token = anonymous_token(USER_A);
    let res = app
        .get("/api/items")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let requests = app.upstream_requests().await;
    assert_sent_as_user(&requests[0], &token);
}

#[tokio::test]
async fn an_anonymous_user_writing_is_403_anonymous_not_allowed_and_nothing_is_sent() {
    let app = TestApp::spawn().await;
    let token = anonymous_token(USER_A);
    let item = json!({"name": "Mug", "price": 12.5});
    for req in [
        app.post("/api/items").json(&item),
        app.put(&format!("/api/items/{ITEM_ID}")).json(&item),
        app.patch(&format!("/api/items/{ITEM_ID}"))
            .json(&json!({"name": "Cup"})),
        app.delete(&format!("/api/items/{ITEM_ID}")),
        app.put(&format!("/api/users/{USER_A}"))
            .json(&json!({"username": "guest", "full_name": "Guest"})),
        app.delete(&format!("/api/users/{USER_A}")),
    ] {
        let res = req.bearer_auth(&token).send().await.unwrap();
        let url = res.url().clone();
        let (status, body) = json_of(res).await;
        assert_eq!(
            (status, error_code(&body)),
            (403, "anonymous_not_allowed"),
            "{url}"
        );
    }
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn allow_anonymous_writes_lets_an_anonymous_user_create_items_under_the_free_plan() {
    let app = TestApp::spawn_with(|s| s.business.allow_anonymous_writes = true).await;
    mock_rest(
        &app,
        "GET",
        "subscriptions",
        ResponseTemplate::new(200).set_body_json(json!([])),
    )
    .await;
    mock_rest(
        &app,
        "HEAD",
        "items",
        ResponseTemplate::new(200).insert_header("content-range", "*/0"),
    )
    .await;
    mock_rest(
        &app,
        "POST",
        "items",
        ResponseTemplate::new(201).set_body_json(item_row(ITEM_ID, USER_A)),
    )
    .await;
    let token = anonymous_token(USER_A);
    let res = app
        .post("/api/items")
        .bearer_auth(&token)
        .json(&json!({"name": "Mug", "price": 12.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let requests = app.upstream_requests().await;
    let insert = requests
        .iter()
        .find(|r| r.method.as_str() == "POST")
        .expect("insert sent");
    // Still the caller's own token: RLS decides too (private.settings must agree).
    assert_sent_as_user(insert, &token);
    assert_eq!(body_json(insert)["user_id"], USER_A);
}

#[tokio::test]
async fn an_anonymous_user_has_no_billing_even_when_anonymous_writes_are_allowed() {
    let app = TestApp::spawn_with(|s| s.business.allow_anonymous_writes = true).await;
    let (status, body) = json_of(
        app.get("/api/billing/subscription")
            .bearer_auth(anonymous_token(USER_A))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, error_code(&body)), (403, "anonymous_not_allowed"));
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn is_anonymous_is_read_from_the_verified_token_only() {
    // A token whose *user_metadata* says is_anonymous=false while the claim says true is
    // anonymous; one whose user_metadata says true while the claim is false is not.
    let app = TestApp::spawn().await;
    let mut claims = user_claims(USER_A);
    claims["is_anonymous"] = json!(true);
    claims["user_metadata"]["is_anonymous"] = json!(false);
    let (status, body) = json_of(
        app.delete(&format!("/api/items/{ITEM_ID}"))
            .bearer_auth(mint_hs256(&claims))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, error_code(&body)), (403, "anonymous_not_allowed"));

    mock_rest(
        &app,
        "GET",
        "subscriptions",
        ResponseTemplate::new(200).set_body_json(json!([])),
    )
    .await;
    let mut claims = user_claims(USER_A);
    claims["user_metadata"]["is_anonymous"] = json!(true);
    let res = app
        .get("/api/billing/subscription")
        .bearer_auth(mint_hs256(&claims))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

// ---- conversion: PUT /api/auth/user ----

fn update_user_mock(answer: ResponseTemplate) -> Mock {
    Mock::given(method("PUT"))
        .and(path("/auth/v1/user"))
        .respond_with(answer)
}

#[tokio::test]
async fn converting_an_anonymous_user_sends_email_and_password_to_auth_and_keeps_the_id() {
    let converted = json!({"id": USER_A, "aud": "authenticated", "role": "authenticated",
        "email": "", "new_email": "ann@example.com", "is_anonymous": true,
        "email_change_sent_at": "2025-06-01T00:00:00Z"});
    let app = TestApp::spawn_with_mocks(
        vec![update_user_mock(
            ResponseTemplate::new(200).set_body_json(converted.clone()),
        )],
        |_| {},
    )
    .await;
    let token = anonymous_token(USER_A);
    let res = app
        .put("/api/auth/user")
        .bearer_auth(&token)
        .json(&json!({"email": "ann@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], USER_A);
    assert_eq!(body, converted);

    let requests = app.upstream_requests().await;
    let put = requests_to(&requests, "/auth/v1/user");
    assert_eq!(put.len(), 1);
    assert_sent_as_user(put[0], &token);
    assert_eq!(header_of(put[0], "sb-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(
        body_json(put[0]),
        json!({"email": "ann@example.com", "password": "correct horse battery"})
    );
}

#[tokio::test]
async fn an_anonymous_user_setting_a_password_without_an_email_is_told_which_field_is_missing() {
    let app = TestApp::spawn().await;
    let (status, body) = json_of(
        app.put("/api/auth/user")
            .bearer_auth(anonymous_token(USER_A))
            .json(&json!({"password": "correct horse battery"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_field_error(&body, "email");
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn converting_to_an_address_that_has_an_account_is_409() {
    let app = TestApp::spawn_with_mocks(
        vec![update_user_mock(ResponseTemplate::new(422).set_body_json(
            json!({"code": "email_exists", "message": "A user with this email address has already been registered"}),
        ))],
        |_| {},
    )
    .await;
    let (status, body) = json_of(
        app.put("/api/auth/user")
            .bearer_auth(anonymous_token(USER_A))
            .json(&json!({"email": "taken@example.com"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, error_code(&body)), (409, "user_already_exists"));
}

#[tokio::test]
async fn update_user_needs_a_field_and_a_signed_in_caller() {
    let app = TestApp::spawn().await;
    let (status, _) = json_of(
        app.put("/api/auth/user")
            .json(&json!({"email": "ann@example.com"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = json_of(
        app.put("/api/auth/user")
            .bearer_auth(user_token(USER_A))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["details"]["formErrors"][0],
        "At least one field is required"
    );
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn the_anonymous_route_has_a_per_ip_rate_limit_by_default() {
    let app = TestApp::spawn_with_mocks(
        vec![signup_mock(
            ResponseTemplate::new(200).set_body_json(anonymous_session(USER_A)),
        )],
        |_| {},
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..11 {
        statuses.push(
            app.post("/api/auth/anonymous")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses[..10], [200; 10]);
    assert_eq!(statuses[10], 429);
}

// ---- one-time codes and magic links ----

fn session_of(sub: &str) -> Value {
    json!({"access_token": user_token(sub), "token_type": "bearer", "expires_in": 3600,
           "expires_at": unix_now() + 3600, "refresh_token": "otp-refresh",
           "user": {"id": sub, "email": "ann@example.com"}})
}

fn auth_mock(verb: &str, route: &str, answer: ResponseTemplate) -> Mock {
    Mock::given(method(verb))
        .and(path(format!("/auth/v1{route}")))
        .respond_with(answer)
}

/// An instance whose Auth answers `POST /auth/v1<route>` with `answer`.
async fn auth_app(
    route: &str,
    answer: ResponseTemplate,
    tweak: impl FnOnce(&mut supagate::config::Settings),
) -> TestApp {
    TestApp::spawn_with_mocks(vec![auth_mock("POST", route, answer)], tweak).await
}

/// Cookie sessions on; Auth's `/verify` answers a session for `USER_A`.
async fn verifying_app() -> TestApp {
    auth_app(
        "/verify",
        ResponseTemplate::new(200).set_body_json(session_of(USER_A)),
        cookie_settings,
    )
    .await
}

fn cookie_settings(s: &mut supagate::config::Settings) {
    s.cookies.enabled = true;
    s.cookies.secure = Some(false);
}

fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

async fn only_auth_call(app: &TestApp, route: &str) -> wiremock::Request {
    let requests = app.upstream_requests().await;
    let calls = requests_to(&requests, &format!("/auth/v1{route}"));
    assert_eq!(calls.len(), 1, "{route}");
    let call = calls[0].clone();
    assert_sent_anonymously(&call);
    assert_eq!(header_of(&call, "sb-forwarded-for"), Some("127.0.0.1"));
    call
}

#[tokio::test]
async fn an_email_otp_is_sent_as_auth_js_sends_it() {
    let app = auth_app(
        "/otp",
        ResponseTemplate::new(200).set_body_json(json!({})),
        |_| {},
    )
    .await;
    let res = app
        .post("/api/auth/otp")
        .json(&json!({"email": "ann@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let call = only_auth_call(&app, "/otp").await;
    assert_eq!(
        body_json(&call),
        json!({"email": "ann@example.com", "create_user": true, "data": {}})
    );
}

/// With `create_user: false`, Auth answers an address without an account 422
/// `otp_disabled` and one with an account `{}`. supagate answers both alike, so the route
/// cannot be used to learn who has an account.
#[tokio::test]
async fn otp_without_create_user_answers_an_unknown_address_exactly_as_a_known_one() {
    let unknown = ResponseTemplate::new(422)
        .set_body_json(json!({"code": "otp_disabled", "message": "Signups not allowed for otp"}));
    let mut answers = Vec::new();
    for (address, auth) in [
        (
            "known@example.com",
            ResponseTemplate::new(200).set_body_json(json!({})),
        ),
        ("nobody@example.com", unknown),
    ] {
        let app = TestApp::spawn_with_mocks(
            vec![Mock::given(method("POST"))
                .and(path("/auth/v1/otp"))
                .respond_with(auth)],
            |_| {},
        )
        .await;
        let res = app
            .post("/api/auth/otp")
            .json(&json!({"email": address, "create_user": false}))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let mut headers: Vec<String> = res
            .headers()
            .iter()
            .map(|(k, _)| k.as_str().to_owned())
            .filter(|k| !matches!(k.as_str(), "date" | "x-request-id" | "traceparent"))
            .collect();
        headers.sort();
        answers.push((status, headers, res.text().await.unwrap()));
    }
    assert_eq!(answers[0].0, 200);
    assert_eq!(answers[0], answers[1]);
}

/// Phone numbers are read as Auth reads them (one leading `+` and spaces dropped, then
/// `^[1-9][0-9]{1,14}$`), and sent in one spelling.
#[tokio::test]
async fn phone_numbers_are_normalised_and_checked_as_auth_does() {
    let app = TestApp::spawn_with_mocks(
        vec![Mock::given(method("POST"))
            .and(path("/auth/v1/otp"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))],
        |s| s.rate_limit.enabled = false,
    )
    .await;
    for (given, sent) in [
        ("+1 415 555 0123", "+14155550123"),
        ("14155550123", "+14155550123"),
        ("+49 30 1234", "+49301234"),
    ] {
        let res = app
            .post("/api/auth/otp")
            .json(&json!({"phone": given}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{given}");
        let calls = app.requests_to("POST", "/auth/v1/otp").await;
        assert_eq!(body_json(calls.last().unwrap())["phone"], sent, "{given}");
    }
    for refused in [
        "+0123456789",
        "+1-415-555-0123",
        "(415) 5550123",
        "+1234567890123456",
        "+1",
    ] {
        let res = app
            .post("/api/auth/otp")
            .json(&json!({"phone": refused}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{refused}");
    }
}

#[tokio::test]
async fn a_phone_otp_names_its_channel_and_passes_the_message_id_on() {
    let app = auth_app(
        "/otp",
        ResponseTemplate::new(200).set_body_json(json!({"message_id": "SM123"})),
        |_| {},
    )
    .await;
    let (status, body) = json_of(
        app.post("/api/auth/otp")
            .json(&json!({"phone": "+14155550123", "channel": "whatsapp", "create_user": false}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (200, json!({"message_id": "SM123"})));
    let call = only_auth_call(&app, "/otp").await;
    assert_eq!(
        body_json(&call),
        json!({"phone": "+14155550123", "channel": "whatsapp", "create_user": false, "data": {}})
    );
}

#[tokio::test]
async fn an_otp_request_needs_exactly_one_address_and_nothing_reaches_auth_otherwise() {
    let app = TestApp::spawn().await;
    for body in [
        json!({}),
        json!({"email": "ann@example.com", "phone": "+14155550123"}),
        json!({"email": "ann@example.com", "channel": "sms"}),
    ] {
        let (status, answer) =
            json_of(app.post("/api/auth/otp").json(&body).send().await.unwrap()).await;
        assert_eq!(
            (status, error_code(&answer)),
            (400, "validation_failed"),
            "{body}"
        );
    }
    let (status, answer) = json_of(
        app.post("/api/auth/otp")
            .json(&json!({"phone": "call me", "email": null}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_field_error(&answer, "phone");
    assert!(app.upstream_requests().await.is_empty());
}

/// Auth sends no `Retry-After` for any of its limits. Where it states the wait in words
/// (a second mail to one recipient too soon), that wait is the `Retry-After`; where it does
/// not (the project's hourly mail quota), none is invented.
#[tokio::test]
async fn auths_mail_limits_are_429_with_retry_after_only_where_auth_states_the_wait() {
    for (message, want) in [
        (
            "For security purposes, you can only request this after 42 seconds.",
            Some("42"),
        ),
        ("email rate limit exceeded", None),
    ] {
        let app = auth_app(
            "/otp",
            ResponseTemplate::new(429)
                .set_body_json(json!({"code": "over_email_send_rate_limit", "message": message})),
            |_| {},
        )
        .await;
        let res = app
            .post("/api/auth/otp")
            .json(&json!({"email": "ann@example.com"}))
            .send()
            .await
            .unwrap();
        let retry_after = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(retry_after.as_deref(), want, "{message}");
        let (status, body) = json_of(res).await;
        assert_eq!((status, error_code(&body)), (429, "rate_limited"));
    }
}

#[tokio::test]
async fn verifying_an_emailed_code_answers_the_session_and_writes_the_cookie() {
    let app = verifying_app().await;
    let res = app
        .post("/api/auth/verify")
        .json(&json!({"type": "email", "email": "ann@example.com", "token": "123456"}))
        .send()
        .await
        .unwrap();
    let cookies = set_cookies(&res);
    let (status, body) = json_of(res).await;
    assert_eq!(status, 200);
    assert_eq!(body["refresh_token"], "otp-refresh");
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with(&format!("{COOKIE}=base64-"))),
        "{cookies:?}"
    );
    let call = only_auth_call(&app, "/verify").await;
    assert_eq!(
        body_json(&call),
        json!({"type": "email", "email": "ann@example.com", "token": "123456"})
    );
}

#[tokio::test]
async fn verifying_a_token_hash_sends_it_alone() {
    let app = auth_app(
        "/verify",
        ResponseTemplate::new(200).set_body_json(session_of(USER_A)),
        |_| {},
    )
    .await;
    let res = app
        .post("/api/auth/verify")
        .json(&json!({"type": "magiclink", "token_hash": "pkce_abc123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let call = only_auth_call(&app, "/verify").await;
    assert_eq!(
        body_json(&call),
        json!({"type": "magiclink", "token_hash": "pkce_abc123"})
    );
}

#[tokio::test]
async fn a_wrong_or_expired_code_is_401_otp_expired_with_www_authenticate() {
    let app = auth_app(
        "/verify",
        ResponseTemplate::new(403).set_body_json(
            json!({"code": "otp_expired", "message": "Token has expired or is invalid"}),
        ),
        cookie_settings,
    )
    .await;
    let res = app
        .post("/api/auth/verify")
        .json(&json!({"type": "sms", "phone": "+14155550123", "token": "000000"}))
        .send()
        .await
        .unwrap();
    assert!(res.headers().contains_key("www-authenticate"));
    assert!(set_cookies(&res).is_empty());
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (401, "otp_expired"));
}

#[tokio::test]
async fn verify_refuses_mismatched_combinations_before_calling_auth() {
    let app = TestApp::spawn().await;
    for body in [
        json!({"type": "email", "token": "123456"}),
        json!({"type": "email", "token": "1", "token_hash": "h", "email": "ann@example.com"}),
        json!({"type": "magiclink", "token_hash": "h", "email": "ann@example.com"}),
        json!({"type": "sms", "email": "ann@example.com", "token": "123456"}),
        json!({"type": "email", "phone": "+14155550123", "token": "123456"}),
        json!({"type": "bogus", "token_hash": "h"}),
        json!({"token_hash": "h"}),
    ] {
        let (status, answer) = json_of(
            app.post("/api/auth/verify")
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, error_code(&answer)),
            (400, "validation_failed"),
            "{body}"
        );
    }
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn the_email_link_verifies_writes_the_cookie_session_and_redirects_to_next() {
    let app = verifying_app().await;
    let res = app
        .get("/api/auth/confirm?token_hash=abc123&type=signup&next=%2Faccount%3Ftab%3Dwelcome")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/account?tab=welcome");
    assert!(set_cookies(&res)
        .iter()
        .any(|c| c.starts_with(&format!("{COOKIE}=base64-"))));
    let call = only_auth_call(&app, "/verify").await;
    assert_eq!(
        body_json(&call),
        json!({"type": "signup", "token_hash": "abc123"})
    );
}

#[tokio::test]
async fn the_email_link_without_next_goes_home() {
    let app = verifying_app().await;
    let res = app
        .get("/api/auth/confirm?token_hash=abc123&type=email")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/");
}

#[tokio::test]
async fn an_expired_email_link_is_401_and_writes_no_session() {
    let app = auth_app(
        "/verify",
        ResponseTemplate::new(403).set_body_json(
            json!({"code": "otp_expired", "message": "Email link is invalid or has expired"}),
        ),
        cookie_settings,
    )
    .await;
    let res = app
        .get("/api/auth/confirm?token_hash=old&type=recovery&next=/reset")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("location").is_none());
    assert!(set_cookies(&res).is_empty());
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (401, "otp_expired"));
}

/// `next` values a browser (or a framework decoding once more) could read as another origin.
/// Each is given as it would appear in the query string.
const OPEN_REDIRECTS: &[&str] = &[
    "https://evil.example",
    "https%3A%2F%2Fevil.example",
    "http://evil.example/account",
    "//evil.example",
    "%2F%2Fevil.example",
    "///evil.example",
    "/%2F%2Fevil.example",
    "/%252F%252Fevil.example",
    "/\\evil.example",
    "%2F%5Cevil.example",
    "/%5Cevil.example",
    "/%255Cevil.example",
    "\\\\evil.example",
    "%5C%5Cevil.example",
    "javascript:alert(1)",
    "javascript%3Aalert(1)",
    "evil.example",
    "/%09/evil.example",
    "%2F%09%2Fevil.example",
    "/account%0D%0ALocation:%20https://evil.example",
    "/account%250D%250ASet-Cookie:%20x=1",
    "%0D%0A/account",
    "/%E2%80%A8evil.example",
    "%20//evil.example",
];

/// Each of [`OPEN_REDIRECTS`] appended to `prefix` is 400 `fieldErrors.next`, with no
/// `Location`, no cookie written and nothing sent upstream.
async fn refuses_every_open_redirect(app: &TestApp, prefix: &str, cookie: Option<&str>) {
    for next in OPEN_REDIRECTS {
        let mut req = app.get(&format!("{prefix}{next}"));
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        let res = req.send().await.unwrap();
        assert!(res.headers().get("location").is_none(), "{next}");
        assert!(
            !set_cookies(&res).iter().any(|c| !c.contains("Max-Age=0")),
            "{next}"
        );
        let (status, body) = json_of(res).await;
        assert_eq!(status, 400, "{next}");
        assert_field_error(&body, "next");
    }
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn the_email_link_refuses_every_next_that_leaves_the_site_before_calling_auth() {
    let app = auth_app(
        "/verify",
        ResponseTemplate::new(200).set_body_json(session_of(USER_A)),
        |s| s.rate_limit.enabled = false,
    )
    .await;
    refuses_every_open_redirect(
        &app,
        "/api/auth/confirm?token_hash=abc&type=email&next=",
        None,
    )
    .await;
}

#[tokio::test]
async fn otp_and_verify_have_per_ip_rate_limits_by_default() {
    let app = TestApp::spawn().await;
    for (route, body) in [
        ("/api/auth/otp", json!({})),
        ("/api/auth/verify", json!({})),
    ] {
        let mut statuses = Vec::new();
        for _ in 0..11 {
            let res = app.post(route).json(&body).send().await.unwrap();
            statuses.push(res.status().as_u16());
        }
        assert_eq!(statuses[..10], [400; 10], "{route}");
        assert_eq!(statuses[10], 429, "{route}");
    }
    // The link shares the verify rule's bucket.
    let res = app
        .get("/api/auth/confirm?token_hash=abc&type=email")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
}

// ---- OAuth with PKCE ----

fn pkce_fixture() -> Value {
    fixture("pkce.json")
}

fn oauth_settings(s: &mut supagate::config::Settings) {
    cookie_settings(s);
    s.sign_in.oauth_providers = vec!["github".into()];
    s.sign_in.public_url = "http://localhost:3000".into();
}

async fn oauth_app(extra: Vec<Mock>) -> TestApp {
    TestApp::spawn_with_mocks(extra, oauth_settings).await
}

fn cookie_named<'a>(cookies: &'a [String], name: &str) -> Vec<&'a String> {
    cookies
        .iter()
        .filter(|c| c.starts_with(&format!("{name}=")))
        .collect()
}

/// The verifier inside a code-verifier cookie value, decoded as auth-js reads it back.
fn verifier_in(value: &str) -> String {
    use base64::Engine;
    let b64 = value
        .strip_prefix("base64-")
        .expect("base64- prefix, as ssr writes");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .unwrap();
    serde_json::from_slice::<String>(&json).expect("a JSON string, as auth-js stores it")
}

fn s256(verifier: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

#[tokio::test]
async fn oauth_start_redirects_to_authorize_with_the_s256_challenge_of_the_verifier_cookie() {
    let app = oauth_app(vec![]).await;
    let res = app
        .get("/api/auth/oauth/github?next=%2Faccount")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let cookies = set_cookies(&res);
    let location = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(
        format!(
            "{}/auth/v1/authorize",
            location.origin().ascii_serialization()
        ),
        format!("{}/auth/v1/authorize", app.upstream.uri())
    );
    assert_eq!(location.path(), "/auth/v1/authorize");
    let q: std::collections::HashMap<String, String> =
        location.query_pairs().into_owned().collect();
    assert_eq!(q["provider"], "github");
    // The flow id comes back on the callback, as auth-js's `appendPkceFlowIdToRedirects`.
    let flow_id = q["redirect_to"]
        .strip_prefix("http://localhost:3000/api/auth/callback?next=%2Faccount&sb_flow_id=")
        .unwrap_or_else(|| panic!("{}", q["redirect_to"]))
        .to_owned();
    assert!(flow_id.len() == 32 && flow_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(q["code_challenge_method"], "s256");
    // The three cookies current auth-js writes, in its order (from the real library's run):
    // the flow's slot, the index of pending flows, the single verifier.
    let ssr_names: Vec<String> = pkce_fixture()["sign_in_with_oauth"]["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    let ssr_flow = pkce_fixture()["sign_in_with_oauth"]["flow_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ours: Vec<String> = cookies
        .iter()
        .map(|c| c.split('=').next().unwrap().replace(&flow_id, &ssr_flow))
        .collect();
    assert_eq!(ours, ssr_names);
    let index = cookie_named(&cookies, &format!("{COOKIE}-flows-code-verifier"));
    let index = actix_web::cookie::Cookie::parse(index[0].as_str()).unwrap();
    let listed: Vec<String> = {
        use base64::Engine;
        let b64 = index.value().strip_prefix("base64-").unwrap();
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .unwrap();
        serde_json::from_slice(&json).unwrap()
    };
    assert_eq!(listed, std::slice::from_ref(&flow_id));

    // The cookie is named as @supabase/ssr names it (from the real library's run).
    let ssr_name = pkce_fixture()["sign_in_with_oauth"]["verifier_cookie"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(ssr_name, format!("{COOKIE}-code-verifier"));
    let written = cookie_named(&cookies, &ssr_name);
    assert_eq!(written.len(), 1, "{cookies:?}");
    let parsed = actix_web::cookie::Cookie::parse(written[0].as_str()).unwrap();
    assert_eq!(parsed.http_only(), Some(true));
    assert_eq!(parsed.path(), Some("/"));
    assert_eq!(parsed.same_site(), Some(actix_web::cookie::SameSite::Lax));
    assert_eq!(
        parsed.max_age(),
        Some(actix_web::cookie::time::Duration::seconds(600))
    );
    let verifier = verifier_in(parsed.value());
    assert_eq!(verifier.len(), 112);
    assert!(verifier
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(q["code_challenge"], s256(&verifier));
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn each_oauth_start_gets_its_own_verifier() {
    let app = oauth_app(vec![]).await;
    let mut verifiers = Vec::new();
    for _ in 0..2 {
        let res = app.get("/api/auth/oauth/github").send().await.unwrap();
        let cookies = set_cookies(&res);
        let c = actix_web::cookie::Cookie::parse(
            cookie_named(&cookies, &format!("{COOKIE}-code-verifier"))[0].clone(),
        )
        .unwrap();
        verifiers.push(verifier_in(c.value()));
    }
    assert_ne!(verifiers[0], verifiers[1]);
}

#[tokio::test]
async fn oauth_start_refuses_providers_not_in_config_and_next_that_leaves_the_site() {
    let app = TestApp::spawn_with_mocks(vec![], |s| {
        oauth_settings(s);
        s.rate_limit.enabled = false;
    })
    .await;
    let (status, body) = json_of(app.get("/api/auth/oauth/gitlab").send().await.unwrap()).await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    refuses_every_open_redirect(&app, "/api/auth/oauth/github?next=", None).await;
}

fn pkce_grant(answer: ResponseTemplate) -> Mock {
    Mock::given(method("POST"))
        .and(path("/auth/v1/token"))
        .and(wiremock::matchers::query_param("grant_type", "pkce"))
        .respond_with(answer)
}

/// The verifier cookie exactly as @supabase/ssr wrote it in the fixture run.
fn ssr_verifier_cookie() -> String {
    let c = &pkce_fixture()["sign_in_with_oauth"]["verifier_cookie"];
    format!(
        "{}={}",
        c["name"].as_str().unwrap(),
        c["value"].as_str().unwrap()
    )
}

#[tokio::test]
async fn the_callback_sends_the_pkce_grant_auth_js_sends_writes_the_session_and_drops_the_verifier()
{
    let fx = pkce_fixture();
    let code = fx["exchange"]["auth_code"].as_str().unwrap().to_owned();
    let app = oauth_app(vec![pkce_grant(
        ResponseTemplate::new(200).set_body_json(session_of(USER_A)),
    )])
    .await;
    let res = app
        .get(&format!("/api/auth/callback?code={code}&next=%2Faccount"))
        .header("cookie", ssr_verifier_cookie())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/account");
    let cookies = set_cookies(&res);
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with(&format!("{COOKIE}=base64-"))),
        "{cookies:?}"
    );
    let dropped = cookie_named(&cookies, &format!("{COOKIE}-code-verifier"));
    assert_eq!(dropped.len(), 1, "{cookies:?}");
    assert!(dropped[0].contains("Max-Age=0"), "{}", dropped[0]);

    let requests = app.upstream_requests().await;
    let grants = requests_to(&requests, "/auth/v1/token");
    assert_eq!(grants.len(), 1);
    assert_eq!(
        query_pairs(grants[0]),
        vec![("grant_type".into(), "pkce".into())]
    );
    assert_sent_anonymously(grants[0]);
    assert_eq!(header_of(grants[0], "sb-forwarded-for"), Some("127.0.0.1"));
    // Byte for byte the body auth-js's exchangeCodeForSession sent for the same cookie.
    assert_eq!(body_json(grants[0]), fx["exchange"]["request"]["body"]);
}

/// A flow started by a current browser client (auth-js 2.119: slot, index, single verifier;
/// two flows pending) or an old one (the single cookie only) ends at supagate's callback
/// with the verifier auth-js's own `exchangeCodeForSession` sends for the same cookies, and
/// leaves the verifier cookies as ssr leaves them (same deletions, same rewritten index).
#[tokio::test]
async fn a_callback_ends_flows_started_by_old_and_current_clients_as_auth_js_does() {
    let fx = pkce_fixture();
    for case in ["with_flow_id", "without_flow_id", "single_cookie_only"] {
        let x = &fx["exchanges"][case];
        let app = oauth_app(vec![pkce_grant(
            ResponseTemplate::new(200).set_body_json(session_of(USER_A)),
        )])
        .await;
        let cookie_header = cookie_header(&x["request_cookies"]);
        let mut url = format!(
            "/api/auth/callback?code={}&next=%2F",
            fx["exchange"]["auth_code"].as_str().unwrap()
        );
        if let Some(id) = x["flow_id"].as_str() {
            url.push_str(&format!("&sb_flow_id={id}"));
        }
        let res = app
            .get(&url)
            .header("cookie", cookie_header)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "{case}");
        let grants = app.requests_to("POST", "/auth/v1/token").await;
        assert_eq!(
            body_json(&grants[0]),
            x["request"]["body"],
            "{case}: the verifier"
        );
        // What ssr did to the verifier cookies (deduplicated: ssr sends the slot's deletion
        // and the index twice, once at once and once with the session).
        let mut want: Vec<(String, String)> = Vec::new();
        for c in x["cookies_written"].as_array().unwrap() {
            let name = c["name"].as_str().unwrap().to_owned();
            let entry = (name.clone(), c["value"].as_str().unwrap().to_owned());
            if name.ends_with("-code-verifier") && !want.contains(&entry) {
                want.push(entry);
            }
        }
        let ours: Vec<(String, String)> = set_cookies(&res)
            .iter()
            .map(|h| actix_web::cookie::Cookie::parse(h.as_str()).unwrap())
            .filter(|c| c.name().ends_with("-code-verifier"))
            .map(|c| (c.name().to_owned(), c.value().to_owned()))
            .collect();
        assert_eq!(ours, want, "{case}");
    }
}

/// A flow id that is not of auth-js's shape finds no verifier (never another flow's, which
/// would burn the single-use code).
#[tokio::test]
async fn a_callback_with_a_malformed_flow_id_uses_no_verifier() {
    let app = oauth_app(vec![]).await;
    let (status, body) = json_of(
        app.get("/api/auth/callback?code=0b7f9a3e-2c4d-4e5f-8a6b-7c8d9e0f1a2b&sb_flow_id=../x")
            .header("cookie", ssr_verifier_cookie())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, error_code(&body)), (400, "code_verifier_missing"));
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn a_callback_without_the_verifier_cookie_is_400_and_calls_no_one() {
    let app = oauth_app(vec![]).await;
    let (status, body) = json_of(
        app.get("/api/auth/callback?code=0b7f9a3e-2c4d-4e5f-8a6b-7c8d9e0f1a2b")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, error_code(&body)), (400, "code_verifier_missing"));
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn auths_pkce_refusals_each_get_their_own_400_and_the_verifier_is_dropped() {
    for (status, auth_code, ours) in [
        (400, "bad_code_verifier", "code_verifier_mismatch"),
        (404, "flow_state_not_found", "oauth_code_invalid"),
        (422, "flow_state_expired", "oauth_code_expired"),
    ] {
        let app = oauth_app(vec![pkce_grant(
            ResponseTemplate::new(status).set_body_json(json!({"code": auth_code, "message": "m"})),
        )])
        .await;
        let res = app
            .get("/api/auth/callback?code=0b7f9a3e-2c4d-4e5f-8a6b-7c8d9e0f1a2b")
            .header("cookie", ssr_verifier_cookie())
            .send()
            .await
            .unwrap();
        let cookies = set_cookies(&res);
        assert!(res.headers().get("location").is_none());
        let (got, body) = json_of(res).await;
        assert_eq!((got, error_code(&body)), (400, ours), "{auth_code}");
        let dropped = cookie_named(&cookies, &format!("{COOKIE}-code-verifier"));
        assert!(
            dropped.iter().any(|c| c.contains("Max-Age=0")),
            "{cookies:?}"
        );
        assert!(
            !cookies
                .iter()
                .any(|c| c.starts_with(&format!("{COOKIE}=base64-"))),
            "no session on {auth_code}"
        );
    }
}

#[tokio::test]
async fn a_provider_error_in_the_callback_is_400_oauth_failed_with_auths_words() {
    let app = oauth_app(vec![]).await;
    let res = app
        .get("/api/auth/callback?error=access_denied&error_code=provider_email_needs_verification&error_description=Email+not+verified&sb=")
        .header("cookie", ssr_verifier_cookie())
        .send()
        .await
        .unwrap();
    let cookies = set_cookies(&res);
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (400, "oauth_failed"));
    assert_eq!(body["details"]["error"], "access_denied");
    assert_eq!(
        body["details"]["error_code"],
        "provider_email_needs_verification"
    );
    assert_eq!(body["details"]["error_description"], "Email not verified");
    assert!(cookie_named(&cookies, &format!("{COOKIE}-code-verifier"))
        .iter()
        .any(|c| c.contains("Max-Age=0")));
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn the_callback_refuses_every_next_that_leaves_the_site() {
    let app = TestApp::spawn_with_mocks(
        vec![pkce_grant(
            ResponseTemplate::new(200).set_body_json(session_of(USER_A)),
        )],
        |s| {
            oauth_settings(s);
            s.rate_limit.enabled = false;
        },
    )
    .await;
    let cookie = ssr_verifier_cookie();
    refuses_every_open_redirect(&app, "/api/auth/callback?code=abc&next=", Some(&cookie)).await;
}

#[test]
fn oauth_needs_a_public_url_and_cookie_sessions() {
    let mut env = test_env("http://127.0.0.1:54321");
    env.insert("SUPAGATE_SIGN_IN__OAUTH_PROVIDERS".into(), "github".into());
    let err =
        supagate::config::Settings::load(&repo_path("config"), &env).expect_err("no public_url");
    assert!(err.to_string().contains("sign_in.public_url"), "{err}");
    env.insert(
        "SUPAGATE_SIGN_IN__PUBLIC_URL".into(),
        "http://localhost:3000".into(),
    );
    let err =
        supagate::config::Settings::load(&repo_path("config"), &env).expect_err("cookies off");
    assert!(err.to_string().contains("cookies.enabled"), "{err}");
    env.insert("SUPAGATE_COOKIES__ENABLED".into(), "true".into());
    let settings = supagate::config::Settings::load(&repo_path("config"), &env).unwrap();
    assert_eq!(settings.sign_in.oauth_providers, vec!["github".to_owned()]);
}

// ---- aal2 routes (MFA) ----

const AAL2_ROUTE: &str = "GET /api/billing/subscription";

fn token_with_aal(sub: &str, aal: &str) -> String {
    let mut claims = user_claims(sub);
    claims["aal"] = json!(aal);
    mint_hs256(&claims)
}

fn auth_user_with_factors(factors: Value) -> Mock {
    Mock::given(method("GET"))
        .and(path("/auth/v1/user"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"id": USER_A, "email": "ann@example.com", "factors": factors}),
            ),
        )
}

async fn aal2_app(factors: Value, requires_factor: bool) -> TestApp {
    let app = TestApp::spawn_with_mocks(vec![auth_user_with_factors(factors)], |s| {
        s.sign_in.aal2_routes = vec![AAL2_ROUTE.into()];
        s.sign_in.aal2_requires_factor = requires_factor;
    })
    .await;
    mock_rest(
        &app,
        "GET",
        "subscriptions",
        ResponseTemplate::new(200).set_body_json(json!([])),
    )
    .await;
    app
}

async fn subscription_as(app: &TestApp, token: impl std::fmt::Display) -> reqwest::Response {
    app.get("/api/billing/subscription")
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn verified_totp() -> Value {
    json!([{"id": "f1", "factor_type": "totp", "status": "verified"}])
}

async fn auth_user_calls(app: &TestApp) -> usize {
    let requests = app.upstream_requests().await;
    requests_to(&requests, "/auth/v1/user").len()
}

#[tokio::test]
async fn an_aal1_caller_with_a_verified_factor_on_an_aal2_route_is_403_mfa_required() {
    let app = aal2_app(verified_totp(), false).await;
    let token = token_with_aal(USER_A, "aal1");
    let (status, body) = json_of(subscription_as(&app, &token).await).await;
    assert_eq!((status, error_code(&body)), (403, "mfa_required"));
    assert!(body["details"]["hint"].is_string());
    let requests = app.upstream_requests().await;
    let asked = requests_to(&requests, "/auth/v1/user");
    assert_eq!(asked.len(), 1);
    assert_sent_as_user(asked[0], &token);
    assert_eq!(header_of(asked[0], "sb-forwarded-for"), Some("127.0.0.1"));
    assert!(requests_to(&requests, "/rest/v1/subscriptions").is_empty());
}

#[tokio::test]
async fn an_aal2_caller_passes_without_asking_auth() {
    let app = aal2_app(verified_totp(), false).await;
    let res = subscription_as(&app, token_with_aal(USER_A, "aal2")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(auth_user_calls(&app).await, 0);
}

#[tokio::test]
async fn a_user_without_a_verified_factor_is_not_locked_out_by_default() {
    let unverified = json!([{"id": "f1", "factor_type": "totp", "status": "unverified"}]);
    let app = aal2_app(unverified, false).await;
    let res = subscription_as(&app, token_with_aal(USER_A, "aal1")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(auth_user_calls(&app).await, 1);
}

#[tokio::test]
async fn aal2_requires_factor_refuses_every_aal1_caller_without_asking_auth() {
    let app = aal2_app(json!([]), true).await;
    let (status, body) = json_of(subscription_as(&app, token_with_aal(USER_A, "aal1")).await).await;
    assert_eq!((status, error_code(&body)), (403, "mfa_required"));
    assert_eq!(auth_user_calls(&app).await, 0);
}

#[tokio::test]
async fn routes_not_declared_aal2_never_ask_about_factors() {
    let app = aal2_app(verified_totp(), true).await;
    mock_rest(&app, "GET", "items", pg_list(json!([]), "*/0")).await;
    let res = app
        .get("/api/items?mine=true")
        .bearer_auth(token_with_aal(USER_A, "aal1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(auth_user_calls(&app).await, 0);
}

#[tokio::test]
async fn aal_is_read_from_the_verified_token_not_from_user_metadata() {
    let app = aal2_app(verified_totp(), false).await;
    let mut claims = user_claims(USER_A);
    claims["aal"] = json!("aal1");
    claims["user_metadata"]["aal"] = json!("aal2");
    let (status, body) = json_of(subscription_as(&app, mint_hs256(&claims)).await).await;
    assert_eq!((status, error_code(&body)), (403, "mfa_required"));
}

#[test]
fn aal2_routes_must_name_served_operations() {
    let mut env = test_env("http://127.0.0.1:54321");
    env.insert(
        "SUPAGATE_SIGN_IN__AAL2_ROUTES".into(),
        "DELETE /api/users/{id}, GET /api/billing/subscription".into(),
    );
    let settings = supagate::config::Settings::load(&repo_path("config"), &env).unwrap();
    assert_eq!(settings.sign_in.aal2_routes.len(), 2);
    assert!(supagate::server::check(&settings).is_ok());
    env.insert(
        "SUPAGATE_SIGN_IN__AAL2_ROUTES".into(),
        "DELETE /api/users/{user_id}".into(),
    );
    let settings = supagate::config::Settings::load(&repo_path("config"), &env).unwrap();
    let err = supagate::server::check(&settings)
        .err()
        .expect("a template that is not served");
    // check-config and start-up say it in one line too.
    let (code, _, stderr) = run_binary(&["check-config"], &env);
    assert_eq!(code, 2);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("sign_in.aal2_routes"), "{stderr}");
    assert!(err.to_string().contains("sign_in.aal2_routes"), "{err}");
}

// ---- MFA factors, challenge and verify ----

const FACTOR: &str = "2b306a77-21dc-4110-ba71-537cb56b9e98";
const CHALLENGE: &str = "b824ca10-cc13-4250-adba-20ee6e5e7dcd";

fn factors_mock(verb: &str, route: String, answer: ResponseTemplate) -> Mock {
    Mock::given(method(verb))
        .and(path(format!("/auth/v1{route}")))
        .respond_with(answer)
}

/// The one Auth call a test expects, made with the user's token and the client IP.
async fn only_user_call(app: &TestApp, verb: &str, route: &str, token: &str) -> wiremock::Request {
    let requests = app.upstream_requests().await;
    let calls: Vec<_> = requests
        .iter()
        .filter(|r| r.url.path() == format!("/auth/v1{route}") && r.method.as_str() == verb)
        .collect();
    assert_eq!(calls.len(), 1, "{verb} {route}");
    assert_sent_as_user(calls[0], token);
    assert_eq!(header_of(calls[0], "sb-forwarded-for"), Some("127.0.0.1"));
    calls[0].clone()
}

#[tokio::test]
async fn enrolling_a_totp_factor_asks_auth_and_passes_the_qr_code_on() {
    let enrolled = json!({"id": FACTOR, "type": "totp", "friendly_name": "Phone app",
        "totp": {"qr_code": "<svg/>", "secret": "JBSWY3DPEHPK3PXP", "uri": "otpauth://totp/x"}});
    let app = TestApp::spawn_with_mocks(
        vec![factors_mock(
            "POST",
            "/factors".into(),
            ResponseTemplate::new(200).set_body_json(enrolled.clone()),
        )],
        |_| {},
    )
    .await;
    let token = user_token(USER_A);
    let res = app
        .post("/api/auth/mfa/factors")
        .bearer_auth(&token)
        .json(&json!({"friendly_name": "Phone app"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["cache-control"],
        "private, no-cache, no-store, must-revalidate, max-age=0"
    );
    let (status, body) = json_of(res).await;
    assert_eq!((status, body), (200, enrolled));
    let call = only_user_call(&app, "POST", "/factors", &token).await;
    assert_eq!(
        body_json(&call),
        json!({"factor_type": "totp", "friendly_name": "Phone app"})
    );
}

#[tokio::test]
async fn enrolling_accepts_supabases_own_factor_type_totp_and_names_what_is_supported_otherwise() {
    let enrolled = json!({"id": FACTOR, "type": "totp", "totp": {"qr_code": "<svg/>"}});
    let app = TestApp::spawn_with_mocks(
        vec![factors_mock(
            "POST",
            "/factors".into(),
            ResponseTemplate::new(200).set_body_json(enrolled.clone()),
        )],
        |_| {},
    )
    .await;
    let token = user_token(USER_A);
    let enrol = |body: Value| {
        app.post("/api/auth/mfa/factors")
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let (status, body) = json_of(enrol(json!({"factor_type": "totp"})).await.unwrap()).await;
    assert_eq!((status, body), (200, enrolled));
    for other in ["phone", "webauthn", "TOTP"] {
        let (status, body) = json_of(enrol(json!({"factor_type": other})).await.unwrap()).await;
        assert_eq!(status, 400, "{other}: {body}");
        let problem = body["details"]["fieldErrors"]["factor_type"][0]
            .as_str()
            .unwrap();
        assert!(problem.contains("\"totp\""), "{problem}");
    }
    let calls = app.requests_to("POST", "/auth/v1/factors").await;
    assert_eq!(calls.len(), 1, "refused types never reach Auth");
}

/// Auth gives anonymous users no factors (403 `no_authorization` on every `/factors…` call).
/// That is not an ended session: a client reading `session_expired` as "signed out" would
/// sign them out. supagate answers 403 `anonymous_not_allowed`, and asks Auth nothing.
#[tokio::test]
async fn an_anonymous_user_on_the_mfa_routes_is_403_anonymous_not_allowed_not_signed_out() {
    let refused = ResponseTemplate::new(403).set_body_json(
        json!({"code": "no_authorization", "message": "Anonymous user not allowed to perform these actions"}),
    );
    let app = TestApp::spawn_with_mocks(
        vec![
            Mock::given(wiremock::matchers::path_regex("^/auth/v1/factors")).respond_with(refused),
        ],
        |_| {},
    )
    .await;
    let token = anonymous_token(USER_A);
    let challenge = format!("{{\"factor_id\": \"{FACTOR}\"}}");
    for (verb, route, body) in [
        ("POST", "/api/auth/mfa/factors".to_owned(), "{}".to_owned()),
        ("POST", "/api/auth/mfa/challenge".to_owned(), challenge),
        (
            "DELETE",
            format!("/api/auth/mfa/factors/{FACTOR}"),
            String::new(),
        ),
    ] {
        let req = match verb {
            "POST" => app
                .post(&route)
                .header("content-type", "application/json")
                .body(body),
            _ => app.delete(&route),
        };
        let (status, body) = json_of(req.bearer_auth(&token).send().await.unwrap()).await;
        assert_eq!(
            (status, error_code(&body)),
            (403, "anonymous_not_allowed"),
            "{route}"
        );
    }
    assert!(app.requests_to("POST", "/auth/v1/factors").await.is_empty());
    // Should Auth say it all the same (a token minted before a conversion, say), its answer
    // is mapped the same way, not to `session_expired`.
    let failure = supagate::supabase::gotrue::AuthFailure::parse(
        reqwest::StatusCode::FORBIDDEN,
        br#"{"code":"no_authorization","message":"Anonymous user not allowed"}"#,
        None,
    );
    let e = failure.to_api_error(supagate::supabase::gotrue::AuthCall::Mfa);
    assert_eq!(
        (e.status().as_u16(), e.code()),
        (403, "anonymous_not_allowed")
    );
}

#[tokio::test]
async fn factors_are_listed_from_auths_user_and_removed_by_id() {
    let factors = json!([{"id": FACTOR, "factor_type": "totp", "status": "verified"}]);
    let app = TestApp::spawn_with_mocks(
        vec![
            auth_user_with_factors(factors.clone()),
            factors_mock(
                "DELETE",
                format!("/factors/{FACTOR}"),
                ResponseTemplate::new(200).set_body_json(json!({"id": FACTOR})),
            ),
        ],
        |_| {},
    )
    .await;
    let token = token_with_aal(USER_A, "aal2");
    let (status, body) = json_of(
        app.get("/api/auth/mfa/factors")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (200, json!({"factors": factors})));
    let (status, body) = json_of(
        app.delete(&format!("/api/auth/mfa/factors/{FACTOR}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (200, json!({"id": FACTOR})));
    only_user_call(&app, "DELETE", &format!("/factors/{FACTOR}"), &token).await;
    let (status, body) = json_of(
        app.delete("/api/auth/mfa/factors/not-a-uuid")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, error_code(&body)), (400, "invalid_id"));
}

#[tokio::test]
async fn a_challenge_is_asked_for_the_named_factor() {
    let app = TestApp::spawn_with_mocks(
        vec![factors_mock(
            "POST",
            format!("/factors/{FACTOR}/challenge"),
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": CHALLENGE, "type": "totp", "expires_at": 1767225900})),
        )],
        |_| {},
    )
    .await;
    let token = user_token(USER_A);
    let (status, body) = json_of(
        app.post("/api/auth/mfa/challenge")
            .bearer_auth(&token)
            .json(&json!({"factor_id": FACTOR}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["id"].clone()), (200, json!(CHALLENGE)));
    only_user_call(
        &app,
        "POST",
        &format!("/factors/{FACTOR}/challenge"),
        &token,
    )
    .await;
}

#[tokio::test]
async fn verifying_a_challenge_upgrades_the_cookie_session_to_aal2() {
    let mut aal2 = session_of(USER_A);
    aal2["access_token"] = json!(token_with_aal(USER_A, "aal2"));
    aal2["refresh_token"] = json!("aal2-refresh");
    // Auth's /factors/{id}/verify answer has no expires_at (auth-js adds it).
    aal2.as_object_mut().unwrap().remove("expires_at");
    let app = TestApp::spawn_with_mocks(
        vec![factors_mock(
            "POST",
            format!("/factors/{FACTOR}/verify"),
            ResponseTemplate::new(200).set_body_json(aal2),
        )],
        cookie_settings,
    )
    .await;
    let token = token_with_aal(USER_A, "aal1");
    let res = app
        .post("/api/auth/mfa/verify")
        .bearer_auth(&token)
        .json(&json!({"factor_id": FACTOR, "challenge_id": CHALLENGE, "code": "123456"}))
        .send()
        .await
        .unwrap();
    let cookies = set_cookies(&res);
    let (status, body) = json_of(res).await;
    assert_eq!(status, 200);
    assert_eq!(body["refresh_token"], "aal2-refresh");
    let written = cookies
        .iter()
        .find(|c| c.starts_with(&format!("{COOKIE}=base64-")))
        .expect("session cookie rewritten");
    let value = written
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches(&format!("{COOKIE}=base64-"));
    use base64::Engine;
    let stored: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stored["refresh_token"], "aal2-refresh");
    assert!(
        stored["expires_at"].is_i64(),
        "expires_at filled in as auth-js does"
    );
    let call = only_user_call(&app, "POST", &format!("/factors/{FACTOR}/verify"), &token).await;
    assert_eq!(
        body_json(&call),
        json!({"challenge_id": CHALLENGE, "code": "123456"})
    );
}

#[tokio::test]
async fn a_wrong_or_malformed_mfa_code_is_refused_with_its_own_code() {
    let app = TestApp::spawn_with_mocks(
        vec![factors_mock(
            "POST",
            format!("/factors/{FACTOR}/verify"),
            ResponseTemplate::new(422).set_body_json(
                json!({"code": "mfa_verification_failed", "message": "Invalid TOTP code entered"}),
            ),
        )],
        |_| {},
    )
    .await;
    let token = user_token(USER_A);
    let verify = |code: &str| {
        app.post("/api/auth/mfa/verify")
            .bearer_auth(&token)
            .json(&json!({"factor_id": FACTOR, "challenge_id": CHALLENGE, "code": code}))
            .send()
    };
    let (status, body) = json_of(verify("654321").await.unwrap()).await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "mfa_verification_failed")
    );
    let (status, body) = json_of(verify("12ab").await.unwrap()).await;
    assert_eq!(status, 400);
    assert_field_error(&body, "code");
    assert_eq!(app.upstream_requests().await.len(), 1);
}
