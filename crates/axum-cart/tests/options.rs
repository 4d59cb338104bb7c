//! Line options, quantity rules and a cart's most lines, through the library and over HTTP,
//! on every backend.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use axum_cart::{
    async_trait, AddOptions, BoxError, CartError, CartLayer, CartPayload, CartRouter, Catalog,
    Line, LineKey, LineOptions, MergeStrategy, Product, ProductOption, QuantityRule,
};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_sessions::{MemoryStore, SessionManagerLayer};

use common::{d, p, Harness};

backend_tests!(
    options_make_their_own_lines_whatever_their_order,
    options_the_product_does_not_take_are_refused_and_change_nothing,
    options_survive_merge_save_restore_and_checkout,
    quantity_rules_refuse_with_their_own_codes,
    a_full_cart_refuses_new_lines_only,
    concurrent_new_lines_never_pass_the_most_lines,
    http_adds_lines_with_options_and_changes_them_by_key,
    http_refuses_bad_options_and_rules_with_4xx_and_changes_nothing,
    admin_pages_show_and_change_lines_with_options,
);

/// The shop's products: coffee takes a grind (required), a book can be gift-wrapped
/// (+2.00) and carry a note, a course is bought once, beans come in steps of 2 up to 20.
#[derive(Debug, Clone)]
struct Thing {
    kind: &'static str,
    id: i64,
    price: Decimal,
}

impl Product for Thing {
    fn kind(&self) -> &str {
        self.kind
    }
    fn id(&self) -> i64 {
        self.id
    }
    fn price(&self) -> Option<Decimal> {
        Some(self.price)
    }
    fn name(&self) -> String {
        format!("{} {}", self.kind, self.id)
    }
    fn options(&self) -> Vec<ProductOption> {
        match self.kind {
            "coffee" => {
                vec![ProductOption::choice("grind", ["whole", "espresso", "filter"]).required()]
            }
            "book" => vec![
                ProductOption::choice("gift_wrap", ["yes"]).costing("yes", d("2.00")),
                ProductOption::text("note"),
            ],
            _ => Vec::new(),
        }
    }
    fn quantity_rule(&self) -> QuantityRule {
        match self.kind {
            "course" => QuantityRule::new().max(1),
            "beans" => QuantityRule::new().min(2).step(2).max(20),
            _ => QuantityRule::new(),
        }
    }
}

fn thing(kind: &'static str, id: i64) -> Thing {
    Thing {
        kind,
        id,
        price: d("10.00"),
    }
}

#[derive(Clone)]
struct Shop;

#[async_trait]
impl Catalog for Shop {
    async fn products(&self, kind: &str, ids: &[i64]) -> Result<Vec<Arc<dyn Product>>, BoxError> {
        let kind: &'static str = match kind {
            "coffee" => "coffee",
            "book" => "book",
            "course" => "course",
            "beans" => "beans",
            "pen" => "pen",
            _ => return Ok(Vec::new()),
        };
        Ok(ids
            .iter()
            .filter(|id| (1..=100).contains(*id))
            .map(|id| Arc::new(thing(kind, *id)) as Arc<dyn Product>)
            .collect())
    }
}

fn opts(pairs: &[(&str, &str)]) -> LineOptions {
    LineOptions::from_pairs(pairs.iter().copied()).expect("valid options")
}

fn with(pairs: &[(&str, &str)]) -> AddOptions {
    AddOptions::new().options(opts(pairs))
}

async fn options_make_their_own_lines_whatever_their_order(h: Harness) {
    let carts = h.builder().catalog(Shop).build();
    let mut events = carts.subscribe();
    let mut cart = carts.new_cart();
    let coffee = thing("coffee", 1);
    let book = thing("book", 1);
    cart.add_with(&coffee, d("10.00"), 1, with(&[("grind", "espresso")]))
        .await
        .unwrap();
    // The event carries the line's options.
    match events.try_recv() {
        Ok(axum_cart::CartEvent::ItemAdded { line, .. }) => {
            assert_eq!(line.options.get("grind"), Some("espresso"))
        }
        other => panic!("expected ItemAdded, got {other:?}"),
    }
    cart.add_with(&coffee, d("10.00"), 2, with(&[("grind", "filter")]))
        .await
        .unwrap();
    // The same options with whitespace around the name, in any order: the same line.
    let line = cart
        .add_with(&coffee, d("10.00"), 3, with(&[(" grind ", "espresso")]))
        .await
        .unwrap();
    assert_eq!(line.quantity, 4);
    let wrapped = [("note", "Happy birthday"), ("gift_wrap", "yes")];
    cart.add_with(&book, d("12.00"), 1, with(&wrapped))
        .await
        .unwrap();
    let reordered = [("gift_wrap", "yes"), ("note", " Happy birthday ")];
    cart.add_with(&book, d("12.00"), 1, with(&reordered))
        .await
        .unwrap();
    cart.add(&book, d("10.00"), 1).await.unwrap();
    let lines = cart.lines().await.unwrap();
    let seen: Vec<(String, i64)> = lines
        .iter()
        .map(|l| {
            (
                format!("{}{:?}", l.product, l.options.iter().collect::<Vec<_>>()),
                l.quantity,
            )
        })
        .collect();
    assert_eq!(lines.len(), 4, "{seen:?}");
    assert_eq!(cart.count().await.unwrap(), 4 + 2 + 2 + 1);
    let rows = h
        .raw
        .count("SELECT COUNT(*) FROM cart_items WHERE options <> ''")
        .await;
    assert_eq!(rows, 3, "the options are stored with their lines");
    assert_eq!(cart.summary().await.unwrap(), d("94.00"));
    // The plain book line is the product's line without options.
    assert_eq!(cart.line(&book).await.unwrap().unwrap().quantity, 1);
    assert!(cart.contains(&coffee).await.unwrap());

    // A line is changed and removed by its key.
    let filter = lines
        .iter()
        .find(|l| l.options.get("grind") == Some("filter"))
        .unwrap()
        .key();
    let parsed = LineKey::parse(&filter.to_string()).unwrap();
    let changed = cart
        .update_line(&parsed, 5, AddOptions::new())
        .await
        .unwrap();
    assert_eq!(
        (changed.quantity, changed.options.get("grind")),
        (5, Some("filter"))
    );
    cart.remove_line(&parsed).await.unwrap();
    let err = cart.remove_line(&parsed).await.unwrap_err();
    assert_eq!(err.code(), "item_does_not_exist");
    assert_eq!(
        err.to_string(),
        "Product coffee:1 with these options is not in this cart."
    );
    // `update` names the line with the given options.
    cart.update_with(&coffee, 7, None, with(&[("grind", "espresso")]))
        .await
        .unwrap();
    let espresso = LineKey::new(p("coffee", 1), &opts(&[("grind", "espresso")]));
    cart.refresh().await.unwrap();
    let lines = cart.lines().await.unwrap();
    assert_eq!(
        lines.iter().find(|l| l.key() == espresso).unwrap().quantity,
        7
    );
    assert_eq!(lines.len(), 3);
    // The database itself refuses a second row of one line.
    let price = if h.backend == "sqlite" {
        "unit_price_cents"
    } else {
        "unit_price"
    };
    let copy = format!(
        "INSERT INTO cart_items (cart_id, product_kind, product_id, quantity, {price}, options, \
         options_key) SELECT cart_id, product_kind, product_id, 1, {price}, options, options_key \
         FROM cart_items WHERE options <> ''"
    );
    let err = h.raw.exec(&copy).await.unwrap_err();
    assert!(
        matches!(&err, sqlx::Error::Database(db) if db.is_unique_violation()),
        "{err:?}"
    );
}

async fn options_the_product_does_not_take_are_refused_and_change_nothing(h: Harness) {
    let carts = h.builder().catalog(Shop).build();
    let mut cart = carts.new_cart();
    let coffee = thing("coffee", 1);
    let pen = thing("pen", 1);
    cart.add_with(&coffee, d("10.00"), 1, with(&[("grind", "whole")]))
        .await
        .unwrap();
    let refusals = [
        (cart.add_with(&coffee, d("10.00"), 1, with(&[("grind", "instant")])).await,
         "Option \"grind\" of product coffee:1 cannot be \"instant\"; it can be: whole, espresso, filter."),
        (cart.add_with(&coffee, d("10.00"), 1, with(&[("size", "L"), ("grind", "whole")])).await,
         "Product coffee:1 has no option \"size\"; its options are: grind."),
        (cart.add_with(&coffee, d("10.00"), 1, AddOptions::new()).await,
         "Product coffee:1 needs the option \"grind\"."),
        (cart.add_with(&pen, d("10.00"), 1, with(&[("colour", "red")])).await,
         "Product pen:1 takes no options."),
    ];
    for (result, message) in refusals {
        let err = result.unwrap_err();
        assert_eq!(err.code(), "invalid_options");
        assert_eq!(err.to_string(), message);
    }
    // With validate_price, the expected price includes what the options add.
    let book = thing("book", 2);
    let wrap = with(&[("gift_wrap", "yes")]).validate_price();
    let err = cart
        .add_with(&book, d("10.00"), 1, wrap.clone())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Price mismatch: expected 12.00, got 10.00."
    );
    cart.add_with(&book, d("12.00"), 1, wrap).await.unwrap();
    cart.refresh().await.unwrap();
    assert_eq!(cart.unique_count().await.unwrap(), 2);
    assert_eq!(cart.count().await.unwrap(), 2);
}

async fn options_survive_merge_save_restore_and_checkout(h: Harness) {
    let carts = h.builder().catalog(Shop).build();
    let coffee = thing("coffee", 1);
    let espresso = &[("grind", "espresso")];
    let mut guest = carts.new_cart();
    guest
        .add_with(&coffee, d("10.00"), 1, with(espresso))
        .await
        .unwrap();
    guest
        .add_with(&coffee, d("10.00"), 1, with(&[("grind", "filter")]))
        .await
        .unwrap();
    let mut user = carts.new_cart();
    user.add_with(&coffee, d("10.00"), 2, with(espresso))
        .await
        .unwrap();
    user.add(&thing("pen", 1), d("10.00"), 1).await.unwrap();
    let report = user.merge(&mut guest, MergeStrategy::Add).await.unwrap();
    assert_eq!(report.merged, 2);
    let lines = user.lines().await.unwrap();
    let quantity_of = |grind: &str| {
        lines
            .iter()
            .find(|l| l.options.get("grind") == Some(grind))
            .map(|l| l.quantity)
    };
    assert_eq!(
        (quantity_of("espresso"), quantity_of("filter")),
        (Some(3), Some(1))
    );
    assert_eq!(lines.len(), 3);

    // Save and restore keep the options; the payload's keys are the line keys.
    let payload = user.to_serializable().await.unwrap();
    let json = payload.to_json();
    let espresso_key = LineKey::new(p("coffee", 1), &opts(espresso)).to_string();
    assert_eq!(json[&espresso_key]["options"], json!({"grind": "espresso"}));
    assert_eq!(json["pen:1"].get("options"), None, "no options, no member");
    let mut restored = carts.new_cart();
    restored
        .from_serializable(&CartPayload::from_json(&json).unwrap())
        .await
        .unwrap();
    let mut got = restored.lines().await.unwrap();
    let mut want = lines.clone();
    got.sort_by_key(Line::key);
    want.sort_by_key(Line::key);
    assert_eq!(got, want);
    // A payload saved before options existed still restores.
    let old = CartPayload::parse(r#"{"pen:2": {"quantity": 2, "unit_price": "10.00"}}"#).unwrap();
    restored.from_serializable(&old).await.unwrap();
    assert_eq!(restored.count().await.unwrap(), 3 + 1 + 1 + 2);
    // A key that does not match its options is refused.
    let mut forged = json.clone();
    forged[&espresso_key]["options"] = json!({"grind": "filter"});
    let err = CartPayload::from_json(&forged).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");

    // The order's lines carry the options.
    let order = user.checkout().await.unwrap();
    let ordered: Vec<Option<&str>> = order.lines.iter().map(|l| l.options.get("grind")).collect();
    assert_eq!(ordered, [Some("espresso"), None, Some("filter")]);
}

async fn quantity_rules_refuse_with_their_own_codes(h: Harness) {
    let carts = h.builder().catalog(Shop).build();
    let mut cart = carts.new_cart();
    let course = thing("course", 1);
    let beans = thing("beans", 1);
    cart.add(&course, d("10.00"), 1).await.unwrap();
    let refused = [
        (cart.add(&course, d("10.00"), 1).await.unwrap_err(), "quantity_above_maximum",
         "The quantity of course:1 cannot exceed 1 (at least 1, at most 1)."),
        (cart.add(&beans, d("10.00"), 3).await.unwrap_err(), "quantity_not_a_multiple",
         "The quantity of beans:1 must be a multiple of 2 (at least 2, at most 20, in steps of 2)."),
        (cart.add(&beans, d("10.00"), 22).await.unwrap_err(), "quantity_above_maximum",
         "The quantity of beans:1 cannot exceed 20 (at least 2, at most 20, in steps of 2)."),
    ];
    for (err, code, message) in refused {
        assert_eq!(err.code(), code);
        assert_eq!(err.to_string(), message);
        assert_eq!(axum_cart::http_status(&err), StatusCode::BAD_REQUEST);
    }
    cart.add(&beans, d("10.00"), 4).await.unwrap();
    // 4 + 18 passes the maximum of 20: refused whole.
    let err = cart.add(&beans, d("10.00"), 18).await.unwrap_err();
    assert_eq!(err.code(), "quantity_above_maximum");
    let err = cart.update(&beans, 5, None).await.unwrap_err();
    assert_eq!(err.code(), "quantity_not_a_multiple");
    cart.update(&beans, 20, None).await.unwrap();
    cart.refresh().await.unwrap();
    assert_eq!(cart.count().await.unwrap(), 21);
    // Bulk adds respect the rules too, all or nothing.
    let err = cart
        .add_bulk([
            Line::new(p("pen", 1), 3, d("10.00")),
            Line::new(p("course", 2), 2, d("10.00")),
        ])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "quantity_above_maximum");
    assert_eq!(cart.count().await.unwrap(), 21);
    // The minimum: an add below it is refused unless the line already holds enough.
    let mut other = carts.new_cart();
    let err = other
        .add(&thing("beans", 2), d("10.00"), 1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "quantity_below_minimum");
    assert_eq!(other.count().await.unwrap(), 0);
    cart.update(&beans, 0, None).await.unwrap();
    assert!(
        !cart.contains(&beans).await.unwrap(),
        "0 removes, whatever the rule"
    );
}

async fn a_full_cart_refuses_new_lines_only(h: Harness) {
    let carts = h.builder().catalog(Shop).max_lines(3).build();
    let mut cart = carts.new_cart();
    for id in 1..=3 {
        cart.add(&thing("pen", id), d("10.00"), 1).await.unwrap();
    }
    let err = cart.add(&thing("pen", 4), d("10.00"), 1).await.unwrap_err();
    assert!(matches!(err, CartError::TooManyLines { max: 3 }), "{err:?}");
    assert_eq!(err.to_string(), "The cart cannot have more than 3 lines.");
    assert_eq!(
        axum_cart::http_status(&err),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // An existing line still takes units.
    cart.add(&thing("pen", 2), d("10.00"), 4).await.unwrap();
    let err = cart
        .add_bulk([
            Line::new(p("pen", 1), 2, d("10.00")),
            Line::new(p("pen", 9), 1, d("10.00")),
        ])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "too_many_lines");
    let payload =
        CartPayload::parse(r#"{"pen:8": {"quantity": 1, "unit_price": "10.00"}}"#).unwrap();
    let err = cart.from_serializable(&payload).await.unwrap_err();
    assert_eq!(err.code(), "too_many_lines");
    cart.refresh().await.unwrap();
    assert_eq!(cart.unique_count().await.unwrap(), 3);
    assert_eq!(cart.count().await.unwrap(), 7);
    assert_eq!(h.raw.count("SELECT COUNT(*) FROM cart_items").await, 3);
}

async fn concurrent_new_lines_never_pass_the_most_lines(h: Harness) {
    let carts = h.builder().catalog(Shop).max_lines(5).build();
    let mut first = carts.new_cart();
    first.add(&thing("pen", 1), d("10.00"), 1).await.unwrap();
    let id = first.id().await.unwrap().unwrap();
    let tasks: Vec<_> = (2..=25)
        .map(|n| {
            let carts = carts.clone();
            tokio::spawn(async move {
                let mut cart = carts.cart(id);
                cart.add(&thing("pen", n), d("10.00"), 1).await
            })
        })
        .collect();
    let mut added = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => added += 1,
            Err(CartError::TooManyLines { max: 5 }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(added, 4, "exactly the room that was left");
    assert_eq!(h.raw.count("SELECT COUNT(*) FROM cart_items").await, 5);
}

// ---- over HTTP -----------------------------------------------------------------------------

fn app(h: &Harness) -> Router {
    let carts = h.builder().catalog(Shop).build();
    CartRouter::new()
        .build()
        .layer(common::problems_checked())
        .layer(CartLayer::new(carts))
        .layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false))
}

/// A JSON client with the session cookie.
struct Client {
    app: Router,
    cookies: BTreeMap<String, String>,
}

impl Client {
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: String,
    ) -> (StatusCode, Value) {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, content_type);
        if !cookie.is_empty() {
            req = req.header(header::COOKIE, cookie);
        }
        let res = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        for set in res.headers().get_all(header::SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.insert(k.to_owned(), v.to_owned());
        }
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body)
    }

    async fn json(&mut self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send("POST", path, "application/json", body.to_string())
            .await
    }

    async fn form(&mut self, path: &str, body: &str) -> (StatusCode, Value) {
        self.send(
            "POST",
            path,
            "application/x-www-form-urlencoded",
            body.to_owned(),
        )
        .await
    }

    async fn cart(&mut self) -> Value {
        let (status, body) = self.send("GET", "/cart", "", String::new()).await;
        assert_eq!(status, StatusCode::OK);
        body
    }
}

async fn http_adds_lines_with_options_and_changes_them_by_key(h: Harness) {
    let mut client = Client {
        app: app(&h),
        cookies: BTreeMap::new(),
    };
    let (status, body) = client
        .json(
            "/cart/add/coffee/1",
            json!({"quantity": 2, "options": {"grind": "espresso"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A form names options `option.<name>`; order and spaces do not matter.
    let (status, _) = client
        .form("/cart/add/coffee/1", "quantity=1&option.+grind=espresso")
        .await;
    assert_eq!(status, StatusCode::OK);
    client
        .form("/cart/add/coffee/1", "option.grind=filter")
        .await;
    let (status, body) = client
        .form(
            "/cart/add/book/3",
            "option.gift_wrap=yes&option.note=For+Ann",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = client
        .json("/cart/add/beans/1", json!({"quantity": 4}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = body["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 4, "{body}");
    assert_eq!(items[0]["options"], json!({"grind": "espresso"}));
    assert_eq!(items[0]["quantity"], 3);
    assert_eq!(items[1]["options"], json!({"grind": "filter"}));
    // The gift wrap adds 2.00 to the catalogue's price.
    assert_eq!(items[2]["unit_price"], "12.00");
    assert_eq!(
        items[2]["options"],
        json!({"gift_wrap": "yes", "note": "For Ann"})
    );
    assert_eq!(
        items[3]["quantity_rule"],
        json!({"min": 2, "max": 20, "step": 2})
    );
    assert_eq!(items[3]["line"], "beans:1");
    let filter = items[1]["line"].as_str().unwrap().to_owned();
    assert!(filter.starts_with("coffee:1:"), "{filter}");
    assert_ne!(items[0]["line"], items[1]["line"]);

    let (status, body) = client
        .json(
            &format!("/cart/lines/{filter}/update"),
            json!({"quantity": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"][1]["quantity"], 5);
    assert_eq!(
        body["items"][0]["quantity"], 3,
        "the other grind is another line"
    );
    let (status, body) = client
        .json(&format!("/cart/lines/{filter}/remove"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["unique_count"], 3);
    let (status, body) = client
        .json(&format!("/cart/lines/{filter}/remove"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "item_does_not_exist");
    // Option-less lines keep their old routes, and their key works too.
    let (status, _) = client
        .json("/cart/lines/beans:1/update", json!({"quantity": 6}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = client
        .json("/cart/update/beans/1", json!({"quantity": 8}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(client.cart().await["count"], 3 + 1 + 8);
}

async fn http_refuses_bad_options_and_rules_with_4xx_and_changes_nothing(h: Harness) {
    let mut client = Client {
        app: app(&h),
        cookies: BTreeMap::new(),
    };
    client.json("/cart/add/course/1", json!({})).await;
    client
        .json("/cart/add/coffee/1", json!({"options": {"grind": "whole"}}))
        .await;
    let before = client.cart().await;
    let long = "x".repeat(101);
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "/cart/add/coffee/1",
            json!({"options": {"grind": "instant"}}),
            StatusCode::BAD_REQUEST,
            "invalid_options",
        ),
        (
            "/cart/add/coffee/1",
            json!({}),
            StatusCode::BAD_REQUEST,
            "invalid_options",
        ),
        (
            "/cart/add/coffee/1",
            json!({"options": {"grind": 1}}),
            StatusCode::BAD_REQUEST,
            "invalid_options",
        ),
        (
            "/cart/add/coffee/1",
            json!({"options": "whole"}),
            StatusCode::BAD_REQUEST,
            "invalid_options",
        ),
        (
            "/cart/add/book/1",
            json!({"options": {"note": long}}),
            StatusCode::BAD_REQUEST,
            "invalid_options",
        ),
        (
            "/cart/add/book/1",
            json!({"options": {"bad name": "x"}}),
            StatusCode::BAD_REQUEST,
            "invalid_options",
        ),
        (
            "/cart/add/pen/1",
            json!({"options": {"colour": "red"}}),
            StatusCode::BAD_REQUEST,
            "invalid_options",
        ),
        (
            "/cart/add/course/1",
            json!({"quantity": 1}),
            StatusCode::BAD_REQUEST,
            "quantity_above_maximum",
        ),
        (
            "/cart/add/beans/1",
            json!({"quantity": 3}),
            StatusCode::BAD_REQUEST,
            "quantity_not_a_multiple",
        ),
        (
            "/cart/add/beans/1",
            json!({"quantity": 1}),
            StatusCode::BAD_REQUEST,
            "quantity_below_minimum",
        ),
        (
            "/cart/update/course/1",
            json!({"quantity": 2}),
            StatusCode::BAD_REQUEST,
            "quantity_above_maximum",
        ),
        (
            "/cart/lines/coffee:1:0123/update",
            json!({"quantity": 2}),
            StatusCode::NOT_FOUND,
            "item_does_not_exist",
        ),
        (
            "/cart/lines/coffee:1:0123456789abcdef0123456789abcdef/update",
            json!({"quantity": 2}),
            StatusCode::NOT_FOUND,
            "item_does_not_exist",
        ),
        (
            "/cart/lines/nonsense/remove",
            json!({}),
            StatusCode::NOT_FOUND,
            "item_does_not_exist",
        ),
    ];
    for (path, body, status, code) in cases {
        let (got, reply) = client.json(path, body.clone()).await;
        assert_eq!(
            (got, reply["code"].as_str()),
            (status, Some(code)),
            "{path} {body}: {reply}"
        );
        assert!(reply["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let (status, reply) = client
        .form("/cart/add/coffee/1", "option.grind=whole&option.grind=fine")
        .await;
    assert_eq!(
        (status, reply["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_options"))
    );
    assert_eq!(client.cart().await, before, "nothing changed");
}

async fn admin_pages_show_and_change_lines_with_options(h: Harness) {
    let carts = h.builder().catalog(Shop).build();
    let admin = Router::new().nest("/admin", axum_cart::admin_router(carts.clone()));
    let mut cart = carts.new_cart();
    let coffee = thing("coffee", 1);
    cart.add_with(&coffee, d("10.00"), 1, with(&[("grind", "espresso")]))
        .await
        .unwrap();
    cart.add_with(&coffee, d("10.00"), 2, with(&[("grind", "filter")]))
        .await
        .unwrap();
    let id = cart.id().await.unwrap().unwrap();
    let filter = LineKey::new(p("coffee", 1), &opts(&[("grind", "filter")])).to_string();
    let path = format!(
        "/admin/carts/{id}/lines/coffee/{}",
        &filter["coffee:".len()..]
    );
    let send = |req: Request<Body>| {
        let admin = admin.clone();
        async move {
            let res = admin.oneshot(req).await.unwrap();
            let status = res.status();
            let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    let (status, page) = send(
        Request::get(format!("/admin/carts/{id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("grind: espresso") && page.contains("grind: filter"),
        "{page}"
    );
    assert!(
        page.contains(&format!("action=\"{path}\"")),
        "{path} in {page}"
    );
    let form = |path: &str, body: &'static str| {
        Request::post(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    let (status, _) = send(form(&path, "quantity=5")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    cart.refresh().await.unwrap();
    let quantities: Vec<i64> = cart
        .lines()
        .await
        .unwrap()
        .iter()
        .map(|l| l.quantity)
        .collect();
    assert_eq!(quantities, [1, 5], "only the filter line changed");
    let (status, _) = send(form(&format!("{path}/remove"), "")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    cart.refresh().await.unwrap();
    assert_eq!(cart.unique_count().await.unwrap(), 1);
    // A digest of no line of the cart is a 404, and changes nothing.
    let (status, _) = send(form(&format!("{path}/remove"), "")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let bad = format!("/admin/carts/{id}/lines/coffee/1:nothex");
    let (status, _) = send(form(&bad, "quantity=2")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    cart.refresh().await.unwrap();
    assert_eq!(cart.count().await.unwrap(), 1);
}
