//! The admin's price edit end to end, in process: a price changed after an add shows on the
//! cart (JSON and page), and checkout charges the new price; bad edits change nothing.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use shop::{app, Settings};
use tower::ServiceExt;

/// `admin:s3cret`.
const ADMIN: &str = "Basic YWRtaW46czNjcmV0";

struct Browser {
    app: Router,
    cookies: HashMap<String, String>,
}

impl Browser {
    fn new(app: &Router) -> Browser {
        Browser {
            app: app.clone(),
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, mut req: Request<Body>) -> (StatusCode, String) {
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req.headers_mut()
                .insert(header::COOKIE, jar.join("; ").parse().unwrap());
        }
        let res = self.app.clone().oneshot(req).await.unwrap();
        for c in res.headers().get_all(header::SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.insert(k.to_owned(), v.to_owned());
        }
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn get(&mut self, uri: &str, accept: &str) -> (StatusCode, String) {
        let req = Request::get(uri).header(header::ACCEPT, accept);
        self.send(req.body(Body::empty()).unwrap()).await
    }

    async fn json(&mut self, uri: &str) -> Value {
        let (status, body) = self.get(uri, "application/json").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn post(
        &mut self,
        uri: &str,
        form: &str,
        accept: &str,
        auth: Option<&str>,
    ) -> (StatusCode, String) {
        let mut req = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, accept);
        if let Some(auth) = auth {
            req = req.header(header::AUTHORIZATION, auth);
        }
        self.send(req.body(Body::from(form.to_owned())).unwrap())
            .await
    }

    async fn set_price(&mut self, uri: &str, form: &str) -> (StatusCode, String) {
        self.post(uri, form, "text/html", Some(ADMIN)).await
    }
}

fn settings(db: &std::path::Path) -> Settings {
    Settings {
        database_url: format!("sqlite://{}", db.display()),
        redis_url: None,
        bind: "127.0.0.1:0".parse().unwrap(),
        merge_strategy: axum_cart::MergeStrategy::Add,
        admin_password: Some("s3cret".into()),
        secure_cookies: false,
        session_cache: true,
        max_quantity: 999,
        quantity_rules: true,
        discount_attempts: 10,
        events: shop::EventSettings::default(),
        seed_per_kind: 10,
    }
}

fn temp_db(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("shop-prices-{}-{name}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

#[tokio::test]
async fn an_admin_price_change_shows_on_the_cart_and_checkout_charges_it() {
    let db = temp_db("flow");
    let (router, shop) = app(settings(&db)).await.unwrap();
    let mut visitor = Browser::new(&router);
    let mut admin = Browser::new(&router);

    let (status, _) = visitor
        .post("/cart/add/coffee/1", "quantity=2", "text/html", None)
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cart = visitor.json("/cart").await;
    let added = cart["items"][0]["unit_price"].as_str().unwrap().to_owned();
    assert_eq!(added, "17.50");
    assert_eq!(cart["items"][0]["price_change"], Value::Null);
    assert_eq!(cart["warnings"], json!([]));

    // The admin page lists the products with a price form each.
    let (status, page) = admin.get("/admin/products?kind=coffee", "text/html").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "behind the admin guard");
    let req = Request::get("/admin/products?kind=coffee")
        .header(header::AUTHORIZATION, ADMIN)
        .body(Body::empty())
        .unwrap();
    let (status, page2) = admin.send(req).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page2.contains(r#"<form method="post" action="/admin/products/coffee/1">"#),
        "{page2}"
    );
    assert!(page2.contains(r#"name="price" value="17.50""#), "{page2}");

    let (status, _) = admin
        .set_price("/admin/products/coffee/1", "price=18.25")
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, body) = admin
        .post(
            "/admin/products/coffee/2",
            "price=9",
            "application/json",
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["price"], "9.00");

    // The cart keeps the price of the add and says what changed.
    let cart = visitor.json("/cart").await;
    assert_eq!(cart["items"][0]["unit_price"], "17.50");
    assert_eq!(
        cart["items"][0]["price_change"],
        json!({"from": "17.50", "to": "18.25"})
    );
    assert_eq!(cart["warnings"][0]["code"], "price_changed");
    let message = cart["warnings"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("went up from 17.50 to 18.25 since you added it"),
        "{message}"
    );
    let (_, page) = visitor.get("/cart", "text/html").await;
    assert!(
        page.contains("price went up from $17.50 to $18.25 since you added it"),
        "{page}"
    );
    // The product list shows the new price too.
    let (_, list) = visitor.get("/?kind=coffee", "text/html").await;
    assert!(
        list.contains("18.25"),
        "the product page shows the new price"
    );

    // Checkout (JSON, the library's route) charges the new price.
    let (status, body) = visitor
        .post("/cart/checkout", "", "application/json", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let done: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(done["checked_out"], true);
    assert_eq!(done["items"][0]["unit_price"], "18.25");
    assert_eq!(done["subtotal"], "36.50");
    assert_eq!(
        done["items"][0]["price_change"],
        json!({"from": "17.50", "to": "18.25"})
    );

    // The shop's own checkout page says so, and the order book has the new price.
    let mut second = Browser::new(&router);
    second
        .post("/cart/add/coffee/2", "quantity=1", "text/html", None)
        .await;
    admin
        .set_price("/admin/products/coffee/2", "price=10.00")
        .await;
    let (status, page) = second.post("/checkout", "", "text/html", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("The price of ")
            && page.contains("went up from 9.00 to 10.00 since you added it."),
        "{page}"
    );
    // The relay writes the order from the outbox, a moment later.
    let mut ids = Vec::new();
    for _ in 0..1500 {
        ids = shop
            .db
            .ids("SELECT cart_id FROM shop_order_lines WHERE unit_price_cents = 1000")
            .await
            .unwrap();
        if !ids.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(ids.len(), 1, "the order line has the new price");
}

#[tokio::test]
async fn bad_price_edits_are_refused_and_change_nothing() {
    let db = temp_db("bad");
    let (router, shop) = app(settings(&db)).await.unwrap();
    let mut visitor = Browser::new(&router);
    let mut admin = Browser::new(&router);
    visitor
        .post("/cart/add/book/1", "quantity=1", "text/html", None)
        .await;
    let before = shop.catalog.get("book", 1).unwrap().price;

    for (uri, form, status, says) in [
        (
            "/admin/products/book/1",
            "price=abc",
            StatusCode::BAD_REQUEST,
            "must be an amount",
        ),
        (
            "/admin/products/book/1",
            "price=-1",
            StatusCode::BAD_REQUEST,
            "must be an amount",
        ),
        (
            "/admin/products/book/1",
            "price=1.234",
            StatusCode::BAD_REQUEST,
            "at most two decimals",
        ),
        (
            "/admin/products/book/1",
            "price=1e3",
            StatusCode::BAD_REQUEST,
            "must be an amount",
        ),
        (
            "/admin/products/book/1",
            "price=10000000",
            StatusCode::BAD_REQUEST,
            "cannot exceed",
        ),
        (
            "/admin/products/book/1",
            "price=",
            StatusCode::BAD_REQUEST,
            "must be an amount",
        ),
        (
            "/admin/products/book/1",
            "cost=1.00",
            StatusCode::BAD_REQUEST,
            "form field \"price\"",
        ),
        (
            "/admin/products/book/999",
            "price=1.00",
            StatusCode::NOT_FOUND,
            "No such product",
        ),
        (
            "/admin/products/gadget/1",
            "price=1.00",
            StatusCode::NOT_FOUND,
            "No such product",
        ),
        (
            "/admin/products/book/x",
            "price=1.00",
            StatusCode::NOT_FOUND,
            "No such product",
        ),
    ] {
        let (got, body) = admin.set_price(uri, form).await;
        assert_eq!(got, status, "{uri} {form}: {body}");
        assert!(body.contains(says), "{uri} {form}: {body}");
    }
    // Without the admin's credentials: refused before anything is read.
    let (status, _) = admin
        .post("/admin/products/book/1", "price=1.00", "text/html", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    assert_eq!(shop.catalog.get("book", 1).unwrap().price, before);
    let stored = shop
        .db
        .ids("SELECT price_cents FROM shop_products WHERE kind = 'book' AND id = 1")
        .await
        .unwrap();
    assert_eq!(stored, [shop::db::cents(before)]);
    let cart = visitor.json("/cart").await;
    assert_eq!(cart["items"][0]["price_change"], Value::Null);
    assert_eq!(cart["warnings"], json!([]));
}
