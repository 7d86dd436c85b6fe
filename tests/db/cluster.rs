//! A throwaway PostgreSQL cluster for the database tests: one per test process, started on first
//! use, with the Supabase baseline and `supabase/migrations` applied once to a template database
//! that every test clones (`CREATE DATABASE ... TEMPLATE`), so a test never sees another's rows.
//!
//! Speed: `cargo test` runs every test in one process, so one cluster serves them all. `cargo
//! nextest run` starts one process per test; there, the first process also saves its migrated,
//! cleanly stopped data directory under `CARGO_TARGET_TMPDIR` (keyed by a hash of the baseline
//! and migrations), and later processes copy it instead of running initdb and the migrations.
//!
//! Lifetime: the cluster lives in a `static`, which Rust never drops, so shutdown does not rely on
//! `Drop`. `postgres` runs under a small shell watchdog whose stdin is a pipe held by this process;
//! when the process ends, however it ends (normal exit, panic, SIGKILL), the pipe closes and the
//! watchdog stops `postgres` and deletes the temp dir. On a normal exit an `atexit` hook also
//! closes the pipe and waits for the watchdog, so nothing is left running once the binary returns.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Write};
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
/// Name prefix of the migrated data directory cached in `CARGO_TARGET_TMPDIR`.
const CACHE_PREFIX: &str = "supagate-pg-template-";
/// Unprivileged account used when the tests run as root (initdb and postgres refuse root).
const PG_USER: &str = "postgres";

/// Runs postgres in the background (stdin from /dev/null) and waits on its own stdin, a pipe
/// held by the test process. EOF (the process exited, however it exited): immediate shutdown and
/// the temp dir is deleted. A `keep` line: clean shutdown, data kept (to publish the template).
const WATCHDOG: &str = r#"
"$1" -D "$2" -k "$3" -p "$4" \
  -c listen_addresses= -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
  -c max_connections=200 -c shared_buffers=64MB >>"$3/postgres.log" 2>&1 &
pg=$!
if read -r line && [ "$line" = keep ]; then
  kill -INT "$pg" 2>/dev/null
  wait "$pg"
else
  kill -QUIT "$pg" 2>/dev/null
  wait "$pg"
  rm -rf "$3"
fi
"#;

pub struct Cluster {
    /// Private temp dir: holds `data/`, the socket and `postgres.log`.
    socket_dir: PathBuf,
    bin: PathBuf,
    run_as: Option<String>,
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

/// The name of a fresh database, for tests that open several connections (concurrency).
pub fn fresh_db_name() -> String {
    cluster().clone_template(TEMPLATE_DB)
}

impl Cluster {
    fn start() -> Cluster {
        let bin = postgres_bin_dir();
        let run_as = if is_root() {
            Some(ensure_pg_user())
        } else {
            None
        };

        let dir = tempfile::Builder::new()
            .prefix("supagate-pg-")
            .tempdir_in(cluster_parent_dir(run_as.is_some()))
            .expect("create temp dir for the cluster")
            // Removed by the watchdog, which outlives this process by a few milliseconds.
            .keep();
        if let Some(user) = &run_as {
            run(Command::new("chown").arg(format!("{user}:")).arg(&dir));
        }

        let cluster = Cluster {
            socket_dir: dir,
            bin,
            run_as,
            next_db: AtomicUsize::new(0),
            watchdog: Mutex::new(None),
        };
        let cache = template_cache_dir(&cluster.bin);
        let from_cache = cache.is_dir() && copy_tree(&cache, &cluster.data_dir());
        if !from_cache {
            let _ = fs::remove_dir_all(cluster.data_dir());
            cluster.initdb();
        }
        register_atexit();
        cluster.spawn_postgres();
        cluster.wait_until_ready();
        if !from_cache {
            cluster.build_template();
            cluster.publish(&cache);
        }
        cluster
    }

    fn data_dir(&self) -> PathBuf {
        self.socket_dir.join("data")
    }

    fn initdb(&self) {
        let initdb = |locale: &str| {
            let mut c = command(self.run_as.as_deref(), &self.bin.join("initdb"));
            c.arg("-D")
                .arg(self.data_dir())
                .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
                // 1 MiB WAL segments instead of 16: less to copy from the cache.
                .arg("--wal-segsize=1")
                .arg(format!("--locale={locale}"));
            c
        };
        // A UTF-8 collation like hosted Supabase: LIKE prefixes then need text_pattern_ops,
        // exactly as in production. Plain C only where C.UTF-8 is missing.
        let utf8 = initdb("C.UTF-8").output();
        if !utf8.is_ok_and(|o| o.status.success()) {
            let _ = fs::remove_dir_all(self.data_dir());
            run(&mut initdb("C"));
        }
    }

    /// Starts postgres under a fresh watchdog (see [`WATCHDOG`]).
    fn spawn_postgres(&self) {
        let mut sh = command(self.run_as.as_deref(), Path::new("sh"));
        sh.args(["-c", WATCHDOG, "watchdog"])
            .arg(self.bin.join("postgres"))
            .arg(self.data_dir())
            .arg(&self.socket_dir)
            .arg(PORT.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = sh.spawn().expect("spawn postgres watchdog");
        let stdin = child.stdin.take().expect("watchdog stdin is piped");
        *self.lock_watchdog() = Some(Watchdog { child, stdin });
    }

    /// Saves the freshly migrated data directory for the next test processes (nextest runs one
    /// per test), so they copy it instead of running initdb and the migrations again. Only a
    /// cleanly stopped cluster is copied; losing a race to publish, or failing to, is harmless.
    fn publish(&self, cache: &Path) {
        if let Some(Watchdog {
            mut child,
            mut stdin,
        }) = self.lock_watchdog().take()
        {
            let _ = stdin.write_all(b"keep\n");
            drop(stdin);
            let _ = child.wait();
        }
        let staging = cache.with_extension(format!("tmp-{}", std::process::id()));
        if copy_tree(&self.data_dir(), &staging) && fs::rename(&staging, cache).is_ok() {
            remove_stale_caches(cache);
        } else {
            let _ = fs::remove_dir_all(&staging);
        }
        self.spawn_postgres();
        self.wait_until_ready();
    }

    fn lock_watchdog(&self) -> std::sync::MutexGuard<'_, Option<Watchdog>> {
        self.watchdog.lock().unwrap_or_else(|p| p.into_inner())
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
        let (baseline, migrations) = template_files()
            .split_first()
            .map(|(b, m)| (b.clone(), m.to_vec()))
            .expect("the baseline is always listed");
        let apply = |db: &mut Client, file: &Path| {
            let sql =
                fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
            db.batch_execute(&sql)
                .unwrap_or_else(|e| panic!("apply {}: {}", file.display(), describe(&e)));
        };
        apply(&mut db, &baseline);
        // What the Queues integration does on a hosted project: pgmq in schema `pgmq`, here from
        // the SQL the `pgmq` crate embeds (this cluster has no pgmq control file to CREATE EXTENSION).
        self.install_pgmq(TEMPLATE_DB);
        for file in &migrations {
            apply(&mut db, file);
        }
        // The template must have no open connection when it is cloned.
    }

    /// Installs the real pgmq SQL shipped inside the `pgmq` crate (`install-sql-embedded`).
    fn install_pgmq(&self, dbname: &str) {
        let options = sqlx::postgres::PgConnectOptions::new()
            .socket(&self.socket_dir)
            .port(PORT)
            .username("postgres")
            .database(dbname);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime for the pgmq install");
        runtime.block_on(async {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .expect("sqlx connection for the pgmq install");
            pgmq::install::install_sql_from_embedded(&pool)
                .await
                .expect("install pgmq from the SQL embedded in the pgmq crate");
            pool.close().await;
        });
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

/// What the template database is built from, in order: the baselines (Supabase's own
/// schemas), then the migrations.
fn template_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![
        root.join("tests/db/supabase_baseline.sql"),
        root.join("tests/db/supabase_storage_baseline.sql"),
    ];
    files.extend(migration_files(&root.join("supabase/migrations")));
    files
}

/// Where the migrated data directory is cached between test processes: under cargo's
/// per-target scratch dir, named after everything that shapes it, so any edit to the baseline or
/// a migration (or another PostgreSQL) builds a new one.
fn template_cache_dir(bin: &Path) -> PathBuf {
    let mut hasher = DefaultHasher::new();
    bin.hash(&mut hasher);
    // Bump when initdb's options change: they shape the cached directory too.
    "initdb: trust, UTF8, C.UTF-8, wal-segsize=1".hash(&mut hasher);
    // The pgmq SQL installed between the baseline and the migrations (Cargo.lock pins it).
    "pgmq crate 0.33.7 install-sql-embedded".hash(&mut hasher);
    for file in template_files() {
        file.file_name().hash(&mut hasher);
        fs::read(&file)
            .unwrap_or_else(|e| panic!("read {}: {e}", file.display()))
            .hash(&mut hasher);
    }
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{CACHE_PREFIX}{:016x}", hasher.finish()))
}

/// Drops caches built from older migrations, so target/tmp holds one.
fn remove_stale_caches(current: &Path) {
    let Some(parent) = current.parent() else {
        return;
    };
    for entry in fs::read_dir(parent).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(CACHE_PREFIX) && !name.contains(".tmp-") && entry.path() != current {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Where the cluster's temp dir goes: tmpfs when it has room, so initdb, CREATE DATABASE and
/// the 100k-row load never wait on a disk shared with parallel builds (a single `cargo test` run
/// clones ~60 databases of ~8 MB). Otherwise /tmp, which the unprivileged user can traverse even
/// when $TMPDIR is root's own.
fn cluster_parent_dir(dropping_root: bool) -> PathBuf {
    const SHM: &str = "/dev/shm";
    const NEEDED_KIB: u64 = 2 * 1024 * 1024;
    let available_kib = Command::new("df")
        .args(["-Pk", SHM])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.lines()
                .nth(1)?
                .split_whitespace()
                .nth(3)?
                .parse::<u64>()
                .ok()
        });
    if available_kib.is_some_and(|kib| kib >= NEEDED_KIB) {
        PathBuf::from(SHM)
    } else if dropping_root {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    }
}

/// `cp -a`: keeps the owner (postgres, when we run as root) and the 0700 mode postgres demands.
fn copy_tree(from: &Path, to: &Path) -> bool {
    Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .is_ok_and(|s| s.success())
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
