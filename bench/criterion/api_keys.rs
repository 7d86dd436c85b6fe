//! CPU of one request's credential check with an API key on a verified-key cache hit, beside
//! a Supabase JWT on a verified-token cache hit (the common case of each): `verify_bearer`,
//! plus the scope check every key request makes. The key's one lookup (before measuring) goes
//! to a local stand-in for PostgREST.
//! Run: `cargo bench --bench api_keys -- --warm-up-time 1 --measurement-time 3`.

use std::collections::HashMap;
use std::path::PathBuf;

use actix_web::http::Method;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use supagate::auth::api_key::{required_scope, ApiKeys};
use supagate::auth::jwks::parse_jwks;
use supagate::auth::Verifier;
use supagate::config::Settings;
use supagate::supabase::Supabase;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let key = format!("sgk_{}", "Q".repeat(43));
    let jwt = fixture("jwt.json");
    let server = rt.block_on(MockServer::start());
    rt.block_on(
        Mock::given(method("GET"))
            .and(path("/rest/v1/api_keys"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([{
                "id": "5d3c2b1a-0f9e-4d8c-b7a6-958473625140",
                "user_id": jwt["user_id"],
                "secret_hash": hex::encode(Sha256::digest(key.as_bytes())),
                "scopes": ["items:read"],
                "expires_at": null,
            }])))
            .mount(&server),
    );
    let env: HashMap<String, String> = HashMap::from([
        ("APP_ENV".into(), "test".into()),
        ("SUPABASE_URL".into(), server.uri()),
        ("SUPABASE_ANON_KEY".into(), "bench".into()),
        ("SUPABASE_SERVICE_ROLE_KEY".into(), "bench-service".into()),
        (
            "SUPABASE_JWT_SECRET".into(),
            jwt["hs256_secret"].as_str().expect("secret").into(),
        ),
        // The fixtures' tokens name the fixtures' issuer, not the stand-in's address.
        (
            "SUPAGATE_AUTH__ISSUER".into(),
            jwt["issuer"].as_str().expect("issuer").into(),
        ),
        ("SUPAGATE_AUTH__API_KEYS__ENABLED".into(), "true".into()),
        // Long enough that no entry expires while measuring.
        ("SUPAGATE_AUTH__API_KEYS__CACHE_SECS".into(), "3600".into()),
    ]);
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    let settings = Settings::load(&config, &env).expect("settings");
    let supabase = Supabase::new(&settings).expect("clients");
    let keys = ApiKeys::new(&settings, &supabase).expect("api keys");
    let verifier = Verifier::new(&settings, None).with_api_keys(keys);
    verifier
        .jwks()
        .install(parse_jwks(jwt["jwks_initial"].to_string().as_bytes()).expect("jwks"));

    let user = rt
        .block_on(verifier.verify_bearer(&key))
        .expect("the key verifies");
    let grant = user.api_key.clone().expect("a key's grant");
    c.bench_function("api_key_cached", |b| {
        b.iter(|| {
            let user = rt
                .block_on(verifier.verify_bearer(black_box(&key)))
                .expect("cache hit");
            let scope = required_scope(&Method::GET, black_box("/api/items")).expect("scope");
            user.api_key.as_ref().is_some_and(|g| g.allows(scope))
        })
    });
    assert!(grant.allows("items:read"));
    for (label, name) in [
        ("jwt_es256_cached", "valid_es256"),
        ("jwt_hs256_cached", "valid_hs256"),
    ] {
        let token = jwt["tokens"][name]["token"]
            .as_str()
            .expect("token")
            .to_owned();
        rt.block_on(verifier.verify_bearer(&token))
            .expect("the token verifies");
        c.bench_function(label, |b| {
            b.iter(|| {
                rt.block_on(verifier.verify_bearer(black_box(&token)))
                    .is_ok()
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
