//! Several shop processes started at the same instant on an empty database, on each
//! backend: a fresh PostgreSQL database, a fresh MySQL database and a fresh SQLite file.
//! Every process must come up (no duplicate-type or duplicate-key error from racing
//! `CREATE … IF NOT EXISTS`, migrations or seed inserts), and every process must serve the
//! whole catalogue (none may have read it half-seeded).
//!
//! PostgreSQL and MySQL need `CART_TEST_POSTGRES_URL` / `CART_TEST_MYSQL_URL` and skip
//! loudly without them; SQLite always runs. See `docs/RELIABILITY.md`, "Start-up".

mod support;

use std::time::{Duration, Instant};

use support::{Client, MySqlDatabase, PgDatabase, ShopProcess};

/// How many processes race.
const PROCESSES: usize = 3;
/// Products of each kind a new shop seeds (the default).
const PER_KIND: usize = 100;
const KINDS: [&str; 3] = ["book", "coffee", "course"];

/// Starts `PROCESSES` shops on `url` at once, then checks each: up, every kind's page lists
/// all `PER_KIND` products, and adding the last product of each kind works. Returns how
/// long the slowest start took.
async fn race(test: &str, url: &str) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..PROCESSES)
        .map(|i| {
            let name = format!("{test}-{i}");
            let url = url.to_owned();
            tokio::spawn(async move {
                ShopProcess::start(&name, &[("DATABASE_URL", &url), ("SESSION_CACHE", "0")]).await
            })
        })
        .collect();
    let mut shops = Vec::new();
    for t in tasks {
        // A process that exits during start-up panics inside `start`, with its log.
        shops.push(t.await.expect("every shop comes up"));
    }
    let slowest = started.elapsed();
    for shop in &mut shops {
        assert!(shop.alive(), "{} stays up", shop.name);
        let mut visitor = Client::new();
        for kind in KINDS {
            let page = visitor
                .send(shop.addr, "GET", &format!("/?kind={kind}"), false, None)
                .await
                .unwrap();
            assert_eq!(page.status, 200, "{}", page.body);
            let listed = page.body.matches(&format!("id=\"product-{kind}-")).count();
            assert_eq!(
                listed, PER_KIND,
                "{}: the {kind} page lists the whole catalogue",
                shop.name
            );
            let res = visitor
                .post_json(shop.addr, &format!("/cart/add/{kind}/{PER_KIND}"), None)
                .await
                .unwrap();
            assert_eq!(
                res.status, 200,
                "{}: the last {kind} can be added: {}",
                shop.name, res.body
            );
        }
        let cart = visitor.get_json(shop.addr, "/cart").await.unwrap();
        assert_eq!(cart.json()["count"], KINDS.len(), "{}", cart.body);
    }
    for shop in &mut shops {
        shop.kill();
    }
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(cart_test_postgres), ignore = "CART_TEST_POSTGRES_URL is not set")]
async fn three_processes_start_at_once_on_a_fresh_postgres_database() {
    let test = "startup-pg";
    let Some(db) = PgDatabase::create(test).await else {
        return;
    };
    let slowest = race(test, &db.url).await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let products: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM shop_products")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(products, (PER_KIND * KINDS.len()) as i64);
    pool.close().await;
    eprintln!(
        "{test}: {PROCESSES} processes started at once on a fresh database, all up within \
         {slowest:.1?}, each listing {PER_KIND} products of each kind and adding the last; \
         {products} product rows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(cart_test_mysql), ignore = "CART_TEST_MYSQL_URL is not set")]
async fn three_processes_start_at_once_on_a_fresh_mysql_database() {
    let test = "startup-mysql";
    let Some(db) = MySqlDatabase::create(test).await else {
        return;
    };
    let slowest = race(test, &db.url).await;
    let pool = sqlx::MySqlPool::connect(&db.url).await.unwrap();
    let products: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM shop_products")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(products, (PER_KIND * KINDS.len()) as i64);
    pool.close().await;
    eprintln!(
        "{test}: {PROCESSES} processes started at once on a fresh database, all up within \
         {slowest:.1?}, each listing {PER_KIND} products of each kind and adding the last; \
         {products} product rows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_start_at_once_on_a_fresh_sqlite_file() {
    let test = "startup-sqlite";
    let path = std::env::temp_dir().join(format!("{}.db", support::unique_name("shop_start")));
    let url = format!("sqlite://{}", path.display());
    let slowest = race(test, &url).await;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let products: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM shop_products")
        .fetch_one(&pool)
        .await
        .unwrap();
    let migrations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    assert_eq!(products, (PER_KIND * KINDS.len()) as i64);
    eprintln!(
        "{test}: {PROCESSES} processes started at once on a fresh file, all up within \
         {slowest:.1?}, each listing {PER_KIND} products of each kind and adding the last; \
         {products} product rows, {migrations} cart migrations recorded once each"
    );
}
