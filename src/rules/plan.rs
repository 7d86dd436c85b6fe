//! The free-plan item limit: without an active subscription a user may own at most
//! `business.free_item_limit` items; subscribers are unlimited.

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
    fn zero_limit_blocks_free_users() {
        assert!(!may_create_item(0, 0, false));
        assert!(may_create_item(0, 0, true));
    }
}
