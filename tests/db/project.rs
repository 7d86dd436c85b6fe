//! The `supabase/` directory as the Supabase CLI reads it: config.toml and seed.sql.

use figment::providers::{Format, Toml};
use figment::Figment;
use serde_json::Value;

use super::cluster::fresh_db;
use super::support::{as_caller, count, Caller};

fn supabase_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("supabase")
}

#[test]
fn config_exposes_public_and_queue_schemas_on_port_54321() {
    let config: Value = Figment::from(Toml::file(supabase_dir().join("config.toml")))
        .extract()
        .expect("config.toml parses");
    assert_eq!(config["project_id"], "supagate");
    assert_eq!(config["api"]["port"], 54321);
    assert_eq!(
        config["api"]["schemas"],
        serde_json::json!(["public", "pgmq_public"])
    );
    assert_eq!(config["auth"]["site_url"], "http://localhost:3000");
    assert_eq!(config["db"]["major_version"], 15);
}

#[test]
fn seed_loads_and_its_catalog_is_visible_to_anon() {
    let mut db = fresh_db();
    let seed = std::fs::read_to_string(supabase_dir().join("seed.sql")).expect("read seed.sql");
    db.batch_execute(&seed)
        .unwrap_or_else(|e| panic!("seed.sql: {}", super::cluster::describe(&e)));

    let mut tx = as_caller(&mut db, &Caller::Anon);
    assert!(count(&mut tx, "select * from public.categories") >= 3);
    assert!(count(&mut tx, "select * from public.items") >= 5);
    drop(tx);
    let demo_profiles: i64 = db
        .query_one(
            "select count(*) from public.profiles where username is not null",
            &[],
        )
        .expect("profiles")
        .get(0);
    assert!(demo_profiles >= 1, "the demo user's profile has a username");
}
