//! The test harness: starts supagate on port 0 against a wiremock "Supabase", mints
//! Supabase-shaped tokens, and runs the real binary when a test needs a whole process.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use supagate::config::Settings;
use supagate::server::Application;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const ANON_KEY: &str = "test-anon-key";
pub const SERVICE_KEY: &str = "test-service-role-key";
pub const JWKS_PATH: &str = "/auth/v1/.well-known/jwks.json";
/// Where supagate writes `business.free_item_limit` at start-up (the database enforces it).
pub const ITEM_LIMIT_RULE_PATH: &str = "/rest/v1/rpc/set_item_limit_rule";
pub const STRIPE_SECRET: &str = "whsec_test_harness_secret";

pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A fixture file under `tests/fixtures/`, parsed.
pub fn fixture(name: &str) -> Value {
    let path = repo_path(&format!("tests/fixtures/{name}"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {} unreadable: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {name} is not JSON: {e}"))
}

/// The environment a test instance starts from (APP_ENV=test, keys, the fixture HS256 secret,
/// the fixtures' issuer), pointed at `upstream`.
pub fn test_env(upstream: &str) -> HashMap<String, String> {
    let jwt = fixture("jwt.json");
    HashMap::from([
        ("APP_ENV".into(), "test".into()),
        ("SUPABASE_URL".into(), upstream.to_owned()),
        ("SUPABASE_ANON_KEY".into(), ANON_KEY.into()),
        ("SUPABASE_SERVICE_ROLE_KEY".into(), SERVICE_KEY.into()),
        (
            "SUPABASE_JWT_SECRET".into(),
            jwt["hs256_secret"].as_str().unwrap().to_owned(),
        ),
        ("STRIPE_WEBHOOK_SECRET".into(), STRIPE_SECRET.into()),
        (
            "SUPAGATE_AUTH__ISSUER".into(),
            jwt["issuer"].as_str().unwrap().to_owned(),
        ),
        ("HOST".into(), "127.0.0.1".into()),
        ("PORT".into(), "0".into()),
        ("SUPAGATE_SERVER__WORKERS".into(), "1".into()),
    ])
}

/// A `Cookie` header of a fixture's `[{name, value}, ...]` list, in order.
pub fn cookie_header(cookies: &Value) -> String {
    cookies
        .as_array()
        .expect("a list of cookies")
        .iter()
        .map(|c| {
            format!(
                "{}={}",
                c["name"].as_str().unwrap(),
                c["value"].as_str().unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn test_settings(upstream: &str) -> Settings {
    Settings::load(&repo_path("config"), &test_env(upstream)).expect("test settings load")
}

pub struct TestApp {
    pub address: String,
    pub upstream: MockServer,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts an instance whose settings `tweak` may change first.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_with_mocks(Vec::new(), tweak).await
    }

    /// Like [`spawn_with`], with `mocks` mounted on the fake Supabase *before* the server
    /// starts (the JWKS is fetched and the item limit written at start-up). The item-limit
    /// write is accepted (204) unless `mocks` answer it first.
    pub async fn spawn_with_mocks(mocks: Vec<Mock>, tweak: impl FnOnce(&mut Settings)) -> Self {
        let upstream = MockServer::start().await;
        for mock in mocks {
            upstream.register(mock).await;
        }
        upstream.register(item_limit_rule_accepted()).await;
        let mut settings = test_settings(&upstream.uri());
        tweak(&mut settings);
        let app = Application::build(settings).expect("application builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            address,
            upstream,
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path))
    }

    pub fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.put(self.url(path))
    }

    pub fn patch(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.patch(self.url(path))
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.delete(self.url(path))
    }

    /// Every request the fake Supabase received on behalf of clients, in order. Signing-key
    /// (JWKS) loads and the start-up item-limit write are left out: they are made in the
    /// background, on their own clock.
    /// The Prometheus text `/metrics` serves.
    pub async fn metrics_text(&self) -> String {
        self.get("/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn upstream_requests(&self) -> Vec<wiremock::Request> {
        let mut all = self.all_upstream_requests().await;
        all.retain(|r| r.url.path() != JWKS_PATH && r.url.path() != ITEM_LIMIT_RULE_PATH);
        all
    }

    /// Every request the fake Supabase received, JWKS loads included.
    pub async fn all_upstream_requests(&self) -> Vec<wiremock::Request> {
        self.upstream.received_requests().await.unwrap_or_default()
    }

    /// The bearer tokens supagate sent to `path` on the fake Supabase, oldest first.
    pub async fn bearers_sent_to(&self, path: &str) -> Vec<String> {
        self.all_upstream_requests()
            .await
            .iter()
            .filter(|r| r.url.path() == path)
            .map(bearer_of)
            .collect()
    }
}

/// The bearer token of a request (empty without one).
pub fn bearer_of(req: &wiremock::Request) -> String {
    req.headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned()
}

/// PostgREST's answer to the item-limit write (`set_item_limit_rule` returns `void`).
pub fn item_limit_rule_accepted() -> Mock {
    Mock::given(method("POST"))
        .and(path(ITEM_LIMIT_RULE_PATH))
        .respond_with(ResponseTemplate::new(204))
}

/// Reads a response as `(status, json body)`; panics with the raw text if it is not JSON.
pub async fn json_of(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text:?}"));
    (status, body)
}

/// Asserts the docs/api.md error shape and returns the code.
pub fn error_code(body: &Value) -> &str {
    assert!(body["error"].is_string(), "error message missing: {body}");
    body["code"]
        .as_str()
        .unwrap_or_else(|| panic!("code missing: {body}"))
}

// ---- tokens ----

pub fn fixture_user_id() -> String {
    fixture("jwt.json")["user_id"].as_str().unwrap().to_owned()
}

/// Claims shaped like Supabase Auth's access tokens, for `sub`, valid for an hour.
pub fn user_claims(sub: &str) -> Value {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let jwt = fixture("jwt.json");
    json!({
        "iss": jwt["issuer"], "sub": sub, "aud": "authenticated",
        "exp": now + 3600, "iat": now, "email": "ann@example.com", "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {}, "role": "authenticated", "aal": "aal1",
        "session_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "is_anonymous": false
    })
}

/// Signs `claims` with the fixtures' legacy HS256 secret.
pub fn mint_hs256(claims: &Value) -> String {
    let jwt = fixture("jwt.json");
    let secret = jwt["hs256_secret"].as_str().unwrap();
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A valid HS256 token for `sub`.
pub fn user_token(sub: &str) -> String {
    mint_hs256(&user_claims(sub))
}

/// A valid HS256 token for an admin (`app_metadata.role = "admin"`).
pub fn admin_token(sub: &str) -> String {
    let mut claims = user_claims(sub);
    claims["app_metadata"]["role"] = json!("admin");
    mint_hs256(&claims)
}

/// A fixture token from `jwt.json` (`tokens.<name>.token`).
pub fn fixture_token(name: &str) -> String {
    fixture("jwt.json")["tokens"][name]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no fixture token {name}"))
        .to_owned()
}

/// `GET /auth/v1/.well-known/jwks.json` answering `doc` (`jwks_initial`, `jwks_rotated`, ...).
pub fn jwks_mock(doc: &str) -> Mock {
    let body = fixture("jwt.json")[doc].clone();
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
}

/// How many times the fake Supabase served the JWKS.
pub async fn jwks_fetches(app: &TestApp) -> usize {
    app.all_upstream_requests()
        .await
        .iter()
        .filter(|r| r.url.path() == JWKS_PATH)
        .count()
}

// ---- the real binary ----

/// A supagate process started from the built binary, with its stderr collected.
pub struct Process {
    pub child: Child,
    pub port: u16,
    pub lines: mpsc::Receiver<String>,
}

impl Process {
    /// Starts `supagate serve` with exactly `env` (plus PATH) and waits for its port.
    pub fn start(env: &HashMap<String, String>) -> Self {
        let (mut child, rx) = spawn_serve(env);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(port) = line
                        .split("listening on port ")
                        .nth(1)
                        .and_then(|p| p.trim().parse().ok())
                    {
                        return Self {
                            child,
                            port,
                            lines: rx,
                        };
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("supagate did not start; stderr: {seen:#?}");
                }
            }
        }
    }

    /// Like [`Process::start`], for a `RUST_LOG` that hides the start-up line: the port is
    /// chosen here (a free one, released just before the start) and polled until it accepts.
    pub fn start_quiet(env: &HashMap<String, String>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut env = env.clone();
        env.insert("PORT".into(), port.to_string());
        let (mut child, rx) = spawn_serve(&env);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if std::time::Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
                let _ = child.kill();
                let _ = child.wait();
                let seen: Vec<String> = rx.try_iter().collect();
                panic!("supagate did not start on port {port}; stderr: {seen:#?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            lines: rx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits up to `within` for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Everything it has logged so far.
    pub fn drain_log(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

/// Spawns `supagate serve` with exactly `env` (plus PATH); its stderr lines arrive on the
/// channel.
fn spawn_serve(env: &HashMap<String, String>) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_supagate"))
        .env_clear()
        .envs(env)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SUPAGATE_CONFIG_DIR", repo_path("config"))
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary with `args` and exactly `env`; returns (exit code, stdout, stderr).
pub fn run_binary(args: &[&str], env: &HashMap<String, String>) -> (i32, String, String) {
    let mut env = env.clone();
    env.entry("SUPAGATE_CONFIG_DIR".into())
        .or_insert_with(|| repo_path("config").display().to_string());
    run_binary_alone(args, &env)
}

/// The binary with exactly `env` (no config directory unless `env` names one), run from an
/// empty directory.
pub fn run_binary_alone(args: &[&str], env: &HashMap<String, String>) -> (i32, String, String) {
    // Removed when the run is over (every test is a process of its own under nextest: a
    // directory named after the process was left behind by each).
    let dir = tempfile::Builder::new()
        .prefix("supagate-alone-")
        .tempdir()
        .expect("a scratch directory");
    let out = Command::new(env!("CARGO_BIN_EXE_supagate"))
        .args(args)
        .env_clear()
        .envs(env)
        .current_dir(dir.path())
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---- Stripe webhooks ----

/// `tests/fixtures/stripe.json` (made with the official `stripe` SDK).
pub fn stripe_fixture() -> Value {
    fixture("stripe.json")
}

/// One fixture event by name (`checkout_session_completed`, `subscription_created`, ...).
pub fn stripe_event(name: &str) -> Value {
    stripe_fixture()["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no stripe fixture event {name}"))
        .clone()
}

pub fn unix_now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

/// A `Stripe-Signature` header as `stripe.webhooks.generateTestHeaderString` makes it, written
/// independently of the crate's verifier (hmac over `"{t}.{payload}"`, lower-case hex), so the
/// HTTP tests can sign with the live clock. `signer_reproduces_every_sdk_header` proves it.
pub fn stripe_header(payload: &[u8], secret: &str, t: i64) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(payload);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A fixture event's payload with `id` replaced, re-signed later by the caller.
pub fn with_event_id(payload: &str, id: &str) -> String {
    let mut v: Value = serde_json::from_str(payload).unwrap();
    v["id"] = json!(id);
    serde_json::to_string_pretty(&v).unwrap()
}

impl TestApp {
    /// Delivers `payload` to the Stripe webhook with `header` as `Stripe-Signature`.
    pub async fn deliver(&self, payload: &str, header: Option<&str>) -> reqwest::Response {
        let mut req = self
            .post("/api/webhooks/stripe")
            .header("Content-Type", "application/json; charset=utf-8")
            .body(payload.to_owned());
        if let Some(header) = header {
            req = req.header("Stripe-Signature", header);
        }
        req.send().await.unwrap()
    }

    /// Delivers a payload signed now with the configured secret, as Stripe would.
    pub async fn deliver_signed(&self, payload: &str) -> reqwest::Response {
        let header = stripe_header(payload.as_bytes(), STRIPE_SECRET, unix_now());
        self.deliver(payload, Some(&header)).await
    }

    /// The requests the fake Supabase received on `path` (e.g. `/rest/v1/rpc/x`).
    pub async fn requests_to(&self, method: &str, path: &str) -> Vec<wiremock::Request> {
        self.upstream_requests()
            .await
            .into_iter()
            .filter(|r| r.method.as_str() == method && r.url.path() == path)
            .collect()
    }
}

/// A stateful stand-in for the billing tables and RPCs behind PostgREST, mirroring the SQL in
/// `supabase/migrations/20250601000200_billing.sql` (record once, newer-or-equal wins, insert
/// ignoring duplicates) so tests can check what ends up stored, not only what was sent.
#[derive(Clone, Default)]
pub struct FakeBilling {
    pub state: std::sync::Arc<std::sync::Mutex<BillingState>>,
}

#[derive(Default, Debug)]
pub struct BillingState {
    pub events: Vec<String>,
    pub customers: HashMap<String, String>,
    /// subscription id → the last applied RPC arguments.
    pub subscriptions: HashMap<String, Value>,
    pub payments: HashMap<String, Value>,
    /// Path → how many upcoming calls answer 503 (a PostgREST `PGRST001`-style outage).
    pub fail_next: HashMap<String, u32>,
}

impl FakeBilling {
    /// Mounts the fake on `app.upstream`.
    pub async fn mount(app: &TestApp) -> Self {
        use wiremock::matchers::{method, path};
        let fake = Self::default();
        for (verb, route) in [
            ("GET", "/rest/v1/webhook_events"),
            ("POST", "/rest/v1/rpc/record_webhook_event"),
            ("POST", "/rest/v1/rpc/link_stripe_customer"),
            ("POST", "/rest/v1/rpc/apply_subscription_event"),
            ("POST", "/rest/v1/payments"),
        ] {
            let fake = fake.clone();
            wiremock::Mock::given(method(verb))
                .and(path(route))
                .respond_with(move |req: &wiremock::Request| fake.answer(req))
                .mount(&app.upstream)
                .await;
        }
        fake
    }

    pub fn fail_next(&self, path: &str, times: u32) {
        self.state
            .lock()
            .unwrap()
            .fail_next
            .insert(path.to_owned(), times);
    }

    pub fn subscription(&self, id: &str) -> Option<Value> {
        self.state.lock().unwrap().subscriptions.get(id).cloned()
    }

    pub fn events(&self) -> Vec<String> {
        self.state.lock().unwrap().events.clone()
    }

    fn answer(&self, req: &wiremock::Request) -> wiremock::ResponseTemplate {
        use wiremock::ResponseTemplate;
        let mut s = self.state.lock().unwrap();
        let route = req.url.path().to_owned();
        if let Some(n) = s.fail_next.get_mut(&route) {
            if *n > 0 {
                *n -= 1;
                return ResponseTemplate::new(503).set_body_json(json!({
                    "code": "PGRST001", "message": "Database client error", "details": null, "hint": null
                }));
            }
        }
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        match route.as_str() {
            "/rest/v1/webhook_events" => {
                let wanted = req
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "id")
                    .map(|(_, v)| v.trim_start_matches("eq.").to_owned())
                    .unwrap_or_default();
                let rows: Vec<Value> = s
                    .events
                    .iter()
                    .filter(|e| **e == wanted)
                    .map(|e| json!({ "id": e }))
                    .collect();
                ResponseTemplate::new(200).set_body_json(rows)
            }
            "/rest/v1/rpc/record_webhook_event" => {
                let id = body["p_event_id"].as_str().unwrap_or_default().to_owned();
                let new = !s.events.contains(&id);
                if new {
                    s.events.push(id);
                }
                ResponseTemplate::new(200).set_body_json(new)
            }
            "/rest/v1/rpc/link_stripe_customer" => {
                let customer = body["p_stripe_customer_id"].as_str().unwrap_or_default();
                let user = body["p_user_id"].as_str().unwrap_or_default();
                s.customers.insert(user.to_owned(), customer.to_owned());
                ResponseTemplate::new(204)
            }
            "/rest/v1/rpc/apply_subscription_event" => {
                let id = body["p_subscription_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let incoming = body["p_event_created"].as_i64().unwrap_or(i64::MIN);
                let stored = s
                    .subscriptions
                    .get(&id)
                    .and_then(|v| v["p_event_created"].as_i64());
                let apply = !matches!(stored, Some(stored) if stored > incoming);
                if apply {
                    s.subscriptions.insert(id, body);
                }
                ResponseTemplate::new(200).set_body_json(apply)
            }
            "/rest/v1/payments" => {
                let id = body["id"].as_str().unwrap_or_default().to_owned();
                s.payments.entry(id).or_insert(body);
                ResponseTemplate::new(201)
            }
            _ => ResponseTemplate::new(404),
        }
    }
}

// ---- PostgREST / Auth stand-ins and what-was-sent assertions (data API tests) ----

pub const ITEM_SELECT: &str =
    "id,name,description,price,category_id,user_id,created_at,updated_at,category:categories(id,name)";
pub const USER_A: &str = "11111111-1111-4111-8111-111111111111";
pub const USER_B: &str = "22222222-2222-4222-8222-222222222222";
pub const ITEM_ID: &str = "33333333-3333-4333-8333-333333333333";
pub const CATEGORY_ID: &str = "44444444-4444-4444-8444-444444444444";

/// An item row as PostgREST returns it.
pub fn item_row(id: &str, owner: &str) -> Value {
    json!({
        "id": id, "name": "Mug", "description": null, "price": 12.5,
        "category_id": CATEGORY_ID, "user_id": owner,
        "created_at": "2026-01-05T10:00:00+00:00", "updated_at": "2026-01-05T10:00:00+00:00",
        "category": {"id": CATEGORY_ID, "name": "Kitchen"}
    })
}

pub fn profile_row(id: &str) -> Value {
    json!({
        "id": id, "username": "ann", "full_name": "Ann", "avatar_url": null,
        "created_at": "2026-01-05T10:00:00+00:00", "updated_at": "2026-01-05T10:00:00+00:00"
    })
}

/// A PostgREST list answer with its `Content-Range`.
pub fn pg_list(rows: Value, content_range: &str) -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(200)
        .insert_header("content-range", content_range)
        .set_body_json(rows)
}

/// A PostgREST error answer.
pub fn pg_error(status: u16, code: &str) -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(status).set_body_json(json!({
        "code": code, "message": format!("upstream says {code}"),
        "details": "secret detail", "hint": null
    }))
}

/// Mounts `response` for `method` on `/rest/v1/<table>` (any query).
pub async fn mock_rest(
    app: &TestApp,
    http_method: &str,
    table: &str,
    response: wiremock::ResponseTemplate,
) {
    wiremock::Mock::given(wiremock::matchers::method(http_method))
        .and(wiremock::matchers::path(format!("/rest/v1/{table}")))
        .respond_with(response)
        .mount(&app.upstream)
        .await;
}

/// The decoded query pairs of a recorded request, in order (decoded the way PostgREST does).
pub fn query_pairs(req: &wiremock::Request) -> Vec<(String, String)> {
    req.url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn header_of<'a>(req: &'a wiremock::Request, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Every value sent for `name` (to catch duplicated headers).
pub fn headers_of(req: &wiremock::Request, name: &str) -> Vec<String> {
    req.headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

/// A call made for a user: anon key as `apikey`, the user's own token as bearer.
pub fn assert_sent_as_user(req: &wiremock::Request, token: &str) {
    assert_eq!(
        headers_of(req, "apikey"),
        vec![ANON_KEY.to_owned()],
        "{}",
        req.url
    );
    assert_eq!(
        headers_of(req, "authorization"),
        vec![format!("Bearer {token}")],
        "{}",
        req.url
    );
}

/// An anonymous call: the anon key both as `apikey` and bearer.
pub fn assert_sent_anonymously(req: &wiremock::Request) {
    assert_sent_as_user(req, ANON_KEY);
}

/// The service key appears on no recorded request, in any header.
pub fn assert_service_key_never_sent(requests: &[wiremock::Request]) {
    for req in requests {
        for (name, value) in &req.headers {
            let value = value.to_str().unwrap_or("");
            assert!(
                !value.contains(SERVICE_KEY),
                "service key sent in {name} to {} {}",
                req.method,
                req.url
            );
        }
    }
}

pub fn body_json(req: &wiremock::Request) -> Value {
    serde_json::from_slice(&req.body).expect("request body is JSON")
}

/// Requests to `/rest/v1/<table>` only.
pub fn requests_to<'a>(
    requests: &'a [wiremock::Request],
    path: &str,
) -> Vec<&'a wiremock::Request> {
    requests.iter().filter(|r| r.url.path() == path).collect()
}

/// A token whose `user_metadata` claims admin (which must grant nothing).
pub fn user_metadata_admin_token(sub: &str) -> String {
    let mut claims = user_claims(sub);
    claims["user_metadata"]["role"] = json!("admin");
    mint_hs256(&claims)
}

/// Asserts the `validation_failed` body names `field`.
pub fn assert_field_error(body: &Value, field: &str) {
    assert_eq!(error_code(body), "validation_failed", "{body}");
    let messages = &body["details"]["fieldErrors"][field];
    assert!(
        messages
            .as_array()
            .is_some_and(|m| !m.is_empty() && m.iter().all(Value::is_string)),
        "no fieldErrors.{field} in {body}"
    );
}
