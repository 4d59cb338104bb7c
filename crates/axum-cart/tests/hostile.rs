//! Hostile input through the real router: `cart_router()` behind `CartLayer`, with both the
//! tower-sessions adapter (in-memory session store) and the signed-cookie adapter, on a
//! SQLite temp file with a small catalogue.
//!
//! Every route is sent malformed quantities, ids and kinds, oversized and undecodable bodies,
//! wrong content types, duplicate fields, hostile discount codes, tampered / forged / expired
//! / oversized cookies and cross-site posts, from three visitors per adapter (one with a cart
//! and a discount, one with a cart, one with nothing), in JSON and in HTML. Each request must
//! get the status (and JSON `code`) of `docs/HTTP.md`, carry `Cache-Control: no-store`, echo
//! no cart id in any header or body, set no cookie, and panic nowhere; the `cart_carts`,
//! `cart_items`, `cart_discounts` and `sqlite_sequence` tables must be exactly as before,
//! checked after every category. Run with `--nocapture` for the per-category figures.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::Router;
use axum_cart::{
    async_trait, BoxError, CartLayer, CartRouter, Carts, Catalog, NewDiscount, Product,
    SignedCookieConfig, Store,
};
use http_body::Frame;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::SqlitePool;
use tower::ServiceExt;
use tower_cookies::cookie::{Cookie, CookieJar, SameSite};
use tower_cookies::Key;
use tower_sessions::{Expiry, MemoryStore, SessionManagerLayer};

// ---- panics ----------------------------------------------------------------------------

static PANICS: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();

/// Counts every panic of the test binary (handlers, sqlx worker threads, anything), then
/// reports it as usual.
fn count_panics() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

// ---- the shop ----------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Good {
    kind: &'static str,
    id: i64,
    price: Option<&'static str>,
}

impl Product for Good {
    fn kind(&self) -> &str {
        self.kind
    }
    fn id(&self) -> i64 {
        self.id
    }
    fn price(&self) -> Option<Decimal> {
        self.price.and_then(|p| Decimal::from_str(p).ok())
    }
    fn name(&self) -> String {
        format!("{} {}", self.kind, self.id)
    }
}

const GOODS: &[Good] = &[
    Good {
        kind: "book",
        id: 1,
        price: Some("9.99"),
    },
    Good {
        kind: "book",
        id: 2,
        price: Some("25.00"),
    },
    Good {
        kind: "book",
        id: 3,
        price: Some("5.00"),
    },
    Good {
        kind: "book",
        id: 4,
        price: None,
    },
    Good {
        kind: "coffee",
        id: 7,
        price: Some("3.50"),
    },
];

struct Shop;

#[async_trait]
impl Catalog for Shop {
    async fn products(&self, kind: &str, ids: &[i64]) -> Result<Vec<Arc<dyn Product>>, BoxError> {
        Ok(GOODS
            .iter()
            .filter(|g| g.kind == kind && ids.contains(&g.id))
            .map(|g| Arc::new(g.clone()) as Arc<dyn Product>)
            .collect())
    }
}

// ---- the database ------------------------------------------------------------------------

/// Cart ids start here, so that an id is a string no answer contains by chance.
const CART_ID_BASE: i64 = 739_184_620;

struct Db {
    pool: SqlitePool,
    _file: common::TempSqlite,
}

impl Db {
    async fn new() -> Db {
        let file = common::TempSqlite::new().await;
        let pool = file.pool.clone();
        sqlx::query("INSERT INTO sqlite_sequence (name, seq) VALUES ('cart_carts', ?)")
            .bind(CART_ID_BASE)
            .execute(&pool)
            .await
            .expect("seed the cart id sequence");
        Db { pool, _file: file }
    }

    fn carts(&self) -> Carts {
        Carts::builder(Store::from(self.pool.clone()))
            .catalog(Shop)
            .max_quantity_per_item(99)
            .build()
    }

    /// Every row of the cart tables (and the id sequences), each column `quote()`d, in
    /// rowid order: a byte-exact picture of what the cart has stored.
    async fn snapshot(&self) -> BTreeMap<String, Vec<String>> {
        let mut tables = BTreeMap::new();
        for table in [
            "cart_carts",
            "cart_items",
            "cart_discounts",
            "sqlite_sequence",
        ] {
            let columns: Vec<String> =
                sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                    .fetch_all(&self.pool)
                    .await
                    .expect("table columns");
            assert!(!columns.is_empty(), "{table} has columns");
            let row = columns
                .iter()
                .map(|c| format!("quote(\"{c}\")"))
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT {row} FROM {table} ORDER BY rowid"))
                    .fetch_all(&self.pool)
                    .await
                    .expect("table rows");
            tables.insert(table.to_owned(), rows);
        }
        tables
    }

    async fn cart_ids(&self) -> Vec<i64> {
        sqlx::query_scalar("SELECT id FROM cart_carts ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .expect("cart ids")
    }
}

// ---- apps --------------------------------------------------------------------------------

fn session_layer() -> SessionManagerLayer<MemoryStore> {
    SessionManagerLayer::new(MemoryStore::default())
        .with_secure(false)
        .with_same_site(SameSite::Lax)
}

/// The routes under test: the defaults, but no limit on discount attempts (the probes try
/// hundreds of codes as one visitor; the limit has its own tests in `contract.rs`).
fn cart_router() -> Router {
    CartRouter::new().discount_attempts(0, 0).build()
}

fn session_app(carts: &Carts) -> Router {
    cart_router()
        .layer(common::problems_checked())
        .layer(CartLayer::new(carts.clone()))
        .layer(session_layer())
}

/// Sessions that expire after one second of inactivity.
fn expiring_app(carts: &Carts) -> Router {
    cart_router()
        .layer(common::problems_checked())
        .layer(CartLayer::new(carts.clone()))
        .layer(session_layer().with_expiry(Expiry::OnInactivity(time::Duration::seconds(1))))
}

fn cookie_app(carts: &Carts, key: &Key) -> Router {
    cart_router().layer(common::problems_checked()).layer(
        CartLayer::new(carts.clone()).with_signed_cookie(SignedCookieConfig::new(key.clone())),
    )
}

// ---- requests and answers ----------------------------------------------------------------

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";
const HOST: &str = "shop.test";
const LIMIT: usize = 16 * 1024;

/// A body that arrives in 8 KiB chunks with no declared length, counting what was pulled.
struct Trickle {
    chunk: Bytes,
    left: usize,
    pulled: Arc<AtomicUsize>,
}

impl http_body::Body for Trickle {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(self.chunk.len());
        self.left -= n;
        self.pulled.fetch_add(n, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }
}

#[derive(Clone)]
enum Payload {
    Empty,
    Bytes(Bytes),
    /// `total` bytes of `=` in chunks, no `Content-Length`.
    Trickle(usize),
}

impl Payload {
    fn text(text: impl Into<String>) -> Payload {
        Payload::Bytes(Bytes::from(text.into()))
    }
    fn raw(bytes: &[u8]) -> Payload {
        Payload::Bytes(Bytes::copy_from_slice(bytes))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    Json,
    Html,
}

/// One hostile request and the answer `docs/HTTP.md` promises for it.
#[derive(Clone)]
struct Probe {
    method: Method,
    path: String,
    headers: Vec<(&'static str, HeaderValue)>,
    body: Payload,
    status: StatusCode,
    code: Option<&'static str>,
    message: Option<String>,
    /// A 200 JSON answer must be an empty cart.
    empty_cart: bool,
}

impl Probe {
    fn post(path: impl Into<String>, content_type: Option<&str>, body: Payload) -> Probe {
        let mut headers = Vec::new();
        if let Some(t) = content_type {
            headers.push((
                "content-type",
                HeaderValue::from_str(t).expect("content type"),
            ));
        }
        Probe {
            method: Method::POST,
            path: path.into(),
            headers,
            body,
            status: StatusCode::OK,
            code: None,
            message: None,
            empty_cart: false,
        }
    }

    fn form(path: impl Into<String>, body: &str) -> Probe {
        Probe::post(path, Some(FORM), Payload::text(body))
    }

    fn json(path: impl Into<String>, body: &Value) -> Probe {
        Probe::post(path, Some(JSON), Payload::text(body.to_string()))
    }

    fn get(path: &str) -> Probe {
        Probe {
            method: Method::GET,
            ..Probe::post(path, None, Payload::Empty)
        }
    }

    fn header(mut self, name: &'static str, value: HeaderValue) -> Probe {
        self.headers.push((name, value));
        self
    }

    fn expect(mut self, status: StatusCode, code: &'static str) -> Probe {
        self.status = status;
        self.code = Some(code);
        self
    }

    fn says(mut self, message: &str) -> Probe {
        self.message = Some(message.to_owned());
        self
    }

    fn ok_empty(mut self) -> Probe {
        self.status = StatusCode::OK;
        self.empty_cart = true;
        self
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A visitor of one of the apps, with the cookies set up for it.
struct Visitor {
    name: &'static str,
    app: Router,
    cookie: Option<String>,
}

#[derive(Default)]
struct Tally {
    inputs: BTreeSet<String>,
    requests: usize,
    statuses: BTreeMap<u16, usize>,
}

struct Suite {
    db: Db,
    baseline: BTreeMap<String, Vec<String>>,
    visitors: Vec<Visitor>,
    /// Every cart id, as text: no answer may contain one.
    ids: Vec<String>,
    tally: BTreeMap<&'static str, Tally>,
    failures: Vec<String>,
    set_cookies_checked: usize,
}

/// Sends a request on a task of its own, so that a panic in a handler is caught and
/// counted instead of ending the test.
async fn send(app: &Router, req: Request<Body>) -> Option<Reply> {
    let app = app.clone();
    let task = tokio::spawn(async move {
        let res = match app.oneshot(req).await {
            Ok(res) => res,
            Err(never) => match never {},
        };
        let status = res.status();
        let headers = res.headers().clone();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_else(|e| format!("<unreadable body: {e}>").into_bytes());
        Reply {
            status,
            headers,
            body,
        }
    });
    task.await.ok()
}

/// Checks a `Set-Cookie`: a cookie with a value must be `HttpOnly` and `SameSite=Lax`; a
/// removal (empty value, `Max-Age=0`) carries nothing. The library's own `CART-ID` cookie
/// must carry both attributes even when it removes.
fn check_set_cookie(value: &HeaderValue) -> Result<(), String> {
    let text = value
        .to_str()
        .map_err(|_| format!("non-ASCII Set-Cookie {value:?}"))?;
    let cookie = Cookie::parse(text.to_owned()).map_err(|e| format!("{text:?}: {e}"))?;
    let flags_ok = cookie.http_only() == Some(true) && cookie.same_site() == Some(SameSite::Lax);
    let removal = cookie.value().is_empty()
        && cookie
            .max_age()
            .is_some_and(|a| a.is_zero() || a.is_negative());
    if flags_ok || (removal && cookie.name() != "CART-ID") {
        Ok(())
    } else {
        Err(format!(
            "Set-Cookie without HttpOnly / SameSite=Lax: {text}"
        ))
    }
}

impl Suite {
    /// The request of `probe` for one visitor (or a raw cookie) in one format.
    fn request(probe: &Probe, cookie: Option<&str>, format: Format) -> Request<Body> {
        let mut req = Request::builder()
            .method(probe.method.clone())
            .uri(&probe.path)
            .header(header::HOST, HOST)
            .header(
                header::ACCEPT,
                match format {
                    Format::Json => JSON,
                    Format::Html => "text/html,application/xhtml+xml",
                },
            );
        let has_cookie = probe.headers.iter().any(|(n, _)| *n == "cookie");
        if let (Some(cookie), false) = (cookie, has_cookie) {
            req = req.header(header::COOKIE, cookie);
        }
        for (name, value) in &probe.headers {
            req = req.header(HeaderName::from_static(name), value.clone());
        }
        let body = match &probe.body {
            Payload::Empty => Body::empty(),
            Payload::Bytes(b) => Body::from(b.clone()),
            Payload::Trickle(total) => Body::new(Trickle {
                chunk: Bytes::from(vec![b'='; 8 * 1024]),
                left: *total,
                pulled: Arc::new(AtomicUsize::new(0)),
            }),
        };
        req.body(body).expect("request")
    }

    /// Sends `probe` from every visitor, in JSON and HTML.
    async fn run(&mut self, category: &'static str, input: &str, probe: Probe) {
        let targets: Vec<(String, Router, Option<String>)> = self
            .visitors
            .iter()
            .map(|v| (v.name.to_owned(), v.app.clone(), v.cookie.clone()))
            .collect();
        for (name, app, cookie) in targets {
            self.run_on(category, input, &name, &app, cookie.as_deref(), &probe)
                .await;
        }
    }

    /// Sends `probe` to one app with one cookie header, in JSON and HTML, and checks it.
    async fn run_on(
        &mut self,
        category: &'static str,
        input: &str,
        who: &str,
        app: &Router,
        cookie: Option<&str>,
        probe: &Probe,
    ) {
        for format in [Format::Json, Format::Html] {
            let pulled = Arc::new(AtomicUsize::new(0));
            let mut req = Self::request(probe, cookie, format);
            if let Payload::Trickle(total) = probe.body {
                *req.body_mut() = Body::new(Trickle {
                    chunk: Bytes::from(vec![b'='; 8 * 1024]),
                    left: total,
                    pulled: pulled.clone(),
                });
            }
            let tally = self.tally.entry(category).or_default();
            tally.inputs.insert(input.to_owned());
            tally.requests += 1;
            let what = format!(
                "[{category}] {input:?}: {} {} as {who} ({format:?})",
                probe.method,
                shorten(&probe.path)
            );
            let Some(reply) = send(app, req).await else {
                self.failures.push(format!("{what}: the handler panicked"));
                continue;
            };
            *tally.statuses.entry(reply.status.as_u16()).or_default() += 1;
            if let Payload::Trickle(_) = probe.body {
                let n = pulled.load(Ordering::SeqCst);
                if n > LIMIT + 8 * 1024 {
                    self.failures.push(format!(
                        "{what}: read {n} bytes of a streamed body past the {LIMIT}-byte limit"
                    ));
                }
            }
            if let Err(e) = self.check(probe, format, &reply) {
                self.failures.push(format!(
                    "{what}: {e}; got {} {}",
                    reply.status,
                    shorten(&String::from_utf8_lossy(&reply.body))
                ));
            }
        }
    }

    fn check(&mut self, probe: &Probe, format: Format, reply: &Reply) -> Result<(), String> {
        // A change that goes through answers an HTML client with 303 to the page.
        let expected = if format == Format::Html
            && probe.method == Method::POST
            && probe.status == StatusCode::OK
        {
            StatusCode::SEE_OTHER
        } else {
            probe.status
        };
        if reply.status != expected {
            return Err(format!("expected {expected}"));
        }
        if reply.status == StatusCode::METHOD_NOT_ALLOWED
            && !reply.headers.contains_key(header::ALLOW)
        {
            return Err("a 405 without an Allow header".into());
        }
        let content_type = reply
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if reply.headers.get(header::CACHE_CONTROL) != Some(&HeaderValue::from_static("no-store")) {
            return Err("no Cache-Control: no-store".into());
        }
        let body = String::from_utf8_lossy(&reply.body);
        match (format, reply.status) {
            (Format::Json, s) if s != StatusCode::SEE_OTHER => {
                let wanted = if s.as_u16() >= 400 {
                    "application/problem+json"
                } else {
                    JSON
                };
                if !content_type.starts_with(wanted) {
                    return Err(format!("a JSON client got {content_type:?}"));
                }
                let value: Value =
                    serde_json::from_slice(&reply.body).map_err(|e| format!("not JSON: {e}"))?;
                if let Some(code) = probe.code {
                    if value["code"] != code {
                        return Err(format!("expected code {code:?}"));
                    }
                }
                if let Some(message) = &probe.message {
                    if value["error"] != message.as_str() {
                        return Err(format!("expected message {message:?}"));
                    }
                }
                if probe.empty_cart && s == StatusCode::OK && value["count"] != 0 {
                    return Err("expected an empty cart".into());
                }
            }
            (Format::Html, s) if s.is_client_error() || s == StatusCode::OK => {
                if !content_type.starts_with("text/html") {
                    return Err(format!("an HTML client got {content_type:?}"));
                }
            }
            (Format::Html, s) if s == StatusCode::SEE_OTHER => {}
            (f, s) => return Err(format!("unexpected {s} for {f:?}")),
        }
        for id in &self.ids {
            if body.contains(id.as_str()) {
                return Err(format!("the body contains cart id {id}"));
            }
            for (name, value) in &reply.headers {
                if String::from_utf8_lossy(value.as_bytes()).contains(id.as_str()) {
                    return Err(format!("header {name} contains cart id {id}"));
                }
            }
        }
        for value in reply.headers.get_all(header::SET_COOKIE) {
            self.set_cookies_checked += 1;
            check_set_cookie(value)?;
            let text = value.to_str().unwrap_or_default();
            let cookie = Cookie::parse(text.to_owned()).map_err(|e| e.to_string())?;
            if !cookie.value().is_empty() {
                return Err(format!(
                    "a refused or read-only request set a cookie: {text}"
                ));
            }
        }
        Ok(())
    }

    /// The tables must be exactly as before the hostile requests.
    async fn unchanged(&mut self, category: &'static str) {
        let now = self.db.snapshot().await;
        for (table, rows) in &self.baseline {
            if now.get(table) != Some(rows) {
                self.failures.push(format!(
                    "[{category}] table {table} changed: {:?} -> {:?}",
                    rows,
                    now.get(table)
                ));
            }
        }
    }

    fn report(&self) {
        for (category, t) in &self.tally {
            let statuses = t
                .statuses
                .iter()
                .map(|(s, n)| format!("{s}x{n}"))
                .collect::<Vec<_>>()
                .join(" ");
            println!(
                "hostile: {category:<22} {:>4} inputs {:>6} requests  answers: {statuses}",
                t.inputs.len(),
                t.requests
            );
        }
        let total: usize = self.tally.values().map(|t| t.requests).sum();
        let inputs: usize = self.tally.values().map(|t| t.inputs.len()).sum();
        println!(
            "hostile: TOTAL {inputs} inputs, {total} requests, {} Set-Cookie headers checked, {} failures, {} panics",
            self.set_cookies_checked,
            self.failures.len(),
            PANICS.load(Ordering::SeqCst)
        );
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 120 {
        format!("{}…", text.chars().take(120).collect::<String>())
    } else {
        text.to_owned()
    }
}

/// Percent-encodes everything but unreserved characters, for a path segment.
fn enc(segment: &[u8]) -> String {
    segment
        .iter()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (*b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form_value(text: &str) -> String {
    enc(text.as_bytes())
}

fn hv(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("header value")
}

// ---- set-up through the routes -----------------------------------------------------------

/// A client used only during set-up: keeps its cookies, checks its answers.
struct SetupClient {
    app: Router,
    jar: BTreeMap<String, String>,
    set_cookies: Vec<HeaderValue>,
}

impl SetupClient {
    fn new(app: &Router) -> Self {
        SetupClient {
            app: app.clone(),
            jar: BTreeMap::new(),
            set_cookies: Vec::new(),
        }
    }

    fn cookie(&self) -> Option<String> {
        (!self.jar.is_empty()).then(|| {
            self.jar
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    async fn post(&mut self, path: &str, body: Value) -> Value {
        let mut req = Request::builder()
            .method("POST")
            .uri(path)
            .header(header::ACCEPT, JSON)
            .header(header::CONTENT_TYPE, JSON);
        if let Some(cookie) = self.cookie() {
            req = req.header(header::COOKIE, cookie);
        }
        let reply = send(
            &self.app,
            req.body(Body::from(body.to_string())).expect("request"),
        )
        .await
        .expect("no panic during set-up");
        for set in reply.headers.get_all(header::SET_COOKIE) {
            self.set_cookies.push(set.clone());
            let cookie = Cookie::parse(set.to_str().expect("ascii").to_owned()).expect("cookie");
            if cookie.value().is_empty() {
                self.jar.remove(cookie.name());
            } else {
                self.jar
                    .insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "set-up {path}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        serde_json::from_slice(&reply.body).expect("set-up JSON")
    }
}

// ---- the test ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_never_hurts() {
    count_panics();
    let db = Db::new().await;
    let carts = db.carts();
    let now = time::OffsetDateTime::now_utc();
    for discount in [
        NewDiscount::percent("SAVE10", Decimal::from(10)),
        NewDiscount::percent("EXPIRED", Decimal::from(10))
            .valid_from(now - time::Duration::days(30))
            .valid_until(now - time::Duration::days(1)),
        NewDiscount::percent("FUTURE", Decimal::from(10)).valid_from(now + time::Duration::days(1)),
        NewDiscount::fixed("OFF", Decimal::from(5)).active(false),
        NewDiscount::fixed("USEDUP", Decimal::from(5)).max_uses(0),
        NewDiscount::fixed("BIGMIN", Decimal::from(5)).min_cart_value(Decimal::from(100_000)),
    ] {
        carts.create_discount(discount).await.expect("discount");
    }

    // Visitors of the tower-sessions app and of the signed-cookie app.
    let key = Key::generate();
    let s_app = session_app(&carts);
    let c_app = cookie_app(&carts, &key);
    let e_app = expiring_app(&carts);
    let mut setup_cookies = Vec::new();

    let mut s_victim = SetupClient::new(&s_app);
    s_victim
        .post("/cart/add/book/1", json!({"quantity": 2}))
        .await;
    s_victim.post("/cart/add/book/2", json!({})).await;
    let body = s_victim
        .post("/cart/discount", json!({"code": "save10"}))
        .await;
    assert_eq!(body["discount_code"], "SAVE10");
    let mut s_shopper = SetupClient::new(&s_app);
    s_shopper.post("/cart/add/book/2", json!({})).await;
    let mut s_buyer = SetupClient::new(&s_app);
    s_buyer.post("/cart/add/book/3", json!({})).await;
    let buyer_session = s_buyer.cookie().expect("buyer session");
    let body = s_buyer.post("/cart/checkout", json!({})).await;
    assert_eq!(body["checked_out"], true);

    let mut c_victim = SetupClient::new(&c_app);
    c_victim
        .post("/cart/add/coffee/7", json!({"quantity": 3}))
        .await;
    c_victim.post("/cart/add/book/1", json!({})).await;
    c_victim
        .post("/cart/discount", json!({"code": "SAVE10"}))
        .await;
    let mut c_shopper = SetupClient::new(&c_app);
    c_shopper
        .post("/cart/add/book/3", json!({"quantity": 2}))
        .await;
    let mut c_buyer = SetupClient::new(&c_app);
    c_buyer.post("/cart/add/book/1", json!({})).await;
    let buyer_cookie = c_buyer.cookie().expect("buyer cookie");
    c_buyer.post("/cart/checkout", json!({})).await;
    // The cookie keeps naming the placed order: a repeated checkout gets it back.
    assert_eq!(c_buyer.cookie().as_deref(), Some(buyer_cookie.as_str()));

    let mut e_visitor = SetupClient::new(&e_app);
    e_visitor.post("/cart/add/book/2", json!({})).await;
    let expired_session = e_visitor.cookie().expect("expiring session");

    for client in [
        &s_victim, &s_shopper, &s_buyer, &c_victim, &c_shopper, &c_buyer, &e_visitor,
    ] {
        setup_cookies.extend(client.set_cookies.iter().cloned());
    }
    let mut setup_failures = Vec::new();
    for value in &setup_cookies {
        if let Err(e) = check_set_cookie(value) {
            setup_failures.push(e);
        }
    }
    assert!(setup_failures.is_empty(), "{setup_failures:#?}");

    let ids: Vec<String> = db.cart_ids().await.iter().map(i64::to_string).collect();
    assert_eq!(ids.len(), 7, "seven carts were set up: {ids:?}");
    assert!(ids.iter().all(|id| id.len() == 9), "{ids:?}");

    let s_victim_cookie = s_victim.cookie().expect("session cookie");
    let c_victim_cookie = c_victim.cookie().expect("signed cookie");
    let visitors = vec![
        Visitor {
            name: "session victim",
            app: s_app.clone(),
            cookie: Some(s_victim_cookie.clone()),
        },
        Visitor {
            name: "session shopper",
            app: s_app.clone(),
            cookie: s_shopper.cookie(),
        },
        Visitor {
            name: "session newcomer",
            app: s_app.clone(),
            cookie: None,
        },
        Visitor {
            name: "cookie victim",
            app: c_app.clone(),
            cookie: Some(c_victim_cookie.clone()),
        },
        Visitor {
            name: "cookie shopper",
            app: c_app.clone(),
            cookie: c_shopper.cookie(),
        },
        Visitor {
            name: "cookie newcomer",
            app: c_app.clone(),
            cookie: None,
        },
    ];
    // The expiring session ends now (one second of inactivity).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    let baseline = db.snapshot().await;
    let mut suite = Suite {
        db,
        baseline,
        visitors,
        ids,
        tally: BTreeMap::new(),
        failures: setup_failures,
        set_cookies_checked: setup_cookies.len(),
    };

    quantities(&mut suite).await;
    suite.unchanged("quantity").await;
    ids_and_kinds(&mut suite).await;
    suite.unchanged("ids and kinds").await;
    big_bodies(&mut suite).await;
    suite.unchanged("10 MB bodies").await;
    bad_encodings(&mut suite).await;
    suite.unchanged("invalid UTF-8").await;
    content_types(&mut suite).await;
    suite.unchanged("content types").await;
    duplicates(&mut suite).await;
    suite.unchanged("duplicate fields").await;
    discount_codes(&mut suite).await;
    suite.unchanged("discount codes").await;
    cross_site(&mut suite).await;
    suite.unchanged("cross-site").await;
    methods(&mut suite).await;
    suite.unchanged("methods").await;
    let apps = Apps {
        session: s_app,
        cookie: c_app,
        expiring: e_app,
    };
    cookies(
        &mut suite,
        &apps,
        &CookieValues {
            session_victim: s_victim_cookie,
            signed_victim: c_victim_cookie,
            session_buyer: buyer_session,
            signed_buyer: buyer_cookie,
            expired_session,
        },
    )
    .await;
    suite.unchanged("cookies").await;

    // The visitors still see exactly their carts.
    for (app, cookie, count, code) in [
        (&apps.session, suite.visitors[0].cookie.clone(), 3, "SAVE10"),
        (&apps.cookie, suite.visitors[3].cookie.clone(), 4, "SAVE10"),
    ] {
        let mut req = Request::builder().uri("/cart").header(header::ACCEPT, JSON);
        if let Some(cookie) = cookie {
            req = req.header(header::COOKIE, cookie);
        }
        let reply = send(app, req.body(Body::empty()).expect("request"))
            .await
            .expect("no panic");
        let cart: Value = serde_json::from_slice(&reply.body).expect("cart JSON");
        assert_eq!(cart["count"], count, "{cart}");
        assert_eq!(cart["discount_code"], code, "{cart}");
    }

    suite.report();
    assert!(
        suite.failures.is_empty(),
        "{} failures:\n{}",
        suite.failures.len(),
        suite.failures.join("\n")
    );
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "panics in the test binary"
    );
}

// ---- categories --------------------------------------------------------------------------

const TWO_POW_63: &str = "9223372036854775808";
const TEN_POW_12: &str = "1000000000000";

async fn quantities(suite: &mut Suite) {
    let cat = "quantity";
    let not_whole = |p: Probe| p.expect(StatusCode::BAD_REQUEST, "invalid_quantity");
    // As typed in a form, or as a JSON string: (value, message on add, message on update).
    let typed: &[(&str, Option<&str>, Option<&str>)] = &[
        ("0", Some("Quantity must be at least 1."), None),
        (
            "-1",
            Some("Quantity must be at least 1."),
            Some("Quantity cannot be negative."),
        ),
        ("1.5", None, None),
        ("abc", None, None),
        (
            TEN_POW_12,
            Some("Quantity cannot exceed 99."),
            Some("Quantity cannot exceed 99."),
        ),
        (
            TWO_POW_63,
            Some("Quantity cannot exceed 99."),
            Some("Quantity cannot exceed 99."),
        ),
        (
            "-9223372036854775809",
            Some("Quantity must be at least 1."),
            Some("Quantity cannot be negative."),
        ),
        (
            "99999999999999999999999999",
            Some("Quantity cannot exceed 99."),
            Some("Quantity cannot exceed 99."),
        ),
        ("", None, None),
        ("   ", None, None),
        ("+1", None, None),
        ("1e3", None, None),
        ("0x10", None, None),
        ("1_000", None, None),
        ("1,5", None, None),
        ("1 2", None, None),
        ("NaN", None, None),
        ("Infinity", None, None),
        ("\u{ff11}", None, None), // fullwidth 1
        ("\u{663}", None, None),  // Arabic-Indic 3
        ("1\u{0}", None, None),
        ("--1", None, None),
        (
            "100",
            Some("Quantity cannot exceed 99."),
            Some("Quantity cannot exceed 99."),
        ),
    ];
    for (value, on_add, on_update) in typed {
        let label = format!("{value:?}");
        for (path, message) in [
            ("/cart/add/book/1", on_add),
            ("/cart/update/book/1", on_update),
        ] {
            // 0 on update is the documented way to remove a line: sent for a product that
            // is in no cart instead.
            let path = if *value == "0" && path.contains("update") {
                "/cart/update/book/4"
            } else {
                path
            };
            let expect_404 = path == "/cart/update/book/4";
            for probe in [
                Probe::form(path, &format!("quantity={}", form_value(value))),
                Probe::json(path, &json!({ "quantity": value })),
            ] {
                let probe = if expect_404 {
                    probe.expect(StatusCode::NOT_FOUND, "item_does_not_exist")
                } else {
                    let p = not_whole(probe);
                    match message {
                        Some(m) => p.says(m),
                        None => p,
                    }
                };
                suite.run(cat, &label, probe).await;
            }
        }
    }
    // As JSON values other than strings.
    let values: Vec<(Value, &str)> = vec![
        (json!(0), "add only"),
        (json!(-1), ""),
        (json!(1.5), ""),
        (json!(1e12), ""),
        (json!(9_223_372_036_854_775_808u64), ""),
        (json!(u64::MAX), ""),
        (json!(-9.3e18), ""),
        (json!(1e300), ""),
        (json!(-0.5), ""),
        (json!(true), ""),
        (json!([]), ""),
        (json!([1]), ""),
        (json!({"n": 1}), ""),
        (json!(100), ""),
    ];
    for (value, only) in values {
        let label = format!("JSON {value}");
        for path in ["/cart/add/book/1", "/cart/update/book/1"] {
            if only == "add only" && path.contains("update") {
                continue;
            }
            suite
                .run(
                    cat,
                    &label,
                    not_whole(Probe::json(path, &json!({ "quantity": value }))),
                )
                .await;
        }
    }
    // Numbers JSON cannot hold at all.
    for raw in [
        "{\"quantity\": 1e400}",
        "{\"quantity\": -}",
        "{\"quantity\": 01}",
    ] {
        for path in ["/cart/add/book/1", "/cart/update/book/1"] {
            suite
                .run(
                    cat,
                    raw,
                    Probe::post(path, Some(JSON), Payload::text(raw))
                        .expect(StatusCode::BAD_REQUEST, "invalid_json"),
                )
                .await;
        }
    }
    // A missing quantity on update.
    for (label, probe) in [
        (
            "absent (form)",
            Probe::form("/cart/update/book/1", "other=1"),
        ),
        (
            "absent (JSON)",
            Probe::json("/cart/update/book/1", &json!({})),
        ),
        (
            "null (JSON)",
            Probe::json("/cart/update/book/1", &json!({"quantity": null})),
        ),
        (
            "no body",
            Probe::post("/cart/update/book/1", None, Payload::Empty),
        ),
    ] {
        suite
            .run(cat, label, not_whole(probe).says("Quantity is required."))
            .await;
    }
}

async fn ids_and_kinds(suite: &mut Suite) {
    let ids: Vec<Vec<u8>> = [
        "abc",
        "-1",
        TWO_POW_63,
        "9223372036854775807",
        "99999999999999999999999",
        "18446744073709551616",
        "0",
        "999",
        "1.0",
        "1e3",
        "0x1",
        "+1",
        " 1",
        "1 ",
        "\u{ff11}",
        "\u{663}",
        "1;DROP TABLE cart_items",
        "' OR 1=1 --",
        "1\u{0}",
        "4",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .chain([vec![0xff, 0xfe], vec![b'1', 0xc3]])
    .collect();
    for id in &ids {
        let label = format!("id {:?}", String::from_utf8_lossy(id));
        let seg = enc(id);
        suite
            .run(
                "ids",
                &label,
                Probe::form(format!("/cart/add/book/{seg}"), "quantity=1")
                    .expect(StatusCode::NOT_FOUND, "product_not_found"),
            )
            .await;
        for action in ["update", "remove"] {
            suite
                .run(
                    "ids",
                    &label,
                    Probe::form(format!("/cart/{action}/book/{seg}"), "quantity=1")
                        .expect(StatusCode::NOT_FOUND, "item_does_not_exist"),
                )
                .await;
        }
    }

    let long = "k".repeat(51);
    let longer = "k".repeat(5000);
    let kinds: Vec<Vec<u8>> = [
        "dvd",
        "Book",
        "BOOK",
        "book ",
        " book",
        long.as_str(),
        longer.as_str(),
        "<script>alert(1)</script>",
        "book'--",
        "book\"; DROP TABLE cart_items; --",
        "book\u{0}",
        "b\u{f6}ok",
        "..",
        ".",
        "book;1",
        "cart_items",
        "__discount__",
        "book:1",
        "b%6Fok",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .chain([vec![0xff], vec![b'b', 0xc3, 0x28]])
    .collect();
    for kind in &kinds {
        let label = format!("kind {:?}", shorten(&String::from_utf8_lossy(kind)));
        let seg = enc(kind);
        suite
            .run(
                "unknown kinds",
                &label,
                Probe::form(format!("/cart/add/{seg}/1"), "quantity=1")
                    .expect(StatusCode::NOT_FOUND, "product_not_found"),
            )
            .await;
        for action in ["update", "remove"] {
            suite
                .run(
                    "unknown kinds",
                    &label,
                    Probe::form(format!("/cart/{action}/{seg}/1"), "quantity=1")
                        .expect(StatusCode::NOT_FOUND, "item_does_not_exist"),
                )
                .await;
        }
    }
}

/// Every POST route, with a body that would be accepted if it were not the problem.
fn post_routes() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("/cart/add/book/1", "quantity=1", json!({"quantity": 1})),
        ("/cart/update/book/1", "quantity=5", json!({"quantity": 5})),
        ("/cart/remove/book/1", "x=1", json!({})),
        ("/cart/clear", "x=1", json!({})),
        ("/cart/discount", "code=SAVE10", json!({"code": "SAVE10"})),
        ("/cart/discount/remove", "x=1", json!({})),
        ("/cart/checkout", "x=1", json!({})),
    ]
}

async fn big_bodies(suite: &mut Suite) {
    let cat = "10 MB bodies";
    let ten_mb = 10 * 1024 * 1024;
    let mut form = b"quantity=1&pad=".to_vec();
    form.resize(ten_mb, b'a');
    let form = Bytes::from(form);
    let mut json_body = b"{\"quantity\": 1, \"pad\": \"".to_vec();
    json_body.resize(ten_mb - 2, b'a');
    json_body.extend_from_slice(b"\"}");
    let json_body = Bytes::from(json_body);
    for (path, _, _) in post_routes() {
        let too_large = |p: Probe| p.expect(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        let variants = [
            (
                "form, declared length",
                Probe::post(path, Some(FORM), Payload::Bytes(form.clone()))
                    .header("content-length", hv(&ten_mb.to_string())),
            ),
            (
                "JSON, declared length",
                Probe::post(path, Some(JSON), Payload::Bytes(json_body.clone()))
                    .header("content-length", hv(&ten_mb.to_string())),
            ),
            (
                "form, streamed without length",
                Probe::post(path, Some(FORM), Payload::Trickle(ten_mb)),
            ),
            (
                "JSON, declared 10 bytes",
                Probe::post(path, Some(JSON), Payload::Bytes(json_body.clone()))
                    .header("content-length", hv("10")),
            ),
            (
                "text/plain, streamed",
                Probe::post(path, Some("text/plain"), Payload::Trickle(ten_mb)),
            ),
        ];
        for (label, probe) in variants {
            suite.run(cat, label, too_large(probe)).await;
        }
    }
}

async fn bad_encodings(suite: &mut Suite) {
    let cat = "invalid UTF-8";
    let json_bodies: &[&[u8]] = &[
        b"{\"quantity\": \"\xff\"}",
        b"{\"code\": \"\xc3\x28\"}",
        b"{\"\xff\xfe\": 1}",
        b"\xff\xfe{\x00}\x00",
        b"\xef\xbb\xbf{\"quantity\": 1}",
        b"{\"quantity\": \"\\ud800\"}",
        b"\xed\xa0\x80",
    ];
    for body in json_bodies {
        let label = format!("JSON {}", String::from_utf8_lossy(body).escape_debug());
        for (path, _, _) in post_routes() {
            suite
                .run(
                    cat,
                    &label,
                    Probe::post(path, Some(JSON), Payload::raw(body))
                        .expect(StatusCode::BAD_REQUEST, "invalid_json"),
                )
                .await;
        }
    }
    // The JSON string "\ud800" is a lone surrogate: serde_json refuses it as a string,
    // so it is in the list above. In a form, bytes that are not UTF-8 decode to U+FFFD.
    let quantity_forms: &[&[u8]] = &[
        b"quantity=\xff\xfe",
        b"quantity=%FF%FE",
        b"quantity=1\xff",
        b"quantity=\xc3\x28",
        b"quantity=%C0%B1",
    ];
    for body in quantity_forms {
        let label = format!("form {}", String::from_utf8_lossy(body).escape_debug());
        for path in ["/cart/add/book/1", "/cart/update/book/1"] {
            suite
                .run(
                    cat,
                    &label,
                    Probe::post(path, Some(FORM), Payload::raw(body))
                        .expect(StatusCode::BAD_REQUEST, "invalid_quantity"),
                )
                .await;
        }
    }
    let code_forms: &[&[u8]] = &[
        b"code=\xff\xfe",
        b"code=%FF%FE",
        b"code=SAVE10\xff",
        b"code=%C3%28",
    ];
    for body in code_forms {
        let label = format!("form {}", String::from_utf8_lossy(body).escape_debug());
        suite
            .run(
                cat,
                &label,
                Probe::post("/cart/discount", Some(FORM), Payload::raw(body))
                    .expect(StatusCode::UNPROCESSABLE_ENTITY, "invalid_discount"),
            )
            .await;
    }
}

async fn content_types(suite: &mut Suite) {
    let cat = "content types";
    let types: &[Option<&str>] = &[
        Some("text/plain"),
        Some("application/xml"),
        Some("text/xml"),
        Some("text/html"),
        Some("multipart/form-data; boundary=x"),
        Some("application/octet-stream"),
        Some("application/x-www-form-urlencoded-evil"),
        Some("application/jsonp"),
        Some("text/json"),
        Some("json"),
        Some(""),
        None,
    ];
    for content_type in types {
        let label = format!("{content_type:?}");
        for (path, form, json_body) in post_routes() {
            for body in [form.to_owned(), json_body.to_string()] {
                let mut probe = Probe::post(path, None, Payload::text(body));
                if let Some(t) = content_type {
                    probe = probe.header("content-type", hv(t));
                }
                suite
                    .run(
                        cat,
                        &label,
                        probe.expect(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
                    )
                    .await;
            }
        }
    }
}

async fn duplicates(suite: &mut Suite) {
    let cat = "duplicate fields";
    let bad_quantity = |p: Probe| p.expect(StatusCode::BAD_REQUEST, "invalid_quantity");
    // When a form field is repeated, the first one counts: a bad first value is refused
    // whatever follows.
    for body in [
        "quantity=abc&quantity=2",
        "quantity=0&quantity=1",
        "quantity=1000&quantity=1",
        "quantity=&quantity=1",
        "quantity=1.5&quantity=1&quantity=1",
    ] {
        suite
            .run(
                cat,
                body,
                bad_quantity(Probe::form("/cart/add/book/1", body)),
            )
            .await;
    }
    for body in [
        "quantity=-1&quantity=3",
        "quantity=x&quantity=1",
        "quantity=100&quantity=1",
    ] {
        suite
            .run(
                cat,
                body,
                bad_quantity(Probe::form("/cart/update/book/1", body)),
            )
            .await;
    }
    for body in [
        "code=BOGUS&code=SAVE10",
        "code=&code=SAVE10",
        "code=%20&code=SAVE10",
    ] {
        suite
            .run(
                cat,
                body,
                Probe::form("/cart/discount", body)
                    .expect(StatusCode::UNPROCESSABLE_ENTITY, "invalid_discount"),
            )
            .await;
    }
    // JSON with a repeated key where every copy is bad.
    for (path, raw, status, code) in [
        (
            "/cart/add/book/1",
            "{\"quantity\": \"abc\", \"quantity\": 0}",
            StatusCode::BAD_REQUEST,
            "invalid_quantity",
        ),
        (
            "/cart/update/book/1",
            "{\"quantity\": -1, \"quantity\": \"x\"}",
            StatusCode::BAD_REQUEST,
            "invalid_quantity",
        ),
        (
            "/cart/discount",
            "{\"code\": \"BOGUS\", \"code\": \"NOPE\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_discount",
        ),
    ] {
        suite
            .run(
                cat,
                raw,
                Probe::post(path, Some(JSON), Payload::text(raw)).expect(status, code),
            )
            .await;
    }
}

async fn discount_codes(suite: &mut Suite) {
    let cat = "discount codes";
    let huge = "A".repeat(10_000);
    let huge_sql = format!("SAVE10' OR '1'='1{}", "-".repeat(9_980));
    let codes: Vec<&str> = vec![
        &huge,
        &huge_sql,
        "' OR 1=1 --",
        "\"; DROP TABLE cart_items; --",
        "SAVE10' --",
        "SAVE10\" --",
        "' UNION SELECT code FROM cart_discounts --",
        "SAVE10'; UPDATE cart_discounts SET max_uses = NULL; --",
        "%",
        "_",
        "SAVE1_",
        "SAVE%",
        "*",
        "SAVE10\u{0}",
        "\u{0}",
        "SAVE\u{202e}01",
        "<script>alert(1)</script>",
        "SAVE 10",
        "EXPIRED",
        "FUTURE",
        "OFF",
        "USEDUP",
        "BIGMIN",
        "",
        "   ",
    ];
    for code in codes {
        let label = shorten(&format!("{code:?}"));
        for probe in [
            Probe::form("/cart/discount", &format!("code={}", form_value(code))),
            Probe::json("/cart/discount", &json!({ "code": code })),
        ] {
            suite
                .run(
                    cat,
                    &label,
                    probe.expect(StatusCode::UNPROCESSABLE_ENTITY, "invalid_discount"),
                )
                .await;
        }
    }
    for value in [
        json!(1),
        json!(true),
        json!(["SAVE10"]),
        json!({"$ne": ""}),
        json!({"code": "SAVE10"}),
    ] {
        suite
            .run(
                cat,
                &format!("JSON {value}"),
                Probe::json("/cart/discount", &json!({ "code": value }))
                    .expect(StatusCode::BAD_REQUEST, "invalid_discount"),
            )
            .await;
    }
    for (label, probe) in [
        ("absent (JSON)", Probe::json("/cart/discount", &json!({}))),
        (
            "null (JSON)",
            Probe::json("/cart/discount", &json!({"code": null})),
        ),
        (
            "absent (form)",
            Probe::form("/cart/discount", "other=SAVE10"),
        ),
        (
            "no body",
            Probe::post("/cart/discount", None, Payload::Empty),
        ),
    ] {
        suite
            .run(
                cat,
                label,
                probe
                    .expect(StatusCode::UNPROCESSABLE_ENTITY, "invalid_discount")
                    .says("Enter a discount code."),
            )
            .await;
    }
}

async fn cross_site(suite: &mut Suite) {
    let cat = "cross-site";
    let mut headers: Vec<(String, Vec<(&'static str, HeaderValue)>)> = Vec::new();
    for origin in [
        "https://evil.test",
        "http://evil.test",
        "null",
        "http://shop.test.evil.test",
        "http://evil.test:80",
        "http://shop.test:8080",
        "http://shop.test@evil.test",
        "http://evil.test#shop.test",
        "shop.test",
        "http://",
        "",
        "HTTP://EVIL.TEST",
    ] {
        headers.push((format!("Origin {origin:?}"), vec![("origin", hv(origin))]));
    }
    headers.push((
        "Origin non-UTF-8".into(),
        vec![(
            "origin",
            HeaderValue::from_bytes(b"http://shop.test\xff").expect("obs-text"),
        )],
    ));
    for site in [
        "cross-site",
        "CROSS-SITE",
        "unknown",
        "",
        "cross-site, same-origin",
    ] {
        headers.push((
            format!("Sec-Fetch-Site {site:?}"),
            vec![("sec-fetch-site", hv(site))],
        ));
    }
    headers.push((
        "Sec-Fetch-Site cross-site + same Origin".into(),
        vec![
            ("sec-fetch-site", hv("cross-site")),
            ("origin", hv("http://shop.test")),
        ],
    ));
    for (label, extra) in headers {
        for (path, form, json_body) in post_routes() {
            for mut probe in [Probe::form(path, form), Probe::json(path, &json_body)] {
                probe.headers.extend(extra.iter().cloned());
                suite
                    .run(
                        cat,
                        &label,
                        probe.expect(StatusCode::FORBIDDEN, "cross_site_request"),
                    )
                    .await;
            }
        }
    }
    // An Origin with no Host to compare it to.
    for (path, form, _) in post_routes() {
        let probe = Probe::form(path, form)
            .header("origin", hv("http://shop.test"))
            .expect(StatusCode::FORBIDDEN, "cross_site_request");
        let targets: Vec<(String, Router, Option<String>)> = suite
            .visitors
            .iter()
            .map(|v| (v.name.to_owned(), v.app.clone(), v.cookie.clone()))
            .collect();
        for (who, app, cookie) in targets {
            for format in [Format::Json, Format::Html] {
                let mut req = Suite::request(&probe, cookie.as_deref(), format);
                req.headers_mut().remove(header::HOST);
                let tally = suite.tally.entry(cat).or_default();
                tally.inputs.insert("Origin without Host".into());
                tally.requests += 1;
                match send(&app, req).await {
                    Some(reply) => {
                        *tally.statuses.entry(reply.status.as_u16()).or_default() += 1;
                        if let Err(e) = suite.check(&probe, format, &reply) {
                            suite
                                .failures
                                .push(format!("[{cat}] Origin without Host {path} as {who}: {e}"));
                        }
                    }
                    None => suite.failures.push(format!("[{cat}] {path}: panicked")),
                }
            }
        }
    }
}

async fn methods(suite: &mut Suite) {
    let cat = "methods";
    let mut routes: Vec<&str> = post_routes().iter().map(|(p, _, _)| *p).collect();
    routes.extend(["/cart", "/cart/shipping-options"]);
    for method in ["PUT", "DELETE", "PATCH", "TRACE", "OPTIONS", "PROPFIND"] {
        for path in &routes {
            let mut probe = Probe::form(*path, "quantity=1")
                .expect(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
            probe.method = Method::from_bytes(method.as_bytes()).expect("method");
            suite.run(cat, method, probe).await;
        }
    }
    for (path, _, _) in post_routes() {
        suite
            .run(
                cat,
                "GET",
                Probe::get(path).expect(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            )
            .await;
    }
}

struct Apps {
    session: Router,
    cookie: Router,
    expiring: Router,
}

struct CookieValues {
    session_victim: String,
    signed_victim: String,
    session_buyer: String,
    signed_buyer: String,
    expired_session: String,
}

/// What a visitor whose cookie is ignored sees: an empty cart, never an error page, and
/// nothing of anyone else's cart.
fn ignored_cookie_probes() -> Vec<Probe> {
    vec![
        Probe::get("/cart").ok_empty(),
        Probe::get("/cart/shipping-options"),
        Probe::json("/cart/update/book/1", &json!({"quantity": 50}))
            .expect(StatusCode::NOT_FOUND, "item_does_not_exist"),
        Probe::json("/cart/update/coffee/7", &json!({"quantity": 50}))
            .expect(StatusCode::NOT_FOUND, "item_does_not_exist"),
        Probe::form("/cart/remove/book/2", "").expect(StatusCode::NOT_FOUND, "item_does_not_exist"),
        Probe::json("/cart/checkout", &json!({}))
            .expect(StatusCode::UNPROCESSABLE_ENTITY, "empty_cart"),
        Probe::json("/cart/clear", &json!({})).ok_empty(),
        Probe::json("/cart/discount/remove", &json!({})).ok_empty(),
    ]
}

async fn cookies(suite: &mut Suite, apps: &Apps, values: &CookieValues) {
    let value_of = |cookie: &str, name: &str| -> String {
        cookie
            .split("; ")
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .expect("cookie value")
            .to_owned()
    };
    let session = value_of(&values.session_victim, "id");
    let signed = value_of(&values.signed_victim, "CART-ID");
    let victim_id = suite.ids[0].clone();
    let c_victim_id = suite.ids[3].clone();
    // The signed value is `<MAC><id>.<issued at>`: tampering changes the id, keeps the rest.
    let id_at = signed
        .rfind(&format!("{c_victim_id}."))
        .expect("the id in the signed cookie");
    let mac = &signed[..id_at];
    let issued = &signed[id_at + c_victim_id.len()..];
    let flip = |s: &str, at: usize| -> String {
        s.char_indices()
            .map(|(i, c)| {
                if i == at {
                    if c == 'A' {
                        'B'
                    } else {
                        'A'
                    }
                } else {
                    c
                }
            })
            .collect()
    };
    let other_key = {
        let mut jar = CookieJar::new();
        jar.signed_mut(&Key::generate())
            .add(Cookie::new("CART-ID", c_victim_id.clone()));
        jar.get("CART-ID").expect("signed").value().to_owned()
    };
    let many = |name: &str, n: usize| -> String {
        (0..n)
            .map(|i| format!("{name}=forged{i}"))
            .collect::<Vec<_>>()
            .join("; ")
    };

    // (category, label, app, raw Cookie header bytes)
    let s = &apps.session;
    let c = &apps.cookie;
    let cases: Vec<(&'static str, String, &Router, Vec<u8>)> = vec![
        (
            "session cookie: tampered",
            "last char".into(),
            s,
            format!("id={}", flip(&session, session.len() - 1)).into_bytes(),
        ),
        (
            "session cookie: tampered",
            "first char".into(),
            s,
            format!("id={}", flip(&session, 0)).into_bytes(),
        ),
        (
            "session cookie: tampered",
            "upper-cased".into(),
            s,
            format!("id={}", session.to_uppercase()).into_bytes(),
        ),
        (
            "session cookie: tampered",
            "one char longer".into(),
            s,
            format!("id={session}A").into_bytes(),
        ),
        (
            "session cookie: tampered",
            "one char shorter".into(),
            s,
            format!("id={}", &session[..session.len() - 1]).into_bytes(),
        ),
        (
            "session cookie: forged",
            "all A".into(),
            s,
            b"id=AAAAAAAAAAAAAAAAAAAAAA".to_vec(),
        ),
        (
            "session cookie: forged",
            "random id".into(),
            s,
            b"id=q83vEjRWeJCrze8SNFZ4kA".to_vec(),
        ),
        (
            "session cookie: forged",
            "the cart id".into(),
            s,
            format!("id={victim_id}").into_bytes(),
        ),
        (
            "session cookie: forged",
            "CART-ID cookie".into(),
            s,
            format!("CART-ID={victim_id}").into_bytes(),
        ),
        (
            "session cookie: forged",
            "the signed cookie".into(),
            s,
            format!("CART-ID={signed}").into_bytes(),
        ),
        (
            "session cookie: forged",
            "path traversal".into(),
            s,
            b"id=../../etc/passwd".to_vec(),
        ),
        (
            "session cookie: forged",
            "SQL".into(),
            s,
            b"id=' OR 1=1 --".to_vec(),
        ),
        ("session cookie: forged", "empty".into(), s, b"id=".to_vec()),
        (
            "session cookie: forged",
            "non-UTF-8".into(),
            s,
            b"id=\xff\xfe".to_vec(),
        ),
        (
            "session cookie: expired",
            "checked-out buyer's session".into(),
            s,
            values.session_buyer.clone().into_bytes(),
        ),
        (
            "session cookie: oversized",
            "4 KiB id".into(),
            s,
            format!("id={}", "A".repeat(4096)).into_bytes(),
        ),
        (
            "session cookie: oversized",
            "64 KiB id".into(),
            s,
            format!("id={}", "A".repeat(65_536)).into_bytes(),
        ),
        (
            "session cookie: oversized",
            "1000 cookies".into(),
            s,
            many("c", 1000).into_bytes(),
        ),
        (
            "session cookie: oversized",
            "500 forged ids".into(),
            s,
            many("id", 500).into_bytes(),
        ),
        (
            "signed cookie: tampered",
            "first MAC char".into(),
            c,
            format!("CART-ID={}", flip(&signed, 0)).into_bytes(),
        ),
        (
            "signed cookie: tampered",
            "id + 1".into(),
            c,
            format!(
                "CART-ID={mac}{}{issued}",
                c_victim_id.parse::<i64>().unwrap_or(0) + 1
            )
            .into_bytes(),
        ),
        (
            "signed cookie: tampered",
            "another visitor's id".into(),
            c,
            format!("CART-ID={mac}{victim_id}{issued}").into_bytes(),
        ),
        (
            "signed cookie: tampered",
            "leading zero".into(),
            c,
            format!("CART-ID={mac}0{c_victim_id}{issued}").into_bytes(),
        ),
        (
            "signed cookie: tampered",
            "appended x".into(),
            c,
            format!("CART-ID={signed}x").into_bytes(),
        ),
        (
            "signed cookie: tampered",
            "MAC only".into(),
            c,
            format!("CART-ID={mac}").into_bytes(),
        ),
        (
            "signed cookie: forged",
            "unsigned id".into(),
            c,
            format!("CART-ID={c_victim_id}").into_bytes(),
        ),
        (
            "signed cookie: forged",
            "signed with another key".into(),
            c,
            format!("CART-ID={other_key}").into_bytes(),
        ),
        (
            "signed cookie: forged",
            "zero MAC".into(),
            c,
            format!("CART-ID={}{c_victim_id}", "A".repeat(mac.len())).into_bytes(),
        ),
        (
            "signed cookie: forged",
            "garbage".into(),
            c,
            b"CART-ID=garbage%%%;;".to_vec(),
        ),
        (
            "signed cookie: forged",
            "empty".into(),
            c,
            b"CART-ID=".to_vec(),
        ),
        (
            "signed cookie: forged",
            "the session cookie".into(),
            c,
            format!("id={session}").into_bytes(),
        ),
        (
            "signed cookie: forged",
            "non-UTF-8".into(),
            c,
            b"CART-ID=\xff\xfe".to_vec(),
        ),
        (
            "signed cookie: expired",
            "checked-out buyer's cookie replayed".into(),
            c,
            values.signed_buyer.clone().into_bytes(),
        ),
        (
            "signed cookie: expired",
            "forged with Max-Age=0 / Expires".into(),
            c,
            format!("CART-ID={c_victim_id}; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
                .into_bytes(),
        ),
        (
            "signed cookie: oversized",
            "10,000-digit id".into(),
            c,
            format!("CART-ID={mac}{}{issued}", "1".repeat(10_000)).into_bytes(),
        ),
        (
            "signed cookie: oversized",
            "100 KiB value".into(),
            c,
            format!("CART-ID={}", "A".repeat(100_000)).into_bytes(),
        ),
        (
            "signed cookie: oversized",
            "1000 forged copies".into(),
            c,
            many("CART-ID", 1000).into_bytes(),
        ),
    ];
    for (cat, label, app, raw) in cases {
        let cookie = HeaderValue::from_bytes(&raw).expect("cookie header");
        // A checked-out buyer's own cookie still names the placed order: a repeated
        // checkout gets that order back (200, checked out, nothing changed); everything
        // else is a fresh, empty cart.
        let replays = cat.ends_with(": expired") && label.contains("checked-out buyer");
        let probes = ignored_cookie_probes().into_iter().map(|probe| {
            if replays && probe.path == "/cart/checkout" {
                Probe::json("/cart/checkout", &json!({}))
            } else {
                probe
            }
        });
        for probe in probes {
            let probe = probe.header("cookie", cookie.clone());
            suite
                .run_on(cat, &label, "attacker", app, None, &probe)
                .await;
        }
    }
    // A tower-sessions session that expired in the store.
    let cookie = hv(&values.expired_session);
    for probe in ignored_cookie_probes() {
        let probe = probe.header("cookie", cookie.clone());
        suite
            .run_on(
                "session cookie: expired",
                "expired in the store",
                "returning visitor",
                &apps.expiring,
                None,
                &probe,
            )
            .await;
    }
}
