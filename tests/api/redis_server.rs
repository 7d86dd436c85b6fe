//! A throwaway `redis-server` per test: a free port on 127.0.0.1, a private temp dir, no
//! persistence. It can be killed, restarted on the same port, paused (SIGSTOP) and resumed,
//! which is what the shared-store tests need.
//!
//! Lifetime (as `tests/db/cluster.rs` does for PostgreSQL): redis-server runs under a small
//! shell watchdog whose stdin is a pipe held by the test; when the test process ends, however
//! it ends (panic, SIGKILL), the pipe closes and the watchdog kills Redis and removes the dir.
//! `Drop` closes the pipe too, and waits, so a passing test leaves nothing behind.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts redis-server in the background, prints its pid, and waits on stdin; EOF (the test
/// is over, however it ended) kills Redis and deletes the temp dir (`$2`); a `keep` line
/// kills Redis but keeps the dir (a restart reuses it).
const WATCHDOG: &str = r#"
redis-server --port "$1" --bind 127.0.0.1 --dir "$2" --save "" --appendonly no \
  --daemonize no --logfile "$2/redis.log" &
r=$!
echo "$r"
if read -r line && [ "$line" = keep ]; then keep=1; else keep=0; fi
kill -9 "$r" 2>/dev/null
wait "$r" 2>/dev/null
[ "$keep" = 1 ] || rm -rf "$2"
"#;

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    running: Option<Running>,
}

struct Running {
    watchdog: Child,
    stdin: ChildStdin,
    pid: u32,
}

/// Whether `redis-server` is installed (`.ci/run` installs it; `apt-get install redis-server`).
pub fn available() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl RedisServer {
    /// A running server, answering PING.
    pub fn start() -> RedisServer {
        assert!(
            available(),
            "redis-server not found: `apt-get install -y redis-server` (.ci/run does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("supagate-redis-")
            .tempdir()
            .expect("temp dir for redis")
            // Removed by the watchdog, which may outlive this process by a moment.
            .keep();
        let mut server = RedisServer {
            port: free_port(),
            dir,
            running: None,
        };
        server.spawn();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let mut child = Command::new("sh")
            .args(["-c", WATCHDOG, "watchdog"])
            .arg(self.port.to_string())
            .arg(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the redis watchdog");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("the watchdog prints the redis pid");
        let pid = line.trim().parse().expect("a pid");
        self.running = Some(Running {
            watchdog: child,
            stdin,
            pid,
        });
        self.wait_until_ready();
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start\n{}", self.log());
    }

    /// `PING` over a raw socket (no client library needed for a readiness check).
    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let pid = self.running.as_ref().expect("redis is running").pid;
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} {pid}");
    }

    /// SIGKILL: every counter is lost, connections drop.
    pub fn kill(&mut self) {
        self.stop(true);
    }

    /// A new, empty server on the same port.
    pub fn restart(&mut self) {
        self.stop(true);
        self.spawn();
    }

    /// SIGSTOP: connections stay open but nothing is answered (a "slow" Redis).
    pub fn pause(&self) {
        self.signal("STOP");
    }

    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn stop(&mut self, keep_dir: bool) {
        if let Some(Running {
            mut watchdog,
            mut stdin,
            pid,
        }) = self.running.take()
        {
            use std::io::Write;
            // A paused server must be able to die.
            let _ = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
            if keep_dir {
                let _ = stdin.write_all(b"keep\n");
            }
            drop(stdin);
            let _ = watchdog.wait();
        }
        if !keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop(false);
    }
}
