//! API keys users create for their own servers: the `sgk_` format and its hash, the lookup by
//! hash (with the secret key), the verified-key cache, and the short-lived token a key's
//! request reaches PostgREST with, so RLS binds it to the key's owner (docs/api-keys.md).

use std::sync::Arc;

use actix_web::http::Method;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use quick_cache::sync::Cache;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::user::{AuthUser, VerifiedToken};
use crate::config::{KeySigning, Secret, Settings};
use crate::error::ApiError;
use crate::supabase::Supabase;

/// How every key begins: recognisable in a log line or a leaked file, and by secret scanners.
pub const PREFIX: &str = "sgk_";
/// Random bytes in a key: 256 bits, so a single SHA-256 stands in for a password hash.
const SECRET_BYTES: usize = 32;
/// `sgk_` and the base64url of the random bytes.
pub const KEY_LEN: usize = PREFIX.len() + 43;
/// The part of a key stored and shown to tell keys apart.
const SHOWN_LEN: usize = PREFIX.len() + 8;
/// A minted token outlives the cache entry that holds it by this much, so a request that took
/// the entry at its last moment still reaches PostgREST with a live token.
const MINT_MARGIN_SECS: i64 = 60;

/// The scopes a key may hold: a resource and `read` (`GET`) or `write` (everything else).
pub const SCOPES: [&str; 5] = [
    "items:read",
    "items:write",
    "categories:read",
    "users:read",
    "users:write",
];

/// SHA-256 of a key.
pub type KeyHash = [u8; 32];

pub fn hash(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// A key just made: the key itself (shown once, never stored) and what is stored of it.
pub struct NewKey {
    pub key: Secret,
    pub prefix: String,
    pub hash_hex: String,
}

/// A fresh random key.
pub fn generate() -> Result<NewKey, ApiError> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| ApiError::internal(format!("no randomness for an API key: {e}")))?;
    let key = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    Ok(NewKey {
        prefix: key[..SHOWN_LEN].to_owned(),
        hash_hex: hex::encode(hash(&key)),
        key: Secret::new(key),
    })
}

/// Whether a bearer credential is meant as an API key (which path checks it, not whether it
/// is a valid one).
pub fn is_api_key(token: &str) -> bool {
    token.starts_with(PREFIX)
}

fn well_formed(key: &str) -> bool {
    key.len() == KEY_LEN
        && key.starts_with(PREFIX)
        && key.as_bytes()[PREFIX.len()..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// What a key allows; carried by the [`AuthUser`] its request acts as.
#[derive(Debug)]
pub struct KeyGrant {
    pub id: Uuid,
    pub scopes: Vec<String>,
    /// `supagate_api_key_requests_total{key_id}` of this key.
    pub requests: prometheus_client::metrics::counter::Counter,
}

impl KeyGrant {
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// The scope an operation needs from a key, or `None` when keys may not call it at all
/// (key management, sessions, MFA, billing, creating or deleting accounts: whatever a
/// stolen key must not reach).
pub fn required_scope(method: &Method, template: &str) -> Option<&'static str> {
    let resource = template.strip_prefix("/api/")?.split('/').next()?;
    if resource == "users" && (method == Method::POST || method == Method::DELETE) {
        return None;
    }
    let access = if method == Method::GET || method == Method::HEAD {
        "read"
    } else {
        "write"
    };
    SCOPES.into_iter().find(|s| {
        s.split_once(':')
            .is_some_and(|(r, a)| r == resource && a == access)
    })
}

fn invalid_key() -> ApiError {
    ApiError::invalid_token("invalid_api_key", "API key is not valid")
}

fn unix_now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

/// A key as the lookup found it (the secret key reads it past RLS).
#[derive(serde::Deserialize)]
pub struct KeyRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub secret_hash: String,
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<time::OffsetDateTime>,
}

struct Entry {
    hash: KeyHash,
    owner: Uuid,
    key_id: Uuid,
    expires_at: Option<i64>,
    /// When the lookup answered: the entry is believed until `fetched_at + ttl`.
    fetched_at: i64,
    user: AuthUser,
}

/// Verifies keys: the cache first, then the lookup; mints the owner's token.
pub struct ApiKeys {
    supabase: Supabase,
    minter: Minter,
    cache: Option<Cache<KeyHash, Arc<Entry>>>,
    /// Keys the lookup did not find, by hash, with when it answered: a revoked key still
    /// sent by a script costs one lookup per `ttl`, not one per request. Safe to believe for
    /// as long as a found key: a key is random and shown only after its row exists, so one
    /// that was unknown when first presented cannot turn up later (a new key is a new hash).
    unknown: Option<Cache<KeyHash, i64>>,
    ttl: i64,
}

impl ApiKeys {
    /// `None` when `auth.api_keys.enabled` is off.
    pub fn new(settings: &Settings, supabase: &Supabase) -> anyhow::Result<Option<Self>> {
        let keys = &settings.auth.api_keys;
        if !keys.enabled {
            return Ok(None);
        }
        let ttl = i64::try_from(keys.cache_secs).unwrap_or(3600);
        Ok(Some(Self {
            supabase: supabase.clone(),
            minter: Minter::new(settings, ttl + MINT_MARGIN_SECS)?,
            cache: (keys.cache_entries > 0).then(|| Cache::new(keys.cache_entries)),
            unknown: (keys.cache_entries > 0).then(|| Cache::new(keys.cache_entries)),
            ttl,
        }))
    }

    /// The issuer side (JWKS, discovery), when supagate signs as its own issuer.
    pub fn minter(&self) -> &Minter {
        &self.minter
    }

    /// The owner `key` acts as, with its grant; 401 `invalid_api_key` for a key that is not
    /// (or no longer) one, 401 `api_key_expired` past its expiry.
    pub async fn verify(&self, key: &str) -> Result<AuthUser, ApiError> {
        match self.cache_answer(key) {
            Some(answer) => answer,
            // Boxed: the lookup's future inline would make every bearer request's future
            // larger, keys or not.
            None => Box::pin(self.look_up(key)).await,
        }
    }

    /// The answer the cache holds for `key` (or the format check gives), without I/O.
    fn cache_answer(&self, key: &str) -> Option<Result<AuthUser, ApiError>> {
        if !well_formed(key) {
            return Some(Err(invalid_key()));
        }
        let cache = self.cache.as_ref()?;
        let presented = hash(key);
        let now = unix_now();
        let Some(entry) = cache.get(&presented) else {
            let unknown = self.unknown.as_ref()?;
            let since = unknown.get(&presented)?;
            if now < since + self.ttl {
                return Some(Err(invalid_key()));
            }
            unknown.remove(&presented);
            return None;
        };
        // The cache is keyed by the hash; comparing it again (in constant time) means only
        // the exact key that was looked up can ever hit.
        if now < entry.fetched_at + self.ttl && bool::from(entry.hash.ct_eq(&presented)) {
            return Some(check_expiry(entry.expires_at, now).map(|()| entry.user.clone()));
        }
        cache.remove(&presented);
        None
    }

    /// Finds the key in the database, checks it and caches the owner it acts as.
    async fn look_up(&self, key: &str) -> Result<AuthUser, ApiError> {
        let presented = hash(key);
        let now = unix_now();
        let hex = hex::encode(presented);
        let Some(row) = self.supabase.api_key_by_hash(&hex).await? else {
            if let Some(unknown) = &self.unknown {
                unknown.insert(presented, now);
            }
            return Err(invalid_key());
        };
        // The database matched on the hash; confirm it here without an early exit.
        if !bool::from(row.secret_hash.as_bytes().ct_eq(hex.as_bytes())) {
            return Err(invalid_key());
        }
        let expires_at = row.expires_at.map(time::OffsetDateTime::unix_timestamp);
        check_expiry(expires_at, now)?;
        let (token, token_exp) = self.minter.mint(row.user_id, row.id, now)?;
        let user = AuthUser {
            id: row.user_id,
            role: Arc::from("authenticated"),
            // A key never carries administrator rights, whatever its owner has.
            is_admin: false,
            is_anonymous: false,
            aal2: false,
            expires_at: token_exp,
            session_id: None,
            third_party: false,
            api_key: Some(Arc::new(KeyGrant {
                id: row.id,
                scopes: row.scopes,
                requests: crate::metrics::metrics().api_key_requests(row.id),
            })),
            token: VerifiedToken::shared(token.expose()),
        };
        if let Some(cache) = &self.cache {
            cache.insert(
                presented,
                Arc::new(Entry {
                    hash: presented,
                    owner: row.user_id,
                    key_id: row.id,
                    expires_at,
                    fetched_at: now,
                    user: user.clone(),
                }),
            );
        }
        Ok(user)
    }

    /// Forgets a revoked key at once (on this instance).
    pub fn evict_key(&self, key_id: Uuid) {
        if let Some(cache) = &self.cache {
            cache.retain(|_, e| e.key_id != key_id);
        }
    }

    /// Forgets every key of a user (deleted: their keys went with them).
    pub fn evict_user(&self, user_id: Uuid) {
        if let Some(cache) = &self.cache {
            cache.retain(|_, e| e.owner != user_id);
        }
    }

    /// Keys held in the cache.
    pub fn cached(&self) -> usize {
        self.cache.as_ref().map_or(0, Cache::len)
    }
}

fn check_expiry(expires_at: Option<i64>, now: i64) -> Result<(), ApiError> {
    match expires_at {
        Some(at) if now >= at => Err(ApiError::invalid_token(
            "api_key_expired",
            "API key has expired",
        )),
        _ => Ok(()),
    }
}

/// Signs the tokens keys act with: the legacy secret, or supagate's own P-256 key as a
/// third-party-auth issuer.
pub struct Minter {
    signer: Signer,
    issuer: String,
    lifetime: i64,
}

enum Signer {
    Hs256(jsonwebtoken::EncodingKey),
    /// Boxed: built once, and far larger than the HS256 key.
    Es256(Box<Es256Signer>),
}

struct Es256Signer {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    kid: String,
    jwk: serde_json::Value,
}

impl Minter {
    fn new(settings: &Settings, lifetime: i64) -> anyhow::Result<Self> {
        let keys = &settings.auth.api_keys;
        match keys.effective_signing(&settings.auth) {
            KeySigning::Issuer => {
                let der = pem_body(keys.signing_key.expose())
                    .ok_or_else(|| anyhow::anyhow!("auth.api_keys.signing_key: not a PEM block"))?;
                let rng = SystemRandom::new();
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
                    .map_err(|e| {
                    anyhow::anyhow!("auth.api_keys.signing_key: not a PKCS#8 P-256 key ({e})")
                })?;
                let point = pair.public_key().as_ref();
                let (x, y) = point
                    .get(1..33)
                    .zip(point.get(33..65))
                    .ok_or_else(|| anyhow::anyhow!("auth.api_keys.signing_key: odd public key"))?;
                let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
                // RFC 7638 thumbprint: the kid changes exactly when the key does.
                let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
                let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
                let jwk = serde_json::json!({
                    "kty": "EC", "crv": "P-256", "x": x, "y": y,
                    "kid": kid, "alg": "ES256", "use": "sig", "key_ops": ["verify"],
                });
                Ok(Self {
                    signer: Signer::Es256(Box::new(Es256Signer {
                        pair,
                        rng,
                        kid,
                        jwk,
                    })),
                    issuer: keys.issuer.trim().trim_end_matches('/').to_owned(),
                    lifetime,
                })
            }
            _ => {
                let secret = settings.auth.jwt_secret.as_ref().ok_or_else(|| {
                    anyhow::anyhow!("auth.api_keys.signing: hs256 needs SUPABASE_JWT_SECRET")
                })?;
                Ok(Self {
                    signer: Signer::Hs256(jsonwebtoken::EncodingKey::from_secret(
                        secret.expose().as_bytes(),
                    )),
                    // As Auth's own tokens: PostgREST and RLS see no difference.
                    issuer: settings.expected_issuer(),
                    lifetime,
                })
            }
        }
    }

    /// A token for `owner`, role `authenticated`, naming the key; with its `exp`.
    fn mint(&self, owner: Uuid, key_id: Uuid, now: i64) -> Result<(Secret, i64), ApiError> {
        let exp = now + self.lifetime;
        let claims = serde_json::json!({
            "iss": self.issuer,
            "sub": owner,
            "aud": "authenticated",
            "role": "authenticated",
            "iat": now,
            "exp": exp,
            "aal": "aal1",
            "is_anonymous": false,
            "api_key_id": key_id,
        });
        let token = match &self.signer {
            Signer::Hs256(key) => jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &claims,
                key,
            )
            .map_err(|e| ApiError::internal(format!("minting a key's token: {e}")))?,
            Signer::Es256(es) => {
                let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": es.kid});
                let message = format!(
                    "{}.{}",
                    URL_SAFE_NO_PAD.encode(header.to_string()),
                    URL_SAFE_NO_PAD.encode(claims.to_string())
                );
                let signature = es
                    .pair
                    .sign(&es.rng, message.as_bytes())
                    .map_err(|_| ApiError::internal("signing a key's token failed"))?;
                format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
            }
        };
        Ok((Secret::new(token), exp))
    }

    /// `{"keys": [...]}` with supagate's public key, when it signs as an issuer.
    pub fn jwks(&self) -> Option<serde_json::Value> {
        match &self.signer {
            Signer::Es256(es) => Some(serde_json::json!({ "keys": [es.jwk] })),
            Signer::Hs256(_) => None,
        }
    }

    /// The OpenID discovery document third-party auth reads the JWKS location from.
    pub fn discovery(&self) -> Option<serde_json::Value> {
        self.jwks()?;
        Some(serde_json::json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/.well-known/jwks.json", self.issuer),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        }))
    }
}

/// The DER inside a PEM block (`\n` written as two characters, as in an env file, allowed).
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let pem = pem.replace("\\n", "\n");
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    STANDARD.decode(body).ok().filter(|der| !der.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_prefixed_well_formed_distinct_and_stored_only_as_a_hash() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(a.key.expose().starts_with("sgk_"));
        assert!(well_formed(a.key.expose()));
        assert_ne!(a.key.expose(), b.key.expose());
        assert_eq!(a.prefix, &a.key.expose()[..12]);
        assert_eq!(a.hash_hex, hex::encode(hash(a.key.expose())));
        assert!(!a.hash_hex.contains(&a.key.expose()[4..]));
        assert_eq!(format!("{:?}", a.key), "[REDACTED]");
    }

    #[test]
    fn malformed_keys_are_told_apart_before_any_lookup() {
        assert!(!well_formed("sgk_short"));
        assert!(!well_formed(&format!("sgk_{}", "!".repeat(43))));
        assert!(!well_formed(&format!("sgx_{}", "A".repeat(43))));
        assert!(well_formed(&format!("sgk_{}", "A".repeat(43))));
    }

    #[test]
    fn scopes_follow_the_resource_and_the_method_and_other_routes_need_no_key() {
        assert_eq!(
            required_scope(&Method::GET, "/api/items/{id}"),
            Some("items:read")
        );
        assert_eq!(
            required_scope(&Method::DELETE, "/api/items/{id}"),
            Some("items:write")
        );
        assert_eq!(
            required_scope(&Method::GET, "/api/users/{id}/stats"),
            Some("users:read")
        );
        assert_eq!(
            required_scope(&Method::PUT, "/api/users/{id}"),
            Some("users:write")
        );
        assert_eq!(required_scope(&Method::DELETE, "/api/users/{id}"), None);
        assert_eq!(required_scope(&Method::POST, "/api/users"), None);
        assert_eq!(required_scope(&Method::POST, "/api/categories"), None);
        assert_eq!(required_scope(&Method::POST, "/api/keys"), None);
        assert_eq!(required_scope(&Method::GET, "/api/auth/user"), None);
        assert_eq!(
            required_scope(&Method::GET, "/api/billing/subscription"),
            None
        );
    }
}
