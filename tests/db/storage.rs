//! Supabase Storage's `storage.objects` under supabase/migrations/..._storage.sql, exercised the
//! way Storage runs a request for a token (`SET LOCAL ROLE` + `request.jwt.claims`): each user
//! reads and writes only under their own folder, in plain segments, as `rules::files` checks
//! in Rust; and the bucket holds the limits config/default.toml states.

use postgres::Transaction;

use super::cluster::fresh_db;
use super::support::{as_caller, count, create_anonymous_user, create_user, sqlstate, Caller};

/// What Storage's upload check does as the caller (`testPermission` around `createObject`).
fn upload(tx: &mut Transaction<'_>, name: &str, owner: &str) -> Result<u64, postgres::Error> {
    tx.execute(
        "insert into storage.objects (bucket_id, name, owner, owner_id, version, metadata) \
         values ('avatars', $1, $2::text::uuid, $2, '1', '{\"mimetype\":\"image/png\"}')",
        &[&name, &owner],
    )
}

/// A file put there by the Storage service itself (past RLS), as a finished upload is.
fn stored(db: &mut postgres::Client, name: &str) {
    db.execute(
        "insert into storage.objects (bucket_id, name, version) values ('avatars', $1, '1')",
        &[&name],
    )
    .expect("insert object as the storage service");
}

/// Ann and Bob, each with one stored file in their own folder: `(ann, bob)`.
fn two_users_with_a_file_each(db: &mut postgres::Client) -> (String, String) {
    let ann = create_user(db, "ann@example.com");
    let bob = create_user(db, "bob@example.com");
    stored(db, &format!("{ann}/a.png"));
    stored(db, &format!("{bob}/b.png"));
    (ann, bob)
}

fn visible(tx: &mut Transaction<'_>) -> i64 {
    count(
        tx,
        "select name from storage.objects where bucket_id = 'avatars'",
    )
}

#[test]
fn the_default_buckets_limits_in_the_database_are_the_ones_the_config_states() {
    let config: toml::Value = toml::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"))
            .expect("read config/default.toml"),
    )
    .expect("parse config/default.toml");
    let buckets = config["storage"]["buckets"]
        .as_array()
        .expect("[[storage.buckets]]");
    assert!(!buckets.is_empty());
    let mut db = fresh_db();
    for bucket in buckets {
        let name = bucket["name"].as_str().unwrap();
        let row = db
            .query_one(
                "select public, file_size_limit, allowed_mime_types from storage.buckets where id = $1",
                &[&name],
            )
            .unwrap_or_else(|e| panic!("bucket {name} is created by a migration: {e}"));
        let public: bool = row.get(0);
        let size: i64 = row.get(1);
        let types: Vec<String> = row.get(2);
        assert!(
            !public,
            "{name}: files are reached through signed URLs only"
        );
        assert_eq!(
            size,
            bucket["max_size_bytes"].as_integer().unwrap(),
            "{name}"
        );
        let configured: Vec<&str> = bucket["allowed_content_types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(types, configured, "{name}");
        assert!(
            bucket["path_template"]
                .as_str()
                .unwrap()
                .starts_with("{user_id}/"),
            "{name}: the policies key on the first folder being the user's id"
        );
    }
}

#[test]
fn a_user_uploads_only_into_their_own_folder() {
    let mut db = fresh_db();
    let ann = create_user(&mut db, "ann@example.com");
    let bob = create_user(&mut db, "bob@example.com");
    let mut tx = as_caller(&mut db, &Caller::User(&ann));
    assert_eq!(upload(&mut tx, &format!("{ann}/a.png"), &ann).unwrap(), 1);
    assert_eq!(
        upload(&mut tx, &format!("{ann}/nested/b.png"), &ann).unwrap(),
        1
    );
    tx.commit().unwrap();
    for name in [
        format!("{bob}/a.png"),
        "a.png".to_owned(),
        ann.clone(),
        format!("{ann}/../{bob}/a.png"),
        format!("{ann}/./a.png"),
        format!("{ann}//a.png"),
        format!("{ann}/a.png/"),
        format!("{ann}/a%2F..%2Fb.png"),
        format!("{ann}/a\\b.png"),
        format!("{}/a.png", ann.to_uppercase()),
    ] {
        let mut tx = as_caller(&mut db, &Caller::User(&ann));
        assert_eq!(sqlstate(upload(&mut tx, &name, &ann)), "42501", "{name}");
    }
}

#[test]
fn a_user_reads_only_their_own_files() {
    let mut db = fresh_db();
    let (ann, bob) = two_users_with_a_file_each(&mut db);
    stored(&mut db, &format!("{ann}/../{bob}/c.png"));

    let mut tx = as_caller(&mut db, &Caller::User(&ann));
    assert_eq!(visible(&mut tx), 1);
    let name: String = tx
        .query_one("select name from storage.objects", &[])
        .unwrap()
        .get(0);
    assert_eq!(name, format!("{ann}/a.png"));
    drop(tx);
    let mut tx = as_caller(&mut db, &Caller::User(&bob));
    assert_eq!(visible(&mut tx), 1);
    drop(tx);
    let mut tx = as_caller(&mut db, &Caller::Anon);
    assert_eq!(visible(&mut tx), 0);
}

#[test]
fn a_user_cannot_move_a_file_into_another_folder_or_change_someone_elses() {
    let mut db = fresh_db();
    let (ann, bob) = two_users_with_a_file_each(&mut db);

    let mut tx = as_caller(&mut db, &Caller::User(&ann));
    let moved = tx.execute(
        "update storage.objects set name = $1 where name = $2",
        &[&format!("{bob}/a.png"), &format!("{ann}/a.png")],
    );
    assert_eq!(sqlstate(moved), "42501");
    drop(tx);
    let mut tx = as_caller(&mut db, &Caller::User(&ann));
    let touched = tx
        .execute(
            "update storage.objects set metadata = '{}' where name = $1",
            &[&format!("{bob}/b.png")],
        )
        .unwrap();
    assert_eq!(touched, 0, "bob's file is invisible to ann's update");
    let own = tx
        .execute(
            "update storage.objects set metadata = '{}' where name = $1",
            &[&format!("{ann}/a.png")],
        )
        .unwrap();
    assert_eq!(own, 1, "an upsert of her own file");
}

#[test]
fn deletes_through_the_storage_api_reach_only_the_callers_files() {
    let mut db = fresh_db();
    let (ann, bob) = two_users_with_a_file_each(&mut db);

    // Storage's own trigger refuses a delete that did not come through its API.
    let mut tx = as_caller(&mut db, &Caller::User(&ann));
    assert_eq!(
        sqlstate(tx.execute("delete from storage.objects", &[])),
        "42501"
    );
    drop(tx);
    let mut tx = as_caller(&mut db, &Caller::User(&ann));
    tx.batch_execute("set local storage.allow_delete_query = 'true'")
        .unwrap();
    assert_eq!(tx.execute("delete from storage.objects", &[]).unwrap(), 1);
    tx.commit().unwrap();
    let remaining: String = db
        .query_one("select name from storage.objects", &[])
        .unwrap()
        .get(0);
    assert_eq!(remaining, format!("{bob}/b.png"));
}

#[test]
fn anon_cannot_upload_and_anonymous_sign_ins_upload_only_when_the_project_allows() {
    let mut db = fresh_db();
    let guest = create_anonymous_user(&mut db);
    let mut tx = as_caller(&mut db, &Caller::Anon);
    assert_eq!(
        sqlstate(tx.execute(
            "insert into storage.objects (bucket_id, name) values ('avatars', 'x/a.png')",
            &[]
        )),
        "42501"
    );
    drop(tx);
    let name = format!("{guest}/a.png");
    let mut tx = as_caller(&mut db, &Caller::AnonymousUser(&guest));
    assert_eq!(sqlstate(upload(&mut tx, &name, &guest)), "42501");
    drop(tx);
    db.batch_execute("update private.settings set allow_anonymous_writes = true")
        .unwrap();
    let mut tx = as_caller(&mut db, &Caller::AnonymousUser(&guest));
    assert_eq!(upload(&mut tx, &name, &guest).unwrap(), 1);
}

#[test]
fn the_policies_leave_other_buckets_to_their_own_rules() {
    let mut db = fresh_db();
    let ann = create_user(&mut db, "ann@example.com");
    db.batch_execute(
        "insert into storage.buckets (id, name) values ('public-assets', 'public-assets')",
    )
    .unwrap();
    let mut tx = as_caller(&mut db, &Caller::User(&ann));
    // No policy of this migration grants anything outside `avatars`.
    assert_eq!(
        sqlstate(tx.execute(
            "insert into storage.objects (bucket_id, name) values ('public-assets', $1)",
            &[&format!("{ann}/a.png")]
        )),
        "42501"
    );
}
