//! Faults at the seams, over HTTP against the real router on every backend: concurrent
//! requests of one session (tower-sessions, the signed cookie, a custom adapter), a login
//! racing adds, a session store that fails or hangs, a checkout racing adds, a repeated
//! checkout, and a login over another user's session.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use axum_cart::{
    async_trait, Cart, CartError, CartLayer, CartRouter, Carts, MemorySession, MergeStrategy,
    SignedCookieConfig,
};
use axum_cart::{BoxError, Catalog, Product};
use common::{Harness, TestCatalog};
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_cookies::Key;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::{MemoryStore, Session, SessionManagerLayer};

backend_tests!(
    concurrent_adds_of_one_session_share_one_cart,
    a_login_racing_adds_keeps_every_unit_in_the_users_cart,
    a_failed_session_write_is_a_503_and_leaves_no_row,
    checkout_racing_adds_is_never_a_server_error,
    a_repeated_checkout_gets_the_order_back,
    logging_in_never_hands_one_users_cart_to_another,
    a_login_merge_keeps_lines_the_catalogue_does_not_know,
    clients_that_hang_up_mid_write_leave_every_later_write_working,
);

// ---- the app ------------------------------------------------------------------------------

/// A session store that can be made to fail writes, or to hang, like a Redis that went
/// away: the real `MemoryStore` behind a switch.
#[derive(Debug, Clone, Default)]
struct FlakyStore {
    inner: MemoryStore,
    fail_writes: Arc<AtomicBool>,
    hang: Arc<AtomicBool>,
}

impl FlakyStore {
    async fn gate(&self, write: bool) -> session_store::Result<()> {
        if self.hang.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        if write && self.fail_writes.load(Ordering::SeqCst) {
            return Err(session_store::Error::Backend(
                "READONLY You can't write against a read only replica.".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl SessionStore for FlakyStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.gate(true).await?;
        self.inner.create(record).await
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.gate(true).await?;
        self.inner.save(record).await
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.gate(false).await?;
        self.inner.load(id).await
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.gate(true).await?;
        self.inner.delete(id).await
    }
}

/// Puts something in the session (an earlier visit, a consent banner, …) without a cart.
async fn hello(session: Session) -> Result<&'static str, StatusCode> {
    session
        .insert("seen", true)
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    Ok("hello")
}

/// The login flow of an app on tower-sessions (and axum-login): a new session id, then the
/// cart follows the user.
async fn login(
    session: Session,
    Path(user): Path<String>,
    mut cart: Cart,
) -> Result<String, CartError> {
    session
        .cycle_id()
        .await
        .map_err(|e| CartError::SessionUnavailable(e.into()))?;
    session
        .insert("user", &user)
        .await
        .map_err(|e| CartError::SessionUnavailable(e.into()))?;
    let report = cart.login(&user, MergeStrategy::Add).await?;
    Ok(format!("{}", report.merged))
}

/// A login for adapters without a session id to cycle.
async fn plain_login(Path(user): Path<String>, mut cart: Cart) -> Result<String, CartError> {
    let report = cart.login(&user, MergeStrategy::Add).await?;
    Ok(format!("{}", report.merged))
}

fn carts(h: &Harness) -> Carts {
    h.builder()
        .catalog(TestCatalog::default())
        .max_quantity_per_item(100_000)
        .build()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Adapter {
    TowerSessions,
    SignedCookie,
    Custom,
}

const ADAPTERS: [Adapter; 3] = [
    Adapter::TowerSessions,
    Adapter::SignedCookie,
    Adapter::Custom,
];

fn app(carts: &Carts, adapter: Adapter, store: &FlakyStore) -> Router {
    let routes = CartRouter::new().build().layer(common::problems_checked());
    match adapter {
        Adapter::TowerSessions => routes
            .route("/hello", get(hello))
            .route("/login/{user}", post(login))
            .layer(CartLayer::new(carts.clone()).session_timeout(Duration::from_secs(1)))
            .layer(SessionManagerLayer::new(store.clone()).with_secure(false)),
        Adapter::SignedCookie => routes.route("/login/{user}", post(plain_login)).layer(
            CartLayer::new(carts.clone())
                .with_signed_cookie(SignedCookieConfig::new(Key::generate()).secure(false)),
        ),
        Adapter::Custom => {
            // One in-memory session per `x-visitor` header: an app's own session store.
            let sessions: Arc<Mutex<BTreeMap<String, MemorySession>>> = Arc::default();
            routes.route("/login/{user}", post(plain_login)).layer(
                CartLayer::new(carts.clone()).with_adapter(move |parts| {
                    let visitor = parts
                        .headers
                        .get("x-visitor")
                        .and_then(|v| v.to_str().ok())
                        .ok_or("no x-visitor header")?
                        .to_owned();
                    let mut map = sessions.lock().map_err(|_| "poisoned")?;
                    Ok(map.entry(visitor).or_default().clone())
                }),
            )
        }
    }
}

// ---- a client whose requests can run at once -----------------------------------------------

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    retry_after: Option<String>,
    content_type: String,
    set_cookies: Vec<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A browser: a cookie jar (and, for the custom adapter, its visitor header).
#[derive(Clone)]
struct Visitor {
    app: Router,
    visitor: String,
    jar: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Visitor {
    fn new(app: &Router, name: &str) -> Visitor {
        Visitor {
            app: app.clone(),
            visitor: name.to_owned(),
            jar: Arc::default(),
        }
    }

    fn cookie(&self) -> String {
        self.jar
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Sends a request with the cookies the jar holds now, and keeps what the answer sets
    /// (in the order answers arrive, as a browser does).
    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.send_with(method, path, body, &self.cookie()).await
    }

    async fn send_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        cookie: &str,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::ACCEPT, "application/json")
            .header("x-visitor", &self.visitor);
        if !cookie.is_empty() {
            req = req.header(header::COOKIE, cookie);
        }
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let res = self
            .app
            .clone()
            .oneshot(req.body(body).expect("request"))
            .await
            .expect("infallible");
        let set_cookies: Vec<String> = res
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .collect();
        {
            let mut jar = self.jar.lock().unwrap();
            for set in &set_cookies {
                let pair = set.split(';').next().unwrap_or_default();
                let Some((name, value)) = pair.split_once('=') else {
                    continue;
                };
                if set.contains("Max-Age=0") {
                    jar.remove(name);
                } else {
                    jar.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        let status = res.status();
        let (retry_after, content_type) = {
            let header_text = |name| {
                res.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            (
                header_text(header::RETRY_AFTER),
                header_text(header::CONTENT_TYPE).unwrap_or_default(),
            )
        };
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("body");
        Reply {
            status,
            retry_after,
            content_type,
            set_cookies,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn add(&self, path: &str, quantity: i64) -> Reply {
        self.send("POST", path, Some(json!({ "quantity": quantity })))
            .await
    }

    async fn cart(&self) -> Value {
        let reply = self.send("GET", "/cart", None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.json()
    }

    /// `n` adds of one unit at once, all with the cookies the jar holds now.
    async fn racing_adds(&self, n: usize, path: &str) -> Vec<Reply> {
        let cookie = self.cookie();
        let mut tasks = Vec::new();
        for _ in 0..n {
            let me = self.clone();
            let cookie = cookie.clone();
            let path = path.to_owned();
            tasks.push(tokio::spawn(async move {
                me.send_with("POST", &path, Some(json!({"quantity": 1})), &cookie)
                    .await
            }));
        }
        let mut replies = Vec::new();
        for t in tasks {
            replies.push(t.await.expect("task"));
        }
        replies
    }
}

fn acknowledged(replies: &[Reply]) -> i64 {
    replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count() as i64
}

/// Open carts holding at least one line.
async fn open_carts_with_lines(h: &Harness) -> i64 {
    h.raw
        .count(
            "SELECT COUNT(*) FROM cart_carts c WHERE NOT c.checked_out \
             AND EXISTS (SELECT 1 FROM cart_items i WHERE i.cart_id = c.id)",
        )
        .await
}

// ---- 3. concurrent requests of one session share one cart ----------------------------------

async fn concurrent_adds_of_one_session_share_one_cart(h: Harness) {
    let carts = carts(&h);
    for adapter in ADAPTERS {
        let app = app(&carts, adapter, &FlakyStore::default());
        let visitor = Visitor::new(&app, &format!("{adapter:?}"));
        let before = open_carts_with_lines(&h).await;

        // A first cart: the visitor has a session (an earlier visit stored something in it)
        // but no cart yet, and fires 20 adds at once. A signed cookie has no session before
        // its first cart, so its racing requests are separate visitors: skipped there.
        if adapter != Adapter::SignedCookie {
            if adapter == Adapter::TowerSessions {
                assert_eq!(visitor.send("GET", "/hello", None).await.status, 200);
            }
            let replies = visitor.racing_adds(20, "/cart/add/book/1").await;
            assert_eq!(acknowledged(&replies), 20, "{adapter:?}: {replies:?}");
            assert_eq!(
                visitor.cart().await["count"],
                20,
                "{adapter:?}: every acknowledged unit is in the session's cart"
            );
            assert_eq!(
                open_carts_with_lines(&h).await,
                before + 1,
                "{adapter:?}: one cart, no orphans"
            );
        } else {
            assert_eq!(visitor.add("/cart/add/book/1", 20).await.status, 200);
        }

        // After a checkout: 20 adds at once all land in the session's next cart.
        let order = visitor.send("POST", "/cart/checkout", None).await;
        assert_eq!(order.status, StatusCode::OK, "{}", order.body);
        assert_eq!(order.json()["count"], 20);
        let replies = visitor.racing_adds(20, "/cart/add/coffee/2").await;
        assert_eq!(acknowledged(&replies), 20, "{adapter:?}: {replies:?}");
        let cart = visitor.cart().await;
        assert_eq!(cart["count"], 20, "{adapter:?}: {cart}");
        assert_eq!(cart["checked_out"], false);
        assert_eq!(
            open_carts_with_lines(&h).await,
            before + 1,
            "{adapter:?}: the next cart is one cart, no orphans"
        );
        println!(
            "{} {adapter:?}: 20 + 20 racing adds, all in the session's cart",
            h.backend
        );
    }
}

async fn a_login_racing_adds_keeps_every_unit_in_the_users_cart(h: Harness) {
    let carts = carts(&h);
    for adapter in ADAPTERS {
        for round in 0..3 {
            let store = FlakyStore::default();
            let app = app(&carts, adapter, &store);
            let user = format!("{adapter:?}-user-{round}");
            // The user's cart from an earlier visit on another device.
            let earlier = Visitor::new(&app, &format!("{user}-laptop"));
            assert_eq!(earlier.add("/cart/add/book/3", 1).await.status, 200);
            let merged = earlier.send("POST", &format!("/login/{user}"), None).await;
            assert_eq!(merged.status, StatusCode::OK, "{}", merged.body);

            // A guest with a cart logs in while 20 adds are in flight.
            let guest = Visitor::new(&app, &format!("{user}-phone"));
            assert_eq!(guest.add("/cart/add/book/4", 1).await.status, 200);
            let cookie = guest.cookie();
            let login = {
                let guest = guest.clone();
                let cookie = cookie.clone();
                let user = user.clone();
                tokio::spawn(async move {
                    guest
                        .send_with("POST", &format!("/login/{user}"), None, &cookie)
                        .await
                })
            };
            let replies = guest.racing_adds(20, "/cart/add/coffee/5").await;
            let login = login.await.expect("login task");
            assert_eq!(login.status, StatusCode::OK, "{}", login.body);
            let acked = acknowledged(&replies);
            assert_eq!(acked, 20, "{adapter:?}: {replies:?}");

            let users = carts.active_user_carts(&user).await.unwrap();
            assert_eq!(users.len(), 1, "{adapter:?}: one cart for the user");
            assert_eq!(
                users[0].item_count,
                2 + acked,
                "{adapter:?} round {round}: the user's cart holds both carts and every \
                 acknowledged add"
            );
            assert_eq!(
                guest.cart().await["count"],
                2 + acked,
                "{adapter:?}: the session shows it"
            );
        }
        println!(
            "{} {adapter:?}: 3 rounds of a login racing 20 adds, all in the user's cart",
            h.backend
        );
    }
}

// ---- 1 and 2. a session store that fails or goes away ----------------------------------------

async fn a_failed_session_write_is_a_503_and_leaves_no_row(h: Harness) {
    let carts = carts(&h);
    let store = FlakyStore::default();
    let app = app(&carts, Adapter::TowerSessions, &store);
    let rows = || h.raw.count("SELECT COUNT(*) FROM cart_carts");

    // A returning visitor with a cart keeps working while writes fail: adds to an existing
    // cart write nothing to the session.
    let regular = Visitor::new(&app, "regular");
    assert_eq!(regular.add("/cart/add/book/1", 1).await.status, 200);
    let before = rows().await;

    store.fail_writes.store(true, Ordering::SeqCst);
    let newcomer = Visitor::new(&app, "newcomer");
    for path in ["/cart/add/book/2", "/cart/discount"] {
        let body = if path == "/cart/discount" {
            json!({"code": "NOPE"})
        } else {
            json!({"quantity": 1})
        };
        let reply = newcomer.send("POST", path, Some(body)).await;
        if path == "/cart/discount" {
            // Refused before any row is needed.
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}",
                reply.body
            );
            continue;
        }
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.body
        );
        assert_eq!(reply.content_type, "application/problem+json");
        assert_eq!(
            reply.json()["code"],
            "session_unavailable",
            "{}",
            reply.body
        );
        assert_eq!(reply.retry_after.as_deref(), Some("5"));
        assert!(
            reply.set_cookies.is_empty(),
            "no session cookie for a failed save"
        );
    }
    assert_eq!(
        rows().await,
        before,
        "no cart row that no session points to"
    );
    assert_eq!(regular.add("/cart/add/book/1", 1).await.status, 200);
    assert_eq!(regular.cart().await["count"], 2);

    // Writes work again: the newcomer's add goes through.
    store.fail_writes.store(false, Ordering::SeqCst);
    assert_eq!(newcomer.add("/cart/add/book/2", 1).await.status, 200);
    assert_eq!(newcomer.cart().await["count"], 1);
    assert_eq!(rows().await, before + 1);

    // A store that hangs: the cart's session calls give up after the layer's timeout (1 s
    // here) with 503 and Retry-After, instead of hanging the request.
    store.hang.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let reply = Visitor::new(&app, "late")
        .send_with("POST", "/cart/add/book/1", None, &newcomer.cookie())
        .await;
    let waited = started.elapsed();
    store.hang.store(false, Ordering::SeqCst);
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    assert_eq!(reply.json()["code"], "session_unavailable");
    assert_eq!(reply.retry_after.as_deref(), Some("5"));
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");
    assert_eq!(
        newcomer.cart().await["count"],
        1,
        "back once the store answers"
    );
    println!(
        "{}: failed session save -> 503, {} rows before and after; hanging store -> 503 after {waited:?}",
        h.backend, before
    );
}

// ---- 4. checkout racing changes ----------------------------------------------------------------

async fn checkout_racing_adds_is_never_a_server_error(h: Harness) {
    let carts = carts(&h);
    let app = app(&carts, Adapter::TowerSessions, &FlakyStore::default());
    let mut before_checkout = 0;
    for round in 0..10 {
        let visitor = Visitor::new(&app, "racer");
        assert_eq!(visitor.add("/cart/add/book/1", 5).await.status, 200);
        let cookie = visitor.cookie();
        let checkout = {
            let visitor = visitor.clone();
            let cookie = cookie.clone();
            tokio::spawn(async move {
                visitor
                    .send_with("POST", "/cart/checkout", None, &cookie)
                    .await
            })
        };
        let replies = visitor.racing_adds(30, "/cart/add/book/2").await;
        let checkout = checkout.await.expect("checkout task");
        assert_eq!(
            checkout.status,
            StatusCode::OK,
            "round {round}: {}",
            checkout.body
        );
        let order = checkout.json();
        assert_eq!(order["checked_out"], true);
        for r in &replies {
            assert_eq!(r.status, StatusCode::OK, "round {round}: {}", r.body);
        }
        // The checkout took the cart as it was when it locked it; the adds after it are in
        // the session's next cart. Nothing is lost or counted twice.
        let ordered = order["count"].as_i64().expect("count");
        let next = visitor.cart().await["count"].as_i64().expect("count");
        assert_eq!(ordered + next, 5 + 30, "round {round}: {order}");
        let rows: i64 = order["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["quantity"].as_i64().unwrap_or(0))
            .sum();
        assert_eq!(rows, ordered, "the order's figures are its lines'");
        if ordered > 5 {
            before_checkout += 1;
        }
    }
    println!(
        "{}: 10 rounds of a checkout racing 30 adds, no 5xx; adds made it into {before_checkout} orders",
        h.backend
    );
}

// ---- 5. a repeated checkout -------------------------------------------------------------------

async fn a_repeated_checkout_gets_the_order_back(h: Harness) {
    let carts = carts(&h);
    for adapter in ADAPTERS {
        let app = app(&carts, adapter, &FlakyStore::default());
        let visitor = Visitor::new(&app, &format!("{adapter:?}"));
        assert_eq!(visitor.add("/cart/add/book/7", 2).await.status, 200);
        let closed = || {
            h.raw
                .count("SELECT COUNT(*) FROM cart_carts WHERE checked_out")
        };
        let closed_before = closed().await;

        // A double submit: two checkouts at once.
        let cookie = visitor.cookie();
        let (a, b) = tokio::join!(
            visitor.send_with("POST", "/cart/checkout", None, &cookie),
            visitor.send_with("POST", "/cart/checkout", None, &cookie),
        );
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(b.status, StatusCode::OK, "{}", b.body);
        assert_eq!(a.json(), b.json(), "{adapter:?}: the same order twice");
        assert_eq!(a.json()["checked_out"], true);
        assert_eq!(a.json()["count"], 2);

        // A retry after a lost answer: the same order again, nothing placed twice.
        let retry = visitor.send("POST", "/cart/checkout", None).await;
        assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);
        assert_eq!(retry.json(), a.json(), "{adapter:?}");
        assert_eq!(
            closed().await,
            closed_before + 1,
            "{adapter:?}: one order placed"
        );
        // The cart page shows a fresh cart, and the next add starts it.
        assert_eq!(visitor.cart().await["count"], 0);
        assert_eq!(visitor.add("/cart/add/book/8", 1).await.status, 200);
        let next = visitor.send("POST", "/cart/checkout", None).await;
        assert_eq!(
            next.json()["count"],
            1,
            "{adapter:?}: the next cart's own order"
        );
    }

    // Outside the replay window a repeated checkout is an empty cart again.
    let carts = h
        .builder()
        .catalog(TestCatalog::default())
        .checkout_replay_window(time::Duration::ZERO)
        .build();
    let app = app(&carts, Adapter::TowerSessions, &FlakyStore::default());
    let visitor = Visitor::new(&app, "late");
    visitor.add("/cart/add/book/7", 1).await;
    assert_eq!(
        visitor.send("POST", "/cart/checkout", None).await.status,
        200
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = visitor.send("POST", "/cart/checkout", None).await;
    assert_eq!(
        again.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        again.body
    );
    assert_eq!(again.json()["code"], "empty_cart");
}

// ---- 6. a login over another user's session ---------------------------------------------------

async fn logging_in_never_hands_one_users_cart_to_another(h: Harness) {
    let carts = carts(&h);
    for adapter in ADAPTERS {
        let app = app(&carts, adapter, &FlakyStore::default());
        let alice = format!("alice-{adapter:?}");
        let bob = format!("bob-{adapter:?}");
        // Bob has a cart of his own from another device.
        let bobs_laptop = Visitor::new(&app, &format!("{bob}-laptop"));
        bobs_laptop.add("/cart/add/book/9", 4).await;
        assert_eq!(
            bobs_laptop
                .send("POST", &format!("/login/{bob}"), None)
                .await
                .status,
            200
        );

        // Alice logs in on a shared computer and fills her cart.
        let shared = Visitor::new(&app, &format!("{adapter:?}-kiosk"));
        shared.add("/cart/add/book/1", 1).await;
        assert_eq!(
            shared
                .send("POST", &format!("/login/{alice}"), None)
                .await
                .status,
            200
        );
        shared.add("/cart/add/book/2", 2).await;
        // Bob logs in on the same session without logging Alice out.
        let reply = shared.send("POST", &format!("/login/{bob}"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

        let alices = carts.active_user_carts(&alice).await.unwrap();
        assert_eq!(alices.len(), 1, "{adapter:?}");
        assert_eq!(
            alices[0].item_count, 3,
            "{adapter:?}: Alice's cart untouched"
        );
        let bobs = carts.active_user_carts(&bob).await.unwrap();
        assert_eq!(bobs.len(), 1, "{adapter:?}");
        assert_eq!(
            bobs[0].item_count, 4,
            "{adapter:?}: nothing of Alice's in Bob's cart"
        );
        let seen = shared.cart().await;
        assert_eq!(
            seen["count"], 4,
            "{adapter:?}: the session shows Bob's cart: {seen}"
        );

        // Bob's next add goes to Bob's cart; Alice's stays as it was.
        shared.add("/cart/add/book/5", 1).await;
        assert_eq!(
            carts.active_user_carts(&bob).await.unwrap()[0].item_count,
            5
        );
        assert_eq!(
            carts.active_user_carts(&alice).await.unwrap()[0].item_count,
            3
        );

        // Carol, with no cart, logging in over Bob's session starts her own, empty cart.
        let carol = format!("carol-{adapter:?}");
        shared.send("POST", &format!("/login/{carol}"), None).await;
        assert_eq!(shared.cart().await["count"], 0, "{adapter:?}");
        shared.add("/cart/add/book/6", 1).await;
        assert_eq!(
            carts.active_user_carts(&carol).await.unwrap()[0].item_count,
            1
        );
        assert_eq!(
            carts.active_user_carts(&bob).await.unwrap()[0].item_count,
            5
        );
    }

    // A checked-out cart is never bound to anyone.
    let mut cart = carts.new_cart();
    cart.add(&common::p("book", 1), common::d("11.00"), 1)
        .await
        .unwrap();
    cart.checkout().await.unwrap();
    assert!(matches!(
        cart.bind_to_user(Some("mallory")).await,
        Err(CartError::CheckedOut)
    ));
    assert_eq!(carts.user_carts("mallory").await.unwrap().len(), 0);
}

// ---- 7. a merge on a process whose catalogue misses products ---------------------------------

/// The test catalogue as a process that started before seeding finished sees it: books
/// above 50 are missing.
#[derive(Clone, Default)]
struct HalfCatalog(TestCatalog);

#[async_trait]
impl Catalog for HalfCatalog {
    async fn products(&self, kind: &str, ids: &[i64]) -> Result<Vec<Arc<dyn Product>>, BoxError> {
        let known: Vec<i64> = ids.iter().copied().filter(|id| *id <= 50).collect();
        self.0.products(kind, &known).await
    }
}

async fn a_login_merge_keeps_lines_the_catalogue_does_not_know(h: Harness) {
    let full = carts(&h);
    let half = h.builder().catalog(HalfCatalog::default()).build();
    let store = FlakyStore::default();
    // Two app servers on one database and one session store; the second one's catalogue
    // is incomplete.
    let server_a = app(&full, Adapter::TowerSessions, &store);
    let server_b = app(&half, Adapter::TowerSessions, &store);

    let earlier = Visitor::new(&server_a, "earlier");
    earlier.add("/cart/add/book/1", 1).await;
    earlier.send("POST", "/login/dora", None).await;

    let guest = Visitor::new(&server_a, "guest");
    assert_eq!(guest.add("/cart/add/book/2", 1).await.status, 200);
    assert_eq!(guest.add("/cart/add/book/77", 3).await.status, 200);
    // The login lands on server B.
    let on_b = Visitor {
        app: server_b.clone(),
        ..guest.clone()
    };
    let reply = on_b.send("POST", "/login/dora", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, "2", "both guest lines merged");

    let users = full.active_user_carts("dora").await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].line_count, 3, "book 77 kept, not dropped");
    assert_eq!(users[0].item_count, 5);
    assert_eq!(guest.cart().await["count"], 5);
}

/// A database that refuses new connections (MySQL's "too many connections" 1040, or the
/// user's connection limit 1203) is "unavailable" (503 with Retry-After over HTTP), not an
/// internal error.
#[cfg(feature = "mysql")]
#[tokio::test]
#[cfg_attr(not(cart_test_mysql), ignore = "CART_TEST_MYSQL_URL is not set")]
async fn mysql_refusing_connections_is_unavailable() {
    let url = std::env::var("CART_TEST_MYSQL_URL").expect("CART_TEST_MYSQL_URL");
    let admin = sqlx::MySqlPool::connect(&url).await.expect("connect");
    let user = format!("cart_limit_{}", std::process::id());
    for sql in [
        format!("DROP USER IF EXISTS '{user}'@'%'"),
        format!("CREATE USER '{user}'@'%' WITH MAX_USER_CONNECTIONS 1"),
        format!("GRANT ALL ON test.* TO '{user}'@'%'"),
    ] {
        sqlx::query(&sql)
            .execute(&admin)
            .await
            .expect("create the user");
    }
    let as_user = url.replacen("://root@", &format!("://{user}@"), 1);
    assert_ne!(as_user, url, "CART_TEST_MYSQL_URL names the user root");
    let held = sqlx::MySqlPool::connect(&as_user)
        .await
        .expect("the one connection");
    let err = axum_cart::Store::connect(&as_user)
        .await
        .expect_err("the user has no connection left");
    println!("mysql: a refused connection gives {:?} ({err})", err.code());
    held.close().await;
    let _ = sqlx::query(&format!("DROP USER '{user}'@'%'"))
        .execute(&admin)
        .await;
    assert!(matches!(&err, CartError::Unavailable(_)), "{err:?}");
    assert_eq!(axum_cart::http_status(&err).as_u16(), 503, "{err:?}");
}

/// Clients that hang up while their change is being written (wrk stopping, a browser tab
/// closed): hyper then drops the request's future wherever it is, the `BEGIN` of its
/// transaction included. sqlx's `begin` is not cancel-safe: a future dropped during that
/// round trip handed the connection back to the pool inside a transaction nothing ended,
/// and on SQLite's one writer every later write failed (`attempted to call begin_with at
/// non-zero transaction depth`, 500) until the process restarted.
async fn clients_that_hang_up_mid_write_leave_every_later_write_working(h: Harness) {
    let carts = carts(&h);
    let app = app(&carts, Adapter::TowerSessions, &FlakyStore::default());
    let visitor = Visitor::new(&app, "hangs-up");
    assert_eq!(visitor.add("/cart/add/book/1", 1).await.status, 200);
    let cookie = visitor.cookie();
    // Requests cut off after 0 µs to 3 ms, many at once, in waves: some of them in every
    // step of the add (the `BEGIN`, the upsert, the event, the `COMMIT`).
    for wave in 0..60u64 {
        let mut cut = Vec::new();
        for i in 0..8u64 {
            let app = app.clone();
            let cookie = cookie.clone();
            cut.push(tokio::spawn(async move {
                let req = Request::post("/cart/add/book/2")
                    .header(header::COOKIE, cookie)
                    .header(header::ACCEPT, "application/json")
                    .body(Body::empty())
                    .expect("request");
                let after = Duration::from_micros((wave * 8 + i) * 50 % 3000);
                let _ = tokio::time::timeout(after, app.oneshot(req)).await;
            }));
        }
        for c in cut {
            c.await.expect("task");
        }
    }
    // Every write after them works: the same visitor, a new one, a checkout.
    let later = visitor.add("/cart/add/book/3", 1).await;
    assert_eq!(later.status, 200, "{}: {}", h.backend, later.body);
    let other = Visitor::new(&app, "after");
    let first = other.add("/cart/add/book/1", 2).await;
    assert_eq!(first.status, 200, "{}: {}", h.backend, first.body);
    let order = visitor.send("POST", "/cart/checkout", None).await;
    assert_eq!(
        order.status,
        StatusCode::OK,
        "{}: {}",
        h.backend,
        order.body
    );
}
