//! Cost of finding a request's client IP for the per-IP rate limit (login, register, refresh,
//! recover): the peer alone when it is not a trusted proxy, else a walk of `X-Forwarded-For`
//! against the configured trusted networks.
//! Run: `cargo bench --bench client_ip -- --warm-up-time 1 --measurement-time 3`.

use std::net::SocketAddr;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use supagate::client_ip::client_ip;
use supagate::config::parse_ip_net;

fn bench(c: &mut Criterion) {
    let trusted: Vec<_> = ["10.0.0.0/8", "fd00::/8", "192.0.2.1"]
        .iter()
        .filter_map(|s| parse_ip_net(s))
        .collect();
    assert_eq!(trusted.len(), 3);
    let direct: SocketAddr = "198.51.100.9:5000".parse().expect("addr");
    let proxy: SocketAddr = "10.0.0.2:5000".parse().expect("addr");
    let mapped: SocketAddr = "[::ffff:10.0.0.2]:5000".parse().expect("addr");
    c.bench_function("client_ip_untrusted_peer", |b| {
        b.iter(|| client_ip(Some(black_box(direct)), black_box("1.2.3.4"), &trusted))
    });
    c.bench_function("client_ip_trusted_proxy_chain", |b| {
        b.iter(|| {
            client_ip(
                Some(black_box(proxy)),
                black_box("6.6.6.6, 203.0.113.7, 10.0.0.5"),
                &trusted,
            )
        })
    });
    c.bench_function("client_ip_mapped_ipv6_proxy", |b| {
        b.iter(|| client_ip(Some(black_box(mapped)), black_box("203.0.113.8"), &trusted))
    });
    c.bench_function("trusted_proxy_parse", |b| {
        b.iter(|| parse_ip_net(black_box("10.0.0.0/8")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
