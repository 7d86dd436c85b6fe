//! The fault and load stand-in used by `scripts/*.sh` (127.0.0.1 only).
//!
//! ```text
//! faultline upstream [--port P] [--fault ok|cycle|<fault>] [--delay-ms D] [--rows N]
//!     A PostgREST/Auth stand-in: `ok` answers normally after a fixed delay; `cycle` rotates
//!     through every fault per request; a fault name (`hang`, `reset-mid-body`, ...) always
//!     answers with that fault. Prints `listening on 127.0.0.1:<port>`.
//! faultline hammer --url URL[,URL...] [--requests N] [--concurrency C] [--timeout-ms T]
//!     Sends exactly N GETs (URLs in rotation) with C in flight; prints one JSON line:
//!     statuses, transport errors (truncated bodies included), p50/p99/max latency.
//! ```

#[path = "../tests/api/fault.rs"]
mod fault;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fault::{Fault, FaultServer};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num(args: &[String], name: &str, default: u64) -> u64 {
    arg(args, name)
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: not a number")))
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("upstream") => upstream(&args).await,
        Some("hammer") => hammer(&args).await,
        _ => {
            eprintln!("usage: faultline upstream|hammer ... (see the source header)");
            std::process::exit(2);
        }
    }
}

async fn upstream(args: &[String]) {
    let port = num(args, "--port", 0) as u16;
    let fault = arg(args, "--fault").unwrap_or_else(|| "ok".to_owned());
    let server = FaultServer::start_on(port, Fault::Ok).await;
    match fault.as_str() {
        "cycle" => {
            let faults: Vec<Fault> = Fault::ALL.into_iter().filter(|f| *f != Fault::Ok).collect();
            server.cycle(&faults);
        }
        name => server.set(Fault::parse(name).unwrap_or_else(|| panic!("unknown fault {name}"))),
    }
    server.set_delay(Duration::from_millis(num(args, "--delay-ms", 0)));
    server.set_rows(num(args, "--rows", 20) as usize);
    println!("listening on {}", server.addr);
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

async fn hammer(args: &[String]) {
    let urls: Vec<String> = arg(args, "--url")
        .expect("--url")
        .split(',')
        .map(str::to_owned)
        .collect();
    for url in &urls {
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "hammer only targets 127.0.0.1: {url}"
        );
    }
    let total = num(args, "--requests", 10_000) as usize;
    let concurrency = num(args, "--concurrency", 50) as usize;
    let timeout = Duration::from_millis(num(args, "--timeout-ms", 10_000));
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let urls = Arc::new(urls);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next, urls) = (client.clone(), next.clone(), urls.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen: Vec<(String, Duration)> = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return seen;
                }
                let t = Instant::now();
                let outcome = match client.get(&urls[n % urls.len()]).send().await {
                    Ok(res) => {
                        let status = res.status().as_u16().to_string();
                        match res.bytes().await {
                            Ok(_) => status,
                            Err(_) => format!("{status}-truncated"),
                        }
                    }
                    Err(e) if e.is_timeout() => "client-timeout".to_owned(),
                    Err(_) => "transport-error".to_owned(),
                };
                seen.push((outcome, t.elapsed()));
            }
        }));
    }
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    let mut latencies = Vec::with_capacity(total);
    for task in tasks {
        for (outcome, took) in task.await.unwrap() {
            *by.entry(outcome).or_default() += 1;
            latencies.push(took);
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    let by_json: Vec<String> = by.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    println!(
        "{{\"requests\":{},\"outcomes\":{{{}}},\"elapsed_s\":{:.2},\"rps\":{:.0},\"p50_ms\":{:.1},\"p99_ms\":{:.1},\"max_ms\":{:.1}}}",
        latencies.len(),
        by_json.join(","),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
}
