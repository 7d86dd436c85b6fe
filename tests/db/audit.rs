//! The audit log: one row per written row, written by the trigger in the write's own
//! transaction with the caller from the claims and the request id from `request.headers` (as
//! PostgREST sets them), readable by admins only, writable by nobody.

use postgres::{Client, Transaction};
use serde_json::json;

use super::support::{as_caller, create_user, sqlstate, Caller};

/// As PostgREST sets it for a request supagate sent: the headers as one JSON object,
/// lower-case names.
fn with_request_id(tx: &mut Transaction<'_>, id: &str) {
    tx.execute(
        "select set_config('request.headers', $1, true)",
        &[&json!({"x-request-id": id, "accept": "application/json"}).to_string()],
    )
    .expect("set request.headers");
}

type Entry = (
    Option<String>,
    String,
    bool,
    String,
    Option<String>,
    String,
    Vec<String>,
    Option<String>,
);

fn entries(db: &mut Client) -> Vec<Entry> {
    db.query(
        "select user_id::text, role, is_anonymous, table_name, row_id, operation, \
                changed_columns, request_id \
           from public.audit_log order by id",
        &[],
    )
    .expect("audit rows")
    .iter()
    .map(|r| {
        (
            r.get(0),
            r.get(1),
            r.get(2),
            r.get(3),
            r.get(4),
            r.get(5),
            r.get(6),
            r.get(7),
        )
    })
    .collect()
}

fn audit_rows(db: &mut Client) -> i64 {
    db.query_one("select count(*) from public.audit_log", &[])
        .unwrap()
        .get(0)
}

#[test]
fn every_write_leaves_one_row_naming_the_caller_the_columns_and_the_request_id() {
    let mut db = super::cluster::fresh_db();
    let ann = create_user(&mut db, "ann@example.com");

    let mut tx = as_caller(&mut db, &Caller::User(&ann));
    with_request_id(&mut tx, "req-create");
    let item: String = tx
        .query_one(
            "insert into public.items (name, price, user_id) values ('Mug', 3, $1::text::uuid) \
             returning id::text",
            &[&ann],
        )
        .unwrap()
        .get(0);
    tx.commit().unwrap();

    let mut tx = as_caller(&mut db, &Caller::User(&ann));
    with_request_id(&mut tx, "req-update");
    tx.execute(
        "update public.items set price = 4 where id = $1::text::uuid",
        &[&item],
    )
    .unwrap();
    tx.commit().unwrap();

    let mut tx = as_caller(&mut db, &Caller::User(&ann));
    with_request_id(&mut tx, "req-delete");
    tx.execute(
        "delete from public.items where id = $1::text::uuid",
        &[&item],
    )
    .unwrap();
    tx.commit().unwrap();

    let all = entries(&mut db);
    let ours: Vec<&Entry> = all.iter().filter(|e| e.3 == "items").collect();
    assert_eq!(ours.len(), 3, "{all:?}");
    let who = (Some(ann.clone()), "authenticated".to_owned(), false);
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!((ours[0].0.clone(), ours[0].1.clone(), ours[0].2), who);
    assert_eq!(ours[0].4.as_deref(), Some(item.as_str()));
    assert_eq!(ours[0].5, "INSERT");
    assert_eq!(
        ours[0].6,
        strings(&["created_at", "id", "name", "price", "updated_at", "user_id"])
    );
    assert_eq!(ours[0].7.as_deref(), Some("req-create"));
    assert_eq!(ours[1].5, "UPDATE");
    assert_eq!(ours[1].6, strings(&["price", "updated_at"]));
    assert_eq!(ours[1].7.as_deref(), Some("req-update"));
    assert_eq!(ours[2].5, "DELETE");
    assert!(ours[2].6.is_empty());
    assert_eq!(ours[2].4.as_deref(), Some(item.as_str()));
    assert_eq!(ours[2].7.as_deref(), Some("req-delete"));
}

#[test]
fn a_rolled_back_write_leaves_no_audit_row() {
    let mut db = super::cluster::fresh_db();
    let ann = create_user(&mut db, "ann@example.com");
    let before = audit_rows(&mut db);
    let mut tx = as_caller(&mut db, &Caller::User(&ann));
    tx.execute(
        "insert into public.items (name, price, user_id) values ('Mug', 3, $1::text::uuid)",
        &[&ann],
    )
    .unwrap();
    let inside: i64 = tx
        .query_one(
            "select count(*) from public.audit_log where table_name = 'items'",
            &[],
        )
        .map(|r| r.get(0))
        .unwrap_or(-1);
    tx.rollback().unwrap();
    assert_eq!(inside, 0, "a user cannot see the log, even its own rows");
    assert_eq!(audit_rows(&mut db), before);
}

#[test]
fn the_service_role_and_billing_tables_are_audited_too() {
    let mut db = super::cluster::fresh_db();
    let ann = create_user(&mut db, "ann@example.com");
    let mut tx = as_caller(&mut db, &Caller::Service);
    tx.execute(
        "select public.link_stripe_customer($1::text::uuid, 'cus_1')",
        &[&ann],
    )
    .unwrap();
    tx.commit().unwrap();
    let row = db
        .query_one(
            "select user_id::text, role, row_id from public.audit_log where table_name = 'customers'",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None);
    assert_eq!(row.get::<_, String>(1), "service_role");
    assert_eq!(row.get::<_, Option<String>>(2), Some(ann));
}

#[test]
fn only_admins_read_the_log_and_nobody_writes_it() {
    let mut db = super::cluster::fresh_db();
    let ann = create_user(&mut db, "ann@example.com");
    let mut tx = as_caller(&mut db, &Caller::User(&ann));
    tx.execute(
        "insert into public.items (name, price, user_id) values ('Mug', 3, $1::text::uuid)",
        &[&ann],
    )
    .unwrap();
    tx.commit().unwrap();

    let visible = |db: &mut Client, caller: &Caller| {
        let mut tx = as_caller(db, caller);
        tx.query_one("select count(*) from public.audit_log", &[])
            .map(|r| r.get::<_, i64>(0))
    };
    assert!(visible(&mut db, &Caller::Admin(&ann)).unwrap() >= 1);
    assert_eq!(visible(&mut db, &Caller::User(&ann)).unwrap(), 0);
    assert_eq!(
        visible(&mut db, &Caller::UserClaimingAdminInMetadata(&ann)).unwrap(),
        0
    );
    assert_eq!(sqlstate(visible(&mut db, &Caller::Anon)), "42501");

    let forgeries = [
        "insert into public.audit_log (role, table_name, operation) values ('authenticated', 'items', 'INSERT')",
        "update public.audit_log set request_id = 'forged'",
        "delete from public.audit_log",
        "truncate public.audit_log",
    ];
    for caller in [
        Caller::User(&ann),
        Caller::Admin(&ann),
        Caller::Anon,
        Caller::Service,
    ] {
        for sql in forgeries {
            let mut tx = as_caller(&mut db, &caller);
            assert_eq!(sqlstate(tx.execute(sql, &[])), "42501", "{sql}");
        }
    }
}
