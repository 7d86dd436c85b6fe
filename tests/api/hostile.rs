//! Hostile input over raw TCP: oversized headers, absurd `Content-Length`, slowloris, deeply
//! nested JSON, invalid UTF-8 in body, path, query and headers. Each is answered with a clean
//! 4xx or a closed connection, and the server keeps answering `/health` afterwards.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

#[derive(Debug, PartialEq, Eq)]
enum Raw {
    /// The status code of the answer.
    Status(u16),
    /// The server closed (or reset) the connection without an answer.
    Closed,
}

fn addr(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// Sends `bytes` as they are, then reads the status line (or the close) within `wait`.
async fn raw(app: &TestApp, bytes: &[u8], wait: Duration) -> (Raw, String) {
    let mut stream = TcpStream::connect(addr(app)).await.unwrap();
    // A write may fail when the server has already closed on an earlier part: that is a close.
    if stream.write_all(bytes).await.is_err() {
        return (Raw::Closed, String::new());
    }
    read_answer(&mut stream, wait).await
}

async fn read_answer(stream: &mut TcpStream, wait: Duration) -> (Raw, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() > 12 {
                    // The head is in; take what body is already there.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_millis(50), stream.read(&mut chunk))
                            .await
                    {
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    break;
                }
            }
            Err(_) => panic!(
                "no answer and no close within {wait:?}; got {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|s| s.parse().ok());
    match status {
        Some(code) => (Raw::Status(code), text),
        None => (Raw::Closed, text),
    }
}

/// A 4xx or a close; a 2xx only where the input is legal HTTP that the server may accept
/// (percent-encoded invalid UTF-8 in a query value decodes to U+FFFD, a 100 KiB cookie is
/// under actix's 128 KiB head limit) and the request then went through normally.
fn assert_clean(outcome: &(Raw, String), what: &str) {
    match outcome.0 {
        Raw::Status(code) => {
            assert!(
                (400..500).contains(&code) || (200..300).contains(&code),
                "{what}: {code}\n{}",
                outcome.1
            );
            if let Some(body) = outcome.1.split("\r\n\r\n").nth(1) {
                assert!(!body.contains("panicked"), "{what}: {body}");
            }
        }
        Raw::Closed => {}
    }
    println!("{what}: {:?}", outcome.0);
}

async fn assert_still_healthy(app: &TestApp) {
    let (status, _) = json_of(app.get("/health").send().await.unwrap()).await;
    assert_eq!(status, 200);
}

fn request(method: &str, path: &[u8], headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn oversized_headers_get_431_or_a_close() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "GET", "items", pg_list(serde_json::json!([]), "*/0")).await;
    let big = vec![b'a'; 128 * 1024];
    let one_huge = raw(
        &app,
        &request("GET", b"/health", &[("X-Big", &big)], b""),
        WAIT,
    )
    .await;
    assert_clean(&one_huge, "one 128 KiB header");
    assert_ne!(one_huge.0, Raw::Status(200));
    let many: Vec<(&str, &[u8])> = (0..500).map(|_| ("X-Many", &b"x"[..])).collect();
    let many = raw(&app, &request("GET", b"/health", &many, b""), WAIT).await;
    assert_clean(&many, "500 headers");
    assert_ne!(many.0, Raw::Status(200));
    let cookie = vec![b'c'; 100 * 1024];
    let cookie = raw(
        &app,
        &request("GET", b"/api/items", &[("Cookie", &cookie)], b""),
        WAIT,
    )
    .await;
    assert_clean(&cookie, "a 100 KiB cookie");
    assert_still_healthy(&app).await;
}

#[tokio::test]
async fn an_absurd_content_length_gets_413_without_the_body_being_read() {
    let app = TestApp::spawn().await;
    let token = user_token(USER_A);
    let auth = format!("Bearer {token}");
    for path in [
        &b"/api/items"[..],
        b"/api/webhooks/stripe",
        b"/api/auth/login",
    ] {
        let head = request(
            "POST",
            path,
            &[
                ("Content-Type", b"application/json"),
                ("Authorization", auth.as_bytes()),
                ("Content-Length", b"10000000000"),
            ],
            b"",
        );
        let started = Instant::now();
        // Only the head is sent: an answer proves nothing waited for 10 GB.
        let outcome = raw(&app, &head, WAIT).await;
        assert_eq!(
            outcome.0,
            Raw::Status(413),
            "{}: {}",
            String::from_utf8_lossy(path),
            outcome.1
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // A length that does not even fit in 64 bits.
    let head = request(
        "POST",
        b"/api/items",
        &[
            ("Content-Type", b"application/json"),
            ("Content-Length", b"999999999999999999999999999999"),
        ],
        b"",
    );
    let outcome = raw(&app, &head, WAIT).await;
    assert_clean(&outcome, "a Content-Length over u64");
    assert_still_healthy(&app).await;
}

#[tokio::test]
async fn slowloris_headers_are_cut_off_at_the_client_request_timeout() {
    let app = TestApp::spawn_with(|s| s.server.client_request_timeout_ms = 500).await;
    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // One header byte every 100 ms, never finishing the head.
    let mut cut = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if stream.write_all(b"X").await.is_err() {
            cut = true;
            break;
        }
        let mut probe = [0u8; 512];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await
        {
            let text = String::from_utf8_lossy(&probe[..n]).into_owned();
            assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
            cut = true;
            break;
        }
    }
    let took = started.elapsed();
    assert!(cut, "the slow client was never cut off");
    assert!(
        took < Duration::from_millis(2500),
        "cut only after {took:?}"
    );
    println!("slowloris cut after {took:?}");
    assert_still_healthy(&app).await;
}

#[tokio::test]
async fn deeply_nested_json_is_400_not_a_stack_overflow() {
    let app = TestApp::spawn().await;
    let token = user_token(USER_A);
    // ~64 KiB of nesting: far beyond serde_json's recursion limit of 128.
    let arrays = "[".repeat(60_000);
    let objects = "{\"a\":".repeat(12_000);
    for body in [arrays.clone(), objects] {
        let res = app
            .post("/api/items")
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, json) = json_of(res).await;
        // Typed bodies fail at the first token of the wrong type, before any depth.
        assert_eq!(status, 400, "{json}");
        assert!(
            ["invalid_json", "validation_failed"].contains(&error_code(&json)),
            "{json}"
        );
    }
    // Register's free-form `data` object, nested 200 deep (under its 4 KiB cap).
    let data = format!(
        "{}{}",
        "{\"a\":".repeat(200),
        "1".to_owned() + &"}".repeat(200)
    );
    let body = format!(r#"{{"email":"ann@example.com","password":"pw-123456","data":{data}}}"#);
    let res = app
        .post("/api/auth/register")
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, json) = json_of(res).await;
    assert_eq!(status, 400, "{json}");
    // The webhook parses the raw bytes itself once the signature checks out.
    let nested = format!("{}{}", "[".repeat(120_000), "]".repeat(120_000));
    let res = app.deliver_signed(&nested).await;
    let (status, json) = json_of(res).await;
    assert_eq!(status, 400, "{json}");
    assert_still_healthy(&app).await;
}

#[tokio::test]
async fn invalid_utf8_anywhere_is_a_clean_4xx_or_a_close() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "GET", "items", pg_list(serde_json::json!([]), "*/0")).await;
    let token = user_token(USER_A);
    let auth = format!("Bearer {token}");
    let json = &b"application/json"[..];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "body",
            request(
                "POST",
                b"/api/items",
                &[("Content-Type", json), ("Authorization", auth.as_bytes())],
                b"{\"name\":\"\xff\xfe\",\"price\":1}",
            ),
        ),
        (
            "login body",
            request(
                "POST",
                b"/api/auth/login",
                &[("Content-Type", json)],
                b"{\"email\":\"a@b.c\",\"password\":\"\xc3\x28\"}",
            ),
        ),
        (
            "raw path bytes",
            request("GET", b"/api/items/\xff\xfe", &[], b""),
        ),
        (
            "percent-encoded path",
            request("GET", b"/api/items/%FF%FE", &[], b""),
        ),
        (
            "percent-encoded query",
            request("GET", b"/api/items?q=%FF%FE", &[], b""),
        ),
        (
            "raw query bytes",
            request("GET", b"/api/items?q=\xff", &[], b""),
        ),
        ("query key", request("GET", b"/api/items?%FF=1", &[], b"")),
        (
            "authorization",
            request(
                "GET",
                b"/api/items",
                &[("Authorization", b"Bearer \xff\xfe")],
                b"",
            ),
        ),
        (
            "cookie",
            request(
                "GET",
                b"/api/auth/user",
                &[("Cookie", b"sb-127-auth-token=base64-\xff\xfe")],
                b"",
            ),
        ),
        (
            "stripe-signature",
            request(
                "POST",
                b"/api/webhooks/stripe",
                &[("Content-Type", json), ("Stripe-Signature", b"t=1,v1=\xff")],
                b"{}",
            ),
        ),
        (
            "control bytes in a header",
            request(
                "GET",
                b"/api/items",
                &[("X-Request-Id", b"\x00\x01\x7f")],
                b"",
            ),
        ),
    ];
    for (what, bytes) in cases {
        let outcome = raw(&app, &bytes, WAIT).await;
        assert_clean(&outcome, what);
    }
    // An invalid X-Request-Id with high bytes is replaced, and the request still served.
    let outcome = raw(
        &app,
        &request("GET", b"/health", &[("X-Request-Id", b"\xff\xfe")], b""),
        WAIT,
    )
    .await;
    assert_eq!(outcome.0, Raw::Status(200), "{}", outcome.1);
    assert_still_healthy(&app).await;
}

#[tokio::test]
async fn a_slow_body_is_cut_off_with_408_at_the_client_body_timeout() {
    let app = TestApp::spawn_with(|s| s.server.client_body_timeout_ms = 500).await;
    let token = user_token(USER_A);
    for (path, auth) in [
        ("/api/items", format!("Authorization: Bearer {token}\r\n")),
        (
            "/api/webhooks/stripe",
            "Stripe-Signature: t=1,v1=00\r\n".to_owned(),
        ),
        ("/api/auth/refresh", String::new()),
    ] {
        let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}Content-Length: 1000\r\n\r\n{{"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        // One body byte every 100 ms: the body would take 100 s.
        let mut answer = None;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = stream.write_all(b" ").await;
            let mut probe = [0u8; 2048];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await
            {
                answer = Some(String::from_utf8_lossy(&probe[..n]).into_owned());
                break;
            }
        }
        let took = started.elapsed();
        let answer = answer.unwrap_or_else(|| panic!("{path}: still open after {took:?}"));
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(answer.contains("request_timeout"), "{path}: {answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
        assert!(took < Duration::from_millis(1500), "{path}: {took:?}");
        println!("{path}: slow body cut with 408 after {took:?}");
    }
    // A body that arrives in time, in pieces, is served normally.
    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    let body = br#"{"refresh_token":""}"#;
    let head = format!(
        "POST /api/auth/refresh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for piece in body.chunks(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        stream.write_all(piece).await.unwrap();
    }
    let (outcome, text) = read_answer(&mut stream, WAIT).await;
    assert_eq!(outcome, Raw::Status(400), "{text}");
    assert!(text.contains("validation_failed"), "{text}");
    assert_still_healthy(&app).await;
}
