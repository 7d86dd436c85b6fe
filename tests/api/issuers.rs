//! `[[auth.issuers]]`: tokens of third-party issuers (shaped as Clerk's, Firebase's and
//! Auth0's), signed with keys this test creates, verified with each issuer's own keys (OIDC
//! discovery or a JWKS URL, rotation, one algorithm per key) and forwarded to PostgREST
//! unchanged; forged tokens, wrong audiences, HS256 and unconfigured issuers refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use supagate::config::{IssuerSettings, Settings};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::support::{
    error_code, fixture, json_of, jwks_mock, mint_hs256, pg_list, unix_now, TestApp,
};

/// A P-256 key made by the test, with its public JWK.
struct EcKey {
    pair: EcdsaKeyPair,
    kid: String,
}

impl EcKey {
    fn new(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Self {
            pair,
            kid: kid.to_owned(),
        }
    }

    fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }

    /// An ES256 token over `claims`, its header naming `kid` (and `alg`).
    fn sign_as(&self, alg: &str, kid: &str, claims: &Value) -> String {
        let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), message.as_bytes())
            .unwrap();
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as("ES256", &self.kid, claims)
    }
}

fn jwks_of(keys: &[&EcKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// An OIDC discovery document for the issuer at `origin` + `CLERK`.
fn discovery(origin: &str) -> Mock {
    Mock::given(method("GET"))
        .and(path(format!("{CLERK}/.well-known/openid-configuration")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": format!("{origin}{CLERK}"),
            "jwks_uri": format!("{origin}{CLERK_JWKS}"),
        })))
}

const CLERK: &str = "/clerk";
const CLERK_JWKS: &str = "/clerk-keys/jwks.json";
const FIREBASE: &str = "/securetoken/proj-1";
const FIREBASE_JWKS: &str = "/robot/v1/metadata/jwk/securetoken";
const AUTH0: &str = "/tenant.auth0/";
const AUTH0_JWKS: &str = "/tenant.auth0/.well-known/jwks.json";

fn issuer(base: &str, p: &str) -> String {
    format!("{}{p}", base.trim_end_matches('/'))
}

/// Clerk (discovery, `sub`, `role`), Firebase (a JWKS URL, `aud` = project, `user_id`) and
/// Auth0 (a JWKS URL, an API audience), all served by `idp`, a server apart from Supabase.
fn configure(s: &mut Settings, idp: &str) {
    s.auth.jwks_min_refetch_interval_secs = 0;
    s.auth.issuers = vec![
        IssuerSettings {
            issuer: issuer(idp, CLERK),
            jwks_url: String::new(),
            audience: String::new(),
            role_claim: "role".into(),
            user_id_claim: "sub".into(),
        },
        IssuerSettings {
            issuer: issuer(idp, FIREBASE),
            jwks_url: issuer(idp, FIREBASE_JWKS),
            audience: "proj-1".into(),
            role_claim: "role".into(),
            user_id_claim: "user_id".into(),
        },
        IssuerSettings {
            issuer: issuer(idp, AUTH0),
            jwks_url: issuer(idp, AUTH0_JWKS),
            audience: "https://api.example.com".into(),
            role_claim: "role".into(),
            user_id_claim: "sub".into(),
        },
    ];
}

fn jwks_at(p: &'static str, doc: Value) -> Mock {
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(ResponseTemplate::new(200).set_body_json(doc))
}

/// supagate (Supabase played by `app.upstream`) and the identity providers' server.
struct Env {
    app: TestApp,
    idp: MockServer,
}

async fn spawn_with(idp_mocks: Vec<Mock>, tweak: impl FnOnce(&mut Settings)) -> Env {
    let idp = MockServer::start().await;
    idp.register(discovery(&idp.uri())).await;
    for mock in idp_mocks {
        idp.register(mock).await;
    }
    let origin = idp.uri();
    let app = TestApp::spawn_with_mocks(
        vec![
            jwks_mock("jwks_initial"),
            Mock::given(method("GET"))
                .and(path("/rest/v1/items"))
                .respond_with(pg_list(json!([]), "*/0")),
        ],
        |s| {
            configure(s, &origin);
            tweak(s);
        },
    )
    .await;
    Env { app, idp }
}

async fn spawn(idp_mocks: Vec<Mock>) -> Env {
    spawn_with(idp_mocks, |_| {}).await
}

impl Env {
    fn claims(&self, iss: &str, extra: Value) -> Value {
        let now = unix_now();
        let mut c = json!({
            "iss": issuer(&self.idp.uri(), iss), "exp": now + 600, "iat": now, "nbf": now - 5,
            "role": "authenticated",
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    async fn fetches(&self, p: &str) -> usize {
        self.idp
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == p)
            .count()
    }
}

async fn list_items(app: &TestApp, token: &str) -> (u16, Value) {
    json_of(
        app.get("/api/items")
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn forwarded(app: &TestApp) -> Vec<String> {
    app.bearers_sent_to("/rest/v1/items").await
}

#[tokio::test]
async fn a_clerk_shaped_token_is_verified_through_discovery_and_forwarded_unchanged() {
    let key = EcKey::new("ins_clerk_1");
    let env = spawn(vec![jwks_at(CLERK_JWKS, jwks_of(&[&key]))]).await;
    let token = key.sign(&env.claims(
        CLERK,
        json!({"sub": "user_2abcDEF", "azp": "https://app.example.com"}),
    ));
    let (status, body) = list_items(&env.app, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        forwarded(&env.app).await,
        vec![token.clone()],
        "PostgREST gets the issuer's own token"
    );
    assert_eq!(list_items(&env.app, &token).await.0, 200);
    assert_eq!(env.fetches(CLERK_JWKS).await, 1, "keys cached");
    assert_eq!(
        env.fetches(&format!("{CLERK}/.well-known/openid-configuration"))
            .await,
        1,
        "discovery read once"
    );
}

#[tokio::test]
async fn a_firebase_shaped_token_needs_its_audience_and_its_user_id_claim() {
    let key = EcKey::new("fb-1");
    let env = spawn(vec![jwks_at(FIREBASE_JWKS, jwks_of(&[&key]))]).await;
    let good = key.sign(&env.claims(
        FIREBASE,
        json!({"aud": "proj-1", "sub": "fbUid28chars", "user_id": "fbUid28chars"}),
    ));
    assert_eq!(list_items(&env.app, &good).await.0, 200);

    let other_project = key.sign(&env.claims(
        FIREBASE,
        json!({"aud": "proj-2", "sub": "u", "user_id": "u"}),
    ));
    let (status, body) = list_items(&env.app, &other_project).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_audience"));

    let no_user_id = key.sign(&env.claims(FIREBASE, json!({"aud": "proj-1", "sub": "u"})));
    let (status, body) = list_items(&env.app, &no_user_id).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_subject"));

    let no_role = {
        let mut c = env.claims(FIREBASE, json!({"aud": "proj-1", "user_id": "u"}));
        c.as_object_mut().unwrap().remove("role");
        key.sign(&c)
    };
    let (status, body) = list_items(&env.app, &no_role).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_role"));
    assert_eq!(forwarded(&env.app).await, vec![good]);
}

#[tokio::test]
async fn an_auth0_shaped_token_is_checked_against_its_own_issuer_and_audience() {
    let key = EcKey::new("auth0-1");
    let env = spawn(vec![
        jwks_at(AUTH0_JWKS, jwks_of(&[&key])),
        jwks_at(CLERK_JWKS, json!({"keys": []})),
    ])
    .await;
    let token = key.sign(&env.claims(
        AUTH0,
        json!({"aud": ["https://api.example.com", "https://tenant.auth0/userinfo"], "sub": "auth0|42"}),
    ));
    assert_eq!(list_items(&env.app, &token).await.0, 200);
    let no_api_audience = key.sign(&env.claims(
        AUTH0,
        json!({"aud": "https://tenant.auth0/userinfo", "sub": "auth0|42"}),
    ));
    let (status, body) = list_items(&env.app, &no_api_audience).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_audience"));
    // Auth0's key cannot vouch for another configured issuer: Clerk's keys are Clerk's.
    let as_clerk = key.sign(&env.claims(CLERK, json!({"sub": "user_1"})));
    let (status, body) = list_items(&env.app, &as_clerk).await;
    assert_eq!((status, error_code(&body)), (401, "unknown_key"));
}

#[tokio::test]
async fn a_forged_token_naming_a_published_key_is_401_invalid_signature() {
    let key = EcKey::new("ins_clerk_1");
    let forger = EcKey::new("ins_clerk_1");
    let env = spawn(vec![jwks_at(CLERK_JWKS, jwks_of(&[&key]))]).await;
    let forged = forger.sign(&env.claims(CLERK, json!({"sub": "user_2abc"})));
    let (status, body) = list_items(&env.app, &forged).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_signature"));
    // A genuine token with its payload changed after signing fails the same way.
    let genuine = key.sign(&env.claims(CLERK, json!({"sub": "user_2abc"})));
    let mut parts: Vec<String> = genuine.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(env.claims(CLERK, json!({"sub": "user_admin"})).to_string());
    let (status, body) = list_items(&env.app, &parts.join(".")).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_signature"));
    assert!(forwarded(&env.app).await.is_empty());
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_and_a_withdrawn_key_is_refused() {
    let old = EcKey::new("k-old");
    let new = EcKey::new("k-new");
    let first = jwks_at(CLERK_JWKS, jwks_of(&[&old])).up_to_n_times(1);
    let rotated = jwks_at(CLERK_JWKS, jwks_of(&[&new]));
    let env = spawn(vec![first, rotated]).await;
    let by_old = old.sign(&env.claims(CLERK, json!({"sub": "user_1"})));
    let by_new = new.sign(&env.claims(CLERK, json!({"sub": "user_1"})));
    assert_eq!(
        list_items(&env.app, &by_old).await.0,
        200,
        "the first key set"
    );
    assert_eq!(
        list_items(&env.app, &by_new).await.0,
        200,
        "an unknown kid refetches and finds the new key"
    );
    // The verified-token cache does not outlive the key set that verified the old token.
    let (status, body) = list_items(&env.app, &by_old).await;
    assert_eq!((status, error_code(&body)), (401, "unknown_key"));
}

#[tokio::test]
async fn each_key_verifies_only_its_own_algorithm_and_hs256_is_never_accepted_for_an_issuer() {
    let key = EcKey::new("ins_clerk_1");
    let env = spawn(vec![jwks_at(CLERK_JWKS, jwks_of(&[&key]))]).await;
    let c = env.claims(CLERK, json!({"sub": "user_1"}));
    let as_rs256 = key.sign_as("RS256", "ins_clerk_1", &c);
    let (status, body) = list_items(&env.app, &as_rs256).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_algorithm"));
    // Signed with the project's legacy secret, which supagate holds: still refused, since a
    // third-party issuer's tokens are asymmetric only.
    let hs256 = mint_hs256(&c);
    let (status, body) = list_items(&env.app, &hs256).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_algorithm"));
    assert!(forwarded(&env.app).await.is_empty());
}

#[tokio::test]
async fn a_token_of_an_issuer_that_is_not_configured_is_401_as_before() {
    let key = EcKey::new("elsewhere-1");
    let env = spawn(vec![jwks_at(CLERK_JWKS, jwks_of(&[&key]))]).await;
    let stranger = key.sign(&env.claims("/not-configured", json!({"sub": "user_1"})));
    let (status, _) = list_items(&env.app, &stranger).await;
    assert_eq!(status, 401);
    assert!(forwarded(&env.app).await.is_empty());
    // Supabase Auth's own tokens are unaffected.
    let supabase = fixture("jwt.json")["tokens"]["valid_es256"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(list_items(&env.app, &supabase).await.0, 200);
}

#[tokio::test]
async fn a_third_party_user_never_reaches_auth_session_checks_nor_api_keys() {
    let key = EcKey::new("ins_clerk_1");
    let env = spawn_with(vec![jwks_at(CLERK_JWKS, jwks_of(&[&key]))], |s| {
        s.auth.check_session_routes = vec!["GET /api/items".into()];
        s.auth.api_keys.enabled = true;
    })
    .await;
    let token = key.sign(&env.claims(CLERK, json!({"sub": "user_2abc"})));
    assert_eq!(list_items(&env.app, &token).await.0, 200);
    let asked_auth = env
        .app
        .upstream
        .received_requests()
        .await
        .unwrap()
        .iter()
        .any(|r| r.url.path() == "/auth/v1/user");
    assert!(!asked_auth);
    let res = env
        .app
        .post("/api/keys")
        .bearer_auth(&token)
        .json(&json!({"name": "x", "scopes": ["items:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}
