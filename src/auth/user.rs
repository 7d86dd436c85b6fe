//! The verified caller: who a request is made for once its token passed every check.

use std::sync::Arc;

use http::HeaderValue;
use uuid::Uuid;

use crate::config::Secret;

/// A caller whose token passed every check. Only server-controlled claims are kept:
/// `user_metadata` is user-editable and never grants anything, so it is not even read.
#[derive(Clone)]
pub struct AuthUser {
    pub id: Uuid,
    /// Shared: a user is cloned out of the verified-token cache on every request.
    pub role: Arc<str>,
    pub is_admin: bool,
    /// An anonymous sign-in (`is_anonymous` claim): reads like a user, writes only when
    /// `business.allow_anonymous_writes` says so, never billing.
    pub is_anonymous: bool,
    /// The token's `aal` claim is `aal2`: this session verified a second factor.
    pub aal2: bool,
    pub expires_at: i64,
    /// The token's `session_id` claim (Auth's session), when it has one.
    pub session_id: Option<Uuid>,
    /// Set when the request came with an API key: the key, and what it may do.
    pub api_key: Option<Arc<super::api_key::KeyGrant>>,
    /// The token came from a `[[auth.issuers]]` issuer, not Supabase Auth (which knows
    /// nothing of its sessions or factors).
    pub third_party: bool,
    /// Shared, so a cache hit hands out the verified token without copying it.
    pub(super) token: Arc<VerifiedToken>,
}

/// A verified access token, kept once: as the `Authorization` value that forwards it (built
/// once per token rather than once per upstream call), the token being its tail. A full
/// verified-token cache holds 4 096 of these; a second copy of each token was ~3 MB.
pub(super) enum VerifiedToken {
    /// `Bearer <token>`, marked sensitive (never in debug output). A verified token is
    /// base64url and dots, so it always makes a header value.
    Bearer(HeaderValue),
    /// Not a header value (unreachable for a token that passed verification).
    Raw(Secret),
}

const BEARER: &str = "Bearer ";

impl VerifiedToken {
    pub(super) fn shared(token: &str) -> Arc<Self> {
        Arc::new(match HeaderValue::from_str(&format!("{BEARER}{token}")) {
            Ok(mut value) => {
                value.set_sensitive(true);
                Self::Bearer(value)
            }
            Err(_) => Self::Raw(Secret::new(token)),
        })
    }

    fn token(&self) -> &str {
        match self {
            // A header value built from a `&str` is visible ASCII: this never fails.
            Self::Bearer(value) => {
                std::str::from_utf8(value.as_bytes().get(BEARER.len()..).unwrap_or_default())
                    .unwrap_or_default()
            }
            Self::Raw(secret) => secret.expose(),
        }
    }
}

impl std::fmt::Debug for AuthUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthUser")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("is_admin", &self.is_admin)
            .field("is_anonymous", &self.is_anonymous)
            .field("aal2", &self.aal2)
            .field("api_key", &self.api_key.as_ref().map(|k| k.id))
            .finish_non_exhaustive()
    }
}

impl AuthUser {
    /// The verified access token, to forward as `Authorization: Bearer` so RLS applies.
    pub fn token(&self) -> &str {
        self.token.token()
    }

    /// Whether `token` is exactly the token that was verified (the cache's check on a hit:
    /// a byte comparison, without re-reading the stored value as UTF-8).
    pub(super) fn has_token(&self, token: &str) -> bool {
        match &*self.token {
            VerifiedToken::Bearer(value) => {
                value.as_bytes().get(BEARER.len()..) == Some(token.as_bytes())
            }
            VerifiedToken::Raw(secret) => secret.expose() == token,
        }
    }

    /// `Authorization: Bearer <token>` for an upstream call (a reference-count copy).
    pub fn bearer_header(&self) -> Option<HeaderValue> {
        match &*self.token {
            VerifiedToken::Bearer(value) => Some(value.clone()),
            VerifiedToken::Raw(_) => None,
        }
    }

    #[cfg(test)]
    pub(crate) fn for_tests(id: Uuid, token: &str, expires_at: i64) -> Self {
        Self {
            id,
            role: Arc::from("authenticated"),
            is_admin: false,
            is_anonymous: false,
            aal2: false,
            expires_at,
            session_id: None,
            api_key: None,
            third_party: false,
            token: VerifiedToken::shared(token),
        }
    }
}
