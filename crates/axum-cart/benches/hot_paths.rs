//! Micro-benchmarks of the hot paths, so regressions show: money math over 100 lines, the
//! serialisation round trip, and the header filters rendering.
//!
//! `cargo bench -p axum-cart --bench hot_paths`

use std::hint::black_box;

use askama::Template;
use axum_cart::{filters, CartBadge, CartPayload, CartView, Line, NewDiscount, ProductRef};
use criterion::{criterion_group, criterion_main, Criterion};
use rust_decimal::Decimal;

fn lines(n: i64) -> Vec<Line> {
    (1..=n)
        .map(|i| {
            let kind = ["book", "coffee", "course"][(i % 3) as usize];
            Line::new(
                ProductRef::new(kind, i).expect("valid product"),
                1 + i % 5,
                Decimal::new(999 + i * 37, 2),
            )
        })
        .collect()
}

#[derive(Template)]
#[template(
    source = r#"<nav>{{ badge|cart_link("Cart", "nav-cart") }} <span>{{ badge|cart_item_count }}</span> {{ badge|cart_summary }}{% if badge|cart_is_empty %} empty{% endif %}</nav>"#,
    ext = "html"
)]
struct Header<'a> {
    badge: &'a CartBadge,
}

fn money_math(c: &mut Criterion) {
    let lines = lines(100);
    let discount = NewDiscount::percent("SUMMER25", Decimal::from(25)).preview();
    c.bench_function("money math: subtotal, discount of 100 lines", |b| {
        b.iter(|| {
            let view = CartView::from_lines(black_box(lines.clone()));
            let sub = view.subtotal();
            black_box((sub, discount.amount(sub), view.count()))
        })
    });
}

fn serialisation(c: &mut Criterion) {
    let payload_text = {
        let mut map = serde_json::Map::new();
        for l in lines(100) {
            map.insert(
                l.product.to_string(),
                serde_json::json!({"quantity": l.quantity, "unit_price": l.unit_price.to_string()}),
            );
        }
        serde_json::Value::Object(map).to_string()
    };
    c.bench_function("serialisation: parse + to_json of 100 lines", |b| {
        b.iter(|| {
            let payload = CartPayload::parse(black_box(&payload_text)).expect("valid payload");
            black_box(payload.to_json().to_string())
        })
    });
}

fn header_filters(c: &mut Criterion) {
    let badge = CartBadge::new(12, Decimal::new(123456, 2), "$", "/cart");
    c.bench_function("filters: render a header with all four", |b| {
        b.iter(|| {
            black_box(
                Header {
                    badge: black_box(&badge),
                }
                .render()
                .expect("renders"),
            )
        })
    });
}

criterion_group!(benches, money_math, serialisation, header_filters);
criterion_main!(benches);
