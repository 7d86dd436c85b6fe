//! The test oracle for `apply_subscription_event`: which Stripe subscription state wins when
//! events arrive out of order, written as plain Rust so the SQL can be checked against it.
//!
//! Stripe delivers at least once and in no particular order, so a subscription state is
//! applied only if its event is at least as new as the one that produced the stored state.
//! The database enforces the same rule atomically inside `apply_subscription_event` (a
//! read-then-write here would race with a concurrent delivery); this function is the
//! specification both are tested against.

/// What to do with a subscription state carried by an event created at `incoming`
/// (Stripe's `created`, Unix seconds), given the `created` of the stored state, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ordering {
    /// Store it: nothing is stored yet, or it is at least as new.
    Apply,
    /// Keep the stored state: the event is older (a late delivery or a retry of an old one).
    Stale,
}

/// Same-second events apply in delivery order: `created` has one-second resolution, and
/// refusing ties would lose e.g. `created` followed by `updated` in the same second.
pub fn subscription_event_ordering(stored: Option<i64>, incoming: i64) -> Ordering {
    match stored {
        Some(stored) if incoming < stored => Ordering::Stale,
        _ => Ordering::Apply,
    }
}

/// Replays deliveries (each `(created, state)`) through the rule and returns the state left
/// stored: what the `subscriptions` row ends up holding.
pub fn replay<T: Clone>(deliveries: &[(i64, T)]) -> Option<(i64, T)> {
    deliveries
        .iter()
        .fold(
            None,
            |stored: Option<(i64, T)>, (created, state)| match subscription_event_ordering(
                stored.as_ref().map(|s| s.0),
                *created,
            ) {
                Ordering::Apply => Some((*created, state.clone())),
                Ordering::Stale => stored,
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_first_state_is_always_applied() {
        assert_eq!(subscription_event_ordering(None, 0), Ordering::Apply);
        assert_eq!(subscription_event_ordering(None, i64::MIN), Ordering::Apply);
    }

    #[test]
    fn a_newer_event_is_applied() {
        assert_eq!(subscription_event_ordering(Some(100), 101), Ordering::Apply);
    }

    #[test]
    fn a_same_second_event_is_applied_in_delivery_order() {
        assert_eq!(subscription_event_ordering(Some(100), 100), Ordering::Apply);
    }

    #[test]
    fn an_older_event_never_rolls_the_state_back() {
        assert_eq!(subscription_event_ordering(Some(101), 100), Ordering::Stale);
        assert_eq!(
            subscription_event_ordering(Some(i64::MAX), i64::MIN),
            Ordering::Stale
        );
    }

    #[test]
    fn a_late_active_update_does_not_undo_a_cancellation() {
        // created 1767225601..604 as in tests/fixtures/stripe.json, delivered out of order.
        let deliveries = [
            (1_767_225_602, "active"),
            (1_767_225_604, "canceled"),
            (1_767_225_601, "incomplete"),
            (1_767_225_603, "active, cancel at period end"),
        ];
        assert_eq!(replay(&deliveries), Some((1_767_225_604, "canceled")));
    }

    proptest! {
        #[test]
        fn any_delivery_order_ends_with_the_newest_state(
            mut created in proptest::collection::vec(0i64..1_000, 1..12),
            seed in any::<u64>(),
        ) {
            // Distinct `created`, so "the newest" is unambiguous.
            created.sort_unstable();
            created.dedup();
            let newest = *created.last().unwrap_or(&0);
            let mut deliveries: Vec<(i64, i64)> = created.iter().map(|&c| (c, c * 10)).collect();
            // A cheap deterministic shuffle driven by the seed.
            let n = deliveries.len();
            for i in (1..n).rev() {
                let j = (seed.wrapping_mul(i as u64 + 1).rotate_left(i as u32) % (i as u64 + 1)) as usize;
                deliveries.swap(i, j);
            }
            // Redeliveries of everything, again out of order, change nothing.
            let mut twice = deliveries.clone();
            twice.extend(deliveries.iter().rev().cloned());
            prop_assert_eq!(replay(&deliveries), Some((newest, newest * 10)));
            prop_assert_eq!(replay(&twice), Some((newest, newest * 10)));
        }
    }
}
