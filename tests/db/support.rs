//! Test vocabulary shared by the database tests: callers as PostgREST would present them, users
//! created the way Supabase Auth creates them, and SQLSTATE extraction for assertions.
//!
//! Ids travel as text (`$1::text::uuid`) because the `postgres` crate is used without its uuid
//! feature; a bare `$1::uuid` would make the server type the parameter as uuid and reject `&str`.

use postgres::{Client, Transaction};
use serde_json::{json, Value};

/// Who a request runs as, i.e. the JWT PostgREST would have verified.
pub enum Caller<'a> {
    Anon,
    User(&'a str),
    /// A signed-in user whose server-controlled `app_metadata.role` is `admin`.
    Admin(&'a str),
    /// A user who put `role: admin` into their own, user-editable `user_metadata`.
    UserClaimingAdminInMetadata(&'a str),
    /// An anonymous sign-in: role `authenticated`, `is_anonymous: true`.
    AnonymousUser(&'a str),
    Service,
}

impl Caller<'_> {
    fn role(&self) -> &'static str {
        match self {
            Caller::Anon => "anon",
            Caller::Service => "service_role",
            _ => "authenticated",
        }
    }

    fn claims(&self) -> Value {
        let user = |sub: &str, app: Value, meta: Value| {
            json!({
                "sub": sub, "role": "authenticated", "aud": "authenticated",
                "app_metadata": app, "user_metadata": meta,
            })
        };
        match self {
            Caller::Anon => json!({"role": "anon"}),
            Caller::Service => json!({"role": "service_role"}),
            Caller::User(sub) => user(sub, json!({"provider": "email"}), json!({})),
            Caller::Admin(sub) => user(
                sub,
                json!({"provider": "email", "role": "admin"}),
                json!({}),
            ),
            Caller::UserClaimingAdminInMetadata(sub) => {
                user(sub, json!({"provider": "email"}), json!({"role": "admin"}))
            }
            Caller::AnonymousUser(sub) => {
                let mut claims = user(sub, json!({"provider": "anonymous"}), json!({}));
                claims["is_anonymous"] = json!(true);
                claims
            }
        }
    }
}

/// Opens a transaction the way PostgREST runs a request: `SET LOCAL ROLE` to the JWT's role and
/// the verified claims in the transaction-local `request.jwt.claims` setting.
pub fn as_caller<'c>(client: &'c mut Client, caller: &Caller) -> Transaction<'c> {
    let mut tx = client.transaction().expect("begin");
    tx.batch_execute(&format!("set local role {}", caller.role()))
        .expect("set local role");
    tx.execute(
        "select set_config('request.jwt.claims', $1, true)",
        &[&caller.claims().to_string()],
    )
    .expect("set request.jwt.claims");
    tx
}

/// Inserts an auth user as Supabase Auth would (firing the profile trigger); returns its id.
pub fn create_user(db: &mut Client, email: &str) -> String {
    db.query_one(
        "insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, \
                                 created_at, updated_at) \
         values (gen_random_uuid(), 'authenticated', 'authenticated', $1, \
                 '{\"provider\":\"email\"}', '{}', now(), now()) \
         returning id::text",
        &[&email],
    )
    .expect("insert auth user")
    .get(0)
}

/// Inserts an anonymous auth user as Auth's anonymous sign-up does; returns its id.
pub fn create_anonymous_user(db: &mut Client) -> String {
    db.query_one(
        "insert into auth.users (id, aud, role, raw_app_meta_data, raw_user_meta_data, \
                                 is_anonymous, created_at, updated_at) \
         values (gen_random_uuid(), 'authenticated', 'authenticated', \
                 '{\"provider\":\"anonymous\"}', '{}', true, now(), now()) \
         returning id::text",
        &[],
    )
    .expect("insert anonymous auth user")
    .get(0)
}

/// Inserts a category as the database owner; returns its id.
pub fn create_category(db: &mut Client, name: &str, slug: &str) -> String {
    db.query_one(
        "insert into public.categories (name, slug) values ($1, $2) returning id::text",
        &[&name, &slug],
    )
    .expect("insert category")
    .get(0)
}

/// Inserts an item owned by `user_id` as the database owner; returns its id.
pub fn create_item(db: &mut Client, user_id: &str, name: &str, price: &str) -> String {
    db.query_one(
        "insert into public.items (name, price, user_id) \
         values ($1, $2::text::numeric, $3::text::uuid) returning id::text",
        &[&name, &price, &user_id],
    )
    .expect("insert item")
    .get(0)
}

/// The SQLSTATE of a failed statement, e.g. `"42501"`; panics if it succeeded.
pub fn sqlstate<T: std::fmt::Debug>(result: Result<T, postgres::Error>) -> String {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(e) => e
            .code()
            .unwrap_or_else(|| panic!("not a database error: {e}"))
            .code()
            .to_owned(),
    }
}

/// Number of rows a query returns.
pub fn count(tx: &mut Transaction<'_>, sql: &str) -> i64 {
    tx.query_one(&format!("select count(*) from ({sql}) as q"), &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}
