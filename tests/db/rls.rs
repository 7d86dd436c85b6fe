//! Row-level security and grants on the catalog and profiles, exercised the way PostgREST runs a
//! request (`SET LOCAL ROLE` + `request.jwt.claims` in one transaction).

use super::cluster::fresh_db;
use super::support::{
    as_caller, count, create_category, create_item, create_user, sqlstate, Caller,
};

#[test]
fn anon_reads_the_catalog() {
    let mut db = fresh_db();
    let owner = create_user(&mut db, "owner@example.com");
    create_category(&mut db, "Kitchen", "kitchen");
    create_item(&mut db, &owner, "Mug", "12.50");

    let mut tx = as_caller(&mut db, &Caller::Anon);
    assert_eq!(count(&mut tx, "select * from public.categories"), 1);
    assert_eq!(count(&mut tx, "select * from public.items"), 1);
}

#[test]
fn anon_cannot_insert_items() {
    let mut db = fresh_db();
    let owner = create_user(&mut db, "owner@example.com");
    let mut tx = as_caller(&mut db, &Caller::Anon);
    let result = tx.execute(
        "insert into public.items (name, price, user_id) values ('Mug', 1, $1::text::uuid)",
        &[&owner],
    );
    assert_eq!(sqlstate(result), "42501");
}

#[test]
fn anon_cannot_update_or_delete_items() {
    let mut db = fresh_db();
    let owner = create_user(&mut db, "owner@example.com");
    create_item(&mut db, &owner, "Mug", "12.50");

    let mut tx = as_caller(&mut db, &Caller::Anon);
    assert_eq!(
        sqlstate(tx.execute("update public.items set name = 'x'", &[])),
        "42501"
    );
    drop(tx);
    let mut tx = as_caller(&mut db, &Caller::Anon);
    assert_eq!(
        sqlstate(tx.execute("delete from public.items", &[])),
        "42501"
    );
}

#[test]
fn anon_cannot_write_categories() {
    let mut db = fresh_db();
    create_category(&mut db, "Kitchen", "kitchen");
    for sql in [
        "insert into public.categories (name, slug) values ('Garden', 'garden')",
        "update public.categories set name = 'x'",
        "delete from public.categories",
    ] {
        let mut tx = as_caller(&mut db, &Caller::Anon);
        assert_eq!(sqlstate(tx.execute(sql, &[])), "42501", "{sql}");
    }
}

#[test]
fn anon_cannot_truncate_the_catalog() {
    // TRUNCATE ignores RLS, and Supabase's default grants include it: the revoke is what holds.
    let mut db = fresh_db();
    for role in [
        Caller::Anon,
        Caller::User("00000000-0000-0000-0000-000000000001"),
    ] {
        let mut tx = as_caller(&mut db, &role);
        assert_eq!(
            sqlstate(tx.batch_execute("truncate public.items cascade")),
            "42501"
        );
    }
}

#[test]
fn signed_in_user_cannot_write_categories_but_admin_can() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    let admin = create_user(&mut db, "admin@example.com");

    let mut tx = as_caller(&mut db, &Caller::User(&user));
    let result = tx.execute(
        "insert into public.categories (name, slug) values ('Garden', 'garden')",
        &[],
    );
    assert_eq!(sqlstate(result), "42501");
    drop(tx);

    let mut tx = as_caller(&mut db, &Caller::Admin(&admin));
    let inserted = tx
        .execute(
            "insert into public.categories (name, slug) values ('Garden', 'garden')",
            &[],
        )
        .expect("admin inserts a category");
    assert_eq!(inserted, 1);
}

#[test]
fn user_creates_an_item_owned_by_themselves_by_default() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");

    let mut tx = as_caller(&mut db, &Caller::User(&user));
    // As PostgREST sends it: no user_id in the body; the column default is auth.uid().
    let owner: String = tx
        .query_one(
            "insert into public.items (name, price) values ('Mug', 12.5) returning user_id::text",
            &[],
        )
        .expect("insert own item")
        .get(0);
    assert_eq!(owner, user);
}

#[test]
fn user_cannot_create_an_item_for_someone_else() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    let other = create_user(&mut db, "other@example.com");

    let mut tx = as_caller(&mut db, &Caller::User(&user));
    let result = tx.execute(
        "insert into public.items (name, price, user_id) values ('Mug', 1, $1::text::uuid)",
        &[&other],
    );
    assert_eq!(sqlstate(result), "42501");
}

#[test]
fn user_cannot_choose_created_at_or_id() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    for sql in [
        "insert into public.items (name, price, created_at) values ('Mug', 1, '2000-01-01')",
        "insert into public.items (id, name, price) values (gen_random_uuid(), 'Mug', 1)",
    ] {
        let mut tx = as_caller(&mut db, &Caller::User(&user));
        assert_eq!(sqlstate(tx.execute(sql, &[])), "42501", "{sql}");
    }
}

#[test]
fn user_edits_and_deletes_their_own_item() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    let item = create_item(&mut db, &user, "Mug", "12.50");

    let mut tx = as_caller(&mut db, &Caller::User(&user));
    let updated = tx
        .execute(
            "update public.items set name = 'Big mug', price = 15 where id = $1::text::uuid",
            &[&item],
        )
        .expect("update own item");
    assert_eq!(updated, 1);
    let deleted = tx
        .execute(
            "delete from public.items where id = $1::text::uuid",
            &[&item],
        )
        .expect("delete own item");
    assert_eq!(deleted, 1);
}

#[test]
fn user_sees_zero_rows_when_updating_someone_elses_item() {
    let mut db = fresh_db();
    let owner = create_user(&mut db, "owner@example.com");
    let intruder = create_user(&mut db, "intruder@example.com");
    let item = create_item(&mut db, &owner, "Mug", "12.50");

    let mut tx = as_caller(&mut db, &Caller::User(&intruder));
    let updated = tx
        .execute(
            "update public.items set name = 'Mine now' where id = $1::text::uuid",
            &[&item],
        )
        .expect("update is filtered, not refused");
    assert_eq!(updated, 0);
    tx.commit().expect("commit");

    let name: String = db
        .query_one(
            "select name from public.items where id = $1::text::uuid",
            &[&item],
        )
        .expect("item still there")
        .get(0);
    assert_eq!(name, "Mug");
}

#[test]
fn user_sees_zero_rows_when_deleting_someone_elses_item() {
    let mut db = fresh_db();
    let owner = create_user(&mut db, "owner@example.com");
    let intruder = create_user(&mut db, "intruder@example.com");
    let item = create_item(&mut db, &owner, "Mug", "12.50");

    let mut tx = as_caller(&mut db, &Caller::User(&intruder));
    let deleted = tx
        .execute(
            "delete from public.items where id = $1::text::uuid",
            &[&item],
        )
        .expect("delete is filtered, not refused");
    assert_eq!(deleted, 0);
    tx.commit().expect("commit");

    let left: i64 = db
        .query_one("select count(*) from public.items", &[])
        .expect("count")
        .get(0);
    assert_eq!(left, 1);
}

#[test]
fn owner_cannot_hand_an_item_to_someone_else() {
    let mut db = fresh_db();
    let owner = create_user(&mut db, "owner@example.com");
    let other = create_user(&mut db, "other@example.com");
    let item = create_item(&mut db, &owner, "Mug", "12.50");

    let mut tx = as_caller(&mut db, &Caller::User(&owner));
    let result = tx.execute(
        "update public.items set user_id = $1::text::uuid where id = $2::text::uuid",
        &[&other, &item],
    );
    assert_eq!(sqlstate(result), "42501");
}

#[test]
fn admin_edits_and_deletes_any_item() {
    let mut db = fresh_db();
    let owner = create_user(&mut db, "owner@example.com");
    let admin = create_user(&mut db, "admin@example.com");
    let item = create_item(&mut db, &owner, "Mug", "12.50");

    let mut tx = as_caller(&mut db, &Caller::Admin(&admin));
    let updated = tx
        .execute(
            "update public.items set price = 9 where id = $1::text::uuid",
            &[&item],
        )
        .expect("admin update");
    assert_eq!(updated, 1);
    let deleted = tx
        .execute(
            "delete from public.items where id = $1::text::uuid",
            &[&item],
        )
        .expect("admin delete");
    assert_eq!(deleted, 1);
}

#[test]
fn admin_role_in_user_metadata_grants_nothing() {
    let mut db = fresh_db();
    let owner = create_user(&mut db, "owner@example.com");
    let pretender = create_user(&mut db, "pretender@example.com");
    let item = create_item(&mut db, &owner, "Mug", "12.50");

    let mut tx = as_caller(&mut db, &Caller::UserClaimingAdminInMetadata(&pretender));
    let deleted = tx
        .execute(
            "delete from public.items where id = $1::text::uuid",
            &[&item],
        )
        .expect("delete is filtered");
    assert_eq!(deleted, 0);
}

#[test]
fn updating_an_item_bumps_updated_at() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    let item = create_item(&mut db, &user, "Mug", "12.50");
    db.execute(
        "update public.items set created_at = now() - interval '1 day', \
                                 updated_at = now() - interval '1 day' where id = $1::text::uuid",
        &[&item],
    )
    .expect("age the item");

    let mut tx = as_caller(&mut db, &Caller::User(&user));
    tx.execute(
        "update public.items set name = 'Big mug' where id = $1::text::uuid",
        &[&item],
    )
    .expect("update");
    let fresh: bool = tx
        .query_one(
            "select updated_at > created_at + interval '1 hour' from public.items where id = $1::text::uuid",
            &[&item],
        )
        .expect("read back")
        .get(0);
    assert!(fresh, "updated_at should be set to now() by the trigger");
}

#[test]
fn profile_is_created_when_an_auth_user_signs_up() {
    let mut db = fresh_db();
    let id: String = db
        .query_one(
            "insert into auth.users (id, email, raw_user_meta_data, created_at) \
             values (gen_random_uuid(), 'new@example.com', \
                     '{\"full_name\":\"Ada Lovelace\",\"avatar_url\":\"https://example.com/a.png\"}', now()) \
             returning id::text",
            &[],
        )
        .expect("sign up")
        .get(0);

    let row = db
        .query_one(
            "select username, full_name, avatar_url from public.profiles where id = $1::text::uuid",
            &[&id],
        )
        .expect("profile exists");
    assert_eq!(row.get::<_, Option<String>>(0), None);
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("Ada Lovelace")
    );
    assert_eq!(
        row.get::<_, Option<String>>(2).as_deref(),
        Some("https://example.com/a.png")
    );
}

#[test]
fn sign_up_with_unusable_avatar_url_still_succeeds() {
    // A failing trigger would fail the sign-up itself, so user metadata is copied defensively.
    let mut db = fresh_db();
    let id: String = db
        .query_one(
            "insert into auth.users (id, email, raw_user_meta_data) \
             values (gen_random_uuid(), 'x@example.com', '{\"avatar_url\":\"javascript:alert(1)\"}') \
             returning id::text",
            &[],
        )
        .expect("sign up succeeds")
        .get(0);
    let stored: Option<String> = db
        .query_one(
            "select avatar_url from public.profiles where id = $1::text::uuid",
            &[&id],
        )
        .expect("profile exists")
        .get(0);
    assert_eq!(stored, None);
}

#[test]
fn deleting_an_auth_user_removes_their_profile_and_items() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    create_item(&mut db, &user, "Mug", "12.50");

    db.execute("delete from auth.users where id = $1::text::uuid", &[&user])
        .expect("delete auth user");
    let (profiles, items): (i64, i64) = {
        let row = db
            .query_one(
                "select (select count(*) from public.profiles), (select count(*) from public.items)",
                &[],
            )
            .expect("count");
        (row.get(0), row.get(1))
    };
    assert_eq!((profiles, items), (0, 0));
}

#[test]
fn anon_cannot_read_profiles() {
    let mut db = fresh_db();
    create_user(&mut db, "user@example.com");
    let mut tx = as_caller(&mut db, &Caller::Anon);
    assert_eq!(
        sqlstate(tx.query("select * from public.profiles", &[])),
        "42501"
    );
}

#[test]
fn signed_in_user_reads_every_profile() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    create_user(&mut db, "other@example.com");
    let mut tx = as_caller(&mut db, &Caller::User(&user));
    assert_eq!(count(&mut tx, "select * from public.profiles"), 2);
}

#[test]
fn user_updates_only_their_own_profile() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    let other = create_user(&mut db, "other@example.com");

    let mut tx = as_caller(&mut db, &Caller::User(&user));
    let own = tx
        .execute(
            "update public.profiles set username = 'ada_l' where id = $1::text::uuid",
            &[&user],
        )
        .expect("update own profile");
    let theirs = tx
        .execute(
            "update public.profiles set username = 'not_yours' where id = $1::text::uuid",
            &[&other],
        )
        .expect("update is filtered");
    assert_eq!((own, theirs), (1, 0));
}

#[test]
fn user_cannot_insert_or_delete_profiles() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    for sql in [
        "insert into public.profiles (id) values (gen_random_uuid())",
        "delete from public.profiles",
    ] {
        let mut tx = as_caller(&mut db, &Caller::User(&user));
        assert_eq!(sqlstate(tx.execute(sql, &[])), "42501", "{sql}");
    }
}
