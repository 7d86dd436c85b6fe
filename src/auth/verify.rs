//! Local verification of Supabase access tokens, and of the tokens of configured third-party
//! issuers: no network round trip per request.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::cache::{digest, TokenCache};
use super::jwks::{Jwks, VerifyKey};
pub use super::user::AuthUser;
use crate::config::Settings;
use crate::error::ApiError;
use crate::http_client::JsonApi;

#[derive(Deserialize)]
struct Claims {
    sub: String,
    role: Option<String>,
    exp: i64,
    #[serde(default)]
    app_metadata: Value,
    /// Set by Auth on tokens of anonymous sign-ins (absent on older tokens: not anonymous).
    #[serde(default)]
    is_anonymous: bool,
    /// `aal1` (one factor) or `aal2` (a second factor verified in this session).
    #[serde(default)]
    aal: Option<String>,
    /// Auth's session this token belongs to (what `auth.check_session_routes` confirms).
    #[serde(default)]
    session_id: Option<String>,
}

/// Verifies tokens against the configured keys: the legacy HS256 secret (when set) and the
/// project's JWKS (ES256, RS256, RS512, EdDSA, ES512). Each key verifies exactly one algorithm.
pub struct Verifier {
    hs256: Option<DecodingKey>,
    jwks: Arc<Jwks>,
    hs256_validation: Validation,
    /// One per asymmetric algorithm a published key can be bound to.
    asymmetric: [(Algorithm, Validation); 4],
    /// The claim checks of an ES512 token whose signature `p521` has verified.
    es512_claims: Validation,
    /// Stands in for the key of a token whose signature was verified elsewhere.
    no_key: DecodingKey,
    cache: TokenCache,
    /// `auth.api_keys`, when enabled: `Bearer sgk_...` is checked there.
    api_keys: Option<super::api_key::ApiKeys>,
    /// `[[auth.issuers]]`: a token whose `iss` names one of these is checked with its keys.
    issuers: Vec<super::issuers::Issuer>,
}

/// The JOSE header members we read; parsed by hand so `alg: "none"` and unknown algorithms
/// get a precise `invalid_algorithm` instead of a generic decode error.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
}

/// Larger than any Supabase access token; refusing early bounds the work a request causes.
const MAX_TOKEN_LEN: usize = 16 * 1024;

impl Verifier {
    /// `auth_api` is Supabase Auth, where the JWKS lives; `None` verifies with the keys
    /// installed through [`Verifier::jwks`] only (benches, unit tests).
    pub fn new(settings: &Settings, auth_api: Option<JsonApi>) -> Self {
        let validation = |alg| {
            let mut v = Validation::new(alg);
            v.leeway = settings.auth.leeway_secs;
            v.validate_nbf = true;
            v.set_audience(&[settings.auth.audience.as_str()]);
            let mut required = vec!["exp", "sub", "aud"];
            if settings.auth.verify_issuer {
                v.set_issuer(&[settings.expected_issuer()]);
                // Without this a token *lacking* `iss` would pass the issuer check.
                required.push("iss");
            }
            v.set_required_spec_claims(&required);
            v
        };
        let jwks = Arc::new(Jwks::new(
            auth_api,
            Duration::from_secs(settings.auth.jwks_min_refetch_interval_secs),
            Duration::from_secs(settings.auth.jwks_refresh_interval_secs),
        ));
        Self {
            hs256: settings
                .auth
                .jwt_secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.expose().as_bytes())),
            jwks,
            hs256_validation: validation(Algorithm::HS256),
            asymmetric: ASYMMETRIC.map(|alg| (alg, validation(alg))),
            es512_claims: {
                let mut v = validation(Algorithm::ES256);
                // The signature is checked by `decode_es512` before this runs.
                v.insecure_disable_signature_validation();
                v
            },
            no_key: DecodingKey::from_secret(&[]),
            cache: TokenCache::new(settings.auth.token_cache_entries, settings.auth.leeway_secs),
            api_keys: None,
            issuers: Vec::new(),
        }
    }

    /// Accepts the tokens of these third-party issuers too.
    pub fn with_issuers(mut self, issuers: Vec<super::issuers::Issuer>) -> Self {
        self.issuers = issuers;
        self
    }

    /// The configured third-party issuers.
    pub fn issuers(&self) -> &[super::issuers::Issuer] {
        &self.issuers
    }

    /// Changes whenever any key set (Auth's or an issuer's) is installed: a cached token is
    /// trusted only under the key sets it was verified with.
    fn generation(&self) -> u64 {
        self.issuers.iter().fold(self.jwks.generation(), |sum, i| {
            sum.wrapping_add(i.jwks.generation())
        })
    }

    /// Accepts API keys on the bearer path too (see [`Verifier::verify_bearer`]).
    pub fn with_api_keys(mut self, keys: Option<super::api_key::ApiKeys>) -> Self {
        self.api_keys = keys;
        self
    }

    /// The API-key verifier, when keys are enabled.
    pub fn api_keys(&self) -> Option<&super::api_key::ApiKeys> {
        self.api_keys.as_ref()
    }

    /// A bearer credential: an API key (`sgk_...`) when keys are enabled, else a token as
    /// [`Verifier::verify`] checks it. Only the `Authorization` header can carry a key; a
    /// session cookie never does.
    pub async fn verify_bearer(&self, credential: &str) -> Result<AuthUser, ApiError> {
        match &self.api_keys {
            Some(keys) if super::api_key::is_api_key(credential) => keys.verify(credential).await,
            _ => self.verify(credential).await,
        }
    }

    /// The JWKS cache (to install keys directly, or to inspect it).
    pub fn jwks(&self) -> &Arc<Jwks> {
        &self.jwks
    }

    /// Starts the background JWKS load/refresh; start-up never waits for Supabase.
    pub fn spawn_refresh(&self) {
        self.jwks.spawn_refresh();
        for issuer in &self.issuers {
            issuer.jwks.spawn_refresh();
        }
    }

    /// Whether a legacy HS256 secret is configured.
    pub fn accepts_hs256(&self) -> bool {
        self.hs256.is_some()
    }

    /// The verified-token cache (to inspect it).
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// Verifies `token`, answering from the verified-token cache when this exact token was
    /// verified under the current key set and has not expired.
    pub async fn verify(&self, token: &str) -> Result<AuthUser, ApiError> {
        if !self.cache.enabled() {
            return self.verify_uncached(token).await;
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(malformed());
        }
        // Read before verifying: a key set installed meanwhile makes this entry stale, never
        // the other way round.
        let generation = self.generation();
        let key = digest(token);
        if let Some(user) = self.cache.get(&key, token, generation, unix_now()) {
            return Ok(user);
        }
        let user = self.verify_uncached(token).await?;
        self.cache.insert(key, &user, generation, unix_now());
        Ok(user)
    }

    /// Full verification: header, key, signature and claims, without the cache.
    pub async fn verify_uncached(&self, token: &str) -> Result<AuthUser, ApiError> {
        let header = parse_header(token)?;
        if let Some(issuer) = self.third_party_issuer(token) {
            // Boxed: a second verification future inline would make every verification's
            // future (and so every request's) larger.
            return Box::pin(self.verify_third_party(issuer, token, header)).await;
        }
        let (key, validation): (&DecodingKey, &Validation) = match header.alg.as_str() {
            "HS256" => {
                // An HS256 token naming one of the published asymmetric keys is the classic
                // key-confusion attack (public key used as HMAC secret): refuse it outright.
                if header
                    .kid
                    .as_deref()
                    .and_then(|k| self.jwks.cached(k))
                    .is_some()
                {
                    return Err(bad_alg());
                }
                let key = self.hs256.as_ref().ok_or_else(|| {
                    ApiError::invalid_token("invalid_algorithm", "HS256 tokens are not accepted")
                })?;
                (key, &self.hs256_validation)
            }
            alg if is_asymmetric(alg) => {
                let claims: Claims = self
                    .decode_asymmetric(
                        token,
                        &header,
                        &self.jwks,
                        &self.asymmetric,
                        &self.es512_claims,
                    )
                    .await?;
                return user_from_claims(claims, token);
            }
            _ => return Err(bad_alg()),
        };
        let data = decode::<Claims>(token, key, validation).map_err(map_jwt_error)?;
        user_from_claims(data.claims, token)
    }
}

impl Verifier {
    /// The configured third-party issuer a token claims to come from, if any.
    fn third_party_issuer(&self, token: &str) -> Option<&super::issuers::Issuer> {
        if self.issuers.is_empty() {
            return None;
        }
        let claimed = super::issuers::claimed_issuer(token)?;
        self.issuers.iter().find(|i| i.issuer == claimed)
    }

    /// A token of a configured third-party issuer: asymmetric only (as third-party auth
    /// accepts), with that issuer's keys and checks.
    async fn verify_third_party(
        &self,
        issuer: &super::issuers::Issuer,
        token: &str,
        header: RawHeader,
    ) -> Result<AuthUser, ApiError> {
        if !is_asymmetric(&header.alg) {
            return Err(bad_alg());
        }
        let claims: Value = self
            .decode_asymmetric(
                token,
                &header,
                &issuer.jwks,
                &issuer.asymmetric,
                &issuer.es512_claims,
            )
            .await?;
        issuer.user_from(&claims, token)
    }

    /// Verifies an asymmetrically signed token against `jwks`: the key named by `kid`, whose
    /// own algorithm decides (the header must merely agree), then the claims under the
    /// validation of that algorithm.
    async fn decode_asymmetric<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        header: &RawHeader,
        jwks: &Jwks,
        asymmetric: &[(Algorithm, Validation); 4],
        es512_claims: &Validation,
    ) -> Result<T, ApiError> {
        let kid = header
            .kid
            .as_deref()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| ApiError::invalid_token("unknown_key", "Token names no signing key"))?;
        let found = jwks.key(kid).await?;
        if found.alg_name() != header.alg {
            return Err(bad_alg());
        }
        let data = match &*found {
            VerifyKey::Jwt { alg, key } => {
                let validation = asymmetric
                    .iter()
                    .find(|(a, _)| a == alg)
                    .map(|(_, v)| v)
                    .ok_or_else(bad_alg)?;
                decode::<T>(token, key, validation).map_err(map_jwt_error)?
            }
            VerifyKey::Es512(key) => self.decode_es512(token, key, es512_claims)?,
        };
        Ok(data.claims)
    }

    /// ES512, which `jsonwebtoken` cannot verify: `p521` checks the signature over the token's
    /// own `header.payload`; the claims then go through the same `jsonwebtoken` validation as
    /// every other token (`exp`, `nbf`, `aud`, `iss`, leeway), read from the payload under a
    /// stand-in header because `jsonwebtoken` cannot parse `"alg": "ES512"`.
    fn decode_es512<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        key: &p521::ecdsa::VerifyingKey,
        claims: &Validation,
    ) -> Result<jsonwebtoken::TokenData<T>, ApiError> {
        use p521::ecdsa::signature::Verifier as _;
        let (message, signature) = token.rsplit_once('.').ok_or_else(malformed)?;
        let payload = message
            .split_once('.')
            .map(|(_, p)| p)
            .ok_or_else(malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed())?;
        let signature =
            p521::ecdsa::Signature::from_slice(&signature).map_err(|_| bad_signature())?;
        key.verify(message.as_bytes(), &signature)
            .map_err(|_| bad_signature())?;
        let checked = format!("{ES512_STAND_IN_HEADER}.{payload}.");
        decode::<T>(&checked, &self.no_key, claims).map_err(map_jwt_error)
    }
}

/// `{"alg":"ES256","typ":"JWT"}`, base64url: a header `jsonwebtoken` parses, put in front of
/// an ES512 token's verified payload so its claims are validated as every other token's.
const ES512_STAND_IN_HEADER: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9";

fn bad_signature() -> ApiError {
    ApiError::invalid_token("invalid_signature", "Token signature is invalid")
}

/// The asymmetric algorithms a JWKS key may be bound to (see `jwks::parse_jwks`).
pub(super) const ASYMMETRIC: [Algorithm; 4] = [
    Algorithm::ES256,
    Algorithm::RS256,
    Algorithm::RS512,
    Algorithm::EdDSA,
];

/// The JOSE `alg` name of an algorithm.
fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::RS256 => "RS256",
        Algorithm::RS512 => "RS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "",
    }
}

/// A `jsonwebtoken` asymmetric algorithm, or ES512.
fn is_asymmetric(alg: &str) -> bool {
    alg == "ES512" || ASYMMETRIC.iter().any(|a| alg_name(*a) == alg)
}

fn bad_alg() -> ApiError {
    ApiError::invalid_token("invalid_algorithm", "Token algorithm is not accepted")
}

fn malformed() -> ApiError {
    ApiError::invalid_token("malformed_token", "Token is not a well-formed JWT")
}

/// The `alg` a token's header names, if it has a readable header.
pub(crate) fn token_alg(token: &str) -> Option<String> {
    parse_header(token).ok().map(|h| h.alg)
}

fn parse_header(token: &str) -> Result<RawHeader, ApiError> {
    if token.len() > MAX_TOKEN_LEN || token.split('.').count() != 3 {
        return Err(malformed());
    }
    let head = token.split('.').next().unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD.decode(head).map_err(|_| malformed())?;
    serde_json::from_slice(&bytes).map_err(|_| malformed())
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> ApiError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => ApiError::invalid_token("token_expired", "Token has expired"),
        K::ImmatureSignature => {
            ApiError::invalid_token("token_not_yet_valid", "Token is not valid yet")
        }
        K::InvalidAudience => {
            ApiError::invalid_token("invalid_audience", "Token audience is not accepted")
        }
        K::InvalidIssuer => {
            ApiError::invalid_token("invalid_issuer", "Token issuer is not accepted")
        }
        K::InvalidSignature => {
            ApiError::invalid_token("invalid_signature", "Token signature is invalid")
        }
        K::InvalidAlgorithm => {
            ApiError::invalid_token("invalid_algorithm", "Token algorithm is not accepted")
        }
        K::MissingRequiredClaim(_) => {
            ApiError::invalid_token("invalid_claims", "Token lacks a required claim")
        }
        K::Base64(_) | K::Json(_) | K::Utf8(_) | K::InvalidToken => malformed(),
        _ => ApiError::invalid_token("invalid_token", "Token is invalid"),
    }
}

fn user_from_claims(claims: Claims, token: &str) -> Result<AuthUser, ApiError> {
    let id = Uuid::parse_str(&claims.sub).map_err(|_| {
        ApiError::invalid_token("invalid_subject", "Token subject is not a user id")
    })?;
    let role = claims
        .role
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::invalid_token("invalid_role", "Token has no role"))?;
    let is_admin = claims.app_metadata.get("role").and_then(Value::as_str) == Some("admin");
    Ok(AuthUser {
        id,
        role: role.into(),
        is_admin,
        is_anonymous: claims.is_anonymous,
        aal2: claims.aal.as_deref() == Some("aal2"),
        expires_at: claims.exp,
        session_id: claims
            .session_id
            .as_deref()
            .and_then(|s| Uuid::parse_str(s).ok()),
        api_key: None,
        third_party: false,
        token: super::user::VerifiedToken::shared(token),
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use serde_json::Value;

    use super::*;
    use crate::auth::jwks::parse_jwks;

    fn fixture() -> Value {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn verifier(jwt: &Value) -> Verifier {
        let env: HashMap<String, String> = HashMap::from([
            ("APP_ENV".into(), "test".into()),
            ("SUPABASE_URL".into(), "http://127.0.0.1:54321".into()),
            ("SUPABASE_ANON_KEY".into(), "unit".into()),
            (
                "SUPABASE_JWT_SECRET".into(),
                jwt["hs256_secret"].as_str().unwrap().into(),
            ),
            (
                "SUPAGATE_AUTH__ISSUER".into(),
                jwt["issuer"].as_str().unwrap().into(),
            ),
        ]);
        let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
        let settings = Settings::load(&config, &env).unwrap();
        let verifier = Verifier::new(&settings, None);
        verifier
            .jwks()
            .install(parse_jwks(jwt["jwks_initial"].to_string().as_bytes()).unwrap());
        verifier
    }

    fn token(jwt: &Value, name: &str) -> String {
        jwt["tokens"][name]["token"].as_str().unwrap().to_owned()
    }

    fn code(result: Result<AuthUser, ApiError>) -> &'static str {
        result.expect_err("must be rejected").code()
    }

    #[tokio::test]
    async fn a_key_rotation_that_removes_the_key_invalidates_its_cached_tokens() {
        let jwt = fixture();
        let verifier = verifier(&jwt);
        let es = token(&jwt, "valid_es256");
        let rs = token(&jwt, "valid_rs256");
        verifier.verify(&es).await.unwrap();
        verifier.verify(&rs).await.unwrap();
        assert_eq!(verifier.cache().len(), 2);
        assert!(verifier.verify(&es).await.is_ok(), "served from the cache");

        // The ES256 key is withdrawn; the RSA key stays.
        let mut doc = jwt["jwks_initial"].clone();
        doc["keys"]
            .as_array_mut()
            .unwrap()
            .retain(|k| k["kty"] != "EC");
        verifier
            .jwks()
            .install(parse_jwks(doc.to_string().as_bytes()).unwrap());
        assert_eq!(code(verifier.verify(&es).await), "unknown_key");
        assert!(
            verifier.verify(&rs).await.is_ok(),
            "re-verified with its key"
        );
    }

    #[tokio::test]
    async fn a_tampered_token_never_hits_the_cache() {
        let jwt = fixture();
        let verifier = verifier(&jwt);
        let good = token(&jwt, "valid_es256");
        verifier.verify(&good).await.unwrap();
        // Same header and payload, one signature character changed.
        let mut bad = good.clone().into_bytes();
        let last = bad.len() - 2;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(code(verifier.verify(&bad).await), "invalid_signature");
        assert_eq!(
            code(
                verifier
                    .verify(&token(&jwt, "tampered_payload_es256"))
                    .await
            ),
            "invalid_signature"
        );
        assert_eq!(
            verifier.cache().len(),
            1,
            "rejected tokens are never cached"
        );
        assert!(verifier.verify(&good).await.is_ok());
    }

    #[tokio::test]
    async fn an_expired_token_is_rejected_and_not_cached() {
        let jwt = fixture();
        let verifier = verifier(&jwt);
        assert_eq!(
            code(verifier.verify(&token(&jwt, "expired_es256")).await),
            "token_expired"
        );
        assert!(verifier.cache().is_empty());
    }
}
