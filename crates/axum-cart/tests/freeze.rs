//! Freeze before payment, on every backend: a frozen cart refuses changes to its lines and
//! discount (from any value over the row), keeps its prices at checkout, and thaws by
//! itself.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum_cart::{
    async_trait, BoxError, CartError, CartLayer, CartPayload, CartRouter, Catalog, Line,
    NewDiscount, PricePolicy, Product,
};
use rust_decimal::Decimal;
use serde_json::Value;
use tower::ServiceExt;
use tower_sessions::{MemoryStore, SessionManagerLayer};

use common::{d, item, p, Harness};

backend_tests!(
    a_frozen_cart_refuses_every_change_to_lines_and_discount,
    unfreeze_and_checkout_end_a_freeze_and_it_keeps_its_prices,
    a_freeze_expires_by_itself,
    adds_racing_a_freeze_are_before_it_or_refused,
    http_freeze_and_unfreeze,
);

fn frozen(result: Result<impl std::fmt::Debug, CartError>) {
    match result {
        Err(CartError::CartFrozen) => {}
        other => panic!("expected cart_frozen, got {other:?}"),
    }
}

async fn a_frozen_cart_refuses_every_change_to_lines_and_discount(h: Harness) {
    let carts = h.carts();
    carts
        .create_discount(NewDiscount::percent("TEN", d("10")))
        .await
        .unwrap();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("10.00"), 2).await.unwrap();
    cart.add(&p("book", 2), d("5.00"), 1).await.unwrap();
    cart.freeze().await.unwrap();
    assert!(cart.is_frozen().await.unwrap());
    let id = cart.id().await.unwrap().unwrap();
    // Every change, through this value and through another one over the same row (the
    // add is one statement, refused by the schema's guard).
    let mut other = carts.cart(id);
    frozen(cart.add(&p("book", 1), d("10.00"), 1).await);
    frozen(other.add(&p("book", 1), d("10.00"), 1).await);
    frozen(other.add(&p("book", 3), d("10.00"), 1).await);
    frozen(cart.update(&p("book", 1), 5, None).await);
    frozen(cart.remove(&p("book", 2)).await);
    frozen(other.clear().await);
    frozen(cart.apply_discount("TEN").await);
    frozen(other.add_bulk([Line::new(p("pen", 1), 1, d("1.00"))]).await);
    let payload =
        CartPayload::parse(r#"{"pen:1": {"quantity": 1, "unit_price": "1.00"}}"#).unwrap();
    frozen(other.from_serializable(&payload).await);
    let err = cart.add(&p("book", 1), d("10.00"), 1).await.unwrap_err();
    assert_eq!(err.code(), "cart_frozen");
    assert_eq!(axum_cart::http_status(&err), StatusCode::CONFLICT);
    cart.refresh().await.unwrap();
    assert_eq!(cart.count().await.unwrap(), 3, "nothing changed");
    assert_eq!(cart.summary().await.unwrap(), d("25.00"));
    assert_eq!(cart.discount_code().await.unwrap(), None);
    assert_eq!(h.raw.count("SELECT COUNT(*) FROM cart_items").await, 2);
    // An empty cart has nothing to pay for.
    let mut empty = carts.new_cart();
    assert!(matches!(empty.freeze().await, Err(CartError::EmptyCart)));
}

/// A catalogue whose one price can be changed while the test runs.
#[derive(Clone)]
struct Prices(Arc<Mutex<Decimal>>);

#[async_trait]
impl Catalog for Prices {
    async fn products(&self, kind: &str, ids: &[i64]) -> Result<Vec<Arc<dyn Product>>, BoxError> {
        let price = *self.0.lock().unwrap();
        Ok(match kind {
            "book" => ids
                .iter()
                .map(|id| {
                    let mut book = item("book", *id, "1.00");
                    book.price = price;
                    Arc::new(book) as Arc<dyn Product>
                })
                .collect(),
            _ => Vec::new(),
        })
    }
}

async fn unfreeze_and_checkout_end_a_freeze_and_it_keeps_its_prices(h: Harness) {
    let price = Arc::new(Mutex::new(d("10.00")));
    let carts = h
        .builder()
        .catalog(Prices(price.clone()))
        .checkout_prices(PricePolicy::Reprice)
        .build();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("10.00"), 2).await.unwrap();
    cart.freeze().await.unwrap();
    cart.unfreeze().await.unwrap();
    assert!(!cart.is_frozen().await.unwrap());
    cart.add(&p("book", 1), d("10.00"), 1).await.unwrap();
    cart.unfreeze().await.unwrap(); // not frozen: nothing to do

    cart.freeze().await.unwrap();
    // The price goes up while the payment runs: the frozen cart checks out at its own.
    *price.lock().unwrap() = d("12.00");
    let order = cart.checkout().await.unwrap();
    assert_eq!(order.totals.subtotal, d("30.00"));
    assert_eq!(order.lines[0].unit_price, d("10.00"));
    assert!(order.price_changes.is_empty());
    assert!(
        !cart.is_frozen().await.unwrap(),
        "the checkout ended the freeze"
    );
    assert!(matches!(cart.freeze().await, Err(CartError::CheckedOut)));

    // Unfrozen, the same change is repriced at checkout.
    let mut next = carts.new_cart();
    *price.lock().unwrap() = d("10.00");
    next.add(&p("book", 1), d("10.00"), 1).await.unwrap();
    next.freeze().await.unwrap();
    next.unfreeze().await.unwrap();
    *price.lock().unwrap() = d("12.00");
    let order = next.checkout().await.unwrap();
    assert_eq!(order.totals.subtotal, d("12.00"));
}

async fn a_freeze_expires_by_itself(h: Harness) {
    let carts = h
        .builder()
        .freeze_timeout(time::Duration::seconds(2))
        .build();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("10.00"), 1).await.unwrap();
    cart.freeze().await.unwrap();
    frozen(cart.add(&p("book", 1), d("10.00"), 1).await);
    // Times are whole seconds: a 2 s freeze lasts more than 1 s and at most 2 s.
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    cart.refresh().await.unwrap();
    assert!(!cart.is_frozen().await.unwrap());
    cart.add(&p("book", 1), d("10.00"), 1).await.unwrap();
    cart.update(&p("book", 1), 5, None).await.unwrap();
    cart.refresh().await.unwrap();
    assert_eq!(cart.count().await.unwrap(), 5);
}

async fn adds_racing_a_freeze_are_before_it_or_refused(h: Harness) {
    let carts = h.carts();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("1.00"), 1).await.unwrap();
    let id = cart.id().await.unwrap().unwrap();
    let adds: Vec<_> = (0..20)
        .map(|i| {
            let carts = carts.clone();
            tokio::spawn(async move {
                let mut c = carts.cart(id);
                c.add(&p("book", 1 + i % 3), d("1.00"), 1).await
            })
        })
        .collect();
    cart.freeze().await.unwrap();
    let mut added = 0;
    for add in adds {
        match add.await.unwrap() {
            Ok(_) => added += 1,
            Err(CartError::CartFrozen) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    cart.refresh().await.unwrap();
    assert!(cart.is_frozen().await.unwrap());
    assert_eq!(
        cart.count().await.unwrap(),
        1 + added,
        "every acknowledged add is there, no refused one is"
    );
    // And nothing gets in after the freeze.
    frozen(carts.cart(id).add(&p("book", 1), d("1.00"), 1).await);
}

async fn http_freeze_and_unfreeze(h: Harness) {
    let app = CartRouter::new()
        .build()
        .layer(common::problems_checked())
        .layer(CartLayer::new(
            h.builder().catalog(common::TestCatalog::default()).build(),
        ))
        .layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false));
    let mut cookies: BTreeMap<String, String> = BTreeMap::new();
    let mut post = async |path: &str| -> (StatusCode, Value) {
        let mut req = Request::post(path)
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/json");
        if !cookies.is_empty() {
            let c: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header(header::COOKIE, c.join("; "));
        }
        let res = app
            .clone()
            .oneshot(req.body(Body::from("{}")).unwrap())
            .await
            .unwrap();
        for set in res.headers().get_all(header::SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            cookies.insert(k.to_owned(), v.to_owned());
        }
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    };
    let (status, body) = post("/cart/freeze").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("empty_cart"))
    );
    let (status, _) = post("/cart/add/book/1").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = post("/cart/freeze").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["frozen"], true);
    for path in ["/cart/add/book/1", "/cart/remove/book/1", "/cart/clear"] {
        let (status, body) = post(path).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::CONFLICT, Some("cart_frozen")),
            "{path}: {body}"
        );
        assert!(body["error"].as_str().unwrap().contains("frozen"));
    }
    let (status, body) = post("/cart/unfreeze").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["frozen"], false);
    assert_eq!(body["count"], 1, "nothing changed while it was frozen");
    let (status, body) = post("/cart/add/book/1").await;
    assert_eq!((status, body["count"].as_i64()), (StatusCode::OK, Some(2)));
}
