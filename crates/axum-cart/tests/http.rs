//! The axum integration through the real router: `CartLayer` with both session adapters
//! (tower-sessions and the signed cookie) and a custom one, the `Cart` and `CartBadge`
//! extractors, `cart_router()` in HTML and JSON, its errors, and the askama filters.
//! Every request goes through `tower::ServiceExt::oneshot`, with a small cookie jar per
//! client. Ids in comments (HTTP-09, MW-07, TAG-08, …) point at
//! `shared/spec/reference-behaviors.md`.

mod common;

use std::any::Any;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::Html;
use axum::routing::{get, post};
use axum::Router;
use axum_cart::{
    async_trait, filters, BoxError, Cart, CartBadge, CartDetails, CartError, CartLayer, CartRouter,
    CartView, Carts, CartsBuilder, Catalog, Consumer, DeliveryState, InventoryChecker,
    MemorySession, NewDiscount, Order, Product, ProductRef, Relay, SameSiteLayer, SessionAdapter,
    ShippingCalculator, ShippingOption, SignedCookieConfig, Store,
};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::SqlitePool;
use tower::ServiceExt;
use tower_cookies::cookie::{Cookie, CookieJar};
use tower_cookies::Key;
use tower_sessions::{MemoryStore, SessionManagerLayer};

// ---- the shop: a catalogue, stock, shipping ----------------------------------------------

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal literal")
}

/// A product of the test shop; the stock checker downcasts to it.
#[derive(Debug, Clone)]
struct Good {
    kind: &'static str,
    id: i64,
    name: &'static str,
    price: Option<&'static str>,
    stock: i64,
}

impl Product for Good {
    fn kind(&self) -> &str {
        self.kind
    }
    fn id(&self) -> i64 {
        self.id
    }
    fn price(&self) -> Option<Decimal> {
        self.price.map(d)
    }
    fn name(&self) -> String {
        self.name.to_owned()
    }
}

const GOODS: &[Good] = &[
    Good {
        kind: "book",
        id: 1,
        name: "Rust Book",
        price: Some("9.99"),
        stock: 1000,
    },
    Good {
        kind: "book",
        id: 2,
        name: "Axum Guide",
        price: Some("25.00"),
        stock: 1000,
    },
    Good {
        kind: "book",
        id: 3,
        name: "<b>Bold</b> & Co",
        price: Some("5.00"),
        stock: 1000,
    },
    Good {
        kind: "book",
        id: 4,
        name: "Out of print",
        price: None,
        stock: 0,
    },
    Good {
        kind: "coffee",
        id: 7,
        name: "Espresso",
        price: Some("3.50"),
        stock: 5,
    },
];

#[derive(Clone, Default)]
struct Shop {
    calls: Arc<AtomicU64>,
}

#[async_trait]
impl Catalog for Shop {
    async fn products(&self, kind: &str, ids: &[i64]) -> Result<Vec<Arc<dyn Product>>, BoxError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(GOODS
            .iter()
            .filter(|g| g.kind == kind && ids.contains(&g.id))
            .map(|g| Arc::new(g.clone()) as Arc<dyn Product>)
            .collect())
    }
}

/// Stock from the product itself: only works if the router hands over the catalogue's
/// own product (a wrapper would not downcast).
struct Stock;

#[async_trait]
impl InventoryChecker for Stock {
    async fn check(&self, product: &dyn Product, quantity: i64) -> Result<bool, BoxError> {
        let good = (product as &dyn Any)
            .downcast_ref::<Good>()
            .ok_or("the inventory checker did not get the catalogue's product")?;
        Ok(quantity <= good.stock)
    }
    async fn reserve(&self, _: &dyn Product, _: i64) -> Result<bool, BoxError> {
        Ok(true)
    }
}

/// 4.99, free from 100.00; two options.
struct Flat;

#[async_trait]
impl ShippingCalculator for Flat {
    async fn calculate(&self, cart: &CartView) -> Result<Decimal, BoxError> {
        Ok(if cart.lines().is_empty() || cart.subtotal() >= d("100") {
            Decimal::ZERO
        } else {
            d("4.99")
        })
    }
    async fn options(&self, cart: &CartView) -> Result<Vec<ShippingOption>, BoxError> {
        Ok(vec![
            ShippingOption::new(
                "standard",
                "Standard <3-5 days>",
                self.calculate(cart).await?,
            ),
            ShippingOption::new("express", "Express", d("19.99")),
        ])
    }
}

// ---- database ----------------------------------------------------------------------------

/// A migrated SQLite file, removed on drop.
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

    fn builder(&self) -> CartsBuilder {
        Carts::builder(Store::from(self.pool.clone()))
            .catalog(Shop::default())
            .inventory_checker(Stock)
            .max_quantity_per_item(99)
    }

    fn carts(&self) -> Carts {
        self.builder().build()
    }

    /// Cart rows, counted directly.
    async fn rows(&self) -> i64 {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM cart_carts")
            .fetch_one(&self.pool)
            .await
            .expect("count carts")
    }

    async fn newest_cart_id(&self) -> i64 {
        sqlx::query_scalar::<_, i64>("SELECT MAX(id) FROM cart_carts")
            .fetch_one(&self.pool)
            .await
            .expect("newest cart")
    }
}

// ---- apps --------------------------------------------------------------------------------

/// A page header using the filters, as an app would write it.
#[derive(Template)]
#[template(
    source = r#"<header>{{ badge|cart_link("Cart", "nav-btn") }} <span class="badge">{{ badge|cart_item_count }}</span> <span class="total">{{ badge|cart_summary }}</span>{% if badge|cart_is_empty %} <em>empty</em>{% endif %}</header>"#,
    ext = "html"
)]
struct Header {
    badge: CartBadge,
}

async fn header_page(badge: CartBadge) -> Html<String> {
    Html(Header { badge }.render().unwrap_or_default())
}

/// An app handler using the `Cart` extractor: no session code at all.
async fn buy_espresso(mut cart: Cart) -> Result<String, CartError> {
    let espresso = ProductRef::new("coffee", 7)?;
    cart.add(&espresso, d("3.50"), 1).await?;
    Ok(cart.count().await?.to_string())
}

async fn count(cart: Cart) -> Result<String, CartError> {
    Ok(cart.count().await?.to_string())
}

fn routes(router: CartRouter) -> Router {
    Router::new()
        .merge(router.build())
        .route("/header", get(header_page))
        .route("/buy", post(buy_espresso))
        .route("/count", get(count))
        .layer(common::problems_checked())
}

/// The default set-up: tower-sessions with a memory store.
fn session_app(carts: &Carts, router: CartRouter) -> Router {
    routes(router)
        .layer(CartLayer::new(carts.clone()))
        .layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false))
}

/// The stateless set-up: a signed cookie.
fn cookie_app(carts: &Carts, key: &Key) -> Router {
    routes(CartRouter::new()).layer(
        CartLayer::new(carts.clone()).with_signed_cookie(SignedCookieConfig::new(key.clone())),
    )
}

// ---- a client with a cookie jar ----------------------------------------------------------

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts a JSON error answer and returns its message.
    fn error(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(self.status, status, "body: {}", self.body);
        let body = self.json();
        common::assert_problem(status, &self.headers, &body);
        assert_eq!(body["code"], code, "body: {body}");
        body["error"].as_str().expect("error message").to_owned()
    }
}

struct Client {
    app: Router,
    cookies: BTreeMap<String, String>,
}

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";
const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

impl Client {
    fn new(app: &Router) -> Client {
        Client {
            app: app.clone(),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, mut req: Request<Body>) -> Reply {
        if !self.cookies.is_empty() && !req.headers().contains_key(header::COOKIE) {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            req.headers_mut()
                .insert(header::COOKIE, cookie.parse().expect("cookie header"));
        }
        let res = self.app.clone().oneshot(req).await.expect("infallible");
        for set in res.headers().get_all(header::SET_COOKIE) {
            let set = set.to_str().expect("ascii set-cookie");
            let pair = set.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').expect("name=value");
            if set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("body");
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req.body(body.into()).expect("request")).await
    }

    async fn get_html(&mut self, path: &str) -> Reply {
        self.request("GET", path, &[("accept", HTML)], Body::empty())
            .await
    }

    async fn get_json(&mut self, path: &str) -> Reply {
        self.request("GET", path, &[("accept", JSON)], Body::empty())
            .await
    }

    /// A browser form post from the shop's own page.
    async fn post_form(&mut self, path: &str, body: &str) -> Reply {
        let headers = [
            ("accept", HTML),
            ("content-type", FORM),
            ("origin", "http://shop.test"),
            ("host", "shop.test"),
        ];
        self.request("POST", path, &headers, body.to_owned()).await
    }

    async fn post_json(&mut self, path: &str, body: Value) -> Reply {
        let headers = [("accept", JSON), ("content-type", JSON)];
        self.request("POST", path, &headers, body.to_string()).await
    }

    async fn cart(&mut self) -> Value {
        let reply = self.get_json("/cart").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.json()
    }
}

/// The `<li` elements of a page.
fn li_count(page: &str) -> usize {
    page.matches("<li").count()
}

// ---- the default flow --------------------------------------------------------------------

#[tokio::test]
async fn first_visit_is_an_empty_cart_with_no_row_and_no_cookie() {
    // HTTP-02, INIT-08 (no row until the first change)
    let db = Db::new().await;
    let app = session_app(&db.carts(), CartRouter::new());
    let mut client = Client::new(&app);

    let reply = client.get_json("/cart").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.set_cookies().is_empty(),
        "a read sets no cookie: {:?}",
        reply.set_cookies()
    );
    assert_eq!(
        reply.headers.get(header::CACHE_CONTROL).unwrap(),
        "no-store"
    );
    assert_eq!(
        reply.json(),
        json!({
            "count": 0, "unique_count": 0, "is_empty": true, "checked_out": false, "frozen": false, "version": 0, "items": [],
            "warnings": [], "subtotal": "0.00", "discount_code": null, "discount": "0.00", "tax": "0.00",
            "shipping": "0.00", "total": "0.00"
        })
    );

    let page = client.get_html("/cart").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.content_type().starts_with("text/html"));
    assert!(page.body.contains("Your cart is empty."));
    assert_eq!(li_count(&page.body), 0, "no <li> on an empty cart page");
    assert!(page.set_cookies().is_empty());

    let options = client.get_json("/cart/shipping-options").await;
    assert_eq!(options.status, StatusCode::OK);
    let header = client.get_html("/header").await;
    assert_eq!(header.status, StatusCode::OK);
    assert!(header.set_cookies().is_empty());
    assert_eq!(db.rows().await, 0, "read-only visits create no row");
}

#[tokio::test]
async fn html_forms_change_the_cart_and_redirect_to_the_page() {
    // HTTP-03..06 in HTML: 303 See Other back to the cart page.
    let db = Db::new().await;
    let app = session_app(&db.carts(), CartRouter::new());
    let mut client = Client::new(&app);

    let reply = client.post_form("/cart/add/book/1", "quantity=2").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.location(), Some("/cart"));
    assert!(
        !reply.set_cookies().is_empty(),
        "the first change sets the session cookie"
    );
    client.post_form("/cart/add/book/3", "").await;

    let page = client.get_html("/cart").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        li_count(&page.body),
        2,
        "one <li> per line and no other:\n{}",
        page.body
    );
    assert!(
        page.body
            .contains("2</span> &times; <span class=\"cart-item-name\">Rust Book</span>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("$19.98"));
    assert!(
        page.body.contains("&#60;b&#62;Bold&#60;/b&#62; &#38; Co"),
        "product names are escaped"
    );
    assert!(!page.body.contains("<b>Bold</b>"));
    for form in [
        "/cart/lines/book:1/update",
        "/cart/lines/book:1/remove",
        "/cart/discount",
        "/cart/checkout",
        "/cart/clear",
    ] {
        assert!(
            page.body.contains(&format!("action=\"{form}\"")),
            "form {form} on the page"
        );
    }
    for label in ["Subtotal", "Discount", "Tax", "Shipping", "Total", "$24.98"] {
        assert!(page.body.contains(label), "{label} on the page");
    }

    let reply = client.post_form("/cart/update/book/1", "quantity=5").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(client.cart().await["count"], 6);

    let reply = client.post_form("/cart/update/book/1", "quantity=0").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "quantity 0 removes");
    assert_eq!(client.cart().await["unique_count"], 1);

    let reply = client.post_form("/cart/remove/book/3", "").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(client.cart().await["is_empty"], true);

    client.post_form("/cart/add/book/2", "quantity=3").await;
    let reply = client.post_form("/cart/clear", "").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(client.cart().await["count"], 0);
    assert_eq!(db.rows().await, 1, "one visitor, one row");
}

#[tokio::test]
async fn json_requests_get_the_cart_as_json() {
    // HTTP-01, HTTP-03..05 in JSON; prices come from the catalogue.
    let db = Db::new().await;
    let carts = db.builder().shipping_calculator(Flat).build();
    let app = session_app(&carts, CartRouter::new());
    let mut client = Client::new(&app);

    let reply = client
        .post_json("/cart/add/book/1", json!({"quantity": 2}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.json(),
        json!({
            "count": 2, "unique_count": 1, "is_empty": false, "checked_out": false, "frozen": false, "version": 1,
            "items": [{"line": "book:1", "kind": "book", "id": 1, "options": {},
                       "quantity_rule": {"min": 1, "max": null, "step": 1},
                       "name": "Rust Book", "quantity": 2,
                       "unit_price": "9.99", "total_price": "19.98", "price_change": null}],
            "warnings": [], "subtotal": "19.98", "discount_code": null, "discount": "0.00", "tax": "0.00",
            "shipping": "4.99", "total": "24.97"
        })
    );

    // A price sent by the client is ignored: the catalogue's price wins.
    let body = client
        .post_json(
            "/cart/add/coffee/7",
            json!({"quantity": "1", "unit_price": "0.01"}),
        )
        .await
        .json();
    assert_eq!(body["items"][1]["unit_price"], "3.50");
    assert_eq!(body["count"], 3);

    let body = client
        .post_json("/cart/update/coffee/7", json!({"quantity": 4}))
        .await
        .json();
    assert_eq!(body["items"][1]["quantity"], 4);
    assert_eq!(body["items"][1]["total_price"], "14.00");

    // Form bodies work for JSON clients too.
    let reply = client
        .request(
            "POST",
            "/cart/update/book/1",
            &[("accept", JSON), ("content-type", FORM)],
            "quantity=1",
        )
        .await;
    assert_eq!(reply.json()["items"][0]["quantity"], 1);

    let body = client
        .post_json("/cart/remove/coffee/7", json!({}))
        .await
        .json();
    assert_eq!(body["unique_count"], 1);

    let body = client.post_json("/cart/clear", json!({})).await.json();
    assert_eq!(body["is_empty"], true);
    assert_eq!(body["shipping"], "0.00");

    let reply = client.get_json("/cart/shipping-options").await;
    assert_eq!(
        reply.json(),
        json!({"options": [
            {"id": "standard", "name": "Standard <3-5 days>", "price": "0.00"},
            {"id": "express", "name": "Express", "price": "19.99"}
        ]})
    );
    let page = client.get_html("/cart/shipping-options").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Standard &lt;3-5 days&gt;") && page.body.contains("$19.99"),
        "{}",
        page.body
    );

    // The cart id is in no response body: no key names it, and the product ids are the
    // only ids there.
    let body = client.cart().await;
    assert!(body.get("cart_id").is_none() && body.get("id").is_none());
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys.len(),
        14,
        "count unique_count is_empty checked_out frozen version items warnings subtotal discount_code discount tax shipping total: {keys:?}"
    );
}

#[tokio::test]
async fn an_empty_post_adds_one() {
    // A load generator: POST with no body and no content type means quantity 1.
    let db = Db::new().await;
    let app = session_app(&db.carts(), CartRouter::new());
    let mut client = Client::new(&app);
    let reply = client
        .request("POST", "/cart/add/book/2", &[], Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let reply = client
        .request(
            "POST",
            "/cart/add/book/2",
            &[("accept", JSON)],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["count"], 2);
    let reply = client
        .request(
            "POST",
            "/cart/add/book/2",
            &[("content-type", JSON), ("accept", JSON)],
            "{}",
        )
        .await;
    assert_eq!(
        reply.json()["count"],
        3,
        "a JSON body without quantity adds one"
    );
}

#[tokio::test]
async fn discounts_apply_and_remove() {
    let db = Db::new().await;
    let carts = db.carts();
    carts
        .create_discount(NewDiscount::percent("SUMMER25", d("25")))
        .await
        .unwrap();
    carts
        .create_discount(NewDiscount::fixed("BIG", d("5")).min_cart_value(d("1000")))
        .await
        .unwrap();
    let app = session_app(&carts, CartRouter::new());
    let mut client = Client::new(&app);
    client
        .post_json("/cart/add/book/2", json!({"quantity": 4}))
        .await;

    let body = client
        .post_json("/cart/discount", json!({"code": " summer25 "}))
        .await
        .json();
    assert_eq!(body["discount_code"], "SUMMER25");
    assert_eq!(body["discount"], "25.00");
    assert_eq!(body["total"], "75.00");

    let page = client.get_html("/cart").await;
    assert!(
        page.body.contains("-$25.00") && page.body.contains("action=\"/cart/discount/remove\"")
    );

    let reply = client.post_form("/cart/discount/remove", "").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(client.cart().await["discount"], "0.00");

    // Invalid codes: 422.
    let message = client
        .post_json("/cart/discount", json!({"code": "NOPE"}))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_discount");
    assert!(message.contains("NOPE"), "{message}");
    client
        .post_json("/cart/discount", json!({"code": "BIG"}))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_discount");
    client
        .post_json("/cart/discount", json!({}))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_discount");
    client
        .post_json("/cart/discount", json!({"code": 5}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_discount");
    let reply = client.post_form("/cart/discount", "code=NOPE").await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("NOPE") && reply.content_type().starts_with("text/html"));
}

// ---- checkout ----------------------------------------------------------------------------

#[tokio::test]
async fn checkout_runs_the_order_hook_from_the_outbox_and_the_next_request_starts_a_fresh_cart() {
    // HTTP-06, HTTP-07, INIT-05, MW-06
    let db = Db::new().await;
    let carts = db.carts();
    let orders: Arc<Mutex<Vec<Order>>> = Arc::default();
    let seen = orders.clone();
    let relay = Relay::new(&carts).on_checkout(move |order: Order| {
        let seen = seen.clone();
        async move {
            seen.lock().map_err(|_| "poisoned")?.push(order);
            Ok(())
        }
    });
    let app = session_app(&carts, CartRouter::new());
    let mut client = Client::new(&app);

    client
        .post_json("/cart/add/book/1", json!({"quantity": 2}))
        .await;
    let reply = client.post_json("/cart/checkout", json!({})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["checked_out"], true);
    assert_eq!(body["count"], 2);
    assert_eq!(body["total"], "19.98");
    assert!(orders.lock().unwrap().is_empty(), "the relay runs the hook");
    assert_eq!(relay.run_once().await.unwrap().orders, 1);
    {
        let orders = orders.lock().unwrap();
        assert_eq!(orders.len(), 1, "the hook ran once");
        assert!(orders[0].placed_now);
        assert_eq!(orders[0].lines.len(), 1);
        assert_eq!(orders[0].totals.total, d("19.98"));
    }

    let fresh = client.cart().await;
    assert_eq!(fresh["is_empty"], true);
    assert_eq!(fresh["checked_out"], false);
    // A repeated checkout (a double submit, a retry after a lost answer) gets the same
    // order back and calls no hook.
    let again = client.post_json("/cart/checkout", json!({})).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.json(), body, "the same order");
    assert!(relay.run_once().await.unwrap().is_idle());
    assert_eq!(
        orders.lock().unwrap().len(),
        1,
        "a repeated checkout calls no hook"
    );

    client.post_form("/cart/add/book/2", "").await;
    assert_eq!(client.cart().await["count"], 1);
    assert_eq!(
        db.rows().await,
        2,
        "the placed order stays, the visitor has a new cart"
    );

    // HTML checkout: 303 back to the page, which shows a fresh cart.
    let reply = client.post_form("/cart/checkout", "").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(client
        .get_html("/cart")
        .await
        .body
        .contains("Your cart is empty."));
    assert_eq!(relay.run_once().await.unwrap().orders, 1);
    assert_eq!(orders.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn checkout_refusals_are_422_and_a_failing_hook_never_fails_the_checkout() {
    let db = Db::new().await;
    let carts = db.builder().min_order_amount(d("50")).build();
    // The hook fails 3 times (the orders table is down), then succeeds.
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let orders: Arc<Mutex<Vec<Order>>> = Arc::default();
    let relay = {
        let (calls, orders) = (calls.clone(), orders.clone());
        Relay::new(&carts)
            .retry_backoff(std::time::Duration::ZERO, std::time::Duration::ZERO)
            .on_checkout(move |order: Order| {
                let (calls, orders) = (calls.clone(), orders.clone());
                async move {
                    if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3 {
                        return Err::<(), BoxError>("orders table is down".into());
                    }
                    orders.lock().map_err(|_| "poisoned")?.push(order);
                    Ok(())
                }
            })
    };
    let app = session_app(&carts, CartRouter::new());
    let mut client = Client::new(&app);

    client
        .post_json("/cart/checkout", json!({}))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "empty_cart");
    client.post_json("/cart/add/book/1", json!({})).await;
    let message = client
        .post_json("/cart/checkout", json!({}))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "minimum_order_not_met");
    assert!(message.contains("50.00"), "{message}");
    client
        .post_json("/cart/add/book/2", json!({"quantity": 2}))
        .await;
    let reply = client.post_json("/cart/checkout", json!({})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["checked_out"], true);
    for failure in 1..=3 {
        let round = relay.run_once().await.unwrap();
        assert_eq!((round.orders, round.retrying), (0, 1), "failure {failure}");
        let pending = carts
            .events(Some(DeliveryState::Pending), 10)
            .await
            .unwrap();
        let hook = pending
            .iter()
            .find(|e| e.consumer == Consumer::CheckoutHook)
            .expect("the order waits in the outbox");
        assert_eq!(hook.attempts, failure);
        assert!(hook
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("orders table is down"));
    }
    // A retry of the checkout meanwhile gets the checked-out cart, not 422.
    let again = client.post_json("/cart/checkout", json!({})).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(relay.run_once().await.unwrap().orders, 1);
    assert!(relay.run_once().await.unwrap().is_idle());
    let orders = orders.lock().unwrap();
    assert_eq!(orders.len(), 1, "exactly one order");
    assert_eq!(orders[0].totals.count, 3);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 4);
}

// ---- errors ------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_input_is_400() {
    // HTTP-09, HTTP-12 (a non-numeric quantity is a 400 here, not a 500)
    let db = Db::new().await;
    let app = session_app(&db.carts(), CartRouter::new());
    let mut client = Client::new(&app);

    let message = client
        .post_json("/cart/add/book/1", json!({"quantity": 0}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_quantity");
    assert_eq!(message, "Quantity must be at least 1.");
    let message = client
        .post_json("/cart/add/book/1", json!({"quantity": -3}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_quantity");
    assert_eq!(message, "Quantity must be at least 1.");
    client
        .post_json("/cart/add/book/1", json!({"quantity": "abc"}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_quantity");
    client
        .post_json("/cart/add/book/1", json!({"quantity": 1.5}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_quantity");
    client
        .post_json("/cart/add/book/1", json!({"quantity": true}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_quantity");
    let message = client
        .post_json("/cart/add/book/1", json!({"quantity": 100}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_quantity");
    assert_eq!(message, "Quantity cannot exceed 99.");
    client
        .post_json(
            "/cart/add/book/1",
            json!({"quantity": 99_999_999_999_999_999_999u128 as f64}),
        )
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_quantity");
    client
        .post_json(
            "/cart/add/book/1",
            json!({"quantity": "99999999999999999999999"}),
        )
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_quantity");
    client
        .post_json("/cart/add/book/1", json!([1, 2]))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_json");
    let reply = client
        .request(
            "POST",
            "/cart/add/book/1",
            &[("accept", JSON), ("content-type", JSON)],
            "{\"quantity\": ",
        )
        .await;
    reply.error(StatusCode::BAD_REQUEST, "invalid_json");
    let reply = client
        .request(
            "POST",
            "/cart/add/book/1",
            &[("accept", JSON), ("content-type", FORM)],
            "quantity=two",
        )
        .await;
    reply.error(StatusCode::BAD_REQUEST, "invalid_quantity");
    let reply = client
        .request(
            "POST",
            "/cart/add/book/1",
            &[("accept", JSON), ("content-type", FORM)],
            "quantity=",
        )
        .await;
    reply.error(StatusCode::BAD_REQUEST, "invalid_quantity");
    let reply = client
        .request(
            "POST",
            "/cart/add/book/1",
            &[("accept", JSON), ("content-type", FORM)],
            [&b"quantity="[..], &[0xff, 0xfe]].concat(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);

    // update: missing or negative quantity
    client.post_json("/cart/add/book/1", json!({})).await;
    client
        .post_json("/cart/update/book/1", json!({}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_quantity");
    let message = client
        .post_json("/cart/update/book/1", json!({"quantity": -1}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_quantity");
    assert_eq!(message, "Quantity cannot be negative.");
    client
        .post_json("/cart/update/book/1", json!({"quantity": 1000}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_quantity");
    assert_eq!(
        client.cart().await["count"],
        1,
        "refused changes change nothing"
    );
    let body = client
        .post_json("/cart/update/book/1", json!({"quantity": 2.0}))
        .await
        .json();
    assert_eq!(body["count"], 2, "a JSON 2.0 is 2");
}

#[tokio::test]
async fn unknown_products_and_missing_lines_are_404() {
    // HTTP-08, HTTP-10
    let db = Db::new().await;
    let app = session_app(&db.carts(), CartRouter::new());
    let mut client = Client::new(&app);

    for path in [
        "/cart/add/book/999",
        "/cart/add/dvd/1",
        "/cart/add/book/abc",
        "/cart/add/Book/1",
        "/cart/add/book/-1",
        "/cart/add/book/4",
    ] {
        client
            .post_json(path, json!({}))
            .await
            .error(StatusCode::NOT_FOUND, "product_not_found");
    }
    let message = client
        .post_json("/cart/remove/book/1", json!({}))
        .await
        .error(StatusCode::NOT_FOUND, "item_does_not_exist");
    assert_eq!(message, "Product book:1 is not in this cart.");
    client
        .post_json("/cart/update/book/1", json!({"quantity": 2}))
        .await
        .error(StatusCode::NOT_FOUND, "item_does_not_exist");
    client
        .post_json("/cart/remove/book/xyz", json!({}))
        .await
        .error(StatusCode::NOT_FOUND, "item_does_not_exist");
    assert_eq!(db.rows().await, 0, "refused changes create no row");
}

#[tokio::test]
async fn insufficient_stock_is_409_and_the_checker_gets_the_catalogue_product() {
    let db = Db::new().await;
    let app = session_app(&db.carts(), CartRouter::new());
    let mut client = Client::new(&app);
    assert_eq!(
        client
            .post_json("/cart/add/coffee/7", json!({"quantity": 4}))
            .await
            .status,
        StatusCode::OK
    );
    let message = client
        .post_json("/cart/add/coffee/7", json!({"quantity": 2}))
        .await
        .error(StatusCode::CONFLICT, "insufficient_stock");
    assert!(message.contains("requested 6"), "{message}");
    assert_eq!(client.cart().await["count"], 4);
    let reply = client.post_form("/cart/add/coffee/7", "quantity=2").await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert!(
        reply.body.contains("Not enough"),
        "a readable HTML page: {}",
        reply.body
    );
}

#[tokio::test]
async fn framework_refusals_answer_in_the_clients_format() {
    // HTTP-11 (405) plus 413 and 415, JSON for JSON clients.
    let db = Db::new().await;
    let app = session_app(&db.carts(), CartRouter::new());
    let mut client = Client::new(&app);

    let reply = client.get_json("/cart/add/book/1").await;
    reply.error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(
        reply
            .headers
            .get(header::ALLOW)
            .map(|v| v.to_str().unwrap()),
        Some("POST")
    );
    client
        .post_json("/cart", json!({}))
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    client
        .request(
            "DELETE",
            "/cart/checkout",
            &[("accept", JSON)],
            Body::empty(),
        )
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    client
        .post_json("/cart/shipping-options", json!({}))
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let html = client.get_html("/cart/checkout").await;
    assert_eq!(html.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(html.content_type().starts_with("text/html"));

    let big = format!("{{\"quantity\": 1, \"pad\": \"{}\"}}", "x".repeat(20_000));
    client
        .post_json("/cart/add/book/1", serde_json::from_str(&big).unwrap())
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // (oneshot bodies carry no Content-Length: the case above is the streamed limit.)
    // A declared length over the limit is refused before reading.
    let reply = client
        .request(
            "POST",
            "/cart/add/book/1",
            &[
                ("accept", JSON),
                ("content-type", FORM),
                ("content-length", "1000000"),
            ],
            "quantity=1",
        )
        .await;
    reply.error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let reply = client
        .request(
            "POST",
            "/cart/add/book/1",
            &[("content-type", FORM)],
            "q=".to_owned() + &"x".repeat(20_000),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.content_type().starts_with("text/html"));

    client
        .request(
            "POST",
            "/cart/add/book/1",
            &[("accept", JSON), ("content-type", "text/plain")],
            "quantity=1",
        )
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    client
        .request(
            "POST",
            "/cart/add/book/1",
            &[("accept", JSON)],
            "quantity=1",
        )
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    client
        .request(
            "POST",
            "/cart/add/book/1",
            &[
                ("accept", JSON),
                ("content-type", "multipart/form-data; boundary=x"),
            ],
            "--x--",
        )
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    assert_eq!(db.rows().await, 0);
    assert!(client.cookies.is_empty(), "refused requests set no cookie");
}

#[tokio::test]
async fn database_unavailable_is_503_and_header_of_a_visitor_without_cart_needs_no_database() {
    let db = Db::new().await;
    let carts = db.carts();
    let app = session_app(&carts, CartRouter::new());
    let mut client = Client::new(&app);
    db.pool.close().await;

    // TAG-06: no cart id, no query — this works with the database gone.
    let header = client.get_html("/header").await;
    assert_eq!(header.status, StatusCode::OK, "{}", header.body);
    assert!(header.body.contains(r#"<span class="badge">0</span>"#));
    assert_eq!(
        client.get_json("/cart").await.status,
        StatusCode::OK,
        "an empty cart page needs no query either"
    );

    let reply = client.post_json("/cart/add/book/1", json!({})).await;
    let message = reply.error(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable");
    assert!(!message.contains("closed"), "no driver details: {message}");
    assert_eq!(reply.headers.get(header::RETRY_AFTER).unwrap(), "5");
    let page = client.post_form("/cart/add/book/1", "").await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.body.contains("temporarily unavailable"));
    assert_eq!(
        page.headers.get(header::RETRY_AFTER).unwrap(),
        "5",
        "every 503"
    );
}

#[tokio::test]
async fn cross_site_posts_are_refused() {
    let db = Db::new().await;
    let app = session_app(&db.carts(), CartRouter::new());
    let mut client = Client::new(&app);
    let form = |extra: &'static [(&'static str, &'static str)]| {
        let mut h = vec![
            ("accept", HTML),
            ("content-type", FORM),
            ("host", "shop.test"),
        ];
        h.extend_from_slice(extra);
        h
    };

    for extra in [
        &[("sec-fetch-site", "cross-site")][..],
        &[("origin", "https://evil.test")][..],
        &[("origin", "null")][..],
        &[("origin", "http://shop.test.evil.test")][..],
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://shop.test"),
        ][..],
        // A sibling subdomain is another site by default.
        &[("sec-fetch-site", "same-site")][..],
    ] {
        let reply = client
            .request("POST", "/cart/add/book/1", &form(extra), "quantity=1")
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{extra:?}");
        assert!(reply.body.contains("Cross-site"));
        let reply = client
            .request(
                "POST",
                "/cart/clear",
                &[("accept", JSON), ("sec-fetch-site", "cross-site")],
                Body::empty(),
            )
            .await;
        reply.error(StatusCode::FORBIDDEN, "cross_site_request");
    }
    assert_eq!(db.rows().await, 0, "nothing was written");
    assert!(client.cookies.is_empty());

    for extra in [
        &[("sec-fetch-site", "same-origin")][..],
        &[("sec-fetch-site", "none")][..],
        &[("origin", "http://shop.test")][..],
        &[("origin", "http://SHOP.test:80")][..],
        &[][..],
    ] {
        let reply = client
            .request("POST", "/cart/add/book/1", &form(extra), "quantity=1")
            .await;
        assert_eq!(
            reply.status,
            StatusCode::SEE_OTHER,
            "{extra:?}: {}",
            reply.body
        );
    }
    assert_eq!(client.cart().await["count"], 5);

    // An app served from several subdomains allows them deliberately.
    let lenient = session_app(
        &db.carts(),
        CartRouter::new().same_site(SameSiteLayer::new().allow_same_site(true)),
    );
    let mut sibling = Client::new(&lenient);
    let reply = sibling
        .request(
            "POST",
            "/cart/add/book/1",
            &form(&[("sec-fetch-site", "same-site")]),
            "quantity=1",
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let reply = sibling
        .request(
            "POST",
            "/cart/add/book/1",
            &form(&[("sec-fetch-site", "cross-site")]),
            "quantity=1",
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_same_site_layer_guards_an_apps_own_routes() {
    let placed = Arc::new(AtomicU64::new(0));
    let counter = placed.clone();
    let app: Router = Router::new()
        .route(
            "/checkout",
            post(move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    "Thank you for your order!"
                }
            })
            .get(|| async { "the checkout page" }),
        )
        .layer(SameSiteLayer::new());
    let mut client = Client::new(&app);
    let evil = [
        ("accept", HTML),
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("host", "shop.test"),
    ];
    let reply = client
        .request("POST", "/checkout", &evil, Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.body.contains("Cross-site"), "{}", reply.body);
    let json = [("accept", JSON), ("sec-fetch-site", "cross-site")];
    client
        .request("DELETE", "/checkout", &json, Body::empty())
        .await
        .error(StatusCode::FORBIDDEN, "cross_site_request");
    assert_eq!(placed.load(Ordering::SeqCst), 0, "no order placed");
    // Reads are never refused; same-origin posts pass.
    let reply = client
        .request("GET", "/checkout", &evil, Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let same = [("origin", "http://shop.test"), ("host", "shop.test")];
    let reply = client
        .request("POST", "/checkout", &same, Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(placed.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cart_error_as_a_response_of_the_apps_own_handlers() {
    use axum::response::IntoResponse;
    let res = CartError::CheckedOut.into_response();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "checked_out");
    assert_eq!(
        body["error"],
        "This cart has been checked out and can no longer be changed."
    );

    let res = CartError::Database(sqlx::Error::RowNotFound).into_response();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&body).contains("RowNotFound"));
}

// ---- sessions ----------------------------------------------------------------------------

#[tokio::test]
async fn two_clients_are_isolated() {
    // HTTP-07, MW-05
    let db = Db::new().await;
    let app = session_app(&db.carts(), CartRouter::new());
    let (mut alice, mut bob) = (Client::new(&app), Client::new(&app));
    alice
        .post_json("/cart/add/book/1", json!({"quantity": 2}))
        .await;
    bob.post_json("/cart/add/book/1", json!({"quantity": 7}))
        .await;
    assert_eq!(alice.cart().await["count"], 2);
    assert_eq!(bob.cart().await["count"], 7);
    assert_eq!(db.rows().await, 2);

    let key = Key::generate();
    let app = cookie_app(&db.carts(), &key);
    let (mut carol, mut dave) = (Client::new(&app), Client::new(&app));
    carol
        .post_json("/cart/add/book/2", json!({"quantity": 3}))
        .await;
    dave.post_json("/cart/add/book/2", json!({"quantity": 4}))
        .await;
    assert_eq!(carol.cart().await["count"], 3);
    assert_eq!(dave.cart().await["count"], 4);
    assert_eq!(db.rows().await, 4);
}

#[tokio::test]
async fn the_signed_cookie_carries_the_cart() {
    // MW-02..04, MW-06, SESS-15 done right: HttpOnly, SameSite=Lax, Secure, Max-Age, signed.
    let db = Db::new().await;
    let key = Key::generate();
    let app = cookie_app(&db.carts(), &key);
    let mut client = Client::new(&app);

    let reply = client.get_json("/cart").await;
    assert!(reply.set_cookies().is_empty(), "a read sets no cookie");
    let reply = client
        .post_json("/cart/add/book/1", json!({"quantity": 3}))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let set = reply.set_cookies();
    assert_eq!(set.len(), 1, "{set:?}");
    let cookie = Cookie::parse(set[0].clone()).unwrap();
    assert_eq!(cookie.name(), "CART-ID");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(
        cookie.same_site(),
        Some(tower_cookies::cookie::SameSite::Lax)
    );
    assert_eq!(cookie.path(), Some("/"));
    assert_eq!(cookie.max_age(), Some(time::Duration::days(30)));
    let id = db.newest_cart_id().await.to_string();
    assert_ne!(cookie.value(), id, "the value is signed, not the bare id");
    assert!(
        cookie.value().contains(&format!("{id}.")),
        "the signed value is the id and its issue time: {}",
        cookie.value()
    );

    for _ in 0..3 {
        let reply = client.get_json("/cart").await;
        assert_eq!(reply.json()["count"], 3);
        assert!(
            reply.set_cookies().is_empty(),
            "an unchanged cookie is not sent again"
        );
    }
    let reply = client.post_json("/cart/add/book/1", json!({})).await;
    assert!(
        reply.set_cookies().is_empty(),
        "later changes keep the cookie"
    );
    assert_eq!(reply.json()["count"], 4);
    assert_eq!(db.rows().await, 1);

    // Refused changes set no cookie either.
    let mut other = Client::new(&app);
    other
        .post_json("/cart/remove/book/1", json!({}))
        .await
        .error(StatusCode::NOT_FOUND, "item_does_not_exist");
    assert!(other.cookies.is_empty());

    // Checkout keeps the cookie (it names the placed order, for a repeated checkout); the
    // next change starts a new cart and a new cookie.
    let reply = client.post_json("/cart/checkout", json!({})).await;
    assert_eq!(reply.json()["checked_out"], true);
    assert!(reply.set_cookies().is_empty(), "{:?}", reply.set_cookies());
    assert_eq!(client.cart().await["is_empty"], true);
    client.post_json("/cart/add/book/2", json!({})).await;
    assert_eq!(client.cart().await["count"], 1);
    assert_eq!(db.rows().await, 2);

    // `secure(false)` and a shorter life.
    let app = routes(CartRouter::new()).layer(
        CartLayer::new(db.carts()).with_signed_cookie(
            SignedCookieConfig::new(key.clone())
                .secure(false)
                .max_age(time::Duration::hours(1)),
        ),
    );
    let reply = Client::new(&app)
        .post_json("/cart/add/book/2", json!({}))
        .await;
    let cookie = Cookie::parse(reply.set_cookies()[0].clone()).unwrap();
    assert_eq!(cookie.secure(), None);
    assert_eq!(cookie.max_age(), Some(time::Duration::hours(1)));
}

#[tokio::test]
async fn the_signed_cookie_expires_on_the_server_refuses_ambiguity_and_rotates_keys() {
    let db = Db::new().await;
    let key = Key::generate();
    let app = cookie_app(&db.carts(), &key);
    let mut victim = Client::new(&app);
    victim
        .post_json("/cart/add/book/2", json!({"quantity": 4}))
        .await;
    let victim_id = db.newest_cart_id().await;
    let sign = |key: &Key, value: String| {
        let mut jar = CookieJar::new();
        jar.signed_mut(key).add(Cookie::new("CART-ID", value));
        format!("CART-ID={}", jar.get("CART-ID").unwrap().value())
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let count = |app: &Router, cookie: String| {
        let app = app.clone();
        async move {
            Client::new(&app)
                .request(
                    "GET",
                    "/cart",
                    &[("accept", JSON), ("cookie", &cookie)],
                    Body::empty(),
                )
                .await
                .json()["count"]
                .clone()
        }
    };
    // A cookie signed now opens the cart; one issued 31 days ago (a replay after its
    // Max-Age) does not, nor one without an issue time (the old format).
    assert_eq!(
        count(&app, sign(&key, format!("{victim_id}.{now}"))).await,
        4
    );
    let month_ago = now - 31 * 86_400;
    assert_eq!(
        count(&app, sign(&key, format!("{victim_id}.{month_ago}"))).await,
        0
    );
    assert_eq!(count(&app, sign(&key, victim_id.to_string())).await, 0);

    // Two valid cookies (one planted for a parent domain by an attacker holding a cart of
    // their own): neither is trusted, so the victim's adds never go to the attacker's cart.
    let mut attacker = Client::new(&app);
    attacker.post_json("/cart/add/book/3", json!({})).await;
    let attacker_id = db.newest_cart_id().await;
    let both = format!(
        "CART-ID={}; CART-ID={}",
        attacker.cookies["CART-ID"], victim.cookies["CART-ID"]
    );
    assert_eq!(count(&app, both.clone()).await, 0);
    let reply = Client::new(&app)
        .request(
            "POST",
            "/cart/add/book/1",
            &[("accept", JSON), ("cookie", &both)],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.json()["count"], 1, "a fresh cart");
    assert_eq!(
        attacker.cart().await["count"],
        1,
        "the attacker's cart got nothing"
    );
    assert_eq!(victim.cart().await["count"], 4);
    assert_ne!(db.newest_cart_id().await, attacker_id);

    // Key rotation: a new key signs, the old one still verifies, and a cookie read with the
    // old key comes back signed with the new one.
    let new_key = Key::generate();
    let rotated = routes(CartRouter::new())
        .layer(CartLayer::new(db.carts()).with_signed_cookie(
            SignedCookieConfig::new(new_key.clone()).previous_key(key.clone()),
        ));
    let mut returning = Client::new(&rotated);
    returning
        .cookies
        .insert("CART-ID".into(), victim.cookies["CART-ID"].clone());
    let reply = returning.get_json("/cart").await;
    assert_eq!(reply.json()["count"], 4, "the old key still verifies");
    assert_eq!(reply.set_cookies().len(), 1, "re-signed with the new key");
    let only_new = routes(CartRouter::new())
        .layer(CartLayer::new(db.carts()).with_signed_cookie(SignedCookieConfig::new(new_key)));
    let resigned = format!("CART-ID={}", returning.cookies["CART-ID"]);
    assert_eq!(count(&only_new, resigned).await, 4);
    let old = format!("CART-ID={}", victim.cookies["CART-ID"]);
    assert_eq!(
        count(&only_new, old).await,
        0,
        "once the old key is dropped"
    );
}

#[tokio::test]
async fn forged_and_tampered_cookies_never_reach_another_visitors_cart() {
    // MW-07 and weakness (2)1: the reference adopted any id; here nothing but our own
    // signature is trusted.
    let db = Db::new().await;
    let key = Key::generate();
    let app = cookie_app(&db.carts(), &key);
    let mut victim = Client::new(&app);
    victim
        .post_json("/cart/add/book/2", json!({"quantity": 4}))
        .await;
    let victim_id = db.newest_cart_id().await;
    let victim_cookie = victim.cookies["CART-ID"].clone();

    let mut other_key_jar = CookieJar::new();
    other_key_jar
        .signed_mut(&Key::generate())
        .add(Cookie::new("CART-ID", victim_id.to_string()));
    let other_key = other_key_jar.get("CART-ID").unwrap().value().to_owned();
    // The signed value is `<id>.<issued at>` after the MAC: change the id, keep the rest.
    let at = victim_cookie
        .rfind(&format!("{victim_id}."))
        .expect("the id in the cookie");
    let (mac, rest) = victim_cookie.split_at(at);
    let tampered_id = format!(
        "{mac}{}{}",
        victim_id + 1,
        &rest[victim_id.to_string().len()..]
    );

    for forged in [
        victim_id.to_string(),
        format!(" {victim_id}"),
        other_key,
        tampered_id,
        format!("{}x", victim_cookie),
        "garbage%%%;;".to_owned(),
        String::new(),
    ] {
        let mut attacker = Client::new(&app);
        let cookie = format!("CART-ID={forged}");
        let reply = attacker
            .request(
                "GET",
                "/cart",
                &[("accept", JSON), ("cookie", &cookie)],
                Body::empty(),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "never an error page: {forged:?}"
        );
        assert_eq!(
            reply.json()["count"],
            0,
            "{forged:?} must not open the victim's cart"
        );
        let reply = attacker
            .request(
                "POST",
                "/cart/add/book/1",
                &[("accept", JSON), ("cookie", &cookie)],
                Body::empty(),
            )
            .await;
        assert_eq!(
            reply.json()["count"],
            1,
            "{forged:?}: the attacker gets a fresh cart"
        );
        assert!(
            !reply.set_cookies().is_empty(),
            "and a properly signed cookie of their own"
        );
    }
    // A forged copy next to a valid one (cookie tossing) does not shadow the valid one.
    let both = format!("CART-ID={victim_id}; CART-ID={victim_cookie}");
    let reply = Client::new(&app)
        .request(
            "GET",
            "/cart",
            &[("accept", JSON), ("cookie", &both)],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.json()["count"], 4);
    assert_eq!(
        victim.cart().await["count"],
        4,
        "the victim's cart is untouched"
    );

    // The tower-sessions adapter: a CART-ID cookie means nothing, a forged session id
    // starts a new session.
    let app = session_app(&db.carts(), CartRouter::new());
    let mut victim = Client::new(&app);
    victim
        .post_json("/cart/add/book/3", json!({"quantity": 2}))
        .await;
    let victim_id = db.newest_cart_id().await;
    for cookie in [
        format!("CART-ID={victim_id}"),
        format!("id={victim_id}"),
        "id=AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
    ] {
        let reply = Client::new(&app)
            .request(
                "GET",
                "/cart",
                &[("accept", JSON), ("cookie", &cookie)],
                Body::empty(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["count"], 0, "{cookie}");
    }
    assert_eq!(victim.cart().await["count"], 2);
}

#[tokio::test]
async fn a_custom_adapter_plugs_in() {
    // INIT-04, INIT-10: the adapter gets the new id; a stale id gets a fresh cart.
    let db = Db::new().await;
    let sessions: Arc<Mutex<BTreeMap<String, MemorySession>>> = Arc::default();
    let lookup = sessions.clone();
    let app =
        routes(CartRouter::new()).layer(CartLayer::new(db.carts()).with_adapter(move |parts| {
            let visitor = parts
                .headers
                .get("x-visitor")
                .and_then(|v| v.to_str().ok())
                .ok_or("no x-visitor header")?
                .to_owned();
            let mut map = lookup.lock().map_err(|_| "poisoned")?;
            Ok(map.entry(visitor).or_default().clone())
        }));
    let mut client = Client::new(&app);
    let ann = [("accept", JSON), ("x-visitor", "ann")];

    let stale = MemorySession::default();
    stale.set("CART-ID", "99999").await.unwrap();
    sessions.lock().unwrap().insert("ann".into(), stale.clone());
    assert_eq!(
        client
            .request("GET", "/cart", &ann, Body::empty())
            .await
            .json()["count"],
        0
    );
    client
        .request("POST", "/cart/add/book/1", &ann, Body::empty())
        .await;
    let id = stale
        .cart_id()
        .await
        .unwrap()
        .expect("the adapter got the new id");
    assert_eq!(id.get(), db.newest_cart_id().await);
    assert_eq!(
        client
            .request("GET", "/count", &ann, Body::empty())
            .await
            .body,
        "1"
    );
    let ben = [("accept", JSON), ("x-visitor", "ben")];
    assert_eq!(
        client
            .request("GET", "/count", &ben, Body::empty())
            .await
            .body,
        "0"
    );

    // The factory's error is reported when the cart is used.
    let reply = client
        .request("GET", "/cart", &[("accept", JSON)], Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn the_cart_extractor_works_in_app_handlers() {
    // Mutations through `Cart` update the session or cookie with no extra code.
    let db = Db::new().await;
    for app in [
        session_app(&db.carts(), CartRouter::new()),
        cookie_app(&db.carts(), &Key::generate()),
    ] {
        let mut client = Client::new(&app);
        assert_eq!(
            client
                .request("GET", "/count", &[], Body::empty())
                .await
                .body,
            "0"
        );
        let reply = client.request("POST", "/buy", &[], Body::empty()).await;
        assert_eq!(reply.body, "1");
        assert!(
            !reply.set_cookies().is_empty(),
            "the session or cookie was written"
        );
        assert_eq!(
            client
                .request("POST", "/buy", &[], Body::empty())
                .await
                .body,
            "2"
        );
        assert_eq!(
            client
                .request("GET", "/count", &[], Body::empty())
                .await
                .body,
            "2"
        );
        assert_eq!(client.cart().await["items"][0]["name"], "Espresso");
    }
}

#[tokio::test]
async fn a_missing_layer_is_a_500_that_names_it() {
    let db = Db::new().await;
    let bare = routes(CartRouter::new());
    let mut client = Client::new(&bare);
    let reply = client.request("GET", "/count", &[], Body::empty()).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.body.contains("CartLayer"), "{}", reply.body);
    let message = client
        .get_json("/cart")
        .await
        .error(StatusCode::INTERNAL_SERVER_ERROR, "missing_cart_layer");
    assert!(message.contains("CartLayer"));
    assert!(client.get_html("/header").await.body.contains("CartLayer"));

    // CartLayer without tower-sessions' layer.
    let no_sessions = routes(CartRouter::new()).layer(CartLayer::new(db.carts()));
    let mut client = Client::new(&no_sessions);
    let message = client
        .get_json("/cart")
        .await
        .error(StatusCode::INTERNAL_SERVER_ERROR, "session_error");
    assert!(message.contains("SessionManagerLayer"), "{message}");
}

// ---- configuration -----------------------------------------------------------------------

#[tokio::test]
async fn the_template_can_be_replaced_and_the_router_nested() {
    let db = Db::new().await;
    let carts = db
        .builder()
        .cart_url("/shop/cart/")
        .currency_symbol("€")
        .build();
    let router = CartRouter::new().template(|cart: &CartDetails| {
        Ok(format!(
            "<p>{} items, {}{}</p><a href=\"{}\">",
            cart.count, cart.currency_symbol, cart.total, cart.cart_url
        ))
    });
    let app = Router::new()
        .nest("/shop", router.build())
        .route("/header", get(header_page))
        .layer(CartLayer::new(carts.clone()))
        .layer(SessionManagerLayer::new(MemoryStore::default()));
    let mut client = Client::new(&app);

    let reply = client
        .post_form("/shop/cart/add/book/2", "quantity=2")
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), Some("/shop/cart"));
    let page = client.get_html("/shop/cart").await;
    assert_eq!(page.body, "<p>2 items, €50.00</p><a href=\"/shop/cart\">");
    assert_eq!(
        client.get_json("/shop/cart").await.json()["total"],
        "50.00",
        "JSON is not templated"
    );
    let header = client.get_html("/header").await.body;
    // One normalisation of the configured URL: the header's link is the page the router
    // serves (it was `/shop/cart/`, a 404).
    assert!(
        header.contains(r#"<a href="/shop/cart" class="nav-btn">Cart</a>"#),
        "{header}"
    );
    assert!(header.contains("€50.00"));
    assert_eq!(client.get_html("/shop/cart").await.status, StatusCode::OK);
}

// ---- askama filters ----------------------------------------------------------------------

#[tokio::test]
async fn header_filters_follow_the_cart_and_create_no_row() {
    // TAG-01, TAG-02, TAG-04, TAG-05, TAG-06, TAG-11
    let db = Db::new().await;
    let app = session_app(&db.carts(), CartRouter::new());
    let mut client = Client::new(&app);

    let header = client.get_html("/header").await.body;
    assert_eq!(
        header,
        r#"<header><a href="/cart" class="nav-btn">Cart</a> <span class="badge">0</span> <span class="total">$0.00</span> <em>empty</em></header>"#
    );
    assert_eq!(db.rows().await, 0, "the header created no row");

    client.post_form("/cart/add/book/1", "quantity=2").await;
    let header = client.get_html("/header").await.body;
    assert_eq!(
        header,
        r#"<header><a href="/cart" class="nav-btn">Cart</a> <span class="badge">2</span> <span class="total">$19.98</span></header>"#
    );

    // A checked-out cart shows as empty (TAG-05); so does the fresh cart after it.
    client.post_form("/cart/checkout", "").await;
    assert!(client
        .get_html("/header")
        .await
        .body
        .contains(r#"<span class="badge">0</span>"#));
    assert_eq!(db.rows().await, 1);

    // The badge from a loaded cart.
    let carts = db.carts();
    let mut cart = carts.new_cart();
    cart.add(&ProductRef::new("book", 1).unwrap(), d("9.99"), 2)
        .await
        .unwrap();
    let badge = CartBadge::from_cart(&cart).await.unwrap();
    assert_eq!((badge.count, badge.summary()), (2, "$19.98".to_owned()));
    let details = CartDetails::load(&cart).await.unwrap();
    assert_eq!(details.badge(), badge);
    cart.checkout().await.unwrap();
    assert!(CartBadge::from_cart(&cart).await.unwrap().is_empty());
}

#[derive(Template)]
#[template(
    source = r#"{{ badge|cart_link(label, class) }}|{{ badge|cart_link("View Cart", "") }}|{{ badge|cart_summary }}|{{ badge|cart_item_count }}|{{ badge|cart_is_empty }}"#,
    ext = "html"
)]
struct LinkProbe<'a> {
    badge: &'a CartBadge,
    label: String,
    class: &'a str,
}

#[test]
fn askama_filters_escape_and_format() {
    // TAG-08, TAG-09, TAG-10, TAG-12, TAG-03 (but half-up, with the configured symbol)
    let badge = CartBadge::new(3, d("1234567.891"), "$", "/cart");
    let probe = LinkProbe {
        badge: &badge,
        label: "<b>\"x\"&'".to_owned(),
        class: "a\"b",
    };
    assert_eq!(
        probe.render().unwrap(),
        r#"<a href="/cart" class="a&quot;b">&lt;b&gt;&quot;x&quot;&amp;&#x27;</a>|<a href="/cart">View Cart</a>|$1234567.89|3|false"#
    );
    let euro = CartBadge::new(0, Decimal::ZERO, "€", "/panier?x=\"1\"");
    let probe = LinkProbe {
        badge: &euro,
        label: "Cart".into(),
        class: "btn btn-primary",
    };
    assert_eq!(
        probe.render().unwrap(),
        r#"<a href="/panier?x=&quot;1&quot;" class="btn btn-primary">Cart</a>|<a href="/panier?x=&quot;1&quot;">View Cart</a>|€0.00|0|true"#
    );
    assert_eq!(
        CartBadge::new(1, d("0.125"), "$", "/cart").summary(),
        "$0.13"
    );
    let values = askama::NO_VALUES;
    assert_eq!(filters::cart_item_count(&badge, values).unwrap(), 3);
    assert!(!filters::cart_is_empty(&badge, values).unwrap());
}
