//! Query budgets per request of the demo shop, counted from the statements sqlx sends (its
//! `sqlx::query` events), on SQLite and (with `CART_TEST_POSTGRES_URL`) PostgreSQL, with the
//! session cache on:
//! - cart page: at most 1 query (the cart with its lines; the catalogue answers from memory);
//! - add: at most 2 cart statements (the session read is served by the cache);
//! - a page header (the askama filters) for a visitor with a cart: the one cart query only;
//!   for a visitor without a cart: none;
//! - `/healthz`: none.
//!
//! One test function in its own binary, so the global counter sees nothing else.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use shop::{app, Settings};
use tower::ServiceExt;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);

struct CountStatements;

impl<S: Subscriber> Layer<S> for CountStatements {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
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
            // A new pooled connection's PRAGMAs / SETs are set-up, not queries.
            if !summary.0.starts_with("\"PRAGMA") && !summary.0.starts_with("\"SET ") {
                STATEMENTS.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

async fn request(
    app: &Router,
    method: &str,
    uri: &str,
    cookie: &str,
) -> (StatusCode, Option<String>, usize) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    if !cookie.is_empty() {
        req.headers_mut()
            .insert(header::COOKIE, cookie.parse().unwrap());
    }
    let before = STATEMENTS.load(Ordering::SeqCst);
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let set = res
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .map(str::to_owned);
    let _ = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap();
    (status, set, STATEMENTS.load(Ordering::SeqCst) - before)
}

async fn budgets(name: &str, database_url: String) {
    let settings = Settings {
        database_url,
        redis_url: None,
        bind: "127.0.0.1:0".parse().unwrap(),
        merge_strategy: axum_cart::MergeStrategy::Add,
        admin_password: None,
        secure_cookies: false,
        session_cache: true,
        max_quantity: 999,
        quantity_rules: true,
        discount_attempts: 10,
        // No relay: its rounds would count as the requests' queries.
        events: shop::EventSettings {
            relay: false,
            ..shop::EventSettings::default()
        },
        seed_per_kind: 100,
    };
    let (app, _) = app(settings).await.unwrap();

    let (_, _, n) = request(&app, "GET", "/healthz", "").await;
    assert_eq!(n, 0, "{name}: /healthz");
    let (_, _, n) = request(&app, "GET", "/", "").await;
    assert_eq!(n, 0, "{name}: a page header for a visitor with no cart");

    // Fill a 10-line cart through the public endpoint.
    let (status, cookie, _) = request(&app, "POST", "/cart/add/book/1", "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.expect("a session cookie");
    for p in [
        "book/2", "book/3", "book/4", "coffee/1", "coffee/2", "coffee/3", "course/1", "course/2",
        "course/3",
    ] {
        request(&app, "POST", &format!("/cart/add/{p}"), &cookie).await;
    }

    // Warm the session cache and the pool, then count.
    request(&app, "GET", "/cart", &cookie).await;
    let (status, _, n) = request(&app, "GET", "/cart", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(n <= 1, "{name}: cart page took {n} queries");
    println!("{name}: cart page = {n} query");

    let (status, _, n) = request(&app, "POST", "/cart/add/book/2", &cookie).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // The upsert (MySQL: and the read of the quantity it wrote), then the outbox's event:
    // the read of the cart's user and version, and the insert, in one transaction (the
    // driver's log counts PostgreSQL's `BEGIN`, MySQL's `BEGIN` and its isolation level).
    let budget = match name {
        "mysql" => 6,
        "postgres" => 4,
        _ => 3,
    };
    assert!(n <= budget, "{name}: add took {n} statements");
    println!("{name}: add = {n} statement(s)");

    let (_, _, n) = request(&app, "GET", "/", &cookie).await;
    assert!(
        n <= 1,
        "{name}: a page with the header filters took {n} queries"
    );
    println!("{name}: product page with header = {n} query");
}

/// Runs `scenario` with the statement counter installed; the counter is global, so the
/// backends run one at a time.
fn counted_run(scenario: impl std::future::Future<Output = ()>) {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    static INSTALL: std::sync::Once = std::sync::Once::new();
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(CountStatements),
        )
        .expect("install the statement counter");
    });
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenario);
}

#[test]
fn sqlite_shop_query_budgets() {
    counted_run(async {
        let path = std::env::temp_dir().join(format!("shop-budget-{}.db", std::process::id()));
        budgets("sqlite", format!("sqlite://{}", path.display())).await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    });
}

#[test]
#[cfg_attr(not(cart_test_postgres), ignore = "CART_TEST_POSTGRES_URL is not set")]
fn postgres_shop_query_budgets() {
    counted_run(async {
        let url = std::env::var("CART_TEST_POSTGRES_URL").expect("CART_TEST_POSTGRES_URL");
        let schema = format!("shop_budget_{}", std::process::id());
        let admin = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        budgets(
            "postgres",
            format!("{url}{sep}options=-c%20search_path%3D{schema}"),
        )
        .await;
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&admin)
            .await
            .unwrap();
    });
}
