//! Discounts, checkout, users, merge and save/restore on every backend.
//! Ids in comments (DAPP-03, CHK-07, …) point at `shared/spec/reference-behaviors.md`.

mod common;

use axum_cart::{
    async_trait, BoxError, CartError, CartEvent, CartPayload, DiscountRefusal, InventoryChecker,
    Line, MemorySession, MergeStrategy, NewDiscount, Product, SessionAdapter,
};
use common::{d, p, Harness, TestCatalog};
use time::{Duration, OffsetDateTime};

backend_tests!(
    apply_discount_rules_and_messages,
    codes_are_trimmed_and_case_insensitive,
    discount_invariants_hold_in_the_database,
    invalid_applied_discount_stops_lowering_the_total,
    discount_admin_create_list_deactivate,
    checkout_marks_the_cart_and_counts_one_use,
    checkout_precedence_and_rollback,
    checkout_reads_the_database_not_the_cache,
    checkout_is_idempotent_across_values,
    twenty_carts_race_for_the_last_use,
    ten_tasks_check_out_one_cart,
    checkout_never_reserves_inventory,
    user_binding_and_history,
    merge_strategies_and_cap,
    merge_moves_discount_and_closes_the_source,
    merge_into_itself_is_refused_and_loses_nothing,
    merge_keeps_and_reports_products_that_are_gone,
    login_flow_points_the_session_at_the_merged_user_cart,
    serialisation_format_and_round_trip,
    restore_rejects_untrusted_payloads_and_writes_nothing,
    restore_checks_products_and_prices_with_a_catalogue,
    restore_reattaches_only_a_valid_discount,
);

async fn cart_worth_200(h: &Harness) -> (axum_cart::Carts, axum_cart::Cart) {
    let carts = h.carts();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("100.00"), 2).await.unwrap();
    (carts, cart)
}

async fn apply_discount_rules_and_messages(h: Harness) {
    let (carts, mut cart) = cart_worth_200(&h).await;
    carts
        .create_discount(NewDiscount::percent("SAVE10", d("10")))
        .await
        .unwrap();
    carts
        .create_discount(NewDiscount::fixed("FIXED10", d("10")))
        .await
        .unwrap();
    carts
        .create_discount(NewDiscount::percent("BIGSPEND", d("10")).min_cart_value(d("1000")))
        .await
        .unwrap();
    // DAPP-02
    let err = cart.apply_discount("NOPE").await.unwrap_err();
    assert_eq!(err.to_string(), "Discount code 'NOPE' does not exist.");
    // DAPP-04
    let err = cart.apply_discount("BIGSPEND").await.unwrap_err();
    assert_eq!(err.to_string(), "Minimum cart value of 1000.00 required.");
    // DAPP-01, MON-08
    let applied = cart.apply_discount("SAVE10").await.unwrap();
    assert_eq!(applied.code, "SAVE10");
    assert_eq!(
        cart.discount_code().await.unwrap().as_deref(),
        Some("SAVE10")
    );
    assert_eq!(cart.discount_amount().await.unwrap().to_string(), "20.00");
    assert_eq!(cart.total().await.unwrap().to_string(), "180.00");
    // DAPP-03, also for the same code
    for code in ["FIXED10", "SAVE10"] {
        let err = cart.apply_discount(code).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "A discount is already applied to this cart."
        );
    }
    // DAPP-07, DAPP-08
    cart.remove_discount().await.unwrap();
    assert_eq!(cart.discount_code().await.unwrap(), None);
    assert_eq!(cart.discount_amount().await.unwrap().to_string(), "0.00");
    cart.remove_discount().await.unwrap();
    // A 25% discount of 12.34 is exact to the cent, half-up.
    carts
        .create_discount(NewDiscount::percent("QUARTER", d("25")))
        .await
        .unwrap();
    let mut small = carts.new_cart();
    small.add(&p("book", 1), d("12.34"), 1).await.unwrap();
    small.apply_discount("QUARTER").await.unwrap();
    assert_eq!(small.discount_amount().await.unwrap().to_string(), "3.09");
    assert_eq!(small.total().await.unwrap().to_string(), "9.25");
    // DAPP-05: max uses counted across carts
    carts
        .create_discount(NewDiscount::percent("ONCE", d("5")).max_uses(1))
        .await
        .unwrap();
    let mut first = carts.new_cart();
    first.add(&p("book", 1), d("10.00"), 1).await.unwrap();
    first.apply_discount("ONCE").await.unwrap();
    first.checkout().await.unwrap();
    let mut second = carts.new_cart();
    second.add(&p("book", 1), d("10.00"), 1).await.unwrap();
    let err = second.apply_discount("ONCE").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "This discount has reached its maximum number of uses."
    );
}

async fn codes_are_trimmed_and_case_insensitive(h: Harness) {
    let (carts, mut cart) = cart_worth_200(&h).await;
    let created = carts
        .create_discount(NewDiscount::percent("Summer25", d("25")))
        .await
        .unwrap();
    assert_eq!(created.code, "SUMMER25");
    cart.apply_discount("summer25 ").await.unwrap();
    assert_eq!(
        cart.discount_code().await.unwrap().as_deref(),
        Some("SUMMER25")
    );
    let dup = carts
        .create_discount(NewDiscount::fixed(" SUMMER25", d("1")))
        .await
        .unwrap_err();
    assert_eq!(dup.to_string(), "Discount code 'SUMMER25' already exists.");
    assert!(carts.discount(" sUmMeR25").await.unwrap().is_some());
    let long = "A".repeat(10_000);
    let err = cart.apply_discount(&long).await.unwrap_err();
    assert!(matches!(err, CartError::InvalidDiscount(_)));
    let sql = "x' OR '1'='1";
    assert!(matches!(
        carts.new_cart().apply_discount(sql).await,
        Err(CartError::InvalidDiscount(_))
    ));
}

async fn discount_invariants_hold_in_the_database(h: Harness) {
    // The database refuses what the code refuses, even for SQL that bypasses the library.
    let carts = h.carts();
    carts
        .create_discount(NewDiscount::percent("CAPPED", d("10")).max_uses(1))
        .await
        .unwrap();
    let (value_col, pct_over) = match h.backend {
        "sqlite" => ("value_cents", "10001"),
        _ => ("value", "100.01"),
    };
    let bad = [
        "UPDATE cart_discounts SET current_uses = 2 WHERE code = 'CAPPED'".to_string(),
        format!("UPDATE cart_discounts SET {value_col} = -1 WHERE code = 'CAPPED'"),
        format!("UPDATE cart_discounts SET {value_col} = {pct_over} WHERE code = 'CAPPED'"),
        "UPDATE cart_discounts SET valid_from = 200, valid_until = 100 WHERE code = 'CAPPED'"
            .to_string(),
    ];
    for sql in &bad {
        assert!(
            h.raw.exec(sql).await.is_err(),
            "{}: accepted {sql}",
            h.backend
        );
    }
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("1.00"), 1).await.unwrap();
    let id = cart.id().await.unwrap().unwrap();
    let price_col = if h.backend == "sqlite" {
        "unit_price_cents"
    } else {
        "unit_price"
    };
    for sql in [
        format!("UPDATE cart_items SET quantity = 0 WHERE cart_id = {id}"),
        format!("UPDATE cart_items SET {price_col} = -1 WHERE cart_id = {id}"),
        format!("INSERT INTO cart_items (cart_id, product_kind, product_id, quantity, {price_col}) VALUES ({id}, 'book', 1, 1, 1)"),
    ] {
        assert!(h.raw.exec(&sql).await.is_err(), "{}: accepted {sql}", h.backend);
    }
    // Deleting a discount detaches it; deleting a cart deletes its lines.
    cart.apply_discount("CAPPED").await.unwrap();
    h.raw
        .exec("DELETE FROM cart_discounts WHERE code = 'CAPPED'")
        .await
        .unwrap();
    cart.refresh().await.unwrap();
    assert_eq!(cart.discount_code().await.unwrap(), None);
    h.raw
        .exec(&format!("DELETE FROM cart_carts WHERE id = {id}"))
        .await
        .unwrap();
    assert_eq!(
        h.raw
            .count(&format!(
                "SELECT COUNT(*) FROM cart_items WHERE cart_id = {id}"
            ))
            .await,
        0
    );
}

async fn invalid_applied_discount_stops_lowering_the_total(h: Harness) {
    // Weakness 15: an expired or switched-off code no longer lowers the displayed total.
    let (carts, mut cart) = cart_worth_200(&h).await;
    carts
        .create_discount(NewDiscount::percent("TEN", d("10")))
        .await
        .unwrap();
    cart.apply_discount("TEN").await.unwrap();
    assert_eq!(cart.total().await.unwrap().to_string(), "180.00");
    assert!(carts.set_discount_active("ten", false).await.unwrap());
    cart.refresh().await.unwrap();
    assert_eq!(cart.discount_code().await.unwrap().as_deref(), Some("TEN"));
    assert_eq!(cart.discount_amount().await.unwrap().to_string(), "0.00");
    assert_eq!(cart.total().await.unwrap().to_string(), "200.00");
    let err = cart.checkout().await.unwrap_err();
    assert_eq!(err.to_string(), "This discount is no longer active.");
}

async fn discount_admin_create_list_deactivate(h: Harness) {
    let carts = h.carts();
    let now = OffsetDateTime::now_utc();
    carts
        .create_discount(
            NewDiscount::percent("SUMMER25", d("25"))
                .min_cart_value(d("50"))
                .max_uses(500),
        )
        .await
        .unwrap();
    carts
        .create_discount(NewDiscount::fixed("FIXED10", d("10")))
        .await
        .unwrap();
    carts
        .create_discount(
            NewDiscount::percent("EXPIRED", d("5")).valid_until(now - Duration::days(1)),
        )
        .await
        .unwrap();
    let all = carts.discounts().await.unwrap();
    let codes: Vec<&str> = all.iter().map(|x| x.code.as_str()).collect();
    assert_eq!(codes, vec!["EXPIRED", "FIXED10", "SUMMER25"]);
    let summer = &all[2];
    assert_eq!(summer.value.to_string(), "25.00");
    assert_eq!(summer.min_cart_value.unwrap().to_string(), "50.00");
    assert_eq!(summer.max_uses, Some(500));
    assert!(summer.active);
    assert!(carts.set_discount_active("fixed10", false).await.unwrap());
    assert!(!carts.discount("FIXED10").await.unwrap().unwrap().active);
    assert!(!carts.set_discount_active("NOSUCH", false).await.unwrap());
    let err = carts
        .create_discount(NewDiscount::percent("TOOMUCH", d("150")))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Percentage discounts cannot exceed 100%"),
        "{err}"
    );
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("100.00"), 1).await.unwrap();
    assert_eq!(
        cart.apply_discount("expired")
            .await
            .unwrap_err()
            .to_string(),
        "This discount has expired."
    );
}

async fn checkout_marks_the_cart_and_counts_one_use(h: Harness) {
    // CHK-01, CHK-08, CHK-10
    let (carts, mut cart) = cart_worth_200(&h).await;
    let mut rx = carts.subscribe();
    carts
        .create_discount(NewDiscount::percent("SAVE10", d("10")))
        .await
        .unwrap();
    cart.apply_discount("SAVE10").await.unwrap();
    let order = cart.checkout().await.unwrap();
    assert!(order.placed_now);
    assert_eq!(order.lines.len(), 1);
    assert_eq!(order.totals.total.to_string(), "180.00");
    assert_eq!(order.totals.discount_code.as_deref(), Some("SAVE10"));
    assert!(order.totals.checked_out);
    assert!(cart.is_checked_out().await.unwrap());
    assert_eq!(
        carts
            .discount("SAVE10")
            .await
            .unwrap()
            .unwrap()
            .current_uses,
        1
    );
    let id = cart.id().await.unwrap().unwrap();
    assert_eq!(
        rx.try_recv().unwrap(),
        CartEvent::DiscountApplied {
            cart_id: id,
            code: "SAVE10".into()
        }
    );
    assert_eq!(
        rx.try_recv().unwrap(),
        CartEvent::CheckedOut { cart_id: id }
    );
}

async fn checkout_precedence_and_rollback(h: Harness) {
    // CHK-03, CHK-04, CHK-07, CHK-11, MON-16
    let carts = h.builder().min_order_amount(d("500")).build();
    let mut cart = carts.new_cart();
    assert!(matches!(cart.checkout().await, Err(CartError::EmptyCart)));
    assert_eq!(
        cart.id().await.unwrap(),
        None,
        "an empty checkout creates no row"
    );
    cart.add(&p("book", 1), d("100.00"), 1).await.unwrap();
    let err = cart.checkout().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "Cart total 100.00 is below the minimum order amount of 500.00."
    );
    assert!(matches!(
        cart.can_checkout().await,
        Err(CartError::MinimumOrderNotMet { .. })
    ));
    cart.update(&p("book", 1), 5, None).await.unwrap();
    assert!(
        cart.can_checkout().await.is_ok(),
        "equal to the minimum passes"
    );

    let expiring = carts
        .create_discount(
            NewDiscount::percent("SOON", d("10"))
                .valid_until(OffsetDateTime::now_utc() + Duration::hours(1)),
        )
        .await
        .unwrap();
    cart.apply_discount("SOON").await.unwrap();
    let past = OffsetDateTime::now_utc().unix_timestamp() - 10;
    h.raw
        .exec(&format!(
            "UPDATE cart_discounts SET valid_until = {past} WHERE id = {}",
            expiring.id
        ))
        .await
        .unwrap();
    let err = cart.checkout().await.unwrap_err();
    assert_eq!(err.to_string(), "This discount has expired.");
    assert!(
        !cart.is_checked_out().await.unwrap(),
        "rolled back: still open"
    );
    assert_eq!(
        carts.discount("SOON").await.unwrap().unwrap().current_uses,
        0
    );
    cart.remove_discount().await.unwrap();
    cart.checkout().await.unwrap();
}

async fn checkout_reads_the_database_not_the_cache(h: Harness) {
    // Weakness 4: a stale value cannot check out a cart another request emptied.
    let carts = h.carts();
    let session = MemorySession::default();
    let mut a = carts.open(session.clone()).await.unwrap();
    a.add(&p("book", 1), d("10.00"), 1).await.unwrap();
    let mut stale = carts.open(session.clone()).await.unwrap();
    assert_eq!(stale.count().await.unwrap(), 1);
    a.clear().await.unwrap();
    assert!(matches!(stale.checkout().await, Err(CartError::EmptyCart)));
    let id = a.id().await.unwrap().unwrap();
    assert!(!carts.cart(id).is_checked_out().await.unwrap());
}

async fn checkout_is_idempotent_across_values(h: Harness) {
    // CHK-06, CHK-09, SIG-05
    let (carts, mut cart) = cart_worth_200(&h).await;
    carts
        .create_discount(NewDiscount::percent("SAVE10", d("10")))
        .await
        .unwrap();
    cart.apply_discount("SAVE10").await.unwrap();
    let id = cart.id().await.unwrap().unwrap();
    let mut stale = carts.cart(id);
    stale.count().await.unwrap();
    let mut rx = carts.subscribe();
    assert!(cart.checkout().await.unwrap().placed_now);
    assert!(!cart.checkout().await.unwrap().placed_now);
    let again = stale.checkout().await.unwrap();
    assert!(!again.placed_now);
    assert_eq!(again.cart_id, id);
    assert_eq!(
        carts
            .discount("SAVE10")
            .await
            .unwrap()
            .unwrap()
            .current_uses,
        1
    );
    assert_eq!(
        rx.try_recv().unwrap(),
        CartEvent::CheckedOut { cart_id: id }
    );
    assert!(rx.try_recv().is_err(), "exactly one event");
}

async fn twenty_carts_race_for_the_last_use(h: Harness) {
    let carts = h.carts();
    carts
        .create_discount(NewDiscount::percent("LASTONE", d("10")).max_uses(1))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..20 {
        let mut cart = carts.new_cart();
        cart.add(&p("book", i + 1), d("10.00"), 1).await.unwrap();
        cart.apply_discount("LASTONE").await.unwrap();
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
            Err(CartError::InvalidDiscount(m)) => {
                assert_eq!(m, DiscountRefusal::UsedUp);
                assert_eq!(
                    m.to_string(),
                    "This discount has reached its maximum number of uses."
                );
                refused += 1
            }
            Err(e) => panic!("{}: unexpected {e}", h.backend),
        }
    }
    assert_eq!((ok, refused), (1, 19), "{}", h.backend);
    assert_eq!(
        carts
            .discount("LASTONE")
            .await
            .unwrap()
            .unwrap()
            .current_uses,
        1
    );
    assert_eq!(
        h.raw
            .count("SELECT COUNT(*) FROM cart_carts WHERE checked_out = TRUE")
            .await,
        1
    );
}

async fn ten_tasks_check_out_one_cart(h: Harness) {
    let (carts, mut cart) = cart_worth_200(&h).await;
    carts
        .create_discount(NewDiscount::percent("MANY", d("10")))
        .await
        .unwrap();
    cart.apply_discount("MANY").await.unwrap();
    let id = cart.id().await.unwrap().unwrap();
    let mut rx = carts.subscribe();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let carts = carts.clone();
            tokio::spawn(async move { carts.cart(id).checkout().await })
        })
        .collect();
    let mut placed = 0;
    for t in tasks {
        if t.await.unwrap().unwrap().placed_now {
            placed += 1;
        }
    }
    assert_eq!(placed, 1, "{}", h.backend);
    assert_eq!(
        carts.discount("MANY").await.unwrap().unwrap().current_uses,
        1
    );
    let mut events = 0;
    while let Ok(e) = rx.try_recv() {
        assert_eq!(e, CartEvent::CheckedOut { cart_id: id });
        events += 1;
    }
    assert_eq!(events, 1);
}

async fn checkout_never_reserves_inventory(h: Harness) {
    // INV-08 / untested promise 14
    struct NoReserve;
    #[async_trait]
    impl InventoryChecker for NoReserve {
        async fn check(&self, _: &dyn Product, _: i64) -> Result<bool, BoxError> {
            Ok(true)
        }
        async fn reserve(&self, _: &dyn Product, _: i64) -> Result<bool, BoxError> {
            Err("reserve must not be called by the library".into())
        }
        async fn release(&self, _: &dyn Product, _: i64) -> Result<bool, BoxError> {
            Err("release must not be called by the library".into())
        }
    }
    let carts = h.builder().inventory_checker(NoReserve).build();
    let mut cart = carts.new_cart();
    cart.add_with(
        &p("book", 1),
        d("1.00"),
        2,
        axum_cart::AddOptions::new().check_inventory(),
    )
    .await
    .unwrap();
    cart.checkout().await.unwrap();
}

async fn user_binding_and_history(h: Harness) {
    // USR-01..06
    let carts = h.carts();
    assert!(carts.user_carts("alice").await.unwrap().is_empty());
    let mut old = carts.new_cart();
    old.add(&p("book", 1), d("1.00"), 1).await.unwrap();
    old.bind_to_user(Some("alice")).await.unwrap();
    assert_eq!(old.user_id().await.unwrap().as_deref(), Some("alice"));
    old.checkout().await.unwrap();
    let mut open = carts.new_cart();
    open.bind_to_user(Some("alice")).await.unwrap();
    let history = carts.user_carts("alice").await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        Some(history[0].id),
        open.id().await.unwrap(),
        "newest first"
    );
    let active = carts.active_user_carts("alice").await.unwrap();
    assert_eq!(active.len(), 1);
    assert!(!active[0].checked_out);
    assert!(
        carts.user_carts("ALICE").await.unwrap().is_empty(),
        "user ids are exact"
    );
    open.bind_to_user(None).await.unwrap();
    assert!(carts.active_user_carts("alice").await.unwrap().is_empty());
}

async fn filled(carts: &axum_cart::Carts, lines: &[(i64, i64, &str)]) -> axum_cart::Cart {
    let mut cart = carts.new_cart();
    for (id, q, price) in lines {
        cart.add(&p("book", *id), d(price), *q).await.unwrap();
    }
    cart
}

async fn merge_strategies_and_cap(h: Harness) {
    // MRG-01..03, MRG-05 (done better for keep_higher), MAXQ-07
    let carts = h.builder().max_quantity_per_item(10).build();
    let unlimited = h.carts();
    for (strategy, old, new, want, price) in [
        (MergeStrategy::Add, 2, 3, 5, "15.00"),
        (MergeStrategy::Replace, 2, 5, 5, "15.00"),
        (MergeStrategy::KeepHigher, 3, 7, 7, "15.00"),
        (MergeStrategy::KeepHigher, 7, 3, 7, "10.00"),
        (MergeStrategy::Add, 6, 6, 10, "15.00"),
    ] {
        let mut target = filled(&carts, &[(1, old, "10.00")]).await;
        let mut source = filled(&unlimited, &[(1, new, "15.00"), (2, 20, "1.00")]).await;
        let report = target.merge(&mut source, strategy).await.unwrap();
        assert_eq!(report.merged, 2);
        let line = target.line(&p("book", 1)).await.unwrap().unwrap();
        assert_eq!(line.quantity, want, "{strategy:?} {old}+{new}");
        assert_eq!(
            line.unit_price.to_string(),
            price,
            "{strategy:?}: the winning line's price"
        );
        assert_eq!(
            target.line(&p("book", 2)).await.unwrap().unwrap().quantity,
            10
        );
    }
    assert_eq!(MergeStrategy::default(), MergeStrategy::Add, "MRG-02");
    let err = "sideways".parse::<MergeStrategy>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "Invalid merge strategy 'sideways'. Must be 'add', 'replace', or 'keep_higher'."
    );
}

async fn merge_moves_discount_and_closes_the_source(h: Harness) {
    let carts = h.carts();
    carts
        .create_discount(NewDiscount::percent("SAVE10", d("10")))
        .await
        .unwrap();
    let mut target = filled(&carts, &[(1, 1, "10.00")]).await;
    target.bind_to_user(Some("bob")).await.unwrap();
    let mut source = filled(&carts, &[(2, 2, "10.00")]).await;
    source.apply_discount("SAVE10").await.unwrap();
    let source_id = source.id().await.unwrap().unwrap();
    let mut rx = carts.subscribe();
    let report = target.merge(&mut source, MergeStrategy::Add).await.unwrap();
    assert!(report.discount_moved);
    assert_eq!(
        target.discount_code().await.unwrap().as_deref(),
        Some("SAVE10")
    );
    assert_eq!(target.count().await.unwrap(), 3);
    assert_eq!(
        target.user_id().await.unwrap().as_deref(),
        Some("bob"),
        "MRG-10"
    );
    assert_eq!(
        h.raw
            .count(&format!(
                "SELECT COUNT(*) FROM cart_carts WHERE id = {source_id}"
            ))
            .await,
        0,
        "no orphan"
    );
    assert!(source.is_empty().await.unwrap());
    let target_id = target.id().await.unwrap().unwrap();
    let events: Vec<CartEvent> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(
        events,
        vec![
            CartEvent::ItemAdded {
                cart_id: target_id,
                line: Line::new(p("book", 2), 2, d("10.00"))
            },
            CartEvent::Cleared { cart_id: source_id },
            CartEvent::Merged {
                cart_id: target_id,
                from: vec![source_id]
            },
        ]
    );
    // MRG-08: an empty source changes nothing.
    let mut empty = carts.new_cart();
    assert_eq!(
        target
            .merge(&mut empty, MergeStrategy::Add)
            .await
            .unwrap()
            .merged,
        0
    );
    assert_eq!(target.count().await.unwrap(), 3);
}

async fn merge_into_itself_is_refused_and_loses_nothing(h: Harness) {
    // MRG-07, MRG-12 (done better)
    let carts = h.carts();
    let mut a = filled(&carts, &[(1, 2, "10.00")]).await;
    let id = a.id().await.unwrap().unwrap();
    let mut b = carts.cart(id);
    assert!(matches!(
        a.merge(&mut b, MergeStrategy::Add).await,
        Err(CartError::MergeIntoSelf)
    ));
    assert_eq!(carts.cart(id).count().await.unwrap(), 2);
}

async fn merge_keeps_and_reports_products_that_are_gone(h: Harness) {
    // MRG-13 (done better): not fatal, reported.
    let carts = h.builder().catalog(TestCatalog::default()).build();
    let mut target = carts.new_cart();
    let mut source = carts.new_cart();
    source.add(&p("book", 1), d("11.00"), 1).await.unwrap();
    source.add(&p("book", 500), d("1.00"), 1).await.unwrap();
    let report = target.merge(&mut source, MergeStrategy::Add).await.unwrap();
    // A line is never dropped because the catalogue missed its product: kept and reported.
    assert_eq!(report.merged, 2);
    assert_eq!(report.unknown_products, vec![p("book", 500)]);
    assert_eq!(target.unique_count().await.unwrap(), 2);
}

async fn login_flow_points_the_session_at_the_merged_user_cart(h: Harness) {
    // Untested promise 6, done right.
    let carts = h.carts();
    // An earlier visit left carol with an open cart.
    let earlier = MemorySession::default();
    let mut before = carts.open(earlier.clone()).await.unwrap();
    before.add(&p("book", 1), d("10.00"), 1).await.unwrap();
    before.login("carol", MergeStrategy::Add).await.unwrap();
    let user_cart = before.id().await.unwrap().unwrap();
    assert_eq!(carts.active_user_carts("carol").await.unwrap().len(), 1);

    // A new guest session fills a cart, then logs in.
    let session = MemorySession::default();
    let mut guest = carts.open(session.clone()).await.unwrap();
    guest.add(&p("book", 1), d("10.00"), 2).await.unwrap();
    guest.add(&p("book", 2), d("5.00"), 1).await.unwrap();
    let guest_id = guest.id().await.unwrap().unwrap();
    let report = guest.login("carol", MergeStrategy::Add).await.unwrap();
    assert_eq!(report.merged, 2);
    assert_eq!(
        session.cart_id().await.unwrap(),
        Some(user_cart),
        "the session points at the user's cart"
    );
    assert_eq!(guest.count().await.unwrap(), 4);

    let next_request = carts.open(session.clone()).await.unwrap();
    assert_eq!(
        next_request.count().await.unwrap(),
        4,
        "the next request sees the merged cart"
    );
    assert_eq!(
        next_request.user_id().await.unwrap().as_deref(),
        Some("carol")
    );
    assert_eq!(
        h.raw
            .count(&format!(
                "SELECT COUNT(*) FROM cart_carts WHERE id = {guest_id}"
            ))
            .await,
        0
    );

    // Logging in again with the same cart changes nothing; logout forgets the cart.
    let mut same = carts.open(session.clone()).await.unwrap();
    same.login("carol", MergeStrategy::Add).await.unwrap();
    assert_eq!(same.count().await.unwrap(), 4);
    same.forget().await.unwrap();
    assert_eq!(session.cart_id().await.unwrap(), None);
    assert!(carts.open(session).await.unwrap().is_empty().await.unwrap());
}

async fn serialisation_format_and_round_trip(h: Harness) {
    // SER-01..06
    let carts = h.carts();
    carts
        .create_discount(NewDiscount::percent("SUMMER25", d("25")))
        .await
        .unwrap();
    let mut cart = carts.new_cart();
    assert_eq!(
        cart.to_serializable().await.unwrap().to_json(),
        serde_json::json!({})
    );
    cart.add(&p("book", 42), d("9.99"), 2).await.unwrap();
    cart.add(&p("coffee", 42), d("15.5"), 3).await.unwrap();
    cart.apply_discount("SUMMER25").await.unwrap();
    let payload = cart.to_serializable().await.unwrap();
    assert_eq!(
        payload.to_json(),
        serde_json::json!({
            "book:42": {"kind": "book", "id": 42, "quantity": 2, "unit_price": "9.99", "total_price": "19.98"},
            "coffee:42": {"kind": "coffee", "id": 42, "quantity": 3, "unit_price": "15.50", "total_price": "46.50"},
            "__discount__": {"code": "SUMMER25"},
        })
    );
    let text = serde_json::to_string(&payload).unwrap();
    let mut restored = carts.new_cart();
    restored
        .from_serializable(&CartPayload::parse(&text).unwrap())
        .await
        .unwrap();
    assert_eq!(restored.lines().await.unwrap(), cart.lines().await.unwrap());
    assert_eq!(
        restored.discount_code().await.unwrap().as_deref(),
        Some("SUMMER25")
    );
    assert_eq!(restored.total().await.unwrap(), cart.total().await.unwrap());
}

async fn restore_rejects_untrusted_payloads_and_writes_nothing(h: Harness) {
    // Weakness 6: nothing written, not even an empty cart row.
    let carts = h.carts();
    let session = MemorySession::default();
    let before = h.raw.count("SELECT COUNT(*) FROM cart_carts").await;
    for bad in [
        "garbage",
        "[]",
        r#"{"book:1": {"quantity": 0, "unit_price": "1.00"}}"#,
        r#"{"book:1": {"quantity": -1, "unit_price": "1.00"}}"#,
        r#"{"book:1": {"quantity": 1000000000000, "unit_price": "1.00"}}"#,
        r#"{"book:1": {"quantity": 1.5, "unit_price": "1.00"}}"#,
        r#"{"book:1": {"quantity": 1, "unit_price": "-1.00"}}"#,
        r#"{"book:1": {"quantity": 1, "unit_price": "abc"}}"#,
        r#"{"book:1": {"quantity": 1, "unit_price": 1.0}}"#,
        r#"{"book:1": {"quantity": 1}}"#,
        r#"{"book:1": {"unit_price": "1.00"}}"#,
        r#"{"Book Shelf:1": {"quantity": 1, "unit_price": "1.00"}}"#,
        r#"{"book:x": {"quantity": 1, "unit_price": "1.00"}}"#,
        r#"{"42": {"quantity": 1, "unit_price": "1.00"}}"#,
        r#"{"book:1": {"kind": "coffee", "quantity": 1, "unit_price": "1.00"}}"#,
        r#"{"book:1": {"quantity": 2, "unit_price": "1.00", "total_price": "0.01"}}"#,
        r#"{"__evil__": {}}"#,
    ] {
        assert!(CartPayload::parse(bad).is_err(), "accepted {bad}");
    }
    // Within the configured cap only.
    let capped = h.builder().max_quantity_per_item(5).build();
    let mut cart = capped.open(session.clone()).await.unwrap();
    let payload =
        CartPayload::parse(r#"{"book:1": {"quantity": 6, "unit_price": "1.00"}}"#).unwrap();
    let err = cart.from_serializable(&payload).await.unwrap_err();
    assert_eq!(err.to_string(), "Quantity cannot exceed 5.");
    assert_eq!(
        h.raw.count("SELECT COUNT(*) FROM cart_carts").await,
        before,
        "no row written"
    );
    assert_eq!(session.cart_id().await.unwrap(), None);
    drop(carts);
}

async fn restore_checks_products_and_prices_with_a_catalogue(h: Harness) {
    let carts = h.builder().catalog(TestCatalog::default()).build();
    let mut cart = carts.new_cart();
    let unknown =
        CartPayload::parse(r#"{"book:500": {"quantity": 1, "unit_price": "1.00"}}"#).unwrap();
    assert_eq!(
        cart.from_serializable(&unknown)
            .await
            .unwrap_err()
            .to_string(),
        "Product book:500 does not exist."
    );
    let tampered =
        CartPayload::parse(r#"{"book:1": {"quantity": 1, "unit_price": "0.01"}}"#).unwrap();
    assert_eq!(
        cart.from_serializable(&tampered)
            .await
            .unwrap_err()
            .to_string(),
        "Price mismatch: expected 11.00, got 0.01."
    );
    let unknown_kind =
        CartPayload::parse(r#"{"gadget:1": {"quantity": 1, "unit_price": "1.00"}}"#).unwrap();
    assert!(matches!(
        cart.from_serializable(&unknown_kind).await,
        Err(CartError::ProductNotFound(_))
    ));
    assert_eq!(cart.id().await.unwrap(), None);
    let honest =
        CartPayload::parse(r#"{"book:1": {"quantity": 2, "unit_price": "11.00"}}"#).unwrap();
    cart.from_serializable(&honest).await.unwrap();
    assert_eq!(cart.count().await.unwrap(), 2);
}

async fn restore_reattaches_only_a_valid_discount(h: Harness) {
    // SER-19, SER-20 (done better)
    let carts = h.carts();
    carts
        .create_discount(NewDiscount::percent("OFF", d("10")))
        .await
        .unwrap();
    carts
        .create_discount(NewDiscount::percent("MIN50", d("10")).min_cart_value(d("50")))
        .await
        .unwrap();
    let json = |code: &str| {
        CartPayload::parse(&format!(
            r#"{{"book:1": {{"quantity": 1, "unit_price": "10.00"}}, "__discount__": {{"code": "{code}"}}}}"#
        ))
        .unwrap()
    };
    let mut a = carts.new_cart();
    a.from_serializable(&json("OFF")).await.unwrap();
    assert_eq!(a.discount_code().await.unwrap().as_deref(), Some("OFF"));
    carts.set_discount_active("OFF", false).await.unwrap();
    let mut b = carts.new_cart();
    b.from_serializable(&json("OFF")).await.unwrap();
    assert_eq!(
        b.discount_code().await.unwrap(),
        None,
        "inactive: not re-attached"
    );
    let mut c = carts.new_cart();
    c.from_serializable(&json("GONE")).await.unwrap();
    assert_eq!(
        c.discount_code().await.unwrap(),
        None,
        "deleted: skipped, lines restored"
    );
    assert_eq!(c.count().await.unwrap(), 1);
    let mut e = carts.new_cart();
    e.from_serializable(&json("MIN50")).await.unwrap();
    assert_eq!(
        e.discount_code().await.unwrap(),
        None,
        "below its minimum: not re-attached"
    );
}
