//! API keys end to end: created once, listed without their secret, acting as their owner with
//! their scopes, refused when revoked, expired, out of scope or unknown; the token a key's
//! call reaches PostgREST with (HS256 with the legacy secret, or ES256 as supagate's own
//! issuer, checked against the JWKS it publishes); rate limits and metrics per key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use supagate::config::{KeySigning, RateLimitRule, Secret, Settings};
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, ResponseTemplate};

use super::support::{
    bearer_of, error_code, fixture, json_of, pg_list, user_token, TestApp, SERVICE_KEY, USER_A,
    USER_B,
};

/// The `api_keys` table as PostgREST would serve it: the owner (the bearer token's `sub`)
/// creates, lists and deletes their own rows; the secret key finds a row by `secret_hash`.
#[derive(Clone, Default)]
struct FakeKeys {
    rows: Arc<Mutex<Vec<Value>>>,
}

/// The `sub` of a token, unverified (the fake trusts what supagate sent; the tests check it).
fn sub_of(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap_or_default();
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_default();
    serde_json::from_slice::<Value>(&bytes).unwrap_or_default()["sub"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn query_of(req: &Request) -> HashMap<String, String> {
    req.url.query_pairs().into_owned().collect()
}

fn listed(row: &Value) -> Value {
    let mut row = row.clone();
    row.as_object_mut().unwrap().remove("secret_hash");
    row.as_object_mut().unwrap().remove("user_id");
    row
}

impl wiremock::Respond for FakeKeys {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut rows = self.rows.lock().unwrap();
        let token = bearer_of(req);
        let query = query_of(req);
        match req.method.as_str() {
            "POST" => {
                let body: Value = serde_json::from_slice(&req.body).unwrap();
                let mut row = body.clone();
                row["id"] = json!(uuid::Uuid::new_v4());
                row["user_id"] = json!(sub_of(&token));
                row["created_at"] = json!("2026-01-05T10:00:00+00:00");
                rows.push(row.clone());
                ResponseTemplate::new(201).set_body_json(listed(&row))
            }
            "GET" if token == SERVICE_KEY => {
                let wanted = query["secret_hash"].trim_start_matches("eq.").to_owned();
                let found: Vec<Value> = rows
                    .iter()
                    .filter(|r| r["secret_hash"] == wanted)
                    .cloned()
                    .collect();
                ResponseTemplate::new(200).set_body_json(found)
            }
            "GET" if query.contains_key("id") => {
                let sub = sub_of(&token);
                let id = query["id"].trim_start_matches("eq.").to_owned();
                match rows.iter().find(|r| r["id"] == id && r["user_id"] == sub) {
                    Some(row) => ResponseTemplate::new(200).set_body_json(listed(row)),
                    None => ResponseTemplate::new(406)
                        .set_body_json(json!({"code": "PGRST116", "message": "0 rows"})),
                }
            }
            "GET" => {
                let sub = sub_of(&token);
                let mine: Vec<Value> = rows
                    .iter()
                    .filter(|r| r["user_id"] == sub)
                    .map(listed)
                    .collect();
                let n = mine.len();
                pg_list(json!(mine), &format!("0-{}/{n}", n.saturating_sub(1)))
            }
            "DELETE" => {
                let sub = sub_of(&token);
                let id = query["id"].trim_start_matches("eq.").to_owned();
                let before = rows.len();
                rows.retain(|r| !(r["id"] == id && r["user_id"] == sub));
                if rows.len() == before {
                    ResponseTemplate::new(406)
                        .set_body_json(json!({"code": "PGRST116", "message": "0 rows"}))
                } else {
                    ResponseTemplate::new(200).set_body_json(json!({"id": id}))
                }
            }
            _ => ResponseTemplate::new(405),
        }
    }
}

fn keys_on(s: &mut Settings) {
    s.auth.api_keys.enabled = true;
}

async fn spawn(tweak: impl FnOnce(&mut Settings)) -> (TestApp, FakeKeys) {
    let app = TestApp::spawn_with(|s| {
        keys_on(s);
        tweak(s);
    })
    .await;
    let keys = FakeKeys::default();
    Mock::given(path("/rest/v1/api_keys"))
        .respond_with(keys.clone())
        .mount(&app.upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/v1/items"))
        .respond_with(pg_list(json!([]), "*/0"))
        .mount(&app.upstream)
        .await;
    (app, keys)
}

async fn create_key(app: &TestApp, owner: &str, scopes: Value) -> (String, String) {
    let res = app
        .post("/api/keys")
        .bearer_auth(user_token(owner))
        .json(&json!({"name": "ci", "scopes": scopes}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 201, "{body}");
    (
        body["key"].as_str().unwrap().to_owned(),
        body["id"].as_str().unwrap().to_owned(),
    )
}

/// A key of `USER_A`, used once (so it is cached), then `DELETE <route(key id)>` by its
/// owner (204).
async fn used_key_then_deleted(app: &TestApp, route: impl FnOnce(&str) -> String) -> String {
    let (key, id) = create_key(app, USER_A, json!(["items:read"])).await;
    assert_eq!(list_items_with(app, &key).await.0, 200, "cached now");
    let res = app
        .delete(&route(&id))
        .bearer_auth(user_token(USER_A))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    key
}

async fn list_items_with(app: &TestApp, key: &str) -> (u16, Value) {
    json_of(app.get("/api/items").bearer_auth(key).send().await.unwrap()).await
}

/// The bearer tokens supagate sent to `/rest/v1/items`, oldest first.
async fn item_bearers(app: &TestApp) -> Vec<String> {
    app.bearers_sent_to("/rest/v1/items").await
}

async fn key_lookups(app: &TestApp) -> usize {
    app.upstream
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/rest/v1/api_keys" && bearer_of(r) == SERVICE_KEY)
        .count()
}

fn hs256_claims(token: &str) -> Value {
    let secret = fixture("jwt.json")["hs256_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut v = Validation::new(Algorithm::HS256);
    v.set_audience(&["authenticated"]);
    decode::<Value>(token, &DecodingKey::from_secret(secret.as_bytes()), &v)
        .expect("a token signed with the legacy secret")
        .claims
}

#[tokio::test]
async fn a_created_key_is_shown_once_stored_as_its_hash_and_listed_without_it() {
    let (app, keys) = spawn(|_| {}).await;
    let res = app
        .post("/api/keys")
        .bearer_auth(user_token(USER_A))
        .json(&json!({"name": "nightly", "scopes": ["items:read"], "expires_at": "2099-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert!(res.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("no-store"));
    let header_location = res.headers()["location"].to_str().unwrap().to_owned();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 201, "{body}");
    let key = body["key"].as_str().unwrap();
    assert!(key.starts_with("sgk_") && key.len() == 47, "{key}");
    let location = format!("/api/keys/{}", body["id"].as_str().unwrap());
    assert_eq!(header_location, location);
    assert_eq!(body["prefix"], &key[..12]);

    // What went to PostgREST: the hash, never the key.
    let stored = keys.rows.lock().unwrap()[0].clone();
    assert_eq!(
        stored["secret_hash"],
        hex::encode(Sha256::digest(key.as_bytes()))
    );
    assert!(!stored.to_string().contains(&key[4..]));
    assert_eq!(stored["scopes"], json!(["items:read"]));

    let res = app
        .get("/api/keys")
        .bearer_auth(user_token(USER_A))
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    assert!(!text.contains(&key[4..]), "the key is never returned twice");
    let listed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(listed[0]["id"], body["id"]);
    let list_request = app
        .upstream
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .rfind(|r| r.method.as_str() == "GET" && r.url.path() == "/rest/v1/api_keys")
        .unwrap();
    assert_eq!(
        query_of(&list_request)["select"],
        "id,name,prefix,scopes,expires_at,created_at"
    );
    assert_eq!(bearer_of(&list_request), user_token(USER_A));

    // The Location resolves, to the same key without its secret, for its owner only.
    let res = app
        .get(&location)
        .bearer_auth(user_token(USER_A))
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    assert!(!text.contains(&key[4..]));
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["id"],
        body["id"]
    );
    let res = app
        .get(&location)
        .bearer_auth(user_token(USER_B))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn a_key_acts_as_its_owner_through_a_short_lived_token_minted_for_them() {
    let (app, _) = spawn(|_| {}).await;
    let (key, id) = create_key(&app, USER_A, json!(["items:read"])).await;
    let (status, _) = list_items_with(&app, &key).await;
    assert_eq!(status, 200);
    let sent = item_bearers(&app).await;
    assert_eq!(sent.len(), 1);
    assert_ne!(sent[0], key, "the key itself never goes upstream");
    let claims = hs256_claims(&sent[0]);
    assert_eq!(claims["sub"], USER_A);
    assert_eq!(claims["role"], "authenticated");
    assert_eq!(claims["api_key_id"], id);
    assert_eq!(claims["iss"], fixture("jwt.json")["issuer"]);
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 30 + 60, "cache_secs plus the minting margin");
    assert_eq!(key_lookups(&app).await, 1);
}

#[tokio::test]
async fn a_verified_key_is_served_from_the_cache_until_its_bound() {
    let (app, _) = spawn(|_| {}).await;
    let (key, _) = create_key(&app, USER_A, json!(["items:read"])).await;
    for _ in 0..3 {
        assert_eq!(list_items_with(&app, &key).await.0, 200);
    }
    assert_eq!(key_lookups(&app).await, 1, "one lookup, then the cache");
    let sent = item_bearers(&app).await;
    assert!(
        sent.iter().all(|t| *t == sent[0]),
        "one minted token reused"
    );
}

#[tokio::test]
async fn a_key_of_one_user_never_acts_for_another() {
    let (app, _) = spawn(|_| {}).await;
    let (key_a, id_a) = create_key(&app, USER_A, json!(["items:read"])).await;
    let (key_b, _) = create_key(&app, USER_B, json!(["items:read"])).await;
    list_items_with(&app, &key_a).await;
    list_items_with(&app, &key_b).await;
    let sent = item_bearers(&app).await;
    assert_eq!(hs256_claims(&sent[0])["sub"], USER_A);
    assert_eq!(hs256_claims(&sent[1])["sub"], USER_B);
    // B cannot revoke A's key (RLS hides it: 404), and A's key still works.
    let res = app
        .delete(&format!("/api/keys/{id_a}"))
        .bearer_auth(user_token(USER_B))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(list_items_with(&app, &key_a).await.0, 200);
}

#[tokio::test]
async fn a_key_without_the_scope_is_403_naming_the_missing_scope() {
    let (app, _) = spawn(|_| {}).await;
    let (key, _) = create_key(&app, USER_A, json!(["items:read"])).await;
    let res = app
        .post("/api/items")
        .bearer_auth(&key)
        .json(&json!({"name": "Mug", "price": 1}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(error_code(&body), "missing_scope");
    assert_eq!(body["details"]["scope"], "items:write");
    assert!(
        item_bearers(&app).await.is_empty(),
        "nothing reached PostgREST"
    );
}

#[tokio::test]
async fn a_key_cannot_manage_keys_delete_its_owner_or_reach_session_routes() {
    let (app, _) = spawn(|_| {}).await;
    let (key, id) = create_key(&app, USER_A, json!(SCOPES_ALL)).await;
    for (verb, route) in [
        ("POST", "/api/keys".to_owned()),
        ("GET", "/api/keys".to_owned()),
        ("DELETE", format!("/api/keys/{id}")),
        ("GET", "/api/auth/user".to_owned()),
        ("GET", "/api/billing/subscription".to_owned()),
        ("DELETE", format!("/api/users/{USER_A}")),
    ] {
        let req = app
            .client
            .request(verb.parse().unwrap(), app.url(&route))
            .bearer_auth(&key)
            .json(&json!({"name": "x", "scopes": ["items:read"]}));
        let (status, body) = json_of(req.send().await.unwrap()).await;
        assert_eq!(status, 403, "{verb} {route}: {body}");
        assert_eq!(error_code(&body), "api_key_not_allowed", "{verb} {route}");
    }
}

const SCOPES_ALL: [&str; 5] = [
    "items:read",
    "items:write",
    "categories:read",
    "users:read",
    "users:write",
];

#[tokio::test]
async fn a_revoked_key_is_401_at_once_on_the_instance_that_revoked_it() {
    let (app, _) = spawn(|_| {}).await;
    let key = used_key_then_deleted(&app, |id| format!("/api/keys/{id}")).await;
    let (status, body) = list_items_with(&app, &key).await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&body), "invalid_api_key");
}

#[tokio::test]
async fn a_key_removed_elsewhere_is_refused_at_its_next_lookup() {
    // With the cache off every request looks its key up: what the cache bound
    // (`cache_secs`) delays on another instance happens here on the next request.
    let (app, keys) = spawn(|s| s.auth.api_keys.cache_entries = 0).await;
    let (key, _) = create_key(&app, USER_A, json!(["items:read"])).await;
    assert_eq!(list_items_with(&app, &key).await.0, 200);
    keys.rows.lock().unwrap().clear();
    let (status, body) = list_items_with(&app, &key).await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&body), "invalid_api_key");
    assert_eq!(key_lookups(&app).await, 2);
}

#[tokio::test]
async fn an_expired_key_is_401_api_key_expired() {
    let (app, keys) = spawn(|_| {}).await;
    let (key, _) = create_key(&app, USER_A, json!(["items:read"])).await;
    keys.rows.lock().unwrap()[0]["expires_at"] = json!("2020-01-01T00:00:00Z");
    let (status, body) = list_items_with(&app, &key).await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&body), "api_key_expired");
    assert!(item_bearers(&app).await.is_empty());
}

#[tokio::test]
async fn unknown_and_malformed_keys_are_401_a_malformed_one_never_looked_up_an_unknown_one_once() {
    let (app, _) = spawn(|_| {}).await;
    let (status, body) = list_items_with(&app, "sgk_short").await;
    assert_eq!((status, error_code(&body)), (401, "invalid_api_key"));
    assert_eq!(key_lookups(&app).await, 0);
    let unknown = format!("sgk_{}", "A".repeat(43));
    for _ in 0..3 {
        let (status, body) = list_items_with(&app, &unknown).await;
        assert_eq!((status, error_code(&body)), (401, "invalid_api_key"));
    }
    assert_eq!(
        key_lookups(&app).await,
        1,
        "an unknown key is looked up once per cache bound, not once per request"
    );
    // Another unknown key is a lookup of its own, and a real key still works at once.
    list_items_with(&app, &format!("sgk_{}", "B".repeat(43))).await;
    assert_eq!(key_lookups(&app).await, 2);
    let (key, _) = create_key(&app, USER_A, json!(["items:read"])).await;
    assert_eq!(list_items_with(&app, &key).await.0, 200);
}

#[tokio::test]
async fn a_revoked_key_that_is_still_sent_is_looked_up_once_not_per_request() {
    let (app, _) = spawn(|_| {}).await;
    let key = used_key_then_deleted(&app, |id| format!("/api/keys/{id}")).await;
    let before = key_lookups(&app).await;
    for _ in 0..3 {
        let (status, body) = list_items_with(&app, &key).await;
        assert_eq!((status, error_code(&body)), (401, "invalid_api_key"));
    }
    assert_eq!(key_lookups(&app).await, before + 1);
}

#[tokio::test]
async fn bad_key_requests_are_400_naming_the_field() {
    let (app, _) = spawn(|_| {}).await;
    for (body, field) in [
        (json!({"name": "x", "scopes": ["admin"]}), "scopes"),
        (json!({"name": "x", "scopes": []}), "scopes"),
        (
            json!({"name": "x", "scopes": ["items:read", "items:read"]}),
            "scopes",
        ),
        (
            json!({"name": "x", "scopes": ["items:read"], "expires_at": "2020-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (json!({"name": " ", "scopes": ["items:read"]}), "name"),
    ] {
        let res = app
            .post("/api/keys")
            .bearer_auth(user_token(USER_A))
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, answer) = json_of(res).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            answer["details"]["fieldErrors"][field].is_array(),
            "{body}: {answer}"
        );
    }
}

#[tokio::test]
async fn key_routes_are_404_while_keys_are_off_and_sgk_bearers_are_bad_tokens() {
    let app = TestApp::spawn().await;
    let res = app
        .get("/api/keys")
        .bearer_auth(user_token(USER_A))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let (status, _) = list_items_with(&app, &format!("sgk_{}", "A".repeat(43))).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn as_its_own_issuer_supagate_signs_es256_with_the_key_its_jwks_publishes() {
    let es256 = fixture("jwt.json")["keys"]["es256"].clone();
    let pem = es256["private_pem"].as_str().unwrap().to_owned();
    let (app, _) = spawn(move |s| {
        // Chosen explicitly: the legacy secret stays only so the test's user tokens verify.
        s.auth.api_keys.signing = KeySigning::Issuer;
        s.auth.api_keys.issuer = "https://gate.example.com".into();
        s.auth.api_keys.signing_key = Secret::new(pem);
    })
    .await;
    let (_, discovery) = json_of(
        app.get("/.well-known/openid-configuration")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(discovery["issuer"], "https://gate.example.com");
    assert_eq!(
        discovery["jwks_uri"],
        "https://gate.example.com/.well-known/jwks.json"
    );
    let (_, jwks) = json_of(app.get("/.well-known/jwks.json").send().await.unwrap()).await;
    let jwk = &jwks["keys"][0];
    assert!(jwk.get("d").is_none(), "never the private part");
    assert_eq!(jwk["x"], es256["public_jwk"]["x"]);

    let (key, _) = create_key(&app, USER_A, json!(["items:read"])).await;
    assert_eq!(list_items_with(&app, &key).await.0, 200);
    let token = item_bearers(&app).await.remove(0);
    let header = decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.kid.as_deref(), jwk["kid"].as_str());
    let decoding =
        DecodingKey::from_ec_components(jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap())
            .unwrap();
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&["authenticated"]);
    v.set_issuer(&["https://gate.example.com"]);
    let claims = decode::<Value>(&token, &decoding, &v)
        .expect("verifies with the published key")
        .claims;
    assert_eq!(claims["sub"], USER_A);
    assert_eq!(
        claims["role"], "authenticated",
        "third-party auth reads `role`"
    );
}

#[tokio::test]
async fn the_issuer_documents_are_404_when_supagate_signs_with_the_legacy_secret() {
    let (app, _) = spawn(|_| {}).await;
    for route in [
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
    ] {
        assert_eq!(
            app.get(route).send().await.unwrap().status(),
            404,
            "{route}"
        );
    }
}

#[tokio::test]
async fn rate_limit_rules_can_count_per_api_key() {
    let (app, _) = spawn(|s| {
        s.rate_limit.rules = vec![RateLimitRule {
            routes: vec!["GET /api/items".into()],
            key: "api_key".into(),
            per_minute: 1,
            burst: Some(1),
        }];
    })
    .await;
    let (one, _) = create_key(&app, USER_A, json!(["items:read"])).await;
    let (two, _) = create_key(&app, USER_A, json!(["items:read"])).await;
    assert_eq!(list_items_with(&app, &one).await.0, 200);
    assert_eq!(list_items_with(&app, &one).await.0, 429);
    assert_eq!(
        list_items_with(&app, &two).await.0,
        200,
        "another key of the same owner has its own budget"
    );
}

#[tokio::test]
async fn metrics_count_requests_per_key_id_and_never_show_the_key() {
    let (app, _) = spawn(|_| {}).await;
    let (key, id) = create_key(&app, USER_A, json!(["items:read"])).await;
    list_items_with(&app, &key).await;
    list_items_with(&app, &key).await;
    let text = app
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(&format!(
            "supagate_api_key_requests_total{{key_id=\"{id}\"}} 2"
        )),
        "{text}"
    );
    assert!(!text.contains(&key[4..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_their_minted_tokens_never_reach_the_log_even_at_trace_level() {
    use super::support::{test_env, Process};
    let upstream = wiremock::MockServer::start().await;
    let keys = FakeKeys::default();
    Mock::given(path("/rest/v1/api_keys"))
        .respond_with(keys.clone())
        .mount(&upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/v1/items"))
        .respond_with(pg_list(json!([]), "*/0"))
        .mount(&upstream)
        .await;
    Mock::given(path("/rest/v1/rpc/set_item_limit_rule"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&upstream)
        .await;
    let mut env = test_env(&upstream.uri());
    env.insert("SUPAGATE_AUTH__API_KEYS__ENABLED".into(), "true".into());
    env.insert("RUST_LOG".into(), "trace".into());
    let process = Process::start(&env);
    let client = reqwest::Client::new();
    let created: Value = client
        .post(process.url("/api/keys"))
        .bearer_auth(user_token(USER_A))
        .json(&json!({"name": "ci", "scopes": ["items:read"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().expect("created").to_owned();
    for bearer in [
        key.clone(),
        format!("{key}x"),
        format!("sgk_{}", "B".repeat(43)),
    ] {
        client
            .get(process.url("/api/items"))
            .bearer_auth(&bearer)
            .send()
            .await
            .unwrap();
    }
    let id = created["id"].as_str().unwrap();
    client
        .delete(process.url(&format!("/api/keys/{id}")))
        .bearer_auth(user_token(USER_A))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = process.drain_log().join("\n");
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "trace is on"
    );
    let minted: Vec<String> = upstream
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/rest/v1/items")
        .map(bearer_of)
        .collect();
    assert!(!minted.is_empty());
    assert!(!log.contains(&key[4..]), "the key is in the log");
    for token in minted {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a minted token is in the log");
    }
}

#[tokio::test]
async fn deleting_the_owner_through_supagate_drops_their_keys_from_the_cache_at_once() {
    let (app, keys) = spawn(|_| {}).await;
    Mock::given(method("DELETE"))
        .and(path(format!("/auth/v1/admin/users/{USER_A}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&app.upstream)
        .await;
    let key = used_key_then_deleted(&app, |_| format!("/api/users/{USER_A}")).await;
    // The database's cascade removed the rows; only a dropped cache entry reveals it.
    keys.rows.lock().unwrap().clear();
    let (status, body) = list_items_with(&app, &key).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_api_key"));
}
