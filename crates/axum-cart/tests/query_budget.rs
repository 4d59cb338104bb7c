//! Query budgets, counted from the statements sqlx actually sends (its `sqlx::query` log
//! events), not timed. In a binary of its own, one backend at a time, so the global counter
//! sees nothing but these scenarios.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use axum_cart::{Line, MemorySession};
use common::{d, p, Harness, TestCatalog};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);

struct CountStatements;

impl<S: Subscriber> Layer<S> for CountStatements {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            // A new pooled connection runs its PRAGMAs (SQLite) or SETs (MySQL): set-up, not queries.
            struct Summary(String);
            impl tracing::field::Visit for Summary {
                fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                    if f.name() == "summary" {
                        self.0 = format!("{v:?}");
                    }
                }
            }
            let mut summary = Summary(String::new());
            event.record(&mut summary);
            if !summary.0.starts_with("\"PRAGMA") && !summary.0.starts_with("\"SET ") {
                STATEMENTS.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

async fn counted<T>(f: impl std::future::Future<Output = T>) -> (T, usize) {
    let before = STATEMENTS.load(Ordering::SeqCst);
    let out = f.await;
    (out, STATEMENTS.load(Ordering::SeqCst) - before)
}

async fn budgets(h: Harness) {
    let name = h.backend;
    let catalog = TestCatalog::default();
    let carts = h.builder().catalog(catalog.clone()).build();
    let session = MemorySession::default();

    // The first add of a visitor: create the cart row + the add (below).
    let mut cart = carts.open(session.clone()).await.unwrap();
    let (r, n) = counted(cart.add(&p("book", 1), d("10.00"), 1)).await;
    r.unwrap();
    let budget = if name == "mysql" { 6 } else { 5 };
    assert!(n <= budget, "{name}: first add took {n} statements");
    println!("{name}: first add = {n} statement(s)");

    // Any later add, in one transaction: one atomic upsert (MySQL: and the session-local
    // read of the quantity it wrote), then the outbox's event: a read of the cart's user
    // and version, and the event's insert. The driver's log counts PostgreSQL's `BEGIN`,
    // and MySQL's `BEGIN` and `SET TRANSACTION ISOLATION LEVEL READ COMMITTED`; SQLite's
    // `BEGIN IMMEDIATE` and every `COMMIT` go unlogged.
    let mut cart = carts.open(session.clone()).await.unwrap();
    let (r, n) = counted(cart.add(&p("book", 1), d("10.00"), 1)).await;
    assert_eq!(r.unwrap().quantity, 2, "{name}: the line's new quantity");
    let budget = match name {
        "mysql" => 6,
        "postgres" => 4,
        _ => 3,
    };
    assert!(n <= budget, "{name}: add took {n} statements");
    println!("{name}: add = {n} statement(s)");

    // A cold total() with default calculators: one query.
    let cart = carts.open(session.clone()).await.unwrap();
    let (r, n) = counted(cart.total()).await;
    assert_eq!(r.unwrap().to_string(), "20.00");
    assert_eq!(n, 1, "{name}: cold total()");

    // Ten summary() calls: one query.
    let cart = carts.open(session.clone()).await.unwrap();
    let (_, n) = counted(async {
        for _ in 0..10 {
            cart.summary().await.unwrap();
        }
    })
    .await;
    assert_eq!(n, 1, "{name}: ten summary() calls");

    // Header reads for a visitor with no cart: no query at all.
    let nobody = carts.open(MemorySession::default()).await.unwrap();
    let (_, n) = counted(async {
        nobody.count().await.unwrap();
        nobody.total().await.unwrap();
    })
    .await;
    assert_eq!(n, 0, "{name}: a visitor with no cart costs no query");

    // items_with_products over 100 lines of 3 kinds: one line query + 3 catalogue calls.
    let mut big = carts.new_cart();
    let lines: Vec<Line> = (1..=100)
        .map(|i| {
            Line::new(
                p(["book", "coffee", "course"][i % 3], i as i64),
                1,
                d("1.00"),
            )
        })
        .collect();
    big.add_bulk(lines).await.unwrap();
    let id = big.id().await.unwrap().unwrap();
    let fresh = carts.cart(id);
    catalog.calls.store(0, Ordering::SeqCst);
    let (r, n) = counted(fresh.items_with_products()).await;
    assert_eq!(r.unwrap().len(), 100);
    assert_eq!(n, 1, "{name}: items_with_products line query");
    assert_eq!(
        catalog.calls.load(Ordering::SeqCst),
        3,
        "{name}: one catalogue call per kind"
    );

    // With the cart cache: a repeated page view costs nothing, a change one statement.
    let cached = h.builder().cache_carts(true).build();
    let s = MemorySession::default();
    cached
        .open(s.clone())
        .await
        .unwrap()
        .add(&p("book", 1), d("1.00"), 1)
        .await
        .unwrap();
    let (_, n) =
        counted(async { cached.open(s.clone()).await.unwrap().total().await.unwrap() }).await;
    assert!(n <= 1, "{name}: first cached read");
    let (_, n) =
        counted(async { cached.open(s.clone()).await.unwrap().total().await.unwrap() }).await;
    assert_eq!(n, 0, "{name}: a repeated read with the cart cache");

    // The admin cart list: one query whatever its length (django-cart's admin: 5 + 2N).
    let (rows, n) = counted(carts.list_carts(&axum_cart::CartFilter::new().limit(100))).await;
    let before = rows.unwrap().len();
    assert_eq!(n, 1, "{name}: a {before}-cart page");
    for _ in 0..40 {
        let mut c = carts.new_cart();
        c.add(&p("book", 1), d("1.00"), 1).await.unwrap();
    }
    let (rows, n) = counted(carts.list_carts(&axum_cart::CartFilter::new().limit(100))).await;
    assert_eq!(
        (rows.unwrap().len(), n),
        (before + 40, 1),
        "{name}: a longer page, one query"
    );
}

/// One backend's budgets: the statement counter is global, so the backends run one at a time.
type Open = fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Harness>>>>;

fn run(backend: Open) {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    static INSTALL: std::sync::Once = std::sync::Once::new();
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(CountStatements);
        tracing::subscriber::set_global_default(subscriber).expect("install the statement counter");
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let h = backend().await.expect("the backend's database");
        budgets(h).await;
    });
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_query_budgets() {
    run(|| Box::pin(Harness::sqlite()));
}

#[cfg(feature = "postgres")]
#[test]
#[cfg_attr(not(cart_test_postgres), ignore = "CART_TEST_POSTGRES_URL is not set")]
fn postgres_query_budgets() {
    run(|| Box::pin(Harness::postgres()));
}

#[cfg(feature = "mysql")]
#[test]
#[cfg_attr(not(cart_test_mysql), ignore = "CART_TEST_MYSQL_URL is not set")]
fn mysql_query_budgets() {
    run(|| Box::pin(Harness::mysql()));
}
