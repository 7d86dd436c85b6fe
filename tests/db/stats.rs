//! `get_user_stats(user_id)`: the figures, the empty case, and who may call it.

use postgres::Client;
use serde_json::{json, Value};

use super::cluster::fresh_db;
use super::support::{as_caller, create_user, sqlstate, Caller};

fn stats(db: &mut Client, caller: &Caller, user_id: &str) -> Result<Value, postgres::Error> {
    let mut tx = as_caller(db, caller);
    // As PostgREST calls it for POST /rpc/get_user_stats {"user_id": ...}: a named argument.
    let row = tx.query_one(
        "select public.get_user_stats(user_id => $1::text::uuid)::text",
        &[&user_id],
    )?;
    Ok(serde_json::from_str(row.get(0)).expect("stats are JSON"))
}

/// Alice owns three items (10.00, 20.50, 30.25); the last one was created at a known time.
/// Bob owns one, so a wrong filter would show up in Alice's figures.
fn seeded(db: &mut Client) -> (String, String, String) {
    let alice = create_user(db, "alice@example.com");
    let bob = create_user(db, "bob@example.com");
    let carol = create_user(db, "carol@example.com");
    db.execute(
        "insert into public.items (name, price, user_id, created_at) values \
           ('a1', 10.00, $1::text::uuid, '2025-01-01T10:00:00Z'), \
           ('a2', 20.50, $1::text::uuid, '2025-03-01T10:00:00Z'), \
           ('a3', 30.25, $1::text::uuid, '2025-02-01T10:00:00Z'), \
           ('b1', 999.99, $2::text::uuid, '2025-06-01T10:00:00Z')",
        &[&alice, &bob],
    )
    .expect("seed items");
    (alice, bob, carol)
}

#[test]
fn stats_sum_count_average_and_latest_of_the_users_items() {
    let mut db = fresh_db();
    let (alice, _, _) = seeded(&mut db);
    let got = stats(&mut db, &Caller::User(&alice), &alice).expect("own stats");
    assert_eq!(
        got,
        json!({
            "item_count": 3,
            "total_value": 60.75,
            "avg_price": 20.25,
            "last_item_at": "2025-03-01T10:00:00+00:00",
        })
    );
}

#[test]
fn stats_of_a_user_without_items_are_zero_and_null() {
    let mut db = fresh_db();
    let (_, _, carol) = seeded(&mut db);
    let got = stats(&mut db, &Caller::User(&carol), &carol).expect("own stats");
    assert_eq!(
        got,
        json!({"item_count": 0, "total_value": 0, "avg_price": null, "last_item_at": null})
    );
}

#[test]
fn average_price_is_rounded_to_cents() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    db.execute(
        "insert into public.items (name, price, user_id) values \
           ('x', 1, $1::text::uuid), ('y', 1, $1::text::uuid), ('z', 2, $1::text::uuid)",
        &[&user],
    )
    .expect("seed");
    let got = stats(&mut db, &Caller::User(&user), &user).expect("own stats");
    assert_eq!(got["avg_price"], json!(1.33));
}

#[test]
fn user_cannot_read_another_users_stats() {
    let mut db = fresh_db();
    let (alice, bob, _) = seeded(&mut db);
    assert_eq!(
        sqlstate(stats(&mut db, &Caller::User(&bob), &alice)),
        "42501"
    );
}

#[test]
fn admin_in_user_metadata_cannot_read_another_users_stats() {
    let mut db = fresh_db();
    let (alice, bob, _) = seeded(&mut db);
    let caller = Caller::UserClaimingAdminInMetadata(&bob);
    assert_eq!(sqlstate(stats(&mut db, &caller, &alice)), "42501");
}

#[test]
fn admin_and_service_role_read_anyones_stats() {
    let mut db = fresh_db();
    let (alice, bob, _) = seeded(&mut db);
    for caller in [Caller::Admin(&bob), Caller::Service] {
        let got = stats(&mut db, &caller, &alice).expect("stats");
        assert_eq!(got["item_count"], json!(3));
    }
}

#[test]
fn anon_cannot_call_get_user_stats() {
    let mut db = fresh_db();
    let (alice, _, _) = seeded(&mut db);
    assert_eq!(sqlstate(stats(&mut db, &Caller::Anon, &alice)), "42501");
}

#[test]
fn get_user_stats_is_security_invoker() {
    // Definer rights would run as the RLS-bypassing owner; see the migration for why not.
    let mut db = fresh_db();
    let definer: bool = db
        .query_one(
            "select prosecdef from pg_proc where oid = 'public.get_user_stats(uuid)'::regprocedure",
            &[],
        )
        .expect("function exists")
        .get(0);
    assert!(!definer);
}
