//! The admin pages, through the real router: lists, detail, discount management, the
//! cross-site guard, and a cart list whose cost does not grow with its length.

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use axum_cart::admin_router;
use common::{d, p, Harness, TestCatalog};
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post_form(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

backend_tests!(
    admin_pages_list_show_and_manage,
    admin_edits_and_removes_cart_lines,
    admin_edits_and_deletes_discounts,
    admin_addresses_codes_that_need_encoding,
    admin_lists_events_and_retries_parked_ones,
);

/// A sink that is down.
struct Down;

#[axum_cart::async_trait]
impl axum_cart::EventSink for Down {
    fn name(&self) -> &str {
        "broker"
    }

    async fn deliver(&self, _: &axum_cart::OutboxEvent) -> Result<(), axum_cart::BoxError> {
        Err("connection refused".into())
    }
}

async fn admin_lists_events_and_retries_parked_ones(h: Harness) {
    let carts = h.carts();
    let app = Router::new().nest("/admin", admin_router(carts.clone()));
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("2.00"), 1).await.unwrap();
    cart.add(&p("book", 2), d("3.00"), 1).await.unwrap();
    let id = cart.id().await.unwrap().unwrap();

    let (status, html) = call(&app, get("/admin/events")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("2 pending, 0 delivered, 0 parked"), "{html}");
    assert!(html.contains("item_added") && html.contains(&format!("href=\"/admin/carts/{id}\"")));
    assert!(!html.contains("Retry"), "nothing parked: {html}");

    let relay = axum_cart::Relay::new(&carts)
        .sink(Down)
        .max_attempts(1)
        .abandoned_after(None);
    relay.run_once().await.unwrap();
    let (_, html) = call(&app, get("/admin/events?state=parked")).await;
    assert!(
        html.contains("1 parked") && html.contains("broker: connection refused"),
        "{html}"
    );
    let parked = carts
        .events(Some(axum_cart::DeliveryState::Parked), 10)
        .await
        .unwrap();
    assert_eq!(parked.len(), 1);
    let retry = format!("/admin/events/{}/retry", parked[0].id);
    assert!(html.contains(&format!("action=\"{retry}\"")), "{html}");

    let (status, _) = call(&app, post_form(&retry, "")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, html) = call(&app, get("/admin/events?state=parked")).await;
    assert!(html.contains("No events."), "retried: {html}");
    assert_eq!(
        call(&app, post_form(&retry, "")).await.0,
        StatusCode::NOT_FOUND,
        "no longer parked"
    );
    // Retried, it parks again, and holds its cart's next event back.
    relay.run_once().await.unwrap();
    relay.run_once().await.unwrap();
    let counts = carts.event_counts().await.unwrap();
    assert_eq!((counts.pending, counts.parked), (1, 1), "{}", h.backend);
    let (status, _) = call(&app, post_form("/admin/events/retry", "")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(carts.event_counts().await.unwrap().pending, 2);
    assert_eq!(
        call(&app, get("/admin/events?state=lost")).await.0,
        StatusCode::BAD_REQUEST
    );
    // A form post from another site changes nothing.
    let forged = Request::post("/admin/events/retry")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "cross-site")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, forged).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        carts.event_counts().await.unwrap().pending,
        2,
        "{}",
        h.backend
    );
}

async fn admin_pages_list_show_and_manage(h: Harness) {
    let carts = h.builder().catalog(TestCatalog::default()).build();
    let app = Router::new().nest("/admin", admin_router(carts.clone()));
    let mut a = carts.new_cart();
    a.add(&p("book", 1), d("11.00"), 2).await.unwrap();
    a.bind_to_user(Some("erin")).await.unwrap();
    let mut b = carts.new_cart();
    b.add(&p("coffee", 2), d("12.00"), 1).await.unwrap();
    b.checkout().await.unwrap();
    let (a_id, b_id) = (
        a.id().await.unwrap().unwrap(),
        b.id().await.unwrap().unwrap(),
    );

    let (status, html) = call(&app, get("/admin/carts")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&format!("href=\"/admin/carts/{a_id}\"")),
        "{html}"
    );
    let row = |id| format!(">#{id}</a>");
    assert!(
        html.find(&row(b_id)).unwrap() < html.find(&row(a_id)).unwrap(),
        "newest first"
    );
    let (_, html) = call(&app, get("/admin/carts?checked_out=yes")).await;
    assert!(
        html.contains(&row(b_id)) && !html.contains(&row(a_id)),
        "{html}"
    );
    let (_, html) = call(&app, get("/admin/carts?user=erin")).await;
    assert!(html.contains(&row(a_id)) && !html.contains(&row(b_id)));

    let (status, html) = call(&app, get(&format!("/admin/carts/{a_id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("book 1") && html.contains("22.00") && html.contains("erin"),
        "{html}"
    );
    assert_eq!(
        call(&app, get("/admin/carts/999999")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&app, get("/admin/carts/abc")).await.0,
        StatusCode::NOT_FOUND
    );

    // Discounts: create, refuse bad input, deactivate.
    let (status, _) = call(&app, post_form("/admin/discounts", "code=summer25&kind=percent&value=25&min_cart_value=50&max_uses=500&valid_until=2099-12-31")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let created = carts.discount("SUMMER25").await.unwrap().unwrap();
    assert_eq!(
        (created.value.to_string(), created.max_uses),
        ("25.00".into(), Some(500))
    );
    let (status, html) = call(
        &app,
        post_form("/admin/discounts", "code=BAD&kind=percent&value=150"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("cannot exceed 100%"), "{html}");
    let (status, html) = call(
        &app,
        post_form("/admin/discounts", "code=X&kind=percent&value=abc"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("Value must be a number"), "{html}");
    assert_eq!(
        call(&app, post_form("/admin/discounts", "nonsense"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let (status, _) = call(&app, post_form("/admin/discounts/SUMMER25/deactivate", "")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(!carts.discount("SUMMER25").await.unwrap().unwrap().active);
    assert_eq!(
        call(&app, post_form("/admin/discounts/NOPE/deactivate", ""))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, html) = call(&app, get("/admin/discounts")).await;
    assert!(
        html.contains("SUMMER25") && html.contains("0/500"),
        "{html}"
    );

    // A form posted from another site is refused and changes nothing.
    let mut cross = post_form("/admin/discounts/SUMMER25/activate", "");
    cross
        .headers_mut()
        .insert(header::ORIGIN, "https://evil.example".parse().unwrap());
    cross
        .headers_mut()
        .insert(header::HOST, "shop.example".parse().unwrap());
    assert_eq!(call(&app, cross).await.0, StatusCode::FORBIDDEN);
    let mut cross = post_form("/admin/discounts", "code=EVIL&kind=fixed&value=100");
    cross
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(call(&app, cross).await.0, StatusCode::FORBIDDEN);
    assert!(!carts.discount("SUMMER25").await.unwrap().unwrap().active);
    assert!(carts.discount("EVIL").await.unwrap().is_none());
}

/// The lines of a cart as (product, quantity, unit price), read fresh.
async fn lines_of(carts: &axum_cart::Carts, id: axum_cart::CartId) -> Vec<(String, i64, String)> {
    carts
        .cart(id)
        .lines()
        .await
        .unwrap()
        .iter()
        .map(|l| (l.product.to_string(), l.quantity, l.unit_price.to_string()))
        .collect()
}

fn cross_site(mut req: Request<Body>) -> Request<Body> {
    req.headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    req
}

/// Issue item 14: a cart's lines are edited (quantity, price; 0 removes) and removed from
/// its admin page; bad input gets a 4xx naming the problem and changes nothing; a
/// checked-out cart is refused; cross-site posts are refused.
async fn admin_edits_and_removes_cart_lines(h: Harness) {
    let carts = h.builder().catalog(TestCatalog::default()).build();
    let app = Router::new().nest("/admin", admin_router(carts.clone()));
    let mut a = carts.new_cart();
    a.add(&p("book", 1), d("11.00"), 2).await.unwrap();
    a.add(&p("coffee", 2), d("12.00"), 1).await.unwrap();
    let id = a.id().await.unwrap().unwrap();
    let line = format!("/admin/carts/{id}/lines/book/1");

    let (status, html) = call(&app, get(&format!("/admin/carts/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&format!("action=\"{line}\""))
            && html.contains(&format!("action=\"{line}/remove\""))
            && html.contains("name=\"quantity\" value=\"2\""),
        "{html}"
    );

    let (status, _) = call(&app, post_form(&line, "quantity=5")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = call(&app, post_form(&line, "quantity=3&unit_price=9.50")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let before = lines_of(&carts, id).await;
    assert_eq!(
        before,
        vec![
            ("book:1".into(), 3, "9.50".into()),
            ("coffee:2".into(), 1, "12.00".into())
        ]
    );

    // Bad input: a clear 4xx, and nothing changes.
    for (uri, form, status, says) in [
        (
            line.as_str(),
            "quantity=-1",
            StatusCode::BAD_REQUEST,
            "cannot be negative",
        ),
        (
            line.as_str(),
            "quantity=1000000000000",
            StatusCode::BAD_REQUEST,
            "cannot exceed",
        ),
        (
            line.as_str(),
            "quantity=abc",
            StatusCode::BAD_REQUEST,
            "whole number",
        ),
        (
            line.as_str(),
            "quantity=",
            StatusCode::BAD_REQUEST,
            "whole number",
        ),
        (
            line.as_str(),
            "nonsense",
            StatusCode::BAD_REQUEST,
            "needs a quantity",
        ),
        (
            line.as_str(),
            "quantity=2&unit_price=1.234",
            StatusCode::BAD_REQUEST,
            "2 decimal places",
        ),
        (
            line.as_str(),
            "quantity=2&unit_price=-1",
            StatusCode::BAD_REQUEST,
            "cannot be negative",
        ),
        (
            line.as_str(),
            "quantity=2&unit_price=12%2C50",
            StatusCode::BAD_REQUEST,
            "Unit price must be a number",
        ),
        (
            line.as_str(),
            "quantity=2&unit_price=1e99999",
            StatusCode::BAD_REQUEST,
            "Unit price must be a number",
        ),
    ] {
        let (got, html) = call(&app, post_form(uri, form)).await;
        assert_eq!(got, status, "{form}: {html}");
        assert!(html.contains(says), "{form}: {html}");
        assert_eq!(lines_of(&carts, id).await, before, "{form} changed nothing");
    }
    for uri in [
        format!("/admin/carts/{id}/lines/book/99"),
        format!("/admin/carts/{id}/lines/Book/1"),
        format!("/admin/carts/{id}/lines/book/-1"),
        format!("/admin/carts/{id}/lines/book/x"),
        "/admin/carts/999999/lines/book/1".to_owned(),
        "/admin/carts/abc/lines/book/1".to_owned(),
    ] {
        let (got, html) = call(&app, post_form(&uri, "quantity=1")).await;
        assert_eq!(got, StatusCode::NOT_FOUND, "{uri}: {html}");
        let (got, _) = call(&app, post_form(&format!("{uri}/remove"), "")).await;
        assert_eq!(got, StatusCode::NOT_FOUND, "{uri}/remove");
    }
    assert_eq!(lines_of(&carts, id).await, before);
    assert_eq!(
        call(&app, cross_site(post_form(&line, "quantity=7")))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&app, cross_site(post_form(&format!("{line}/remove"), "")))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        lines_of(&carts, id).await,
        before,
        "cross-site changed nothing"
    );

    // Remove one line with its button, the other with quantity 0.
    let coffee = format!("/admin/carts/{id}/lines/coffee/2/remove");
    assert_eq!(
        call(&app, post_form(&coffee, "")).await.0,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        call(&app, post_form(&coffee, "")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&app, post_form(&line, "quantity=0")).await.0,
        StatusCode::SEE_OTHER
    );
    assert!(lines_of(&carts, id).await.is_empty());

    // A checked-out cart's lines are not editable: no forms, and posts are refused.
    let mut b = carts.new_cart();
    b.add(&p("course", 3), d("13.00"), 2).await.unwrap();
    b.checkout().await.unwrap();
    let b_id = b.id().await.unwrap().unwrap();
    let (status, html) = call(&app, get(&format!("/admin/carts/{b_id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("<form"), "{html}");
    let b_line = format!("/admin/carts/{b_id}/lines/course/3");
    let (status, html) = call(&app, post_form(&b_line, "quantity=1")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{html}");
    assert!(html.contains("checked out"), "{html}");
    assert_eq!(
        call(&app, post_form(&format!("{b_line}/remove"), ""))
            .await
            .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        lines_of(&carts, b_id).await,
        vec![("course:3".into(), 2, "13.00".into())]
    );
}

/// Issue item 14: a discount is edited and deleted from its admin page. Bad input gets a
/// 4xx and changes nothing; a code used at checkout keeps its type and value and cannot be
/// deleted (the order keeps its figures); deleting an unused code detaches the open carts
/// holding it, which are then priced without it.
async fn admin_edits_and_deletes_discounts(h: Harness) {
    let carts = h.builder().catalog(TestCatalog::default()).build();
    let app = Router::new().nest("/admin", admin_router(carts.clone()));
    carts
        .create_discount(axum_cart::NewDiscount::percent("SAVE10", d("10")))
        .await
        .unwrap();

    let (status, html) = call(&app, get("/admin/discounts")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("href=\"/admin/discounts/SAVE10\""), "{html}");
    let (status, html) = call(&app, get("/admin/discounts/save10")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("action=\"/admin/discounts/SAVE10\"")
            && html.contains("action=\"/admin/discounts/SAVE10/delete\""),
        "{html}"
    );
    assert_eq!(
        call(&app, get("/admin/discounts/NOPE")).await.0,
        StatusCode::NOT_FOUND
    );

    let edit = "kind=fixed&value=5&min_cart_value=20&max_uses=3&active=no\
                &valid_from=2020-01-01&valid_until=2099-12-31T18%3A30";
    let (status, _) = call(&app, post_form("/admin/discounts/SAVE10", edit)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let edited = carts.discount("SAVE10").await.unwrap().unwrap();
    assert_eq!(
        (
            edited.kind,
            edited.value.to_string(),
            edited.min_cart_value.map(|m| m.to_string()),
            edited.max_uses,
            edited.active,
            edited.valid_from.map(|t| t.unix_timestamp()),
            edited.valid_until.map(|t| t.unix_timestamp()),
        ),
        (
            axum_cart::DiscountKind::Fixed,
            "5.00".into(),
            Some("20.00".into()),
            Some(3),
            false,
            Some(1_577_836_800),
            Some(4_102_425_000),
        )
    );
    // The page shows the stored times so that saving it unchanged keeps them.
    let (_, html) = call(&app, get("/admin/discounts/SAVE10")).await;
    assert!(html.contains("value=\"2099-12-31T18:30:00\""), "{html}");

    let ok = "kind=fixed&value=5&active=yes";
    for (form, status, says) in [
        (
            "kind=fixed&value=abc&active=yes",
            StatusCode::BAD_REQUEST,
            "Value must be a number",
        ),
        (
            "kind=fixed&value=1.5.5&active=yes",
            StatusCode::BAD_REQUEST,
            "Value must be a number",
        ),
        (
            "kind=fixed&value=1.234&active=yes",
            StatusCode::UNPROCESSABLE_ENTITY,
            "2 decimal places",
        ),
        (
            "kind=percent&value=150&active=yes",
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot exceed 100%",
        ),
        (
            "kind=fixed&value=-5&active=yes",
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot be negative",
        ),
        (
            "kind=bogus&value=5&active=yes",
            StatusCode::BAD_REQUEST,
            "Type must be percent or fixed",
        ),
        (
            "kind=fixed&value=5&active=maybe",
            StatusCode::BAD_REQUEST,
            "Active must be yes or no",
        ),
        ("kind=fixed&value=5", StatusCode::BAD_REQUEST, "incomplete"),
        (
            "kind=fixed&value=5&active=yes&max_uses=-1",
            StatusCode::UNPROCESSABLE_ENTITY,
            "Maximum uses must be between",
        ),
        (
            "kind=fixed&value=5&active=yes&max_uses=1000000000000",
            StatusCode::UNPROCESSABLE_ENTITY,
            "Maximum uses must be between",
        ),
        (
            "kind=fixed&value=5&active=yes&max_uses=x",
            StatusCode::BAD_REQUEST,
            "Max uses must be a whole number",
        ),
        (
            "kind=fixed&value=5&active=yes&min_cart_value=lots",
            StatusCode::BAD_REQUEST,
            "Min cart value must be a number",
        ),
        (
            "kind=fixed&value=5&active=yes&valid_from=2030-01-01&valid_until=2029-01-01",
            StatusCode::UNPROCESSABLE_ENTITY,
            "later than valid_from",
        ),
        (
            "kind=fixed&value=5&active=yes&valid_from=tomorrow",
            StatusCode::BAD_REQUEST,
            "Valid from must be a date",
        ),
    ] {
        let (got, html) = call(&app, post_form("/admin/discounts/SAVE10", form)).await;
        assert_eq!(got, status, "{form}: {html}");
        assert!(html.contains(says), "{form}: {html}");
        assert_eq!(
            carts.discount("SAVE10").await.unwrap().unwrap(),
            edited,
            "{form}"
        );
    }
    assert_eq!(
        call(&app, post_form("/admin/discounts/NOPE", ok)).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&app, cross_site(post_form("/admin/discounts/SAVE10", ok)))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(
            &app,
            cross_site(post_form("/admin/discounts/SAVE10/delete", ""))
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(carts.discount("SAVE10").await.unwrap().unwrap(), edited);

    // A code used at checkout: its rules other than type and value can change; its type and
    // value cannot, nor can it be deleted; the order keeps its discount.
    let (status, _) = call(
        &app,
        post_form(
            "/admin/discounts/SAVE10",
            "kind=fixed&value=5&active=yes&max_uses=3",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let mut order = carts.new_cart();
    order.add(&p("book", 1), d("30.00"), 1).await.unwrap();
    order.apply_discount("SAVE10").await.unwrap();
    order.checkout().await.unwrap();
    let order_id = order.id().await.unwrap().unwrap();
    let order_totals = carts.cart(order_id).totals().await.unwrap();
    assert_eq!(order_totals.discount.to_string(), "5.00");
    let used = carts.discount("SAVE10").await.unwrap().unwrap();
    assert_eq!(used.current_uses, 1);
    for (form, says) in [
        (
            "kind=fixed&value=6&active=yes",
            "type and value can no longer change",
        ),
        (
            "kind=percent&value=5&active=yes",
            "type and value can no longer change",
        ),
        (
            "kind=fixed&value=5&active=yes&max_uses=0",
            "cannot be below the 1 uses",
        ),
    ] {
        let (got, html) = call(&app, post_form("/admin/discounts/SAVE10", form)).await;
        assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY, "{form}: {html}");
        assert!(html.contains(says), "{form}: {html}");
        assert_eq!(carts.discount("SAVE10").await.unwrap().unwrap(), used);
    }
    let (status, _) = call(
        &app,
        post_form(
            "/admin/discounts/SAVE10",
            "kind=fixed&value=5&active=no&max_uses=10&valid_until=2098-01-01",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "other rules stay editable");
    let after = carts.discount("SAVE10").await.unwrap().unwrap();
    assert_eq!(
        (after.max_uses, after.active, after.current_uses),
        (Some(10), false, 1)
    );
    let (status, html) = call(&app, post_form("/admin/discounts/SAVE10/delete", "")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{html}");
    assert!(html.contains("deactivate it instead"), "{html}");
    assert!(carts.discount("SAVE10").await.unwrap().is_some());
    assert_eq!(carts.cart(order_id).totals().await.unwrap(), order_totals);

    // An unused code held by an open cart: deleted, and the cart is priced without it.
    carts
        .create_discount(axum_cart::NewDiscount::fixed("OPEN5", d("5")))
        .await
        .unwrap();
    let mut open = carts.new_cart();
    open.add(&p("book", 2), d("20.00"), 1).await.unwrap();
    open.apply_discount("OPEN5").await.unwrap();
    let open_id = open.id().await.unwrap().unwrap();
    assert_eq!(
        carts
            .cart(open_id)
            .totals()
            .await
            .unwrap()
            .discount
            .to_string(),
        "5.00"
    );
    let (status, _) = call(&app, post_form("/admin/discounts/OPEN5/delete", "")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(carts.discount("OPEN5").await.unwrap().is_none());
    let totals = carts.cart(open_id).totals().await.unwrap();
    assert_eq!(
        (
            totals.discount_code,
            totals.discount.to_string(),
            totals.total.to_string()
        ),
        (None, "0.00".into(), "20.00".into())
    );
    assert_eq!(
        h.raw
            .count(&format!(
                "SELECT COUNT(*) FROM cart_carts WHERE id = {} AND discount_id IS NOT NULL",
                open_id.get()
            ))
            .await,
        0,
        "the open cart no longer refers to the deleted code"
    );
    let mut open = carts.cart(open_id);
    open.add(&p("book", 3), d("13.00"), 1).await.unwrap();
    open.checkout().await.unwrap();
    assert_eq!(
        call(&app, post_form("/admin/discounts/OPEN5/delete", ""))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, html) = call(&app, get("/admin/discounts")).await;
    assert!(html.contains("SAVE10") && !html.contains("OPEN5"), "{html}");
}

/// Issue item 2: a code with characters that need encoding in a URL (`/`, `?`, `#`, `%`,
/// space) is linked and posted to percent-encoded, and its page, on/off, edit and delete all
/// reach it.
async fn admin_addresses_codes_that_need_encoding(h: Harness) {
    let carts = h.carts();
    let app = Router::new().nest("/admin", admin_router(carts.clone()));
    let code = "A/B?C#D%E F";
    carts
        .create_discount(axum_cart::NewDiscount::percent(code, d("10")))
        .await
        .unwrap();
    let path = "/admin/discounts/A%2FB%3FC%23D%25E%20F";

    let (_, html) = call(&app, get("/admin/discounts")).await;
    assert!(
        html.contains(&format!("href=\"{path}\""))
            && html.contains(&format!("action=\"{path}/deactivate\"")),
        "{html}"
    );
    let (status, html) = call(&app, get(path)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains(&format!("action=\"{path}/deactivate\"")),
        "{html}"
    );

    assert_eq!(
        call(&app, post_form(&format!("{path}/deactivate"), ""))
            .await
            .0,
        StatusCode::SEE_OTHER
    );
    assert!(!carts.discount(code).await.unwrap().unwrap().active);
    let (_, html) = call(&app, get(path)).await;
    assert!(
        html.contains(&format!("action=\"{path}/activate\"")),
        "{html}"
    );
    assert_eq!(
        call(&app, post_form(&format!("{path}/activate"), ""))
            .await
            .0,
        StatusCode::SEE_OTHER
    );
    assert!(carts.discount(code).await.unwrap().unwrap().active);

    let (status, html) = call(&app, post_form(path, "kind=percent&value=15&active=yes")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
    assert_eq!(
        carts
            .discount(code)
            .await
            .unwrap()
            .unwrap()
            .value
            .to_string(),
        "15.00"
    );
    assert_eq!(
        call(&app, post_form(&format!("{path}/delete"), "")).await.0,
        StatusCode::SEE_OTHER
    );
    assert!(carts.discount(code).await.unwrap().is_none());
}
