//! Prices that stay honest, on every backend: a line keeps the price of its add, the cart
//! (API, JSON and page) says when the catalogue's price differs, and checkout reprices,
//! refuses or keeps as configured, also while prices change under it.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use axum_cart::{
    async_trait, BoxError, Cart, CartDetails, CartError, CartId, CartLayer, CartRouter, CartView,
    Carts, Catalog, Line, NewDiscount, NoCatalog, Order, PricePolicy, Product, Relay,
    TaxCalculator,
};
use common::{d, p, Harness};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_sessions::{MemoryStore, SessionManagerLayer};

backend_tests!(
    loaded_lines_and_details_tell_changed_prices,
    reprice_checks_out_at_the_current_price,
    a_refused_repriced_checkout_writes_nothing,
    refuse_refuses_and_writes_nothing,
    keep_keeps_the_prices_of_the_adds,
    a_product_gone_refuses_under_every_policy,
    without_a_catalogue_prices_are_never_compared,
    a_line_added_during_checkout_is_read_again,
    a_price_written_during_checkout_is_compared_under_the_lock,
    reprice_is_consistent_while_prices_change,
    refuse_never_checks_out_a_changed_cart,
    http_cart_shows_price_changes_and_warnings,
    http_checkout_reprices_and_shows_the_changes,
    http_refusals_are_409_and_list_what_changed,
);

// ---- a catalogue whose prices change -----------------------------------------------------

/// A product of the board.
struct Thing {
    kind: String,
    id: i64,
    name: String,
    price: Option<Decimal>,
}

impl Product for Thing {
    fn kind(&self) -> &str {
        &self.kind
    }
    fn id(&self) -> i64 {
        self.id
    }
    fn price(&self) -> Option<Decimal> {
        self.price
    }
    fn name(&self) -> String {
        self.name.clone()
    }
}

#[derive(Default)]
struct BoardState {
    /// (kind, id) → (name, base price).
    products: BTreeMap<(String, i64), (String, Option<Decimal>)>,
    /// Every price is its base + generation × id.
    generation: i64,
    /// Each reading moves the generation on by one (so no two readings agree).
    drift: bool,
    /// A change another request makes right after the next reading.
    race: Option<(Carts, CartId, Line)>,
}

/// A catalogue the test changes while it runs; one reading per call.
#[derive(Clone, Default)]
struct Board {
    state: Arc<Mutex<BoardState>>,
    calls: Arc<AtomicU64>,
}

impl Board {
    fn with(products: &[(&str, i64, &str, Option<&str>)]) -> Board {
        let board = Board::default();
        for (kind, id, name, price) in products {
            board.put(kind, *id, name, price.map(d));
        }
        board
    }

    fn state(&self) -> std::sync::MutexGuard<'_, BoardState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn put(&self, kind: &str, id: i64, name: &str, price: Option<Decimal>) {
        self.state()
            .products
            .insert((kind.to_owned(), id), (name.to_owned(), price));
    }

    fn set_price(&self, kind: &str, id: i64, price: &str) {
        let mut st = self.state();
        let entry = st.products.get_mut(&(kind.to_owned(), id)).expect("known");
        entry.1 = Some(d(price));
    }

    fn remove(&self, kind: &str, id: i64) {
        self.state().products.remove(&(kind.to_owned(), id));
    }

    fn set_generation(&self, g: i64) {
        self.state().generation = g;
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// The price of `id` at generation `g`.
    fn price_at(&self, kind: &str, id: i64, g: i64) -> Decimal {
        let st = self.state();
        let base = st.products[&(kind.to_owned(), id)].1.expect("priced");
        base + Decimal::from(g * id)
    }
}

#[async_trait]
impl Catalog for Board {
    async fn products(&self, kind: &str, ids: &[i64]) -> Result<Vec<Arc<dyn Product>>, BoxError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let (found, race) = {
            let mut st = self.state();
            let g = st.generation;
            let found: Vec<Arc<dyn Product>> = ids
                .iter()
                .filter_map(|id| {
                    let (name, price) = st.products.get(&(kind.to_owned(), *id))?;
                    Some(Arc::new(Thing {
                        kind: kind.to_owned(),
                        id: *id,
                        name: name.clone(),
                        price: price.map(|p| p + Decimal::from(g * id)),
                    }) as Arc<dyn Product>)
                })
                .collect();
            if st.drift {
                st.generation += 1;
            }
            (found, st.race.take())
        };
        if let Some((carts, id, line)) = race {
            carts
                .cart(id)
                .add(&line.product, line.unit_price, line.quantity)
                .await?;
        }
        Ok(found)
    }
}

fn coffee_board() -> Board {
    Board::with(&[
        ("coffee", 1, "Coffee", Some("12.50")),
        ("coffee", 2, "Decaf", Some("8.00")),
        ("tea", 1, "Green Tea", Some("4.00")),
        ("tea", 2, "Gift card", None),
    ])
}

/// 10% tax, to see that the calculators run on the lines as checked out.
struct TenPercent;

#[async_trait]
impl TaxCalculator for TenPercent {
    async fn calculate(&self, cart: &CartView) -> Result<Decimal, BoxError> {
        Ok(cart.subtotal() / Decimal::TEN)
    }
}

async fn stored(carts: &Carts, id: CartId) -> Vec<Line> {
    let cart = carts.cart(id);
    cart.refresh().await.expect("read");
    cart.lines().await.expect("lines")
}

fn prices(lines: &[Line]) -> Vec<String> {
    lines.iter().map(|l| l.unit_price.to_string()).collect()
}

// ---- the cart tells ------------------------------------------------------------------------

async fn loaded_lines_and_details_tell_changed_prices(h: Harness) {
    let board = coffee_board();
    let carts = h.builder().catalog(board.clone()).build();
    let mut cart = carts.new_cart();
    cart.add(&p("coffee", 1), d("12.50"), 2).await.unwrap();
    cart.add(&p("coffee", 2), d("8.00"), 1).await.unwrap();
    cart.add(&p("tea", 1), d("4.00"), 1).await.unwrap();
    cart.add(&p("tea", 2), d("25.00"), 1).await.unwrap();

    let loaded = cart.items_with_products().await.unwrap();
    assert!(
        loaded.iter().all(|l| l.price_change().is_none()),
        "unchanged"
    );

    board.set_price("coffee", 1, "13.00");
    board.set_price("coffee", 2, "7.5"); // rounded to cents: 7.50
    let before = board.calls();
    let loaded = cart.items_with_products().await.unwrap();
    assert_eq!(board.calls() - before, 2, "one catalogue call per kind");
    let changes: Vec<_> = loaded.iter().map(|l| l.price_change()).collect();
    let up = changes[0].expect("coffee went up");
    assert_eq!((up.from, up.to), (d("12.50"), d("13.00")));
    assert!(up.went_up());
    let down = changes[1].expect("decaf went down");
    assert_eq!(down.to.to_string(), "7.50");
    assert!(!down.went_up());
    assert_eq!(changes[2], None);
    assert_eq!(changes[3], None, "a product with no price keeps its line's");
    // The lines themselves keep the prices of their adds.
    assert_eq!(
        prices(&cart.lines().await.unwrap()),
        ["12.50", "8.00", "4.00", "25.00"]
    );

    board.remove("tea", 1);
    let before = board.calls();
    let details = CartDetails::load(&cart).await.unwrap();
    assert_eq!(
        board.calls() - before,
        2,
        "the details read the catalogue once per kind"
    );
    let body = serde_json::to_value(&details).unwrap();
    assert_eq!(
        body["items"][0]["price_change"],
        json!({"from": "12.50", "to": "13.00"})
    );
    assert_eq!(
        body["items"][1]["price_change"],
        json!({"from": "8.00", "to": "7.50"})
    );
    assert_eq!(body["items"][2]["price_change"], Value::Null);
    assert_eq!(
        body["warnings"],
        json!([
            {"code": "price_changed", "kind": "coffee", "id": 1,
             "message": "The price of Coffee went up from 12.50 to 13.00 since you added it."},
            {"code": "price_changed", "kind": "coffee", "id": 2,
             "message": "The price of Decaf went down from 8.00 to 7.50 since you added it."},
            {"code": "product_unavailable", "kind": "tea", "id": 1,
             "message": "tea #1 is no longer available: remove it from the cart to check out."},
        ])
    );
    // Under `Keep` the checkout keeps the prices: nothing to warn about but the gone product.
    let keep = h
        .builder()
        .catalog(board.clone())
        .checkout_prices(PricePolicy::Keep)
        .build();
    let id = cart.id().await.unwrap().unwrap();
    let details = CartDetails::load(&keep.cart(id)).await.unwrap();
    assert!(details.items.iter().all(|i| i.price_change.is_none()));
    let codes: Vec<_> = details.warnings.iter().map(|w| w.code).collect();
    assert_eq!(codes, ["product_unavailable"]);
}

// ---- checkout ------------------------------------------------------------------------------

async fn reprice_checks_out_at_the_current_price(h: Harness) {
    let board = coffee_board();
    let carts = h
        .builder()
        .catalog(board.clone())
        .tax_calculator(TenPercent)
        .min_order_amount(d("30.00"))
        .build();
    let mut cart = carts.new_cart();
    cart.add(&p("coffee", 1), d("12.50"), 2).await.unwrap(); // 25.00
    cart.add(&p("coffee", 2), d("8.00"), 1).await.unwrap(); // 8.00
    cart.add(&p("tea", 2), d("1.00"), 1).await.unwrap(); // no catalogue price
    board.set_price("coffee", 1, "13.00");
    board.set_price("coffee", 2, "7.00");
    let before = board.calls();
    let order = cart.checkout().await.unwrap();
    assert_eq!(board.calls() - before, 2, "one reading, one call per kind");
    assert!(order.placed_now);
    assert_eq!(prices(&order.lines), ["13.00", "7.00", "1.00"]);
    assert_eq!(order.totals.subtotal.to_string(), "34.00");
    assert_eq!(
        order.totals.tax.to_string(),
        "3.40",
        "tax of the repriced lines"
    );
    assert_eq!(order.totals.total.to_string(), "37.40");
    let changes: Vec<_> = order
        .price_changes
        .iter()
        .map(|c| {
            (
                c.product.to_string(),
                c.name.as_str(),
                c.change.from.to_string(),
                c.change.to.to_string(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            (
                "coffee:1".to_owned(),
                "Coffee",
                "12.50".to_owned(),
                "13.00".to_owned()
            ),
            (
                "coffee:2".to_owned(),
                "Decaf",
                "8.00".to_owned(),
                "7.00".to_owned()
            ),
        ]
    );
    assert_eq!(
        serde_json::to_value(&order.price_changes[0]).unwrap(),
        json!({"kind": "coffee", "id": 1, "name": "Coffee", "from": "12.50", "to": "13.00"})
    );
    // The stored lines are the order's, and a repeat gets the same order with no changes.
    assert_eq!(stored(&carts, order.cart_id).await, order.lines);
    let again = cart.checkout().await.unwrap();
    assert!(!again.placed_now);
    assert_eq!(again.lines, order.lines);
    assert_eq!(again.totals, order.totals);
    assert!(again.price_changes.is_empty());
}

async fn a_refused_repriced_checkout_writes_nothing(h: Harness) {
    // The minimum and the discount judge the repriced subtotal; a refusal keeps the old prices.
    let board = coffee_board();
    let carts = h
        .builder()
        .catalog(board.clone())
        .min_order_amount(d("24.00"))
        .build();
    carts
        .create_discount(NewDiscount::fixed("ONCE", d("1")).max_uses(1))
        .await
        .unwrap();
    let mut cart = carts.new_cart();
    cart.add(&p("coffee", 1), d("12.50"), 2).await.unwrap(); // 25.00
    cart.apply_discount("ONCE").await.unwrap();
    board.set_price("coffee", 1, "11.00"); // 22.00 < 24.00
    let err = cart.checkout().await.unwrap_err();
    assert!(
        matches!(err, CartError::MinimumOrderNotMet { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "Cart total 22.00 is below the minimum order amount of 24.00."
    );
    let id = cart.id().await.unwrap().unwrap();
    assert_eq!(
        prices(&stored(&carts, id).await),
        ["12.50"],
        "nothing written"
    );
    assert!(!carts.cart(id).is_checked_out().await.unwrap());
    assert_eq!(
        carts.discount("ONCE").await.unwrap().unwrap().current_uses,
        0
    );
    // Back above the minimum: it goes through at the current price, counting the use.
    board.set_price("coffee", 1, "12.00");
    let order = cart.checkout().await.unwrap();
    assert_eq!(order.totals.subtotal.to_string(), "24.00");
    assert_eq!(order.totals.total.to_string(), "23.00");
    assert_eq!(
        carts.discount("ONCE").await.unwrap().unwrap().current_uses,
        1
    );
}

async fn refuse_refuses_and_writes_nothing(h: Harness) {
    let board = coffee_board();
    let carts = h
        .builder()
        .catalog(board.clone())
        .checkout_prices(PricePolicy::Refuse)
        .build();
    carts
        .create_discount(NewDiscount::fixed("ONCE", d("1")).max_uses(1))
        .await
        .unwrap();
    let mut cart = carts.new_cart();
    cart.add(&p("coffee", 1), d("12.50"), 2).await.unwrap();
    cart.add(&p("coffee", 2), d("8.00"), 1).await.unwrap();
    cart.add(&p("tea", 2), d("1.00"), 1).await.unwrap();
    cart.apply_discount("ONCE").await.unwrap();
    board.set_price("coffee", 1, "13.00");
    let err = cart.checkout().await.unwrap_err();
    assert_eq!(err.code(), "prices_changed");
    assert_eq!(
        err.to_string(),
        "Prices changed since they were added to the cart: Coffee from 12.50 to 13.00. \
         Review the cart before checking out."
    );
    let CartError::PricesChanged(changes) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].product, p("coffee", 1));
    assert_eq!(axum_cart::http_status(&err), StatusCode::CONFLICT);
    let id = cart.id().await.unwrap().unwrap();
    assert_eq!(prices(&stored(&carts, id).await), ["12.50", "8.00", "1.00"]);
    assert!(!carts.cart(id).is_checked_out().await.unwrap());
    assert_eq!(
        carts.discount("ONCE").await.unwrap().unwrap().current_uses,
        0
    );
    // Adding the product again at its current price accepts it.
    cart.add(&p("coffee", 1), d("13.00"), 1).await.unwrap();
    let order = cart.checkout().await.unwrap();
    assert!(order.placed_now && order.price_changes.is_empty());
    assert_eq!(prices(&order.lines), ["13.00", "8.00", "1.00"]);
    assert_eq!(order.lines[0].quantity, 3);
}

async fn keep_keeps_the_prices_of_the_adds(h: Harness) {
    let board = coffee_board();
    let carts = h
        .builder()
        .catalog(board.clone())
        .checkout_prices(PricePolicy::Keep)
        .build();
    let mut cart = carts.new_cart();
    cart.add(&p("coffee", 1), d("12.50"), 2).await.unwrap();
    board.set_price("coffee", 1, "99.00");
    let order = cart.checkout().await.unwrap();
    assert_eq!(prices(&order.lines), ["12.50"]);
    assert_eq!(order.totals.subtotal.to_string(), "25.00");
    assert!(order.price_changes.is_empty());
    assert_eq!(stored(&carts, order.cart_id).await, order.lines);
}

async fn a_product_gone_refuses_under_every_policy(h: Harness) {
    for policy in [PricePolicy::Reprice, PricePolicy::Refuse, PricePolicy::Keep] {
        let board = coffee_board();
        let carts = h
            .builder()
            .catalog(board.clone())
            .checkout_prices(policy)
            .build();
        let mut cart = carts.new_cart();
        cart.add(&p("coffee", 1), d("12.50"), 1).await.unwrap();
        cart.add(&p("tea", 1), d("4.00"), 1).await.unwrap();
        cart.add(&p("coffee", 2), d("8.00"), 1).await.unwrap();
        board.remove("tea", 1);
        board.remove("coffee", 2);
        board.set_price("coffee", 1, "13.00");
        let err = cart.checkout().await.unwrap_err();
        assert_eq!(err.code(), "product_unavailable", "{policy:?}");
        assert_eq!(
            err.to_string(),
            "Products tea:1, coffee:2 are no longer available: remove them from the cart to check out."
        );
        assert_eq!(axum_cart::http_status(&err), StatusCode::CONFLICT);
        let id = cart.id().await.unwrap().unwrap();
        assert_eq!(
            prices(&stored(&carts, id).await),
            ["12.50", "4.00", "8.00"],
            "{policy:?}"
        );
        assert!(!carts.cart(id).is_checked_out().await.unwrap());
        cart.remove(&p("tea", 1)).await.unwrap();
        let err = cart.checkout().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "Product coffee:2 is no longer available: remove it from the cart to check out."
        );
        cart.remove(&p("coffee", 2)).await.unwrap();
        match policy {
            PricePolicy::Refuse => {
                let err = cart.checkout().await.unwrap_err();
                assert_eq!(err.code(), "prices_changed");
            }
            _ => {
                let order = cart.checkout().await.unwrap();
                let want = if policy == PricePolicy::Keep {
                    "12.50"
                } else {
                    "13.00"
                };
                assert_eq!(prices(&order.lines), [want]);
            }
        }
    }
}

async fn without_a_catalogue_prices_are_never_compared(h: Harness) {
    for carts in [h.carts(), h.builder().catalog(NoCatalog).build()] {
        let mut cart = carts.new_cart();
        cart.add(&p("coffee", 1), d("12.50"), 2).await.unwrap();
        let details = CartDetails::load(&cart).await.unwrap();
        assert!(details.warnings.is_empty(), "{:?}", details.warnings);
        assert!(details.items[0].price_change.is_none());
        let order = cart.checkout().await.unwrap();
        assert_eq!(prices(&order.lines), ["12.50"]);
        assert!(order.price_changes.is_empty());
    }
}

async fn a_line_added_during_checkout_is_read_again(h: Harness) {
    // Another request adds a product between the checkout's catalogue reading and its lock:
    // the checkout reads the catalogue again, so every line is priced by one reading.
    let board = coffee_board();
    let carts = h.builder().catalog(board.clone()).build();
    let mut cart = carts.new_cart();
    cart.add(&p("coffee", 1), d("12.50"), 1).await.unwrap();
    let id = cart.id().await.unwrap().unwrap();
    board.state().drift = true; // every reading moves the prices on
    board.state().race = Some((carts.clone(), id, Line::new(p("coffee", 2), 1, d("8.00"))));
    let before = board.calls();
    let order = cart.checkout().await.unwrap();
    let readings = board.calls() - before;
    assert_eq!(readings, 2, "read again once");
    // The second reading (generation 1) priced both lines.
    assert_eq!(
        prices(&order.lines),
        [
            board.price_at("coffee", 1, 1).to_string(),
            board.price_at("coffee", 2, 1).to_string()
        ]
    );
    assert_eq!(order.price_changes.len(), 2);
    assert_eq!(stored(&carts, id).await, order.lines);
}

async fn a_price_written_during_checkout_is_compared_under_the_lock(h: Harness) {
    // Between the reading and the lock another request adds the product again at another
    // price: the locked plan compares the line as it is then.
    for policy in [PricePolicy::Reprice, PricePolicy::Refuse] {
        let board = coffee_board();
        let carts = h
            .builder()
            .catalog(board.clone())
            .checkout_prices(policy)
            .build();
        let mut cart = carts.new_cart();
        cart.add(&p("coffee", 1), d("12.50"), 2).await.unwrap();
        let id = cart.id().await.unwrap().unwrap();
        board.state().race = Some((carts.clone(), id, Line::new(p("coffee", 1), 1, d("99.00"))));
        let result = cart.checkout().await;
        let lines = stored(&carts, id).await;
        assert_eq!(lines[0].quantity, 3, "{policy:?}");
        match policy {
            PricePolicy::Reprice => {
                let order = result.expect("repriced");
                assert_eq!(prices(&order.lines), ["12.50"]);
                assert_eq!(order.totals.subtotal.to_string(), "37.50");
                let c = &order.price_changes[0].change;
                assert_eq!(
                    (c.from.to_string(), c.to.to_string()),
                    ("99.00".into(), "12.50".into())
                );
                assert_eq!(lines, order.lines);
            }
            _ => {
                let err = result.expect_err("refused");
                assert_eq!(err.code(), "prices_changed");
                assert_eq!(prices(&lines), ["99.00"]);
                assert!(!carts.cart(id).is_checked_out().await.unwrap());
            }
        }
    }
}

/// Many carts check out while another task keeps changing the prices.
async fn checkouts_under_changing_prices(
    h: &Harness,
    policy: PricePolicy,
) -> (Board, Carts, Vec<(CartId, Result<Order, CartError>)>) {
    let board = coffee_board();
    let carts = h
        .builder()
        .catalog(board.clone())
        .checkout_prices(policy)
        .build();
    let mut ids = Vec::new();
    for _ in 0..16 {
        let mut cart = carts.new_cart();
        cart.add(&p("coffee", 1), d("12.50"), 2).await.unwrap();
        cart.add(&p("coffee", 2), d("8.00"), 1).await.unwrap();
        ids.push(cart.id().await.unwrap().unwrap());
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let changer = {
        let (board, stop) = (board.clone(), stop.clone());
        tokio::spawn(async move {
            // Back and forth between the prices of the adds (generation 0) and new ones.
            let mut step = 0;
            while !stop.load(Ordering::SeqCst) {
                step += 1;
                board.set_generation(if step % 2 == 0 { 0 } else { step });
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        })
    };
    let mut tasks = Vec::new();
    for (n, id) in ids.iter().copied().enumerate() {
        let carts = carts.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(3 * n as u64)).await;
            let mut cart: Cart = carts.cart(id);
            (id, cart.checkout().await)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task"));
    }
    stop.store(true, Ordering::SeqCst);
    changer.await.expect("changer");
    (board, carts, results)
}

async fn reprice_is_consistent_while_prices_change(h: Harness) {
    let (board, carts, results) = checkouts_under_changing_prices(&h, PricePolicy::Reprice).await;
    let mut repriced = 0;
    for (id, result) in results {
        let order = result.unwrap_or_else(|e| panic!("{id}: {e}"));
        assert!(order.placed_now);
        // Both lines are priced by the same reading: one generation of the catalogue.
        let g = (order.lines[0].unit_price - d("12.50"))
            .to_i64()
            .expect("a whole generation");
        assert_eq!(
            order.lines[0].unit_price,
            board.price_at("coffee", 1, g),
            "{id}"
        );
        assert_eq!(
            order.lines[1].unit_price,
            board.price_at("coffee", 2, g),
            "{id}: one reading"
        );
        let sum: Decimal = order.lines.iter().map(Line::total_price).sum();
        assert_eq!(order.totals.subtotal, sum);
        assert_eq!(
            stored(&carts, id).await,
            order.lines,
            "{id}: the stored lines are the order's"
        );
        assert_eq!(order.price_changes.is_empty(), g == 0);
        repriced += usize::from(g != 0);
    }
    eprintln!("{}: {repriced} of 16 orders repriced", h.backend);
    assert!(repriced > 0, "the prices changed under the checkouts");
}

async fn refuse_never_checks_out_a_changed_cart(h: Harness) {
    let (_, carts, results) = checkouts_under_changing_prices(&h, PricePolicy::Refuse).await;
    let mut refused = 0;
    for (id, result) in results {
        let lines = stored(&carts, id).await;
        assert_eq!(
            prices(&lines),
            ["12.50", "8.00"],
            "{id}: the prices never move"
        );
        match result {
            Ok(order) => {
                // Only a reading at the prices of the adds (generation 0) lets it through.
                assert_eq!(order.lines, lines);
                assert!(order.price_changes.is_empty());
                assert!(carts.cart(id).is_checked_out().await.unwrap());
            }
            Err(CartError::PricesChanged(changes)) => {
                assert!(!changes.is_empty());
                assert!(!carts.cart(id).is_checked_out().await.unwrap(), "{id}");
                refused += 1;
            }
            Err(e) => panic!("{id}: {e}"),
        }
    }
    eprintln!("{}: {refused} of 16 checkouts refused", h.backend);
    assert!(refused > 0, "the prices changed under the checkouts");
}

// ---- over HTTP -----------------------------------------------------------------------------

struct Client {
    app: Router,
    cookie: Option<String>,
}

impl Client {
    fn new(carts: &Carts, router: CartRouter) -> Client {
        let app = router
            .build()
            .layer(common::problems_checked())
            .layer(CartLayer::new(carts.clone()))
            .layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false));
        Client { app, cookie: None }
    }

    async fn send(&mut self, method: &str, path: &str, accept: &str) -> (StatusCode, String) {
        let (path, body) = path.split_once('?').unwrap_or((path, ""));
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::ACCEPT, accept);
        if method == "POST" {
            req = req
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("origin", "http://shop.test")
                .header("host", "shop.test");
        }
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, c);
        }
        let res = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        if let Some(set) = res.headers().get(header::SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            self.cookie = Some(pair);
        }
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn json(&mut self, method: &str, path: &str) -> (StatusCode, Value) {
        let (status, body) = self.send(method, path, "application/json").await;
        let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        (status, value)
    }
}

async fn http_cart_shows_price_changes_and_warnings(h: Harness) {
    let board = coffee_board();
    let carts = h.builder().catalog(board.clone()).build();
    let mut client = Client::new(&carts, CartRouter::new());
    let (status, cart) = client.json("POST", "/cart/add/coffee/1?quantity=2").await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    client.json("POST", "/cart/add/tea/1").await;
    assert_eq!(cart["items"][0]["price_change"], Value::Null);
    assert_eq!(cart["warnings"], json!([]));

    board.set_price("coffee", 1, "13.00");
    let before = board.calls();
    let (_, cart) = client.json("GET", "/cart").await;
    assert_eq!(board.calls() - before, 2, "one catalogue call per kind");
    assert_eq!(
        cart["items"][0]["unit_price"], "12.50",
        "the line keeps its price"
    );
    assert_eq!(
        cart["items"][0]["price_change"],
        json!({"from": "12.50", "to": "13.00"})
    );
    assert_eq!(cart["items"][1]["price_change"], Value::Null);
    assert_eq!(
        cart["warnings"],
        json!([{"code": "price_changed", "kind": "coffee", "id": 1,
                "message": "The price of Coffee went up from 12.50 to 13.00 since you added it."}])
    );
    let (status, page) = client.send("GET", "/cart", "text/html").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("price went up from $12.50 to $13.00 since you added it"),
        "{page}"
    );
    assert!(page.contains(r#"<li class="cart-warning cart-warning-price_changed">"#));

    board.set_price("coffee", 1, "11.00");
    board.remove("tea", 1);
    let (status, page) = client.send("GET", "/cart", "text/html").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("price went down from $12.50 to $11.00"),
        "{page}"
    );
    assert!(page.contains("tea #1 is no longer available"), "{page}");
    let (_, cart) = client.json("GET", "/cart").await;
    assert_eq!(cart["warnings"][1]["code"], "product_unavailable");
}

async fn http_checkout_reprices_and_shows_the_changes(h: Harness) {
    let board = coffee_board();
    let carts = h.builder().catalog(board.clone()).build();
    let hooked: Arc<Mutex<Vec<Order>>> = Arc::default();
    let relay = {
        let hooked = hooked.clone();
        Relay::new(&carts).on_checkout(move |order: Order| {
            let hooked = hooked.clone();
            async move {
                hooked.lock().unwrap().push(order);
                Ok(())
            }
        })
    };
    let mut client = Client::new(&carts, CartRouter::new());
    client.json("POST", "/cart/add/coffee/1?quantity=2").await;
    client.json("POST", "/cart/add/coffee/2").await;
    board.set_price("coffee", 1, "13.00");
    let (status, cart) = client.json("POST", "/cart/checkout").await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    assert_eq!(cart["checked_out"], true);
    assert_eq!(cart["items"][0]["unit_price"], "13.00");
    assert_eq!(cart["items"][0]["total_price"], "26.00");
    assert_eq!(
        cart["items"][0]["price_change"],
        json!({"from": "12.50", "to": "13.00"})
    );
    assert_eq!(cart["items"][1]["price_change"], Value::Null);
    assert_eq!(cart["subtotal"], "34.00");
    assert_eq!(
        cart["warnings"],
        json!([{"code": "price_changed", "kind": "coffee", "id": 1,
                "message": "The price of Coffee went up from 12.50 to 13.00 since you added it. \
                            The order was placed at 13.00."}])
    );
    assert_eq!(relay.run_once().await.unwrap().orders, 1);
    let orders = hooked.lock().unwrap().clone();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].price_changes.len(), 1);
    assert_eq!(orders[0].totals.subtotal.to_string(), "34.00");
    // A repeated checkout gets the order back, with nothing changed this time.
    let (status, again) = client.json("POST", "/cart/checkout").await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["subtotal"], "34.00");
    assert_eq!(again["warnings"], json!([]));
    assert!(relay.run_once().await.unwrap().is_idle());
    assert_eq!(hooked.lock().unwrap().len(), 1);
}

async fn http_refusals_are_409_and_list_what_changed(h: Harness) {
    let board = coffee_board();
    let carts = h
        .builder()
        .catalog(board.clone())
        .checkout_prices(PricePolicy::Refuse)
        .build();
    let mut client = Client::new(&carts, CartRouter::new());
    client.json("POST", "/cart/add/coffee/1?quantity=2").await;
    board.set_price("coffee", 1, "13.00");
    let (status, body) = client.json("POST", "/cart/checkout").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "prices_changed");
    assert_eq!(
        body["changes"],
        json!([{"kind": "coffee", "id": 1, "name": "Coffee", "from": "12.50", "to": "13.00"}])
    );
    let (_, cart) = client.json("GET", "/cart").await;
    assert_eq!(cart["checked_out"], false, "nothing checked out");
    assert_eq!(cart["items"][0]["unit_price"], "12.50");
    // A browser gets the HTML error page with the message.
    let (status, page) = client.send("POST", "/cart/checkout", "text/html").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(page.contains("Coffee from 12.50 to 13.00"), "{page}");
    // Adding it again takes the current price; then a product that disappears refuses.
    client.json("POST", "/cart/add/coffee/1").await;
    client.json("POST", "/cart/add/tea/1").await;
    board.remove("tea", 1);
    let (status, body) = client.json("POST", "/cart/checkout").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "product_unavailable");
    assert_eq!(body["products"], json!([{"kind": "tea", "id": 1}]));
    // The checkout route takes only POST.
    let (status, _) = client.json("GET", "/cart/checkout").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    client.json("POST", "/cart/remove/tea/1").await;
    let (status, cart) = client.json("POST", "/cart/checkout").await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    assert_eq!(cart["items"][0]["unit_price"], "13.00");
    assert_eq!(cart["items"][0]["quantity"], 3);
}
