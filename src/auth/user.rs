//! The verified caller: who a request is made for once its token passed every check.

use std::sync::Arc;

use reqwest::header::HeaderValue;
use uuid::Uuid;

use crate::config::Secret;

/// A caller whose token passed every check. Only server-controlled claims are kept:
/// `user_metadata` is user-editable and never grants anything, so it is not even read.
#[derive(Clone)]
pub struct AuthUser {
    pub id: Uuid,
    pub role: String,
    pub is_admin: bool,
    /// An anonymous sign-in (`is_anonymous` claim): reads like a user, writes only when
    /// `business.allow_anonymous_writes` says so, never billing.
    pub is_anonymous: bool,
    /// The token's `aal` claim is `aal2`: this session verified a second factor.
    pub aal2: bool,
    pub expires_at: i64,
    /// Shared, so a cache hit hands out the verified token without copying it.
    pub(super) token: Arc<VerifiedToken>,
}

/// A verified access token and the `Authorization` value that forwards it, built once per
/// token rather than once per upstream call.
pub(super) struct VerifiedToken {
    secret: Secret,
    /// `Bearer <token>`, marked sensitive (never in debug output). A verified token is
    /// base64url and dots, so it always makes a header value; `None` is unreachable.
    bearer: Option<HeaderValue>,
}

impl VerifiedToken {
    pub(super) fn shared(token: &str) -> Arc<Self> {
        let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .ok()
            .map(|mut value| {
                value.set_sensitive(true);
                value
            });
        Arc::new(Self {
            secret: Secret::new(token),
            bearer,
        })
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
            .finish_non_exhaustive()
    }
}

impl AuthUser {
    /// The verified access token, to forward as `Authorization: Bearer` so RLS applies.
    pub fn token(&self) -> &str {
        self.token.secret.expose()
    }

    /// `Authorization: Bearer <token>` for an upstream call (a reference-count copy).
    pub fn bearer_header(&self) -> Option<HeaderValue> {
        self.token.bearer.clone()
    }

    #[cfg(test)]
    pub(crate) fn for_tests(id: Uuid, token: &str, expires_at: i64) -> Self {
        Self {
            id,
            role: "authenticated".to_owned(),
            is_admin: false,
            is_anonymous: false,
            aal2: false,
            expires_at,
            token: VerifiedToken::shared(token),
        }
    }
}
