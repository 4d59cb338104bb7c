//! Property tests through the public API: money math (lines, discounts, a real cart's
//! totals), merge strategies, the save / restore round trip, and `CartPayload` on arbitrary
//! JSON (never a panic, never a partial write). The cases that touch a database share one
//! SQLite temp file per test and run a small number of cases.

mod common;

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use axum_cart::{
    async_trait, BoxError, Cart, CartPayload, CartView, Carts, Line, MemorySession, MergeStrategy,
    NewDiscount, ProductRef, Store, TaxCalculator,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Value};
use sqlx::SqlitePool;

// ---- helpers -----------------------------------------------------------------------------

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// A migrated SQLite temp file, removed on drop.
struct Db {
    pool: SqlitePool,
    _file: common::TempSqlite,
}

impl Db {
    async fn new() -> Db {
        let file = common::TempSqlite::new().await;
        let pool = file.pool.clone();
        Db { pool, _file: file }
    }

    fn store(&self) -> Store {
        Store::from(self.pool.clone())
    }

    async fn rows(&self) -> (i64, i64, i64) {
        let count = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&self.pool)
                .await
                .expect("count")
        };
        (
            count("SELECT COUNT(*) FROM cart_carts").await,
            count("SELECT COUNT(*) FROM cart_items").await,
            count("SELECT COALESCE(SUM(current_uses), 0) FROM cart_discounts").await,
        )
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Runs a property with `cases` cases and panics with the minimal failing input.
fn check<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    if let Err(e) = runner(cases).run(&strategy, test) {
        panic!("{e}");
    }
}

fn has_two_places(d: Decimal) -> bool {
    d.scale() == 2
}

fn cents(d: Decimal) -> Decimal {
    let mut v = d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    v.rescale(2);
    v
}

fn err<T: std::fmt::Display>(e: T) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

// ---- strategies --------------------------------------------------------------------------

/// A price as stored: 0.00 to 999,999,999,999.99, as cents.
fn price() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        (0i64..=10_000).prop_map(|c| Decimal::new(c, 2)),
        (0i64..=99_999_999_999_999).prop_map(|c| Decimal::new(c, 2)),
    ]
}

fn kind() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("book".to_owned()),
        Just("coffee".to_owned()),
        "[a-z0-9_.-]{1,50}",
    ]
}

fn product() -> impl Strategy<Value = ProductRef> {
    (kind(), prop_oneof![0i64..=100, 0i64..=i64::MAX])
        .prop_map(|(k, id)| ProductRef::new(k, id).expect("valid product"))
}

/// Lines of distinct products with valid quantities (1..=1,000,000,000) and prices.
fn lines(max: usize) -> impl Strategy<Value = Vec<Line>> {
    proptest::collection::vec(
        (
            product(),
            prop_oneof![1i64..=99, 1i64..=1_000_000_000],
            price(),
        ),
        0..=max,
    )
    .prop_map(|raw| {
        let mut seen = BTreeSet::new();
        raw.into_iter()
            .filter(|(p, _, _)| seen.insert(p.clone()))
            .map(|(p, q, price)| Line::new(p, q, price))
            .collect()
    })
}

#[derive(Debug, Clone)]
enum DiscountSpec {
    None,
    Percent(Decimal),
    Fixed(Decimal),
}

fn discount() -> impl Strategy<Value = DiscountSpec> {
    prop_oneof![
        Just(DiscountSpec::None),
        (0i64..=10_000).prop_map(|c| DiscountSpec::Percent(Decimal::new(c, 2))),
        (0i64..=9_999_999_999).prop_map(|c| DiscountSpec::Fixed(Decimal::new(c, 2))),
    ]
}

fn new_discount(spec: &DiscountSpec, code: &str) -> Option<NewDiscount> {
    match spec {
        DiscountSpec::None => None,
        DiscountSpec::Percent(v) => Some(NewDiscount::percent(code, *v)),
        DiscountSpec::Fixed(v) => Some(NewDiscount::fixed(code, *v)),
    }
}

// ---- money math --------------------------------------------------------------------------

#[test]
fn line_totals_and_subtotals_are_exact_cents() {
    check(512, lines(30), |lines| {
        let view = CartView::from_lines(lines.clone());
        let exact: Decimal = lines
            .iter()
            .map(|l| Decimal::from(l.quantity) * l.unit_price)
            .sum();
        prop_assert!(has_two_places(view.subtotal()), "{}", view.subtotal());
        prop_assert!(view.subtotal() >= Decimal::ZERO);
        prop_assert_eq!(view.subtotal(), exact);
        prop_assert!(has_two_places(view.discount()));
        prop_assert_eq!(view.discount(), Decimal::ZERO);
        prop_assert_eq!(view.count(), lines.iter().map(|l| l.quantity).sum::<i64>());
        for l in &lines {
            prop_assert!(has_two_places(l.total_price()), "{}", l.total_price());
            prop_assert_eq!(l.total_price(), Decimal::from(l.quantity) * l.unit_price);
        }
        Ok(())
    });
}

#[test]
fn discount_amounts_are_cents_between_zero_and_the_subtotal() {
    let subtotal = prop_oneof![
        (0i64..=100_000).prop_map(|c| Decimal::new(c, 2)),
        (0i64..=i64::MAX).prop_map(|c| Decimal::new(c, 2)),
        // Subtotals a caller might pass that no cart has: negative, more places.
        (i64::MIN..=i64::MAX, 0u32..=6).prop_map(|(m, s)| Decimal::new(m, s)),
    ];
    check(2048, (discount(), subtotal), |(spec, subtotal)| {
        let Some(new) = new_discount(&spec, "PROP") else {
            return Ok(());
        };
        let discount = new.validate().map_err(err)?;
        let amount = discount.amount(subtotal);
        prop_assert!(has_two_places(amount), "{amount}");
        prop_assert!(amount >= Decimal::ZERO, "{amount}");
        prop_assert!(
            amount <= cents(subtotal.max(Decimal::ZERO)),
            "{amount} > {subtotal}"
        );
        let base = subtotal.max(Decimal::ZERO);
        let expected = match spec {
            DiscountSpec::Percent(v) => cents(base * v / Decimal::ONE_HUNDRED).min(cents(base)),
            DiscountSpec::Fixed(v) => cents(v.min(base)),
            DiscountSpec::None => Decimal::ZERO,
        };
        prop_assert_eq!(amount, expected);
        Ok(())
    });
}

/// A tax of `rate` percent of the discounted subtotal, not rounded: the cart rounds it.
struct RateTax(Decimal);

#[async_trait]
impl TaxCalculator for RateTax {
    async fn calculate(&self, cart: &CartView) -> Result<Decimal, BoxError> {
        Ok((cart.subtotal() - cart.discount()) * self.0 / Decimal::ONE_HUNDRED)
    }
}

#[test]
fn a_real_carts_totals_are_never_negative_and_always_two_places() {
    let rt = runtime();
    let db = rt.block_on(Db::new());
    let rate = (0i64..=3_000, 0u32..=3).prop_map(|(m, s)| Decimal::new(m, s));
    check(64, (lines(8), discount(), rate), |(lines, spec, rate)| {
        rt.block_on(async {
            let carts = Carts::builder(db.store())
                .tax_calculator(RateTax(rate))
                .build();
            let mut cart = carts.open(MemorySession::default()).await.map_err(err)?;
            let code = unique("T");
            if !lines.is_empty() {
                cart.add_bulk(lines.clone()).await.map_err(err)?;
            }
            if let Some(new) = new_discount(&spec, &code) {
                carts.create_discount(new).await.map_err(err)?;
                cart.apply_discount(&code).await.map_err(err)?;
            }
            let t = cart.totals().await.map_err(err)?;
            for (name, v) in [
                ("subtotal", t.subtotal),
                ("discount", t.discount),
                ("tax", t.tax),
                ("shipping", t.shipping),
                ("total", t.total),
            ] {
                prop_assert!(has_two_places(v), "{name} = {v}");
                prop_assert!(v >= Decimal::ZERO, "{name} = {v}");
            }
            prop_assert!(t.discount <= t.subtotal);
            prop_assert_eq!(t.subtotal, CartView::from_lines(lines.clone()).subtotal());
            prop_assert_eq!(
                t.total,
                cents((t.subtotal - t.discount + t.tax + t.shipping).max(Decimal::ZERO))
            );
            prop_assert_eq!(t.count, lines.iter().map(|l| l.quantity).sum::<i64>());
            prop_assert_eq!(cart.total().await.map_err(err)?, t.total);
            Ok(())
        })
    });
}

// ---- merge strategies --------------------------------------------------------------------

#[test]
fn merge_strategies_combine_quantities_and_clamp_to_the_maximum() {
    let rt = runtime();
    let db = rt.block_on(Db::new());
    let strategy = prop_oneof![
        Just(MergeStrategy::Add),
        Just(MergeStrategy::Replace),
        Just(MergeStrategy::KeepHigher),
    ];
    let input = (
        1u32..=200,
        proptest::collection::vec((0i64..6, 0i64..=200, 0i64..=200), 1..6),
        strategy,
    );
    check(64, input, |(max, specs, strategy)| {
        rt.block_on(async {
            let max_q = i64::from(max);
            let carts = Carts::builder(db.store())
                .max_quantity_per_item(max)
                .build();
            let mut target = carts.open(MemorySession::default()).await.map_err(err)?;
            let mut source = carts.open(MemorySession::default()).await.map_err(err)?;
            // Per product: quantity in the target and in the source (0 = no line).
            let mut seen = BTreeSet::new();
            let mut expect = Vec::new();
            let price = Decimal::new(250, 2);
            for (id, t, s) in specs {
                if !seen.insert(id) {
                    continue;
                }
                let (t, s) = (t.min(max_q), s.min(max_q));
                let p = ProductRef::new("book", id).map_err(err)?;
                if t > 0 {
                    target.add(&p, price, t).await.map_err(err)?;
                }
                if s > 0 {
                    source.add(&p, price, s).await.map_err(err)?;
                }
                let q = match (t, s) {
                    (0, 0) => 0,
                    (t, 0) => t,
                    (0, s) => s,
                    (t, s) => match strategy {
                        MergeStrategy::Add => (t + s).min(max_q),
                        MergeStrategy::Replace => s,
                        _ => t.max(s),
                    },
                };
                expect.push((p, q));
            }
            let source_id = source.id().await.map_err(err)?;
            target.merge(&mut source, strategy).await.map_err(err)?;
            target.refresh().await.map_err(err)?;
            for (p, q) in &expect {
                let got = target.line(p).await.map_err(err)?.map(|l| l.quantity);
                let want = (*q > 0).then_some(*q);
                prop_assert_eq!(got, want, "{} with {:?}", p, strategy);
                if let Some(g) = got {
                    prop_assert!((1..=max_q).contains(&g));
                }
            }
            prop_assert_eq!(
                target.unique_count().await.map_err(err)?,
                expect.iter().filter(|(_, q)| *q > 0).count()
            );
            if let Some(id) = source_id {
                let gone = carts.cart(id);
                prop_assert!(gone.is_empty().await.map_err(err)?, "the source is emptied");
            }
            Ok(())
        })
    });
}

// ---- save and restore --------------------------------------------------------------------

#[test]
fn serialisation_round_trips_through_json_text() {
    let rt = runtime();
    let db = rt.block_on(Db::new());
    check(64, (lines(12), any::<bool>()), |(lines, with_code)| {
        rt.block_on(async {
            let carts = Carts::builder(db.store()).build();
            let mut cart = carts.open(MemorySession::default()).await.map_err(err)?;
            if !lines.is_empty() {
                cart.add_bulk(lines.clone()).await.map_err(err)?;
            }
            let code = unique("R");
            if with_code && !lines.is_empty() {
                carts
                    .create_discount(NewDiscount::fixed(&code, Decimal::ONE))
                    .await
                    .map_err(err)?;
                cart.apply_discount(&code).await.map_err(err)?;
            }
            let text = cart
                .to_serializable()
                .await
                .map_err(err)?
                .to_json()
                .to_string();
            let payload = CartPayload::parse(&text).map_err(|e| err(format!("{e}: {text}")))?;
            let mut fresh = carts.open(MemorySession::default()).await.map_err(err)?;
            fresh.from_serializable(&payload).await.map_err(err)?;
            let sorted = |mut l: Vec<Line>| {
                l.sort_by(|a, b| a.product.cmp(&b.product));
                l
            };
            prop_assert_eq!(
                sorted(fresh.lines().await.map_err(err)?),
                sorted(cart.lines().await.map_err(err)?)
            );
            prop_assert_eq!(sorted(payload.lines().to_vec()), sorted(lines.clone()));
            prop_assert_eq!(
                fresh.discount_code().await.map_err(err)?,
                cart.discount_code().await.map_err(err)?
            );
            Ok(())
        })
    });
}

// ---- arbitrary JSON ----------------------------------------------------------------------

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
        "-?[0-9]{0,20}(\\.[0-9]{0,4})?".prop_map(Value::String),
    ]
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,12}",
        "(book|coffee|[a-z]{1,3}|Book|)[:](-?[0-9]{1,20}|x)?",
        Just("__discount__".to_owned()),
        Just("__other__".to_owned()),
        Just("quantity".to_owned()),
        Just("unit_price".to_owned()),
        Just("code".to_owned()),
    ]
}

/// A payload that looks right more often than not: `"kind:id"` keys of the test catalogue
/// (and a few it does not have), line objects whose optional fields mostly match, prices
/// that are the catalogue's or not, quantities around the configured maximum, now and then
/// an entry that is arbitrary JSON, and a discount entry.
fn payload_like() -> impl Strategy<Value = Value> {
    let line = (
        prop_oneof![Just("book"), Just("coffee")],
        1i64..=10,
        prop_oneof![9 => (1i64..=20).prop_map(Value::from), 1 => scalar()],
        prop_oneof![
            3 => Just(None),
            1 => (0i64..=2_000).prop_map(Some),
        ],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(kind, id, quantity, price, with_ref, with_total)| {
            // By default the catalogue's price (0.01 × id for books).
            let cents = price.unwrap_or(id);
            let unit_price = Decimal::new(cents, 2);
            let mut m = Map::new();
            if let (true, Some(q)) = (with_total, quantity.as_i64()) {
                let total = Decimal::from(q) * unit_price;
                m.insert("total_price".into(), Value::String(total.to_string()));
            }
            m.insert("quantity".into(), quantity);
            m.insert("unit_price".into(), Value::String(unit_price.to_string()));
            if with_ref {
                m.insert("kind".into(), Value::from(kind));
                m.insert("id".into(), Value::from(id));
            }
            (format!("{kind}:{id}"), Value::Object(m))
        });
    let entry = prop_oneof![
        9 => line,
        1 => (key(), arbitrary_json()),
    ];
    (
        proptest::collection::vec(entry, 0..6),
        prop_oneof![
            2 => Just(None),
            2 => Just(Some(serde_json::json!({"code": "SAVE10"}))),
            1 => ".{0,60}".prop_map(|c| Some(serde_json::json!({ "code": c }))),
            1 => arbitrary_json().prop_map(Some),
        ],
    )
        .prop_map(|(entries, discount)| {
            let mut m: Map<String, Value> = entries.into_iter().collect();
            if let Some(d) = discount {
                m.insert("__discount__".into(), d);
            }
            Value::Object(m)
        })
}

#[test]
fn parse_of_arbitrary_text_never_panics() {
    check(4096, ".{0,200}", |text| {
        let _ = CartPayload::parse(&text);
        Ok(())
    });
    check(2048, arbitrary_json(), |value| {
        let a = CartPayload::from_json(&value);
        let b = CartPayload::parse(&value.to_string());
        // Text and value agree; an accepted payload serialises back to what parses the same.
        prop_assert_eq!(a.is_ok(), b.is_ok());
        if let Ok(p) = a {
            prop_assert_eq!(CartPayload::from_json(&p.to_json()).map_err(err)?, p);
        }
        Ok(())
    });
}

/// Books 1..=8 at 0.01 × id: with it, `from_serializable` must refuse a product the
/// catalogue does not have, or a price that is not the catalogue's.
struct Books;

#[async_trait]
impl axum_cart::Catalog for Books {
    async fn products(
        &self,
        kind: &str,
        ids: &[i64],
    ) -> Result<Vec<std::sync::Arc<dyn axum_cart::Product>>, BoxError> {
        #[derive(Debug)]
        struct Book(i64);
        impl axum_cart::Product for Book {
            fn kind(&self) -> &str {
                "book"
            }
            fn id(&self) -> i64 {
                self.0
            }
            fn price(&self) -> Option<Decimal> {
                Some(Decimal::new(self.0, 2))
            }
        }
        Ok(if kind == "book" {
            ids.iter()
                .filter(|i| (1..=8).contains(*i))
                .map(|i| std::sync::Arc::new(Book(*i)) as std::sync::Arc<dyn axum_cart::Product>)
                .collect()
        } else {
            Vec::new()
        })
    }
}

#[test]
fn restoring_a_parsed_payload_is_all_or_nothing() {
    let rt = runtime();
    let db = rt.block_on(Db::new());
    rt.block_on(async {
        let carts = Carts::builder(db.store()).build();
        carts
            .create_discount(NewDiscount::percent("SAVE10", Decimal::from(10)))
            .await
            .expect("discount");
    });
    let accepted = AtomicU64::new(0);
    let refused = AtomicU64::new(0);
    let parsed = AtomicU64::new(0);
    check(
        256,
        (payload_like(), any::<bool>(), 1u32..=10),
        |(value, catalogue, max)| {
            let Ok(payload) = CartPayload::from_json(&value) else {
                // Parsing refused it: nothing to restore.
                return Ok(());
            };
            parsed.fetch_add(1, Ordering::SeqCst);
            rt.block_on(async {
                let mut builder = Carts::builder(db.store()).max_quantity_per_item(max);
                if catalogue {
                    builder = builder.catalog(Books);
                }
                let carts = builder.build();
                let mut cart: Cart = carts.open(MemorySession::default()).await.map_err(err)?;
                let before = db.rows().await;
                match cart.from_serializable(&payload).await {
                    Ok(()) => {
                        accepted.fetch_add(1, Ordering::SeqCst);
                        let mut got = cart.lines().await.map_err(err)?;
                        let mut want = payload.lines().to_vec();
                        got.sort_by(|a, b| a.product.cmp(&b.product));
                        want.sort_by(|a, b| a.product.cmp(&b.product));
                        prop_assert_eq!(got, want);
                        let after = db.rows().await;
                        prop_assert_eq!(after.1 - before.1, payload.lines().len() as i64);
                        prop_assert_eq!(after.2, before.2, "no discount use is counted");
                    }
                    Err(e) => {
                        refused.fetch_add(1, Ordering::SeqCst);
                        prop_assert!(
                            axum_cart::http_status(&e).is_client_error(),
                            "a refused payload is the client's fault: {e}"
                        );
                        prop_assert_eq!(db.rows().await, before, "no partial write: {}", e);
                    }
                }
                Ok(())
            })
        },
    );
    let (accepted, refused) = (accepted.into_inner(), refused.into_inner());
    println!(
        "proptests: 256 payloads, {} parsed; restore: {accepted} accepted, {refused} refused",
        parsed.into_inner()
    );
    assert!(
        accepted > 10 && refused > 10,
        "both outcomes are exercised: {accepted} accepted, {refused} refused"
    );
}

#[test]
fn prices_in_payloads_are_strict() {
    // A property's anchor: the strict price grammar, checked against Decimal itself.
    check(1024, "-?[0-9]{0,16}(\\.[0-9]{0,4})?", |text| {
        let value = serde_json::json!({"book:1": {"quantity": 1, "unit_price": text}});
        let parsed = CartPayload::from_json(&value);
        let expected = Decimal::from_str(&text)
            .ok()
            .filter(|d| !d.is_sign_negative() || d.is_zero())
            .filter(|d| d.normalize().scale() <= 2)
            .filter(|d| *d <= Decimal::new(99_999_999_999_999, 2));
        match (&parsed, expected) {
            (Ok(p), Some(d)) => prop_assert_eq!(p.lines()[0].unit_price, d),
            (Err(_), None) => {}
            (got, want) => prop_assert!(false, "{text:?}: parsed {got:?}, expected {want:?}"),
        }
        Ok(())
    });
}

#[test]
fn one_product_spelt_two_ways_is_refused() {
    // "book:1" and "book:01" name the same product: restoring both would write the line
    // twice, with whichever quantity came last.
    let text = r#"{"book:1": {"quantity": 1, "unit_price": "1.00"},
                   "book:01": {"quantity": 5, "unit_price": "1.00"}}"#;
    let parsed = CartPayload::parse(text);
    assert!(parsed.is_err(), "{parsed:?}");
}

#[test]
fn keys_of_any_valid_product_parse_back() {
    // Kinds may start with "__" and ids may have 19 digits: a saved cart must restore.
    for (kind, id) in [
        ("__discount__", i64::MAX),
        ("__", 0),
        ("book", 1_000_000_000_000_000_000),
    ] {
        let line = Line::new(ProductRef::new(kind, id).expect("valid"), 1, Decimal::ONE);
        let payload = CartPayload::from_json(&CartView::from_lines(vec![line.clone()]).lines().iter().fold(
            Map::new(),
            |mut m, l| {
                m.insert(
                    l.product.to_string(),
                    serde_json::json!({"quantity": l.quantity, "unit_price": l.unit_price.to_string()}),
                );
                m
            },
        ).into());
        assert_eq!(
            payload.map(|p| p.lines().to_vec()).ok(),
            Some(vec![line]),
            "{kind}:{id}"
        );
    }
}
