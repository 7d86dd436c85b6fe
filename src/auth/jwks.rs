//! Supabase's asymmetric signing keys (`/auth/v1/.well-known/jwks.json`), and those of each
//! configured third-party issuer (a JWKS URL, or the one its OIDC discovery document names):
//! parsed into per-key verifiers with a fixed algorithm, cached, refreshed in the background,
//! and re-fetched on an unknown `kid` at most once per configured interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::RwLock;
use serde_json::Value;
use sha2::Digest as _;

use crate::error::ApiError;
use crate::http_client::JsonApi;

/// One published key and the only algorithm it may verify (the per-key allowlist: an EC
/// P-256 key verifies ES256 and nothing else, a P-521 key ES512, an Ed25519 key EdDSA, an
/// RSA key the one of RS256/RS512 its `alg` names, RS256 when it names none).
pub enum VerifyKey {
    /// A key `jsonwebtoken` verifies.
    Jwt { alg: Algorithm, key: DecodingKey },
    /// A P-521 key: `jsonwebtoken` has no ES512, so `p521` checks the signature.
    Es512(Box<p521::ecdsa::VerifyingKey>),
}

impl VerifyKey {
    /// The JOSE `alg` this key verifies.
    pub fn alg_name(&self) -> &'static str {
        match self {
            Self::Jwt { alg, .. } => match alg {
                Algorithm::ES256 => "ES256",
                Algorithm::RS256 => "RS256",
                Algorithm::RS512 => "RS512",
                Algorithm::EdDSA => "EdDSA",
                _ => "",
            },
            Self::Es512(_) => "ES512",
        }
    }
}

/// A P-521 signing key of a JWKS, with its `kid`: `kty` EC, `alg` ES512 or none, not an
/// encryption key, coordinates of 66 bytes each (RFC 7518).
fn p521_jwk(raw: &Value) -> Option<(String, p521::ecdsa::VerifyingKey)> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let text = |k: &str| raw.get(k).and_then(Value::as_str);
    let kid = text("kid").filter(|k| !k.is_empty())?;
    if text("kty") != Some("EC") || text("use") == Some("enc") {
        return None;
    }
    if !matches!(text("alg"), None | Some("ES512")) {
        return None;
    }
    let x = URL_SAFE_NO_PAD.decode(text("x")?).ok()?;
    let y = URL_SAFE_NO_PAD.decode(text("y")?).ok()?;
    if x.len() != 66 || y.len() != 66 {
        return None;
    }
    let mut sec1 = Vec::with_capacity(133);
    sec1.push(0x04);
    sec1.extend_from_slice(&x);
    sec1.extend_from_slice(&y);
    let key = p521::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).ok()?;
    Some((kid.to_owned(), key))
}

type KeyMap = HashMap<String, Arc<VerifyKey>>;

/// Parses a JWKS document. Keys we cannot or must not use (symmetric, other curves or
/// algorithms, encryption keys, no `kid`) are skipped, so one odd key cannot hide the rest;
/// unknown members (`ext`, `key_ops`, ...) are ignored. Supabase Auth signs with RS256,
/// RS512, ES256, ES512 or EdDSA (its `GetSigningAlg`); all five are accepted.
pub fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<VerifyKey>>, String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        keys: Vec<Value>,
    }
    let doc: Doc = serde_json::from_slice(body).map_err(|e| format!("JWKS is not JSON: {e}"))?;
    let mut keys = HashMap::new();
    for raw in doc.keys {
        // `jsonwebtoken`'s `Jwk` cannot hold `"alg": "ES512"` (its `KeyAlgorithm` lacks it),
        // so P-521 keys are read here.
        if raw.get("crv").and_then(Value::as_str) == Some("P-521") {
            if let Some((kid, key)) = p521_jwk(&raw) {
                keys.insert(kid, Arc::new(VerifyKey::Es512(Box::new(key))));
            }
            continue;
        }
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (AlgorithmParameters::EllipticCurve(p), None | Some(KeyAlgorithm::ES256))
                if p.curve == EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
            (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::RS512)) => Algorithm::RS512,
            (AlgorithmParameters::OctetKeyPair(p), None | Some(KeyAlgorithm::EdDSA))
                if p.curve == EllipticCurve::Ed25519 =>
            {
                Algorithm::EdDSA
            }
            _ => continue,
        };
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            keys.insert(kid, Arc::new(VerifyKey::Jwt { alg, key }));
        }
    }
    Ok(keys)
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    last_success: Option<Instant>,
    /// SHA-256 of the last installed document: an unchanged JWKS is not re-installed, so
    /// the verified-token cache survives routine refreshes.
    last_document: Option<[u8; 32]>,
}

impl FetchState {
    /// The latest fetch (on demand or in the background) did not install or confirm a set.
    fn last_fetch_failed(&self) -> bool {
        match (self.last_attempt, self.last_success) {
            (Some(attempt), Some(success)) => success < attempt,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// The key cache. Lookups of known keys take a read lock only; fetches are serialised by
/// an async mutex, so concurrent requests naming the same new `kid` share one fetch.
pub struct Jwks {
    api: Option<JsonApi>,
    /// Where under `api` the JWKS (or, with `discovery`, the discovery document) is.
    path: String,
    /// Set for an issuer found through OIDC discovery: its `jwks_uri`, once read.
    discovery: Option<Discovery>,
    keys: RwLock<Arc<KeyMap>>,
    loaded: AtomicBool,
    /// Bumped by every install: verified tokens cached under an older key set are stale.
    generation: AtomicU64,
    fetch: tokio::sync::Mutex<FetchState>,
    min_refetch: Duration,
    refresh_interval: Duration,
}

const PATH: &str = "/.well-known/jwks.json";

/// OIDC discovery of an issuer's JWKS: `jwks_uri` of `<issuer>/.well-known/openid-configuration`,
/// which may be on another host (Firebase's is), read once and kept.
pub struct Discovery {
    client: crate::http_client::HttpClient,
    max_body_bytes: usize,
    found: tokio::sync::OnceCell<(JsonApi, String)>,
}

impl Discovery {
    pub fn new(client: crate::http_client::HttpClient, max_body_bytes: usize) -> Self {
        Self {
            client,
            max_body_bytes,
            found: tokio::sync::OnceCell::new(),
        }
    }

    /// Where the JWKS is: an API for its origin and the path (with query) under it.
    async fn jwks_location(
        &self,
        issuer: &JsonApi,
        discovery_path: &str,
    ) -> Result<&(JsonApi, String), String> {
        self.found
            .get_or_try_init(|| async {
                let request = issuer.request(http::Method::GET, discovery_path);
                let (_, _, body) = issuer.execute(request).await.map_err(|e| e.to_string())?;
                #[derive(serde::Deserialize)]
                struct Doc {
                    jwks_uri: String,
                }
                let doc: Doc = serde_json::from_slice(&body)
                    .map_err(|e| format!("discovery document without jwks_uri: {e}"))?;
                jwks_api(&doc.jwks_uri, &self.client, self.max_body_bytes)
            })
            .await
    }
}

/// `url` as an API for its origin and the path (with query) to ask it for.
pub fn jwks_api(
    url: &str,
    client: &crate::http_client::HttpClient,
    max_body_bytes: usize,
) -> Result<(JsonApi, String), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("`{url}` is not http(s)"));
    }
    let origin = parsed.origin().ascii_serialization();
    let mut path = parsed.path().to_owned();
    if let Some(query) = parsed.query() {
        path.push('?');
        path.push_str(query);
    }
    let api = JsonApi::new("issuer", client.clone(), origin, None, max_body_bytes)
        .map_err(|e| e.to_string())?;
    Ok((api, path))
}

impl Jwks {
    /// `api` is Supabase Auth; `None` builds a static set (tests, benches).
    pub fn new(api: Option<JsonApi>, min_refetch: Duration, refresh_interval: Duration) -> Self {
        Self::at(api, PATH.to_owned(), None, min_refetch, refresh_interval)
    }

    /// The keys of a third-party issuer: the JWKS at `path` under `api`, or, with
    /// `discovery`, the JWKS its discovery document at `path` names (read once, at the first
    /// fetch: start-up never waits for it).
    pub fn at(
        api: Option<JsonApi>,
        path: String,
        discovery: Option<Discovery>,
        min_refetch: Duration,
        refresh_interval: Duration,
    ) -> Self {
        Self {
            api,
            path,
            discovery,
            keys: RwLock::new(Arc::new(HashMap::new())),
            loaded: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            min_refetch,
            refresh_interval,
        }
    }

    /// Installs a key set directly (used by `new(None, ..)` callers and after each fetch).
    pub fn install(&self, keys: KeyMap) {
        *self.keys.write() = Arc::new(keys);
        // After the swap: whoever reads the new generation also sees the new keys.
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.loaded.store(true, Ordering::Release);
    }

    /// Changes whenever a key set is installed (see [`crate::auth::cache`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// A key we already know, without any I/O.
    pub fn cached(&self, kid: &str) -> Option<Arc<VerifyKey>> {
        self.keys.read().get(kid).cloned()
    }

    /// The key for `kid`, fetching the JWKS when it is unknown and the refetch interval
    /// allows. 503 while no key set was ever loaded or while fetching it fails (nothing is
    /// known about the key then: it may be a new one we cannot see yet); 401 `unknown_key`
    /// when a fetched set does not have it.
    pub async fn key(&self, kid: &str) -> Result<Arc<VerifyKey>, ApiError> {
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        let fetch_failing = {
            let mut state = self.fetch.lock().await;
            // Someone else's fetch may have brought the key while we waited for the lock.
            if let Some(key) = self.cached(kid) {
                return Ok(key);
            }
            let allowed = state
                .last_attempt
                .map_or(true, |t| t.elapsed() >= self.min_refetch);
            if allowed {
                self.fetch_locked(&mut state).await;
            }
            state.last_fetch_failed()
        };
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        if !self.is_loaded() {
            return Err(ApiError::upstream_unavailable(
                "no JWKS signing keys loaded yet",
            ));
        }
        if fetch_failing {
            return Err(ApiError::upstream_unavailable(
                "auth: the signing keys could not be fetched",
            ));
        }
        Err(ApiError::invalid_token(
            "unknown_key",
            "Token is signed by an unknown key",
        ))
    }

    /// Fetches when the cached set is older than the refresh interval (or absent).
    pub async fn refresh_if_stale(&self) {
        let mut state = self.fetch.lock().await;
        if state
            .last_success
            .map_or(true, |t| t.elapsed() >= self.refresh_interval)
        {
            self.fetch_locked(&mut state).await;
        }
    }

    async fn fetch_locked(&self, state: &mut FetchState) {
        let Some(api) = &self.api else { return };
        state.last_attempt = Some(Instant::now());
        let result = async {
            // References only: an owned client held across the fetch would make every key
            // lookup's future (and so every request's) larger. The discovery call is boxed
            // for the same reason; it runs once per issuer.
            let (api, path): (&JsonApi, &str) = match &self.discovery {
                None => (api, &self.path),
                Some(discovery) => {
                    let (api, path) = Box::pin(discovery.jwks_location(api, &self.path)).await?;
                    (api, path)
                }
            };
            let request = api.request(http::Method::GET, path);
            let (_, _, body) = api.execute(request).await.map_err(|e| e.to_string())?;
            let fingerprint: [u8; 32] = sha2::Sha256::digest(&body).into();
            if state.last_document == Some(fingerprint) && self.is_loaded() {
                return Ok(None);
            }
            parse_jwks(&body).map(|keys| Some((keys, fingerprint)))
        }
        .await;
        match result {
            Ok(Some((keys, fingerprint))) => {
                tracing::debug!("JWKS loaded: {} usable key(s)", keys.len());
                self.install(keys);
                state.last_document = Some(fingerprint);
                state.last_success = Some(Instant::now());
                crate::metrics::metrics().jwks_refresh("ok");
            }
            Ok(None) => {
                tracing::debug!("JWKS unchanged");
                state.last_success = Some(Instant::now());
                crate::metrics::metrics().jwks_refresh("ok");
            }
            Err(e) => {
                tracing::warn!("JWKS fetch failed: {e}");
                crate::metrics::metrics().jwks_refresh("error");
            }
        }
    }

    /// Loads the keys now and keeps them fresh: every `refresh_interval` once loaded, every
    /// `min_refetch` (at least 1 s) while Supabase has not answered yet. Never blocks start-up;
    /// the task ends when the verifier is dropped.
    pub fn spawn_refresh(self: &Arc<Self>) {
        if self.api.is_none() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(jwks) = weak.upgrade() else { break };
                jwks.refresh_if_stale().await;
                let pause = if jwks.is_loaded() {
                    jwks.refresh_interval
                } else {
                    jwks.min_refetch
                };
                drop(jwks);
                tokio::time::sleep(pause.max(Duration::from_secs(1))).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_get_the_algorithm_of_their_type_and_odd_keys_are_skipped() {
        let doc = serde_json::json!({"keys": [
            {"kid": "ec", "kty": "EC", "crv": "P-256", "alg": "ES256", "ext": true,
             "x": "v8YseG4jBXIdWfjPam6tYdqV5sZWZ4kC803g_ifmUDA",
             "y": "7CHuiMlEwqB2DfUj1FhtoYO5oYdM7mre1Pq5VyYIq2w", "key_ops": ["verify"]},
            {"kid": "oct", "kty": "oct", "k": "c2VjcmV0", "alg": "HS256"},
            {"kid": "weird", "kty": "OKP", "crv": "X448", "x": "AA"},
            {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys["ec"].alg_name(), "ES256");
    }

    #[test]
    fn ed25519_and_rs512_keys_are_bound_to_their_algorithm() {
        let doc = serde_json::json!({"keys": [
            {"kid": "ed", "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kid": "ed-noalg", "kty": "OKP", "crv": "Ed25519",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kid": "rs512", "kty": "RSA", "alg": "RS512", "e": "AQAB",
             "n": "u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0_IzW7yWR7QkrmBL7jTKEn5u-qKhbwKfBstIs-bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW_VDL5AaWTg0nLVkjRo9z-40RQzuVaE8AkAFmxZzow3x-VJYKdjykkJ0iT9wCS0DRTXu269V264Vf_3jvredZiKRkgwlL9xNAwxXFg0x_XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC-9aGVd-Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmw"},
            {"kid": "rs384", "kty": "RSA", "alg": "RS384", "e": "AQAB",
             "n": "u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0_IzW7yWR7QkrmBL7jTKEn5u-qKhbwKfBstIs-bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW_VDL5AaWTg0nLVkjRo9z-40RQzuVaE8AkAFmxZzow3x-VJYKdjykkJ0iT9wCS0DRTXu269V264Vf_3jvredZiKRkgwlL9xNAwxXFg0x_XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC-9aGVd-Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmw"},
            {"kid": "x25519", "kty": "OKP", "crv": "X25519",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys["ed"].alg_name(), "EdDSA");
        assert_eq!(keys["ed-noalg"].alg_name(), "EdDSA");
        assert_eq!(keys["rs512"].alg_name(), "RS512");
        assert!(
            !keys.contains_key("rs384"),
            "not an algorithm Supabase Auth signs with"
        );
        assert!(!keys.contains_key("x25519"), "an encryption curve");
    }
}
