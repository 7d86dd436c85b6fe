//! The jobs' loose ends on real PostgreSQL: a payment and the customer link committing in
//! parallel (real concurrent transactions as the service role), the dead-letter move as one
//! transaction, and the pruning of old archives and dead letters.

use std::thread;
use std::time::{Duration, Instant};

use postgres::Client;
use serde_json::{json, Value};

use super::cluster::{cluster, fresh_db, fresh_db_name};
use super::support::{as_caller, create_user, sqlstate, Caller};

fn insert_payment(db: &mut Client, id: &str, customer: &str) {
    let mut tx = as_caller(db, &Caller::Service);
    tx.execute(
        "insert into public.payments (id, stripe_customer_id, amount, currency, status) \
         values ($1, $2, 500, 'eur', 'succeeded')",
        &[&id, &customer],
    )
    .expect("insert payment");
    tx.commit().expect("commit payment");
}

fn link(db: &mut Client, user: &str, customer: &str) {
    let mut tx = as_caller(db, &Caller::Service);
    tx.execute(
        "select public.link_stripe_customer($1::text::uuid, $2)",
        &[&user, &customer],
    )
    .expect("link");
    tx.commit().expect("commit link");
}

fn payment_user(db: &mut Client, id: &str) -> Option<String> {
    db.query_one(
        "select user_id::text from public.payments where id = $1",
        &[&id],
    )
    .expect("payment")
    .get(0)
}

/// Waits until another backend of this database is blocked on an advisory lock, or `other`
/// finished without waiting (then the race was not serialised: the caller's assertion fails).
fn until_blocked_on_the_customer_lock(db: &mut Client, other: &thread::JoinHandle<()>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = db
            .query_one(
                "select count(*) from pg_stat_activity \
                  where datname = current_database() and wait_event_type = 'Lock' \
                    and wait_event = 'advisory'",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting == 1 || other.is_finished() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the second transaction never waited"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// The link's transaction is open (customer row written, back-fill done) when the payment
/// arrives: the payment waits for it, then sees the link and is filled.
#[test]
fn a_payment_inserted_while_the_link_is_uncommitted_still_gets_its_user() {
    let name = fresh_db_name();
    let mut db = cluster().connect(&name);
    let ann = create_user(&mut db, "ann@example.com");

    let mut link_conn = cluster().connect(&name);
    let mut linking = as_caller(&mut link_conn, &Caller::Service);
    linking
        .execute(
            "select public.link_stripe_customer($1::text::uuid, 'cus_race')",
            &[&ann],
        )
        .unwrap();

    let payment = thread::spawn({
        let name = name.clone();
        move || insert_payment(&mut cluster().connect(&name), "pi_race", "cus_race")
    });
    until_blocked_on_the_customer_lock(&mut db, &payment);
    linking.commit().unwrap();
    payment.join().expect("payment thread");
    assert_eq!(payment_user(&mut db, "pi_race"), Some(ann));
}

/// The payment's transaction is open (its trigger found no link) when the link arrives: the
/// link waits for it, then back-fills the committed payment.
#[test]
fn a_link_committed_while_the_payment_is_uncommitted_back_fills_it() {
    let name = fresh_db_name();
    let mut db = cluster().connect(&name);
    let ann = create_user(&mut db, "ann@example.com");

    let mut pay_conn = cluster().connect(&name);
    let mut paying = as_caller(&mut pay_conn, &Caller::Service);
    paying
        .execute(
            "insert into public.payments (id, stripe_customer_id, amount, currency, status) \
             values ('pi_race', 'cus_race', 500, 'eur', 'succeeded')",
            &[],
        )
        .unwrap();

    let linker = thread::spawn({
        let (name, ann) = (name.clone(), ann.clone());
        move || link(&mut cluster().connect(&name), &ann, "cus_race")
    });
    until_blocked_on_the_customer_lock(&mut db, &linker);
    paying.commit().unwrap();
    linker.join().expect("link thread");
    assert_eq!(payment_user(&mut db, "pi_race"), Some(ann));
}

#[test]
fn in_either_order_without_overlap_the_payment_gets_its_user() {
    let mut db = fresh_db();
    let ann = create_user(&mut db, "ann@example.com");
    let bob = create_user(&mut db, "bob@example.com");
    insert_payment(&mut db, "pi_1", "cus_a");
    link(&mut db, &ann, "cus_a");
    link(&mut db, &bob, "cus_b");
    insert_payment(&mut db, "pi_2", "cus_b");
    assert_eq!(payment_user(&mut db, "pi_1"), Some(ann));
    assert_eq!(payment_user(&mut db, "pi_2"), Some(bob));
}

fn send(db: &mut Client, queue: &str, message: &Value) -> i64 {
    let mut tx = as_caller(db, &Caller::Service);
    let id: i64 = tx
        .query_one(
            "select * from pgmq_public.send($1, $2::text::jsonb, 0)",
            &[&queue, &message.to_string()],
        )
        .expect("send")
        .get(0);
    tx.commit().unwrap();
    id
}

fn rows(db: &mut Client, table: &str) -> i64 {
    db.query_one(&format!("select count(*) from pgmq.{table}"), &[])
        .expect("count")
        .get(0)
}

fn dead_letter(tx: &mut postgres::Transaction<'_>, id: i64) -> Result<bool, postgres::Error> {
    tx.query_one(
        "select public.queue_dead_letter('stripe_events', $1, '{\"error\": \"permanent\"}'::jsonb)",
        &[&id],
    )
    .map(|r| r.get(0))
}

/// Killed between the archive and the send (both inside the one call, before COMMIT): the
/// message is still in its queue and no letter exists; done again, exactly one letter.
#[test]
fn the_dead_letter_move_is_one_transaction_and_never_duplicates_a_letter() {
    let name = fresh_db_name();
    let mut db = cluster().connect(&name);
    let id = send(&mut db, "stripe_events", &json!({"id": "evt_1"}));

    let mut doomed_conn = cluster().connect(&name);
    let mut doomed = as_caller(&mut doomed_conn, &Caller::Service);
    let pid: i32 = doomed
        .query_one("select pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    assert!(dead_letter(&mut doomed, id).unwrap());
    db.execute("select pg_terminate_backend($1)", &[&pid])
        .unwrap();
    assert!(doomed.commit().is_err());
    assert_eq!(rows(&mut db, "q_stripe_events"), 1, "still in its queue");
    assert_eq!(rows(&mut db, "a_stripe_events"), 0);
    assert_eq!(rows(&mut db, "q_stripe_events_dlq"), 0, "no letter");

    let mut tx = as_caller(&mut db, &Caller::Service);
    assert!(dead_letter(&mut tx, id).unwrap());
    tx.commit().unwrap();
    let mut tx = as_caller(&mut db, &Caller::Service);
    assert!(!dead_letter(&mut tx, id).unwrap(), "already moved");
    tx.commit().unwrap();
    assert_eq!(rows(&mut db, "q_stripe_events"), 0);
    assert_eq!(rows(&mut db, "a_stripe_events"), 1);
    assert_eq!(rows(&mut db, "q_stripe_events_dlq"), 1, "one letter");
}

#[test]
fn archives_and_dead_letters_older_than_the_retention_are_pruned() {
    let mut db = fresh_db();
    for n in 0..3 {
        let id = send(&mut db, "stripe_events", &json!({"n": n}));
        let mut tx = as_caller(&mut db, &Caller::Service);
        assert!(dead_letter(&mut tx, id).unwrap());
        tx.commit().unwrap();
    }
    // Two of each are old; one of each is recent.
    db.batch_execute(
        "update pgmq.a_stripe_events set archived_at = now() - interval '40 days' \
          where msg_id in (select msg_id from pgmq.a_stripe_events order by msg_id limit 2); \
         update pgmq.q_stripe_events_dlq set enqueued_at = now() - interval '40 days' \
          where msg_id in (select msg_id from pgmq.q_stripe_events_dlq order by msg_id limit 2);",
    )
    .unwrap();

    let prune = |db: &mut Client, caller: &Caller, queue: &str| {
        let mut tx = as_caller(db, caller);
        let n = tx
            .query_one("select public.prune_queue_history($1, 2592000)", &[&queue])
            .map(|r| r.get::<_, i64>(0))?;
        tx.commit()?;
        Ok::<i64, postgres::Error>(n)
    };
    let ann = create_user(&mut db, "ann@example.com");
    assert_eq!(
        sqlstate(prune(&mut db, &Caller::Admin(&ann), "stripe_events")),
        "42501"
    );
    assert_eq!(
        sqlstate(prune(&mut db, &Caller::Service, "no_such_queue")),
        "22023"
    );
    assert_eq!(
        prune(&mut db, &Caller::Service, "stripe_events").unwrap(),
        4
    );
    assert_eq!(rows(&mut db, "a_stripe_events"), 1);
    assert_eq!(rows(&mut db, "q_stripe_events_dlq"), 1);
}
