//! Cost of building PostgREST query paths (the typed filters, escaping and percent-encoding
//! every data call goes through) and of the escaping helpers on their own.
//! Run: `cargo bench --bench query -- --warm-up-time 1 --measurement-time 3`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use supagate::api::items::ITEM_COLUMNS;
use supagate::supabase::postgrest::{regex_literal, Query, Value};
use uuid::Uuid;

fn bench(c: &mut Criterion) {
    // What `GET /api/items?limit=20` sends (the load benchmark's request).
    c.bench_function("query_items_list_path", |b| {
        b.iter(|| {
            Query::table("items")
                .select(black_box(ITEM_COLUMNS))
                .order("created_at.desc,id.desc")
                .range(black_box(20), black_box(0))
                .to_path()
        })
    });

    // Every filter kind at once, with a search text full of characters to escape.
    let category = Uuid::parse_str("6f1c1f0e-5d8a-4a43-9d0e-2b7f2f0d9c11").unwrap();
    let user = Uuid::parse_str("0b5d2a6e-7c3f-4f1a-8e9d-3c2b1a0f9e8d").unwrap();
    let search = "Mug (50% off) + tea* [blue]? ☕ & more";
    c.bench_function("query_items_filtered_path", |b| {
        b.iter(|| {
            Query::table("items")
                .select(ITEM_COLUMNS)
                .eq("category_id", black_box(category))
                .eq("user_id", black_box(user))
                .gte("price", Value::Number(black_box(2.5)))
                .lte("price", Value::Number(black_box(99.99)))
                .contains_ci("name", black_box(search))
                .order("price.asc,id.asc")
                .range(50, 100)
                .to_path()
        })
    });

    c.bench_function("escape_regex_literal", |b| {
        b.iter(|| regex_literal(black_box(search)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
