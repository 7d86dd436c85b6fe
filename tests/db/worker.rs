//! `supagate worker`, the real binary, against the real pgmq: a small PostgREST stand-in turns
//! its RPC calls and its `payments` insert into SQL run as `service_role` (the role and claims
//! replayed as in `support::as_caller`). Killed with SIGKILL mid-job, the worker leaves the
//! message in the queue; it reappears after its visibility timeout, a second worker applies it,
//! and the payment exists once.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::cluster::cluster;
use super::support::create_user;

/// Seconds a read message stays invisible; short so the test waits little.
const VT_SECS: u64 = 2;

/// A SQL literal PostgreSQL types from the function's signature (`'42'` for an integer too).
fn literal(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    format!("'{}'", text.replace('\'', "''"))
}

/// Runs one PostgREST call on `dbname` as service_role; returns (status, JSON body).
fn postgrest(dbname: &str, req: &Request) -> (u16, String) {
    let mut db = cluster().connect(dbname);
    let mut tx = db.transaction().expect("begin");
    tx.batch_execute(
        "set local role service_role; \
         select set_config('request.jwt.claims', '{\"role\":\"service_role\"}', true);",
    )
    .expect("role");
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let path = req.url.path();
    let result = if path == "/rest/v1/payments" {
        tx.execute(
            "insert into public.payments (id, stripe_customer_id, amount, currency, status) \
             select id, stripe_customer_id, amount, currency, status \
             from json_populate_record(null::public.payments, $1::text::json) \
             on conflict (id) do nothing",
            &[&body.to_string()],
        )
        .map(|_| (201, String::new()))
    } else if let Some(function) = path.strip_prefix("/rest/v1/rpc/") {
        let schema = req
            .headers
            .get("content-profile")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("public")
            .to_owned();
        let setof: bool = tx
            .query_one(
                "select p.proretset from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
                 where n.nspname = $1 and p.proname = $2 limit 1",
                &[&schema, &function],
            )
            .expect("function exists")
            .get(0);
        let args: Vec<String> = body
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k} => {}", literal(v)))
            .collect();
        let call = format!("{schema}.{function}({})", args.join(", "));
        let sql = if setof {
            format!("select coalesce(json_agg(r), '[]')::text from {call} as r")
        } else {
            format!("select to_json({call})::text")
        };
        tx.query_one(&sql, &[])
            .map(|row| (200, row.get::<_, String>(0)))
    } else {
        return (404, String::new());
    };
    match result {
        Ok(answer) => {
            tx.commit().expect("commit");
            answer
        }
        Err(e) => (
            400,
            serde_json::json!({"code": e.code().map(|c| c.code()), "message": e.to_string()})
                .to_string(),
        ),
    }
}

/// The stand-in. The first `payments` insert commits and then holds its answer, so the
/// worker is mid-job (effect applied, message not yet archived) when `applied` fires.
async fn stand_in(dbname: String, applied: mpsc::Sender<()>) -> (MockServer, Arc<Mutex<usize>>) {
    let server = MockServer::start().await;
    let inserts = Arc::new(Mutex::new(0usize));
    let applied = Mutex::new(applied);
    let counter = Arc::clone(&inserts);
    Mock::given(method("POST"))
        .respond_with(move |req: &Request| {
            let is_payment = req.url.path() == "/rest/v1/payments";
            let (dbname, req) = (dbname.clone(), req.clone());
            // The sync client must not run on the server's async threads.
            let (status, body) = std::thread::spawn(move || postgrest(&dbname, &req))
                .join()
                .expect("stand-in thread");
            let mut answer = ResponseTemplate::new(status)
                .insert_header("content-type", "application/json")
                .set_body_string(body);
            if is_payment {
                let mut n = counter.lock().unwrap();
                *n += 1;
                if *n == 1 {
                    let _ = applied.lock().unwrap().send(());
                    answer = answer.set_delay(Duration::from_secs(60));
                }
            }
            answer
        })
        .mount(&server)
        .await;
    (server, inserts)
}

fn spawn_worker(upstream: &str) -> Child {
    let root = env!("CARGO_MANIFEST_DIR");
    Command::new(env!("CARGO_BIN_EXE_supagate"))
        .arg("worker")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("APP_ENV", "test")
        .env("SUPAGATE_CONFIG_DIR", format!("{root}/config"))
        .env("SUPABASE_URL", upstream)
        .env("SUPABASE_ANON_KEY", "test-anon-key")
        .env("SUPABASE_SERVICE_ROLE_KEY", "test-service-role-key")
        .env("SUPAGATE_WORKER__POLL_INTERVAL_MS", "50")
        .env(
            "SUPAGATE_WORKER__QUEUES__STRIPE_EVENTS__VISIBILITY_TIMEOUT_SECS",
            VT_SECS.to_string(),
        )
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn supagate worker")
}

fn payment_event() -> (String, Value) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/stripe.json");
    let fixtures: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let payload = fixtures["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "payment_intent_succeeded")
        .unwrap()["payload"]
        .as_str()
        .unwrap()
        .to_owned();
    let event: Value = serde_json::from_str(&payload).unwrap();
    (payload, event)
}

#[test]
fn worker_killed_mid_job_leaves_the_message_which_reappears_and_applies_once() {
    let cluster = cluster();
    let dbname = cluster.clone_template("supagate_template");
    let mut db = cluster.connect(&dbname);
    let (payload, event) = payment_event();
    let customer = event["data"]["object"]["customer"]
        .as_str()
        .unwrap()
        .to_owned();
    let user = create_user(&mut db, "payer@example.com");
    db.execute(
        "select public.link_stripe_customer($1::text::uuid, $2)",
        &[&user, &customer],
    )
    .unwrap();
    // What the webhook does in queue mode.
    let queued: bool = db
        .query_one(
            "select public.enqueue_stripe_event($1, $2, $3::text::jsonb)",
            &[
                &event["id"].as_str().unwrap(),
                &"payment_intent.succeeded",
                &payload,
            ],
        )
        .unwrap()
        .get(0);
    assert!(queued);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (applied_tx, applied_rx) = mpsc::channel();
    let (server, inserts) = runtime.block_on(stand_in(dbname.clone(), applied_tx));

    let mut first = spawn_worker(&server.uri());
    applied_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the first worker reached the payment insert");
    first.kill().expect("SIGKILL"); // Child::kill is SIGKILL on Unix
    first.wait().unwrap();
    let killed_at = Instant::now();

    // Still queued, read once, invisible until its timeout.
    let row = db
        .query_one(
            "select read_ct, vt > clock_timestamp() from pgmq.q_stripe_events",
            &[],
        )
        .expect("the message is still in the queue");
    assert_eq!(row.get::<_, i32>(0), 1);
    assert!(
        row.get::<_, bool>(1),
        "invisible until its visibility timeout"
    );

    let mut second = spawn_worker(&server.uri());
    let deadline = Instant::now() + Duration::from_secs(20);
    let archived = loop {
        let rows = db
            .query("select read_ct from pgmq.a_stripe_events", &[])
            .unwrap();
        if let Some(row) = rows.first() {
            break row.get::<_, i32>(0);
        }
        assert!(
            Instant::now() < deadline,
            "the message was never processed again"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let waited = killed_at.elapsed();
    second.kill().unwrap();
    second.wait().unwrap();

    assert_eq!(archived, 2, "read a second time, then archived");
    assert!(
        waited >= Duration::from_millis(VT_SECS * 1000 - 500),
        "reappeared only after its timeout ({waited:?})"
    );
    assert_eq!(*inserts.lock().unwrap(), 2, "the effect ran twice ...");
    let payments = db
        .query("select user_id::text from public.payments", &[])
        .unwrap();
    assert_eq!(payments.len(), 1, "... and exists once");
    assert_eq!(payments[0].get::<_, Option<String>>(0), Some(user));
    let left: i64 = db
        .query_one("select count(*) from pgmq.q_stripe_events", &[])
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    drop(server);
}
