//! The machine-readable contract of the cart routes: the OpenAPI document they serve, the
//! RFC 9457 problems they answer errors with, and the rate limit of discount code attempts.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use axum_cart::{CartLayer, CartRouter, Carts, NewDiscount};
use serde_json::Value;
use tower::ServiceExt;
use tower_sessions::{MemoryStore, SessionManagerLayer};

use common::{d, Harness};

backend_tests!(
    errors_are_problems_and_html_clients_keep_their_pages,
    a_conflict_carries_the_current_cart,
    discount_attempts_are_limited_per_visitor,
    discount_attempts_are_limited_per_address,
    the_default_limit_is_ten_attempts_a_minute,
);

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

/// The `| \`METHOD /path\` |` rows of `cart_router`'s documentation table.
fn documented_routes() -> BTreeSet<(String, String)> {
    let source = include_str!("../src/http/router/mod.rs");
    source
        .lines()
        .filter_map(|line| {
            let row = line.strip_prefix("/// | `")?;
            let (route, _) = row.split_once('`')?;
            let (method, path) = route.split_once(' ')?;
            Some((method.to_ascii_lowercase(), path.to_owned()))
        })
        .collect()
}

/// The (method, path) pairs of an OpenAPI document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            ops.insert((method.clone(), path.clone()));
        }
    }
    ops
}

fn document() -> Value {
    serde_json::to_value(CartRouter::openapi()).expect("document")
}

#[test]
fn the_document_describes_every_route_of_the_router() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented = documented_routes();
    assert_eq!(documented.len(), 14, "{documented:?}");
    assert_eq!(
        operations(&doc),
        documented,
        "the OpenAPI document and the routes table of cart_router differ"
    );
    for (method, path) in &documented {
        let op = &doc["paths"][path][method];
        let responses = op["responses"].as_object().expect("responses");
        assert!(responses.contains_key("200"), "{method} {path}");
        if path != "/cart/openapi.json" {
            assert!(responses.contains_key("500"), "{method} {path}");
        }
        if method == "post" {
            for status in ["303", "400", "403", "409", "412", "413", "415", "503"] {
                assert!(responses.contains_key(status), "{method} {path}: {status}");
            }
        }
        assert!(op["operationId"].is_string(), "{method} {path}");
    }
    let discount = &doc["paths"]["/cart/discount"]["post"]["responses"];
    assert!(discount.get("429").is_some());
    let schemas = &doc["components"]["schemas"];
    for name in [
        "Problem",
        "CartDetails",
        "CartItem",
        "QuantityRule",
        "PriceChange",
    ] {
        assert!(schemas.get(name).is_some(), "{name}");
    }
    // Money is a decimal string, never a number.
    assert_eq!(
        schemas["CartDetails"]["properties"]["total"]["type"],
        "string"
    );
    assert_eq!(
        schemas["CartItem"]["properties"]["unit_price"]["type"],
        "string"
    );
    let problem = &schemas["Problem"]["required"];
    for member in ["type", "title", "status", "detail", "code", "error"] {
        assert!(
            problem.as_array().unwrap().iter().any(|m| m == member),
            "{member}"
        );
    }
}

/// The app of these tests: the cart routes behind the layer and a memory session store.
fn app(carts: &Carts, router: CartRouter) -> Router {
    router
        .build()
        .layer(common::problems_checked())
        .layer(CartLayer::new(carts.clone()))
        .layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false))
}

#[tokio::test]
async fn every_documented_route_is_served_and_the_document_is_too() {
    let h = Harness::sqlite().await.expect("sqlite");
    let carts = h.builder().catalog(common::TestCatalog::default()).build();
    let app = app(&carts, CartRouter::new());
    let doc = document();
    for (method, path) in operations(&doc) {
        let uri = path
            .replace("{kind}", "book")
            .replace("{id}", "1")
            .replace("{line}", "book:1");
        let req = Request::builder()
            .method(method.to_ascii_uppercase().as_str())
            .uri(&uri)
            .header(header::ACCEPT, JSON)
            .body(Body::empty())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let documented = doc["paths"][&path][&method]["responses"]
            .get(status.as_str())
            .is_some();
        assert!(documented, "{method} {uri}: {status} is not documented");
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
    }
    let res = app
        .clone()
        .oneshot(
            Request::get("/cart/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], JSON);
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let served: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(served, doc, "the served document is CartRouter::openapi()");
}

#[test]
fn every_problem_code_is_described_in_the_problems_page() {
    let page = include_str!("../docs/PROBLEMS.md");
    let described: BTreeSet<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("### `")?.strip_suffix('`'))
        .collect();
    // The codes the source can answer with: the arms of `CartError::code` and of the
    // quantity refusals, and the literal codes of the HTTP layer's problems.
    let mut codes = BTreeSet::new();
    for source in [
        include_str!("../src/error.rs"),
        include_str!("../src/rules.rs"),
    ] {
        let (_, body) = source.split_once("fn code(&self)").expect("fn code");
        let (body, _) = body.split_once("\n    }\n").expect("its end");
        for line in body.lines() {
            if let Some((_, rest)) = line.split_once("=> \"") {
                if let Some((code, _)) = rest.split_once('"') {
                    codes.insert(code.to_owned());
                }
            }
        }
    }
    for source in [
        include_str!("../src/http/body.rs"),
        include_str!("../src/http/extract.rs"),
        include_str!("../src/http/same_site.rs"),
        include_str!("../src/http/router/mod.rs"),
        include_str!("../src/http/router/lines.rs"),
        include_str!("../src/http/router/actions.rs"),
        include_str!("../src/http/router/limit.rs"),
        include_str!("../src/http/router/conditional.rs"),
        include_str!("../src/http/router/idempotency.rs"),
    ] {
        let mut after_status = false;
        for line in source.lines().map(str::trim) {
            if after_status {
                if let Some(code) = line.strip_prefix('"').and_then(|l| l.strip_suffix("\",")) {
                    if code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                        codes.insert(code.to_owned());
                    }
                }
            }
            after_status = line.starts_with("StatusCode::") && line.ends_with(',');
        }
    }
    assert!(codes.len() > 30, "{codes:?}");
    let missing: Vec<_> = codes
        .iter()
        .filter(|c| !described.contains(c.as_str()))
        .collect();
    assert!(missing.is_empty(), "not in docs/PROBLEMS.md: {missing:?}");
}

/// A visitor with a cookie jar.
struct Visitor {
    app: Router,
    cookies: BTreeMap<String, String>,
    address: Option<SocketAddr>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The problem of a JSON error answer, checked for its RFC 9457 shape.
    fn problem(&self, status: StatusCode, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        let body = self.json();
        common::assert_problem(status, &self.headers, &body);
        assert_eq!(body["code"], code, "{body}");
        body
    }
}

impl Visitor {
    fn new(app: &Router) -> Visitor {
        Visitor {
            app: app.clone(),
            cookies: BTreeMap::new(),
            address: None,
        }
    }

    async fn send(&mut self, method: &str, path: &str, accept: &str, body: &str) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::ACCEPT, accept);
        if !body.is_empty() {
            let kind = if body.starts_with('{') { JSON } else { FORM };
            req = req.header(header::CONTENT_TYPE, kind);
        }
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header(header::COOKIE, c.join("; "));
        }
        let mut req = req.body(Body::from(body.to_owned())).unwrap();
        if let Some(address) = self.address {
            req.extensions_mut().insert(ConnectInfo(address));
        }
        let res = self.app.clone().oneshot(req).await.unwrap();
        for set in res.headers().get_all(header::SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.insert(k.to_owned(), v.to_owned());
        }
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn post(&mut self, path: &str, body: &str) -> Reply {
        self.send("POST", path, JSON, body).await
    }

    async fn cart(&mut self) -> Value {
        let reply = self.send("GET", "/cart", JSON, "").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.json()
    }
}

async fn errors_are_problems_and_html_clients_keep_their_pages(h: Harness) {
    let carts = h.builder().catalog(common::TestCatalog::default()).build();
    let app = app(&carts, CartRouter::new());
    let mut v = Visitor::new(&app);
    let p = v.post("/cart/add/book/1", "{\"quantity\": 0}").await;
    let body = p.problem(StatusCode::BAD_REQUEST, "invalid_quantity");
    assert_eq!(body["title"], "Invalid quantity");
    assert_eq!(
        body["type"],
        "https://github.com/axum-cart/axum-cart/blob/main/docs/PROBLEMS.md#invalid_quantity"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("Quantity"),
        "{body}"
    );
    let body = v
        .post("/cart/add/book/999", "")
        .await
        .problem(StatusCode::NOT_FOUND, "product_not_found");
    assert_eq!(body["title"], "Product not found");
    v.post("/cart/add/book/1", "{\"quantity\": ")
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_json");
    v.post("/cart/add/book/1", "{\"quantity\": 1000000000000}")
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_quantity");
    v.post("/cart/checkout", "")
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "empty_cart");
    v.post("/cart/discount", "{\"code\": \"NOPE\"}")
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_discount");
    let big = format!("{{\"code\": \"{}\"}}", "x".repeat(20_000));
    v.post("/cart/discount", &big)
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let reply = v.send("DELETE", "/cart/clear", JSON, "").await;
    reply.problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    // Nothing of the above changed the cart.
    let cart = v.cart().await;
    assert_eq!(cart["count"], 0, "{cart}");
    assert_eq!(cart["discount_code"], Value::Null, "{cart}");
    // A browser keeps the readable page.
    let page = v
        .send("POST", "/cart/add/book/1", "text/html", "quantity=0")
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(
        page.content_type().starts_with("text/html"),
        "{}",
        page.content_type()
    );
    assert!(page.body.contains("Back to your cart"), "{}", page.body);
}

async fn a_conflict_carries_the_current_cart(h: Harness) {
    let carts = h.builder().catalog(common::TestCatalog::default()).build();
    let app = app(&carts, CartRouter::new());
    let mut v = Visitor::new(&app);
    assert_eq!(
        v.post("/cart/add/book/1", "{\"quantity\": 2}").await.status,
        StatusCode::OK
    );
    assert_eq!(v.post("/cart/freeze", "").await.status, StatusCode::OK);
    for (path, body) in [
        ("/cart/add/coffee/3", ""),
        ("/cart/update/book/1", "{\"quantity\": 5}"),
        ("/cart/clear", ""),
    ] {
        let problem = v
            .post(path, body)
            .await
            .problem(StatusCode::CONFLICT, "cart_frozen");
        let cart = &problem["cart"];
        assert_eq!(cart["frozen"], true, "{problem}");
        assert_eq!(cart["count"], 2, "{problem}");
        assert_eq!(cart["items"][0]["line"], "book:1", "{problem}");
        assert_eq!(cart["items"][0]["quantity"], 2, "{problem}");
    }
    // A problem that is not a conflict does not carry the cart.
    let problem = v
        .post("/cart/add/book/1", "{\"quantity\": -1}")
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_quantity");
    assert!(problem.get("cart").is_none(), "{problem}");
}

async fn shop_with_code(h: &Harness) -> Carts {
    let carts = h.builder().catalog(common::TestCatalog::default()).build();
    carts
        .create_discount(NewDiscount::percent("SAVE10", d("10")))
        .await
        .unwrap();
    carts
}

async fn discount_attempts_are_limited_per_visitor(h: Harness) {
    let carts = shop_with_code(&h).await;
    let app = app(&carts, CartRouter::new().discount_attempts(3, 0));
    let mut guesser = Visitor::new(&app);
    assert_eq!(
        guesser.post("/cart/add/book/1", "").await.status,
        StatusCode::OK
    );
    for (guess, remaining) in [("AAAA", 2), ("BBBB", 1), ("CCCC", 0)] {
        let reply = guesser
            .post("/cart/discount", &format!("{{\"code\": \"{guess}\"}}"))
            .await;
        reply.problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_discount");
        assert_eq!(reply.headers["ratelimit-policy"], "\"visitor\";q=3;w=60");
        let state = reply.headers["ratelimit"].to_str().unwrap();
        assert!(
            state.starts_with(&format!("\"visitor\";r={remaining};t=")),
            "{state}"
        );
    }
    // The fourth attempt is refused, even with the right code, and changes nothing.
    let reply = guesser
        .post("/cart/discount", "{\"code\": \"SAVE10\"}")
        .await;
    let problem = reply.problem(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    let wait: u64 = reply.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&wait), "{wait}");
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains(&format!("{wait} seconds")));
    assert_eq!(guesser.cart().await["discount_code"], Value::Null);
    // A browser is answered with a page.
    let page = guesser
        .send("POST", "/cart/discount", "text/html", "code=SAVE10")
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.content_type().starts_with("text/html"));
    assert!(page.headers.contains_key(header::RETRY_AFTER));
    // Another visitor is not affected.
    let mut other = Visitor::new(&app);
    assert_eq!(
        other.post("/cart/add/book/2", "").await.status,
        StatusCode::OK
    );
    let reply = other.post("/cart/discount", "{\"code\": \"SAVE10\"}").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["discount_code"], "SAVE10");
    // Limits off: as many attempts as the visitor likes.
    let app = self::app(&carts, CartRouter::new().discount_attempts(0, 0));
    let mut free = Visitor::new(&app);
    free.post("/cart/add/book/3", "").await;
    for _ in 0..15 {
        let reply = free.post("/cart/discount", "{\"code\": \"NOPE\"}").await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!reply.headers.contains_key("ratelimit"));
    }
}

async fn discount_attempts_are_limited_per_address(h: Harness) {
    let carts = shop_with_code(&h).await;
    let app = app(&carts, CartRouter::new().discount_attempts(0, 2));
    let office: SocketAddr = "203.0.113.7:50000".parse().unwrap();
    let mut statuses = Vec::new();
    // Three visitors behind one address, each trying once: the third is refused.
    for _ in 0..3 {
        let mut v = Visitor::new(&app);
        v.address = Some(office);
        statuses.push(
            v.post("/cart/discount", "{\"code\": \"NOPE\"}")
                .await
                .status,
        );
    }
    assert_eq!(
        statuses,
        [
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let mut elsewhere = Visitor::new(&app);
    elsewhere.address = Some("198.51.100.1:40000".parse().unwrap());
    let reply = elsewhere
        .post("/cart/discount", "{\"code\": \"SAVE10\"}")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

async fn the_default_limit_is_ten_attempts_a_minute(h: Harness) {
    let carts = shop_with_code(&h).await;
    let app = app(&carts, CartRouter::new());
    let mut v = Visitor::new(&app);
    v.post("/cart/add/book/1", "").await;
    let mut refused_at = None;
    for attempt in 1..=12 {
        let reply = v.post("/cart/discount", "code=NOPE").await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            refused_at = Some(attempt);
            break;
        }
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(refused_at, Some(11));
}
