//! Constraints the API maps to statuses: 23505 unique violation (409), 23503 foreign key
//! violation (422 `invalid_reference`), 23514 check violation (400).

use super::cluster::fresh_db;
use super::support::{as_caller, create_category, create_item, create_user, sqlstate, Caller};

#[test]
fn duplicate_category_slug_raises_unique_violation() {
    let mut db = fresh_db();
    create_category(&mut db, "Kitchen", "kitchen");
    let result = db.execute(
        "insert into public.categories (name, slug) values ('Kitchen 2', 'kitchen')",
        &[],
    );
    assert_eq!(sqlstate(result), "23505");
}

#[test]
fn duplicate_username_raises_unique_violation() {
    let mut db = fresh_db();
    let first = create_user(&mut db, "first@example.com");
    let second = create_user(&mut db, "second@example.com");
    db.execute(
        "update public.profiles set username = 'ada' where id = $1::text::uuid",
        &[&first],
    )
    .expect("first takes the name");

    let mut tx = as_caller(&mut db, &Caller::User(&second));
    let result = tx.execute(
        "update public.profiles set username = 'ada' where id = $1::text::uuid",
        &[&second],
    );
    assert_eq!(sqlstate(result), "23505");
}

#[test]
fn unknown_category_raises_foreign_key_violation() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    let mut tx = as_caller(&mut db, &Caller::User(&user));
    let result = tx.execute(
        "insert into public.items (name, price, category_id) values ('Mug', 1, gen_random_uuid())",
        &[],
    );
    assert_eq!(sqlstate(result), "23503");
}

#[test]
fn deleting_a_category_leaves_its_items_uncategorised() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    let category = create_category(&mut db, "Kitchen", "kitchen");
    let item = create_item(&mut db, &user, "Mug", "1");
    db.execute(
        "update public.items set category_id = $1::text::uuid where id = $2::text::uuid",
        &[&category, &item],
    )
    .expect("categorise");
    db.execute("delete from public.categories", &[])
        .expect("delete category");
    let category_id: Option<String> = db
        .query_one("select category_id::text from public.items", &[])
        .expect("item survives")
        .get(0);
    assert_eq!(category_id, None);
}

#[test]
fn item_rules_raise_check_violations() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    let long_name = "n".repeat(101);
    let long_description = "d".repeat(2001);
    let cases: [(&str, &str, Option<&str>); 6] = [
        ("Mug", "0", None),
        ("Mug", "-1", None),
        ("Mug", "1000000.01", None),
        ("", "1", None),
        (&long_name, "1", None),
        ("Mug", "1", Some(&long_description)),
    ];
    for (name, price, description) in cases {
        let mut tx = as_caller(&mut db, &Caller::User(&user));
        let result = tx.execute(
            "insert into public.items (name, price, description) values ($1, $2::text::numeric, $3)",
            &[&name, &price, &description],
        );
        assert_eq!(
            sqlstate(result),
            "23514",
            "name {} chars, price {price}, description {:?} chars",
            name.len(),
            description.map(str::len)
        );
    }
}

#[test]
fn item_limits_themselves_are_accepted() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    let name = "n".repeat(100);
    let description = "d".repeat(2000);
    let mut tx = as_caller(&mut db, &Caller::User(&user));
    for price in ["0.01", "1000000"] {
        tx.execute(
            "insert into public.items (name, price, description) values ($1, $2::text::numeric, $3)",
            &[&name, &price, &description],
        )
        .unwrap_or_else(|e| panic!("price {price}: {e}"));
    }
}

#[test]
fn malformed_username_raises_check_violation() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    for username in ["ab", "Ada", "ada-l", "ada lovelace", &"a".repeat(31)] {
        let mut tx = as_caller(&mut db, &Caller::User(&user));
        let result = tx.execute(
            "update public.profiles set username = $1 where id = $2::text::uuid",
            &[&username, &user],
        );
        assert_eq!(sqlstate(result), "23514", "{username:?}");
    }
}

#[test]
fn malformed_slug_raises_check_violation() {
    let mut db = fresh_db();
    for slug in ["Kitchen", "kitchen tools", "-kitchen", "kitchen--tools"] {
        let result = db.execute(
            "insert into public.categories (name, slug) values ('Kitchen', $1)",
            &[&slug],
        );
        assert_eq!(sqlstate(result), "23514", "{slug:?}");
    }
}

#[test]
fn non_https_avatar_url_raises_check_violation() {
    let mut db = fresh_db();
    let user = create_user(&mut db, "user@example.com");
    let mut tx = as_caller(&mut db, &Caller::User(&user));
    let result = tx.execute(
        "update public.profiles set avatar_url = 'http://example.com/a.png' where id = $1::text::uuid",
        &[&user],
    );
    assert_eq!(sqlstate(result), "23514");
}
