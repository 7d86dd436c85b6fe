//! Cost of one token verification (HS256, ES256, RS256; keys already cached, no I/O) cold
//! (full signature and claims check) and from the verified-token cache, and of reading an
//! `@supabase/ssr` cookie session, using the checked-in fixtures.
//! Run: `cargo bench --bench auth -- --warm-up-time 1 --measurement-time 3`.

use std::collections::HashMap;
use std::path::PathBuf;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use serde_json::Value;
use supagate::auth::cookie::{cookie_pairs, read_session};
use supagate::auth::jwks::parse_jwks;
use supagate::auth::Verifier;
use supagate::config::Settings;

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

fn bench(c: &mut Criterion) {
    let jwt = fixture("jwt.json");
    let env: HashMap<String, String> = HashMap::from([
        ("APP_ENV".into(), "test".into()),
        ("SUPABASE_URL".into(), "http://127.0.0.1:54321".into()),
        ("SUPABASE_ANON_KEY".into(), "bench".into()),
        (
            "SUPABASE_JWT_SECRET".into(),
            jwt["hs256_secret"].as_str().expect("secret").into(),
        ),
    ]);
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    let settings = Settings::load(&config, &env).expect("settings");
    let verifier = Verifier::new(&settings, None);
    let keys = parse_jwks(jwt["jwks_initial"].to_string().as_bytes()).expect("jwks");
    verifier.jwks().install(keys);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");

    for (label, name) in [
        ("verify_hs256", "valid_hs256"),
        ("verify_es256", "valid_es256"),
        ("verify_rs256", "valid_rs256"),
    ] {
        let token = jwt["tokens"][name]["token"]
            .as_str()
            .expect("token")
            .to_owned();
        assert!(
            rt.block_on(verifier.verify(&token)).is_ok(),
            "{name} must verify"
        );
        c.bench_function(&format!("{label}_cold"), |b| {
            b.iter(|| {
                rt.block_on(verifier.verify_uncached(black_box(&token)))
                    .is_ok()
            })
        });
        // The token was verified above, so every call here is a cache hit.
        c.bench_function(&format!("{label}_cached"), |b| {
            b.iter(|| rt.block_on(verifier.verify(black_box(&token))).is_ok())
        });
    }
    assert!(
        verifier.cache().len() >= 3,
        "the cache is on in the default settings"
    );
    let token = jwt["tokens"]["valid_es256"]["token"]
        .as_str()
        .expect("token");
    c.bench_function("token_digest_sha256", |b| {
        b.iter(|| supagate::auth::cache::digest(black_box(token)))
    });

    let ssr = fixture("ssr_cookies.json");
    for case in ["single_base64url", "chunked_base64url"] {
        let header = ssr["cases"][case]["request_cookie_header"]
            .as_str()
            .expect("header")
            .to_owned();
        c.bench_function(&format!("cookie_parse_{case}"), |b| {
            b.iter(|| read_session("sb-127-auth-token", cookie_pairs(black_box(&header))).is_ok())
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
