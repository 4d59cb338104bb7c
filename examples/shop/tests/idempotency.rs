//! `Idempotency-Key` through the shop, served on a real local port, on SQLite, PostgreSQL
//! and MySQL (`CART_TEST_POSTGRES_URL`, `CART_TEST_MYSQL_URL`): its own checkout and the
//! cart routes it mounts answer a repeat with the stored answer and change nothing.

mod support;

use std::net::SocketAddr;

use shop::{app, limit_requests, serve_router, Limits, Settings};
use support::{request, Client, MySqlDatabase, PgDatabase, Response};

fn settings(database_url: &str) -> Settings {
    Settings {
        database_url: database_url.to_owned(),
        redis_url: None,
        bind: "127.0.0.1:0".parse().unwrap(),
        merge_strategy: axum_cart::MergeStrategy::Add,
        admin_password: None,
        secure_cookies: false,
        session_cache: false,
        max_quantity: 999,
        quantity_rules: false,
        discount_attempts: 10,
        seed_per_kind: 10,
        events: shop::EventSettings::default(),
    }
}

/// A fresh SQLite file's URL.
fn sqlite_url(name: &str) -> String {
    let db = std::env::temp_dir().join(format!("shop-idem-{}-{name}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    format!("sqlite://{}", db.display())
}

/// The shop on `database_url`, on a free local port.
async fn start(database_url: &str) -> SocketAddr {
    let (router, _shop) = app(settings(database_url)).await.expect("the shop");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let limits = Limits::default();
    tokio::spawn(async move {
        serve_router(listener, limit_requests(router, &limits), &limits).await;
    });
    addr
}

/// A keyed request of `visitor` (a form post, or JSON with `json`).
async fn keyed(
    visitor: &mut Client,
    addr: SocketAddr,
    path: &str,
    key: &str,
    json: bool,
) -> Response {
    let jar: Vec<String> = visitor
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let jar = jar.join("; ");
    let mut headers = vec![
        ("Idempotency-Key", key),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    if !jar.is_empty() {
        headers.push(("Cookie", jar.as_str()));
    }
    if json {
        headers.push(("Accept", "application/json"));
    }
    let res = request(addr, "POST", path, &headers, "quantity=1")
        .await
        .expect("an answer");
    visitor.absorb(&res);
    res
}

/// The orders the shop placed, read from its database.
async fn orders(url: &str) -> i64 {
    const SQL: &str = "SELECT COUNT(*) FROM shop_orders";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("sqlite");
        sqlx::query_scalar(SQL)
            .fetch_one(&pool)
            .await
            .expect("orders")
    } else if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.expect("postgres");
        sqlx::query_scalar(SQL)
            .fetch_one(&pool)
            .await
            .expect("orders")
    } else {
        let pool = sqlx::MySqlPool::connect(url).await.expect("mysql");
        sqlx::query_scalar(SQL)
            .fetch_one(&pool)
            .await
            .expect("orders")
    }
}

/// The orders once the shop's relay has written `expected` (it writes them from the outbox,
/// just after the checkout), or after 10 s; read again a moment later, so one too many
/// would show.
async fn orders_once(url: &str, expected: i64) -> i64 {
    let started = std::time::Instant::now();
    while orders(url).await < expected && started.elapsed() < std::time::Duration::from_secs(10) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    orders(url).await
}

async fn books(visitor: &mut Client, addr: SocketAddr) -> i64 {
    let cart = visitor
        .get_json(addr, "/cart")
        .await
        .expect("the cart")
        .json();
    cart["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["kind"] == "book" && i["id"] == 1)
        .map(|i| i["quantity"].as_i64().unwrap_or(0))
        .sum()
}

async fn a_keyed_checkout_repeated_shows_its_confirmation_and_places_one_order(db: &str) {
    let addr = start(db).await;
    let mut visitor = Client::new();
    let added = keyed(&mut visitor, addr, "/cart/add/book/1", "add-1", false).await;
    assert_eq!(added.status, 303, "{}", added.body);
    let first = keyed(&mut visitor, addr, "/checkout", "pay-1", false).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.body.contains("Thank you for your order!"));
    assert_eq!(first.header("idempotent-replayed"), None);

    let again = keyed(&mut visitor, addr, "/checkout", "pay-1", false).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body, "the stored confirmation");
    assert_eq!(orders_once(db, 1).await, 1);

    // The key names that checkout: with another request it is refused.
    let reused = keyed(&mut visitor, addr, "/cart/add/book/1", "pay-1", true).await;
    assert_eq!(reused.status, 422, "{}", reused.body);
    assert_eq!(reused.json()["code"], "idempotency_key_reused");
    // A bad key is refused before anything runs.
    let bad = keyed(&mut visitor, addr, "/checkout", "not a key", true).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.json()["code"], "invalid_idempotency_key");
    // Another visitor's checkout with the same key is its own.
    let mut other = Client::new();
    keyed(&mut other, addr, "/cart/add/book/1", "add-1", false).await;
    let theirs = keyed(&mut other, addr, "/checkout", "pay-1", false).await;
    assert_eq!(theirs.status, 200, "{}", theirs.body);
    assert_eq!(theirs.header("idempotent-replayed"), None);
    assert_eq!(orders_once(db, 2).await, 2);
}

async fn a_hundred_concurrent_adds_with_one_key_add_once_through_the_shop(db: &str) {
    let addr = start(db).await;
    let mut visitor = Client::new();
    // The visitor's session first.
    visitor.get_json(addr, "/cart").await.expect("the cart");
    keyed(&mut visitor, addr, "/cart/add/book/2", "first", true).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let mut visitor = visitor.clone();
        tasks.spawn(
            async move { keyed(&mut visitor, addr, "/cart/add/book/1", "storm", true).await },
        );
    }
    let mut processed = 0;
    while let Some(res) = tasks.join_next().await {
        let res = res.expect("a request");
        match res.status {
            200 if res.header("idempotent-replayed").is_none() => processed += 1,
            200 => {}
            409 => assert_eq!(res.json()["code"], "idempotency_key_in_flight"),
            other => panic!("unexpected {other}: {}", res.body),
        }
    }
    assert_eq!(processed, 1, "exactly one was processed");
    assert_eq!(books(&mut visitor, addr).await, 1, "added once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite() {
    a_keyed_checkout_repeated_shows_its_confirmation_and_places_one_order(&sqlite_url("checkout"))
        .await;
    a_hundred_concurrent_adds_with_one_key_add_once_through_the_shop(&sqlite_url("storm")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres() {
    for test in ["checkout", "storm"] {
        let Some(db) = PgDatabase::create(test).await else {
            return;
        };
        match test {
            "checkout" => {
                a_keyed_checkout_repeated_shows_its_confirmation_and_places_one_order(&db.url).await
            }
            _ => a_hundred_concurrent_adds_with_one_key_add_once_through_the_shop(&db.url).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql() {
    for test in ["checkout", "storm"] {
        let Some(db) = MySqlDatabase::create(test).await else {
            return;
        };
        match test {
            "checkout" => {
                a_keyed_checkout_repeated_shows_its_confirmation_and_places_one_order(&db.url).await
            }
            _ => a_hundred_concurrent_adds_with_one_key_add_once_through_the_shop(&db.url).await,
        }
    }
}
