//! Local verification of Supabase access tokens: no network round trip per request.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::jwks::Jwks;
use crate::config::{Secret, Settings};
use crate::error::ApiError;
use crate::http_client::JsonApi;

/// A caller whose token passed every check. Only server-controlled claims are kept:
/// `user_metadata` is user-editable and never grants anything, so it is not even read.
#[derive(Clone)]
pub struct AuthUser {
    pub id: Uuid,
    pub role: String,
    pub email: Option<String>,
    pub is_admin: bool,
    pub session_id: Option<String>,
    pub expires_at: i64,
    token: Secret,
}

impl std::fmt::Debug for AuthUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthUser")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("is_admin", &self.is_admin)
            .finish_non_exhaustive()
    }
}

impl AuthUser {
    /// The verified access token, to forward as `Authorization: Bearer` so RLS applies.
    pub fn token(&self) -> &str {
        self.token.expose()
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    role: Option<String>,
    email: Option<String>,
    exp: i64,
    #[serde(default)]
    app_metadata: Value,
    session_id: Option<String>,
}

/// Verifies tokens against the configured keys: the legacy HS256 secret (when set) and the
/// project's JWKS (ES256/RS256). Each key verifies exactly one algorithm.
pub struct Verifier {
    hs256: Option<DecodingKey>,
    jwks: Arc<Jwks>,
    hs256_validation: Validation,
    es256_validation: Validation,
    rs256_validation: Validation,
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
            es256_validation: validation(Algorithm::ES256),
            rs256_validation: validation(Algorithm::RS256),
        }
    }

    /// The JWKS cache (to install keys directly, or to inspect it).
    pub fn jwks(&self) -> &Arc<Jwks> {
        &self.jwks
    }

    /// Starts the background JWKS load/refresh; start-up never waits for Supabase.
    pub fn spawn_refresh(&self) {
        self.jwks.spawn_refresh();
    }

    pub async fn verify(&self, token: &str) -> Result<AuthUser, ApiError> {
        let header = parse_header(token)?;
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
            alg @ ("ES256" | "RS256") => {
                let kid = header
                    .kid
                    .as_deref()
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| {
                        ApiError::invalid_token("unknown_key", "Token names no signing key")
                    })?;
                let found = self.jwks.key(kid).await?;
                let (key_alg, validation) = match found.alg {
                    Algorithm::ES256 => ("ES256", &self.es256_validation),
                    _ => ("RS256", &self.rs256_validation),
                };
                if key_alg != alg {
                    return Err(bad_alg());
                }
                let data =
                    decode::<Claims>(token, &found.key, validation).map_err(map_jwt_error)?;
                return user_from_claims(data.claims, token);
            }
            _ => return Err(bad_alg()),
        };
        let data = decode::<Claims>(token, key, validation).map_err(map_jwt_error)?;
        user_from_claims(data.claims, token)
    }
}

fn bad_alg() -> ApiError {
    ApiError::invalid_token("invalid_algorithm", "Token algorithm is not accepted")
}

fn malformed() -> ApiError {
    ApiError::invalid_token("malformed_token", "Token is not a well-formed JWT")
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
        role,
        email: claims.email.filter(|e| !e.is_empty()),
        is_admin,
        session_id: claims.session_id,
        expires_at: claims.exp,
        token: Secret::new(token),
    })
}
