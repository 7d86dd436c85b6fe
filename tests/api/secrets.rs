//! No secret in a log line or a response: the real binary at `RUST_LOG=trace` runs a full
//! scenario set (auth login/refresh/user/logout, items CRUD, a Stripe webhook, admin user
//! create), and neither its stderr nor any response (status line, headers, body) carries a
//! key, the JWT secret, a token, a password or the Stripe secret/signature — except the
//! login/refresh answers, which hand the session to its owner on purpose.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::*;

const ANON: &str = "anon-LEAKCHECK-9f2c1b7e4d";
const SERVICE: &str = "service-LEAKCHECK-5a8e3c0f21";
const STRIPE: &str = "whsec_LEAKCHECK_7d1e9b2a40";
const PASSWORD: &str = "pw-LEAKCHECK-31415926";
const NEW_USER_PASSWORD: &str = "pw-LEAKCHECK-newuser-2718";
const SESSION_ACCESS: &str = "access-LEAKCHECK-upstream-session";
const SESSION_REFRESH: &str = "refresh-LEAKCHECK-upstream-session";
const NEW_USER_ID: &str = "55555555-5555-4555-8555-555555555555";

async fn mount_supabase(app: &TestApp) {
    let session = json!({
        "access_token": SESSION_ACCESS, "token_type": "bearer", "expires_in": 3600,
        "expires_at": 4102444800u64, "refresh_token": SESSION_REFRESH,
        "user": {"id": USER_A, "aud": "authenticated", "email": "ann@example.com"}
    });
    let single = "application/vnd.pgrst.object+json";
    let item = item_row(ITEM_ID, USER_A);
    let mocks = [
        Mock::given(method("POST"))
            .and(path("/auth/v1/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(session)),
        Mock::given(method("GET"))
            .and(path("/auth/v1/user"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"id": USER_A, "aud": "authenticated", "email": "ann@example.com"}),
            )),
        Mock::given(method("POST"))
            .and(path("/auth/v1/logout"))
            .respond_with(ResponseTemplate::new(204)),
        Mock::given(method("POST"))
            .and(path("/auth/v1/admin/users"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"id": NEW_USER_ID, "aud": "authenticated", "email": "new@example.com"}),
            )),
        Mock::given(method("PATCH"))
            .and(path("/rest/v1/profiles"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", single)
                    .set_body_json(profile_row(NEW_USER_ID)),
            ),
        Mock::given(method("HEAD"))
            .and(path("/rest/v1/items"))
            .respond_with(ResponseTemplate::new(200).insert_header("content-range", "*/0")),
        Mock::given(method("GET"))
            .and(path("/rest/v1/subscriptions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([]))),
        Mock::given(method("GET"))
            .and(path("/rest/v1/items"))
            .and(header("accept", single))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", single)
                    .set_body_json(item.clone()),
            ),
        Mock::given(method("GET"))
            .and(path("/rest/v1/items"))
            .respond_with(pg_list(json!([item.clone()]), "0-0/1")),
    ];
    for mock in mocks {
        mock.mount(&app.upstream).await;
    }
    for verb in ["POST", "PATCH", "DELETE"] {
        Mock::given(method(verb))
            .and(path("/rest/v1/items"))
            .respond_with(
                ResponseTemplate::new(if verb == "POST" { 201 } else { 200 })
                    .insert_header("content-type", single)
                    .set_body_json(item.clone()),
            )
            .mount(&app.upstream)
            .await;
    }
}

struct Seen {
    what: &'static str,
    text: String,
}

async fn record(what: &'static str, res: reqwest::Response) -> Seen {
    let mut text = format!("{} {}\n", what, res.status());
    for (name, value) in res.headers() {
        text.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    text.push_str(&res.text().await.unwrap_or_default());
    Seen { what, text }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_scenario_at_trace_level_leaks_no_secret_into_logs_or_responses() {
    let app = TestApp::spawn_with_mocks(vec![jwks_mock("jwks_initial")], |_| {}).await;
    mount_supabase(&app).await;
    FakeBilling::mount(&app).await;
    let mut env = test_env(&app.upstream.uri());
    env.insert("SUPABASE_ANON_KEY".into(), ANON.into());
    env.insert("SUPABASE_SERVICE_ROLE_KEY".into(), SERVICE.into());
    env.insert("STRIPE_WEBHOOK_SECRET".into(), STRIPE.into());
    env.insert("SUPAGATE_COOKIES__ENABLED".into(), "true".into());
    env.insert("RUST_LOG".into(), "trace".into());
    let process = Process::start(&env);
    let client = reqwest::Client::new();
    let url = |p: &str| process.url(p);
    let user = user_token(USER_A);
    let admin = admin_token(USER_B);
    let item = format!("/api/items/{ITEM_ID}");

    let mut seen = Vec::new();
    let login = client
        .post(url("/api/auth/login"))
        .json(&json!({"email": "ann@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    seen.push(record("login", login).await);
    let refresh = client
        .post(url("/api/auth/refresh"))
        .json(&json!({"refresh_token": SESSION_REFRESH}))
        .send()
        .await
        .unwrap();
    assert_eq!(refresh.status(), 200);
    seen.push(record("refresh", refresh).await);
    let steps: Vec<(&'static str, reqwest::RequestBuilder, u16)> = vec![
        (
            "user",
            client.get(url("/api/auth/user")).bearer_auth(&user),
            200,
        ),
        (
            "list",
            client.get(url("/api/items")).bearer_auth(&user),
            200,
        ),
        ("get", client.get(url(&item)).bearer_auth(&user), 200),
        (
            "create",
            client
                .post(url("/api/items"))
                .bearer_auth(&user)
                .json(&json!({"name": "Mug", "price": 12.5})),
            201,
        ),
        (
            "patch",
            client
                .patch(url(&item))
                .bearer_auth(&user)
                .json(&json!({"name": "Cup"})),
            200,
        ),
        ("delete", client.delete(url(&item)).bearer_auth(&user), 204),
        (
            "admin create user",
            client.post(url("/api/users")).bearer_auth(&admin).json(
                &json!({"email": "new@example.com", "password": NEW_USER_PASSWORD,
                              "username": "newbie"}),
            ),
            201,
        ),
        (
            "bad token",
            client
                .get(url("/api/items"))
                .bearer_auth(format!("{user}x")),
            401,
        ),
        (
            "bad login body",
            client
                .post(url("/api/auth/login"))
                .json(&json!({"email": "nope", "password": PASSWORD})),
            400,
        ),
        (
            "logout",
            client.post(url("/api/auth/logout")).bearer_auth(&user),
            204,
        ),
    ];
    for (what, req, want) in steps {
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), want, "{what}");
        seen.push(record(what, res).await);
    }
    let payload = stripe_event("checkout_session_completed")["payload"]
        .as_str()
        .unwrap()
        .to_owned();
    let signature = stripe_header(payload.as_bytes(), STRIPE, unix_now());
    let v1 = signature.split("v1=").nth(1).unwrap().to_owned();
    let hook = client
        .post(url("/api/webhooks/stripe"))
        .header("Content-Type", "application/json")
        .header("Stripe-Signature", &signature)
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 200);
    seen.push(record("webhook", hook).await);
    let forged = client
        .post(url("/api/webhooks/stripe"))
        .header("Content-Type", "application/json")
        .header(
            "Stripe-Signature",
            format!("t={},v1={}", unix_now(), "ab".repeat(32)),
        )
        .body(payload)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    seen.push(record("forged webhook", forged).await);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = process.drain_log();
    assert!(
        log.iter()
            .any(|l| l.contains("TRACE") || l.contains("DEBUG")),
        "RUST_LOG=trace produced no trace/debug output: is the filter applied?"
    );
    let jwt_secret = fixture("jwt.json")["hs256_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let signature_of = |jwt: &str| jwt.rsplit('.').next().unwrap().to_owned();
    // (name, value, may appear in the login/refresh answers)
    let secrets: Vec<(&str, String, bool)> = vec![
        ("anon key", ANON.into(), false),
        ("service key", SERVICE.into(), false),
        ("JWT secret", jwt_secret, false),
        ("Stripe secret", STRIPE.into(), false),
        ("Stripe signature", v1, false),
        ("password", PASSWORD.into(), false),
        ("new user's password", NEW_USER_PASSWORD.into(), false),
        ("user access token", signature_of(&user), false),
        ("admin access token", signature_of(&admin), false),
        ("session access token", SESSION_ACCESS.into(), true),
        ("session refresh token", SESSION_REFRESH.into(), true),
    ];
    let mut leaks = Vec::new();
    for (name, value, owner_may_see) in &secrets {
        for line in &log {
            if line.contains(value.as_str()) {
                leaks.push(format!("{name} in the log: {line}"));
            }
        }
        for s in &seen {
            let excused = *owner_may_see && matches!(s.what, "login" | "refresh");
            if !excused && s.text.contains(value.as_str()) {
                leaks.push(format!("{name} in the {} response", s.what));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    let mut targets = std::collections::BTreeMap::<String, usize>::new();
    for line in &log {
        // `<time> <LEVEL> [<span>{<fields>}: ]<target>: <message>`
        let target = line
            .split_whitespace()
            .skip(2)
            .find(|w| w.ends_with(':') && !w.contains(['{', '}', '=']));
        if let Some(target) = target {
            *targets
                .entry(target.trim_end_matches(':').to_owned())
                .or_default() += 1;
        }
    }
    println!("log lines by target: {targets:?}");
    println!(
        "checked {} log lines and {} responses for {} secrets",
        log.len(),
        seen.len(),
        secrets.len()
    );
}
