//! The test harness: every behaviour test runs once per backend. SQLite always runs (a
//! temporary file, so concurrency is real); PostgreSQL and MySQL run when
//! `CART_TEST_POSTGRES_URL` / `CART_TEST_MYSQL_URL` are set, each test in its own schema or
//! database, and say loudly when they are skipped.
#![allow(dead_code)]

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum_cart::{async_trait, BoxError, Carts, CartsBuilder, Catalog, Product, ProductRef, Store};
use rust_decimal::Decimal;

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "cart_t_{}_{}_{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A migrated SQLite temp file (WAL, foreign keys, a busy timeout), removed on drop.
#[cfg(feature = "sqlite")]
pub struct TempSqlite {
    pub pool: sqlx::SqlitePool,
    path: std::path::PathBuf,
}

#[cfg(feature = "sqlite")]
impl TempSqlite {
    pub async fn new() -> TempSqlite {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
        let path = std::env::temp_dir().join(format!("{}.db", unique_name()));
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .expect("open sqlite");
        Store::from(pool.clone())
            .migrate()
            .await
            .expect("migrate sqlite");
        TempSqlite { pool, path }
    }
}

#[cfg(feature = "sqlite")]
impl Drop for TempSqlite {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

/// The harness's own handle on the database, for checks the API does not offer.
pub enum Raw {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
}

impl Raw {
    /// Runs one statement with no parameters.
    pub async fn exec(&self, sql: &str) -> Result<u64, sqlx::Error> {
        Ok(match self {
            #[cfg(feature = "sqlite")]
            Raw::Sqlite(p) => sqlx::query(sql).execute(p).await?.rows_affected(),
            #[cfg(feature = "postgres")]
            Raw::Postgres(p) => sqlx::query(sql).execute(p).await?.rows_affected(),
            #[cfg(feature = "mysql")]
            Raw::MySql(p) => sqlx::query(sql).execute(p).await?.rows_affected(),
        })
    }

    /// Runs a query returning one integer.
    pub async fn count(&self, sql: &str) -> i64 {
        match self {
            #[cfg(feature = "sqlite")]
            Raw::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            #[cfg(feature = "postgres")]
            Raw::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            #[cfg(feature = "mysql")]
            Raw::MySql(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        }
        .expect("count query")
    }
}

/// A migrated, empty database of one backend.
pub struct Harness {
    pub backend: &'static str,
    pub store: Store,
    pub raw: Raw,
    cleanup: Option<Box<dyn FnOnce() + Send>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(f) = self.cleanup.take() {
            f();
        }
    }
}

impl Harness {
    pub fn builder(&self) -> CartsBuilder {
        Carts::builder(self.store.clone())
    }

    pub fn carts(&self) -> Carts {
        self.builder().build()
    }

    #[cfg(feature = "sqlite")]
    pub async fn sqlite() -> Option<Harness> {
        let file = TempSqlite::new().await;
        Some(Harness {
            backend: "sqlite",
            store: Store::from(file.pool.clone()),
            raw: Raw::Sqlite(file.pool.clone()),
            cleanup: Some(Box::new(move || drop(file))),
        })
    }

    #[cfg(feature = "postgres")]
    pub async fn postgres() -> Option<Harness> {
        let Ok(url) = std::env::var("CART_TEST_POSTGRES_URL") else {
            eprintln!("SKIPPED (postgres): CART_TEST_POSTGRES_URL is not set");
            return None;
        };
        use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
        let schema = unique_name();
        let admin = sqlx::PgPool::connect(&url).await.expect("connect postgres");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .expect("create schema");
        let options = PgConnectOptions::from_str(&url)
            .expect("postgres url")
            .options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(std::time::Duration::from_secs(30))
            .connect_with(options)
            .await
            .expect("connect postgres schema");
        let store = Store::from(pool.clone());
        store.migrate().await.expect("migrate postgres");
        Some(Harness {
            backend: "postgres",
            store,
            raw: Raw::Postgres(pool.clone()),
            cleanup: Some(Box::new(move || {
                drop_later(async move {
                    pool.close().await;
                    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                        .execute(&admin)
                        .await;
                    admin.close().await;
                })
            })),
        })
    }

    #[cfg(feature = "mysql")]
    pub async fn mysql() -> Option<Harness> {
        let Ok(url) = std::env::var("CART_TEST_MYSQL_URL") else {
            eprintln!("SKIPPED (mysql): CART_TEST_MYSQL_URL is not set");
            return None;
        };
        use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
        let db = unique_name();
        let admin = sqlx::MySqlPool::connect(&url).await.expect("connect mysql");
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&admin)
            .await
            .expect("create database");
        let options = MySqlConnectOptions::from_str(&url)
            .expect("mysql url")
            .database(&db);
        let pool = MySqlPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(std::time::Duration::from_secs(30))
            .connect_with(options)
            .await
            .expect("connect mysql database");
        let store = Store::from(pool.clone());
        store.migrate().await.expect("migrate mysql");
        Some(Harness {
            backend: "mysql",
            store,
            raw: Raw::MySql(pool.clone()),
            cleanup: Some(Box::new(move || {
                drop_later(async move {
                    pool.close().await;
                    let _ = sqlx::query(&format!("DROP DATABASE {db}"))
                        .execute(&admin)
                        .await;
                    admin.close().await;
                })
            })),
        })
    }
}

/// Runs the clean-up on a thread of its own (Drop cannot await).
fn drop_later(f: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(f);
        }
    })
    .join();
}

/// Declares each listed `async fn(Harness)` as one test per backend compiled in:
/// `sqlite::name`, `postgres::name`, `mysql::name`. The PostgreSQL and MySQL tests are
/// `ignored` (so `cargo test`'s summary counts them) when their URL was not set at build
/// time (see the crate's `build.rs`).
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        #[cfg(feature = "sqlite")]
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
               async fn $name() {
                   if let Some(h) = $crate::common::Harness::sqlite().await { super::$name(h).await }
               } )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
               #[cfg_attr(not(cart_test_postgres), ignore = "CART_TEST_POSTGRES_URL is not set")]
               async fn $name() {
                   if let Some(h) = $crate::common::Harness::postgres().await { super::$name(h).await }
               } )*
        }
        #[cfg(feature = "mysql")]
        mod mysql {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
               #[cfg_attr(not(cart_test_mysql), ignore = "CART_TEST_MYSQL_URL is not set")]
               async fn $name() {
                   if let Some(h) = $crate::common::Harness::mysql().await { super::$name(h).await }
               } )*
        }
    };
}

pub fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal literal")
}

pub fn p(kind: &str, id: i64) -> ProductRef {
    ProductRef::new(kind, id).expect("product ref")
}

/// A product with a price, as an app would define it.
#[derive(Debug, Clone)]
pub struct Item {
    pub kind: &'static str,
    pub id: i64,
    pub name: String,
    pub price: Decimal,
}

impl Product for Item {
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
        self.name.clone()
    }
}

pub fn item(kind: &'static str, id: i64, price: &str) -> Item {
    Item {
        kind,
        id,
        name: format!("{kind} {id}"),
        price: d(price),
    }
}

/// A catalogue of `book`, `coffee` and `course` ids 1..=100 (price 10.00 + id), counting calls.
#[derive(Clone, Default)]
pub struct TestCatalog {
    pub calls: Arc<AtomicU64>,
}

#[async_trait]
impl Catalog for TestCatalog {
    async fn products(&self, kind: &str, ids: &[i64]) -> Result<Vec<Arc<dyn Product>>, BoxError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let kind: &'static str = match kind {
            "book" => "book",
            "coffee" => "coffee",
            "course" => "course",
            _ => return Ok(Vec::new()),
        };
        Ok(ids
            .iter()
            .filter(|id| (1..=100).contains(*id))
            .map(|id| Arc::new(item(kind, *id, &format!("{}.00", 10 + id))) as Arc<dyn Product>)
            .collect())
    }
}

/// A layer for the test apps: every JSON error they answer (4xx/5xx with a JSON body) must
/// be an RFC 9457 problem with the cart's members, or the test panics.
#[cfg(feature = "http")]
type CheckFn = fn(
    axum::extract::Request,
    axum::middleware::Next,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = axum::response::Response> + Send>,
>;

#[cfg(feature = "http")]
pub fn problems_checked() -> axum::middleware::FromFnLayer<CheckFn, (), (axum::extract::Request,)> {
    fn check(
        req: axum::extract::Request,
        next: axum::middleware::Next,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = axum::response::Response> + Send>> {
        Box::pin(async move {
            let res = next.run(req).await;
            let status = res.status();
            let json = res
                .headers()
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.contains("json"));
            if status.as_u16() < 400 || !json {
                return res;
            }
            let (parts, body) = res.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .expect("error body");
            let value: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON error body");
            assert_problem(status, &parts.headers, &value);
            axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
        })
    }
    axum::middleware::from_fn(check as CheckFn)
}

/// Asserts the RFC 9457 shape of a JSON error answer with this status.
#[cfg(feature = "http")]
pub fn assert_problem(
    status: axum::http::StatusCode,
    headers: &axum::http::HeaderMap,
    body: &serde_json::Value,
) {
    assert_eq!(
        headers[axum::http::header::CONTENT_TYPE],
        "application/problem+json",
        "{body}"
    );
    let code = body["code"].as_str().expect("code");
    assert_eq!(
        body["type"],
        format!("https://github.com/axum-cart/axum-cart/blob/main/docs/PROBLEMS.md#{code}"),
        "{body}"
    );
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert_eq!(body["error"], body["detail"], "{body}");
    if let Some(cart) = body.get("cart") {
        assert!(cart["items"].is_array(), "{body}");
    }
}
