//! Authentication: token verification (HS256, JWKS ES256/RS256, rotation, every rejection),
//! `@supabase/ssr` cookie sessions, and the `/api/auth/*` routes against a fake Supabase Auth.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use supagate::auth::{Admin, MaybeUser};
use supagate::state::AppState;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

// ---- helpers ----

fn ssr() -> Value {
    fixture("ssr_cookies.json")
}

/// `GET /auth/v1/user` answering a user object: the probe for the `User` extractor.
fn user_endpoint() -> Mock {
    Mock::given(method("GET"))
        .and(path("/auth/v1/user"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": fixture_user_id(), "email": "ann@example.com"})),
        )
}

async fn app_with_jwks() -> TestApp {
    TestApp::spawn_with_mocks(vec![jwks_mock("jwks_initial"), user_endpoint()], |_| {}).await
}

async fn probe(app: &TestApp, token: &str) -> (u16, Value) {
    json_of(
        app.get("/api/auth/user")
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn auth_error(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

fn session_body(access: &str, refresh: &str) -> Value {
    json!({"access_token": access, "token_type": "bearer", "expires_in": 3600,
           "expires_at": 4102444800u64, "refresh_token": refresh,
           "user": {"id": fixture_user_id(), "email": "ann@example.com"}})
}

fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn cookie_value(set_cookie: &str) -> (&str, &str) {
    let first = set_cookie.split(';').next().unwrap();
    first.split_once('=').unwrap()
}

fn cookies_on(s: &mut supagate::config::Settings) {
    s.cookies.enabled = true;
}

/// The requests the fake Supabase received on `p`.
async fn sent_to(app: &TestApp, p: &str) -> Vec<wiremock::Request> {
    app.all_upstream_requests()
        .await
        .into_iter()
        .filter(|r| r.url.path() == p)
        .collect()
}

/// A tiny server with routes using `MaybeUser` and `Admin` (no production route does yet),
/// sharing the real application state and extractors.
async fn extractor_server() -> (String, MockServer) {
    let upstream = MockServer::start().await;
    upstream.register(jwks_mock("jwks_initial")).await;
    let settings = test_settings(&upstream.uri());
    let checked = supagate::server::check(&settings).unwrap();
    let state = AppState::new(settings, checked).unwrap();
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route(
                "/maybe",
                web::get().to(|u: MaybeUser| async move {
                    HttpResponse::Ok().json(json!({"user": u.0.map(|u| u.id.to_string())}))
                }),
            )
            .route(
                "/admin",
                web::get().to(|a: Admin| async move {
                    HttpResponse::Ok().json(json!({"id": a.0.id.to_string()}))
                }),
            )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let address = format!("http://{}", server.addrs()[0]);
    tokio::spawn(server.run());
    (address, upstream)
}

// ---- accepted tokens ----

#[tokio::test]
async fn hs256_token_is_accepted() {
    let app = app_with_jwks().await;
    let (status, body) = probe(&app, &fixture_token("valid_hs256")).await;
    assert_eq!(status, 200, "{body}");
    let minted = probe(&app, &user_token(&fixture_user_id())).await;
    assert_eq!(minted.0, 200);
}

#[tokio::test]
async fn es256_and_rs256_tokens_are_accepted_via_jwks() {
    let app = app_with_jwks().await;
    for name in ["valid_es256", "valid_rs256"] {
        let token = fixture_token(name);
        let (status, body) = probe(&app, &token).await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    // The verified token is what goes to Auth.
    let sent = sent_to(&app, "/auth/v1/user").await;
    let auth = sent[0]
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(auth, format!("Bearer {}", fixture_token("valid_es256")));
    assert_eq!(sent[0].headers.get("apikey").unwrap(), ANON_KEY);
}

#[tokio::test]
async fn rotated_in_key_is_accepted_without_restart() {
    let app = TestApp::spawn_with_mocks(vec![jwks_mock("jwks_initial"), user_endpoint()], |s| {
        s.auth.jwks_min_refetch_interval_secs = 0;
    })
    .await;
    assert_eq!(probe(&app, &fixture_token("valid_es256")).await.0, 200);
    app.upstream.reset().await;
    app.upstream.register(jwks_mock("jwks_rotated")).await;
    app.upstream.register(user_endpoint()).await;
    let (status, body) = probe(&app, &fixture_token("valid_es256_rotated")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn ssr_cookie_sessions_are_accepted_single_chunked_and_raw() {
    let app = app_with_jwks().await;
    let cases = ssr()["cases"].clone();
    for case in [
        "single_base64url",
        "chunked_base64url",
        "single_raw",
        "chunked_raw",
    ] {
        let cookie = cases[case]["request_cookie_header"].as_str().unwrap();
        let res = app
            .get("/api/auth/user")
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(res).await;
        assert_eq!(status, 200, "{case}: {body}");
    }
    // The cookie's access token is what was forwarded.
    let access = cases["chunked_base64url"]["session"]["access_token"]
        .as_str()
        .unwrap();
    let sent = sent_to(&app, "/auth/v1/user").await;
    assert_eq!(
        sent[1]
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap(),
        format!("Bearer {access}")
    );
}

#[tokio::test]
async fn fixture_request_cookies_verbatim_are_accepted() {
    let app = app_with_jwks().await;
    let case = &ssr()["cases"]["sign_out_chunked"];
    let header = cookie_header(&case["request_cookies"]);
    let res = app
        .get("/api/auth/user")
        .header("cookie", header)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

// ---- rejected tokens ----

#[tokio::test]
async fn each_rejected_token_gets_401_naming_the_failed_check_without_echoing_it() {
    let app = app_with_jwks().await;
    let valid = fixture_token("valid_es256");
    // Wait for the signing keys: until they are known, an HS256 token naming an RSA key's
    // `kid` is refused for its signature (it never meets the public key) rather than
    // recognised as key confusion, and this test names the exact check.
    assert_eq!(probe(&app, &valid).await.0, 200);
    let truncated = valid.rsplit_once('.').unwrap().0.to_owned();
    let mut cases: Vec<(String, String, &str)> = [
        ("alg_none", "invalid_algorithm"),
        ("hs256_signed_with_public_key", "invalid_algorithm"),
        ("expired_es256", "token_expired"),
        ("nbf_future_es256", "token_not_yet_valid"),
        ("wrong_aud_es256", "invalid_audience"),
        ("wrong_iss_es256", "invalid_issuer"),
        ("sub_not_uuid_es256", "invalid_subject"),
        ("no_role_es256", "invalid_role"),
        ("tampered_payload_es256", "invalid_signature"),
        ("unknown_kid_es256", "unknown_key"),
    ]
    .into_iter()
    .map(|(n, c)| (n.to_owned(), fixture_token(n), c))
    .collect();
    cases.push(("truncated".into(), truncated, "malformed_token"));
    cases.push(("garbage".into(), "garbage!!".into(), "malformed_token"));
    cases.push((
        "three garbage parts".into(),
        "abc.def.ghi".into(),
        "malformed_token",
    ));
    for (name, token, code) in cases {
        let res = app
            .get("/api/auth/user")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let challenge = res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = res.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error_code(&body), code, "{name}: {body}");
        assert_eq!(
            challenge.as_deref(),
            Some("Bearer error=\"invalid_token\""),
            "{name}"
        );
        assert!(!text.contains(&token), "{name}: token echoed");
    }
    // Only the warm-up reached Auth: no rejected token was forwarded.
    assert_eq!(sent_to(&app, "/auth/v1/user").await.len(), 1);
}

#[tokio::test]
async fn unknown_kid_is_rejected_after_a_refetch() {
    let app = TestApp::spawn_with_mocks(vec![jwks_mock("jwks_initial")], |s| {
        s.auth.jwks_min_refetch_interval_secs = 0;
    })
    .await;
    let (status, body) = probe(&app, &fixture_token("unknown_kid_es256")).await;
    assert_eq!((status, error_code(&body)), (401, "unknown_key"));
    assert!(
        jwks_fetches(&app).await >= 2,
        "the unknown kid triggered a refetch"
    );
}

#[tokio::test]
async fn random_kids_cause_at_most_one_jwks_fetch_per_interval() {
    let app = TestApp::spawn_with_mocks(vec![jwks_mock("jwks_initial"), user_endpoint()], |s| {
        s.auth.jwks_min_refetch_interval_secs = 2;
    })
    .await;
    assert_eq!(probe(&app, &fixture_token("valid_es256")).await.0, 200);
    let flood = |app: &TestApp| {
        let requests: Vec<_> = (0..100)
            .map(|i| {
                let header = URL_SAFE_NO_PAD.encode(format!(
                    r#"{{"alg":"ES256","kid":"random-{i}-{}","typ":"JWT"}}"#,
                    uuid::Uuid::new_v4()
                ));
                let token = format!("{header}.e30.c2ln");
                app.get("/api/auth/user").bearer_auth(token).send()
            })
            .collect();
        futures_util::future::join_all(requests)
    };
    for res in flood(&app).await {
        assert_eq!(res.unwrap().status(), 401);
    }
    assert_eq!(
        jwks_fetches(&app).await,
        1,
        "start-up fetch only, within the interval"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for res in flood(&app).await {
        assert_eq!(res.unwrap().status(), 401);
    }
    assert_eq!(
        jwks_fetches(&app).await,
        2,
        "one more fetch in the next interval"
    );
}

#[tokio::test]
async fn jwks_down_at_start_does_not_block_start_up_and_answers_503_for_asymmetric_tokens() {
    let app = TestApp::spawn_with_mocks(vec![user_endpoint()], |_| {}).await;
    let (status, body) = probe(&app, &fixture_token("valid_es256")).await;
    assert_eq!((status, error_code(&body)), (503, "upstream_unavailable"));
    // HS256 needs no JWKS.
    assert_eq!(probe(&app, &fixture_token("valid_hs256")).await.0, 200);
}

#[tokio::test]
async fn maybe_user_route_rejects_a_bad_token_and_allows_anonymous() {
    let (address, _upstream) = extractor_server().await;
    let client = reqwest::Client::new();
    let anon = client.get(format!("{address}/maybe")).send().await.unwrap();
    assert_eq!(json_of(anon).await, (200, json!({"user": null})));
    let bad = client
        .get(format!("{address}/maybe"))
        .bearer_auth(fixture_token("expired_es256"))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(bad).await;
    assert_eq!((status, error_code(&body)), (401, "token_expired"));
    let good = client
        .get(format!("{address}/maybe"))
        .bearer_auth(fixture_token("valid_es256"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(good).await,
        (200, json!({"user": fixture_user_id()}))
    );
}

#[tokio::test]
async fn user_metadata_admin_is_not_admin_but_app_metadata_admin_is() {
    let (address, _upstream) = extractor_server().await;
    let client = reqwest::Client::new();
    let get = |token: String| {
        client
            .get(format!("{address}/admin"))
            .bearer_auth(token)
            .send()
    };
    let res = get(fixture_token("user_metadata_admin_es256"))
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"));
    let res = get(fixture_token("admin_es256")).await.unwrap();
    assert_eq!(res.status(), 200);
}

// ---- /api/auth/register ----

#[tokio::test]
async fn register_forwards_to_signup_and_answers_201_with_null_session() {
    let app = app_with_jwks().await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/signup"))
        .and(header("apikey", ANON_KEY))
        .and(body_json(json!({"email": "ann@example.com", "password": "correct horse", "data": {"name": "Ann"}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": fixture_user_id(), "email": "ann@example.com", "confirmation_sent_at": "2026-01-05T10:00:00Z"})))
        .expect(1)
        .mount(&app.upstream)
        .await;
    let res = app
        .post("/api/auth/register")
        .json(&json!({"email": "ann@example.com", "password": "correct horse", "data": {"name": "Ann"}}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 201);
    assert_eq!(body["session"], Value::Null);
    assert_eq!(body["user"]["id"], fixture_user_id());
}

#[tokio::test]
async fn register_with_auto_confirm_returns_the_session() {
    let app = app_with_jwks().await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/signup"))
        .respond_with(ResponseTemplate::new(200).set_body_json(session_body("at", "rt")))
        .mount(&app.upstream)
        .await;
    let res = app
        .post("/api/auth/register")
        .json(&json!({"email": "ann@example.com", "password": "pw"}))
        .send()
        .await
        .unwrap();
    assert!(res.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("no-store"));
    let (status, body) = json_of(res).await;
    assert_eq!(status, 201);
    assert_eq!(body["session"]["access_token"], "at");
    assert_eq!(body["user"]["id"], fixture_user_id());
}

#[tokio::test]
async fn register_maps_existing_user_to_409_and_weak_password_to_422() {
    let app = app_with_jwks().await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/signup"))
        .and(body_json(
            json!({"email": "dup@example.com", "password": "pw"}),
        ))
        .respond_with(auth_error(
            422,
            json!({"code": "user_already_exists", "message": "User already registered"}),
        ))
        .mount(&app.upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/signup"))
        .and(body_json(json!({"email": "weak@example.com", "password": "pw"})))
        .respond_with(auth_error(422, json!({"code": 422, "error_code": "weak_password", "msg": "weak", "weak_password": {"reasons": ["length"]}})))
        .mount(&app.upstream)
        .await;
    let send = |email: &str| {
        app.post("/api/auth/register")
            .json(&json!({"email": email, "password": "pw"}))
            .send()
    };
    let (status, body) = json_of(send("dup@example.com").await.unwrap()).await;
    assert_eq!((status, error_code(&body)), (409, "user_already_exists"));
    let (status, body) = json_of(send("weak@example.com").await.unwrap()).await;
    assert_eq!((status, error_code(&body)), (422, "weak_password"));
    assert_eq!(body["details"]["reasons"], json!(["length"]));
}

#[tokio::test]
async fn register_validates_input_before_calling_auth() {
    let app = app_with_jwks().await;
    let big = "x".repeat(5000);
    for body in [
        json!({"email": "not-an-email", "password": "pw"}),
        json!({"email": "ann@example.com", "password": ""}),
        json!({"email": "ann@example.com", "password": "pw", "data": {"bio": big}}),
        json!({"email": "ann@example.com", "password": "pw", "role": "admin"}),
    ] {
        let (status, res) = json_of(
            app.post("/api/auth/register")
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, error_code(&res)),
            (400, "validation_failed"),
            "{body}"
        );
    }
    assert!(sent_to(&app, "/auth/v1/signup").await.is_empty());
}

// ---- /api/auth/login ----

#[tokio::test]
async fn login_uses_the_password_grant_and_returns_the_session_uncached() {
    let app = app_with_jwks().await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/token"))
        .and(query_param("grant_type", "password"))
        .and(header("apikey", ANON_KEY))
        .and(body_json(
            json!({"email": "ann@example.com", "password": "pw"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(session_body("at", "rt")))
        .expect(1)
        .mount(&app.upstream)
        .await;
    let res = app
        .post("/api/auth/login")
        .json(&json!({"email": "ann@example.com", "password": "pw"}))
        .send()
        .await
        .unwrap();
    assert!(res.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("no-store"));
    assert!(set_cookies(&res).is_empty(), "cookies are off by default");
    let (status, body) = json_of(res).await;
    assert_eq!(status, 200);
    assert_eq!(body["access_token"], "at");
    assert_eq!(body["refresh_token"], "rt");
}

#[tokio::test]
async fn login_maps_every_auth_error_shape() {
    let app = app_with_jwks().await;
    let cases = [
        (
            "legacy@example.com",
            400,
            json!({"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"}),
            401,
            "invalid_credentials",
        ),
        (
            "versioned@example.com",
            400,
            json!({"code": "invalid_credentials", "message": "Invalid login credentials"}),
            401,
            "invalid_credentials",
        ),
        (
            "oauth@example.com",
            400,
            json!({"error": "invalid_grant", "error_description": "Invalid login credentials"}),
            401,
            "invalid_credentials",
        ),
        (
            "unconfirmed@example.com",
            400,
            json!({"code": "email_not_confirmed", "message": "Email not confirmed"}),
            403,
            "email_not_confirmed",
        ),
        (
            "limited@example.com",
            429,
            json!({"code": "over_request_rate_limit", "message": "slow down"}),
            429,
            "rate_limited",
        ),
        (
            "broken@example.com",
            500,
            json!({"code": 500, "error_code": "unexpected_failure", "msg": "boom"}),
            502,
            "upstream_error",
        ),
    ];
    for (email, status, body, _, _) in &cases {
        Mock::given(method("POST"))
            .and(path("/auth/v1/token"))
            .and(body_json(json!({"email": email, "password": "pw"})))
            .respond_with(auth_error(*status, body.clone()))
            .mount(&app.upstream)
            .await;
    }
    for (email, _, _, want_status, want_code) in cases {
        let res = app
            .post("/api/auth/login")
            .json(&json!({"email": email, "password": "pw"}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(res).await;
        assert_eq!(
            (status, error_code(&body)),
            (want_status, want_code),
            "{email}"
        );
    }
}

#[tokio::test]
async fn login_writes_chunked_ssr_cookies_when_enabled() {
    let app = TestApp::spawn_with_mocks(vec![jwks_mock("jwks_initial")], cookies_on).await;
    let case = ssr()["cases"]["chunked_base64url"].clone();
    Mock::given(method("POST"))
        .and(path("/auth/v1/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(case["session"].clone()))
        .mount(&app.upstream)
        .await;
    let res = app
        .post("/api/auth/login")
        .json(&json!({"email": "ann@example.com", "password": "pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["pragma"], "no-cache");
    assert_eq!(res.headers()["expires"], "0");
    let cookies = set_cookies(&res);
    let expected: Vec<&str> = case["set_cookies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let names: Vec<&str> = cookies.iter().map(|c| cookie_value(c).0).collect();
    assert_eq!(names, expected);
    for c in &cookies {
        for attr in ["Path=/", "SameSite=Lax", "HttpOnly", "Max-Age=34560000"] {
            assert!(c.contains(attr), "{attr} missing in {c}");
        }
        assert!(c.contains("Secure"), "test env is not development: {c}");
        assert!(cookie_value(c).1.len() <= 3180);
    }
    // Joined and decoded, the chunks hold the session auth-js would store.
    let joined: String = cookies.iter().map(|c| cookie_value(c).1).collect();
    let json = URL_SAFE_NO_PAD
        .decode(joined.strip_prefix("base64-").unwrap())
        .unwrap();
    let stored: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(stored, case["session"]);
    // And the browser sending them back is authenticated.
    let header = cookies
        .iter()
        .map(|c| c.split(';').next().unwrap())
        .collect::<Vec<_>>()
        .join("; ");
    Mock::given(method("GET"))
        .and(path("/auth/v1/user"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&app.upstream)
        .await;
    let res = app
        .get("/api/auth/user")
        .header("cookie", header)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn login_replacing_a_chunked_session_expires_the_stale_chunks() {
    let app = TestApp::spawn_with_mocks(vec![jwks_mock("jwks_initial")], |s| {
        s.cookies.enabled = true;
        s.cookies.http_only = false;
    })
    .await;
    let case = ssr()["cases"]["replace_chunked_with_single"].clone();
    Mock::given(method("POST"))
        .and(path("/auth/v1/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(case["session"].clone()))
        .mount(&app.upstream)
        .await;
    let request_cookie = cookie_header(&case["request_cookies"]);
    let res = app
        .post("/api/auth/login")
        .header("cookie", request_cookie)
        .json(&json!({"email": "ann@example.com", "password": "pw"}))
        .send()
        .await
        .unwrap();
    let cookies = set_cookies(&res);
    let expected = case["set_cookies"].as_array().unwrap();
    assert_eq!(cookies.len(), expected.len());
    for (got, want) in cookies.iter().zip(expected) {
        assert_eq!(cookie_value(got).0, want["name"].as_str().unwrap());
        assert!(!got.contains("HttpOnly"), "http_only = false: {got}");
        if want["options"]["maxAge"] == 0 {
            assert_eq!(cookie_value(got).1, "");
            assert!(got.contains("Max-Age=0"), "{got}");
        }
    }
}

// ---- /api/auth/refresh ----

#[tokio::test]
async fn refresh_uses_the_refresh_grant_with_the_body_token() {
    let app = app_with_jwks().await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/token"))
        .and(query_param("grant_type", "refresh_token"))
        .and(header("apikey", ANON_KEY))
        .and(body_json(json!({"refresh_token": "rt-1"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(session_body("at-2", "rt-2")))
        .expect(1)
        .mount(&app.upstream)
        .await;
    let res = app
        .post("/api/auth/refresh")
        .json(&json!({"refresh_token": "rt-1"}))
        .send()
        .await
        .unwrap();
    assert!(res.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("no-store"));
    let (status, body) = json_of(res).await;
    assert_eq!(
        (status, body["refresh_token"].as_str()),
        (200, Some("rt-2"))
    );
}

#[tokio::test]
async fn refresh_takes_the_token_from_the_session_cookie() {
    let app = TestApp::spawn_with_mocks(vec![jwks_mock("jwks_initial")], cookies_on).await;
    let case = ssr()["cases"]["single_base64url"].clone();
    let rt = case["session"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    Mock::given(method("POST"))
        .and(path("/auth/v1/token"))
        .and(query_param("grant_type", "refresh_token"))
        .and(body_json(json!({"refresh_token": rt})))
        .respond_with(ResponseTemplate::new(200).set_body_json(case["session"].clone()))
        .expect(1)
        .mount(&app.upstream)
        .await;
    let res = app
        .post("/api/auth/refresh")
        .header("cookie", case["request_cookie_header"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let names: Vec<String> = set_cookies(&res)
        .iter()
        .map(|c| cookie_value(c).0.to_owned())
        .collect();
    assert_eq!(names, ["sb-127-auth-token"]);
}

#[tokio::test]
async fn refresh_maps_spent_tokens_to_401_and_requires_a_token() {
    let app = app_with_jwks().await;
    let shapes = [
        (
            "a",
            json!({"code": "refresh_token_not_found", "message": "Invalid Refresh Token: Refresh Token Not Found"}),
        ),
        (
            "b",
            json!({"code": 400, "error_code": "refresh_token_already_used", "msg": "Already Used"}),
        ),
        (
            "c",
            json!({"error": "invalid_grant", "error_description": "Invalid Refresh Token"}),
        ),
    ];
    for (token, body) in &shapes {
        Mock::given(method("POST"))
            .and(path("/auth/v1/token"))
            .and(body_json(json!({"refresh_token": token})))
            .respond_with(auth_error(400, body.clone()))
            .mount(&app.upstream)
            .await;
    }
    for (token, _) in shapes {
        let res = app
            .post("/api/auth/refresh")
            .json(&json!({"refresh_token": token}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(res).await;
        assert_eq!(
            (status, error_code(&body)),
            (401, "invalid_refresh_token"),
            "{token}"
        );
    }
    let (status, body) = json_of(app.post("/api/auth/refresh").send().await.unwrap()).await;
    assert_eq!((status, error_code(&body)), (400, "validation_failed"));
    let res = app
        .post("/api/auth/refresh")
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
}

// ---- /api/auth/logout ----

#[tokio::test]
async fn logout_revokes_the_session_and_answers_204() {
    let app = app_with_jwks().await;
    let token = fixture_token("valid_es256");
    Mock::given(method("POST"))
        .and(path("/auth/v1/logout"))
        .and(query_param("scope", "global"))
        .and(header("apikey", ANON_KEY))
        .and(header("authorization", format!("Bearer {token}").as_str()))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&app.upstream)
        .await;
    let res = app
        .post("/api/auth/logout")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn logout_needs_a_user_and_tolerates_an_already_revoked_session() {
    let app = app_with_jwks().await;
    let (status, body) = json_of(app.post("/api/auth/logout").send().await.unwrap()).await;
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));
    Mock::given(method("POST"))
        .and(path("/auth/v1/logout"))
        .respond_with(auth_error(
            403,
            json!({"code": "session_not_found", "message": "Session not found"}),
        ))
        .mount(&app.upstream)
        .await;
    let res = app
        .post("/api/auth/logout")
        .bearer_auth(fixture_token("valid_es256"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn logout_clears_every_session_cookie_chunk() {
    let app = TestApp::spawn_with_mocks(vec![jwks_mock("jwks_initial")], cookies_on).await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/logout"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&app.upstream)
        .await;
    let case = ssr()["cases"]["sign_out_chunked"].clone();
    let header_value = ssr()["cases"]["chunked_base64url"]["request_cookie_header"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .post("/api/auth/logout")
        .header("cookie", header_value)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let cookies = set_cookies(&res);
    let expected: Vec<&str> = case["set_cookies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cookies
            .iter()
            .map(|c| cookie_value(c).0)
            .collect::<Vec<_>>(),
        expected
    );
    assert!(cookies
        .iter()
        .all(|c| cookie_value(c).1.is_empty() && c.contains("Max-Age=0")));
}

// ---- /api/auth/user ----

#[tokio::test]
async fn user_returns_the_supabase_user_and_maps_a_revoked_session_to_401() {
    let app = app_with_jwks().await;
    let (status, body) = probe(&app, &fixture_token("valid_es256")).await;
    assert_eq!(
        (status, body["email"].as_str()),
        (200, Some("ann@example.com"))
    );
    let (status, body) = json_of(app.get("/api/auth/user").send().await.unwrap()).await;
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));

    let revoked = TestApp::spawn_with_mocks(vec![jwks_mock("jwks_initial")], |_| {}).await;
    Mock::given(method("GET"))
        .and(path("/auth/v1/user"))
        .respond_with(auth_error(403, json!({"code": "session_not_found", "message": "Session from session_id claim in JWT does not exist"})))
        .mount(&revoked.upstream)
        .await;
    let (status, body) = probe(&revoked, &fixture_token("valid_es256")).await;
    assert_eq!((status, error_code(&body)), (401, "session_expired"));
}

// ---- /api/auth/recover ----

#[tokio::test]
async fn recover_answers_202_whatever_auth_says() {
    let app = app_with_jwks().await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/recover"))
        .and(header("apikey", ANON_KEY))
        .and(body_json(json!({"email": "ann@example.com"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&app.upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/recover"))
        .and(body_json(json!({"email": "nobody@example.com"})))
        .respond_with(auth_error(
            422,
            json!({"code": "user_not_found", "message": "User not found"}),
        ))
        .mount(&app.upstream)
        .await;
    for email in ["ann@example.com", "nobody@example.com"] {
        let res = app
            .post("/api/auth/recover")
            .json(&json!({"email": email}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "{email}");
    }
}

// ---- rate limiting and client IP ----

fn tight_limits(s: &mut supagate::config::Settings) {
    for rule in &mut s.rate_limit.rules {
        rule.per_minute = 2;
        rule.burst = Some(2);
    }
}

#[tokio::test]
async fn each_limited_route_answers_429_with_retry_after() {
    let app = TestApp::spawn_with_mocks(vec![jwks_mock("jwks_initial")], tight_limits).await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/recover"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&app.upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(session_body("a", "r")))
        .mount(&app.upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/signup"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": fixture_user_id()})))
        .mount(&app.upstream)
        .await;
    let routes = [
        (
            "/api/auth/login",
            json!({"email": "ann@example.com", "password": "pw"}),
        ),
        (
            "/api/auth/register",
            json!({"email": "ann@example.com", "password": "pw"}),
        ),
        ("/api/auth/refresh", json!({"refresh_token": "rt"})),
        ("/api/auth/recover", json!({"email": "ann@example.com"})),
    ];
    for (route, body) in routes {
        for _ in 0..2 {
            let res = app.post(route).json(&body).send().await.unwrap();
            assert!(res.status().is_success(), "{route}: {}", res.status());
        }
        let res = app.post(route).json(&body).send().await.unwrap();
        let retry: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "{route}: Retry-After {retry}");
        let (status, body) = json_of(res).await;
        assert_eq!(
            (status, error_code(&body)),
            (429, "rate_limited"),
            "{route}"
        );
    }
}

#[tokio::test]
async fn spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = TestApp::spawn_with_mocks(vec![jwks_mock("jwks_initial")], tight_limits).await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/recover"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&app.upstream)
        .await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        let res = app
            .post("/api/auth/recover")
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .json(&json!({"email": "ann@example.com"}))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [202, 202, 429]);
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_names_the_client() {
    let app = TestApp::spawn_with_mocks(vec![jwks_mock("jwks_initial")], |s| {
        tight_limits(s);
        s.server.trusted_proxies = vec!["127.0.0.1/32".into(), "::1".into()];
    })
    .await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/recover"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&app.upstream)
        .await;
    let send = |ip: &str| {
        app.post("/api/auth/recover")
            .header("x-forwarded-for", ip)
            .json(&json!({"email": "ann@example.com"}))
            .send()
    };
    for i in 0..3 {
        assert_eq!(send(&format!("203.0.113.{i}")).await.unwrap().status(), 202);
    }
    assert_eq!(send("198.51.100.1").await.unwrap().status(), 202);
    assert_eq!(send("198.51.100.1").await.unwrap().status(), 202);
    assert_eq!(send("198.51.100.1").await.unwrap().status(), 429);
}

// ---- logs ----

#[tokio::test]
async fn no_token_or_password_reaches_the_log() {
    let upstream = MockServer::start().await;
    upstream.register(jwks_mock("jwks_initial")).await;
    let access = fixture_token("valid_es256");
    let password = "pw-Sup3r-Secret-Value";
    let refresh = "refresh-token-secret-xyz";
    Mock::given(method("POST"))
        .and(path("/auth/v1/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(session_body(&access, refresh)))
        .mount(&upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/auth/v1/user"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": fixture_user_id()})))
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/logout"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&upstream)
        .await;
    let mut env: HashMap<String, String> = test_env(&upstream.uri());
    env.insert("RUST_LOG".into(), "trace".into());
    env.insert("SUPAGATE_COOKIES__ENABLED".into(), "true".into());
    let process = Process::start(&env);
    let client = reqwest::Client::new();
    let res = client
        .post(process.url("/api/auth/login"))
        .json(&json!({"email": "ann@example.com", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client
        .post(process.url("/api/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client
        .get(process.url("/api/auth/user"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client
        .get(process.url("/api/auth/user"))
        .bearer_auth(fixture_token("expired_es256"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = client
        .post(process.url("/api/auth/logout"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    // A server-side refresh of an expired cookie session, and a broken cookie.
    let cookie_refresh = "cookie-refresh-secret-abc";
    let expired_session = session_body(&fixture_token("expired_es256"), cookie_refresh).to_string();
    let res = client
        .get(process.url("/api/auth/user"))
        .header(
            "cookie",
            format!(
                "sb-127-auth-token=base64-{}",
                URL_SAFE_NO_PAD.encode(&expired_session)
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("set-cookie"), "refreshed");
    let res = client
        .get(process.url("/api/auth/user"))
        .header("cookie", format!("sb-127-auth-token={cookie_refresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = process.drain_log();
    assert!(
        lines.iter().any(|l| l.contains("/api/auth/login")),
        "access log captured: {lines:#?}"
    );
    let signature = access.rsplit('.').next().unwrap();
    let expired_sig = fixture_token("expired_es256")
        .rsplit('.')
        .next()
        .unwrap()
        .to_owned();
    let b64_session = URL_SAFE_NO_PAD.encode(session_body(&access, refresh).to_string());
    for line in &lines {
        for secret in [
            password,
            refresh,
            cookie_refresh,
            signature,
            &expired_sig,
            ANON_KEY,
            &b64_session[..40],
        ] {
            assert!(!line.contains(secret), "secret in log line: {line}");
        }
    }
}

#[tokio::test]
async fn a_null_refresh_body_counts_as_no_body() {
    let app = TestApp::spawn().await;
    let res = app
        .post("/api/auth/refresh")
        .header("content-type", "application/json")
        .body("null")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    // No body and no session cookie: the same answer as an empty body.
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["details"]["fieldErrors"]["refresh_token"][0],
        "is required"
    );
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn the_verified_token_cache_stays_bounded_and_never_serves_a_tampered_token() {
    let upstream = wiremock::MockServer::start().await;
    user_endpoint().mount(&upstream).await;
    let mut settings = test_settings(&upstream.uri());
    settings.auth.token_cache_entries = 16;
    let app = supagate::server::Application::build(settings).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let verifier = app.state().verifier.clone();
    tokio::spawn(app.run());
    let client = reqwest::Client::new();
    let call = |token: String| {
        client
            .get(format!("{base}/api/auth/user"))
            .bearer_auth(token)
            .send()
    };
    // A flood of distinct valid tokens: every one is served, the cache keeps at most 16.
    let mut last = String::new();
    for i in 0..200 {
        let mut claims = user_claims(&fixture_user_id());
        claims["jti"] = json!(format!("flood-{i}"));
        last = mint_hs256(&claims);
        assert_eq!(call(last.clone()).await.unwrap().status(), 200);
    }
    let held = verifier.cache().len();
    assert!(held <= 16 && held > 0, "cache holds {held}");
    // The last one is cached; the same token with its signature altered is still refused.
    let mut tampered = last.clone().into_bytes();
    let i = tampered.len() - 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let res = call(String::from_utf8(tampered).unwrap()).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(call(last).await.unwrap().status(), 200);
}
