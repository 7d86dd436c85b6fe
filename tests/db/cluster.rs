//! A throwaway PostgreSQL cluster for the database tests: one per test process, started on first
//! use, with the Supabase baseline and `supabase/migrations` applied once to a template database
//! that every test clones (`CREATE DATABASE ... TEMPLATE`), so a test never sees another's rows.
//!
//! Lifetime: the cluster lives in a `static`, which Rust never drops, so shutdown does not rely on
//! `Drop`. `postgres` runs under a small shell watchdog whose stdin is a pipe held by this process;
//! when the process ends, however it ends (normal exit, panic, SIGKILL), the pipe closes and the
//! watchdog stops `postgres` and deletes the data directory. On a normal exit an `atexit` hook
//! also closes the pipe and waits for the watchdog, so nothing is left running once the test
//! binary has returned. This works the same under `cargo test` (one process, many threads) and
//! `cargo nextest run` (one process per test: initdb + start take well under a second).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use postgres::{Client, Config, NoTls};

/// Name of the database holding baseline + migrations, cloned by every test.
const TEMPLATE_DB: &str = "supagate_template";
/// The socket file name is derived from the port; the socket lives in our private temp dir.
const PORT: u16 = 5432;
/// Unprivileged account used when the tests run as root (initdb and postgres refuse root).
const PG_USER: &str = "postgres";

/// Kills postgres and removes the temp dir when our end of its stdin closes. `postgres` runs in
/// the background (stdin from /dev/null), `cat` blocks until EOF on the pipe.
const WATCHDOG: &str = r#"
"$1" -D "$2" -k "$3" -p "$4" \
  -c listen_addresses= -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
  -c max_connections=200 -c shared_buffers=64MB >"$3/postgres.log" 2>&1 &
pg=$!
cat >/dev/null
kill -QUIT "$pg" 2>/dev/null
wait "$pg"
rm -rf "$3"
"#;

pub struct Cluster {
    socket_dir: PathBuf,
    next_db: AtomicUsize,
    watchdog: Mutex<Option<Watchdog>>,
}

struct Watchdog {
    child: Child,
    stdin: ChildStdin,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The process-wide cluster, started (and migrated) on first call.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(Cluster::start)
}

/// A fresh database cloned from the migrated template, with a superuser connection to it.
pub fn fresh_db() -> Client {
    let cluster = cluster();
    let name = cluster.clone_template(TEMPLATE_DB);
    cluster.connect(&name)
}

impl Cluster {
    fn start() -> Cluster {
        let bin = postgres_bin_dir();
        let run_as = if is_root() {
            Some(ensure_pg_user())
        } else {
            None
        };

        // /tmp is traversable by the unprivileged user even when $TMPDIR is root's own.
        let base = if run_as.is_some() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("supagate-pg-")
            .tempdir_in(base)
            .expect("create temp dir for the cluster")
            // Removed by the watchdog, which outlives this process by a few milliseconds.
            .keep();
        if let Some(user) = &run_as {
            run(Command::new("chown").arg(format!("{user}:")).arg(&dir));
        }
        let data = dir.join("data");

        let mut initdb = command(run_as.as_deref(), &bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            // A UTF-8 collation like hosted Supabase: LIKE prefixes then need text_pattern_ops,
            // exactly as in production.
            .arg("--locale=C.UTF-8");
        if !initdb.output().map(|o| o.status.success()).unwrap_or(false) {
            let _ = fs::remove_dir_all(&data);
            let mut fallback = command(run_as.as_deref(), &bin.join("initdb"));
            fallback.arg("-D").arg(&data).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ]);
            run(&mut fallback);
        }

        let mut sh = command(run_as.as_deref(), Path::new("sh"));
        sh.args(["-c", WATCHDOG, "watchdog"])
            .arg(bin.join("postgres"))
            .arg(&data)
            .arg(&dir)
            .arg(PORT.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = sh.spawn().expect("spawn postgres watchdog");
        let stdin = child.stdin.take().expect("watchdog stdin is piped");

        let cluster = Cluster {
            socket_dir: dir.clone(),
            next_db: AtomicUsize::new(0),
            watchdog: Mutex::new(Some(Watchdog { child, stdin })),
        };
        register_atexit();
        cluster.wait_until_ready();
        cluster.build_template();
        cluster
    }

    /// Superuser connection to `dbname` over the private unix socket.
    pub fn connect(&self, dbname: &str) -> Client {
        self.config(dbname)
            .connect(NoTls)
            .unwrap_or_else(|e| panic!("connect to {dbname}: {e}"))
    }

    /// Creates a new database from `template` and returns its name.
    pub fn clone_template(&self, template: &str) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("test_{n}");
        self.connect("postgres")
            .batch_execute(&format!("create database {name} template {template}"))
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        name
    }

    fn config(&self, dbname: &str) -> Config {
        let mut config = Config::new();
        config
            .host_path(&self.socket_dir)
            .port(PORT)
            .user("postgres")
            .dbname(dbname)
            .connect_timeout(Duration::from_secs(5));
        config
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.config("postgres").connect(NoTls) {
                Ok(_) => return,
                Err(e) if Instant::now() > deadline => {
                    panic!("postgres did not start: {e}\n{}", self.log())
                }
                Err(_) => {}
            }
            let exited = self
                .watchdog
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
                .map_or(true, |w| w.child.try_wait().ok().flatten().is_some());
            if exited {
                panic!("postgres exited during start-up\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        let mut log = String::new();
        let _ = fs::File::open(self.socket_dir.join("postgres.log"))
            .and_then(|mut f| f.read_to_string(&mut log));
        log
    }

    /// Baseline, then every migration file in name order, each sent exactly as written.
    fn build_template(&self) {
        self.connect("postgres")
            .batch_execute(&format!("create database {TEMPLATE_DB}"))
            .expect("create template database");
        let mut db = self.connect(TEMPLATE_DB);
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("tests/db/supabase_baseline.sql")];
        files.extend(migration_files(&root.join("supabase/migrations")));
        for file in files {
            let sql = fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
            db.batch_execute(&sql)
                .unwrap_or_else(|e| panic!("apply {}: {}", file.display(), describe(&e)));
        }
        // The template must have no open connection when it is cloned.
    }

    fn stop(&self) {
        let watchdog = self
            .watchdog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(Watchdog { mut child, stdin }) = watchdog {
            drop(stdin); // EOF: the watchdog stops postgres and removes the temp dir
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if !matches!(child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// `supabase/migrations/*.sql` sorted by file name, which starts with the timestamp.
pub fn migration_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("read migrations entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    files.sort();
    files
}

/// A database error with its SQLSTATE, message and detail, for failing migrations.
pub fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{} {} {}",
            db.code().code(),
            db.message(),
            db.detail().unwrap_or_default()
        ),
        None => e.to_string(),
    }
}

extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
    fn geteuid() -> u32;
}

extern "C" fn stop_cluster_at_exit() {
    if let Some(cluster) = CLUSTER.get() {
        cluster.stop();
    }
}

fn register_atexit() {
    // SAFETY: registers a plain `extern "C"` function with libc; it only touches a `static`.
    let rc = unsafe { atexit(stop_cluster_at_exit) };
    // Without the hook the watchdog still cleans up, just after the process is gone.
    debug_assert_eq!(rc, 0, "atexit registration failed");
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { geteuid() == 0 }
}

/// The unprivileged account postgres runs as when we are root, created if missing.
fn ensure_pg_user() -> String {
    let exists = Command::new("id")
        .args(["-u", PG_USER])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        run(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            PG_USER,
        ]));
    }
    PG_USER.to_owned()
}

/// `program` directly, or through `runuser -u <user> --` when we must drop root.
fn command(run_as: Option<&str>, program: &Path) -> Command {
    match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Directory holding initdb and postgres: from PATH, else the newest Debian/Ubuntu install.
fn postgres_bin_dir() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
    });
    if let Some(dir) = on_path {
        // Resolve symlinks such as /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb so
        // `postgres` is taken from the same installation.
        return fs::canonicalize(dir.join("initdb"))
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or(dir);
    }
    let mut installs: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    installs.sort();
    installs.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!("no PostgreSQL found: put initdb on PATH or `apt-get install -y postgresql`")
    })
}
