//! JWT header and claims handling: arbitrary token text, and arbitrary JSON claims correctly
//! signed with the configured HS256 secret (so the claims checks are reached).
#![no_main]
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use supagate::auth::verify::Verifier;
use supagate::config::Settings;

const SECRET: &str = "fuzz-hs256-secret-with-at-least-32-characters";

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let env = HashMap::from([
            ("APP_ENV".to_owned(), "test".to_owned()),
            ("SUPABASE_URL".to_owned(), "http://127.0.0.1:9".to_owned()),
            ("SUPABASE_ANON_KEY".to_owned(), "anon".to_owned()),
            ("SUPABASE_JWT_SECRET".to_owned(), SECRET.to_owned()),
        ]);
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config");
        Verifier::new(&Settings::load(&dir, &env).unwrap(), None)
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = runtime().block_on(verifier().verify(text));
    if let Ok(claims) = serde_json::from_str::<serde_json::Value>(text) {
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        );
        if let Ok(token) = token {
            let _ = runtime().block_on(verifier().verify(&token));
        }
    }
});
