//! Cart versions on every backend: every committed change steps the version once, a change
//! conditional on an older version (`Cart::if_version`, `If-Match`) is refused with nothing
//! changed, and `GET /cart` answers 304 to an `If-None-Match` naming the cart as it is.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use axum_cart::{
    CartError, CartLayer, CartPayload, CartRouter, Carts, Line, MergeStrategy, NewDiscount,
};
use serde_json::Value;
use tokio::sync::Mutex;
use tower::ServiceExt;
use tower_sessions::{MemoryStore, SessionManagerLayer};

use common::{d, p, Harness, TestCatalog};

backend_tests!(
    every_change_steps_the_version_once,
    a_change_on_a_stale_version_is_refused_and_changes_nothing,
    concurrent_conditional_changes_let_exactly_one_through,
    http_a_stale_if_match_is_412_with_the_current_cart,
    http_a_matching_if_match_goes_through,
    http_if_none_match_is_304_until_the_cart_changes,
    http_concurrent_requests_with_one_if_match_let_one_through,
    a_double_submitted_conditional_checkout_gets_its_order,
);

/// The version as the database has it, read through a fresh value.
async fn stored(carts: &Carts, cart: &axum_cart::Cart) -> u64 {
    let id = cart.id().await.unwrap().expect("a cart row");
    carts.cart(id).version().await.unwrap()
}

fn mismatch<T: std::fmt::Debug>(result: Result<T, CartError>, expected_current: u64) {
    match result {
        Err(CartError::VersionMismatch { current }) => assert_eq!(current, expected_current),
        other => panic!("expected version_mismatch, got {other:?}"),
    }
}

async fn every_change_steps_the_version_once(h: Harness) {
    let carts = h.carts();
    carts
        .create_discount(NewDiscount::percent("TEN", d("10")))
        .await
        .unwrap();
    let mut cart = carts.new_cart();
    assert_eq!(cart.version().await.unwrap(), 0, "no row yet");
    let mut v = 0;
    let mut step = async |cart: &axum_cart::Cart, what: &str, by: u64| {
        v += by;
        assert_eq!(stored(&carts, cart).await, v, "{}: {what}", h.backend);
        assert_eq!(cart.version().await.unwrap(), v, "{}: {what}", h.backend);
    };

    cart.add(&p("book", 1), d("10.00"), 1).await.unwrap();
    step(&cart, "first add (creates the row)", 1).await;
    cart.add(&p("book", 1), d("10.00"), 2).await.unwrap();
    step(&cart, "add to a line", 1).await;
    cart.add(&p("book", 2), d("5.00"), 1).await.unwrap();
    step(&cart, "add of a new line", 1).await;
    cart.update(&p("book", 1), 5, None).await.unwrap();
    step(&cart, "update", 1).await;
    cart.remove(&p("book", 2)).await.unwrap();
    step(&cart, "remove", 1).await;
    cart.apply_discount("TEN").await.unwrap();
    step(&cart, "apply a discount", 1).await;
    cart.remove_discount().await.unwrap();
    step(&cart, "remove the discount", 1).await;
    cart.remove_discount().await.unwrap();
    step(&cart, "remove no discount: nothing changed", 0).await;
    cart.freeze().await.unwrap();
    step(&cart, "freeze", 1).await;
    cart.unfreeze().await.unwrap();
    step(&cart, "unfreeze", 1).await;
    cart.unfreeze().await.unwrap();
    step(&cart, "unfreeze an unfrozen cart: nothing changed", 0).await;
    cart.bind_to_user(Some("alice")).await.unwrap();
    step(&cart, "bind to a user", 1).await;
    cart.bind_to_user(Some("alice")).await.unwrap();
    step(&cart, "bind to the same user: nothing changed", 0).await;
    cart.add_bulk([
        Line::new(p("pen", 1), 2, d("1.00")),
        Line::new(p("pen", 2), 2, d("1.00")),
    ])
    .await
    .unwrap();
    step(&cart, "a bulk add of two lines is one change", 1).await;
    let payload =
        CartPayload::parse(r#"{"pen:3": {"quantity": 1, "unit_price": "1.00"}}"#).unwrap();
    cart.from_serializable(&payload).await.unwrap();
    step(&cart, "restore", 1).await;
    cart.clear().await.unwrap();
    step(&cart, "clear", 1).await;

    // Refused changes change nothing, the version included.
    assert!(cart.remove(&p("book", 9)).await.is_err());
    step(&cart, "remove of a line that is not there", 0).await;
    assert!(cart
        .add(&p("book", 1), d("10.00"), 2_000_000_000)
        .await
        .is_err());
    step(&cart, "an add past the maximum", 0).await;
    cart.add(&p("book", 1), d("10.00"), 1).await.unwrap();
    step(&cart, "add after clear", 1).await;
    let max = carts.config().line_limit();
    assert!(cart.add(&p("book", 1), d("10.00"), max).await.is_err());
    step(&cart, "an add that would pass the line's maximum", 0).await;
    cart.freeze().await.unwrap();
    step(&cart, "freeze again", 1).await;
    assert!(matches!(
        cart.add(&p("book", 1), d("10.00"), 1).await,
        Err(CartError::CartFrozen)
    ));
    step(&cart, "an add to a frozen cart", 0).await;
    cart.unfreeze().await.unwrap();
    step(&cart, "unfreeze again", 1).await;

    // A merge into the cart is one change of it.
    let mut guest = carts.new_cart();
    guest.add(&p("mug", 1), d("3.00"), 1).await.unwrap();
    cart.merge(&mut guest, MergeStrategy::Add).await.unwrap();
    step(&cart, "merge", 1).await;

    // An admin's delete of the discount the cart holds detaches it: a change of the cart.
    cart.apply_discount("TEN").await.unwrap();
    step(&cart, "apply the discount again", 1).await;
    assert!(carts.delete_discount("TEN").await.unwrap());
    cart.refresh().await.unwrap();
    assert_eq!(cart.discount_code().await.unwrap(), None);
    step(&cart, "the discount deleted by the admin", 1).await;

    cart.checkout().await.unwrap();
    step(&cart, "checkout", 1).await;
    cart.checkout().await.unwrap();
    step(&cart, "a repeated checkout: nothing changed", 0).await;
    assert!(cart.add(&p("book", 1), d("10.00"), 1).await.is_err());
}

async fn a_change_on_a_stale_version_is_refused_and_changes_nothing(h: Harness) {
    let carts = h.carts();
    carts
        .create_discount(NewDiscount::percent("TEN", d("10")))
        .await
        .unwrap();
    let mut mine = carts.new_cart();
    mine.add(&p("book", 1), d("10.00"), 2).await.unwrap();
    mine.add(&p("book", 2), d("5.00"), 1).await.unwrap();
    let seen = mine.version().await.unwrap();
    let id = mine.id().await.unwrap().unwrap();
    // Another tab changes the cart.
    let mut theirs = carts.cart(id);
    theirs.add(&p("book", 2), d("5.00"), 1).await.unwrap();
    let now = seen + 1;

    mismatch(
        mine.if_version(seen)
            .add(&p("book", 1), d("10.00"), 1)
            .await,
        now,
    );
    mismatch(
        mine.if_version(seen).add(&p("book", 3), d("1.00"), 1).await,
        now,
    );
    mismatch(
        mine.if_version(seen).update(&p("book", 1), 7, None).await,
        now,
    );
    mismatch(mine.if_version(seen).remove(&p("book", 2)).await, now);
    mismatch(mine.if_version(seen).clear().await, now);
    mismatch(mine.if_version(seen).apply_discount("TEN").await, now);
    mismatch(mine.if_version(seen).remove_discount().await, now);
    mismatch(mine.if_version(seen).freeze().await, now);
    mismatch(mine.if_version(seen).checkout().await, now);
    mismatch(
        mine.if_version(seen)
            .add_bulk([Line::new(p("pen", 1), 1, d("1.00"))])
            .await,
        now,
    );
    let fresh = carts.cart(id);
    assert_eq!(fresh.version().await.unwrap(), now, "nothing was written");
    assert_eq!(fresh.count().await.unwrap(), 4);
    assert_eq!(fresh.lines().await.unwrap().len(), 2);
    assert_eq!(fresh.discount_code().await.unwrap(), None);
    assert!(!fresh.is_checked_out().await.unwrap());
    assert!(!fresh.is_frozen().await.unwrap());
    assert_eq!(h.raw.count("SELECT COUNT(*) FROM cart_items").await, 2);

    // The refused value now reads the current version; a change on it goes through, once.
    assert_eq!(mine.version().await.unwrap(), now);
    let line = mine
        .if_version(now)
        .add(&p("book", 1), d("10.00"), 1)
        .await
        .unwrap();
    assert_eq!(line.quantity, 3, "the conditional add adds to the line");
    assert_eq!(mine.version().await.unwrap(), now + 1);
    mismatch(
        carts
            .cart(id)
            .if_version(now)
            .update(&p("book", 1), 1, None)
            .await,
        now + 1,
    );
    // A refusal ends the condition: the value's next change is unconditional.
    mine.add(&p("book", 1), d("10.00"), 1).await.unwrap();
    assert_eq!(mine.version().await.unwrap(), now + 2);
    mine.if_version(now + 2).checkout().await.unwrap();
    assert!(mine.is_checked_out().await.unwrap());
    assert_eq!(mine.version().await.unwrap(), now + 3);
    assert_eq!(carts.cart(id).version().await.unwrap(), now + 3);

    // A conditional add keeps the add's refusals.
    let mut small = h.builder().max_lines(1).build().new_cart();
    small.add(&p("book", 1), d("1.00"), 1).await.unwrap();
    let v = small.version().await.unwrap();
    assert!(matches!(
        small.if_version(v).add(&p("book", 2), d("1.00"), 1).await,
        Err(CartError::TooManyLines { max: 1 })
    ));
    assert_eq!(small.version().await.unwrap(), v);
    // A visitor with no cart row is at version 0, and a condition on 0 creates the cart.
    let mut fresh = carts.new_cart();
    mismatch(
        fresh.if_version(3).add(&p("book", 1), d("1.00"), 1).await,
        0,
    );
    assert_eq!(fresh.id().await.unwrap(), None, "no row was created");
    fresh
        .if_version(0)
        .add(&p("book", 1), d("1.00"), 1)
        .await
        .unwrap();
    assert_eq!(fresh.version().await.unwrap(), 1);
}

async fn concurrent_conditional_changes_let_exactly_one_through(h: Harness) {
    let carts = h.carts();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("1.00"), 1).await.unwrap();
    let id = cart.id().await.unwrap().unwrap();
    let seen = cart.version().await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let carts = carts.clone();
            tokio::spawn(async move {
                let mut c = carts.cart(id);
                let c = c.if_version(seen);
                match i % 4 {
                    0 => c.add(&p("book", 1), d("1.00"), 1).await.map(|_| ()),
                    1 => c.add(&p("pen", i), d("1.00"), 1).await.map(|_| ()),
                    2 => c.update(&p("book", 1), 5, None).await.map(|_| ()),
                    _ => c
                        .add_bulk([Line::new(p("mug", i), 1, d("1.00"))])
                        .await
                        .map(|_| ()),
                }
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => won += 1,
            Err(CartError::VersionMismatch { current }) => assert_eq!(current, seen + 1),
            Err(other) => panic!("{}: unexpected {other:?}", h.backend),
        }
    }
    assert_eq!(
        won, 1,
        "{}: exactly one change on version {seen}",
        h.backend
    );
    let fresh = carts.cart(id);
    assert_eq!(fresh.version().await.unwrap(), seen + 1);
    let lines = fresh.lines().await.unwrap();
    let units: i64 = lines.iter().map(|l| l.quantity).sum();
    assert!(
        (lines.len(), units) == (1, 2)
            || (lines.len(), units) == (2, 2)
            || (lines.len(), units) == (1, 5),
        "{}: one change's result, got {lines:?}",
        h.backend
    );
}

/// Checkouts racing with the `If-Match` of the cart before its checkout: one places the
/// order, the others get it back (`placed_now: false`), none a 412.
async fn a_double_submitted_conditional_checkout_gets_its_order(h: Harness) {
    let carts = h.carts();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("4.00"), 2).await.unwrap();
    let id = cart.id().await.unwrap().unwrap();
    let seen = cart.version().await.unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let carts = carts.clone();
            tokio::spawn(async move {
                let mut c = carts.cart(id);
                c.if_version(seen).checkout().await
            })
        })
        .collect();
    let mut placed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(order) => {
                assert_eq!(order.totals.subtotal, d("8.00"), "{}", h.backend);
                placed += usize::from(order.placed_now);
            }
            Err(other) => panic!("{}: a repeated checkout got {other:?}", h.backend),
        }
    }
    assert_eq!(placed, 1, "{}: one order placed", h.backend);
    // A change that names the version before the checkout is told the cart is checked out.
    let mut late = carts.cart(id);
    match late.if_version(seen).add(&p("book", 2), d("1.00"), 1).await {
        Err(CartError::CheckedOut) | Err(CartError::VersionMismatch { .. }) => {}
        other => panic!("{}: {other:?}", h.backend),
    }
}

// ---- over HTTP -------------------------------------------------------------------------

fn app(h: &Harness) -> Router {
    CartRouter::new()
        .build()
        .layer(common::problems_checked())
        .layer(CartLayer::new(
            h.builder().catalog(TestCatalog::default()).build(),
        ))
        .layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false))
}

/// One answer: status, headers, the JSON body (`Null` for none) and the raw body's length.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    len: usize,
}

impl Answer {
    fn etag(&self) -> String {
        self.headers
            .get(header::ETAG)
            .expect("an ETag")
            .to_str()
            .unwrap()
            .to_owned()
    }
}

/// A client with the session cookie (shared by clones, for concurrent requests).
#[derive(Clone)]
struct Client {
    app: Router,
    cookies: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Client {
    fn new(h: &Harness) -> Client {
        Client {
            app: app(h),
            cookies: Arc::default(),
        }
    }

    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        let cookie = {
            let cookies = self.cookies.lock().await;
            cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let mut req = Request::builder().method(method).uri(path);
        let json = !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"));
        if json {
            req = req
                .header(header::ACCEPT, "application/json")
                .header(header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if !cookie.is_empty() {
            req = req.header(header::COOKIE, cookie);
        }
        // What each route needs: an update a quantity, a discount a code.
        let body = match (method, json) {
            ("POST", true) if path.contains("/update") => Body::from(r#"{"quantity": 3}"#),
            ("POST", true) if path == "/cart/discount" => Body::from(r#"{"code": "TEN"}"#),
            ("POST", true) => Body::from("{}"),
            _ => Body::empty(),
        };
        let res = self
            .app
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        {
            let mut cookies = self.cookies.lock().await;
            for set in res.headers().get_all(header::SET_COOKIE) {
                let pair = set.to_str().unwrap().split(';').next().unwrap();
                let (k, v) = pair.split_once('=').unwrap();
                cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            len: bytes.len(),
        }
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send("POST", path, headers).await
    }

    async fn get(&self, headers: &[(&str, &str)]) -> Answer {
        self.send("GET", "/cart", headers).await
    }
}

/// The cart as JSON a client sees without conditions, with its tag.
async fn current(client: &Client) -> (Value, String) {
    let res = client.get(&[]).await;
    assert_eq!(res.status, StatusCode::OK);
    let tag = res.etag();
    (res.body, tag)
}

async fn http_a_stale_if_match_is_412_with_the_current_cart(h: Harness) {
    h.carts()
        .create_discount(NewDiscount::percent("TEN", d("10")))
        .await
        .unwrap();
    let client = Client::new(&h);
    let first = client.post("/cart/add/book/1", &[]).await;
    assert_eq!(first.status, StatusCode::OK);
    let stale = first.etag();
    assert_eq!(first.body["version"], 1);
    let second = client.post("/cart/add/book/2", &[]).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body["version"], 2);
    let (before, tag) = current(&client).await;
    assert_eq!(
        tag,
        second.etag(),
        "the GET names the cart the change answered"
    );
    assert_ne!(tag, stale);
    assert!(tag.starts_with("\"2."), "{tag}");

    for path in [
        "/cart/add/book/1",
        "/cart/add/book/3",
        "/cart/update/book/1",
        "/cart/remove/book/2",
        "/cart/clear",
        "/cart/discount",
        "/cart/discount/remove",
        "/cart/freeze",
        "/cart/checkout",
    ] {
        let res = client.post(path, &[("if-match", stale.as_str())]).await;
        assert_eq!(
            (res.status, res.body["code"].as_str()),
            (StatusCode::PRECONDITION_FAILED, Some("version_mismatch")),
            "{}: {path}: {}",
            h.backend,
            res.body
        );
        assert_eq!(res.body["cart"], before, "{path}: the current cart");
        let (after, now) = current(&client).await;
        assert_eq!((&after, &now), (&before, &tag), "{path}: nothing changed");
    }
    // An HTML client gets the error page.
    let res = client
        .send(
            "POST",
            "/cart/clear",
            &[("if-match", stale.as_str()), ("accept", "text/html")],
        )
        .await;
    assert_eq!(res.status, StatusCode::PRECONDITION_FAILED);
    assert!(res.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let (after, now) = current(&client).await;
    assert_eq!((after, now), (before, tag));
    assert_eq!(h.raw.count("SELECT COUNT(*) FROM cart_items").await, 2);
}

async fn http_a_matching_if_match_goes_through(h: Harness) {
    let client = Client::new(&h);
    // A visitor with no cart: "0.0".
    let (empty, tag) = current(&client).await;
    assert_eq!(
        (empty["version"].as_u64(), tag.as_str()),
        (Some(0), "\"0.0\"")
    );
    let res = client
        .post("/cart/add/book/1", &[("if-match", "\"0.0\"")])
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body["version"], 1);
    let tag = res.etag();

    let res = client
        .post("/cart/add/book/1", &[("if-match", tag.as_str())])
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(
        (res.body["version"].as_u64(), res.body["count"].as_i64()),
        (Some(2), Some(2))
    );
    // A list naming the current tag, among others.
    let list = format!("\"2.1\", W/{}, {}", res.etag(), res.etag());
    let res = client
        .post("/cart/add/book/2", &[("if-match", list.as_str())])
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body["version"], 3);
    // Only weak or foreign tags: nothing matches.
    let weak = format!("W/{}", res.etag());
    for tags in [weak.as_str(), "\"abc\"", "\"\""] {
        let refused = client.post("/cart/clear", &[("if-match", tags)]).await;
        assert_eq!(refused.status, StatusCode::PRECONDITION_FAILED, "{tags}");
    }
    // `*` matches the cart whatever its version.
    let res = client.post("/cart/add/book/2", &[("if-match", "*")]).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body["version"], 4);
    // A header that is not an entity-tag list is a bad request, and changes nothing.
    for bad in ["4", "\"4.1", "*, \"4.1\""] {
        let res = client.post("/cart/clear", &[("if-match", bad)]).await;
        assert_eq!(
            (res.status, res.body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_precondition")),
            "{bad}"
        );
    }
    let (cart, tag) = current(&client).await;
    assert_eq!(
        (cart["count"].as_i64(), cart["version"].as_u64()),
        (Some(4), Some(4))
    );
    // A checkout on the current version; its answer names the checked-out cart.
    let res = client
        .post("/cart/checkout", &[("if-match", tag.as_str())])
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body["checked_out"], true);
    assert_eq!(res.body["version"], 5);
    let placed = res.etag();
    assert!(placed.starts_with("\"5."), "{placed}");
    // The retry of a checkout whose answer was lost, with the If-Match it was sent with,
    // gets the order again.
    let res = client
        .post("/cart/checkout", &[("if-match", tag.as_str())])
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body["checked_out"], true);
    // Without the headers, nothing is different: a change answers without conditions.
    let res = client.post("/cart/add/book/1", &[]).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        (res.body["count"].as_i64(), res.body["version"].as_u64()),
        (Some(1), Some(1))
    );
    assert_ne!(res.etag(), "\"0.0\"", "the next cart has its own id");
}

async fn http_if_none_match_is_304_until_the_cart_changes(h: Harness) {
    let client = Client::new(&h);
    let res = client.post("/cart/add/book/1", &[]).await;
    assert_eq!(res.status, StatusCode::OK);
    let (_, tag) = current(&client).await;
    let res = client.get(&[("if-none-match", tag.as_str())]).await;
    assert_eq!(res.status, StatusCode::NOT_MODIFIED);
    assert_eq!(res.etag(), tag);
    assert_eq!(res.len, 0, "no body");
    let weak = format!("\"1.1\", W/{tag}");
    let res = client.get(&[("if-none-match", weak.as_str())]).await;
    assert_eq!(res.status, StatusCode::NOT_MODIFIED, "weak comparison");
    // The HTML page carries the same tag, and answers If-None-Match too.
    let page = client.get(&[("accept", "text/html")]).await;
    assert_eq!((page.status, page.etag()), (StatusCode::OK, tag.clone()));
    let page = client
        .get(&[("accept", "text/html"), ("if-none-match", tag.as_str())])
        .await;
    assert_eq!(page.status, StatusCode::NOT_MODIFIED);
    // A bad If-None-Match is ignored.
    let res = client.get(&[("if-none-match", "nope")]).await;
    assert_eq!(res.status, StatusCode::OK);

    let res = client.post("/cart/add/book/1", &[]).await;
    assert_eq!(res.status, StatusCode::OK);
    let changed = res.etag();
    assert_ne!(changed, tag);
    let res = client.get(&[("if-none-match", tag.as_str())]).await;
    assert_eq!(res.status, StatusCode::OK, "changed since");
    assert_eq!(res.etag(), changed);
    assert_eq!(res.body["count"], 2);
    let res = client.get(&[("if-none-match", changed.as_str())]).await;
    assert_eq!(res.status, StatusCode::NOT_MODIFIED);
}

async fn http_concurrent_requests_with_one_if_match_let_one_through(h: Harness) {
    let client = Client::new(&h);
    let res = client.post("/cart/add/book/1", &[]).await;
    assert_eq!(res.status, StatusCode::OK);
    let tag = res.etag();
    let version = res.body["version"].as_u64().unwrap();
    let requests: Vec<_> = (0..20)
        .map(|i| {
            let client = client.clone();
            let tag = tag.clone();
            tokio::spawn(async move {
                let path = match i % 3 {
                    0 => "/cart/add/book/1".to_owned(),
                    1 => format!("/cart/add/coffee/{}", i + 1),
                    _ => "/cart/clear".to_owned(),
                };
                client.post(&path, &[("if-match", tag.as_str())]).await
            })
        })
        .collect();
    let mut won = 0;
    for request in requests {
        let res = request.await.unwrap();
        match res.status {
            StatusCode::OK => won += 1,
            StatusCode::PRECONDITION_FAILED => {
                assert_eq!(res.body["code"], "version_mismatch");
                assert_eq!(res.body["cart"]["version"].as_u64(), Some(version + 1));
            }
            other => panic!("{}: unexpected {other}: {}", h.backend, res.body),
        }
    }
    assert_eq!(won, 1, "{}: exactly one request on {tag}", h.backend);
    let (cart, now) = current(&client).await;
    assert_eq!(cart["version"].as_u64(), Some(version + 1));
    assert_ne!(now, tag);
    let count = cart["count"].as_i64().unwrap();
    assert!(
        [0, 2].contains(&count),
        "{}: one change's result (clear, or one more unit), got {cart}",
        h.backend
    );
}
