//! A tiny raw-TCP "Supabase" that misbehaves on demand: resets before or in the middle of an
//! answer, hangs, trickles, answers 5xx, HTML or an oversized body. wiremock cannot reset a
//! connection or trickle a body, so the fault tests and the fault scripts use this instead.
//! Self-contained (tokio + std only) so `examples/faultline.rs` includes it with `#[path]`.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with the next request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A normal answer: a one-row list for `/rest/v1/...` (an object when the single-object
    /// media type is asked for), a user for `/auth/v1/user`, a session for `/auth/v1/token`.
    Ok,
    /// Reads the request, then resets the connection (RST) before any byte of an answer.
    ResetBeforeResponse,
    /// Sends the status line, headers and part of the body, then resets.
    ResetMidBody,
    /// Reads the request and never answers (the connection stays open).
    Hang,
    /// Sends the status line and headers, then one body byte every 100 ms.
    Trickle,
    /// 500 with a PostgREST-style JSON error body.
    Status5xx,
    /// 200 with an HTML page (a proxy's error page).
    Html,
    /// 200 JSON declaring a `Content-Length` of 4 MiB + 1 (nothing much is sent).
    HugeDeclared,
    /// 200 JSON, chunked, growing without bound (stops at 16 MiB or when the peer goes away).
    HugeChunked,
    /// The normal answer, written in three pieces 20 ms apart (the body reaches the client
    /// in several reads).
    InPieces,
}

impl Fault {
    pub const ALL: [Fault; 10] = [
        Fault::Ok,
        Fault::ResetBeforeResponse,
        Fault::ResetMidBody,
        Fault::Hang,
        Fault::Trickle,
        Fault::Status5xx,
        Fault::Html,
        Fault::HugeDeclared,
        Fault::HugeChunked,
        Fault::InPieces,
    ];

    pub fn parse(name: &str) -> Option<Fault> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Fault::Ok => "ok",
            Fault::ResetBeforeResponse => "reset-before-response",
            Fault::ResetMidBody => "reset-mid-body",
            Fault::Hang => "hang",
            Fault::Trickle => "trickle",
            Fault::Status5xx => "status-5xx",
            Fault::Html => "html",
            Fault::HugeDeclared => "huge-declared",
            Fault::HugeChunked => "huge-chunked",
            Fault::InPieces => "in-pieces",
        }
    }
}

pub const ITEM_JSON: &str = r#"{"id":"33333333-3333-4333-8333-333333333333","name":"Mug","description":null,"price":12.5,"category_id":"44444444-4444-4444-8444-444444444444","user_id":"11111111-1111-4111-8111-111111111111","created_at":"2026-01-05T10:00:00+00:00","updated_at":"2026-01-05T10:00:00+00:00","category":{"id":"44444444-4444-4444-8444-444444444444","name":"Kitchen"}}"#;
pub const USER_JSON: &str = r#"{"id":"11111111-1111-4111-8111-111111111111","aud":"authenticated","email":"ann@example.com"}"#;

struct State {
    default: Mutex<Fault>,
    /// Faults for the next requests, in order, before `default` applies again.
    script: Mutex<VecDeque<Fault>>,
    /// `cycle` mode: request n gets `cycle[n % len]`.
    cycle: Mutex<Vec<Fault>>,
    /// Requests answered (or not) with a fault, the JWKS path and the item-limit write excluded.
    requests: AtomicUsize,
    connections: AtomicUsize,
    /// `METHOD path` of every counted request, in order.
    log: Mutex<Vec<String>>,
    /// A fixed delay before every `Ok` answer (the load stand-in).
    delay: Mutex<Duration>,
    /// How many rows an `Ok` list answer carries.
    rows: AtomicUsize,
}

#[derive(Clone)]
pub struct FaultServer {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl FaultServer {
    /// Listens on an ephemeral 127.0.0.1 port.
    pub async fn start(default: Fault) -> Self {
        Self::start_on(0, default).await
    }

    /// Listens on 127.0.0.1:`port` (0 = any), answering with `default`.
    pub async fn start_on(port: u16, default: Fault) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("fault server binds");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            default: Mutex::new(default),
            script: Mutex::new(VecDeque::new()),
            cycle: Mutex::new(Vec::new()),
            requests: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            delay: Mutex::new(Duration::ZERO),
            rows: AtomicUsize::new(1),
        });
        let server = Self { addr, state };
        let accept = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                accept.state.connections.fetch_add(1, Ordering::SeqCst);
                let conn = accept.clone();
                tokio::spawn(async move {
                    let _ = conn.serve(stream).await;
                });
            }
        });
        server
    }

    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        *self.state.default.lock().unwrap() = fault;
    }

    /// The next requests get `faults`, in order; then the default again.
    pub fn script(&self, faults: &[Fault]) {
        self.state.script.lock().unwrap().extend(faults);
    }

    /// Request n gets `faults[n % len]` (an empty list turns cycling off).
    pub fn cycle(&self, faults: &[Fault]) {
        *self.state.cycle.lock().unwrap() = faults.to_vec();
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    pub fn set_rows(&self, rows: usize) {
        self.state.rows.store(rows, Ordering::SeqCst);
    }

    /// Requests received (signing-key loads excluded).
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// `METHOD path` of every counted request so far.
    pub fn log(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }

    fn next_fault(&self, head: &Head) -> Fault {
        if self
            .state
            .log
            .lock()
            .map(|l| l.len() < 100_000)
            .unwrap_or(false)
        {
            let line = format!("{} {}", head.method, head.path);
            self.state.log.lock().unwrap().push(line);
        }
        let n = self.state.requests.fetch_add(1, Ordering::SeqCst);
        if let Some(f) = self.state.script.lock().unwrap().pop_front() {
            return f;
        }
        let cycle = self.state.cycle.lock().unwrap();
        if !cycle.is_empty() {
            return cycle[n % cycle.len()];
        }
        *self.state.default.lock().unwrap()
    }

    async fn serve(&self, mut stream: TcpStream) -> std::io::Result<()> {
        stream.set_nodelay(true)?;
        let mut buf = Vec::with_capacity(2048);
        loop {
            let Some(head) = read_request(&mut stream, &mut buf).await? else {
                return Ok(());
            };
            if head.path.starts_with("/auth/v1/.well-known/jwks.json") {
                write_json(&mut stream, 200, "application/json", &[], br#"{"keys":[]}"#).await?;
                continue;
            }
            // The start-up item-limit write (background, like the key load): accepted, not
            // counted, so it never takes a fault scripted for a client's request.
            if head.path.starts_with("/rest/v1/rpc/set_item_limit_rule") {
                write_json(&mut stream, 200, "application/json", &[], b"null").await?;
                continue;
            }
            let fault = self.next_fault(&head);
            match fault {
                Fault::Ok => {
                    let delay = *self.state.delay.lock().unwrap();
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    self.answer_ok(&mut stream, &head).await?;
                }
                Fault::InPieces => {
                    let mut answer = Vec::new();
                    self.answer_ok(&mut answer, &head).await?;
                    let third = answer.len() / 3;
                    for piece in [
                        &answer[..third],
                        &answer[third..2 * third],
                        &answer[2 * third..],
                    ] {
                        stream.write_all(piece).await?;
                        stream.flush().await?;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                Fault::ResetBeforeResponse => return reset(stream),
                Fault::ResetMidBody => {
                    let head_bytes = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-range: 0-99/100\r\ncontent-length: 4000\r\n\r\n[";
                    stream.write_all(head_bytes.as_bytes()).await?;
                    stream.write_all(ITEM_JSON.as_bytes()).await?;
                    stream.write_all(b",").await?;
                    stream.flush().await?;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return reset(stream);
                }
                Fault::Hang => {
                    // Hold the connection until the client gives up (or a minute passes).
                    let mut sink = [0u8; 64];
                    let _ =
                        tokio::time::timeout(Duration::from_secs(60), stream.read(&mut sink)).await;
                    return Ok(());
                }
                Fault::Trickle => {
                    let head_bytes = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-range: 0-0/1\r\ncontent-length: 10000\r\n\r\n[";
                    stream.write_all(head_bytes.as_bytes()).await?;
                    for _ in 0..600 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        stream.write_all(b" ").await?;
                    }
                    return Ok(());
                }
                Fault::Status5xx => {
                    let body = br#"{"code":"XX000","message":"internal secret detail","details":null,"hint":null}"#;
                    write_json(&mut stream, 500, "application/json", &[], body).await?;
                }
                Fault::Html => {
                    let body = b"<html><body>502 Bad Gateway: secret stack trace</body></html>";
                    write_json(&mut stream, 200, "text/html", &[], body).await?;
                }
                Fault::HugeDeclared => {
                    let head_bytes = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-range: 0-0/1\r\ncontent-length: 4194305\r\n\r\n[";
                    stream.write_all(head_bytes.as_bytes()).await?;
                    // Send a little, then wait for the client to hang up.
                    let mut sink = [0u8; 64];
                    let _ =
                        tokio::time::timeout(Duration::from_secs(30), stream.read(&mut sink)).await;
                    return Ok(());
                }
                Fault::HugeChunked => {
                    let head_bytes = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-range: 0-0/1\r\ntransfer-encoding: chunked\r\n\r\n";
                    stream.write_all(head_bytes.as_bytes()).await?;
                    let row = format!("{ITEM_JSON},");
                    let mut chunk = String::from("[");
                    while chunk.len() < 16 * 1024 {
                        chunk.push_str(&row);
                    }
                    let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
                    for _ in 0..1024 {
                        stream.write_all(framed.as_bytes()).await?;
                    }
                    return Ok(());
                }
            }
        }
    }

    async fn answer_ok(
        &self,
        stream: &mut (impl AsyncWrite + Unpin),
        head: &Head,
    ) -> std::io::Result<()> {
        if head.path.starts_with("/auth/v1/token") {
            let body = format!(
                r#"{{"access_token":"fault-access","token_type":"bearer","expires_in":3600,"expires_at":4102444800,"refresh_token":"fault-refresh","user":{USER_JSON}}}"#
            );
            return write_json(stream, 200, "application/json", &[], body.as_bytes()).await;
        }
        if head.path.starts_with("/auth/v1/") {
            return write_json(stream, 200, "application/json", &[], USER_JSON.as_bytes()).await;
        }
        if head.single {
            return write_json(
                stream,
                200,
                "application/vnd.pgrst.object+json; charset=utf-8",
                &[],
                ITEM_JSON.as_bytes(),
            )
            .await;
        }
        let rows = self.state.rows.load(Ordering::SeqCst);
        if head.method == "HEAD" {
            let range = format!("*/{rows}");
            let head_bytes = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-range: {range}\r\ncontent-length: 0\r\n\r\n"
            );
            return stream.write_all(head_bytes.as_bytes()).await;
        }
        let mut body = String::with_capacity(rows * (ITEM_JSON.len() + 1) + 2);
        body.push('[');
        for i in 0..rows {
            if i > 0 {
                body.push(',');
            }
            body.push_str(ITEM_JSON);
        }
        body.push(']');
        let range = if rows == 0 {
            "*/0".to_owned()
        } else {
            format!("0-{}/{}", rows - 1, rows.max(137))
        };
        write_json(
            stream,
            200,
            "application/json; charset=utf-8",
            &[("content-range", &range)],
            body.as_bytes(),
        )
        .await
    }
}

struct Head {
    method: String,
    path: String,
    single: bool,
}

/// Reads one request (head and a `Content-Length` body); `None` at a clean end of stream.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Head>> {
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > 64 * 1024 {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let path = first.next().unwrap_or("").to_owned();
    let mut length = 0usize;
    let mut single = false;
    for line in lines {
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("accept:") && lower.contains("vnd.pgrst.object") {
            single = true;
        }
    }
    buf.drain(..end);
    while buf.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.drain(..length);
    Ok(Some(Head {
        method,
        path,
        single,
    }))
}

async fn write_json(
    stream: &mut (impl AsyncWrite + Unpin),
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out).await
}

/// Closes with RST (SO_LINGER 0) instead of FIN.
fn reset(stream: TcpStream) -> std::io::Result<()> {
    stream.set_zero_linger()?;
    drop(stream);
    Ok(())
}
