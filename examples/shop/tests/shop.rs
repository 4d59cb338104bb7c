//! The demo shop end to end, in process: what a visitor does, as the README tells it.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use shop::{app, Settings};
use tower::ServiceExt;

/// A browser: a cookie jar and a router.
struct Browser {
    app: Router,
    cookies: HashMap<String, String>,
}

struct Page {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Browser {
    fn new(app: &Router) -> Browser {
        Browser {
            app: app.clone(),
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, mut req: Request<Body>) -> Page {
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
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let status = res.status();
        let headers = res.headers().clone();
        let body = String::from_utf8_lossy(&res.into_body().collect().await.unwrap().to_bytes())
            .into_owned();
        Page {
            status,
            headers,
            body,
        }
    }

    async fn get(&mut self, uri: &str) -> Page {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    async fn json(&mut self, uri: &str) -> serde_json::Value {
        let page = self
            .send(
                Request::get(uri)
                    .header(header::ACCEPT, "application/json")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        serde_json::from_str(&page.body).unwrap()
    }

    async fn post(&mut self, uri: &str, form: &str) -> Page {
        let req = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_owned()))
            .unwrap();
        self.send(req).await
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
        seed_per_kind: 100,
    }
}

fn temp_db(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("shop-test-{}-{name}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[tokio::test]
async fn a_visitor_shops_applies_a_code_and_checks_out() {
    let db = temp_db("flow");
    let (router, shop) = app(settings(&db)).await.unwrap();
    let mut b = Browser::new(&router);

    // The product list: 100 books, a header with an empty cart, no cookie yet.
    let list = b.get("/").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(count(&list.body, "class=\"product\""), 100);
    assert!(list
        .body
        .contains(r#"<span class="badge" id="cart-count">0</span>"#));
    assert!(list
        .body
        .contains(r#"<span id="cart-summary">$0.00</span>"#));
    assert!(b.cookies.is_empty(), "a read-only visit sets no cookie");
    assert_eq!(
        shop.carts
            .list_carts(&Default::default())
            .await
            .unwrap()
            .len(),
        0,
        "and creates no cart"
    );

    // Add two products.
    let added = b.post("/cart/add/book/1", "quantity=1").await;
    assert_eq!(added.status, StatusCode::SEE_OTHER);
    let cookie = added
        .headers
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && !cookie.contains("Secure"),
        "{cookie}"
    );
    b.post("/cart/add/coffee/2", "quantity=1").await;
    let list = b.get("/").await;
    assert!(
        list.body
            .contains(r#"<span class="badge" id="cart-count">2</span>"#),
        "header badge shows 2"
    );

    // The cart page: one <li> per line.
    let page = b.get("/cart").await;
    assert_eq!(count(&page.body, "<li"), 2);
    let cart = b.json("/cart").await;
    let subtotal: rust_decimal::Decimal = cart["subtotal"].as_str().unwrap().parse().unwrap();
    assert_eq!(cart["count"], 2);

    // SUMMER25 needs 50.00: add a course, then apply it.
    let refused = b.post("/cart/discount", "code=summer25").await;
    if subtotal < rust_decimal::Decimal::from(50) {
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        b.post("/cart/add/course/1", "quantity=1").await;
        assert_eq!(
            b.post("/cart/discount", "code=summer25").await.status,
            StatusCode::SEE_OTHER
        );
    }
    let cart = b.json("/cart").await;
    assert_eq!(cart["discount_code"], "SUMMER25");
    let d = |k: &str| {
        cart[k]
            .as_str()
            .unwrap()
            .parse::<rust_decimal::Decimal>()
            .unwrap()
    };
    let sub = d("subtotal");
    assert_eq!(
        d("discount"),
        (sub * rust_decimal::Decimal::new(25, 2))
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    );
    assert_eq!(
        d("tax"),
        (sub * rust_decimal::Decimal::new(8, 2))
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    );
    let shipping = if sub >= rust_decimal::Decimal::ONE_HUNDRED {
        "0.00"
    } else {
        "9.99"
    };
    assert_eq!(cart["shipping"], shipping);
    assert_eq!(d("total"), sub - d("discount") + d("tax") + d("shipping"));

    // Check out: a confirmation, an order row, a fresh cart afterwards.
    let done = b.post("/checkout", "").await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(done.body.contains("Thank you for your order!"));
    assert!(
        done.body
            .contains(&format!("Total ${}", cart["total"].as_str().unwrap())),
        "{}",
        done.body
    );
    assert!(done.body.contains(r#"id="cart-count">0<"#));
    let after = b.json("/cart").await;
    assert_eq!(after["is_empty"], true);
    assert_eq!(after["checked_out"], false);
    // A repeated checkout (a double submit, a reload of the confirmation) shows the same
    // order again and places nothing.
    let again = b.post("/checkout", "").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert!(again.body.contains("Thank you for your order!"));
    assert!(again
        .body
        .contains(&format!("Total ${}", cart["total"].as_str().unwrap())));
    assert_eq!(
        shop.carts
            .discount("SUMMER25")
            .await
            .unwrap()
            .unwrap()
            .current_uses,
        1
    );

    // A second start on the same file keeps its data.
    drop(router);
    let (_, again) = app(settings(&db)).await.unwrap();
    assert_eq!(
        again
            .carts
            .discount("SUMMER25")
            .await
            .unwrap()
            .unwrap()
            .current_uses,
        1
    );
    assert_eq!(again.catalog.of_kind("coffee").len(), 100);
}

#[tokio::test]
async fn login_merges_the_guest_cart_and_logout_starts_fresh() {
    let db = temp_db("login");
    let (router, _) = app(settings(&db)).await.unwrap();

    // Ann left a cart with one book last time.
    let mut earlier = Browser::new(&router);
    earlier.post("/cart/add/book/1", "quantity=1").await;
    assert_eq!(
        earlier.post("/login", "username=ann").await.status,
        StatusCode::SEE_OTHER
    );

    // Today, as a guest, she adds two of the same book and a coffee, then logs in.
    let mut b = Browser::new(&router);
    b.post("/cart/add/book/1", "quantity=2").await;
    b.post("/cart/add/coffee/1", "quantity=1").await;
    assert_eq!(
        b.post("/login", "username=ann").await.status,
        StatusCode::SEE_OTHER
    );
    let cart = b.json("/cart").await;
    assert_eq!(cart["count"], 4, "1 + 2 books and a coffee");
    assert!(b
        .get("/")
        .await
        .body
        .contains(r#"<span id="user">ann</span>"#));

    // Bad usernames are refused with a message.
    let mut c = Browser::new(&router);
    let bad = c.post("/login", "username=%3Cscript%3E").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(!bad.body.contains("<script>"));

    // Logout: a fresh guest cart; the user's cart is still there for the next login.
    b.post("/logout", "").await;
    assert_eq!(b.json("/cart").await["count"], 0);
    b.post("/login", "username=ann").await;
    assert_eq!(b.json("/cart").await["count"], 4);
}

#[tokio::test]
async fn healthz_admin_and_bad_input() {
    let db = temp_db("misc");
    let (router, _) = app(settings(&db)).await.unwrap();
    let mut b = Browser::new(&router);
    let health = b.get("/healthz").await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, "ok")
    );
    assert!(health.headers.get(header::SET_COOKIE).is_none());

    assert_eq!(b.get("/admin/carts").await.status, StatusCode::UNAUTHORIZED);
    let mut req = Request::get("/admin/carts").body(Body::empty()).unwrap();
    req.headers_mut().insert(
        header::AUTHORIZATION,
        "Basic YWRtaW46d3Jvbmc=".parse().unwrap(),
    );
    assert_eq!(b.send(req).await.status, StatusCode::UNAUTHORIZED);
    let mut req = Request::get("/admin/discounts")
        .body(Body::empty())
        .unwrap();
    req.headers_mut().insert(
        header::AUTHORIZATION,
        "Basic YWRtaW46czNjcmV0".parse().unwrap(),
    );
    let admin = b.send(req).await;
    assert_eq!(admin.status, StatusCode::OK);
    for code in ["SUMMER25", "FIXED10", "LASTONE", "EXPIRED"] {
        assert!(admin.body.contains(code), "{code} seeded");
    }

    for (uri, form, status) in [
        ("/cart/add/book/1", "quantity=0", StatusCode::BAD_REQUEST),
        ("/cart/add/book/1", "quantity=abc", StatusCode::BAD_REQUEST),
        ("/cart/add/book/1", "quantity=1000", StatusCode::BAD_REQUEST),
        ("/cart/add/book/101", "quantity=1", StatusCode::NOT_FOUND),
        ("/cart/add/gadget/1", "quantity=1", StatusCode::NOT_FOUND),
        ("/cart/remove/book/1", "", StatusCode::NOT_FOUND),
    ] {
        assert_eq!(b.post(uri, form).await.status, status, "{uri} {form}");
    }
    b.post("/cart/add/book/1", "quantity=1").await;
    assert_eq!(
        b.post("/cart/discount", "code=EXPIRED").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        b.json("/cart").await["count"],
        1,
        "refused changes changed nothing"
    );
}

#[tokio::test]
async fn every_login_gets_a_new_session_and_never_another_users_cart() {
    let db = temp_db("relogin");
    let (router, shop) = app(settings(&db)).await.unwrap();
    let session_id = |b: &Browser| b.cookies.get("shop_session").cloned();

    // Bob has a cart from another device.
    let mut laptop = Browser::new(&router);
    laptop.post("/cart/add/book/9", "quantity=4").await;
    laptop.post("/login", "username=bob").await;

    // Alice logs in on a shared computer and fills her cart.
    let mut kiosk = Browser::new(&router);
    kiosk.post("/cart/add/book/1", "quantity=1").await;
    let guest = session_id(&kiosk).expect("a session");
    assert_eq!(
        kiosk.post("/login", "username=alice").await.status,
        StatusCode::SEE_OTHER
    );
    let alice = session_id(&kiosk).expect("a session");
    assert_ne!(guest, alice, "login cycles the session id");
    kiosk.post("/cart/add/book/2", "quantity=2").await;

    // Bob logs in on the same session without logging Alice out.
    assert_eq!(
        kiosk.post("/login", "username=bob").await.status,
        StatusCode::SEE_OTHER
    );
    let bob = session_id(&kiosk).expect("a session");
    assert_ne!(
        alice, bob,
        "a login over a logged-in session cycles the id too"
    );
    assert_eq!(kiosk.json("/cart").await["count"], 4, "Bob's own cart");
    let alices = shop.carts.active_user_carts("alice").await.unwrap();
    assert_eq!(alices.len(), 1);
    assert_eq!(alices[0].item_count, 3, "Alice's cart untouched");
    let bobs = shop.carts.active_user_carts("bob").await.unwrap();
    assert_eq!(bobs[0].item_count, 4, "nothing of Alice's in Bob's cart");

    // Alice's old session id no longer works.
    let mut thief = Browser::new(&router);
    thief.cookies.insert("shop_session".into(), alice);
    assert_eq!(thief.json("/cart").await["count"], 0);
    assert!(!thief.get("/").await.body.contains(r#"<span id="user">"#));
}

#[tokio::test]
async fn cross_site_posts_to_the_shops_own_routes_are_refused() {
    let db = temp_db("csrf");
    let (router, shop) = app(settings(&db)).await.unwrap();
    let mut b = Browser::new(&router);
    b.post("/cart/add/book/1", "quantity=1").await;
    let forged = |path: &str| {
        Request::post(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ORIGIN, "http://evil.example")
            .header("sec-fetch-site", "cross-site")
            .body(Body::from("username=mallory"))
            .unwrap()
    };
    for path in [
        "/checkout",
        "/login",
        "/logout",
        "/cart/clear",
        "/admin/discounts",
    ] {
        let page = b.send(forged(path)).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}: {}", page.body);
        assert!(!page.body.contains("Thank you"), "{path}");
    }
    let orders: i64 = match &shop.db {
        shop::db::Db::Sqlite(p) => sqlx::query_scalar("SELECT COUNT(*) FROM shop_orders")
            .fetch_one(p)
            .await
            .unwrap(),
        _ => unreachable!("the test runs on SQLite"),
    };
    assert_eq!(orders, 0, "no order placed");
    assert_eq!(b.json("/cart").await["count"], 1, "the cart is untouched");
    // The shop's own form posts still work.
    let done = b.post("/checkout", "").await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(done.body.contains("Thank you for your order!"));
}

/// Log lines written while a test runs, for checking what the shop logged.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// An admin request with this `Authorization` header, from `client` if given (as a server
/// providing `ConnectInfo` would tell).
fn admin_req(method: &str, uri: &str, authorization: &str, client: Option<&str>) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, authorization)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::empty())
        .unwrap();
    if let Some(addr) = client {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo::<std::net::SocketAddr>(
                addr.parse().unwrap(),
            ));
    }
    req
}

/// Issue item 2: the admin password cannot be guessed quickly. The `basic` scheme is
/// accepted in any case with extra spaces; wrong passwords of another or of the same length
/// fail alike; after a few wrong guesses one client gets 429 with `Retry-After` for every
/// request (the right password included) and a WARN line is logged, while another client
/// is unaffected; a discount code containing `/` is switched off and on from the admin.
#[tokio::test]
async fn admin_login_is_rate_limited_and_codes_with_slashes_work() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _log = tracing::subscriber::set_default(subscriber);

    let db = temp_db("admin-guard");
    let (router, shop) = app(settings(&db)).await.unwrap();
    let mut b = Browser::new(&router);
    // "admin:s3cret", "admin:s3creX" (same length), "admin:x" (shorter), "root:s3cret".
    let right = "YWRtaW46czNjcmV0";
    for auth in [
        format!("Basic {right}"),
        format!("basic {right}"),
        format!("  BASIC    {right}  "),
    ] {
        let page = b.send(admin_req("GET", "/admin/carts", &auth, None)).await;
        assert_eq!(page.status, StatusCode::OK, "{auth:?}");
    }
    let no_credentials = b.get("/admin/carts").await;
    assert_eq!(no_credentials.status, StatusCode::UNAUTHORIZED);
    assert!(no_credentials
        .headers
        .contains_key(header::WWW_AUTHENTICATE));
    for auth in [
        "Basic YWRtaW46czNjcmVY",
        "Basic YWRtaW46eA==",
        "Basic cm9vdDpzM2NyZXQ=",
        "Basic !!!",
        "Bearer YWRtaW46czNjcmV0",
    ] {
        let page = b.send(admin_req("GET", "/admin/carts", auth, None)).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{auth}");
    }

    // The guessing goes on: every further request of this client is refused.
    let mut refused = 0;
    for i in 0..40 {
        let auth = format!("Basic YWRtaW46Z3Vlc3N7{i:02}");
        let page = b.send(admin_req("GET", "/admin/carts", &auth, None)).await;
        assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "guess {i}");
        let retry: u64 = page.headers[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=12).contains(&retry), "Retry-After {retry}");
        refused += 1;
    }
    assert_eq!(refused, 40);
    let page = b
        .send(admin_req(
            "GET",
            "/admin/carts",
            &format!("Basic {right}"),
            None,
        ))
        .await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the right password learns nothing while locked out"
    );
    let text = logs.text();
    assert_eq!(
        text.matches(" WARN ").count(),
        1,
        "one WARN line per lockout: {text}"
    );
    assert!(
        text.contains("repeated failed admin logins") && text.contains("retry_after_secs"),
        "{text}"
    );
    assert_eq!(
        text.matches("INFO shop: failed admin login").count(),
        5,
        "{text}"
    );

    // Another client is not locked out; a code with `/` is addressed percent-encoded.
    let other = Some("127.0.0.2:50000");
    shop.carts
        .create_discount(axum_cart::NewDiscount::percent("HALF/OFF", 50.into()))
        .await
        .unwrap();
    let auth = format!("Basic {right}");
    let page = b
        .send(admin_req("GET", "/admin/discounts", &auth, other))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("action=\"/admin/discounts/HALF%2FOFF/deactivate\""),
        "{}",
        page.body
    );
    let page = b
        .send(admin_req(
            "POST",
            "/admin/discounts/HALF%2FOFF/deactivate",
            &auth,
            other,
        ))
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(
        !shop
            .carts
            .discount("HALF/OFF")
            .await
            .unwrap()
            .unwrap()
            .active
    );
    let page = b
        .send(admin_req(
            "GET",
            "/admin/discounts/HALF%2FOFF",
            &auth,
            other,
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("action=\"/admin/discounts/HALF%2FOFF/activate\""),
        "{}",
        page.body
    );
    let page = b
        .send(admin_req(
            "POST",
            "/admin/discounts/HALF%2FOFF/activate",
            &auth,
            other,
        ))
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(
        shop.carts
            .discount("HALF/OFF")
            .await
            .unwrap()
            .unwrap()
            .active
    );
}

#[tokio::test]
async fn the_docs_page_links_the_openapi_document_the_shop_serves() {
    let db = temp_db("docs");
    let (router, _shop) = app(settings(&db)).await.unwrap();
    let mut b = Browser::new(&router);
    let home = b.get("/").await;
    assert!(home
        .body
        .contains(r#"<a href="/docs" id="docs-link">API</a>"#));
    let docs = b.get("/docs").await;
    assert_eq!(docs.status, StatusCode::OK);
    assert!(docs
        .body
        .contains(r#"<a id="openapi" href="/cart/openapi.json">"#));
    let doc = b.json("/cart/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/cart/add/{kind}/{id}"]["post"].is_object());
}

#[tokio::test]
async fn discount_attempts_follow_the_setting() {
    let db = temp_db("attempts");
    let (router, _shop) = app(Settings {
        discount_attempts: 2,
        events: shop::EventSettings::default(),
        ..settings(&db)
    })
    .await
    .unwrap();
    let mut b = Browser::new(&router);
    assert_eq!(
        b.post("/cart/add/book/1", "quantity=1").await.status,
        StatusCode::SEE_OTHER
    );
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(b.post("/cart/discount", "code=WRONG").await.status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // 0 turns the limit off.
    let db = temp_db("attempts-off");
    let (router, _shop) = app(Settings {
        discount_attempts: 0,
        events: shop::EventSettings::default(),
        ..settings(&db)
    })
    .await
    .unwrap();
    let mut b = Browser::new(&router);
    b.post("/cart/add/book/1", "quantity=1").await;
    for _ in 0..20 {
        let page = b.post("/cart/discount", "code=WRONG").await;
        assert_ne!(page.status, StatusCode::TOO_MANY_REQUESTS);
    }
}
