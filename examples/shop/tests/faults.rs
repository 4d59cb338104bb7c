//! Faults, against real `shop` processes:
//!
//! - the database goes away under a running shop (a TCP proxy in front of PostgreSQL is
//!   stopped and started again): requests that need it get 503 with a clear message within
//!   a bounded time, `/healthz` still answers, the process stays up, and it serves normally
//!   again once the database is back, without a restart;
//! - SIGKILL in the middle of a storm of adds and checkouts on SQLite: after a restart on the
//!   same file every acknowledged write is there and the discount counts are consistent;
//! - a pool of 2 connections under load while the cart table is locked: requests wait up to
//!   the pool timeout (5 s) and then get 503; nothing crashes, and everything works after;
//! - the session store (Redis, behind a proxy) goes away: session requests get 503 with
//!   `Retry-After` within a few seconds, `/readyz` names the store, `/healthz` stays 200,
//!   and the same process serves again within seconds of Redis coming back.
//!
//! The PostgreSQL tests need `CART_TEST_POSTGRES_URL` (and the Redis ones
//! `CART_TEST_REDIS_URL`) and skip loudly without them; the SQLite test always runs. See `docs/RELIABILITY.md`, "Faults".

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum_cart::{Carts, NewDiscount};
use rust_decimal::Decimal;
use support::{Client, PgSchema, Proxy, Response, ShopProcess};

/// Sends a request and measures how long the answer took (at most 30 s, then it panics:
/// a hang is a failure).
async fn timed(
    client: &mut Client,
    addr: SocketAddr,
    method: &str,
    path: &str,
    json: bool,
    form: Option<&str>,
) -> (Response, Duration) {
    let started = Instant::now();
    let res = tokio::time::timeout(
        Duration::from_secs(30),
        client.send(addr, method, path, json, form),
    )
    .await
    .unwrap_or_else(|_| panic!("{method} {path} hung for 30 s"))
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    (res, started.elapsed())
}

// ---- the database goes away --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_answers_503_then_recovers_without_restart() {
    database_down("faults-db-down", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(cart_test_redis), ignore = "CART_TEST_REDIS_URL is not set")]
async fn database_down_with_sessions_in_redis_answers_503_then_recovers() {
    let test = "faults-db-down-redis";
    let Some(redis) = support::redis_url(test) else {
        return;
    };
    database_down(test, Some(redis)).await;
}

/// The outage, with the sessions in the database (through the proxy too) or in Redis.
async fn database_down(test: &str, redis: Option<String>) {
    let Some(schema) = PgSchema::create(test).await else {
        return;
    };
    let mut proxy = Proxy::start(schema.upstream()).await;
    let url = schema.url_via(proxy.port);
    let mut env = vec![("DATABASE_URL", url.as_str()), ("SESSION_CACHE", "0")];
    if let Some(redis) = &redis {
        env.push(("REDIS_URL", redis.as_str()));
    }
    let mut shop = ShopProcess::start(test, &env).await;
    let addr = shop.addr;

    // A visitor with a cart (sessions are in the database too).
    let mut visitor = Client::new();
    let (res, _) = timed(&mut visitor, addr, "POST", "/cart/add/book/1", true, None).await;
    assert_eq!(res.status, 200, "{}", res.body);

    // Pull the database.
    proxy.down().await;
    let down_at = Instant::now();

    // Everything that needs the database, at once: a cart read, an add, a first add by a
    // new visitor, both checkouts, the product page with its header badge, a login.
    let requests: [(&str, &str, bool, Option<&str>, bool); 8] = [
        ("GET", "/cart", true, None, true),
        ("GET", "/cart", false, None, true),
        ("POST", "/cart/add/book/2", true, None, true),
        ("POST", "/cart/add/book/3", true, None, false),
        ("POST", "/cart/checkout", true, None, true),
        ("POST", "/checkout", false, None, true),
        ("GET", "/", false, None, true),
        ("POST", "/login", false, Some("username=alice"), false),
    ];
    let mut tasks = Vec::new();
    for (method, path, json, form, with_cookie) in requests {
        let mut c = if with_cookie {
            visitor.clone()
        } else {
            Client::new()
        };
        tasks.push(tokio::spawn(async move {
            let (res, took) = timed(&mut c, addr, method, path, json, form).await;
            (method, path, json, res, took)
        }));
    }
    // The liveness probe answers at once meanwhile.
    let (health, took) = timed(&mut Client::new(), addr, "GET", "/healthz", false, None).await;
    assert_eq!(health.status, 200);
    assert!(took < Duration::from_secs(1), "/healthz took {took:?}");

    let mut slowest = Duration::ZERO;
    let mut answers = Vec::new();
    let mut results = Vec::new();
    for t in tasks {
        let (method, path, json, res, took) = t.await.unwrap();
        slowest = slowest.max(took);
        answers.push(format!("{method} {path} -> {} in {took:.1?}", res.status));
        results.push((method, path, json, res, took));
    }
    for (method, path, json, res, took) in results {
        assert!(
            took < Duration::from_secs(10),
            "{method} {path} took {took:?}; all answers:\n{}",
            answers.join("\n")
        );
        assert_eq!(
            res.status, 503,
            "{method} {path} (json: {json}) while the database is down: {}",
            res.body
        );
        assert!(
            res.header("retry-after").is_some(),
            "{method} {path}: a 503 says when to retry: {:?}",
            res.headers
        );
        if json {
            let body = res.json();
            assert!(
                ["database_unavailable", "session_unavailable"]
                    .contains(&body["code"].as_str().unwrap_or("")),
                "{}",
                res.body
            );
            assert!(
                body["error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("temporarily unavailable"),
                "{}",
                res.body
            );
        } else {
            assert!(
                res.body.contains("unavailable") || res.body.contains("not available"),
                "{method} {path}: a clear message, got {}",
                res.body
            );
        }
    }
    assert!(shop.alive(), "the shop survived the outage");
    let (health, _) = timed(&mut Client::new(), addr, "GET", "/healthz", false, None).await;
    assert_eq!(health.status, 200);
    let (ready, ready_took) = timed(&mut Client::new(), addr, "GET", "/readyz", false, None).await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("database"), "{}", ready.body);
    assert!(ready.header("retry-after").is_some());
    assert!(
        ready_took < Duration::from_secs(5),
        "/readyz took {ready_took:?}"
    );
    let outage = down_at.elapsed();

    // Bring the database back: the same process serves again, the cart is intact.
    proxy.up().await;
    let back_at = Instant::now();
    let mut first_ok = None;
    while back_at.elapsed() < Duration::from_secs(15) {
        let (res, _) = timed(&mut visitor, addr, "GET", "/cart", true, None).await;
        if res.status == 200 {
            first_ok = Some(back_at.elapsed());
            assert_eq!(res.json()["count"], 1, "the cart survived: {}", res.body);
            break;
        }
        assert_eq!(res.status, 503, "{}", res.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let recovered = first_ok.expect("the shop serves again within 15 s of the database");
    let (res, _) = timed(&mut visitor, addr, "POST", "/cart/add/book/2", true, None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let (res, _) = timed(&mut visitor, addr, "POST", "/cart/checkout", true, None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["count"], 2);
    let mut newcomer = Client::new();
    let (res, _) = timed(&mut newcomer, addr, "POST", "/cart/add/book/3", true, None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(shop.alive());
    shop.kill();
    proxy.down().await;
    if let Some(redis) = &redis {
        let keys: Vec<String> = [&visitor, &newcomer]
            .iter()
            .filter_map(|c| c.session().map(str::to_owned))
            .collect();
        support::redis_del(redis, &keys).await.unwrap();
    }
    eprintln!(
        "{test}: 1 outage of {outage:.1?}; 8 requests during it, all 503 (slowest \
         {slowest:.1?}), /healthz 200; first success {recovered:.1?} after the database came \
         back; no restart\n  {}",
        answers.join("\n  ")
    );
}

// ---- the session store goes away --------------------------------------------------------

/// Shop on PostgreSQL with its sessions in Redis, reached through a proxy that is pulled
/// and put back: while Redis is away, requests that load the session answer 503 with
/// `Retry-After` within a few seconds (the store calls are bounded), `/readyz` names the
/// session store, `/healthz` stays 200; once the proxy is back, the same process serves the
/// same cart again within seconds (the Redis pool reconnects by itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(cart_test_postgres, cart_test_redis)),
    ignore = "needs CART_TEST_POSTGRES_URL and CART_TEST_REDIS_URL"
)]
async fn session_store_down_answers_503_then_reconnects_without_restart() {
    let test = "faults-redis-down";
    let Some(redis) = support::redis_url(test) else {
        return;
    };
    let Some(schema) = PgSchema::create(test).await else {
        return;
    };
    let mut proxy = Proxy::start(support::redis_upstream(&redis)).await;
    let redis_via = support::redis_url_via(&redis, proxy.port);
    let mut shop = ShopProcess::start(
        test,
        &[
            ("DATABASE_URL", schema.url.as_str()),
            ("REDIS_URL", redis_via.as_str()),
            ("SESSION_CACHE", "0"),
        ],
    )
    .await;
    let addr = shop.addr;

    let mut visitor = Client::new();
    let (res, _) = timed(&mut visitor, addr, "POST", "/cart/add/book/1", true, None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let (ready, _) = timed(&mut Client::new(), addr, "GET", "/readyz", false, None).await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready"));

    // Pull Redis; three rounds over the outage: each request that loads the session gets a
    // prompt 503, not a hang, and never a different answer.
    proxy.down().await;
    let down_at = Instant::now();
    let mut answers = Vec::new();
    let mut slowest = Duration::ZERO;
    for round in 0..3 {
        let requests: [(&str, &str, bool); 4] = [
            ("GET", "/cart", true),
            ("GET", "/cart", false),
            ("GET", "/", false),
            ("POST", "/cart/add/book/2", true),
        ];
        let mut tasks = Vec::new();
        for (method, path, json) in requests {
            let mut c = visitor.clone();
            tasks.push(tokio::spawn(async move {
                let (res, took) = timed(&mut c, addr, method, path, json, None).await;
                (method, path, json, res, took)
            }));
        }
        for t in tasks {
            let (method, path, json, res, took) = t.await.unwrap();
            answers.push(format!(
                "round {round}: {method} {path} (json {json}) -> {} in {took:.1?}",
                res.status
            ));
            slowest = slowest.max(took);
            assert_eq!(
                res.status, 503,
                "{method} {path} while Redis is down: {}",
                res.body
            );
            assert_eq!(res.header("retry-after"), Some("5"), "{:?}", res.headers);
            assert!(
                took < Duration::from_secs(6),
                "{method} {path}: a 503 within a few seconds, took {took:?}"
            );
            if json {
                assert_eq!(res.json()["code"], "session_unavailable", "{}", res.body);
            } else {
                assert!(res.body.contains("temporarily unavailable"), "{}", res.body);
            }
        }
        let (ready, ready_took) =
            timed(&mut Client::new(), addr, "GET", "/readyz", false, None).await;
        assert_eq!(ready.status, 503, "{}", ready.body);
        assert!(ready.body.contains("session store"), "{}", ready.body);
        assert!(!ready.body.contains("database"), "{}", ready.body);
        assert!(ready.header("retry-after").is_some());
        assert!(
            ready_took < Duration::from_secs(5),
            "/readyz took {ready_took:?}"
        );
        let (health, health_took) =
            timed(&mut Client::new(), addr, "GET", "/healthz", false, None).await;
        assert_eq!(health.status, 200);
        assert!(
            health_took < Duration::from_secs(1),
            "/healthz took {health_took:?}"
        );
    }
    assert!(shop.alive(), "the shop survived the outage");
    let outage = down_at.elapsed();

    // Put Redis back: the same process serves the same cart again, by itself.
    proxy.up().await;
    let back_at = Instant::now();
    let mut polls = 0;
    let recovered = loop {
        polls += 1;
        let (res, _) = timed(&mut visitor, addr, "GET", "/cart", true, None).await;
        if res.status == 200 {
            assert_eq!(res.json()["count"], 1, "the cart survived: {}", res.body);
            break back_at.elapsed();
        }
        assert_eq!(res.status, 503, "{}", res.body);
        assert!(
            back_at.elapsed() < Duration::from_secs(15),
            "no recovery within 15 s of Redis coming back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (res, _) = timed(&mut visitor, addr, "POST", "/cart/add/book/2", true, None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["count"], 2);
    let mut newcomer = Client::new();
    let (res, _) = timed(&mut newcomer, addr, "POST", "/cart/add/book/3", true, None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let (ready, _) = timed(&mut Client::new(), addr, "GET", "/readyz", false, None).await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready"));
    assert!(shop.alive());
    shop.kill();
    proxy.down().await;
    let keys: Vec<String> = [&visitor, &newcomer]
        .iter()
        .filter_map(|c| c.session().map(str::to_owned))
        .collect();
    support::redis_del(&redis, &keys).await.unwrap();
    eprintln!(
        "{test}: Redis away for {outage:.1?}: 3 rounds of 4 session requests, all 503 with \
         Retry-After (slowest {slowest:.1?}), /readyz 503 naming the session store, /healthz \
         200; first cart served {recovered:.1?} after Redis came back ({polls} polls), no \
         restart\n  {}",
        answers.join("\n  ")
    );
}

// ---- SIGKILL in the middle of a storm ----------------------------------------------------

/// One cart's life as a client saw it.
#[derive(Debug, Default, Clone)]
struct Epoch {
    adds_sent: i64,
    adds_acked: i64,
    checkout_acked: bool,
}

/// Sends one request of the storm, counting it; `None` once the shop is gone.
async fn send(
    c: &mut Client,
    addr: SocketAddr,
    (sent, acked): (&AtomicUsize, &AtomicUsize),
    method: &str,
    path: &str,
    json: bool,
    form: Option<&str>,
) -> Option<Response> {
    sent.fetch_add(1, Ordering::SeqCst);
    let res = c.send(addr, method, path, json, form).await.ok()?;
    acked.fetch_add(1, Ordering::SeqCst);
    Some(res)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_storm_loses_no_acknowledged_write() {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    let test = "faults-sigkill";
    let path = std::env::temp_dir().join(format!("{}.db", support::unique_name("shop_kill")));
    let url = format!("sqlite://{}", path.display());
    let open = || async {
        SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(10)),
            )
            .await
            .unwrap()
    };

    // A code for 8 orders, created through the library before the shop starts.
    {
        let pool = open().await;
        let carts = Carts::builder(pool.clone()).build();
        carts.migrate().await.unwrap();
        carts
            .create_discount(NewDiscount::percent("STORM8", Decimal::from(10)).max_uses(8))
            .await
            .unwrap();
        pool.close().await;
    }
    let mut shop = ShopProcess::start(test, &[("DATABASE_URL", &url)]).await;
    let addr = shop.addr;

    // 24 clients, client i adding only book i+1: a few adds, a code for every third, a
    // checkout; again, until the process dies under them.
    const CLIENTS: usize = 24;
    let acked = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let (acked, sent) = (acked.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Client::new();
            let mut epochs = vec![Epoch::default()];
            let mut unexpected = Vec::new();
            let product = format!("/cart/add/book/{}", i + 1);
            let mut round = 0usize;
            let counters = (&*sent, &*acked);
            'storm: loop {
                round += 1;
                for _ in 0..(1 + (i + round) % 4) {
                    if let Some(e) = epochs.last_mut() {
                        e.adds_sent += 1;
                    }
                    let Some(res) = send(
                        &mut c,
                        addr,
                        counters,
                        "POST",
                        &product,
                        round % 2 == 0,
                        None,
                    )
                    .await
                    else {
                        break 'storm;
                    };
                    if res.ok() {
                        if let Some(e) = epochs.last_mut() {
                            e.adds_acked += 1;
                        }
                    } else {
                        unexpected.push(format!("add: {} {}", res.status, res.body));
                    }
                }
                if i % 3 == 0 {
                    let Some(res) = send(
                        &mut c,
                        addr,
                        counters,
                        "POST",
                        "/cart/discount",
                        true,
                        Some("code=STORM8"),
                    )
                    .await
                    else {
                        break 'storm;
                    };
                    if !res.ok() && res.status != 422 {
                        unexpected.push(format!("discount: {} {}", res.status, res.body));
                    }
                }
                let Some(mut res) =
                    send(&mut c, addr, counters, "POST", "/cart/checkout", true, None).await
                else {
                    break 'storm;
                };
                if res.status == 422 {
                    // The code ran out between apply and checkout: drop it and retry.
                    if send(
                        &mut c,
                        addr,
                        counters,
                        "POST",
                        "/cart/discount/remove",
                        true,
                        None,
                    )
                    .await
                    .is_none()
                    {
                        break 'storm;
                    }
                    match send(&mut c, addr, counters, "POST", "/cart/checkout", true, None).await {
                        Some(r) => res = r,
                        None => break 'storm,
                    }
                }
                if res.status == 200 {
                    if let Some(e) = epochs.last_mut() {
                        e.checkout_acked = true;
                    }
                    epochs.push(Epoch::default());
                } else {
                    unexpected.push(format!("checkout: {} {}", res.status, res.body));
                }
            }
            (i, epochs, unexpected)
        }));
    }

    // Let the storm build up, then SIGKILL the process mid-flight.
    let storm_started = Instant::now();
    while acked.load(Ordering::SeqCst) < 600 && storm_started.elapsed() < Duration::from_secs(8) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shop.kill();
    let storm_time = storm_started.elapsed();

    let mut results = Vec::new();
    for t in tasks {
        results.push(
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("clients stop once the shop is gone")
                .unwrap(),
        );
    }
    let (sent, acked) = (sent.load(Ordering::SeqCst), acked.load(Ordering::SeqCst));
    for (i, _, unexpected) in &results {
        assert!(
            unexpected.is_empty(),
            "client {i} got unexpected answers before the kill: {unexpected:?}"
        );
    }

    // Restart on the same file: it opens, and serves.
    let mut shop = ShopProcess::start(test, &[("DATABASE_URL", &url)]).await;
    let mut after = Client::new();
    let res = after
        .post_json(shop.addr, "/cart/add/course/1", None)
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.body);
    let res = after
        .post_json(shop.addr, "/cart/checkout", None)
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.body);
    // The restarted shop's relay completes, from the outbox, the orders of the carts checked
    // out just before the kill (and this one's).
    let pool = open().await;
    let missing_sql = "SELECT COUNT(*) FROM cart_carts c WHERE c.checked_out \
                       AND NOT EXISTS (SELECT 1 FROM shop_orders o WHERE o.cart_id = c.id)";
    let waited = Instant::now();
    while sqlx::query_scalar::<_, i64>(missing_sql)
        .fetch_one(&pool)
        .await
        .unwrap()
        > 0
        && waited.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let order_wait = waited.elapsed();
    shop.kill();

    // Consistency, read straight from the file.
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        count("SELECT COUNT(*) FROM cart_items WHERE quantity < 1").await,
        0
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM cart_discounts WHERE max_uses IS NOT NULL \
             AND current_uses > max_uses"
        )
        .await,
        0
    );
    let uses: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT d.code, d.current_uses, \
         (SELECT COUNT(*) FROM cart_carts c WHERE c.checked_out AND c.discount_id = d.id) \
         FROM cart_discounts d ORDER BY d.code",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (code, current, checked_out) in &uses {
        assert_eq!(
            current, checked_out,
            "{code}: uses counted == checked-out carts with the code"
        );
    }
    let storm_uses = uses
        .iter()
        .find(|(c, _, _)| c == "STORM8")
        .map_or(0, |u| u.1);

    let mut adds_acked = 0;
    let mut adds_in_flight_landed = 0;
    let mut checkouts_acked = 0;
    let mut carts_checked = 0;
    for (i, epochs, _) in &results {
        let rows: Vec<(i64, i64, bool)> = sqlx::query_as(
            "SELECT c.id, i.quantity, c.checked_out FROM cart_carts c \
             JOIN cart_items i ON i.cart_id = c.id \
             WHERE i.product_kind = 'book' AND i.product_id = ? ORDER BY c.id",
        )
        .bind((*i + 1) as i64)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(
            rows.len() <= epochs.len(),
            "client {i}: {} carts for {} epochs",
            rows.len(),
            epochs.len()
        );
        for (n, epoch) in epochs.iter().enumerate() {
            adds_acked += epoch.adds_acked;
            if epoch.adds_acked == 0 {
                continue;
            }
            let (cart_id, quantity, checked_out) = rows.get(n).copied().unwrap_or_else(|| {
                panic!(
                    "client {i}: cart #{n} with {} acknowledged adds is gone",
                    epoch.adds_acked
                )
            });
            assert!(
                quantity >= epoch.adds_acked && quantity <= epoch.adds_sent,
                "client {i} cart #{n}: quantity {quantity}, acked {}, sent {}",
                epoch.adds_acked,
                epoch.adds_sent
            );
            adds_in_flight_landed += quantity - epoch.adds_acked;
            carts_checked += 1;
            if epoch.checkout_acked {
                checkouts_acked += 1;
                assert!(
                    checked_out,
                    "client {i} cart #{n}: acknowledged checkout lost"
                );
                let orders: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM shop_orders WHERE cart_id = ?")
                        .bind(cart_id)
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                assert_eq!(orders, 1, "client {i} cart #{n}: the order was recorded");
            }
        }
    }
    let orders_missing = count(
        "SELECT COUNT(*) FROM cart_carts c WHERE c.checked_out \
         AND NOT EXISTS (SELECT 1 FROM shop_orders o WHERE o.cart_id = c.id)",
    )
    .await;
    pool.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    assert!(checkouts_acked > 0 && adds_acked > 0, "the storm did work");
    assert_eq!(
        orders_missing, 0,
        "the restarted relay completed the orders of carts checked out just before the kill"
    );
    eprintln!(
        "faults-sigkill: {CLIENTS} clients, SIGKILL after {storm_time:.1?}: {sent} requests \
         sent, {acked} answered, {} cut off by the kill; {adds_acked} acknowledged adds and \
         {checkouts_acked} acknowledged checkouts, all found in {carts_checked} carts; {} \
         unacknowledged adds landed anyway; STORM8 uses {storm_uses}/8 == its checked-out \
         carts; {orders_missing} checked-out cart(s) without a shop order after the restart \
         (its relay completed them in {order_wait:.1?})",
        sent - acked,
        adds_in_flight_landed
    );
}

// ---- a tiny pool under load --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(cart_test_postgres), ignore = "CART_TEST_POSTGRES_URL is not set")]
async fn a_tiny_pool_under_load_waits_then_answers_503() {
    let test = "faults-pool";
    let Some(schema) = PgSchema::create(test).await else {
        return;
    };
    let mut shop = ShopProcess::start(
        test,
        &[
            ("DATABASE_URL", &schema.url),
            ("SESSION_CACHE", "0"),
            ("DATABASE_MAX_CONNECTIONS", "2"),
        ],
    )
    .await;
    let addr = shop.addr;

    // 20 visitors with a cart each.
    let mut visitors = Vec::new();
    for i in 0..20 {
        let mut v = Client::new();
        let res = v
            .post_json(addr, &format!("/cart/add/book/{}", i + 1), None)
            .await
            .unwrap();
        assert_eq!(res.status, 200, "{}", res.body);
        visitors.push(v);
    }

    // Someone holds the cart table: the 2 connections get stuck behind the lock, everything
    // else waits for a connection.
    let pool = schema.pool().await;
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE cart_carts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let load_started = Instant::now();
    let mut tasks = Vec::new();
    for (i, v) in visitors.iter().enumerate() {
        for (method, path) in [
            ("GET", "/cart".to_owned()),
            ("POST", format!("/cart/add/book/{}", i + 1)),
        ] {
            let mut c = v.clone();
            tasks.push(tokio::spawn(async move {
                let (res, took) = timed(&mut c, addr, method, &path, true, None).await;
                (res, took)
            }));
        }
    }
    // Meanwhile the liveness probe is answered at once.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (health, health_took) =
        timed(&mut Client::new(), addr, "GET", "/healthz", false, None).await;
    assert_eq!(health.status, 200);
    assert!(health_took < Duration::from_secs(1));
    // Release the lock well after the pool timeout (5 s).
    tokio::time::sleep(Duration::from_secs(6)).await;
    lock.rollback().await.unwrap();

    let mut by_status: HashMap<u16, usize> = HashMap::new();
    let mut fastest_503 = Duration::MAX;
    let mut codes: HashMap<String, usize> = HashMap::new();
    let mut slowest = Duration::ZERO;
    for t in tasks {
        let (res, took) = t.await.unwrap();
        *by_status.entry(res.status).or_default() += 1;
        slowest = slowest.max(took);
        match res.status {
            200 => {}
            503 => {
                fastest_503 = fastest_503.min(took);
                let code = res.json()["code"].as_str().unwrap_or("").to_owned();
                assert!(
                    code == "database_unavailable" || code == "session_unavailable",
                    "{}",
                    res.body
                );
                *codes.entry(code).or_default() += 1;
                assert!(
                    took >= Duration::from_millis(4500) && took < Duration::from_secs(10),
                    "a 503 after waiting the pool timeout, got one after {took:?}"
                );
            }
            other => panic!("only 200 or 503 under load, got {other}: {}", res.body),
        }
    }
    let total: usize = by_status.values().sum();
    let unavailable = by_status.get(&503).copied().unwrap_or(0);
    assert!(
        unavailable >= total - 4,
        "most requests waited for a connection and got 503: {by_status:?}"
    );
    assert!(shop.alive(), "the shop survived the load");

    // Afterwards every visitor's cart is served, intact or with the one add that got in.
    for (i, v) in visitors.iter_mut().enumerate() {
        let res = v.get_json(addr, "/cart").await.unwrap();
        assert_eq!(res.status, 200, "{}", res.body);
        let cart = res.json();
        assert_eq!(cart["items"][0]["id"], (i + 1) as i64);
        let q = cart["items"][0]["quantity"].as_i64().unwrap();
        assert!((1..=2).contains(&q), "visitor {i}: quantity {q}");
    }
    shop.kill();
    pool.close().await;
    eprintln!(
        "faults-pool: pool of 2, cart table locked for {:.1?}: {total} concurrent requests, \
         {by_status:?} (no other status; 503 codes {codes:?}), 503s after {fastest_503:.1?} or more, slowest \
         answer {slowest:.1?}; /healthz answered in {health_took:.1?}; all 20 carts served \
         afterwards",
        load_started.elapsed()
    );
}
