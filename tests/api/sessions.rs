//! Cookie sessions as `@supabase/ssr` runs them: server-side refresh (single-flight,
//! ahead of expiry, refused, unreachable), broken cookies as "signed out", logout like auth-js,
//! `Sb-Forwarded-For`, Auth's 429 and error table, and the EdDSA/RS512 keys. Auth is wiremock;
//! every test checks what supagate sends as well as what it answers.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::support::*;

const COOKIE: &str = "sb-127-auth-token";

// ---- helpers ----

/// Cookie sessions written with ssr's default options (not HttpOnly, no Secure), so written
/// cookies can be compared with ssr's byte for byte.
fn ssr_cookies(s: &mut supagate::config::Settings) {
    s.cookies.enabled = true;
    s.cookies.http_only = false;
    s.cookies.secure = Some(false);
}

async fn cookie_app(extra: Vec<Mock>) -> TestApp {
    cookie_app_with(extra, |_| {}).await
}

async fn cookie_app_with(
    extra: Vec<Mock>,
    tweak: impl FnOnce(&mut supagate::config::Settings),
) -> TestApp {
    let mut mocks = vec![jwks_mock("jwks_all_algorithms")];
    mocks.extend(extra);
    TestApp::spawn_with_mocks(mocks, |s| {
        ssr_cookies(s);
        tweak(s);
    })
    .await
}

fn session_json(access: &str, refresh: &str) -> Value {
    json!({"access_token": access, "token_type": "bearer", "expires_in": 3600,
           "expires_at": 4102444800u64, "refresh_token": refresh,
           "user": {"id": fixture_user_id(), "email": "ann@example.com"}})
}

/// `sb-127-auth-token=base64-…` holding a session with these tokens.
fn cookie_of(access: &str, refresh: &str) -> String {
    let json = session_json(access, refresh).to_string();
    format!("{COOKIE}=base64-{}", URL_SAFE_NO_PAD.encode(json))
}

/// An HS256 access token for the fixture user expiring `secs` from now (negative: expired).
fn token_expiring_in(secs: i64) -> String {
    let mut claims = user_claims(&fixture_user_id());
    claims["exp"] = json!(unix_now() + secs);
    mint_hs256(&claims)
}

fn refresh_grant() -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/auth/v1/token"))
        .and(query_param("grant_type", "refresh_token"))
}

fn ok_json(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

fn auth_error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"code": code, "message": "from the fake Auth"}))
}

/// `GET /auth/v1/user` answering the fixture user.
fn user_endpoint() -> Mock {
    Mock::given(method("GET"))
        .and(path("/auth/v1/user"))
        .respond_with(ok_json(
            json!({"id": fixture_user_id(), "email": "ann@example.com"}),
        ))
}

/// `GET /rest/v1/categories` answering an empty list (an optional-auth route).
fn categories_endpoint() -> Mock {
    Mock::given(method("GET"))
        .and(path("/rest/v1/categories"))
        .respond_with(pg_list(json!([]), "*/0"))
}

fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// `(name, value, attributes lower-cased and sorted)` of a `Set-Cookie` header.
fn parse_set_cookie(h: &str) -> (String, String, Vec<String>) {
    let mut parts = h.split(';').map(str::trim);
    let (name, value) = parts.next().unwrap().split_once('=').unwrap();
    let mut attrs: Vec<String> = parts.map(str::to_ascii_lowercase).collect();
    attrs.sort();
    (name.to_owned(), value.to_owned(), attrs)
}

/// Names of the cookies a response deletes (`Max-Age=0`).
fn deleted(res: &reqwest::Response) -> Vec<String> {
    set_cookies(res)
        .iter()
        .map(|h| parse_set_cookie(h))
        .filter(|(_, v, a)| v.is_empty() && a.contains(&"max-age=0".to_owned()))
        .map(|(n, _, _)| n)
        .collect()
}

fn bearer_of(r: &wiremock::Request) -> String {
    r.headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn sbff(r: &wiremock::Request) -> Option<String> {
    r.headers
        .get("sb-forwarded-for")
        .map(|v| v.to_str().unwrap().to_owned())
}

// ---- 1. server-side refresh ----

/// The `@supabase/ssr` round trip: a chunked session written by ssr (0.12.7), its access token
/// expired, is refreshed by supagate, and supagate writes back exactly what ssr writes after
/// the same refresh. `SUPAGATE_RECORD_SSR=1` records supagate's headers for the fixture
/// generator, which checks that `createServerClient` reads them as the new session.
#[tokio::test]
async fn ssr_round_trip_an_expired_ssr_session_is_refreshed_and_written_back_as_ssr_writes_it() {
    let case = fixture("ssr_cookies.json")["cases"]["refresh_expired_chunked"].clone();
    let answer = case["auth_refresh_answer"].clone();
    let new_access = answer["access_token"].as_str().unwrap().to_owned();
    // Auth's body as the fake Auth in the generator sent it, byte for byte (key order too).
    let answer_text = case["session_json"].as_str().unwrap().to_owned();
    let app = cookie_app(vec![
        refresh_grant()
            .and(body_json(json!({"refresh_token": "q5vdmm2xzz3k"})))
            .and(header("apikey", ANON_KEY))
            .and(header("x-supabase-api-version", "2024-01-01"))
            .and(header("sb-forwarded-for", "127.0.0.1"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(answer_text, "application/json"))
            .expect(1),
        user_endpoint(),
    ])
    .await;
    let res = app
        .get("/api/auth/user")
        .header("cookie", case["request_cookie_header"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["cache-control"],
        "private, no-cache, no-store, must-revalidate, max-age=0"
    );
    let ours = set_cookies(&res);
    let theirs: Vec<String> = case["set_cookies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["set_cookie_header"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ours.iter().map(|h| parse_set_cookie(h)).collect::<Vec<_>>(),
        theirs
            .iter()
            .map(|h| parse_set_cookie(h))
            .collect::<Vec<_>>(),
        "supagate's Set-Cookie headers are ssr's"
    );
    // The request was served with the new access token.
    let users = app.requests_to("GET", "/auth/v1/user").await;
    assert_eq!(bearer_of(&users[0]), format!("Bearer {new_access}"));

    let recorded = repo_path("tests/fixtures/ssr_supagate_refresh.json");
    if std::env::var_os("SUPAGATE_RECORD_SSR").is_some() {
        let doc = json!({
            "description": "Set-Cookie headers supagate answered in ssr_round_trip_* (tests/api/sessions.rs); generate.mjs checks createServerClient reads them as the refreshed session",
            "set_cookie_headers": ours,
        });
        std::fs::write(
            &recorded,
            serde_json::to_string_pretty(&doc).unwrap() + "\n",
        )
        .unwrap();
    }
    let checked: Value =
        serde_json::from_str(&std::fs::read_to_string(&recorded).unwrap()).unwrap();
    assert_eq!(
        checked["set_cookie_headers"],
        json!(ours),
        "what createServerClient was shown to read is what supagate writes today"
    );
}

#[tokio::test]
async fn fifty_concurrent_requests_with_one_expired_session_make_one_refresh_and_get_one_new_session(
) {
    let new_access = fixture_token("valid_es256");
    let app = cookie_app(vec![
        refresh_grant()
            .and(body_json(json!({"refresh_token": "rt-old"})))
            .respond_with(
                ok_json(session_json(&new_access, "rt-new")).set_delay(Duration::from_millis(300)),
            )
            .expect(1),
        user_endpoint(),
    ])
    .await;
    let cookie = cookie_of(&fixture_token("expired_es256"), "rt-old");
    let requests = (0..50).map(|_| {
        let req = app.get("/api/auth/user").header("cookie", cookie.clone());
        async move { req.send().await.unwrap() }
    });
    let responses = futures_util::future::join_all(requests).await;
    let mut written = Vec::new();
    for res in &responses {
        assert_eq!(res.status(), 200);
        written.push(set_cookies(res));
    }
    assert!(
        written.iter().all(|w| *w == written[0]),
        "one identical new session"
    );
    let (name, value, _) = parse_set_cookie(&written[0][0]);
    assert_eq!(name, COOKIE);
    let stored: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(value.strip_prefix("base64-").unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stored["refresh_token"], "rt-new");
    let grants = app.requests_to("POST", "/auth/v1/token").await;
    assert_eq!(
        sbff(&grants[0]).as_deref(),
        Some("127.0.0.1"),
        "the client's IP"
    );
    let users = app.requests_to("GET", "/auth/v1/user").await;
    assert_eq!(users.len(), 50);
    assert!(users
        .iter()
        .all(|r| bearer_of(r) == format!("Bearer {new_access}")));
    // `.expect(1)` on the refresh grant is verified when the mock server drops.
}

#[tokio::test]
async fn a_refused_refresh_signs_out_401_session_expired_on_protected_routes_anonymous_elsewhere() {
    for code in [
        "refresh_token_not_found",
        "refresh_token_already_used",
        "session_not_found",
        "session_expired",
    ] {
        let app = cookie_app(vec![
            refresh_grant().respond_with(auth_error(400, code)),
            categories_endpoint(),
        ])
        .await;
        let cookie = cookie_of(&fixture_token("expired_es256"), &format!("rt-{code}"));

        let res = app
            .get("/api/auth/user")
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted(&res), [COOKIE], "{code}: cookies cleared");
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\""
        );
        let (status, body) = json_of(res).await;
        assert_eq!(
            (status, error_code(&body)),
            (401, "session_expired"),
            "{code}"
        );

        let res = app
            .get("/api/categories")
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted(&res), [COOKIE]);
        assert_eq!(res.status(), 200, "{code}: anonymous on an optional route");
        let rest = app.requests_to("GET", "/rest/v1/categories").await;
        assert_eq!(
            bearer_of(&rest[0]),
            format!("Bearer {ANON_KEY}"),
            "as anonymous"
        );
    }
}

#[tokio::test]
async fn a_refresh_that_cannot_reach_auth_is_503_or_504_and_leaves_the_cookies_alone() {
    let cookie = cookie_of(&token_expiring_in(-600), "rt");
    for (answer, want) in [
        (ResponseTemplate::new(500), 503),
        (ResponseTemplate::new(503), 503),
        (ResponseTemplate::new(504), 504),
        (ok_json(json!({})).set_delay(Duration::from_secs(3)), 504),
    ] {
        let app = cookie_app_with(vec![refresh_grant().respond_with(answer)], |s| {
            s.upstream.request_timeout_ms = 500;
        })
        .await;
        let res = app
            .get("/api/auth/user")
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert!(set_cookies(&res).is_empty(), "cookies untouched");
        assert_eq!(res.status(), want);
    }
    // Refused connection: nothing listens on the configured Auth.
    // (A short budget: a refused connection is retried, as auth-js does, until it is spent.)
    let app = TestApp::spawn_with(|s| {
        ssr_cookies(s);
        s.supabase.url = "http://127.0.0.1:9".into();
        s.upstream.request_timeout_ms = 1000;
    })
    .await;
    let res = app
        .get("/api/auth/user")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(set_cookies(&res).is_empty());
    assert_eq!(res.status(), 503);
}

/// Answers `failures` times with 503, then with `session`, noting when each call arrived.
struct FlakyAuth {
    arrivals: std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
    failures: usize,
    session: Value,
}

impl wiremock::Respond for FlakyAuth {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        let mut arrivals = self.arrivals.lock().unwrap();
        arrivals.push(std::time::Instant::now());
        if arrivals.len() <= self.failures {
            ResponseTemplate::new(503)
        } else {
            ok_json(self.session.clone())
        }
    }
}

/// One Auth blip does not fail the page: the server-side refresh is retried as auth-js
/// retries it (200 ms, then 400 ms later), still once per refresh token for concurrent
/// requests, and the page gets the new session.
#[tokio::test]
async fn the_server_side_refresh_survives_a_blip_retrying_on_auth_js_schedule() {
    let arrivals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = cookie_app(vec![
        refresh_grant().respond_with(FlakyAuth {
            arrivals: arrivals.clone(),
            failures: 2,
            session: session_json(&fixture_token("valid_es256"), "rt-new"),
        }),
        user_endpoint(),
    ])
    .await;
    let cookie = cookie_of(&token_expiring_in(-600), "rt-blip");
    let requests = (0..5).map(|_| app.get("/api/auth/user").header("cookie", &cookie).send());
    for res in futures_util::future::join_all(requests).await {
        let res = res.unwrap();
        assert_eq!(res.status(), 200);
    }
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(
        arrivals.len(),
        3,
        "two failures and the success, for all five requests"
    );
    let gaps: Vec<u128> = arrivals
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    assert!(
        gaps[0] >= 200 && gaps[1] >= 400,
        "auth-js's back-off: {gaps:?}"
    );
}

#[tokio::test]
async fn an_expired_bearer_token_is_never_refreshed() {
    let app = cookie_app(vec![refresh_grant()
        .respond_with(ok_json(session_json(&fixture_token("valid_es256"), "n")))
        .expect(0)])
    .await;
    let res = app
        .get("/api/categories")
        .bearer_auth(token_expiring_in(-600))
        // A cookie session beside it changes nothing: the bearer is the credential.
        .header("cookie", cookie_of(&token_expiring_in(-600), "rt"))
        .send()
        .await
        .unwrap();
    assert!(set_cookies(&res).is_empty());
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (401, "token_expired"));
}

#[tokio::test]
async fn a_session_about_to_expire_is_refreshed_ahead_and_served_as_is_if_that_fails() {
    let soon = token_expiring_in(45); // inside the 90 s margin, still valid
    let fresh = fixture_token("valid_es256");
    let app = cookie_app(vec![
        refresh_grant()
            .and(body_json(json!({"refresh_token": "rt-soon"})))
            .respond_with(ok_json(session_json(&fresh, "rt-next")))
            .expect(1),
        refresh_grant()
            .and(body_json(json!({"refresh_token": "rt-broken"})))
            .respond_with(ResponseTemplate::new(500))
            .expect(1),
        user_endpoint(),
    ])
    .await;
    let res = app
        .get("/api/auth/user")
        .header("cookie", cookie_of(&soon, "rt-soon"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(set_cookies(&res).len(), 1, "the new session is written");
    let res = app
        .get("/api/auth/user")
        .header("cookie", cookie_of(&soon, "rt-broken"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the still-valid token serves");
    assert!(set_cookies(&res).is_empty());
    let users = app.requests_to("GET", "/auth/v1/user").await;
    assert_eq!(bearer_of(&users[0]), format!("Bearer {fresh}"));
    assert_eq!(bearer_of(&users[1]), format!("Bearer {soon}"));
}

#[tokio::test]
async fn a_cookie_session_auth_says_is_gone_is_401_session_expired_and_cleared() {
    let app = cookie_app(vec![Mock::given(method("GET"))
        .and(path("/auth/v1/user"))
        .respond_with(auth_error(403, "session_not_found"))])
    .await;
    let res = app
        .get("/api/auth/user")
        .header("cookie", cookie_of(&fixture_token("valid_es256"), "rt"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted(&res), [COOKIE]);
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (401, "session_expired"));
    // The same answer for a bearer token leaves cookies alone (none were the credential).
    let res = app
        .get("/api/auth/user")
        .bearer_auth(fixture_token("valid_es256"))
        .header("cookie", cookie_of(&fixture_token("valid_es256"), "rt"))
        .send()
        .await
        .unwrap();
    assert!(set_cookies(&res).is_empty());
    assert_eq!(res.status(), 401);
}

// ---- 2. broken cookies ----

#[tokio::test]
async fn a_broken_session_cookie_means_signed_out_and_is_cleared() {
    let app = cookie_app(vec![categories_endpoint()]).await;
    let good =
        URL_SAFE_NO_PAD.encode(session_json(&fixture_token("valid_es256"), "rt").to_string());
    let no_access =
        URL_SAFE_NO_PAD.encode(json!({"refresh_token": "r", "expires_at": 1}).to_string());
    let cases: Vec<(&str, String)> = vec![
        ("bad base64", format!("{COOKIE}=base64-%%%")),
        ("not JSON", format!("{COOKIE}=%7B%22nope")),
        (
            "missing chunk",
            format!(
                "{COOKIE}.0=base64-{}; {COOKIE}.2={}",
                &good[..40],
                &good[80..]
            ),
        ),
        ("no access token", format!("{COOKIE}=base64-{no_access}")),
        ("base64l (ssr 0.6.0)", format!("{COOKIE}=base64l-1k-{good}")),
        (
            "token fails verification",
            cookie_of(&fixture_token("tampered_payload_es256"), "rt"),
        ),
    ];
    for (what, cookie) in &cases {
        let sent: Vec<String> = cookie
            .split("; ")
            .map(|c| c.split('=').next().unwrap().to_owned())
            .collect();
        let res = app
            .get("/api/auth/user")
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted(&res), sent, "{what}: cleared");
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        let (status, body) = json_of(res).await;
        assert_eq!((status, error_code(&body)), (401, "unauthorized"), "{what}");

        let res = app
            .get("/api/categories")
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted(&res), sent, "{what}: cleared");
        assert_eq!(res.status(), 200, "{what}: anonymous");
    }
    // A bad *bearer* token stays 401 on an optional route.
    let res = app
        .get("/api/categories")
        .bearer_auth(fixture_token("tampered_payload_es256"))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_signature"));
}

/// ssr and auth-js decide on `expires_at` and refresh: a cookie session whose access token
/// supagate cannot check for a reason of its own keys is refreshed, not signed out. Two such
/// reasons: the token's signing key is gone from the JWKS (rotated out, revoked), and an
/// HS256 token while no legacy secret is configured. The new session is written back.
#[tokio::test]
async fn a_cookie_session_failing_for_a_key_reason_is_refreshed_not_signed_out() {
    let new_session = session_json(&fixture_token("valid_es256"), "rt-new");
    let cases: Vec<(&str, String, bool)> = vec![
        (
            "key gone from the JWKS",
            fixture_token("unknown_kid_es256"),
            true,
        ),
        ("HS256 without a secret", token_expiring_in(3600), false),
    ];
    for (what, access, with_secret) in cases {
        let app = cookie_app_with(
            vec![
                refresh_grant()
                    .and(body_json(json!({"refresh_token": "rt-old"})))
                    .respond_with(ok_json(new_session.clone()))
                    .expect(1),
                user_endpoint(),
            ],
            |s| {
                if !with_secret {
                    s.auth.jwt_secret = None;
                }
            },
        )
        .await;
        let res = app
            .get("/api/auth/user")
            .header("cookie", cookie_of(&access, "rt-old"))
            .send()
            .await
            .unwrap();
        let written = set_cookies(&res);
        assert_eq!(res.status(), 200, "{what}");
        assert!(
            written
                .iter()
                .any(|c| c.starts_with(&format!("{COOKIE}=base64-"))),
            "{what}: the new session is written: {written:?}"
        );
        let user = app.requests_to("GET", "/auth/v1/user").await;
        assert_eq!(
            bearer_of(&user[0]),
            format!("Bearer {}", fixture_token("valid_es256")),
            "{what}: served with the new token"
        );
    }
}

/// A key-reason failure whose refresh Auth refuses is an ended session like any other.
#[tokio::test]
async fn a_key_reason_failure_whose_refresh_is_refused_signs_out() {
    let app = cookie_app(vec![
        refresh_grant().respond_with(auth_error(400, "refresh_token_not_found"))
    ])
    .await;
    let res = app
        .get("/api/auth/user")
        .header(
            "cookie",
            cookie_of(&fixture_token("unknown_kid_es256"), "rt"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted(&res), [COOKIE]);
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (401, "session_expired"));
}

/// While the signing keys cannot be fetched nothing is known about a token naming a key we
/// have not seen: 503, the cookies kept, no refresh spent; a bearer token gets 503 too.
#[tokio::test]
async fn a_failing_signing_key_fetch_is_503_and_keeps_the_cookies() {
    let keys = fixture("jwt.json")["jwks_all_algorithms"].clone();
    let app = TestApp::spawn_with_mocks(
        vec![
            Mock::given(method("GET"))
                .and(path(JWKS_PATH))
                .respond_with(ok_json(keys))
                .up_to_n_times(1),
            Mock::given(method("GET"))
                .and(path(JWKS_PATH))
                .respond_with(ResponseTemplate::new(500)),
            refresh_grant()
                .respond_with(ok_json(session_json(&fixture_token("valid_es256"), "n")))
                .expect(0),
        ],
        |s| {
            ssr_cookies(s);
            s.auth.jwks_min_refetch_interval_secs = 0;
        },
    )
    .await;
    // The first set is loaded (a known key verifies) before the fetch starts failing.
    let res = app
        .get("/api/auth/user")
        .bearer_auth(fixture_token("valid_es256"))
        .send()
        .await
        .unwrap();
    assert_ne!(res.status(), 503, "the first key set loaded");
    let res = app
        .get("/api/auth/user")
        .header(
            "cookie",
            cookie_of(&fixture_token("unknown_kid_es256"), "rt"),
        )
        .send()
        .await
        .unwrap();
    assert!(set_cookies(&res).is_empty(), "cookies kept");
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (503, "upstream_unavailable"));
    let res = app
        .get("/api/auth/user")
        .bearer_auth(fixture_token("unknown_kid_es256"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
}

/// Server-side refreshes are not the client's `POST /api/auth/refresh` (10 a minute per IP):
/// twelve users behind one address, each with an expired cookie session, all get their page.
/// They count against a rule of their own (`"server-side refresh"`), which does limit them.
#[tokio::test]
async fn server_side_refreshes_count_against_their_own_rule_not_the_refresh_route() {
    let fresh = session_json(&fixture_token("valid_es256"), "rt-new");
    let app = cookie_app(vec![
        refresh_grant().respond_with(ok_json(fresh.clone())),
        categories_endpoint(),
    ])
    .await;
    for n in 0..12 {
        let res = app
            .get("/api/categories")
            .header(
                "cookie",
                cookie_of(&token_expiring_in(-600), &format!("rt-{n}")),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "user {n}");
    }
    let app = cookie_app_with(
        vec![
            refresh_grant().respond_with(ok_json(fresh)),
            categories_endpoint(),
        ],
        |s| {
            let rule = s
                .rate_limit
                .rules
                .iter_mut()
                .find(|r| r.routes == ["server-side refresh"])
                .expect("the default config has the rule");
            rule.per_minute = 2;
            rule.burst = Some(2);
        },
    )
    .await;
    let mut statuses = Vec::new();
    for n in 0..3 {
        let res = app
            .get("/api/categories")
            .header(
                "cookie",
                cookie_of(&token_expiring_in(-600), &format!("rt-{n}")),
            )
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(app.requests_to("POST", "/auth/v1/token").await.len(), 2);
}

// ---- 3. logout ----

fn logout_endpoint() -> wiremock::MockBuilder {
    Mock::given(method("POST")).and(path("/auth/v1/logout"))
}

#[tokio::test]
async fn logout_refreshes_an_expired_cookie_session_first_revokes_it_and_clears_the_cookies() {
    let fresh = fixture_token("valid_es256");
    let app = cookie_app(vec![
        refresh_grant()
            .respond_with(ok_json(session_json(&fresh, "rt-new")))
            .expect(1),
        logout_endpoint()
            .and(query_param("scope", "global"))
            .and(header("authorization", format!("Bearer {fresh}").as_str()))
            .and(header("sb-forwarded-for", "127.0.0.1"))
            .respond_with(ResponseTemplate::new(204))
            .expect(1),
    ])
    .await;
    let res = app
        .post("/api/auth/logout")
        .header(
            "cookie",
            cookie_of(&fixture_token("expired_es256"), "rt-old"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(set_cookies(&res).len(), 1, "only the deletion, no write");
    assert_eq!(deleted(&res), [COOKIE]);
}

#[tokio::test]
async fn logout_passes_its_scope_and_keeps_the_cookies_for_others() {
    let token = fixture_token("valid_es256");
    let app = cookie_app(vec![
        logout_endpoint().respond_with(ResponseTemplate::new(204))
    ])
    .await;
    for (scope, cleared) in [("local", true), ("others", false), ("global", true)] {
        let res = app
            .post(&format!("/api/auth/logout?scope={scope}"))
            .header("cookie", cookie_of(&token, "rt"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
        assert_eq!(!deleted(&res).is_empty(), cleared, "{scope}");
    }
    let sent: Vec<String> = app
        .requests_to("POST", "/auth/v1/logout")
        .await
        .iter()
        .map(|r| r.url.query().unwrap_or("").to_owned())
        .collect();
    assert_eq!(sent, ["scope=local", "scope=others", "scope=global"]);
    let res = app
        .post("/api/auth/logout?scope=everywhere")
        .header("cookie", cookie_of(&token, "rt"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

/// auth-js 2.119 `_signOut` per scope when Auth fails (503): `local` has removed the session
/// before asking, so this browser is signed out all the same, and the failure is reported;
/// `global` keeps it (and reports); `others` keeps it. Wherever the session goes, every
/// pending PKCE verifier goes with it (`removeAllPKCEVerifiers`): the indexed slots, the
/// index and the single verifier, and only cookies the browser holds.
#[tokio::test]
async fn logout_follows_auth_js_per_scope_when_auth_fails_and_removes_pending_verifiers() {
    let token = fixture_token("valid_es256");
    let item = |json: &str| format!("base64-{}", URL_SAFE_NO_PAD.encode(json));
    let flow = "0123456789abcdef0123456789abcdef";
    let cookie = format!(
        "{}; {COOKIE}-flow-{flow}-code-verifier={}; {COOKIE}-flows-code-verifier={}; {COOKIE}-code-verifier={}",
        cookie_of(&token, "rt"),
        item("\"v1\""),
        item(&format!("[\"{flow}\",\"notindexed\"]")),
        item("\"v1\""),
    );
    let app = cookie_app(vec![
        logout_endpoint().respond_with(ResponseTemplate::new(503))
    ])
    .await;
    for (scope, cleared) in [("local", true), ("global", false), ("others", false)] {
        let res = app
            .post(&format!("/api/auth/logout?scope={scope}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 503, "{scope}: the failure is reported");
        let mut gone = deleted(&res);
        gone.sort();
        if cleared {
            let mut want = vec![
                COOKIE.to_owned(),
                format!("{COOKIE}-code-verifier"),
                format!("{COOKIE}-flow-{flow}-code-verifier"),
                format!("{COOKIE}-flows-code-verifier"),
            ];
            want.sort();
            assert_eq!(gone, want, "{scope}");
        } else {
            assert!(gone.is_empty(), "{scope}: kept");
        }
    }
    assert_eq!(app.requests_to("POST", "/auth/v1/logout").await.len(), 3);
    // Success: `global` and `local` remove the verifiers too.
    let app = cookie_app(vec![
        logout_endpoint().respond_with(ResponseTemplate::new(204))
    ])
    .await;
    let res = app
        .post("/api/auth/logout")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(deleted(&res).len(), 4);
}

#[tokio::test]
async fn logout_that_auth_cannot_do_is_503_or_504_and_keeps_the_cookies() {
    let token = fixture_token("valid_es256");
    for (upstream, want) in [(503, 503), (504, 504), (500, 502)] {
        let app = cookie_app(vec![
            logout_endpoint().respond_with(ResponseTemplate::new(upstream))
        ])
        .await;
        let res = app
            .post("/api/auth/logout")
            .header("cookie", cookie_of(&token, "rt"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), want);
        assert!(
            set_cookies(&res).is_empty(),
            "{upstream}: not revoked, cookies kept"
        );
    }
    // Already revoked (403), user gone (404), bad JWT (401): logged out all the same.
    for upstream in [401, 403, 404] {
        let app = cookie_app(vec![
            logout_endpoint().respond_with(auth_error(upstream, "session_not_found"))
        ])
        .await;
        let res = app
            .post("/api/auth/logout")
            .header("cookie", cookie_of(&token, "rt"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204, "{upstream}");
        assert_eq!(deleted(&res), [COOKIE]);
    }
}

#[tokio::test]
async fn logout_of_a_session_that_already_ended_clears_the_cookies() {
    let app = cookie_app(vec![
        refresh_grant().respond_with(auth_error(400, "refresh_token_not_found")),
        logout_endpoint()
            .respond_with(ResponseTemplate::new(204))
            .expect(0),
    ])
    .await;
    let res = app
        .post("/api/auth/logout")
        .header(
            "cookie",
            cookie_of(&fixture_token("expired_es256"), "rt-dead"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(deleted(&res), [COOKIE]);
}

// ---- 4. Sb-Forwarded-For and Auth's 429 ----

/// Every Auth call made for a client: (route, method, upstream path, body).
fn auth_routes() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "/api/auth/login",
            "/auth/v1/token",
            json!({"email": "ann@example.com", "password": "pw"}),
        ),
        (
            "/api/auth/register",
            "/auth/v1/signup",
            json!({"email": "ann@example.com", "password": "pw"}),
        ),
        (
            "/api/auth/refresh",
            "/auth/v1/token",
            json!({"refresh_token": "rt-body"}),
        ),
        (
            "/api/auth/recover",
            "/auth/v1/recover",
            json!({"email": "ann@example.com"}),
        ),
        ("/api/auth/logout", "/auth/v1/logout", Value::Null),
        ("/api/auth/user", "/auth/v1/user", Value::Null),
    ]
}

async fn call_route(app: &TestApp, route: &str, body: &Value) -> reqwest::Response {
    let token = fixture_token("valid_es256");
    let req = if route == "/api/auth/user" {
        app.get(route)
    } else {
        app.post(route)
    };
    let req = req.header("x-forwarded-for", "6.6.6.6, 203.0.113.7");
    let req = if body.is_null() {
        req.bearer_auth(token)
    } else {
        req.json(body)
    };
    req.send().await.unwrap()
}

/// Auth answering every call of [`auth_routes`] with success.
fn auth_route_answers() -> Vec<Mock> {
    let session = session_json(&fixture_token("valid_es256"), "rt");
    vec![
        Mock::given(method("POST"))
            .and(path("/auth/v1/token"))
            .respond_with(ok_json(session.clone())),
        Mock::given(method("POST"))
            .and(path("/auth/v1/signup"))
            .respond_with(ok_json(session)),
        Mock::given(method("POST"))
            .and(path("/auth/v1/recover"))
            .respond_with(ok_json(json!({}))),
        logout_endpoint().respond_with(ResponseTemplate::new(204)),
        user_endpoint(),
    ]
}

/// The most recent request Auth got at `upstream`.
async fn last_sent_to(app: &TestApp, upstream: &str) -> wiremock::Request {
    let sent = app.all_upstream_requests().await;
    sent.into_iter()
        .rev()
        .find(|r| r.url.path() == upstream)
        .unwrap_or_else(|| panic!("nothing sent to {upstream}"))
}

#[tokio::test]
async fn every_auth_call_carries_the_client_ip_the_rate_limiter_uses_as_sb_forwarded_for() {
    let answers = auth_route_answers();
    // Behind a trusted proxy the client is the right-most untrusted X-Forwarded-For hop.
    let app = cookie_app_with(answers, |s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    for (route, upstream, body) in auth_routes() {
        let res = call_route(&app, route, &body).await;
        assert!(res.status().is_success(), "{route}: {}", res.status());
        let last = last_sent_to(&app, upstream).await;
        assert_eq!(sbff(&last).as_deref(), Some("203.0.113.7"), "{route}");
    }
    // Without a trusted proxy the peer is the client; a forged header changes nothing.
    let app = cookie_app(vec![Mock::given(method("POST"))
        .and(path("/auth/v1/recover"))
        .respond_with(ok_json(json!({})))])
    .await;
    call_route(
        &app,
        "/api/auth/recover",
        &json!({"email": "a@example.com"}),
    )
    .await;
    let sent = app.requests_to("POST", "/auth/v1/recover").await;
    assert_eq!(sbff(&sent[0]).as_deref(), Some("127.0.0.1"));
}

const SECRET_KEY: &str = "sb_secret_test-key-0123456789";

/// The hosted platform honours `Sb-Forwarded-For` only on a call made with a secret key: with
/// one configured (`auto`), every client Auth call goes with it (as `apikey`, and as the
/// bearer where there is no user token) and carries the client's IP; a user's own calls keep
/// the user's token as bearer. The signing-key fetch keeps the publishable key.
#[tokio::test]
async fn with_an_sb_secret_key_every_client_auth_call_goes_with_it_and_carries_the_client_ip() {
    let answers = auth_route_answers();
    let app = cookie_app_with(answers, |s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".into()];
        s.supabase.forward_client_ip = supagate::config::ForwardClientIp::Auto;
        s.supabase.service_role_key = Some(supagate::config::Secret::new(SECRET_KEY));
    })
    .await;
    let user_token = format!("Bearer {}", fixture_token("valid_es256"));
    for (route, upstream, body) in auth_routes() {
        let res = call_route(&app, route, &body).await;
        assert!(res.status().is_success(), "{route}: {}", res.status());
        let last = last_sent_to(&app, upstream).await;
        assert_eq!(sbff(&last).as_deref(), Some("203.0.113.7"), "{route}");
        assert_eq!(last.headers["apikey"], SECRET_KEY, "{route}");
        let want_bearer = if body.is_null() {
            user_token.clone()
        } else {
            format!("Bearer {SECRET_KEY}")
        };
        assert_eq!(bearer_of(&last), want_bearer, "{route}");
    }
    let jwks = last_sent_to(&app, JWKS_PATH).await;
    assert_eq!(jwks.headers["apikey"], ANON_KEY);
}

/// Without a key the platform honours, supagate does not pretend: no `Sb-Forwarded-For`, the
/// publishable key as before, and `/ready` and `check-config` say per-client limits are off.
#[tokio::test]
async fn without_a_secret_key_no_client_ip_is_forwarded_and_ready_says_per_client_limits_are_off() {
    let app = cookie_app_with(
        vec![Mock::given(method("POST"))
            .and(path("/auth/v1/recover"))
            .respond_with(ok_json(json!({})))],
        |s| s.supabase.forward_client_ip = supagate::config::ForwardClientIp::Auto,
    )
    .await;
    call_route(
        &app,
        "/api/auth/recover",
        &json!({"email": "a@example.com"}),
    )
    .await;
    let sent = app.requests_to("POST", "/auth/v1/recover").await;
    assert_eq!(sbff(&sent[0]), None);
    assert_eq!(sent[0].headers["apikey"], ANON_KEY);
    let (_, body) = json_of(app.get("/ready").send().await.unwrap()).await;
    let limits = &body["details"]["per_client_auth_limits"];
    assert_eq!(limits["on"], false, "{body}");
    assert!(
        limits["detail"].as_str().unwrap().contains("sb_secret_"),
        "{body}"
    );

    let mut env = test_env("http://127.0.0.1:9");
    env.insert("SUPAGATE_SUPABASE__FORWARD_CLIENT_IP".into(), "auto".into());
    let (code, stdout, stderr) = run_binary(&["check-config"], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("per-client Auth rate limits are off"),
        "{stderr}"
    );
    assert!(
        stdout.starts_with("# per-client Auth rate limits: off"),
        "{stdout}"
    );
    env.remove("SUPABASE_SERVICE_ROLE_KEY");
    env.insert("SUPABASE_SECRET_KEY".into(), SECRET_KEY.into());
    let (_, stdout, stderr) = run_binary(&["check-config"], &env);
    assert!(!stderr.contains("rate limits are off"), "{stderr}");
    assert!(
        stdout.starts_with("# per-client Auth rate limits: on"),
        "{stdout}"
    );
    assert!(!stdout.contains(SECRET_KEY), "the key is redacted");
}

#[tokio::test]
async fn auths_429_is_429_rate_limited_with_retry_after_on_every_auth_route_recover_included() {
    let limited = ResponseTemplate::new(429)
        .insert_header("retry-after", "17")
        .set_body_json(json!({"code": "over_request_rate_limit", "message": "slow down"}));
    let app = cookie_app_with(
        vec![Mock::given(wiremock::matchers::path_regex(
            "^/auth/v1/(token|signup|recover|logout|user)$",
        ))
        .respond_with(limited)],
        |s| s.rate_limit.enabled = false,
    )
    .await;
    for (route, _, body) in auth_routes() {
        let res = call_route(&app, route, &body).await;
        assert_eq!(
            res.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            Some("17"),
            "{route}"
        );
        let (status, body) = json_of(res).await;
        assert_eq!(
            (status, error_code(&body)),
            (429, "rate_limited"),
            "{route}"
        );
    }
}

// ---- 5. Auth's error table ----

#[tokio::test]
async fn auth_client_errors_stay_4xx_with_a_stable_code_and_401s_carry_a_challenge() {
    let cases = [
        (
            "/auth/v1/signup",
            "/api/auth/register",
            400,
            "email_provider_disabled",
            403,
            "provider_disabled",
        ),
        (
            "/auth/v1/signup",
            "/api/auth/register",
            422,
            "signup_disabled",
            403,
            "signup_disabled",
        ),
        (
            "/auth/v1/signup",
            "/api/auth/register",
            400,
            "captcha_failed",
            400,
            "captcha_failed",
        ),
        (
            "/auth/v1/signup",
            "/api/auth/register",
            400,
            "email_address_invalid",
            400,
            "email_address_invalid",
        ),
        (
            "/auth/v1/signup",
            "/api/auth/register",
            429,
            "over_email_send_rate_limit",
            429,
            "rate_limited",
        ),
        (
            "/auth/v1/token",
            "/api/auth/login",
            422,
            "phone_provider_disabled",
            403,
            "provider_disabled",
        ),
        (
            "/auth/v1/token",
            "/api/auth/login",
            400,
            "captcha_failed",
            400,
            "captcha_failed",
        ),
        (
            "/auth/v1/token",
            "/api/auth/login",
            400,
            "invalid_credentials",
            401,
            "invalid_credentials",
        ),
        (
            "/auth/v1/token",
            "/api/auth/login",
            422,
            "code_from_a_newer_auth",
            400,
            "auth_rejected",
        ),
        (
            "/auth/v1/token",
            "/api/auth/login",
            409,
            "",
            400,
            "auth_rejected",
        ),
    ];
    for (upstream, route, status, code, want_status, want_code) in cases {
        let app = cookie_app_with(
            vec![Mock::given(method("POST"))
                .and(path(upstream))
                .respond_with(auth_error(status, code))],
            |s| s.rate_limit.enabled = false,
        )
        .await;
        let res = app
            .post(route)
            .json(&json!({"email": "ann@example.com", "password": "pw"}))
            .send()
            .await
            .unwrap();
        if want_status == 401 {
            assert_eq!(res.headers()["www-authenticate"], "Bearer", "{code}");
        }
        let (got, body) = json_of(res).await;
        assert_eq!(
            (got, error_code(&body)),
            (want_status, want_code),
            "{status} {code}"
        );
    }
}

// ---- 6. keys ----

#[tokio::test]
async fn eddsa_and_rs512_tokens_verify_and_each_key_verifies_only_its_own_algorithm() {
    let app = cookie_app(vec![user_endpoint()]).await;
    for name in ["valid_eddsa", "valid_rs512", "valid_es256", "valid_rs256"] {
        let res = app
            .get("/api/auth/user")
            .bearer_auth(fixture_token(name))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{name}");
    }
    let res = app
        .get("/api/auth/user")
        .bearer_auth(fixture_token("rs256_with_rs512_key"))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_algorithm"));
}

/// Supabase Auth can sign with ES512 (P-521), which `jsonwebtoken` cannot verify: the key is
/// read from the JWKS and the signature checked with `p521`, the claims as for every token.
/// Keys and tokens come from `jose` (`tests/fixtures/gen`).
#[tokio::test]
async fn es512_tokens_verify_and_a_tampered_or_expired_one_is_refused() {
    let app = cookie_app(vec![user_endpoint()]).await;
    let res = app
        .get("/api/auth/user")
        .bearer_auth(fixture_token("valid_es512"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let user = last_sent_to(&app, "/auth/v1/user").await;
    assert_eq!(
        bearer_of(&user),
        format!("Bearer {}", fixture_token("valid_es512"))
    );
    for (name, code) in [
        ("tampered_payload_es512", "invalid_signature"),
        ("expired_es512", "token_expired"),
    ] {
        let res = app
            .get("/api/auth/user")
            .bearer_auth(fixture_token(name))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(res).await;
        assert_eq!((status, error_code(&body)), (401, code), "{name}");
    }
    // The P-521 key verifies ES512 only: an ES256 header naming it is refused.
    let es512 = fixture_token("valid_es512");
    let (_, rest) = es512.split_once('.').unwrap();
    let header = URL_SAFE_NO_PAD.encode(
        json!({"alg": "ES256", "kid": fixture("jwt.json")["keys"]["es512"]["kid"], "typ": "JWT"})
            .to_string(),
    );
    let res = app
        .get("/api/auth/user")
        .bearer_auth(format!("{header}.{rest}"))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_algorithm"));
}
