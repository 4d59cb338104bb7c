//! Concurrency on every backend, beyond the single-operation races of `cart.rs` and
//! `checkout.rs`: mixed changes on one cart, a discount race with several uses left,
//! checkout racing adds, and a login merge racing adds to the guest cart.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use axum_cart::{
    CartError, Carts, Line, MemorySession, MergeStrategy, NewDiscount, SessionAdapter,
};
use common::{d, p, Harness};

backend_tests!(
    mixed_changes_never_leave_a_bad_line_or_half_a_bulk_add,
    fifty_carts_race_for_five_uses,
    checkout_racing_adds_takes_the_cart_before_or_after_each_add,
    login_racing_adds_loses_no_units,
);

/// Retries what the cart refuses because another change won a lock race (PostgreSQL and
/// MySQL may report a deadlock or a serialisation failure under heavy contention).
fn contention(e: &CartError) -> bool {
    matches!(e, CartError::Database(_))
}

async fn mixed_changes_never_leave_a_bad_line_or_half_a_bulk_add(h: Harness) {
    let carts = h.carts();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("1.00"), 1).await.unwrap();
    let id = cart.id().await.unwrap().unwrap();
    let bulk = || {
        (1..=3)
            .map(|i| Line::new(p("bulk", i), 2, d("3.00")))
            .collect::<Vec<_>>()
    };
    let half_seen = Arc::new(AtomicI64::new(0));
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let carts = carts.clone();
        let half_seen = half_seen.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..12 {
                let mut c = carts.cart(id);
                let book = p("book", 1 + (i % 3));
                let result = match (worker + i) % 6 {
                    0 | 1 => c.add(&book, d("1.00"), 1).await.map(|_| ()),
                    2 => c.update(&book, i % 4, None).await.map(|_| ()),
                    3 => c.remove(&book).await,
                    4 => c.add_bulk(bulk()).await.map(|_| ()),
                    _ => c.clear().await,
                };
                match result {
                    Ok(()) | Err(CartError::ItemDoesNotExist(_)) => {}
                    Err(e) if contention(&e) => {}
                    Err(e) => panic!("unexpected {e}"),
                }
                // A reader never sees part of a bulk add.
                let lines = carts.cart(id).lines().await.unwrap();
                let bulk_lines = lines.iter().filter(|l| l.product.kind() == "bulk").count();
                if bulk_lines != 0 && bulk_lines != 3 {
                    half_seen.fetch_add(1, Ordering::SeqCst);
                }
                assert!(lines.iter().all(|l| l.quantity >= 1));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        half_seen.load(Ordering::SeqCst),
        0,
        "{}: a half-applied bulk add was visible",
        h.backend
    );
    assert_eq!(
        h.raw
            .count("SELECT COUNT(*) FROM cart_items WHERE quantity < 1")
            .await,
        0
    );
    let bulk_lines = h
        .raw
        .count(&format!(
            "SELECT COUNT(*) FROM cart_items WHERE cart_id = {id} AND product_kind = 'bulk'"
        ))
        .await;
    assert!(
        bulk_lines == 0 || bulk_lines == 3,
        "{}: {bulk_lines} bulk lines",
        h.backend
    );
}

async fn fifty_carts_race_for_five_uses(h: Harness) {
    let carts = h.carts();
    carts
        .create_discount(NewDiscount::percent("FIVELEFT", d("10")).max_uses(5))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..50 {
        let mut cart = carts.new_cart();
        cart.add(&p("book", i + 1), d("10.00"), 1).await.unwrap();
        cart.apply_discount("FIVELEFT").await.unwrap();
        ids.push(cart.id().await.unwrap().unwrap());
    }
    let tasks: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let carts = carts.clone();
            tokio::spawn(async move { carts.cart(id).checkout().await })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(CartError::InvalidDiscount(_)) => refused += 1,
            Err(e) => panic!("{}: unexpected {e}", h.backend),
        }
    }
    assert_eq!((ok, refused), (5, 45), "{}", h.backend);
    assert_eq!(
        carts
            .discount("FIVELEFT")
            .await
            .unwrap()
            .unwrap()
            .current_uses,
        5
    );
}

async fn checkout_racing_adds_takes_the_cart_before_or_after_each_add(h: Harness) {
    let carts = h.carts();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("10.00"), 1).await.unwrap();
    let id = cart.id().await.unwrap().unwrap();
    let adds: Vec<_> = (0..20)
        .map(|_| {
            let carts = carts.clone();
            tokio::spawn(async move { carts.cart(id).add(&p("book", 1), d("10.00"), 1).await })
        })
        .collect();
    let checkout = {
        let carts = carts.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                match carts.cart(id).checkout().await {
                    Err(e) if contention(&e) => continue,
                    other => return other,
                }
            }
            carts.cart(id).checkout().await
        })
    };
    let mut accepted = 0;
    for t in adds {
        match t.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(CartError::CheckedOut) => {}
            Err(e) => panic!("{}: unexpected {e}", h.backend),
        }
    }
    let order = checkout.await.unwrap().unwrap();
    let ordered = order.lines.iter().map(|l| l.quantity).sum::<i64>();
    assert_eq!(
        ordered,
        1 + accepted,
        "{}: the order holds exactly the adds that were accepted",
        h.backend
    );
    let stored = carts.cart(id).count().await.unwrap();
    assert_eq!(
        stored, ordered,
        "{}: nothing changed the cart after checkout",
        h.backend
    );
    assert!(matches!(
        carts.cart(id).add(&p("book", 1), d("10.00"), 1).await,
        Err(CartError::CheckedOut)
    ));
}

async fn open(carts: &Carts, session: &MemorySession) -> axum_cart::Cart {
    carts.open(session.clone()).await.unwrap()
}

async fn login_racing_adds_loses_no_units(h: Harness) {
    let carts = h.carts();
    // The user's cart from an earlier visit: 5 units.
    let earlier = MemorySession::default();
    let mut before = open(&carts, &earlier).await;
    before.add(&p("book", 1), d("1.00"), 5).await.unwrap();
    before.login("zoe", MergeStrategy::Add).await.unwrap();

    // A guest session with 3 units logs in while 20 adds of one unit run on the same session.
    let session = MemorySession::default();
    open(&carts, &session)
        .await
        .add(&p("book", 2), d("1.00"), 3)
        .await
        .unwrap();
    let adds: Vec<_> = (0..20)
        .map(|i| {
            let carts = carts.clone();
            let session = session.clone();
            tokio::spawn(async move {
                let mut c = carts.open(session).await.unwrap();
                c.add(&p("coffee", 1 + i % 2), d("1.00"), 1).await
            })
        })
        .collect();
    let login = {
        let carts = carts.clone();
        let session = session.clone();
        tokio::spawn(async move {
            carts
                .open(session)
                .await
                .unwrap()
                .login("zoe", MergeStrategy::Add)
                .await
        })
    };
    let mut accepted = 0;
    for t in adds {
        t.await.unwrap().unwrap();
        accepted += 1;
    }
    login.await.unwrap().unwrap();
    let cart = open(&carts, &session).await;
    assert_eq!(
        cart.user_id().await.unwrap().as_deref(),
        Some("zoe"),
        "{}",
        h.backend
    );
    assert_eq!(
        cart.count().await.unwrap(),
        5 + 3 + accepted,
        "{}: every unit is in the user's cart",
        h.backend
    );
    assert_eq!(
        h.raw.count("SELECT COUNT(*) FROM cart_carts").await,
        1,
        "{}: no stray cart left behind",
        h.backend
    );
    let _ = session.cart_id().await.unwrap();
}
