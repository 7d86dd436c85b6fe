//! Supabase Queues as the worker uses them: the real pgmq (installed from the `pgmq` crate's
//! embedded SQL) behind Supabase's `pgmq_public` wrappers, called the way PostgREST calls them
//! (service role, claims set). The JSON shapes asserted here are what tests/api/jobs.rs's
//! wiremock answers reproduce.

use postgres::Client;
use serde_json::{json, Value};

use super::cluster::fresh_db;
use super::support::{as_caller, create_user, sqlstate, Caller};

/// Calls `<schema>.<function>` as the service role and returns the JSON PostgREST would send:
/// an array of rows for `setof`, the bare value otherwise.
fn rpc(db: &mut Client, call: &str, setof: bool) -> Value {
    let mut tx = as_caller(db, &Caller::Service);
    let sql = if setof {
        format!("select coalesce(json_agg(r), '[]')::text from {call} as r")
    } else {
        format!("select to_json({call})::text")
    };
    let text: String = tx
        .query_one(&sql, &[])
        .unwrap_or_else(|e| panic!("{call}: {}", super::cluster::describe(&e)))
        .get(0);
    tx.commit().expect("commit");
    serde_json::from_str(&text).expect("json")
}

fn send(db: &mut Client, queue: &str, message: &Value) -> i64 {
    let call = format!(
        "pgmq_public.send(queue_name => '{queue}', message => '{message}'::jsonb, sleep_seconds => 0)"
    );
    rpc(db, &call, true)[0].as_i64().expect("a message id")
}

fn read(db: &mut Client, queue: &str, vt: i32, n: i32) -> Vec<Value> {
    let call =
        format!("pgmq_public.read(queue_name => '{queue}', sleep_seconds => {vt}, n => {n})");
    rpc(db, &call, true).as_array().cloned().unwrap_or_default()
}

fn count(db: &mut Client, table: &str) -> i64 {
    db.query_one(&format!("select count(*) from pgmq.{table}"), &[])
        .expect("count")
        .get(0)
}

#[test]
fn wrappers_have_supabases_signatures() {
    let mut db = fresh_db();
    let rows = db
        .query(
            "select p.proname::text, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid) \
             from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
             where n.nspname = 'pgmq_public' order by 1",
            &[],
        )
        .expect("functions");
    let found: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected = [
        ("archive", "queue_name text, message_id bigint", "boolean"),
        ("delete", "queue_name text, message_id bigint", "boolean"),
        ("pop", "queue_name text", "SETOF pgmq.message_record"),
        (
            "read",
            "queue_name text, sleep_seconds integer, n integer",
            "SETOF pgmq.message_record",
        ),
        (
            "send",
            "queue_name text, message jsonb, sleep_seconds integer DEFAULT 0",
            "SETOF bigint",
        ),
        (
            "send_batch",
            "queue_name text, messages jsonb[], sleep_seconds integer DEFAULT 0",
            "SETOF bigint",
        ),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn a_read_message_is_hidden_until_its_visibility_timeout_then_read_again() {
    let mut db = fresh_db();
    let id = send(&mut db, "user_registered", &json!({"n": 1}));
    let first = read(&mut db, "user_registered", 1, 5);
    assert_eq!(first.len(), 1);
    // The row shape the worker decodes (and tests/api/jobs.rs's fake answers).
    let row = &first[0];
    assert_eq!(row["msg_id"], json!(id));
    assert_eq!(row["read_ct"], json!(1));
    assert_eq!(row["message"], json!({"n": 1}));
    assert!(
        row["vt"].is_string() && row["enqueued_at"].is_string(),
        "{row}"
    );
    assert!(
        read(&mut db, "user_registered", 1, 5).is_empty(),
        "hidden while in flight"
    );

    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = read(&mut db, "user_registered", 1, 5);
    assert_eq!(again.len(), 1, "visible again after the timeout");
    assert_eq!(again[0]["read_ct"], json!(2), "read_ct counts attempts");
}

#[test]
fn archive_moves_a_message_out_of_the_queue_and_set_vt_delays_it() {
    let mut db = fresh_db();
    let a = send(&mut db, "user_registered", &json!({"n": 1}));
    let b = send(&mut db, "user_registered", &json!({"n": 2}));
    assert_eq!(read(&mut db, "user_registered", 30, 10).len(), 2);

    let archived = rpc(
        &mut db,
        &format!("pgmq_public.archive('user_registered', {a}::bigint)"),
        false,
    );
    assert_eq!(archived, json!(true));
    assert_eq!(count(&mut db, "q_user_registered"), 1);
    assert_eq!(count(&mut db, "a_user_registered"), 1);

    // Backoff: visible again now (0 s), then hidden for an hour.
    let moved = rpc(
        &mut db,
        &format!("public.queue_set_vt('user_registered', {b}::bigint, 0)"),
        false,
    );
    assert_eq!(moved, json!(true));
    assert_eq!(read(&mut db, "user_registered", 3600, 10).len(), 1);
    rpc(
        &mut db,
        &format!("public.queue_set_vt('user_registered', {b}::bigint, 3600)"),
        false,
    );
    assert!(read(&mut db, "user_registered", 30, 10).is_empty());

    let depth = rpc(&mut db, "public.queue_depth('user_registered')", false);
    assert_eq!(depth, json!(1));
    let gone = rpc(
        &mut db,
        "pgmq_public.archive('user_registered', 999::bigint)",
        false,
    );
    assert_eq!(gone, json!(false));
}

#[test]
fn stripe_event_is_recorded_and_queued_once() {
    let mut db = fresh_db();
    let call = "public.enqueue_stripe_event('evt_1', 'payment_intent.succeeded', '{\"id\":\"evt_1\"}'::jsonb)";
    assert_eq!(rpc(&mut db, call, false), json!(true));
    assert_eq!(rpc(&mut db, call, false), json!(false), "a redelivery");
    assert_eq!(count(&mut db, "q_stripe_events"), 1);
    let events: i64 = db
        .query_one("select count(*) from public.webhook_events", &[])
        .unwrap()
        .get(0);
    assert_eq!(events, 1);
    let queued = read(&mut db, "stripe_events", 30, 1);
    assert_eq!(queued[0]["message"], json!({"id": "evt_1"}));
}

#[test]
fn clients_cannot_use_the_queues() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    send(&mut db, "stripe_events", &json!({"secret": "payload"}));
    for sql in [
        "select * from pgmq_public.read('stripe_events', 30, 1)",
        "select * from pgmq_public.send('stripe_events', '{}'::jsonb)",
        "select * from pgmq_public.pop('stripe_events')",
        "select pgmq_public.archive('stripe_events', 1)",
        "select pgmq_public.delete('stripe_events', 1)",
        "select public.enqueue_stripe_event('evt_1', 'x', '{}'::jsonb)",
        "select public.queue_set_vt('stripe_events', 1, 0)",
        "select public.queue_depth('stripe_events')",
        "select * from pgmq.q_stripe_events",
    ] {
        for caller in [Caller::Anon, Caller::User(&user)] {
            let mut tx = as_caller(&mut db, &caller);
            assert_eq!(sqlstate(tx.query(sql, &[])), "42501", "{sql}");
        }
    }
}

#[test]
fn every_queue_has_its_dead_letter_queue() {
    let mut db = fresh_db();
    let names: Vec<String> = db
        .query("select queue_name::text from pgmq.meta order by 1", &[])
        .expect("meta")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        names,
        [
            "stripe_events",
            "stripe_events_dlq",
            "user_registered",
            "user_registered_dlq"
        ]
    );
}
