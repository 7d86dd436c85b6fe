//! Hostile input at the parsers: the `@supabase/ssr` cookie reader, the Stripe
//! signature header parser/verifier, JWT header and claims handling (tokens really signed with
//! the configured secret, so the claims code is reached), the JWKS document parser and the
//! query-string structs. Property: no panic, and no allocation out of proportion to the input
//! (a per-thread allocation meter wraps the global allocator).
//!
//! `cargo nextest run --test parsers` runs 256 cases per property (CI). The long run:
//! `SUPAGATE_LONG_FUZZ=1 cargo nextest run --release --test parsers` (200 000 cases each;
//! `SUPAGATE_LONG_FUZZ=<n>` for n cases), wrapped by `scripts/long-fuzz.sh`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::path::PathBuf;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;
use serde_json::{json, Value};

use supagate::auth::{cookie, jwks, verify::Verifier};
use supagate::config::Settings;
use supagate::stripe;

// ---- the allocation meter ----

struct Metered;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| {
            if now > peak.get() {
                peak.set(now)
            }
        });
    });
}

unsafe impl GlobalAlloc for Metered {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static METERED: Metered = Metered;

/// Runs `f` and returns the peak extra heap it held at once (this thread only).
fn peak_heap<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    let peak = PEAK.with(Cell::get);
    (r, (peak - base).max(0) as usize)
}

/// The bound every parser must keep: a fixed allowance plus a small multiple of the input.
fn assert_bounded(what: &str, input_len: usize, used: usize) {
    let bound = 256 * 1024 + 16 * input_len;
    assert!(
        used <= bound,
        "{what}: {used} bytes held for a {input_len}-byte input (bound {bound})"
    );
}

fn cases() -> u32 {
    match std::env::var("SUPAGATE_LONG_FUZZ") {
        Ok(v) if v == "1" => 200_000,
        Ok(v) => v.parse().unwrap_or(200_000),
        Err(_) => 256,
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---- inputs ----

/// Text that is mostly the characters these parsers care about, sometimes anything at all.
fn texty() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9=,;.%_\\-+/ \"{}:\\[\\]]{0,300}",
        1 => any::<String>(),
        1 => proptest::collection::vec(any::<char>(), 0..2000).prop_map(|v| v.into_iter().collect()),
    ]
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Arbitrary JSON values, a few levels deep, with the types claims fields should not have.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        texty().prop_map(Value::String),
        Just(json!("11111111-1111-4111-8111-111111111111")),
        Just(json!("authenticated")),
        Just(json!("admin")),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::hash_map("[a-z_]{1,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Claims built around the fields the verifier reads, each sometimes right, sometimes not.
fn claims() -> impl Strategy<Value = Value> {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    (
        prop_oneof![
            Just(json!(now + 3600)),
            Just(json!(now - 3600)),
            json_value()
        ],
        prop_oneof![Just(json!("authenticated")), json_value()],
        prop_oneof![
            Just(json!("11111111-1111-4111-8111-111111111111")),
            json_value()
        ],
        prop_oneof![
            Just(json!("authenticated")),
            Just(json!("service_role")),
            json_value()
        ],
        prop_oneof![Just(json!({"role": "admin"})), json_value()],
        prop_oneof![Just(json!(issuer())), json_value()],
        proptest::option::of(json_value()),
        proptest::collection::hash_map("[a-z_]{1,10}", json_value(), 0..4),
    )
        .prop_map(|(exp, aud, sub, role, app, iss, nbf, extra)| {
            let mut c = json!({
                "exp": exp, "aud": aud, "sub": sub, "role": role, "app_metadata": app, "iss": iss
            });
            if let Some(nbf) = nbf {
                c["nbf"] = nbf;
            }
            for (k, v) in extra {
                c[k] = v;
            }
            c
        })
}

fn fixture() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn issuer() -> String {
    static ISSUER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ISSUER
        .get_or_init(|| fixture()["issuer"].as_str().unwrap().to_owned())
        .clone()
}

fn verifier() -> &'static Verifier {
    static VERIFIER: std::sync::OnceLock<Verifier> = std::sync::OnceLock::new();
    VERIFIER.get_or_init(|| Verifier::new(&settings(), None))
}

fn hs256_secret() -> &'static str {
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET.get_or_init(|| fixture()["hs256_secret"].as_str().unwrap().to_owned())
}

fn settings() -> Settings {
    let jwt = fixture();
    let env = HashMap::from([
        ("APP_ENV".to_owned(), "test".to_owned()),
        ("SUPABASE_URL".to_owned(), "http://127.0.0.1:9".to_owned()),
        ("SUPABASE_ANON_KEY".to_owned(), "anon".to_owned()),
        (
            "SUPABASE_JWT_SECRET".to_owned(),
            jwt["hs256_secret"].as_str().unwrap().to_owned(),
        ),
        ("SUPAGATE_AUTH__ISSUER".to_owned(), issuer()),
    ]);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    Settings::load(&dir, &env).unwrap()
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RUNTIME.with(|rt| rt.block_on(f))
}

// ---- properties ----

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cookie_reader_never_panics(
        header in texty(),
        pairs in proptest::collection::vec(
            (prop_oneof![
                Just("sb-127-auth-token".to_owned()),
                "sb-127-auth-token\\.[0-9]{1,25}",
                "sb-127-auth-token[.a-z0-9]{0,6}",
                texty(),
            ], texty()),
            0..20,
        ),
        b64_body in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let (_, used) = peak_heap(|| {
            let _ = cookie::cookie_pairs(&header).count();
            let borrowed: Vec<(&str, &str)> =
                pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let _ = cookie::read_session("sb-127-auth-token", borrowed);
            let _ = cookie::decode_value(&header);
            let _ = cookie::decode_value(&format!("base64-{}", b64(&b64_body)));
        });
        let len = header.len() + pairs.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            + b64_body.len() * 2;
        assert_bounded("cookie", len, used);
    }

    #[test]
    fn stripe_verifier_never_panics(
        payload in proptest::collection::vec(any::<u8>(), 0..512),
        header in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..400),
            texty().prop_map(String::into_bytes),
            (any::<i64>(), proptest::collection::vec("[0-9a-fA-F]{0,70}", 0..20), "[a-z0-9=,]{0,40}")
                .prop_map(|(t, sigs, junk)| {
                    let mut h = format!("t={t}");
                    for s in sigs { h.push_str(&format!(",v1={s}")); }
                    h.push(',');
                    h.push_str(&junk);
                    h.into_bytes()
                }),
        ],
        secrets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..4),
        now in any::<i64>(),
        tolerance in any::<u64>(),
    ) {
        let (_, used) = peak_heap(|| {
            let _ = stripe::verify(&payload, &header, &secrets, now, tolerance);
        });
        assert_bounded("stripe", payload.len() + header.len(), used);
    }

    #[test]
    fn a_correctly_signed_token_with_arbitrary_claims_never_panics(
        claims in claims(),
        alg in prop_oneof![Just("HS256"), Just("none"), Just("RS256"), Just("ES256"), Just("HS512")],
        kid in proptest::option::of(texty()),
    ) {
        let secret = hs256_secret();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = kid;
        let signed = jsonwebtoken::encode(
            &header, &claims, &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        ).unwrap();
        // The same claims again under a header naming another algorithm (signature kept).
        let parts: Vec<&str> = signed.split('.').collect();
        let relabelled = format!(
            "{}.{}.{}",
            b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes()), parts[1], parts[2]
        );
        let verifier = verifier();
        block_on(async {});
        let (_, used) = peak_heap(|| {
            for token in [&signed, &relabelled] {
                if let Ok(user) = block_on(verifier.verify(token)) {
                    // Only a well-formed, authenticated, unexpired claim set gets through.
                    prop_assert_eq!(alg, "HS256");
                    prop_assert!(user.expires_at > jsonwebtoken::get_current_timestamp() as i64 - 60);
                }
            }
            Ok(())
        });
        assert_bounded("jwt claims", signed.len() * 2, used);
    }

    #[test]
    fn arbitrary_token_text_never_panics(
        token in prop_oneof![
            texty(),
            (json_value(), json_value(), proptest::collection::vec(any::<u8>(), 0..80))
                .prop_map(|(h, c, s)| format!(
                    "{}.{}.{}", b64(h.to_string().as_bytes()), b64(c.to_string().as_bytes()), b64(&s)
                )),
            "[A-Za-z0-9_\\-]{0,60}\\.[A-Za-z0-9_\\-.]{0,200}",
        ],
    ) {
        let verifier = verifier();
        block_on(async {});
        let (result, used) = peak_heap(|| block_on(verifier.verify(&token)));
        prop_assert!(result.is_err());
        assert_bounded("jwt text", token.len(), used);
    }

    #[test]
    fn jwks_parser_never_panics(
        doc in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..500),
            json_value().prop_map(|v| v.to_string().into_bytes()),
            proptest::collection::vec(
                (prop_oneof![Just("EC"), Just("RSA"), Just("oct"), Just("OKP")],
                 prop_oneof![Just("ES256"), Just("RS256"), Just("HS256"), Just("none")],
                 "[A-Za-z0-9_\\-]{0,90}", "[A-Za-z0-9_\\-]{0,90}", texty()),
                0..6,
            ).prop_map(|keys| json!({"keys": keys.into_iter().map(|(kty, alg, x, y, kid)| json!({
                "kty": kty, "alg": alg, "crv": "P-256", "x": x, "y": y, "n": x, "e": "AQAB", "kid": kid
            })).collect::<Vec<_>>()}).to_string().into_bytes()),
        ],
    ) {
        let (_, used) = peak_heap(|| {
            let _ = jwks::parse_jwks(&doc);
        });
        assert_bounded("jwks", doc.len(), used);
    }

    #[test]
    fn query_strings_never_panic(
        pairs in proptest::collection::vec(
            (prop_oneof![
                Just("limit"), Just("offset"), Just("q"), Just("order"), Just("mine"),
                Just("min_price"), Just("max_price"), Just("category_id"), Just("user_id"),
                Just("select"), Just("or"),
             ].prop_map(str::to_owned).boxed().prop_union(texty().boxed()),
             texty()),
            0..12,
        ),
        raw in texty(),
    ) {
        use supagate::api::input::parse_query;
        let encoded: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!(
                "{}={}",
                percent_encoding::utf8_percent_encode(k, percent_encoding::NON_ALPHANUMERIC),
                percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
            ))
            .collect();
        let qs = encoded.join("&");
        let (_, used) = peak_heap(|| {
            for text in [qs.as_str(), raw.as_str()] {
                let _ = parse_query::<supagate::api::items::ItemListQuery>(text);
                let _ = parse_query::<supagate::api::users::UserListQuery>(text);
            }
        });
        assert_bounded("query", qs.len() + raw.len(), used);
    }
}

/// serde_json's recursion limit (128) turns any nesting depth into an error, not a stack
/// overflow: the property the webhook and every untyped body rely on.
#[test]
fn serde_json_refuses_deep_nesting_at_any_depth() {
    for depth in [129, 1_000, 100_000, 1_000_000] {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let text = format!("{}{}", open.repeat(depth), close.repeat(depth));
            let err = serde_json::from_str::<Value>(&text).unwrap_err();
            assert!(
                err.to_string().contains("recursion limit"),
                "{depth}: {err}"
            );
        }
    }
    let ok = format!("{}{}", "[".repeat(127), "]".repeat(127));
    assert!(serde_json::from_str::<Value>(&ok).is_ok());
}
