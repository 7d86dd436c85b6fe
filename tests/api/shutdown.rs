//! Graceful shutdown under load: SIGTERM while a burst of requests is in flight. Every
//! accepted request completes with its full answer, new connections are refused at once,
//! idle keep-alive connections do not hold the process, and it exits 0 within the drain
//! timeout (`server.shutdown_timeout_secs`, 5 s under APP_ENV=test).

use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::support::*;

const BURST: usize = 40;
const UPSTREAM_DELAY: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_burst_completes_every_accepted_request_and_refuses_new_ones() {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/v1/items"))
        .respond_with(
            pg_list(json!([item_row(ITEM_ID, USER_A)]), "0-0/1").set_delay(UPSTREAM_DELAY),
        )
        .mount(&upstream)
        .await;
    let mut process = Process::start(&test_env(&upstream.uri()));
    let list_url = process.url("/api/items");

    // An idle keep-alive connection, opened before the signal.
    let idle = reqwest::Client::new();
    assert_eq!(
        idle.get(process.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // The burst: each request on its own connection.
    let mut burst = Vec::new();
    for _ in 0..BURST {
        let url = list_url.clone();
        burst.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let res = client.get(url).send().await?;
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await?;
            Ok::<_, reqwest::Error>((status, body))
        }));
    }
    // Signal once every request of the burst reached the upstream (accepted, in flight).
    let deadline = Instant::now() + Duration::from_secs(10);
    let in_flight = loop {
        let n = upstream
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == "/rest/v1/items")
            .count();
        if n >= BURST || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        in_flight, BURST,
        "the whole burst is in flight before the signal"
    );
    let signalled = Instant::now();
    process.signal("TERM");

    // New connections are refused while the accepted ones drain.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let port = process.port;
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
    assert!(
        refused.is_err(),
        "a new connection was accepted during the drain"
    );

    let mut ok = 0;
    for task in burst {
        let (status, body) = task.await.unwrap().expect("accepted request completes");
        assert_eq!(status, 200);
        assert_eq!(body[0]["id"], ITEM_ID);
        ok += 1;
    }
    let drained = signalled.elapsed();
    let exit = tokio::task::spawn_blocking(move || process.wait_exit(Duration::from_secs(10)))
        .await
        .unwrap();
    let exited = signalled.elapsed();
    assert_eq!(exit, Some(0));
    assert!(
        exited < Duration::from_secs(5),
        "exit {exited:?} after SIGTERM, over the 5 s drain timeout"
    );
    drop(idle);
    println!(
        "{ok}/{BURST} in-flight requests completed; drained in {drained:?}, exit 0 after {exited:?}"
    );
}
