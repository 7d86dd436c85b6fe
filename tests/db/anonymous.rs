//! Anonymous sign-ins through RLS (`20250601000500_anonymous.sql`): their tokens read like any
//! signed-in user's but cannot write unless `private.settings` allows it, and a converted user
//! (same id, `is_anonymous` false) keeps its rows.

use super::cluster::fresh_db;
use super::support::{
    as_caller, count, create_anonymous_user, create_category, create_item, create_user, sqlstate,
    Caller,
};

fn allow_anonymous_writes(db: &mut postgres::Client, on: bool) {
    db.execute(
        "update private.settings set allow_anonymous_writes = $1",
        &[&on],
    )
    .expect("flip the setting");
}

#[test]
fn an_anonymous_user_reads_what_signed_in_users_read() {
    let mut db = fresh_db();
    let owner = create_user(&mut db, "owner@example.com");
    let guest = create_anonymous_user(&mut db);
    create_category(&mut db, "Kitchen", "kitchen");
    create_item(&mut db, &owner, "Mug", "12.50");

    let mut tx = as_caller(&mut db, &Caller::AnonymousUser(&guest));
    assert_eq!(count(&mut tx, "select * from public.items"), 1);
    assert_eq!(count(&mut tx, "select * from public.categories"), 1);
    assert_eq!(count(&mut tx, "select * from public.profiles"), 2);
}

#[test]
fn an_anonymous_user_cannot_insert_an_item_of_its_own() {
    let mut db = fresh_db();
    let guest = create_anonymous_user(&mut db);
    let mut tx = as_caller(&mut db, &Caller::AnonymousUser(&guest));
    let result = tx.execute(
        "insert into public.items (name, price, user_id) values ('Mug', 1, $1::text::uuid)",
        &[&guest],
    );
    assert_eq!(sqlstate(result), "42501");
}

#[test]
fn an_anonymous_user_cannot_update_or_delete_its_own_item_or_profile() {
    let mut db = fresh_db();
    let guest = create_anonymous_user(&mut db);
    create_item(&mut db, &guest, "Mug", "12.50");

    // USING hides the rows from UPDATE/DELETE: nothing changes, no error (as PostgREST sees it).
    for sql in [
        "update public.items set name = 'x'",
        "delete from public.items",
        "update public.profiles set full_name = 'x'",
    ] {
        let mut tx = as_caller(&mut db, &Caller::AnonymousUser(&guest));
        assert_eq!(tx.execute(sql, &[]).expect(sql), 0, "{sql}");
    }
    let mut tx = as_caller(&mut db, &Caller::AnonymousUser(&guest));
    assert_eq!(
        count(&mut tx, "select * from public.items where name = 'Mug'"),
        1
    );
}

#[test]
fn the_same_policies_let_a_permanent_user_write() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "ann@example.com");
    let mut tx = as_caller(&mut db, &Caller::User(&user));
    tx.execute(
        "insert into public.items (name, price, user_id) values ('Mug', 1, $1::text::uuid)",
        &[&user],
    )
    .expect("a permanent user inserts");
    assert_eq!(
        tx.execute("update public.items set name = 'Cup'", &[])
            .expect("update"),
        1
    );
}

#[test]
fn allow_anonymous_writes_in_private_settings_relaxes_the_policies() {
    let mut db = fresh_db();
    let guest = create_anonymous_user(&mut db);
    allow_anonymous_writes(&mut db, true);

    let mut tx = as_caller(&mut db, &Caller::AnonymousUser(&guest));
    tx.execute(
        "insert into public.items (name, price, user_id) values ('Mug', 1, $1::text::uuid)",
        &[&guest],
    )
    .expect("anonymous insert allowed by the setting");
    assert_eq!(
        tx.execute("update public.items set name = 'Cup'", &[])
            .expect("update"),
        1
    );
    assert_eq!(
        tx.execute("update public.profiles set full_name = 'Guest'", &[])
            .expect("profile update"),
        1
    );
    assert_eq!(
        tx.execute("delete from public.items", &[]).expect("delete"),
        1
    );
}

#[test]
fn callers_cannot_read_or_flip_the_setting_themselves() {
    let mut db = fresh_db();
    let guest = create_anonymous_user(&mut db);
    for caller in [Caller::AnonymousUser(&guest), Caller::Anon] {
        let mut tx = as_caller(&mut db, &caller);
        assert_eq!(
            sqlstate(tx.execute(
                "update private.settings set allow_anonymous_writes = true",
                &[]
            )),
            "42501"
        );
    }
    let mut tx = as_caller(&mut db, &Caller::Anon);
    assert_eq!(
        sqlstate(tx.query("select private.anonymous_may_write()", &[])),
        "42501"
    );
}

#[test]
fn a_converted_user_keeps_its_id_and_rows_and_may_write_them() {
    let mut db = fresh_db();
    let guest = create_anonymous_user(&mut db);
    // Rows made while anonymous (a project that allowed it, or created on its behalf).
    allow_anonymous_writes(&mut db, true);
    {
        let mut tx = as_caller(&mut db, &Caller::AnonymousUser(&guest));
        tx.execute(
            "insert into public.items (name, price, user_id) values ('Mug', 1, $1::text::uuid)",
            &[&guest],
        )
        .expect("insert while anonymous");
        tx.commit().expect("commit");
    }
    allow_anonymous_writes(&mut db, false);

    // What Auth does on conversion (PUT /user with an email, then the confirmation): the same
    // row in auth.users gains an email and stops being anonymous.
    let converted = db
        .execute(
            "update auth.users set email = 'ann@example.com', email_confirmed_at = now(), \
             is_anonymous = false where id = $1::text::uuid",
            &[&guest],
        )
        .expect("convert");
    assert_eq!(converted, 1);

    // The next token carries the same sub and no is_anonymous claim.
    let mut tx = as_caller(&mut db, &Caller::User(&guest));
    let mine = format!("select * from public.items where user_id = '{guest}'");
    assert_eq!(count(&mut tx, &mine), 1);
    assert_eq!(
        count(
            &mut tx,
            &format!("select * from public.profiles where id = '{guest}'")
        ),
        1
    );
    assert_eq!(
        tx.execute("update public.items set name = 'Cup'", &[])
            .expect("update as the converted user"),
        1
    );
}
