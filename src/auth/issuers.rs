//! Third-party issuers (`[[auth.issuers]]`): tokens of Clerk, Auth0, Firebase Auth, Cognito
//! or any OIDC provider the project trusts through Supabase's third-party auth. They are
//! verified by the same code as Auth's own (`Verifier`: keys by `kid`, one algorithm per key,
//! the verified-token cache), each issuer with its own key set, audience and claim names, and
//! forwarded to PostgREST unchanged, which is what third-party auth expects.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::jwks::{jwks_api, Discovery, Jwks};
use super::user::{AuthUser, VerifiedToken};
use crate::config::{AuthSettings, IssuerSettings};
use crate::error::ApiError;
use crate::http_client::HttpClient;

/// One configured issuer: its keys and how its claims are read.
pub struct Issuer {
    pub(super) issuer: String,
    pub(super) jwks: Arc<Jwks>,
    /// One per asymmetric algorithm a key can be bound to (third-party auth accepts no
    /// symmetric keys, and neither does supagate for these issuers).
    pub(super) asymmetric: [(Algorithm, Validation); 4],
    pub(super) es512_claims: Validation,
    role_claim: String,
    user_id_claim: String,
}

impl Issuer {
    pub fn new(
        settings: &IssuerSettings,
        auth: &AuthSettings,
        client: Option<&HttpClient>,
        max_body_bytes: usize,
    ) -> anyhow::Result<Self> {
        let issuer = settings.issuer.trim().to_owned();
        let (api, path, discovery) = match client {
            None => (None, String::new(), None),
            Some(client) if settings.jwks_url.trim().is_empty() => {
                let (api, path) = jwks_api(
                    &format!(
                        "{}/.well-known/openid-configuration",
                        issuer.trim_end_matches('/')
                    ),
                    client,
                    max_body_bytes,
                )
                .map_err(|e| anyhow::anyhow!("auth.issuers ({issuer}): {e}"))?;
                (
                    Some(api),
                    path,
                    Some(Discovery::new(client.clone(), max_body_bytes)),
                )
            }
            Some(client) => {
                let (api, path) = jwks_api(settings.jwks_url.trim(), client, max_body_bytes)
                    .map_err(|e| anyhow::anyhow!("auth.issuers ({issuer}): {e}"))?;
                (Some(api), path, None)
            }
        };
        let jwks = Arc::new(Jwks::at(
            api,
            path,
            discovery,
            Duration::from_secs(auth.jwks_min_refetch_interval_secs),
            Duration::from_secs(auth.jwks_refresh_interval_secs),
        ));
        let audience = settings.audience.trim();
        let validation = |alg| {
            let mut v = Validation::new(alg);
            v.leeway = auth.leeway_secs;
            v.validate_nbf = true;
            v.set_issuer(&[issuer.as_str()]);
            let mut required = vec!["exp", "iss"];
            if audience.is_empty() {
                v.validate_aud = false;
            } else {
                v.set_audience(&[audience]);
                required.push("aud");
            }
            v.set_required_spec_claims(&required);
            v
        };
        let asymmetric = super::verify::ASYMMETRIC.map(|alg| (alg, validation(alg)));
        let mut es512_claims = validation(Algorithm::ES256);
        // The signature is checked by `p521` before this runs (see `Verifier`).
        es512_claims.insecure_disable_signature_validation();
        Ok(Self {
            jwks,
            asymmetric,
            es512_claims,
            role_claim: settings.role_claim.trim().to_owned(),
            user_id_claim: settings.user_id_claim.trim().to_owned(),
            issuer,
        })
    }

    /// The issuer's key set (to install keys directly, or to start its refresh).
    pub fn jwks(&self) -> &Arc<Jwks> {
        &self.jwks
    }

    /// The caller a verified token of this issuer names.
    pub(super) fn user_from(&self, claims: &Value, token: &str) -> Result<AuthUser, ApiError> {
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let subject = text(&self.user_id_claim).ok_or_else(|| {
            ApiError::invalid_token("invalid_subject", "Token has no user id claim")
        })?;
        let role = text(&self.role_claim)
            .ok_or_else(|| ApiError::invalid_token("invalid_role", "Token has no role"))?;
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or_else(|| ApiError::invalid_token("invalid_claims", "Token lacks `exp`"))?;
        Ok(AuthUser {
            id: user_id(&self.issuer, subject),
            role: Arc::from(role),
            // Admin rights come from Auth's `app_metadata`, which no other issuer sets.
            is_admin: false,
            is_anonymous: claims.get("is_anonymous").and_then(Value::as_bool) == Some(true),
            aal2: false,
            expires_at: exp,
            session_id: None,
            api_key: None,
            third_party: true,
            token: VerifiedToken::shared(token),
        })
    }
}

/// The id supagate knows a third-party user by: the claim itself when it is a UUID, else a
/// UUID made from the SHA-256 of issuer and id (version 8), so the same user is the same id
/// in rate limits, logs and caches, and never collides with another issuer's user. RLS sees
/// the original claims: the token is forwarded as it came.
pub fn user_id(issuer: &str, subject: &str) -> Uuid {
    if let Ok(id) = Uuid::parse_str(subject) {
        return id;
    }
    let digest = Sha256::new()
        .chain_update(issuer.as_bytes())
        .chain_update([0])
        .chain_update(subject.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The `iss` a token claims, read before anything is verified: it only picks which keys and
/// checks apply, and those checks verify it.
pub(super) fn claimed_issuer(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}

/// Builds the configured issuers (`client`: where their keys are fetched from; `None` for
/// keys installed by hand).
pub fn from_settings(
    auth: &AuthSettings,
    client: Option<&HttpClient>,
    max_body_bytes: usize,
) -> anyhow::Result<Vec<Issuer>> {
    auth.issuers
        .iter()
        .map(|settings| Issuer::new(settings, auth, client, max_body_bytes))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uuid_id_is_kept_and_any_other_id_maps_to_one_stable_id_per_issuer() {
        let id = "4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90";
        assert_eq!(user_id("https://a", id).to_string(), id);
        let clerk = user_id("https://clerk.example", "user_2abc");
        assert_eq!(clerk, user_id("https://clerk.example", "user_2abc"));
        assert_ne!(clerk, user_id("https://other.example", "user_2abc"));
        assert_ne!(clerk, user_id("https://clerk.example", "user_2abd"));
        assert_eq!(clerk.get_version_num(), 8);
    }

    #[test]
    fn the_claimed_issuer_is_read_from_the_payload() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"iss":"https://clerk.example","sub":"u"}"#);
        assert_eq!(
            claimed_issuer(&format!("e30.{payload}.sig")).as_deref(),
            Some("https://clerk.example")
        );
        assert_eq!(claimed_issuer("not-a-token"), None);
    }
}
