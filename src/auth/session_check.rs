//! `auth.check_session_routes`: on those operations the token's session must still exist at
//! Auth, so a signed-out or deleted user loses access at once rather than at the token's `exp`.
//! Auth's `GET /user` loads the user and the session named by the token's `session_id` claim
//! and answers 403 `user_not_found` / `session_not_found` when either is gone (see
//! docs/supabase-wire.md). A confirmed session is believed for `auth.session_check_secs`;
//! logout, a password change and a user deletion made through supagate forget the user's
//! confirmations at once.

use quick_cache::sync::Cache;
use uuid::Uuid;

use super::user::AuthUser;

/// `(user, session)` → Unix second Auth confirmed the session.
pub struct SessionChecks {
    confirmed: Cache<(Uuid, Uuid), i64>,
    ttl: i64,
}

/// Confirmations remembered; beyond this the least used are asked again.
const ENTRIES: usize = 4096;

impl SessionChecks {
    pub fn new(ttl_secs: u64) -> Self {
        Self {
            confirmed: Cache::new(ENTRIES),
            ttl: i64::try_from(ttl_secs).unwrap_or(i64::MAX),
        }
    }

    fn key(user: &AuthUser) -> (Uuid, Uuid) {
        (user.id, user.session_id.unwrap_or_default())
    }

    /// Whether Auth confirmed `user`'s session less than the TTL ago.
    pub fn fresh(&self, user: &AuthUser, now: i64) -> bool {
        self.confirmed
            .get(&Self::key(user))
            .is_some_and(|at| now < at.saturating_add(self.ttl))
    }

    pub fn confirm(&self, user: &AuthUser, now: i64) {
        if self.ttl > 0 {
            self.confirmed.insert(Self::key(user), now);
        }
    }

    /// Forgets every confirmation of `user_id`: their sessions changed through supagate.
    pub fn evict_user(&self, user_id: Uuid) {
        self.confirmed.retain(|(user, _), _| *user != user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirmation_lasts_the_ttl_and_an_eviction_ends_it_for_that_user_only() {
        let checks = SessionChecks::new(10);
        let a = AuthUser::for_tests(Uuid::from_u128(1), "a", i64::MAX);
        let b = AuthUser::for_tests(Uuid::from_u128(2), "b", i64::MAX);
        assert!(!checks.fresh(&a, 100));
        checks.confirm(&a, 100);
        checks.confirm(&b, 100);
        assert!(checks.fresh(&a, 109));
        assert!(!checks.fresh(&a, 110));
        checks.evict_user(a.id);
        assert!(!checks.fresh(&a, 101));
        assert!(checks.fresh(&b, 101));
    }

    #[test]
    fn sessions_of_one_user_are_confirmed_apart() {
        let checks = SessionChecks::new(10);
        let mut one = AuthUser::for_tests(Uuid::from_u128(1), "a", i64::MAX);
        one.session_id = Some(Uuid::from_u128(7));
        let mut other = one.clone();
        other.session_id = Some(Uuid::from_u128(8));
        checks.confirm(&one, 0);
        assert!(checks.fresh(&one, 1));
        assert!(!checks.fresh(&other, 1));
    }
}
