//! The `api_keys` table: owners see, create and delete only their own keys, never read a
//! key's hash back, and only a hash of the right shape is stored.

use postgres::Client;

use super::cluster::fresh_db;
use super::support::{as_caller, count, create_anonymous_user, create_user, sqlstate, Caller};

const HASH_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const HASH_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A key as PostgREST inserts it for its owner (`user_id` from the default).
const INSERT_KEY: &str = "insert into public.api_keys (name, prefix, secret_hash, scopes) \
     values ('ci', 'sgk_abcdEFGH', $1, array['items:read'])";

/// Inserts a key as `owner` would through PostgREST (the user's own transaction).
fn insert_key(db: &mut Client, owner: &str, hash: &str) -> Result<u64, postgres::Error> {
    let mut tx = as_caller(db, &Caller::User(owner));
    let n = tx.execute(INSERT_KEY, &[&hash])?;
    tx.commit()?;
    Ok(n)
}

#[test]
fn an_owner_creates_a_key_for_themselves_and_the_row_is_theirs() {
    let mut db = fresh_db();
    let owner = create_user(&mut db, "owner@example.com");
    assert_eq!(insert_key(&mut db, &owner, HASH_A).unwrap(), 1);
    let row = db
        .query_one("select user_id::text from public.api_keys", &[])
        .unwrap();
    assert_eq!(
        row.get::<_, String>(0),
        owner,
        "user_id defaults to auth.uid()"
    );
}

#[test]
fn a_user_cannot_create_a_key_owned_by_someone_else() {
    let mut db = fresh_db();
    let a = create_user(&mut db, "a@example.com");
    let b = create_user(&mut db, "b@example.com");
    let mut tx = as_caller(&mut db, &Caller::User(&a));
    // `user_id` is not even granted for insert: the owner is always the caller.
    let result = tx.execute(
        "insert into public.api_keys (user_id, name, prefix, secret_hash, scopes) \
         values ($1::text::uuid, 'x', 'sgk_abcdEFGH', $2, array['items:read'])",
        &[&b, &HASH_A],
    );
    assert_eq!(sqlstate(result), "42501");
}

#[test]
fn owners_list_and_delete_only_their_own_keys() {
    let mut db = fresh_db();
    let a = create_user(&mut db, "a@example.com");
    let b = create_user(&mut db, "b@example.com");
    insert_key(&mut db, &a, HASH_A).unwrap();
    insert_key(&mut db, &b, HASH_B).unwrap();

    let mut tx = as_caller(&mut db, &Caller::User(&a));
    assert_eq!(count(&mut tx, "select id from public.api_keys"), 1);
    assert_eq!(
        tx.execute(
            "delete from public.api_keys where user_id = $1::text::uuid",
            &[&b]
        )
        .unwrap(),
        0,
        "b's key is invisible to a"
    );
    tx.commit().unwrap();
    assert_eq!(
        count(
            &mut db.transaction().unwrap(),
            "select id from public.api_keys"
        ),
        2
    );

    let mut tx = as_caller(&mut db, &Caller::Anon);
    assert_eq!(
        sqlstate(tx.execute("select id from public.api_keys", &[])),
        "42501"
    );
}

#[test]
fn the_hash_is_never_readable_by_its_owner() {
    let mut db = fresh_db();
    let a = create_user(&mut db, "a@example.com");
    insert_key(&mut db, &a, HASH_A).unwrap();
    let mut tx = as_caller(&mut db, &Caller::User(&a));
    assert_eq!(
        sqlstate(tx.execute("select secret_hash from public.api_keys", &[])),
        "42501"
    );
    drop(tx);
    let mut tx = as_caller(&mut db, &Caller::User(&a));
    assert_eq!(
        count(
            &mut tx,
            "select id, name, prefix, scopes, expires_at, created_at from public.api_keys"
        ),
        1
    );
    drop(tx);
    // Keys are never edited: a hash cannot be swapped under an existing id.
    let mut tx = as_caller(&mut db, &Caller::User(&a));
    assert_eq!(
        sqlstate(tx.execute("update public.api_keys set name = 'x'", &[])),
        "42501"
    );
}

#[test]
fn only_a_hex_sha256_is_stored_never_a_raw_key() {
    let mut db = fresh_db();
    let a = create_user(&mut db, "a@example.com");
    let raw = "sgk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(sqlstate(insert_key(&mut db, &a, raw)), "23514");
    assert_eq!(
        sqlstate(insert_key(&mut db, &a, &HASH_A.to_uppercase())),
        "23514"
    );
    insert_key(&mut db, &a, HASH_A).unwrap();
    assert_eq!(
        sqlstate(insert_key(&mut db, &a, HASH_A)),
        "23505",
        "one row per hash"
    );
}

#[test]
fn unknown_scopes_and_empty_scope_lists_are_refused() {
    let mut db = fresh_db();
    let a = create_user(&mut db, "a@example.com");
    for scopes in ["array['admin']", "array[]::text[]"] {
        let mut tx = as_caller(&mut db, &Caller::User(&a));
        let result = tx.execute(
            &format!(
                "insert into public.api_keys (name, prefix, secret_hash, scopes) \
                 values ('x', 'sgk_abcdEFGH', $1, {scopes})"
            ),
            &[&HASH_A],
        );
        assert_eq!(sqlstate(result), "23514", "{scopes}");
    }
}

#[test]
fn a_token_minted_for_a_key_cannot_create_keys() {
    let mut db = fresh_db();
    let a = create_user(&mut db, "a@example.com");
    let mut tx = db.transaction().unwrap();
    tx.batch_execute("set local role authenticated").unwrap();
    let claims = serde_json::json!({
        "sub": a, "role": "authenticated", "aud": "authenticated",
        "api_key_id": "5d3c2b1a-0f9e-4d8c-b7a6-958473625140",
    });
    tx.execute(
        "select set_config('request.jwt.claims', $1, true)",
        &[&claims.to_string()],
    )
    .unwrap();
    let result = tx.execute(INSERT_KEY, &[&HASH_A]);
    assert_eq!(sqlstate(result), "42501");
}

#[test]
fn anonymous_sign_ins_cannot_create_keys() {
    let mut db = fresh_db();
    let anon = create_anonymous_user(&mut db);
    let mut tx = as_caller(&mut db, &Caller::AnonymousUser(&anon));
    let result = tx.execute(INSERT_KEY, &[&HASH_A]);
    assert_eq!(sqlstate(result), "42501");
}

#[test]
fn the_secret_key_finds_a_key_by_its_hash_and_deleting_the_user_removes_their_keys() {
    let mut db = fresh_db();
    let a = create_user(&mut db, "a@example.com");
    insert_key(&mut db, &a, HASH_A).unwrap();
    let mut tx = as_caller(&mut db, &Caller::Service);
    let rows = tx
        .query(
            "select user_id::text from public.api_keys where secret_hash = $1",
            &[&HASH_A],
        )
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), a);
    drop(tx);
    db.execute("delete from auth.users where id = $1::text::uuid", &[&a])
        .unwrap();
    assert_eq!(
        count(
            &mut db.transaction().unwrap(),
            "select id from public.api_keys"
        ),
        0
    );
}
