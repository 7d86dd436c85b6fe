//! The free-plan item limit: without an active subscription a user may own at most
//! `business.free_item_limit` items; subscribers are unlimited. Stated here once; the database
//! enforces it on every insert (`items_enforce_item_limit`) with the values supagate writes at
//! start-up (`supabase::item_limit`), and its tests check the trigger against [`may_create_item`].

/// Subscription statuses that count as subscribed: Stripe's `active`, and `trialing` (a trial
/// is a subscription the user chose).
pub const SUBSCRIBED_STATUSES: [&str; 2] = ["active", "trialing"];

/// Whether a subscription in `status` lifts the limit.
pub fn is_subscribed(status: &str) -> bool {
    SUBSCRIBED_STATUSES.contains(&status)
}

/// Whether one more item may be created by a user who already owns `owned` items.
pub fn may_create_item(owned: u64, free_limit: u32, subscription_active: bool) -> bool {
    subscription_active || owned < u64::from(free_limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_the_limit_may_create() {
        assert!(may_create_item(0, 10, false));
        assert!(may_create_item(9, 10, false));
    }

    #[test]
    fn at_the_limit_may_not_create() {
        assert!(!may_create_item(10, 10, false));
    }

    #[test]
    fn over_the_limit_may_not_create() {
        assert!(!may_create_item(11, 10, false));
    }

    #[test]
    fn active_subscription_is_unlimited() {
        assert!(may_create_item(10, 10, true));
        assert!(may_create_item(10_000, 10, true));
    }

    #[test]
    fn trials_count_as_subscribed_and_lapsed_states_do_not() {
        assert!(is_subscribed("active") && is_subscribed("trialing"));
        for status in ["canceled", "past_due", "unpaid", "incomplete", "paused", ""] {
            assert!(!is_subscribed(status), "{status}");
        }
    }

    #[test]
    fn zero_limit_blocks_free_users() {
        assert!(!may_create_item(0, 0, false));
        assert!(may_create_item(0, 0, true));
    }
}
