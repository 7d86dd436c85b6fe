//! Billing tables and webhook log: invisible to anon and signed-in users except their own
//! customer link and subscription; written only by the service role through the webhook RPCs,
//! which refuse an older Stripe event and report redeliveries.

use postgres::Client;

use super::cluster::fresh_db;
use super::support::{as_caller, count, create_user, sqlstate, Caller};

/// Stores a subscription state as the webhook handler would; true when applied.
fn apply(db: &mut Client, sub: &str, customer: &str, status: &str, event_created: i64) -> bool {
    let mut tx = as_caller(db, &Caller::Service);
    let applied = tx
        .query_one(
            "select public.apply_subscription_event(\
                p_subscription_id => $1, p_stripe_customer_id => $2, p_status => $3, \
                p_price_id => 'price_pro', p_current_period_end => now() + interval '30 days', \
                p_cancel_at_period_end => false, p_event_created => $4)",
            &[&sub, &customer, &status, &event_created],
        )
        .expect("apply_subscription_event")
        .get(0);
    tx.commit().expect("commit");
    applied
}

fn link(db: &mut Client, user: &str, customer: &str) {
    let mut tx = as_caller(db, &Caller::Service);
    tx.execute(
        "select public.link_stripe_customer($1::text::uuid, $2)",
        &[&user, &customer],
    )
    .expect("link_stripe_customer");
    tx.commit().expect("commit");
}

fn stored_status(db: &mut Client, sub: &str) -> String {
    db.query_one(
        "select status from public.subscriptions where id = $1",
        &[&sub],
    )
    .expect("subscription row")
    .get(0)
}

/// Two users, each with a linked customer and an active subscription, one payment and one event.
fn billing_fixture(db: &mut Client) -> (String, String) {
    let alice = create_user(db, "alice@example.com");
    let bob = create_user(db, "bob@example.com");
    link(db, &alice, "cus_alice");
    link(db, &bob, "cus_bob");
    apply(db, "sub_alice", "cus_alice", "active", 100);
    apply(db, "sub_bob", "cus_bob", "active", 100);
    db.batch_execute(
        "insert into public.payments (id, stripe_customer_id, amount, currency, status) \
             values ('pi_1', 'cus_alice', 1250, 'eur', 'succeeded'); \
         insert into public.webhook_events (id, type) values ('evt_1', 'payment_intent.succeeded');",
    )
    .expect("payment and event");
    (alice, bob)
}

#[test]
fn user_reads_their_own_subscription_but_not_another_users() {
    let mut db = fresh_db();
    let (alice, _bob) = billing_fixture(&mut db);

    let mut tx = as_caller(&mut db, &Caller::User(&alice));
    let visible: Vec<String> = tx
        .query("select id from public.subscriptions", &[])
        .expect("select subscriptions")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(visible, ["sub_alice"]);
    assert_eq!(
        count(
            &mut tx,
            "select * from public.subscriptions where id = 'sub_bob'"
        ),
        0
    );
    assert_eq!(count(&mut tx, "select * from public.customers"), 1);
}

#[test]
fn user_cannot_read_webhook_events_or_payments() {
    let mut db = fresh_db();
    let (alice, _bob) = billing_fixture(&mut db);
    for table in ["public.webhook_events", "public.payments"] {
        let mut tx = as_caller(&mut db, &Caller::User(&alice));
        let result = tx.query(&format!("select * from {table}"), &[]);
        assert_eq!(sqlstate(result), "42501", "{table}");
    }
}

#[test]
fn anon_sees_no_billing_table() {
    let mut db = fresh_db();
    billing_fixture(&mut db);
    for table in ["customers", "subscriptions", "payments", "webhook_events"] {
        let mut tx = as_caller(&mut db, &Caller::Anon);
        let result = tx.query(&format!("select * from public.{table}"), &[]);
        assert_eq!(sqlstate(result), "42501", "{table}");
    }
}

#[test]
fn user_cannot_write_billing_tables() {
    let mut db = fresh_db();
    let (alice, _bob) = billing_fixture(&mut db);
    for sql in [
        "update public.subscriptions set status = 'active'",
        "insert into public.subscriptions (id, stripe_customer_id, status, stripe_event_created) \
         values ('sub_x', 'cus_x', 'active', 1)",
        "delete from public.customers",
        "insert into public.webhook_events (id, type) values ('evt_x', 'x')",
        "insert into public.payments (id, amount, currency, status) values ('pi_x', 1, 'eur', 'x')",
    ] {
        let mut tx = as_caller(&mut db, &Caller::User(&alice));
        assert_eq!(sqlstate(tx.execute(sql, &[])), "42501", "{sql}");
    }
}

#[test]
fn service_role_reads_every_billing_row() {
    let mut db = fresh_db();
    billing_fixture(&mut db);
    let mut tx = as_caller(&mut db, &Caller::Service);
    assert_eq!(count(&mut tx, "select * from public.customers"), 2);
    assert_eq!(count(&mut tx, "select * from public.subscriptions"), 2);
    assert_eq!(count(&mut tx, "select * from public.payments"), 1);
    assert_eq!(count(&mut tx, "select * from public.webhook_events"), 1);
}

#[test]
fn older_subscription_event_does_not_overwrite_newer_state() {
    let mut db = fresh_db();
    assert!(apply(&mut db, "sub_1", "cus_1", "active", 200));
    assert!(!apply(&mut db, "sub_1", "cus_1", "incomplete", 100));
    assert_eq!(stored_status(&mut db, "sub_1"), "active");
}

#[test]
fn newer_subscription_event_replaces_stored_state() {
    let mut db = fresh_db();
    assert!(apply(&mut db, "sub_1", "cus_1", "active", 100));
    assert!(apply(&mut db, "sub_1", "cus_1", "canceled", 200));
    assert_eq!(stored_status(&mut db, "sub_1"), "canceled");
    let held: i64 = db
        .query_one("select stripe_event_created from public.subscriptions", &[])
        .expect("row")
        .get(0);
    assert_eq!(held, 200);
}

#[test]
fn same_second_subscription_events_apply_in_delivery_order() {
    let mut db = fresh_db();
    assert!(apply(&mut db, "sub_1", "cus_1", "incomplete", 100));
    assert!(apply(&mut db, "sub_1", "cus_1", "active", 100));
    assert_eq!(stored_status(&mut db, "sub_1"), "active");
}

#[test]
fn subscription_arriving_before_checkout_is_claimed_when_customer_is_linked() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    apply(&mut db, "sub_1", "cus_1", "active", 100);
    db.execute(
        "insert into public.payments (id, stripe_customer_id, amount, currency, status) \
         values ('pi_1', 'cus_1', 500, 'usd', 'succeeded')",
        &[],
    )
    .expect("payment");
    link(&mut db, &user, "cus_1");

    let row = db
        .query_one(
            "select (select user_id::text from public.subscriptions), \
                    (select user_id::text from public.payments)",
            &[],
        )
        .expect("rows");
    assert_eq!(
        row.get::<_, Option<String>>(0).as_deref(),
        Some(user.as_str())
    );
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some(user.as_str())
    );
}

#[test]
fn subscription_for_a_linked_customer_gets_its_user_on_arrival() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    link(&mut db, &user, "cus_1");
    apply(&mut db, "sub_1", "cus_1", "active", 100);
    let owner: Option<String> = db
        .query_one("select user_id::text from public.subscriptions", &[])
        .expect("row")
        .get(0);
    assert_eq!(owner.as_deref(), Some(user.as_str()));
}

#[test]
fn stripe_customer_linked_to_another_user_raises_unique_violation() {
    let mut db = fresh_db();
    let first = create_user(&mut db, "first@example.com");
    let second = create_user(&mut db, "second@example.com");
    link(&mut db, &first, "cus_1");
    let mut tx = as_caller(&mut db, &Caller::Service);
    let result = tx.execute(
        "select public.link_stripe_customer($1::text::uuid, 'cus_1')",
        &[&second],
    );
    assert_eq!(sqlstate(result), "23505");
}

#[test]
fn webhook_event_redelivery_is_reported_as_duplicate() {
    let mut db = fresh_db();
    let mut tx = as_caller(&mut db, &Caller::Service);
    let record = "select public.record_webhook_event('evt_1', 'customer.subscription.updated')";
    let first: bool = tx.query_one(record, &[]).expect("first delivery").get(0);
    let second: bool = tx.query_one(record, &[]).expect("redelivery").get(0);
    assert!(first);
    assert!(!second);
}

#[test]
fn webhook_rpcs_are_callable_only_by_the_service_role() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    for sql in [
        "select public.record_webhook_event('evt_1', 'x')",
        "select public.link_stripe_customer(gen_random_uuid(), 'cus_1')",
        "select public.apply_subscription_event('sub_1', 'cus_1', 'active', null, null, false, 1)",
    ] {
        for caller in [Caller::Anon, Caller::User(&user)] {
            let mut tx = as_caller(&mut db, &caller);
            assert_eq!(sqlstate(tx.query(sql, &[])), "42501", "{sql}");
        }
    }
}

#[test]
fn apply_subscription_event_agrees_with_the_ordering_rule() {
    use super::event_order::{subscription_event_ordering, Ordering};
    let mut db = fresh_db();
    let times = [99_i64, 100, 101];
    for (i, stored) in times.iter().enumerate() {
        for (j, incoming) in times.iter().enumerate() {
            let sub = format!("sub_{i}_{j}");
            assert!(apply(&mut db, &sub, "cus_1", "active", *stored));
            let applied = apply(&mut db, &sub, "cus_1", "canceled", *incoming);
            let rule = subscription_event_ordering(Some(*stored), *incoming);
            assert_eq!(
                applied,
                rule == Ordering::Apply,
                "stored {stored}, incoming {incoming}"
            );
            let expected = if applied { "canceled" } else { "active" };
            assert_eq!(stored_status(&mut db, &sub), expected);
        }
    }
}

/// The other order of `subscription_arriving_before_checkout_is_claimed_when_customer_is_linked`:
/// a payment for a customer linked earlier gets its user on insert (the `payments_fill_user_id`
/// trigger), written as the worker writes it (service role, ignore-duplicates insert).
#[test]
fn payment_for_an_already_linked_customer_gets_its_user_on_insert() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    link(&mut db, &user, "cus_1");
    let mut tx = as_caller(&mut db, &Caller::Service);
    tx.execute(
        "insert into public.payments (id, stripe_customer_id, amount, currency, status) \
         values ('pi_1', 'cus_1', 500, 'usd', 'succeeded') on conflict (id) do nothing",
        &[],
    )
    .expect("payment");
    tx.commit().expect("commit");
    let owner: Option<String> = db
        .query_one("select user_id::text from public.payments", &[])
        .expect("row")
        .get(0);
    assert_eq!(owner.as_deref(), Some(user.as_str()));
}

#[test]
fn guest_payment_without_customer_keeps_no_user() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    link(&mut db, &user, "cus_1");
    db.execute(
        "insert into public.payments (id, stripe_customer_id, amount, currency, status) \
         values ('pi_1', null, 500, 'usd', 'succeeded')",
        &[],
    )
    .expect("payment");
    let owner: Option<String> = db
        .query_one("select user_id::text from public.payments", &[])
        .expect("row")
        .get(0);
    assert_eq!(owner, None);
}
