//! The cart facade on every backend: add, update, remove, clear, add_bulk, reads, money
//! math, caching, events, plug-ins and the guarantees the original lacked.
//! Ids in comments (ADD-05, …) point at `shared/spec/reference-behaviors.md`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum_cart::{
    async_trait, AddOptions, BoxError, CartError, CartEvent, CartView, InventoryChecker, Line,
    LineOptions, MemorySession, MergeStrategy, Product, SessionAdapter, ShippingCalculator,
    ShippingOption, TaxCalculator,
};
use common::{d, item, p, Harness, TestCatalog};
use rust_decimal::Decimal;

backend_tests!(
    first_add_creates_the_row_and_stores_its_id_in_the_session,
    reads_alone_create_no_row,
    add_accumulates_and_latest_price_wins,
    add_rejects_bad_quantities_and_changes_nothing,
    add_rejects_bad_prices,
    max_quantity_is_enforced_on_add_update_and_bulk,
    validate_price_and_inventory_options,
    update_sets_quantity_and_zero_removes,
    update_and_remove_of_unknown_product,
    remove_keeps_other_lines,
    clear_keeps_the_row,
    add_bulk_is_all_or_nothing_and_replaces,
    same_id_in_two_kinds_is_two_lines,
    money_is_exact_with_two_places,
    tax_and_shipping_plugins_run_once_per_value,
    total_is_clamped_and_rounded_half_up,
    cache_is_per_value_and_dropped_by_changes,
    items_with_products_calls_the_catalogue_once_per_kind,
    events_follow_committed_changes,
    stale_or_checked_out_session_id_gets_a_fresh_cart,
    checked_out_cart_refuses_every_change,
    concurrent_adds_lose_nothing,
    concurrent_first_adds_make_one_line,
    lines_keep_insertion_order,
    the_cart_cache_sees_every_change_made_through_its_carts,
);

async fn first_add_creates_the_row_and_stores_its_id_in_the_session(h: Harness) {
    // INIT-01, INIT-02, INIT-03
    let carts = h.carts();
    let session = MemorySession::default();
    let mut cart = carts.open(session.clone()).await.unwrap();
    assert_eq!(session.cart_id().await.unwrap(), None);
    cart.add(&p("book", 1), d("10.00"), 2).await.unwrap();
    let id = session
        .cart_id()
        .await
        .unwrap()
        .expect("id stored in the session");
    assert_eq!(cart.id().await.unwrap(), Some(id));
    assert_eq!(
        session.get("CART-ID").await.unwrap().as_deref(),
        Some(id.to_string().as_str())
    );

    let again = carts.open(session.clone()).await.unwrap();
    assert_eq!(
        again.count().await.unwrap(),
        2,
        "a second facade on the same session sees the same cart"
    );
    assert_eq!(again.id().await.unwrap(), Some(id));
}

async fn reads_alone_create_no_row(h: Harness) {
    // "Lazy rows": counts, totals, iteration and checkout checks create nothing.
    let carts = h.carts();
    let session = MemorySession::default();
    let cart = carts.open(session.clone()).await.unwrap();
    assert_eq!(cart.count().await.unwrap(), 0);
    assert!(cart.is_empty().await.unwrap());
    assert_eq!(cart.total().await.unwrap().to_string(), "0.00");
    assert!(cart.lines().await.unwrap().is_empty());
    assert!(matches!(
        cart.can_checkout().await,
        Err(CartError::EmptyCart)
    ));
    let mut cart = cart;
    cart.clear().await.unwrap();
    cart.remove_discount().await.unwrap();
    assert_eq!(cart.id().await.unwrap(), None);
    assert_eq!(session.cart_id().await.unwrap(), None);
    assert!(matches!(
        cart.update(&p("book", 1), 1, None).await,
        Err(CartError::ItemDoesNotExist(_))
    ));
    assert_eq!(
        session.cart_id().await.unwrap(),
        None,
        "a refused change creates no row either"
    );
}

async fn add_accumulates_and_latest_price_wins(h: Harness) {
    // ADD-01..04, ADD-07
    let mut cart = h.carts().new_cart();
    let book = p("book", 1);
    let line = cart.add(&book, d("5.00"), 2).await.unwrap();
    assert_eq!(line.quantity, 2);
    let line = cart.add(&book, d("7.50"), 3).await.unwrap();
    assert_eq!(line.quantity, 5, "ADD-03: 2 + 3");
    assert_eq!(line.unit_price.to_string(), "7.50", "ADD-04: latest price");
    assert_eq!(
        cart.line(&book)
            .await
            .unwrap()
            .unwrap()
            .unit_price
            .to_string(),
        "7.50"
    );
    assert_eq!(cart.count().await.unwrap(), 5);
    assert_eq!(cart.summary().await.unwrap().to_string(), "37.50");
    cart.add(&p("book", 2), Decimal::ZERO, 5).await.unwrap();
    assert_eq!(
        cart.summary().await.unwrap().to_string(),
        "37.50",
        "ADD-08: price 0.00 allowed"
    );
}

async fn add_rejects_bad_quantities_and_changes_nothing(h: Harness) {
    // ADD-05, "Bounded input"
    let mut cart = h.carts().new_cart();
    let book = p("book", 1);
    cart.add(&book, d("1.00"), 3).await.unwrap();
    for q in [0, -1, -100] {
        let err = cart.add(&book, d("1.00"), q).await.unwrap_err();
        assert_eq!(err.to_string(), "Quantity must be at least 1.");
    }
    for q in [1_000_000_000_000, i64::MAX] {
        let err = cart.add(&book, d("1.00"), q).await.unwrap_err();
        assert_eq!(err.to_string(), "Quantity cannot exceed 1000000000.");
    }
    // An accumulation past the hard limit is refused without overflow.
    cart.add(&book, d("1.00"), 999_999_990).await.unwrap();
    let err = cart.add(&book, d("1.00"), 20).await.unwrap_err();
    assert!(matches!(err, CartError::InvalidQuantity(_)));
    cart.refresh().await.unwrap();
    assert_eq!(cart.count().await.unwrap(), 999_999_993);
}

async fn add_rejects_bad_prices(h: Harness) {
    // Weakness 7 / 15: no negative, no 3-decimal rounding, no overflow.
    let mut cart = h.carts().new_cart();
    let book = p("book", 1);
    let neg = cart.add(&book, d("-5.00"), 1).await.unwrap_err();
    assert_eq!(neg.to_string(), "Unit price cannot be negative, got -5.00.");
    let three = cart.add(&book, d("9.999"), 1).await.unwrap_err();
    assert_eq!(
        three.to_string(),
        "Unit price must have at most 2 decimal places, got 9.999."
    );
    let huge = cart.add(&book, d("1000000000000"), 1).await.unwrap_err();
    assert!(matches!(huge, CartError::InvalidPrice(_)));
    assert!(cart.is_empty().await.unwrap());
    let ok = cart.add(&book, d("15.5"), 3).await.unwrap();
    assert_eq!(ok.unit_price.to_string(), "15.50");
    assert_eq!(ok.total_price().to_string(), "46.50");
    // Kinds and ids that cannot be stored are refused before the database.
    assert!(matches!(
        axum_cart::ProductRef::new("Bad Kind", 1),
        Err(CartError::InvalidProduct(_))
    ));
    assert!(matches!(
        axum_cart::ProductRef::new("book", -1),
        Err(CartError::InvalidProduct(_))
    ));
}

async fn max_quantity_is_enforced_on_add_update_and_bulk(h: Harness) {
    // MAXQ-01..06
    let mut cart = h.builder().max_quantity_per_item(10).build().new_cart();
    let book = p("book", 1);
    assert_eq!(
        cart.add(&book, d("1.00"), 11)
            .await
            .unwrap_err()
            .to_string(),
        "Quantity cannot exceed 10."
    );
    assert_eq!(
        cart.add(&book, d("1.00"), 10).await.unwrap().quantity,
        10,
        "MAXQ-03: equal is fine"
    );
    cart.update(&book, 8, None).await.unwrap();
    let err = cart.add(&book, d("1.00"), 5).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "Quantity cannot exceed 10.",
        "MAXQ-04: 8 + 5"
    );
    assert_eq!(
        cart.line(&book).await.unwrap().unwrap().quantity,
        8,
        "and the line stays at 8"
    );
    assert_eq!(
        cart.update(&book, 11, None).await.unwrap_err().to_string(),
        "Quantity cannot exceed 10."
    );
    let bulk = cart
        .add_bulk(vec![Line::new(p("book", 2), 11, d("1.00"))])
        .await
        .unwrap_err();
    assert_eq!(bulk.to_string(), "Quantity cannot exceed 10.");
    let unlimited = h.carts();
    let mut other = unlimited.new_cart();
    assert_eq!(
        other.add(&book, d("1.00"), 1000).await.unwrap().quantity,
        1000,
        "MAXQ-01"
    );
}

async fn validate_price_and_inventory_options(h: Harness) {
    // PRICE-01..07, INV-04..07
    struct Stock(Arc<AtomicU64>);
    #[async_trait]
    impl InventoryChecker for Stock {
        async fn check(&self, _: &dyn Product, quantity: i64) -> Result<bool, BoxError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(quantity <= 5)
        }
        async fn reserve(&self, _: &dyn Product, _: i64) -> Result<bool, BoxError> {
            panic!("the library never reserves stock")
        }
    }
    let calls = Arc::new(AtomicU64::new(0));
    let carts = h.builder().inventory_checker(Stock(calls.clone())).build();
    let mut cart = carts.new_cart();
    let coffee = item("coffee", 1, "19.99");
    let err = cart
        .add_with(&coffee, d("9.99"), 1, AddOptions::new().validate_price())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "Price mismatch: expected 19.99, got 9.99.");
    cart.add_with(&coffee, d("19.99"), 1, AddOptions::new().validate_price())
        .await
        .unwrap();
    cart.add(&coffee, d("0.01"), 1).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "INV-04: no check unless asked"
    );

    cart.add_with(&coffee, d("19.99"), 3, AddOptions::new().check_inventory())
        .await
        .unwrap();
    assert_eq!(cart.line(&coffee).await.unwrap().unwrap().quantity, 5);
    let err = cart
        .add_with(&coffee, d("19.99"), 1, AddOptions::new().check_inventory())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CartError::InsufficientStock { quantity: 6, .. }),
        "{err}"
    );
    assert_eq!(
        cart.line(&coffee).await.unwrap().unwrap().quantity,
        5,
        "INV-05: unchanged"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

async fn update_sets_quantity_and_zero_removes(h: Harness) {
    // UPD-01..04
    let mut cart = h.carts().new_cart();
    let book = p("book", 1);
    cart.add(&book, d("10.00"), 3).await.unwrap();
    assert_eq!(cart.update(&book, 10, None).await.unwrap().quantity, 10);
    assert_eq!(
        cart.line(&book)
            .await
            .unwrap()
            .unwrap()
            .unit_price
            .to_string(),
        "10.00",
        "UPD-02: price kept"
    );
    let line = cart.update(&book, 10, Some(d("9.99"))).await.unwrap();
    assert_eq!(line.unit_price.to_string(), "9.99");
    assert_eq!(
        cart.update(&book, -1, None).await.unwrap_err().to_string(),
        "Quantity cannot be negative."
    );
    cart.update(&book, 0, None).await.unwrap();
    assert!(cart.is_empty().await.unwrap());
    assert!(cart.id().await.unwrap().is_some(), "the row stays");
}

async fn update_and_remove_of_unknown_product(h: Harness) {
    // UPD-05, UPD-06, REM-02
    let mut cart = h.carts().new_cart();
    cart.add(&p("book", 1), d("1.00"), 1).await.unwrap();
    let ghost = p("book", 999);
    assert_eq!(
        cart.update(&ghost, 2, None).await.unwrap_err().to_string(),
        "Product book:999 is not in this cart."
    );
    assert!(
        matches!(
            cart.update(&ghost, -1, None).await,
            Err(CartError::InvalidQuantity(_))
        ),
        "UPD-06 order"
    );
    assert_eq!(
        cart.remove(&ghost).await.unwrap_err().to_string(),
        "Product book:999 is not in this cart."
    );
    assert_eq!(cart.count().await.unwrap(), 1);
}

async fn remove_keeps_other_lines(h: Harness) {
    // REM-01, REM-03
    let mut cart = h.carts().new_cart();
    cart.add(&p("book", 1), d("1.00"), 1).await.unwrap();
    cart.add(&p("book", 2), d("1.00"), 4).await.unwrap();
    cart.remove(&p("book", 1)).await.unwrap();
    assert_eq!(cart.unique_count().await.unwrap(), 1);
    assert_eq!(cart.count().await.unwrap(), 4);
    assert!(!cart.contains(&p("book", 1)).await.unwrap());
    assert!(cart.contains(&p("book", 2)).await.unwrap());
}

async fn clear_keeps_the_row(h: Harness) {
    // CLR-01, CLR-02
    let mut cart = h.carts().new_cart();
    cart.add(&p("book", 1), d("1.00"), 1).await.unwrap();
    let id = cart.id().await.unwrap();
    cart.clear().await.unwrap();
    assert!(cart.is_empty().await.unwrap());
    assert_eq!(cart.id().await.unwrap(), id);
    cart.clear().await.unwrap();
    cart.add(&p("book", 1), d("1.00"), 1).await.unwrap();
    assert_eq!(cart.id().await.unwrap(), id);
}

async fn add_bulk_is_all_or_nothing_and_replaces(h: Harness) {
    // BULK-01..05
    let mut cart = h.carts().new_cart();
    assert!(
        cart.add_bulk(Vec::new()).await.unwrap().is_empty(),
        "BULK-03"
    );
    assert_eq!(
        cart.id().await.unwrap(),
        None,
        "an empty bulk creates no row"
    );
    cart.add(&p("book", 1), d("10.00"), 1).await.unwrap();
    let lines = cart
        .add_bulk(vec![
            Line::new(p("book", 1), 5, d("15.00")),
            Line::new(p("book", 2), 2, d("20.00")),
            Line::new(p("book", 3), 3, d("30.00")),
        ])
        .await
        .unwrap();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0].quantity, 5);
    assert_eq!(
        cart.line(&p("book", 1)).await.unwrap().unwrap().quantity,
        5,
        "BULK-02: replaced"
    );
    assert_eq!(cart.count().await.unwrap(), 10);
    assert_eq!(cart.summary().await.unwrap().to_string(), "205.00");
    let err = cart
        .add_bulk(vec![
            Line::new(p("book", 4), 1, d("1.00")),
            Line::new(p("book", 5), 0, d("1.00")),
        ])
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "Quantity must be at least 1.");
    assert!(
        !cart.contains(&p("book", 4)).await.unwrap(),
        "BULK-05: nothing of the batch written"
    );
    let too_many: Vec<Line> = (0..1001)
        .map(|i| Line::new(p("book", i), 1, d("1.00")))
        .collect();
    assert!(matches!(
        cart.add_bulk(too_many).await,
        Err(CartError::InvalidPayload(_))
    ));
}

async fn same_id_in_two_kinds_is_two_lines(h: Harness) {
    // ADD-15
    let mut cart = h.carts().new_cart();
    cart.add(&p("book", 7), d("1.00"), 1).await.unwrap();
    cart.add(&p("coffee", 7), d("2.00"), 1).await.unwrap();
    assert_eq!(cart.unique_count().await.unwrap(), 2);
    cart.remove(&p("book", 7)).await.unwrap();
    assert!(cart.contains(&p("coffee", 7)).await.unwrap());
}

async fn money_is_exact_with_two_places(h: Harness) {
    // MON-01..03, ADD-11
    let mut cart = h.carts().new_cart();
    assert_eq!(cart.summary().await.unwrap().to_string(), "0.00", "MON-02");
    cart.add(&p("book", 1), d("10"), 2).await.unwrap();
    assert_eq!(
        cart.summary().await.unwrap().to_string(),
        "20.00",
        "MON-03: 20.00, not 20"
    );
    cart.add(&p("book", 2), d("0.1"), 3).await.unwrap();
    assert_eq!(cart.summary().await.unwrap().to_string(), "20.30");
    let mut big = h.carts().new_cart();
    big.add(&p("book", 1), d("0.01"), 999_999).await.unwrap();
    assert_eq!(big.summary().await.unwrap().to_string(), "9999.99");
    big.add(&p("book", 2), d("999999999999.99"), 1)
        .await
        .unwrap();
    assert_eq!(big.summary().await.unwrap().to_string(), "1000000009999.98");
    let totals = big.totals().await.unwrap();
    assert_eq!(totals.tax.to_string(), "0.00");
    assert_eq!(totals.shipping.to_string(), "0.00");
    assert_eq!(totals.discount.to_string(), "0.00");
    let options = big.shipping_options().await.unwrap();
    assert_eq!(
        options,
        vec![ShippingOption::new("free", "Free Shipping", Decimal::ZERO)],
        "MON-06"
    );
    assert_eq!(serde_json::to_value(&options[0]).unwrap()["price"], "0.00");
}

struct CountingTax(Arc<AtomicU64>, Decimal);
#[async_trait]
impl TaxCalculator for CountingTax {
    async fn calculate(&self, cart: &CartView) -> Result<Decimal, BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(cart.subtotal() * self.1)
    }
}

struct CountingShipping(Arc<AtomicU64>);
#[async_trait]
impl ShippingCalculator for CountingShipping {
    async fn calculate(&self, cart: &CartView) -> Result<Decimal, BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(if cart.subtotal() >= d("100") {
            Decimal::ZERO
        } else {
            d("9.99")
        })
    }
    async fn options(&self, cart: &CartView) -> Result<Vec<ShippingOption>, BoxError> {
        Ok(vec![ShippingOption::new(
            "standard",
            "Standard",
            self.calculate(cart).await?,
        )])
    }
}

async fn tax_and_shipping_plugins_run_once_per_value(h: Harness) {
    // CACHE-09..11, MON-04, MON-05
    let taxes = Arc::new(AtomicU64::new(0));
    let ships = Arc::new(AtomicU64::new(0));
    let carts = h
        .builder()
        .tax_calculator(CountingTax(taxes.clone(), d("0.08")))
        .shipping_calculator(CountingShipping(ships.clone()))
        .build();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("12.34"), 1).await.unwrap();
    for _ in 0..5 {
        assert_eq!(cart.tax().await.unwrap().to_string(), "0.99");
        assert_eq!(cart.shipping().await.unwrap().to_string(), "9.99");
        assert_eq!(cart.total().await.unwrap().to_string(), "23.32");
    }
    assert_eq!(taxes.load(Ordering::SeqCst), 1);
    assert_eq!(ships.load(Ordering::SeqCst), 1);
    cart.add(&p("book", 1), d("100.00"), 1).await.unwrap();
    assert_eq!(cart.tax().await.unwrap().to_string(), "16.00");
    assert_eq!(cart.shipping().await.unwrap().to_string(), "0.00");
    assert_eq!(
        taxes.load(Ordering::SeqCst),
        2,
        "CACHE-11: a change runs it again"
    );
    assert_eq!(ships.load(Ordering::SeqCst), 2);
}

async fn total_is_clamped_and_rounded_half_up(h: Harness) {
    // MON-09, MON-10
    let taxes = Arc::new(AtomicU64::new(0));
    let carts = h
        .builder()
        .tax_calculator(CountingTax(taxes, d("0.066688")))
        .build();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("100.00"), 2).await.unwrap();
    assert_eq!(
        cart.tax().await.unwrap().to_string(),
        "13.34",
        "13.3376 rounds half-up"
    );
    assert_eq!(cart.total().await.unwrap().to_string(), "213.34");
    let fixed = carts
        .create_discount(axum_cart::NewDiscount::fixed("BIG", d("500")))
        .await
        .unwrap();
    let mut small = h.carts().new_cart();
    small.add(&p("book", 1), d("100.00"), 2).await.unwrap();
    small.apply_discount(&fixed.code).await.unwrap();
    assert_eq!(small.discount_amount().await.unwrap().to_string(), "200.00");
    assert_eq!(
        small.total().await.unwrap().to_string(),
        "0.00",
        "never below zero"
    );
}

async fn cache_is_per_value_and_dropped_by_changes(h: Harness) {
    // CACHE-01, CACHE-04, CACHE-07
    let carts = h.carts();
    let session = MemorySession::default();
    let mut a = carts.open(session.clone()).await.unwrap();
    a.add(&p("book", 1), d("10.00"), 2).await.unwrap();
    let b = carts.open(session.clone()).await.unwrap();
    assert_eq!(b.summary().await.unwrap().to_string(), "20.00");
    a.add(&p("book", 1), d("10.00"), 1).await.unwrap();
    assert_eq!(
        a.summary().await.unwrap().to_string(),
        "30.00",
        "the writer sees its change"
    );
    assert_eq!(
        b.summary().await.unwrap().to_string(),
        "20.00",
        "another value keeps what it read"
    );
    b.refresh().await.unwrap();
    assert_eq!(b.summary().await.unwrap().to_string(), "30.00");
}

async fn items_with_products_calls_the_catalogue_once_per_kind(h: Harness) {
    // INS-09, INS-10 (done better): 100 lines of 3 kinds = 3 catalogue calls.
    let catalog = TestCatalog::default();
    let carts = h.builder().catalog(catalog.clone()).build();
    let mut cart = carts.new_cart();
    let mut lines = Vec::new();
    for i in 1..=34 {
        lines.push(Line::new(p("book", i), 1, d("1.00")));
        lines.push(Line::new(p("coffee", i), 1, d("1.00")));
        if i <= 32 {
            lines.push(Line::new(p("course", i), 1, d("1.00")));
        }
    }
    lines.push(Line::new(p("book", 500), 1, d("1.00"))); // gone from the catalogue
    cart.add_bulk(lines).await.unwrap();
    // The bulk add asked the catalogue for the products' rules: once per kind too.
    assert_eq!(catalog.calls.swap(0, Ordering::SeqCst), 3);
    assert_eq!(cart.unique_count().await.unwrap(), 101);
    let loaded = cart.items_with_products().await.unwrap();
    assert_eq!(catalog.calls.load(Ordering::SeqCst), 3);
    assert_eq!(loaded.len(), 101);
    assert_eq!(loaded[0].name(), "book 1");
    let gone = loaded
        .iter()
        .find(|l| l.line.product == p("book", 500))
        .unwrap();
    assert!(
        gone.product.is_none(),
        "a missing product is reported on its line"
    );
    assert_eq!(gone.name(), "book #500");
    let any: &dyn std::any::Any = &**loaded[0].product.as_ref().unwrap();
    assert_eq!(
        any.downcast_ref::<common::Item>()
            .unwrap()
            .price
            .to_string(),
        "11.00"
    );
}

async fn events_follow_committed_changes(h: Harness) {
    // SIG-01..07, with the deleted flag always present
    let carts = h.carts();
    let mut rx = carts.subscribe();
    let mut cart = carts.new_cart();
    let book = p("book", 1);
    cart.add(&book, d("1.00"), 1).await.unwrap();
    cart.add(&book, d("1.00"), 1).await.unwrap();
    cart.update(&book, 5, None).await.unwrap();
    cart.update(&book, 0, None).await.unwrap();
    cart.add(&book, d("1.00"), 1).await.unwrap();
    cart.remove(&book).await.unwrap();
    cart.clear().await.unwrap();
    let _ = cart.add(&book, d("1.00"), 0).await; // refused: no event
    let _ = cart.remove(&book).await; // refused: no event
    cart.add_bulk(vec![Line::new(p("book", 2), 2, d("1.00"))])
        .await
        .unwrap();
    let id = cart.id().await.unwrap().unwrap();
    let mut got = Vec::new();
    while let Ok(e) = rx.try_recv() {
        got.push(e);
    }
    let l = |q| Line::new(book.clone(), q, d("1.00"));
    assert_eq!(
        got,
        vec![
            CartEvent::ItemAdded {
                cart_id: id,
                line: l(1)
            },
            CartEvent::ItemAdded {
                cart_id: id,
                line: l(2)
            },
            CartEvent::ItemUpdated {
                cart_id: id,
                line: l(5),
                deleted: false
            },
            CartEvent::ItemUpdated {
                cart_id: id,
                line: l(5),
                deleted: true
            },
            CartEvent::ItemAdded {
                cart_id: id,
                line: l(1)
            },
            CartEvent::ItemRemoved {
                cart_id: id,
                product: book.clone(),
                options: LineOptions::new()
            },
            CartEvent::Cleared { cart_id: id },
            CartEvent::ItemAdded {
                cart_id: id,
                line: Line::new(p("book", 2), 2, d("1.00"))
            },
        ]
    );
}

async fn stale_or_checked_out_session_id_gets_a_fresh_cart(h: Harness) {
    // INIT-04, INIT-05 (lazily: no row until the first change)
    let carts = h.carts();
    let session = MemorySession::default();
    session.set("CART-ID", "99999").await.unwrap();
    let mut cart = carts.open(session.clone()).await.unwrap();
    assert!(cart.is_empty().await.unwrap());
    cart.add(&p("book", 1), d("1.00"), 1).await.unwrap();
    let first = session.cart_id().await.unwrap().unwrap();
    assert_ne!(first.get(), 99999);
    cart.checkout().await.unwrap();

    let mut next = carts.open(session.clone()).await.unwrap();
    assert!(
        next.is_empty().await.unwrap(),
        "CHK-12: the next request sees a fresh cart"
    );
    assert_eq!(
        session.cart_id().await.unwrap(),
        Some(first),
        "no row until a change"
    );
    next.add(&p("book", 2), d("1.00"), 1).await.unwrap();
    let second = session.cart_id().await.unwrap().unwrap();
    assert_ne!(second, first);
    assert!(
        carts.cart(first).is_checked_out().await.unwrap(),
        "the old row stays checked out"
    );

    // Garbage in the session is no id at all.
    for junk in ["abc", "-3", "0", " 42", "+42", "4_2", "٤٢"] {
        let s = MemorySession::default();
        s.set("CART-ID", junk).await.unwrap();
        assert_eq!(s.cart_id().await.unwrap(), None, "{junk:?}");
    }
}

async fn checked_out_cart_refuses_every_change(h: Harness) {
    // Weakness 5: no post-checkout edits, even through an old value.
    let carts = h.carts();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("1.00"), 1).await.unwrap();
    let id = cart.id().await.unwrap().unwrap();
    let mut stale = carts.cart(id);
    stale.count().await.unwrap();
    cart.checkout().await.unwrap();
    let book = p("book", 1);
    assert!(matches!(
        cart.add(&book, d("1.00"), 1).await,
        Err(CartError::CheckedOut)
    ));
    assert!(matches!(
        stale.add(&book, d("1.00"), 1).await,
        Err(CartError::CheckedOut)
    ));
    let mut stale = carts.cart(id);
    assert!(matches!(
        stale.update(&book, 3, None).await,
        Err(CartError::CheckedOut)
    ));
    assert!(matches!(
        stale.remove(&book).await,
        Err(CartError::CheckedOut)
    ));
    assert!(matches!(stale.clear().await, Err(CartError::CheckedOut)));
    assert!(matches!(
        stale
            .add_bulk(vec![Line::new(book.clone(), 1, d("1.00"))])
            .await,
        Err(CartError::CheckedOut)
    ));
    assert_eq!(
        axum_cart::http_status(&CartError::CheckedOut),
        axum::http::StatusCode::CONFLICT
    );
    let fresh = carts.cart(id);
    assert_eq!(
        fresh.count().await.unwrap(),
        1,
        "the order is as it was checked out"
    );
}

async fn concurrent_adds_lose_nothing(h: Harness) {
    // Weakness 3: 64 concurrent add(p, 1) on one cart end at 64.
    let carts = h.carts();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 2), d("1.00"), 1).await.unwrap();
    let id = cart.id().await.unwrap().unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let carts = carts.clone();
            tokio::spawn(async move { carts.cart(id).add(&p("book", 1), d("2.00"), 1).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let cart = carts.cart(id);
    assert_eq!(
        cart.line(&p("book", 1)).await.unwrap().unwrap().quantity,
        64,
        "{}",
        h.backend
    );
}

async fn concurrent_first_adds_make_one_line(h: Harness) {
    // Weakness 3: 32 concurrent first adds of one product give one line of 32, no error.
    let carts = h.carts();
    let mut cart = carts.new_cart();
    cart.add(&p("coffee", 9), d("1.00"), 1).await.unwrap();
    let id = cart.id().await.unwrap().unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let carts = carts.clone();
            tokio::spawn(async move { carts.cart(id).add(&p("book", 1), d("2.00"), 1).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let cart = carts.cart(id);
    assert_eq!(cart.unique_count().await.unwrap(), 2);
    assert_eq!(
        cart.line(&p("book", 1)).await.unwrap().unwrap().quantity,
        32,
        "{}",
        h.backend
    );
}

async fn lines_keep_insertion_order(h: Harness) {
    // INS-06/07 (done better: a stable order)
    let mut cart = h.carts().new_cart();
    for id in [5, 3, 9, 1] {
        cart.add(&p("book", id), d("1.00"), 1).await.unwrap();
    }
    cart.add(&p("book", 3), d("1.00"), 1).await.unwrap();
    let ids: Vec<i64> = cart
        .lines()
        .await
        .unwrap()
        .iter()
        .map(|l| l.product.id())
        .collect();
    assert_eq!(ids, vec![5, 3, 9, 1]);
}

async fn the_cart_cache_sees_every_change_made_through_its_carts(h: Harness) {
    // CartsBuilder::cache_carts: reads from memory, never a stale cart for a change made
    // through the same Carts.
    let carts = h.builder().cache_carts(true).build();
    let session = MemorySession::default();
    let mut a = carts.open(session.clone()).await.unwrap();
    a.add(&p("book", 1), d("10.00"), 2).await.unwrap();
    let seen = |s: &MemorySession| {
        let carts = carts.clone();
        let s = s.clone();
        async move { carts.open(s).await.unwrap().count().await.unwrap() }
    };
    assert_eq!(seen(&session).await, 2);
    a.update(&p("book", 1), 5, None).await.unwrap();
    assert_eq!(seen(&session).await, 5, "update seen by the next request");
    let mut b = carts.open(session.clone()).await.unwrap();
    b.add(&p("book", 2), d("1.00"), 1).await.unwrap();
    assert_eq!(
        seen(&session).await,
        6,
        "a change through another value is seen too"
    );
    carts
        .create_discount(axum_cart::NewDiscount::percent("CACHED", d("10")))
        .await
        .unwrap();
    b.apply_discount("CACHED").await.unwrap();
    let total = |s: &MemorySession| {
        let carts = carts.clone();
        let s = s.clone();
        async move {
            carts
                .open(s)
                .await
                .unwrap()
                .total()
                .await
                .unwrap()
                .to_string()
        }
    };
    assert_eq!(total(&session).await, "45.90");
    carts.set_discount_active("CACHED", false).await.unwrap();
    assert_eq!(
        total(&session).await,
        "51.00",
        "a switched-off code is seen at once"
    );
    let id = b.id().await.unwrap().unwrap();
    b.remove_discount().await.unwrap();
    b.checkout().await.unwrap();
    assert_eq!(
        seen(&session).await,
        0,
        "after checkout the visitor starts afresh"
    );
    assert!(carts.cart(id).is_checked_out().await.unwrap());
    // A merge drops the source from the cache.
    let s2 = MemorySession::default();
    let mut guest = carts.open(s2.clone()).await.unwrap();
    guest.add(&p("book", 3), d("1.00"), 4).await.unwrap();
    assert_eq!(seen(&s2).await, 4);
    guest.login("cache-user", MergeStrategy::Add).await.unwrap();
    let mut other = carts.new_cart();
    other.add(&p("book", 4), d("1.00"), 1).await.unwrap();
    other.bind_to_user(Some("cache-user")).await.unwrap();
    let mut again = carts.open(s2.clone()).await.unwrap();
    assert_eq!(again.count().await.unwrap(), 4);
    let mut src = carts.cart(other.id().await.unwrap().unwrap());
    again.merge(&mut src, MergeStrategy::Add).await.unwrap();
    assert_eq!(seen(&s2).await, 5, "merged lines seen");
    assert!(
        src.is_empty().await.unwrap(),
        "the merged source reads as gone"
    );
}
