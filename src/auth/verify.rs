//! Local verification of Supabase access tokens: no network round trip per request.

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::config::{Secret, Settings};
use crate::error::ApiError;

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

/// Verifies tokens against the configured keys.
pub struct Verifier {
    hs256: Option<DecodingKey>,
    validation: Validation,
}

impl Verifier {
    pub fn new(settings: &Settings) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = settings.auth.leeway_secs;
        validation.validate_nbf = true;
        validation.set_audience(&[settings.auth.audience.as_str()]);
        if settings.auth.verify_issuer {
            validation.set_issuer(&[settings.expected_issuer()]);
        }
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        Self {
            hs256: settings
                .auth
                .jwt_secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.expose().as_bytes())),
            validation,
        }
    }

    pub async fn verify(&self, token: &str) -> Result<AuthUser, ApiError> {
        let header = decode_header(token)
            .map_err(|_| ApiError::invalid_token("invalid_token", "Malformed token"))?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref().ok_or_else(|| {
                ApiError::invalid_token("invalid_algorithm", "HS256 tokens are not accepted")
            })?,
            _ => {
                return Err(ApiError::invalid_token(
                    "invalid_algorithm",
                    "Token algorithm is not accepted",
                ))
            }
        };
        let data = decode::<Claims>(token, key, &self.validation).map_err(map_jwt_error)?;
        user_from_claims(data.claims, token)
    }
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
