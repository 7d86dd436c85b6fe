//! Index coverage: with ~100k items and 20k profiles loaded and analysed, every list query that
//! docs/api.md's endpoints can produce is planned with an index, never a sequential scan of `items`.
//! Plans are printed (`cargo test --test db indexes -- --nocapture`) so they can be quoted.
//!
//! Queries are written as PostgREST runs them for the gateway: the request's role and claims,
//! the filter, the order with `id` as tiebreak, the to-one `category` embed as a lateral join,
//! and `LIMIT 20`.

use std::sync::OnceLock;

use postgres::Client;

use super::cluster::{cluster, describe};
use super::support::{as_caller, Caller};

const ITEMS: i64 = 100_000;
const USERS: i64 = 20_000;

/// One loaded database per process, cloned from the migrated template and only read afterwards.
fn loaded_db() -> Client {
    static LOADED: OnceLock<String> = OnceLock::new();
    let name = LOADED.get_or_init(|| {
        let cluster = cluster();
        let name = cluster.clone_template("supagate_template");
        let mut db = cluster.connect(&name);
        db.batch_execute(&format!(
            "select setseed(0.42);
             insert into auth.users (id, email, raw_user_meta_data, created_at)
               select gen_random_uuid(), 'user' || n || '@example.com', '{{}}',
                      now() - n * interval '1 minute'
                 from generate_series(1, {USERS}) as n;
             update public.profiles p
                set username = 'user_' || u.n
               from (select id, row_number() over (order by created_at) as n from auth.users) u
              where u.id = p.id;
             insert into public.categories (name, slug)
               select 'Category ' || n, 'category-' || n from generate_series(1, 20) as n;
             insert into public.items (name, price, category_id, user_id, created_at)
               select 'Product ' || substr(md5(i::text), 1, 12),
                      round((1 + random() * 999)::numeric, 2),
                      case when i % 10 = 0 then null else c.ids[1 + i % 20] end,
                      u.ids[1 + i % {USERS}],
                      now() - i * interval '5 minutes'
                 from generate_series(1, {ITEMS}) as i,
                      (select array_agg(id order by slug) as ids from public.categories) c,
                      (select array_agg(id order by email) as ids from auth.users) u;
             -- ANALYZE samples 300 x target rows; at 10 000 that is the whole table, so the
             -- `name` statistics (and the plans that depend on them) are the same every run
             -- instead of varying with a random sample.
             alter table public.items alter column name set statistics 10000;
             analyze;"
        ))
        .unwrap_or_else(|e| panic!("load data: {}", describe(&e)));
        name
    });
    cluster().connect(name)
}

/// `EXPLAIN (COSTS OFF)` of `sql` run as `caller`, one plan line per entry.
fn plan(db: &mut Client, caller: &Caller, sql: &str) -> Vec<String> {
    let mut tx = as_caller(db, caller);
    tx.query(&format!("explain (costs off) {sql}"), &[])
        .unwrap_or_else(|e| panic!("explain {sql}: {}", describe(&e)))
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// The items list query PostgREST builds for `GET /items?select=*,category:categories(id,name)`.
fn items_query(filter: &str, order: &str, offset: u32) -> String {
    format!(
        "select items.*, to_jsonb(category.*) as category
           from public.items
           left join lateral (
             select c.id, c.name from public.categories c where c.id = items.category_id
           ) as category on true
          where {filter}
          order by {order}
          limit 20 offset {offset}"
    )
}

fn first_id(db: &mut Client, sql: &str) -> String {
    db.query_one(sql, &[]).expect(sql).get(0)
}

#[test]
fn every_items_list_query_uses_an_index() {
    let mut db = loaded_db();
    let category = first_id(
        &mut db,
        "select id::text from public.categories order by slug limit 1",
    );
    let user = first_id(
        &mut db,
        "select id::text from auth.users order by email limit 1",
    );

    let by_category = format!("items.category_id = '{category}'");
    let by_user = format!("items.user_id = '{user}'");
    let mine = "items.user_id = (select auth.uid())".to_owned();
    let cases: Vec<(&str, Caller, String, &str, u32)> = vec![
        (
            "default order (created_at.desc)",
            Caller::Anon,
            "true".into(),
            "created_at desc, id desc",
            0,
        ),
        (
            "order=created_at.asc",
            Caller::Anon,
            "true".into(),
            "created_at asc, id asc",
            0,
        ),
        (
            "order=created_at.desc, mixed id tiebreak",
            Caller::Anon,
            "true".into(),
            "created_at desc, id asc",
            0,
        ),
        (
            "default order, offset=10000",
            Caller::Anon,
            "true".into(),
            "created_at desc, id desc",
            10_000,
        ),
        (
            "order=price.asc",
            Caller::Anon,
            "true".into(),
            "price asc, id asc",
            0,
        ),
        (
            "order=price.desc",
            Caller::Anon,
            "true".into(),
            "price desc, id desc",
            0,
        ),
        (
            "order=name.asc",
            Caller::Anon,
            "true".into(),
            "name asc, id asc",
            0,
        ),
        (
            "order=name.desc",
            Caller::Anon,
            "true".into(),
            "name desc, id desc",
            0,
        ),
        (
            "category_id=",
            Caller::Anon,
            by_category.clone(),
            "created_at desc, id desc",
            0,
        ),
        (
            "category_id= & order=price.asc",
            Caller::Anon,
            by_category,
            "price asc, id asc",
            0,
        ),
        (
            "user_id=",
            Caller::Anon,
            by_user,
            "created_at desc, id desc",
            0,
        ),
        (
            "mine=true",
            Caller::User(&user),
            mine,
            "created_at desc, id desc",
            0,
        ),
        (
            "min_price=100&max_price=110",
            Caller::Anon,
            "items.price >= 100 and items.price <= 110".into(),
            "created_at desc, id desc",
            0,
        ),
        (
            "min_price=990 & order=price.asc",
            Caller::Anon,
            "items.price >= 990".into(),
            "price asc, id asc",
            0,
        ),
        (
            "max_price=5 & order=price.desc",
            Caller::Anon,
            "items.price <= 5".into(),
            "price desc, id desc",
            0,
        ),
        (
            "q=3f9a",
            Caller::Anon,
            "items.name ilike '%3f9a%'".into(),
            "created_at desc, id desc",
            0,
        ),
        (
            "q=3f9a & order=name.asc",
            Caller::Anon,
            "items.name ilike '%3f9a%'".into(),
            "name asc, id asc",
            0,
        ),
        (
            "q=product (matches all)",
            Caller::Anon,
            "items.name ilike '%product%'".into(),
            "created_at desc, id desc",
            0,
        ),
    ];

    let mut seq_scans = Vec::new();
    for (label, caller, filter, order, offset) in &cases {
        let lines = plan(&mut db, caller, &items_query(filter, order, *offset));
        println!("-- GET /api/items {label}\n{}\n", lines.join("\n"));
        let text = lines.join("\n");
        if text.contains("Seq Scan on items") || !text.contains("on items") {
            seq_scans.push(*label);
        }
    }
    assert!(
        seq_scans.is_empty(),
        "not served by an index: {seq_scans:?}"
    );
}

#[test]
fn rare_substring_search_uses_the_trigram_index_when_statistics_are_visible() {
    // Under RLS (anon, authenticated) PostgreSQL hides column statistics from operators that are
    // not leakproof, ILIKE included, so `q` is planned on default selectivities (see the plans
    // above and supabase/README.md). With statistics visible (the service role bypasses RLS) a
    // rare substring is found through items_name_trgm_idx, proving the index serves ILIKE '%x%'.
    let mut db = loaded_db();
    let lines = plan(
        &mut db,
        &Caller::Service,
        &items_query("items.name ilike '%3f9a%'", "created_at desc, id desc", 0),
    );
    println!(
        "-- GET /api/items q=3f9a, statistics visible\n{}\n",
        lines.join("\n")
    );
    let text = lines.join("\n");
    assert!(text.contains("items_name_trgm_idx"), "{text}");
}

#[test]
fn user_stats_aggregate_uses_the_owner_index() {
    let mut db = loaded_db();
    let user = first_id(
        &mut db,
        "select id::text from auth.users order by email limit 1",
    );
    // The statement inside get_user_stats, which EXPLAIN cannot see through the function call.
    let lines = plan(
        &mut db,
        &Caller::User(&user),
        &format!(
            "select count(*), coalesce(sum(i.price), 0), round(avg(i.price), 2), max(i.created_at)
               from public.items i where i.user_id = '{user}'"
        ),
    );
    println!("-- get_user_stats aggregate\n{}\n", lines.join("\n"));
    let text = lines.join("\n");
    assert!(!text.contains("Seq Scan on items"), "{text}");
    assert!(text.contains("items_user_id_created_at_id_idx"), "{text}");
}

#[test]
fn profile_username_prefix_search_uses_an_index() {
    let mut db = loaded_db();
    let user = first_id(
        &mut db,
        "select id::text from auth.users order by email limit 1",
    );
    // `_` is a LIKE wildcard, so the gateway escapes it; the prefix stays index-usable.
    let cases = [
        (
            "GET /api/users?q=user_123",
            "where username like 'user\\_123%'",
        ),
        ("GET /api/users (no q)", ""),
    ];
    let mut seq_scans = Vec::new();
    for (label, filter) in cases {
        let sql = format!(
            "select * from public.profiles {filter} order by username nulls last, id limit 20"
        );
        let lines = plan(&mut db, &Caller::User(&user), &sql);
        println!("-- {label}\n{}\n", lines.join("\n"));
        if lines.join("\n").contains("Seq Scan on profiles") {
            seq_scans.push(label);
        }
    }
    assert!(
        seq_scans.is_empty(),
        "not served by an index: {seq_scans:?}"
    );
}
