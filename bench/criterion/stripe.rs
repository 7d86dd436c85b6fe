//! Cost of one Stripe signature verification on a realistic delivery: the SDK-generated
//! `customer.subscription.updated` payload (~5 KB, pretty-printed) with one configured secret,
//! and the rotation case (two secrets, the second one matching).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use supagate::stripe;

fn fixture() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/stripe.json");
    let text = std::fs::read_to_string(path).expect("stripe fixture");
    serde_json::from_str(&text).expect("stripe fixture is JSON")
}

fn verification(c: &mut Criterion) {
    let fx = fixture();
    let event = fx["events"]
        .as_array()
        .and_then(|events| {
            events
                .iter()
                .find(|e| e["name"] == "subscription_updated_cancel_at_period_end")
        })
        .expect("fixture event")
        .clone();
    let payload = event["payload"]
        .as_str()
        .expect("payload")
        .as_bytes()
        .to_vec();
    let header = event["header"]
        .as_str()
        .expect("header")
        .as_bytes()
        .to_vec();
    let t = event["timestamp"].as_i64().expect("timestamp");
    let primary = fx["secrets"]["primary"]
        .as_str()
        .expect("primary")
        .to_owned();
    let rotated = fx["secrets"]["rotated"]
        .as_str()
        .expect("rotated")
        .to_owned();

    let mut group = c.benchmark_group("stripe_verify");
    group.throughput(criterion::Throughput::Bytes(payload.len() as u64));
    group.bench_function("one_secret", |b| {
        b.iter(|| {
            stripe::verify(
                black_box(&payload),
                black_box(&header),
                &[primary.as_str()],
                t,
                300,
            )
        })
    });
    group.bench_function("rotation_second_secret_matches", |b| {
        b.iter(|| {
            stripe::verify(
                black_box(&payload),
                black_box(&header),
                &[rotated.as_str(), primary.as_str()],
                t,
                300,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
