//! Per-request cost of the cross-cutting middleware (request id, trace context, the request's
//! log context, security headers, metrics, access log), through actix's test service, with
//! the production subscriber installed at `RUST_LOG=warn`: the log context is set, the access
//! line is filtered out, output goes nowhere. `bare` is the same app
//! without the middleware, so the difference is what it adds.
//! `etag_*`: the validator every JSON read carries (`conditional::etag_of`), beside SHA-256 of
//! the same bytes.
//! Run: `cargo bench --bench middleware -- --warm-up-time 1 --measurement-time 3`.

use actix_web::middleware::from_fn;
use actix_web::test::{call_service, init_service, TestRequest};
use actix_web::{web, App, HttpResponse};
use criterion::{criterion_group, criterion_main, Criterion};
use supagate::middleware::request_context;
use supagate::telemetry;
use tracing_subscriber::EnvFilter;

async fn ok() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn bench(c: &mut Criterion) {
    let subscriber = telemetry::subscriber(EnvFilter::new("warn"), std::io::sink, false);
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    let sys = actix_web::rt::System::new();
    let bare = sys.block_on(init_service(
        App::new().route("/api/items", web::get().to(ok)),
    ));
    let wrapped = sys.block_on(init_service(
        App::new()
            .route("/api/items", web::get().to(ok))
            .wrap(from_fn(request_context)),
    ));
    let request = || TestRequest::get().uri("/api/items?limit=20").to_request();
    c.bench_function("request_bare", |b| {
        b.iter(|| sys.block_on(async { call_service(&bare, request()).await.status() }))
    });
    c.bench_function("request_with_context_middleware", |b| {
        b.iter(|| sys.block_on(async { call_service(&wrapped, request()).await.status() }))
    });
    c.bench_function("request_with_context_middleware_and_id", |b| {
        b.iter(|| {
            sys.block_on(async {
                let req = TestRequest::get()
                    .uri("/api/items?limit=20")
                    .insert_header(("x-request-id", "bench-0001"))
                    .to_request();
                call_service(&wrapped, req).await.status()
            })
        })
    });
}

fn etag(c: &mut Criterion) {
    use sha2::Digest;
    // A page of 20 items is about 10 KB.
    let page = vec![b'x'; 10 * 1024];
    c.bench_function("etag_xxh3_10kb", |b| {
        b.iter(|| supagate::conditional::etag_of(std::hint::black_box(&page)))
    });
    c.bench_function("etag_sha256_10kb", |b| {
        b.iter(|| sha2::Sha256::digest(std::hint::black_box(&page)))
    });
}

criterion_group!(benches, bench, etag);
criterion_main!(benches);
