//! `Idempotency-Key` on the cart routes, on every backend, over real HTTP (a server on a
//! local port, a client with a cookie jar): a repeat gets the stored answer with
//! `Idempotent-Replayed: true` and changes nothing, the key of another request is 422, a
//! repeat while the first runs is 409, one visitor's key never answers another's request,
//! and 100 concurrent requests with one key change the cart once.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum_cart::{async_trait, BoxError, CartLayer, CartRouter, Carts, Catalog, Order, Product};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower_sessions::{MemoryStore, SessionManagerLayer};

use common::{Harness, TestCatalog};

backend_tests!(
    the_same_key_twice_after_a_success_replays_the_answer,
    a_first_request_without_a_session_is_replayed_to_its_session,
    html_forms_replay_their_redirect,
    a_repeat_while_the_first_request_runs_is_409,
    the_same_key_for_another_request_is_422,
    another_visitors_key_is_its_own,
    a_hundred_concurrent_requests_with_one_key_change_the_cart_once,
    invalid_keys_are_400_and_change_nothing,
    a_server_error_is_not_stored,
    an_applied_change_whose_answer_was_lost_is_not_applied_again,
    a_stopped_request_that_applied_nothing_is_taken_over,
    a_keyed_checkout_places_one_order,
    every_change_route_takes_a_key,
    expired_keys_are_cleaned_in_batches,
    a_request_dropped_half_way_gives_its_key_up,
);

// ---- the server ----------------------------------------------------------------------------

/// The test catalogue, where `book` 99 waits for a permit of `gate` and `book` 98 fails while
/// `failing` is set.
#[derive(Clone)]
struct Gated {
    inner: TestCatalog,
    gate: Arc<Semaphore>,
    failing: Arc<AtomicBool>,
}

#[async_trait]
impl Catalog for Gated {
    async fn products(&self, kind: &str, ids: &[i64]) -> Result<Vec<Arc<dyn Product>>, BoxError> {
        if kind == "book" && ids.contains(&99) {
            drop(self.gate.acquire().await?);
        }
        if kind == "book" && ids.contains(&98) && self.failing.load(Ordering::SeqCst) {
            return Err("the catalogue is down".into());
        }
        self.inner.products(kind, ids).await
    }
}

struct Server {
    addr: SocketAddr,
    /// The app itself, for requests made without a connection.
    app: axum::Router,
    carts: Carts,
    gate: Arc<Semaphore>,
    failing: Arc<AtomicBool>,
    orders: Arc<std::sync::Mutex<Vec<Order>>>,
    relay: axum_cart::Relay,
}

impl Server {
    async fn start(h: &Harness) -> Server {
        Server::with(h, CartRouter::new()).await
    }

    async fn with(h: &Harness, router: CartRouter) -> Server {
        Server::serve(h, router, false).await
    }

    /// With the cart id in a signed cookie instead of a server-side session.
    #[cfg(feature = "signed-cookie")]
    async fn signed(h: &Harness) -> Server {
        Server::serve(h, CartRouter::new(), true).await
    }

    async fn serve(h: &Harness, router: CartRouter, signed: bool) -> Server {
        let gate = Arc::new(Semaphore::new(0));
        let failing = Arc::new(AtomicBool::new(false));
        let catalog = Gated {
            inner: TestCatalog::default(),
            gate: gate.clone(),
            failing: failing.clone(),
        };
        let carts = h.builder().catalog(catalog).build();
        let orders = Arc::new(std::sync::Mutex::new(Vec::new()));
        let placed = orders.clone();
        // The order hook runs from the outbox's orders lane, through a relay.
        let relay = axum_cart::Relay::new(&carts).on_checkout(move |order: Order| {
            let placed = placed.clone();
            async move {
                placed.lock().map_err(|_| "poisoned")?.push(order);
                Ok(())
            }
        });
        let app = router.build().layer(common::problems_checked());
        let layer = CartLayer::new(carts.clone());
        let app = match signed {
            #[cfg(feature = "signed-cookie")]
            true => app.layer(layer.with_signed_cookie(axum_cart::SignedCookieConfig::new(
                tower_cookies::Key::generate(),
            ))),
            _ => app
                .layer(layer)
                .layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false)),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let served = app.clone();
        tokio::spawn(async move {
            axum::serve(listener, served).await.expect("serve");
        });
        Server {
            addr,
            app,
            carts,
            gate,
            failing,
            orders,
            relay,
        }
    }
}

// ---- the client ----------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    fn replayed(&self) -> bool {
        self.header("idempotent-replayed") == Some("true")
    }

    /// A problem answer with this status and code.
    fn problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.body
        );
        assert_eq!(self.json()["code"], code, "{}", self.body);
    }
}

/// A visitor: a cookie jar, shared by clones (for concurrent requests).
#[derive(Clone, Default)]
struct Client {
    cookies: Arc<std::sync::Mutex<BTreeMap<String, String>>>,
}

impl Client {
    /// One HTTP/1.1 request on a fresh connection; JSON unless `headers` says otherwise.
    async fn send(
        &self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let jar = {
            let cookies = self.cookies.lock().unwrap();
            cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        let given = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if !given("accept") {
            head.push_str("Accept: application/json\r\n");
        }
        if !given("content-type") && !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        if !jar.is_empty() {
            head.push_str(&format!("Cookie: {jar}\r\n"));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(body);
        let exchange = async {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            stream.write_all(head.as_bytes()).await.expect("write");
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await.expect("read");
            raw
        };
        let raw = tokio::time::timeout(std::time::Duration::from_secs(60), exchange)
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: no answer within a minute"));
        let answer = parse(&raw);
        let mut cookies = self.cookies.lock().unwrap();
        for (k, v) in &answer.headers {
            if k.eq_ignore_ascii_case("set-cookie") {
                let pair = v.split(';').next().unwrap_or("");
                if let Some((name, value)) = pair.split_once('=') {
                    cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        answer
    }

    async fn post(&self, addr: SocketAddr, path: &str, key: Option<&str>, body: &str) -> Answer {
        let headers: Vec<(&str, &str)> = key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
        self.send(addr, "POST", path, &headers, body).await
    }

    async fn cart(&self, addr: SocketAddr) -> Value {
        let res = self.send(addr, "GET", "/cart", &[], "").await;
        assert_eq!(res.status, 200, "{}", res.body);
        res.json()
    }

    /// The quantity of `book` `id` in the visitor's cart (0 without a line).
    async fn books(&self, addr: SocketAddr, id: i64) -> i64 {
        quantity(&self.cart(addr).await, id)
    }
}

fn quantity(cart: &Value, id: i64) -> i64 {
    cart["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["kind"] == "book" && i["id"] == id)
        .map(|i| i["quantity"].as_i64().expect("a quantity"))
        .sum()
}

fn parse(raw: &[u8]) -> Answer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("the end of the headers");
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let end = rest.windows(2).position(|w| w == b"\r\n").expect("a chunk");
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..end]).trim(), 16)
                .expect("a chunk size");
            rest = &rest[end + 2..];
            if size == 0 {
                break;
            }
            body.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body
    } else {
        rest.to_vec()
    };
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

const ADD: &str = "/cart/add/book/1";

// ---- the tests -----------------------------------------------------------------------------

async fn the_same_key_twice_after_a_success_replays_the_answer(h: Harness) {
    let server = Server::start(&h).await;
    let addr = server.addr;
    let visitor = Client::default();
    // The visitor has a session already (its first request is another test's matter).
    visitor.post(addr, "/cart/add/book/7", None, "{}").await;

    let first = visitor
        .post(addr, ADD, Some("k-1"), r#"{"quantity": 2}"#)
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(!first.replayed(), "the first answer is not a replay");
    assert_eq!(quantity(&first.json(), 1), 2);

    let again = visitor
        .post(addr, ADD, Some("k-1"), r#"{"quantity": 2}"#)
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.replayed(), "{:?}", again.headers);
    assert_eq!(again.body, first.body, "the stored answer, byte for byte");
    assert_eq!(again.header("etag"), first.header("etag"));
    assert_eq!(again.header("content-type"), first.header("content-type"));
    assert_eq!(again.header("cache-control"), Some("no-store"));
    assert_eq!(
        visitor.books(addr, 1).await,
        2,
        "{}: changed once",
        h.backend
    );
    let version = visitor.cart(addr).await["version"].clone();

    // A third time, and after another change: still the first answer, nothing changed.
    visitor.post(addr, "/cart/add/book/8", None, "{}").await;
    let third = visitor
        .post(addr, ADD, Some("k-1"), r#"{"quantity": 2}"#)
        .await;
    assert!(third.replayed());
    assert_eq!(third.body, first.body);
    let cart = visitor.cart(addr).await;
    assert_eq!(quantity(&cart, 1), 2);
    assert_eq!(
        cart["version"].as_u64(),
        version.as_u64().map(|v| v + 1),
        "only the add of book 8 changed the cart"
    );

    // Without a key, the same request is simply made again.
    let unkeyed = visitor.post(addr, ADD, None, r#"{"quantity": 2}"#).await;
    assert!(!unkeyed.replayed());
    assert_eq!(visitor.books(addr, 1).await, 4);
    // A GET ignores the header.
    let page = visitor
        .send(addr, "GET", "/cart", &[("Idempotency-Key", "k-1")], "")
        .await;
    assert_eq!(page.status, 200);
    assert!(!page.replayed());
}

async fn a_first_request_without_a_session_is_replayed_to_its_session(h: Harness) {
    let server = Server::start(&h).await;
    let addr = server.addr;
    let visitor = Client::default();
    let first = visitor.post(addr, ADD, Some("first"), "{}").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(!first.replayed());
    // The answer gave the visitor its session: a repeat in it gets the stored answer.
    let again = visitor.post(addr, ADD, Some("first"), "{}").await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.replayed(), "{}: {:?}", h.backend, again.headers);
    assert_eq!(again.body, first.body);
    assert_eq!(visitor.books(addr, 1).await, 1);
}

async fn html_forms_replay_their_redirect(h: Harness) {
    let server = Server::start(&h).await;
    let addr = server.addr;
    let visitor = Client::default();
    visitor.post(addr, "/cart/add/book/7", None, "{}").await;
    let form = [
        ("Accept", "text/html"),
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Idempotency-Key", "form-1"),
    ];
    let first = visitor
        .send(addr, "POST", "/cart/add/book/3", &form, "quantity=2")
        .await;
    assert_eq!(first.status, 303, "{}", first.body);
    assert_eq!(first.header("location"), Some("/cart"));
    let again = visitor
        .send(addr, "POST", "/cart/add/book/3", &form, "quantity=2")
        .await;
    assert_eq!(again.status, 303);
    assert_eq!(again.header("location"), Some("/cart"));
    assert!(again.replayed());
    assert_eq!(visitor.books(addr, 3).await, 2);
    // The same key with another form body is another request.
    let other = visitor
        .send(addr, "POST", "/cart/add/book/3", &form, "quantity=3")
        .await;
    assert_eq!(other.status, 422, "{}", other.body);
    assert!(other.body.contains("Idempotency-Key"), "{}", other.body);
}

async fn a_repeat_while_the_first_request_runs_is_409(h: Harness) {
    let server = Server::start(&h).await;
    let addr = server.addr;
    let visitor = Client::default();
    visitor.post(addr, "/cart/add/book/7", None, "{}").await;

    // The first request waits in the catalogue for book 99.
    let slow = {
        let visitor = visitor.clone();
        tokio::spawn(async move {
            visitor
                .post(addr, "/cart/add/book/99", Some("slow"), "{}")
                .await
        })
    };
    // Once the first request holds the key (it is waiting in the catalogue), repeat it.
    let mut reserved = 0;
    for _ in 0..500 {
        reserved = h
            .raw
            .count("SELECT COUNT(*) FROM cart_idempotency WHERE idem_key = 'slow'")
            .await;
        if reserved == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(reserved, 1, "the first request reserved its key");
    let running = visitor
        .post(addr, "/cart/add/book/99", Some("slow"), "{}")
        .await;
    running.problem(409, "idempotency_key_in_flight");
    assert_eq!(running.header("retry-after"), Some("1"));
    assert_eq!(
        quantity(&running.json()["cart"], 7),
        1,
        "a 409 carries the cart as it is"
    );
    assert_eq!(visitor.books(addr, 99).await, 0, "nothing added yet");

    server.gate.add_permits(1000);
    let first = slow.await.expect("the first request");
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(!first.replayed());
    let again = visitor
        .post(addr, "/cart/add/book/99", Some("slow"), "{}")
        .await;
    assert!(again.replayed());
    assert_eq!(again.body, first.body);
    assert_eq!(
        visitor.books(addr, 99).await,
        1,
        "{}: added once",
        h.backend
    );
}

async fn the_same_key_for_another_request_is_422(h: Harness) {
    let server = Server::start(&h).await;
    let addr = server.addr;
    let visitor = Client::default();
    visitor.post(addr, "/cart/add/book/7", None, "{}").await;
    let first = visitor
        .post(addr, ADD, Some("k"), r#"{"quantity": 1}"#)
        .await;
    assert_eq!(first.status, 200);
    let before = visitor.cart(addr).await;

    for (path, body) in [
        (ADD, r#"{"quantity": 2}"#),
        ("/cart/add/book/2", r#"{"quantity": 1}"#),
        ("/cart/clear", "{}"),
    ] {
        let res = visitor.post(addr, path, Some("k"), body).await;
        res.problem(422, "idempotency_key_reused");
        assert!(!res.replayed());
    }
    assert_eq!(visitor.cart(addr).await, before, "nothing changed");
    // The first request still gets its answer.
    let again = visitor
        .post(addr, ADD, Some("k"), r#"{"quantity": 1}"#)
        .await;
    assert!(again.replayed());
}

async fn another_visitors_key_is_its_own(h: Harness) {
    let server = Server::start(&h).await;
    let addr = server.addr;
    let alice = Client::default();
    let bob = Client::default();
    alice.post(addr, "/cart/add/book/7", None, "{}").await;
    bob.post(addr, "/cart/add/book/8", None, "{}").await;

    let mine = alice
        .post(addr, ADD, Some("shared"), r#"{"quantity": 5}"#)
        .await;
    assert_eq!(mine.status, 200);
    // Bob's identical request with the same key is his own: processed, in his cart.
    let his = bob
        .post(addr, ADD, Some("shared"), r#"{"quantity": 5}"#)
        .await;
    assert_eq!(his.status, 200, "{}", his.body);
    assert!(
        !his.replayed(),
        "{}: no answer of another visitor",
        h.backend
    );
    assert_ne!(his.body, mine.body);
    assert_eq!(quantity(&his.json(), 8), 1, "Bob's own cart");
    assert_eq!(bob.books(addr, 1).await, 5);
    assert_eq!(alice.books(addr, 1).await, 5);
    // And a different request of Bob's with the key is not refused for Alice's use of it.
    let other = bob
        .post(addr, "/cart/add/book/2", Some("shared-2"), "{}")
        .await;
    assert_eq!(other.status, 200);
    let alices = alice
        .post(addr, "/cart/add/book/3", Some("shared-2"), "{}")
        .await;
    assert_eq!(alices.status, 200, "{}", alices.body);
    assert_eq!(alice.books(addr, 2).await, 0);
    assert_eq!(alice.books(addr, 3).await, 1);
}

async fn a_hundred_concurrent_requests_with_one_key_change_the_cart_once(h: Harness) {
    let server = Server::start(&h).await;
    let addr = server.addr;
    let visitor = Client::default();
    visitor.post(addr, "/cart/add/book/7", None, "{}").await;

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let visitor = visitor.clone();
        tasks.spawn(async move { visitor.post(addr, ADD, Some("storm"), "{}").await });
    }
    let mut ok = 0;
    let mut first = 0;
    while let Some(res) = tasks.join_next().await {
        let res = res.expect("a request");
        match res.status {
            200 => {
                ok += 1;
                if !res.replayed() {
                    first += 1;
                }
            }
            409 => res.problem(409, "idempotency_key_in_flight"),
            other => panic!("{}: unexpected {other}: {}", h.backend, res.body),
        }
    }
    assert!(ok >= 1, "one of them went through");
    assert_eq!(first, 1, "{}: exactly one was processed", h.backend);
    assert_eq!(
        visitor.books(addr, 1).await,
        1,
        "{}: changed once",
        h.backend
    );
    let again = visitor.post(addr, ADD, Some("storm"), "{}").await;
    assert!(again.replayed());
    assert_eq!(visitor.books(addr, 1).await, 1);
}

async fn invalid_keys_are_400_and_change_nothing(h: Harness) {
    let server = Server::start(&h).await;
    let addr = server.addr;
    let visitor = Client::default();
    visitor.post(addr, "/cart/add/book/7", None, "{}").await;
    let long = "k".repeat(256);
    let max = "k".repeat(255);
    for bad in ["", "two words", "tab\there", long.as_str(), "caf\u{e9}"] {
        let res = visitor
            .send(addr, "POST", ADD, &[("Idempotency-Key", bad)], "{}")
            .await;
        res.problem(400, "invalid_idempotency_key");
    }
    let twice = visitor
        .send(
            addr,
            "POST",
            ADD,
            &[("Idempotency-Key", "a"), ("Idempotency-Key", "b")],
            "{}",
        )
        .await;
    twice.problem(400, "invalid_idempotency_key");
    assert_eq!(visitor.books(addr, 1).await, 0, "nothing was added");
    // 255 visible characters are a key.
    let res = visitor
        .send(
            addr,
            "POST",
            ADD,
            &[("Idempotency-Key", max.as_str())],
            "{}",
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let res = visitor
        .send(
            addr,
            "POST",
            ADD,
            &[("Idempotency-Key", "\"!~quoted~!\"")],
            "{}",
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(visitor.books(addr, 1).await, 2);
}

async fn a_server_error_is_not_stored(h: Harness) {
    let server = Server::start(&h).await;
    let addr = server.addr;
    let visitor = Client::default();
    visitor.post(addr, "/cart/add/book/7", None, "{}").await;
    server.failing.store(true, Ordering::SeqCst);
    let failed = visitor
        .post(addr, "/cart/add/book/98", Some("retry-me"), "{}")
        .await;
    failed.problem(500, "plugin_error");
    server.failing.store(false, Ordering::SeqCst);
    // The retry runs again (it is not a replay of the 500) and adds once.
    let retry = visitor
        .post(addr, "/cart/add/book/98", Some("retry-me"), "{}")
        .await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert!(!retry.replayed());
    assert_eq!(visitor.books(addr, 98).await, 1);
    assert_eq!(
        h.raw
            .count("SELECT COUNT(*) FROM cart_idempotency WHERE state = 'complete'")
            .await,
        1,
        "only the success is stored"
    );
}

async fn an_applied_change_whose_answer_was_lost_is_not_applied_again(h: Harness) {
    let server = Server::start(&h).await;
    let addr = server.addr;
    let visitor = Client::default();
    visitor.post(addr, "/cart/add/book/7", None, "{}").await;
    let first = visitor.post(addr, ADD, Some("lost"), "{}").await;
    assert_eq!(first.status, 200);
    // The process stopped after the change committed, before the answer was stored.
    h.raw
        .exec(
            "UPDATE cart_idempotency SET state = 'applied', status = NULL, headers = NULL, \
             body = NULL, locked_at = 0",
        )
        .await
        .unwrap();
    let again = visitor.post(addr, ADD, Some("lost"), "{}").await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.replayed(), "{}: {:?}", h.backend, again.headers);
    assert_eq!(quantity(&again.json(), 1), 1, "the cart as it is");
    assert_eq!(
        visitor.books(addr, 1).await,
        1,
        "{}: not added again",
        h.backend
    );
    // That answer is stored now.
    let third = visitor.post(addr, ADD, Some("lost"), "{}").await;
    assert!(third.replayed());
    assert_eq!(third.body, again.body);
    assert_eq!(visitor.books(addr, 1).await, 1);

    // A change that committed a moment ago is its request finishing (storing its answer):
    // a double submit then is 409, not an answer of its own.
    let second = visitor.post(addr, ADD, Some("just-now"), "{}").await;
    assert_eq!(second.status, 200);
    h.raw
        .exec(&format!(
            "UPDATE cart_idempotency SET state = 'applied', status = NULL, headers = NULL, \
             body = NULL, locked_at = {} WHERE idem_key = 'just-now'",
            time::OffsetDateTime::now_utc().unix_timestamp()
        ))
        .await
        .unwrap();
    let double = visitor.post(addr, ADD, Some("just-now"), "{}").await;
    double.problem(409, "idempotency_key_in_flight");
    assert_eq!(visitor.books(addr, 1).await, 2, "{}", h.backend);
}

async fn a_stopped_request_that_applied_nothing_is_taken_over(h: Harness) {
    let server = Server::start(&h).await;
    let addr = server.addr;
    let visitor = Client::default();
    visitor.post(addr, "/cart/add/book/7", None, "{}").await;
    let first = visitor
        .post(addr, "/cart/add/book/4", Some("stopped"), "{}")
        .await;
    assert_eq!(first.status, 200);
    h.raw.exec("DELETE FROM cart_items").await.unwrap();
    // As if the request had reserved the key and stopped before its change, long ago.
    h.raw
        .exec(
            "UPDATE cart_idempotency SET state = 'running', status = NULL, headers = NULL, \
             body = NULL, locked_at = 0",
        )
        .await
        .unwrap();
    let retry = visitor
        .post(addr, "/cart/add/book/4", Some("stopped"), "{}")
        .await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert!(!retry.replayed(), "it ran");
    assert_eq!(visitor.books(addr, 4).await, 1);
    // A running reservation that is recent is a request in flight.
    h.raw
        .exec(&format!(
            "UPDATE cart_idempotency SET state = 'running', locked_at = {}",
            time::OffsetDateTime::now_utc().unix_timestamp()
        ))
        .await
        .unwrap();
    let busy = visitor
        .post(addr, "/cart/add/book/4", Some("stopped"), "{}")
        .await;
    busy.problem(409, "idempotency_key_in_flight");
    assert_eq!(visitor.books(addr, 4).await, 1);
}

async fn a_keyed_checkout_places_one_order(h: Harness) {
    let server = Server::start(&h).await;
    let addr = server.addr;
    let visitor = Client::default();
    visitor.post(addr, ADD, None, "{}").await;
    let first = visitor
        .post(addr, "/cart/checkout", Some("pay-1"), "{}")
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.json()["checked_out"], true);
    let report = server.relay.run_once().await.expect("a relay round");
    assert_eq!(report.orders, 1, "{report:?}");
    let again = visitor
        .post(addr, "/cart/checkout", Some("pay-1"), "{}")
        .await;
    assert!(again.replayed());
    assert_eq!(again.body, first.body);
    let report = server.relay.run_once().await.expect("a relay round");
    assert_eq!(
        report.orders, 0,
        "the replay wrote no second order: {report:?}"
    );
    assert_eq!(server.orders.lock().unwrap().len(), 1, "the hook ran once");
    // A key used for the checkout cannot add to the next cart.
    let reused = visitor.post(addr, ADD, Some("pay-1"), "{}").await;
    reused.problem(422, "idempotency_key_reused");
}

async fn every_change_route_takes_a_key(h: Harness) {
    let server = Server::start(&h).await;
    let addr = server.addr;
    server
        .carts
        .create_discount(axum_cart::NewDiscount::percent("TEN", common::d("10")))
        .await
        .unwrap();
    let visitor = Client::default();
    visitor
        .post(addr, "/cart/add/book/2", None, r#"{"quantity": 2}"#)
        .await;
    let line = visitor.cart(addr).await["items"][0]["line"]
        .as_str()
        .expect("a line key")
        .to_owned();
    let update_line = format!("/cart/lines/{line}/update");
    let remove_line = format!("/cart/lines/{line}/remove");
    let steps: Vec<(&str, &str)> = vec![
        (ADD, "{}"),
        ("/cart/update/book/1", r#"{"quantity": 3}"#),
        (update_line.as_str(), r#"{"quantity": 4}"#),
        ("/cart/discount", r#"{"code": "TEN"}"#),
        ("/cart/discount/remove", "{}"),
        ("/cart/freeze", "{}"),
        ("/cart/unfreeze", "{}"),
        ("/cart/remove/book/1", "{}"),
        (remove_line.as_str(), "{}"),
        ("/cart/add/book/5", "{}"),
        ("/cart/clear", "{}"),
    ];
    for (i, (path, body)) in steps.iter().enumerate() {
        let key = format!("step-{i}");
        let first = visitor.post(addr, path, Some(&key), body).await;
        assert_eq!(first.status, 200, "{path}: {}", first.body);
        let version = visitor.cart(addr).await["version"].clone();
        let again = visitor.post(addr, path, Some(&key), body).await;
        assert!(again.replayed(), "{path}: {}", again.body);
        assert_eq!(again.status, 200, "{path}");
        assert_eq!(again.body, first.body, "{path}");
        assert_eq!(
            visitor.cart(addr).await["version"],
            version,
            "{}: {path} changed nothing the second time",
            h.backend
        );
    }
    // The OpenAPI document declares the header on every change and the replay header.
    let doc = visitor
        .send(addr, "GET", "/cart/openapi.json", &[], "")
        .await;
    let doc = doc.json();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let Some(post) = item.get("post") else {
            continue;
        };
        let params = post["parameters"].as_array().expect("parameters");
        assert!(
            params
                .iter()
                .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
            "{path}"
        );
        let ok = &post["responses"]["200"];
        assert!(
            ok["headers"].get("idempotent-replayed").is_some(),
            "{path}: {ok}"
        );
        assert!(post["responses"].get("422").is_some(), "{path}");
        assert!(post["responses"].get("409").is_some(), "{path}");
    }
}

async fn expired_keys_are_cleaned_in_batches(h: Harness) {
    let server = Server::with(
        &h,
        CartRouter::new().idempotency_ttl(time::Duration::hours(1)),
    )
    .await;
    let addr = server.addr;
    let visitor = Client::default();
    visitor.post(addr, "/cart/add/book/7", None, "{}").await;
    for i in 0..5 {
        let res = visitor
            .post(addr, ADD, Some(&format!("old-{i}")), "{}")
            .await;
        assert_eq!(res.status, 200);
    }
    let kept = visitor.post(addr, ADD, Some("new"), "{}").await;
    assert_eq!(kept.status, 200);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expires = h
        .raw
        .count("SELECT MIN(expires_at) FROM cart_idempotency")
        .await;
    assert!(
        (now + 3590..=now + 3610).contains(&expires),
        "kept for the router's hour: {expires} at {now}"
    );
    h.raw
        .exec("UPDATE cart_idempotency SET expires_at = 1 WHERE idem_key <> 'new'")
        .await
        .unwrap();
    // An expired key is forgotten: its request runs again.
    let rerun = visitor.post(addr, ADD, Some("old-0"), "{}").await;
    assert!(!rerun.replayed());
    h.raw
        .exec("UPDATE cart_idempotency SET expires_at = 1 WHERE idem_key <> 'new'")
        .await
        .unwrap();
    let deleted = server.carts.clean_idempotency_keys(2).await.unwrap();
    assert_eq!(
        deleted, 5,
        "{}: five expired keys, two at a time",
        h.backend
    );
    assert_eq!(
        h.raw.count("SELECT COUNT(*) FROM cart_idempotency").await,
        1
    );
    // `clean` sweeps them too.
    h.raw
        .exec("UPDATE cart_idempotency SET expires_at = 1")
        .await
        .unwrap();
    server
        .carts
        .clean(90, false, false, 100, |_| {})
        .await
        .unwrap();
    assert_eq!(
        h.raw.count("SELECT COUNT(*) FROM cart_idempotency").await,
        0
    );
    let again = visitor.post(addr, ADD, Some("new"), "{}").await;
    assert!(!again.replayed(), "the key is gone");
}

async fn a_request_dropped_half_way_gives_its_key_up(h: Harness) {
    use tower::ServiceExt;
    let server = Server::start(&h).await;
    let addr = server.addr;
    let visitor = Client::default();
    visitor.post(addr, "/cart/add/book/7", None, "{}").await;
    let cookie = {
        let cookies = visitor.cookies.lock().unwrap();
        cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    // The request waits in the catalogue; its caller gives up on it (drops it).
    let req = axum::http::Request::post("/cart/add/book/99")
        .header("cookie", cookie)
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .header("idempotency-key", "dropped")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let dropped = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        server.app.clone().oneshot(req),
    )
    .await;
    assert!(dropped.is_err(), "the request was still waiting");
    let mut left = 1;
    for _ in 0..100 {
        left = h
            .raw
            .count("SELECT COUNT(*) FROM cart_idempotency WHERE idem_key = 'dropped'")
            .await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0, "{}: the key was given up", h.backend);
    // A retry runs at once (no 409 for the takeover time) and adds once.
    server.gate.add_permits(1000);
    let retry = visitor
        .post(addr, "/cart/add/book/99", Some("dropped"), "{}")
        .await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert!(!retry.replayed());
    assert_eq!(visitor.books(addr, 99).await, 1);
}

/// With the signed cookie, the visitor is its cart (the cookie names it): a key is the
/// visitor's until the cookie names another cart (after a checkout).
#[cfg(all(feature = "signed-cookie", feature = "sqlite"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_cookie_visitors_keep_their_keys() {
    let h = Harness::sqlite().await.expect("sqlite");
    let server = Server::signed(&h).await;
    let addr = server.addr;
    let alice = Client::default();
    let bob = Client::default();
    // Alice's first request creates her cart (and cookie); its repeat is a replay.
    let first = alice.post(addr, ADD, Some("k"), "{}").await;
    assert_eq!(first.status, 200, "{}", first.body);
    let again = alice.post(addr, ADD, Some("k"), "{}").await;
    assert!(again.replayed(), "{:?}", again.headers);
    assert_eq!(alice.books(addr, 1).await, 1);
    // Bob's same request with the same key is his own.
    bob.post(addr, "/cart/add/book/2", None, "{}").await;
    let his = bob.post(addr, ADD, Some("k"), "{}").await;
    assert_eq!(his.status, 200, "{}", his.body);
    assert!(!his.replayed());
    assert_eq!(bob.books(addr, 1).await, 1);
    assert_eq!(alice.books(addr, 1).await, 1);
    // Concurrent repeats of Alice's: still once.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let alice = alice.clone();
        tasks.spawn(async move {
            alice
                .post(addr, "/cart/add/book/3", Some("burst"), "{}")
                .await
        });
    }
    while let Some(res) = tasks.join_next().await {
        let res = res.expect("a request");
        assert!(matches!(res.status, 200 | 409), "{}", res.body);
    }
    assert_eq!(alice.books(addr, 3).await, 1);
}
