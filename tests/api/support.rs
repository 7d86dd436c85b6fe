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
use wiremock::MockServer;

pub const ANON_KEY: &str = "test-anon-key";
pub const SERVICE_KEY: &str = "test-service-role-key";
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
        let upstream = MockServer::start().await;
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

    /// Every request the fake Supabase received, in order.
    pub async fn upstream_requests(&self) -> Vec<wiremock::Request> {
        self.upstream.received_requests().await.unwrap_or_default()
    }
}

/// Reads a response as `(status, json body)`; panics with the raw text if it is not JSON.
pub async fn json_of(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text:?}"));
    (status, body)
}

/// Asserts the API.md error shape and returns the code.
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

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary with `args` and exactly `env`; returns (exit code, stdout, stderr).
pub fn run_binary(args: &[&str], env: &HashMap<String, String>) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_supagate"))
        .args(args)
        .env_clear()
        .envs(env)
        .env("SUPAGATE_CONFIG_DIR", repo_path("config"))
        .current_dir(std::env::temp_dir())
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
