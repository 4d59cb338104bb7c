//! The fixes of the review "Security and parity defects found in review", on every backend:
//! look-alike discount codes (item 4), money bounds (item 8), user ids and the user's cart
//! listing (item 12), deleting a cart or every cart of a user (item 15).

mod common;

use axum::http::StatusCode;

use axum_cart::{CartError, DiscountRefusal, Line, MemorySession, MergeStrategy, NewDiscount};
use common::{d, p, Harness};

backend_tests!(
    look_alike_codes_do_not_apply_real_ones,
    look_alike_codes_cannot_be_created,
    money_beyond_the_schema_is_refused_with_the_bound,
    money_at_the_bound_is_stored_exactly,
    admin_form_refuses_huge_money_with_the_bound,
    totals_at_the_largest_prices_and_quantities_do_not_panic,
    user_ids_the_schema_cannot_store_are_refused_with_400,
    user_carts_lists_every_cart_past_1000,
    delete_cart_removes_its_lines_and_merge_records,
    delete_user_carts_erases_everything_of_the_user,
);

fn assert_missing(result: Result<impl std::fmt::Debug, CartError>, code: &str) {
    match result {
        Err(CartError::InvalidDiscount(m)) => {
            assert_eq!(
                m.to_string(),
                format!("Discount code '{code}' does not exist.")
            )
        }
        other => panic!("{code}: expected 'does not exist', got {other:?}"),
    }
}

async fn look_alike_codes_do_not_apply_real_ones(h: Harness) {
    let carts = h.carts();
    carts
        .create_discount(NewDiscount::percent("summer25", d("25")))
        .await
        .unwrap();
    carts
        .create_discount(NewDiscount::fixed("FIXED10", d("10")))
        .await
        .unwrap();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("100.00"), 1).await.unwrap();
    // ſ (long s) upper-cases to S, ﬁ (ligature) to FI, ı (dotless i) to I.
    for look_alike in ["ſummer25", "ﬁxed10", "fıxed10", "FIXED１0"] {
        assert_missing(cart.apply_discount(look_alike).await, look_alike);
        assert_eq!(carts.discount(look_alike).await.unwrap(), None);
        assert!(!carts.set_discount_active(look_alike, false).await.unwrap());
    }
    assert_eq!(cart.discount_code().await.unwrap(), None);
    assert_eq!(cart.total().await.unwrap(), d("100.00"));
    // Nothing was switched off by a look-alike.
    assert!(carts.discount("FIXED10").await.unwrap().unwrap().active);
    // The real code, trimmed and in any ASCII case, still applies.
    let applied = cart.apply_discount(" summer25 ").await.unwrap();
    assert_eq!(applied.code, "SUMMER25");
    assert_eq!(cart.total().await.unwrap(), d("75.00"));
}

async fn look_alike_codes_cannot_be_created(h: Harness) {
    let carts = h.carts();
    carts
        .create_discount(NewDiscount::fixed("FIXED10", d("10")))
        .await
        .unwrap();
    for look_alike in ["ﬁxed10", "fıxed10", "ſummer25", "été"] {
        let err = carts
            .create_discount(NewDiscount::fixed(look_alike, d("1")))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CartError::InvalidDiscount(m)
                if m.to_string().starts_with("Discount codes may only contain ASCII letters, digits, punctuation and spaces;")),
            "{look_alike}: {err}"
        );
    }
    let codes: Vec<String> = carts
        .discounts()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.code)
        .collect();
    assert_eq!(codes, ["FIXED10"], "no look-alike was stored");
}

async fn money_beyond_the_schema_is_refused_with_the_bound(h: Harness) {
    let carts = h.carts();
    let huge = d("79228162514264337593543950335");
    let cases = [
        (
            NewDiscount::fixed("BIG", d("1")).min_cart_value(huge),
            "Minimum cart value cannot exceed 9999999999999999.99, got 79228162514264337593543950335.",
        ),
        (
            NewDiscount::fixed("BIG", d("1")).min_cart_value(d("10000000000000000")),
            "Minimum cart value cannot exceed 9999999999999999.99, got 10000000000000000.",
        ),
        (
            NewDiscount::fixed("BIG", huge),
            "Discount value cannot exceed 99999999.99, got 79228162514264337593543950335.",
        ),
        (
            NewDiscount::fixed("BIG", d("100000000.00")),
            "Discount value cannot exceed 99999999.99, got 100000000.00.",
        ),
        (
            NewDiscount::fixed("A".repeat(51), d("1")),
            "Discount codes are at most 50 characters, got 51.",
        ),
    ];
    for (new, message) in cases {
        match carts.create_discount(new).await {
            Err(CartError::InvalidDiscount(m)) => assert_eq!(m.to_string(), message),
            other => panic!("expected {message:?}, got {other:?}"),
        }
    }
    assert!(carts.discounts().await.unwrap().is_empty());

    let mut cart = carts.new_cart();
    for price in ["1000000000000.00", "79228162514264337593543950335"] {
        match cart.add(&p("book", 1), d(price), 1).await {
            Err(CartError::InvalidPrice(m)) => {
                assert_eq!(
                    m,
                    format!("Unit price cannot exceed 999999999999.99, got {price}.")
                )
            }
            other => panic!("expected InvalidPrice, got {other:?}"),
        }
    }
    assert_eq!(cart.id().await.unwrap(), None, "nothing was written");
}

async fn admin_form_refuses_huge_money_with_the_bound(h: Harness) {
    use axum::body::Body;
    use axum::http::{header, Request};
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let carts = h.carts();
    let app = axum::Router::new().nest("/admin", axum_cart::admin_router(carts.clone()));
    let post = |body: String| {
        Request::post("/admin/discounts")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    for (form, message) in [
        (
            "code=BIG&kind=fixed&value=1&min_cart_value=79228162514264337593543950335",
            "Minimum cart value cannot exceed 9999999999999999.99",
        ),
        (
            "code=BIG&kind=fixed&value=100000000",
            "Discount value cannot exceed 99999999.99",
        ),
        (
            "code=%C5%BFummer25&kind=percent&value=5",
            "Discount codes may only contain ASCII",
        ),
    ] {
        let res = app.clone().oneshot(post(form.to_owned())).await.unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let html = String::from_utf8_lossy(&body);
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{form}: {html}");
        assert!(html.contains(message), "{form}: {html}");
    }
    assert!(carts.discounts().await.unwrap().is_empty());
}

async fn money_at_the_bound_is_stored_exactly(h: Harness) {
    let carts = h.carts();
    assert_eq!(NewDiscount::MAX_VALUE, d("99999999.99"));
    assert_eq!(NewDiscount::MAX_MIN_CART_VALUE, d("9999999999999999.99"));
    let created = carts
        .create_discount(
            NewDiscount::fixed("EDGE", NewDiscount::MAX_VALUE)
                .min_cart_value(NewDiscount::MAX_MIN_CART_VALUE),
        )
        .await
        .unwrap();
    let stored = carts.discount("edge").await.unwrap().unwrap();
    assert_eq!(stored, created);
    assert_eq!(stored.value.to_string(), "99999999.99");
    assert_eq!(
        stored.min_cart_value.map(|m| m.to_string()).as_deref(),
        Some("9999999999999999.99")
    );
    // A cart just below the minimum is refused, with the bound in the message.
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("1.00"), 1).await.unwrap();
    match cart.apply_discount("EDGE").await {
        Err(CartError::InvalidDiscount(m)) => {
            assert_eq!(m, DiscountRefusal::BelowMinimum(d("9999999999999999.99")));
            assert_eq!(
                m.to_string(),
                "Minimum cart value of 9999999999999999.99 required."
            )
        }
        other => panic!("{other:?}"),
    }
    // The largest unit price is stored and read back exactly.
    let line = cart
        .add(&p("book", 2), d("999999999999.99"), 1)
        .await
        .unwrap();
    assert_eq!(line.unit_price, d("999999999999.99"));
    cart.refresh().await.unwrap();
    assert_eq!(cart.summary().await.unwrap(), d("1000000000000.99"));
}

async fn totals_at_the_largest_prices_and_quantities_do_not_panic(h: Harness) {
    // The largest batch, so the cart may hold that many lines.
    let carts = h.builder().max_lines(axum_cart::BATCH_LIMIT).build();
    carts
        .create_discount(
            NewDiscount::percent("ALL", d("100")).min_cart_value(NewDiscount::MAX_MIN_CART_VALUE),
        )
        .await
        .unwrap();
    carts
        .create_discount(
            NewDiscount::fixed("MAXOFF", NewDiscount::MAX_VALUE)
                .min_cart_value(NewDiscount::MAX_MIN_CART_VALUE),
        )
        .await
        .unwrap();
    let max_price = d("999999999999.99");
    let max_quantity = axum_cart::QUANTITY_LIMIT;
    let lines: Vec<Line> = (1..=axum_cart::BATCH_LIMIT as i64)
        .map(|i| Line::new(p("book", i), max_quantity, max_price))
        .collect();
    let mut cart = carts.new_cart();
    cart.add_bulk(lines).await.unwrap();
    cart.refresh().await.unwrap();
    let subtotal = d("999999999999990000000000.00");
    let totals = cart.totals().await.unwrap();
    assert_eq!(totals.subtotal, subtotal);
    assert_eq!(totals.count, 1_000_000_000_000);
    assert_eq!(totals.total, subtotal);
    assert_eq!(
        cart.lines().await.unwrap()[999].total_price(),
        d("999999999999990000000.00")
    );

    cart.apply_discount("MAXOFF").await.unwrap();
    assert_eq!(
        cart.discount_amount().await.unwrap(),
        NewDiscount::MAX_VALUE
    );
    assert_eq!(
        cart.total().await.unwrap(),
        subtotal - NewDiscount::MAX_VALUE
    );
    cart.remove_discount().await.unwrap();

    cart.apply_discount("all").await.unwrap();
    let totals = cart.totals().await.unwrap();
    assert_eq!(totals.discount, subtotal);
    assert_eq!(totals.total, d("0.00"));
    let order = cart.checkout().await.unwrap();
    assert!(order.placed_now);
    assert_eq!(order.totals.subtotal, subtotal);
    assert_eq!(order.totals.total, d("0.00"));
}

async fn user_ids_the_schema_cannot_store_are_refused_with_400(h: Harness) {
    let carts = h.carts();
    let long = "u".repeat(256);
    let cases = [
        (
            long.as_str(),
            "User id must be at most 255 characters, got 256.",
        ),
        ("", "User id cannot be empty."),
        (
            "bob\u{0}",
            "User id cannot contain control characters, got U+0000.",
        ),
        (
            "bob\r\nX-Injected: 1",
            "User id cannot contain control characters, got U+000D.",
        ),
    ];
    for (user, message) in cases {
        let mut cart = carts.new_cart();
        cart.add(&p("book", 1), d("1.00"), 1).await.unwrap();
        let errors = [
            cart.bind_to_user(Some(user)).await.unwrap_err(),
            cart.login(user, MergeStrategy::Add).await.unwrap_err(),
            carts.user_carts(user).await.unwrap_err(),
            carts.active_user_carts(user).await.unwrap_err(),
            carts.delete_user_carts(user).await.unwrap_err(),
        ];
        for err in errors {
            assert!(
                matches!(&err, CartError::InvalidPayload(m) if m == message),
                "{err:?}"
            );
            assert_eq!(axum_cart::http_status(&err), StatusCode::BAD_REQUEST);
            assert_eq!(err.code(), "invalid_payload");
        }
        assert_eq!(cart.user_id().await.unwrap(), None);
    }
    // 255 characters (multi-byte ones, counted as characters) are stored and found.
    let longest = "é".repeat(255);
    let mut cart = carts.new_cart();
    cart.bind_to_user(Some(&longest)).await.unwrap();
    cart.refresh().await.unwrap();
    assert_eq!(
        cart.user_id().await.unwrap().as_deref(),
        Some(longest.as_str())
    );
    assert_eq!(carts.user_carts(&longest).await.unwrap().len(), 1);
}

/// Inserts `n` carts of `user` in one statement, `created_at` cycling over three seconds
/// so that pages meet carts of the same second.
async fn insert_carts(h: &Harness, user: &str, n: usize, checked_out: bool) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let flag = if checked_out { "TRUE" } else { "FALSE" };
    let flag = if h.backend == "sqlite" {
        if checked_out {
            "1"
        } else {
            "0"
        }
    } else {
        flag
    };
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let t = now - (i % 3) as i64;
            format!("({t}, {t}, '{user}', {flag})")
        })
        .collect();
    h.raw
        .exec(&format!(
            "INSERT INTO cart_carts (created_at, updated_at, user_id, checked_out) VALUES {}",
            rows.join(", ")
        ))
        .await
        .unwrap();
}

async fn user_carts_lists_every_cart_past_1000(h: Harness) {
    let carts = h.carts();
    insert_carts(&h, "many", 1001, false).await;
    insert_carts(&h, "many", 5, true).await;
    insert_carts(&h, "other", 3, false).await;

    let all = carts.user_carts("many").await.unwrap();
    assert_eq!(all.len(), 1006, "every cart, not the first 1000");
    let mut ids: Vec<i64> = all.iter().map(|c| c.id.get()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1006, "no cart listed twice");
    assert!(all.iter().all(|c| c.user_id.as_deref() == Some("many")));
    assert!(
        all.windows(2)
            .all(|w| (w[0].created_at, w[0].id) > (w[1].created_at, w[1].id)),
        "newest first, ties by id"
    );
    assert_eq!(all.iter().filter(|c| c.checked_out).count(), 5);

    let open = carts.active_user_carts("many").await.unwrap();
    assert_eq!(open.len(), 1001);
    assert!(open.iter().all(|c| !c.checked_out));

    // The erasure of them all runs in two batches.
    assert_eq!(carts.delete_user_carts("many").await.unwrap(), 1006);
    assert!(carts.user_carts("many").await.unwrap().is_empty());
    assert_eq!(carts.user_carts("other").await.unwrap().len(), 3);
}

async fn count(h: &Harness, sql: &str) -> i64 {
    h.raw.count(sql).await
}

async fn delete_cart_removes_its_lines_and_merge_records(h: Harness) {
    let carts = h.builder().cache_carts(true).build();
    // alice's cart, and a guest cart merged into it at login.
    let mut own = carts.new_cart();
    own.bind_to_user(Some("alice")).await.unwrap();
    own.add(&p("book", 1), d("5.00"), 2).await.unwrap();
    let own_id = own.id().await.unwrap().unwrap();
    let mut guest = carts.open(MemorySession::default()).await.unwrap();
    guest.add(&p("book", 2), d("7.00"), 1).await.unwrap();
    let guest_id = guest.id().await.unwrap().unwrap();
    guest.login("alice", MergeStrategy::Add).await.unwrap();
    assert_eq!(guest.id().await.unwrap(), Some(own_id));
    assert_eq!(
        count(
            &h,
            &format!("SELECT COUNT(*) FROM cart_merges WHERE target_id = {own_id}")
        )
        .await,
        1
    );
    let other = {
        let mut c = carts.new_cart();
        c.add(&p("book", 3), d("1.00"), 1).await.unwrap();
        c.id().await.unwrap().unwrap()
    };
    // Read through the shared cache before the delete.
    assert_eq!(carts.cart(own_id).count().await.unwrap(), 3);

    assert!(carts.delete_cart(own_id).await.unwrap());
    assert!(!carts.delete_cart(own_id).await.unwrap(), "already gone");
    assert!(
        !carts.delete_cart(guest_id).await.unwrap(),
        "merged away before"
    );
    assert_eq!(
        carts.cart(own_id).record().await.unwrap(),
        None,
        "not cached"
    );
    assert_eq!(
        count(
            &h,
            &format!("SELECT COUNT(*) FROM cart_items WHERE cart_id = {own_id}")
        )
        .await,
        0
    );
    assert_eq!(count(&h, "SELECT COUNT(*) FROM cart_merges").await, 0);
    assert_eq!(
        carts.cart(other).count().await.unwrap(),
        1,
        "other carts stay"
    );
    // The session that named the deleted cart starts afresh.
    guest.refresh().await.unwrap();
    assert_eq!(guest.count().await.unwrap(), 0);
    guest.add(&p("book", 4), d("1.00"), 1).await.unwrap();
    assert_ne!(guest.id().await.unwrap(), Some(own_id));
}

async fn delete_user_carts_erases_everything_of_the_user(h: Harness) {
    let carts = h.carts();
    carts
        .create_discount(NewDiscount::percent("TEN", d("10")))
        .await
        .unwrap();
    // alice: a checked-out cart with a discount, an open cart holding a merged guest cart.
    let mut order = carts.new_cart();
    order.add(&p("book", 1), d("10.00"), 1).await.unwrap();
    order.apply_discount("TEN").await.unwrap();
    order.bind_to_user(Some("alice")).await.unwrap();
    order.checkout().await.unwrap();
    let mut open = carts.new_cart();
    open.bind_to_user(Some("alice")).await.unwrap();
    open.add(&p("book", 2), d("3.00"), 4).await.unwrap();
    let mut guest = carts.open(MemorySession::default()).await.unwrap();
    guest.add(&p("book", 3), d("2.00"), 1).await.unwrap();
    guest.login("alice", MergeStrategy::Add).await.unwrap();
    let mut bob = carts.new_cart();
    bob.bind_to_user(Some("bob")).await.unwrap();
    bob.add(&p("book", 1), d("10.00"), 1).await.unwrap();

    let alice: Vec<i64> = carts
        .user_carts("alice")
        .await
        .unwrap()
        .iter()
        .map(|c| c.id.get())
        .collect();
    assert_eq!(alice.len(), 2);
    let in_alice = alice
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    assert_eq!(count(&h, "SELECT COUNT(*) FROM cart_merges").await, 1);

    assert_eq!(carts.delete_user_carts("alice").await.unwrap(), 2);
    assert!(carts.user_carts("alice").await.unwrap().is_empty());
    assert_eq!(
        count(
            &h,
            "SELECT COUNT(*) FROM cart_carts WHERE user_id = 'alice'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &h,
            &format!("SELECT COUNT(*) FROM cart_items WHERE cart_id IN ({in_alice})")
        )
        .await,
        0
    );
    assert_eq!(count(&h, "SELECT COUNT(*) FROM cart_merges").await, 0);
    // bob's cart and the discount (not personal data) stay.
    assert_eq!(carts.user_carts("bob").await.unwrap().len(), 1);
    assert_eq!(count(&h, "SELECT COUNT(*) FROM cart_items").await, 1);
    let ten = carts.discount("TEN").await.unwrap().unwrap();
    assert_eq!(ten.current_uses, 1);
    assert_eq!(carts.delete_user_carts("alice").await.unwrap(), 0);
    assert_eq!(carts.delete_user_carts("nobody").await.unwrap(), 0);
}
