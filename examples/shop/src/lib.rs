//! The axum-cart demo shop: what a newcomer runs first.
//!
//! `cargo run -p shop` serves a small store at <http://127.0.0.1:3000> on an embedded SQLite
//! file, created, migrated and seeded on first start. Environment:
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `DATABASE_URL` | `sqlite://shop.db` | SQLite, PostgreSQL or MySQL |
//! | `DATABASE_MAX_CONNECTIONS` | 4 for SQLite, 16 otherwise | the most database connections the process opens; a request waits up to 5 s for one, then gets 503 |
//! | `REDIS_URL` | unset | keep sessions in Redis instead of the database |
//! | `BIND` / `PORT` | `127.0.0.1:3000` | where to listen |
//! | `MERGE_STRATEGY` | `add` | how a guest cart joins the user's on login (`add`, `replace`, `keep_higher`) |
//! | `ADMIN_PASSWORD` | unset | enables `/admin` (HTTP basic auth, user `admin`), with the price editor at `/admin/products` |
//! | `SECURE_COOKIES` | unset | `1` marks cookies `Secure` (behind HTTPS) |
//! | `MAX_QUANTITY` | `999` | the most units one line may hold (benchmarks raise it) |
//! | `SEED_PER_KIND` | `100` | products of each kind seeded into a new database |
//! | `DISCOUNT_ATTEMPTS_PER_MINUTE` | `10` | discount codes one visitor may try a minute (ten times as many from one client address); `0` turns both limits off, for load and acceptance runs that apply many codes from one address |
//! | `QUANTITY_RULES` | `1` | `0` switches the products' quantity rule off (a course is bought at most once), for load runs that add the same products over and over |
//! | `SESSION_CACHE` | on for SQLite, off otherwise | `1`/`0`: keep sessions and carts in memory in front of the database (only for a single process: other processes would not see a cached change) |
//! | `HEADER_TIMEOUT_SECS` | `10` | a connection whose request head has not fully arrived this long after the connection opened (or after its previous answer, for a kept-alive one) is closed |
//! | `BODY_TIMEOUT_SECS` | `15` | the longest wait for the next piece of a request body; then the request fails and the connection is closed |
//! | `REQUEST_TIMEOUT_SECS` | `30` | the longest a request may take from its head to its answer (slow body included); then 408 |
//! | `MAX_BODY_BYTES` | `65536` | the largest request body; a larger declared `Content-Length` gets 413 at once |
//! | `MAX_CONNECTIONS` | `1024` | the most client connections served at once; more wait in the listen queue until one closes |
//! | `EVENTS_RELAY` | `1` | `0`: this process runs no outbox relay (orders and events are delivered by a `cart relay` process, or by another shop process) |
//! | `EVENTS_NATS_URL` | unset | publish every cart event to NATS JetStream (`cart.events.<type>`) |
//! | `EVENTS_AMQP_URL` | unset | publish every cart event to RabbitMQ (topic exchange `cart.events`) |
//! | `EVENTS_WEBHOOK_URL`, `EVENTS_WEBHOOK_SECRET` | unset | POST every cart event to this URL, signed per Standard Webhooks with the `whsec_…` secret |
//!
//! The cart's JSON API is described by the OpenAPI 3.1 document at `/cart/openapi.json`,
//! linked from `/docs`.
//!
//! Probes: `/healthz` (liveness) answers `ok` without touching anything; `/readyz`
//! (readiness) checks the database and the session store within 2 s each and answers 200
//! `ready`, or 503 naming what is down, with `Retry-After`. Every 503 the shop sends carries
//! `Retry-After`.

pub mod admin_prices;
pub mod auth;
pub mod catalog;
pub mod db;
pub mod pricing;
pub mod sessions;

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Form, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_cart::{
    admin_router, filters, AmqpSink, Cart, CartBadge, CartDetails, CartError, CartLayer,
    CartRouter, Carts, IdempotencyLayer, MergeStrategy, NatsSink, NewDiscount, Order, Relay,
    SameSiteLayer, WebhookSink,
};
use axum_login::AuthManager;
use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_moka_store::MokaStore;

use crate::auth::{AuthSession, Backend, Credentials};
use crate::catalog::{ShopCatalog, ShopProduct, KINDS};
use crate::db::{cents, Arg, Db};
use crate::pricing::{EightPercentTax, FlatRateShipping};
use crate::sessions::Sessions;

/// The shop's settings, from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub redis_url: Option<String>,
    pub bind: SocketAddr,
    pub merge_strategy: MergeStrategy,
    pub admin_password: Option<String>,
    pub secure_cookies: bool,
    pub session_cache: bool,
    pub max_quantity: u32,
    pub seed_per_kind: i64,
    pub quantity_rules: bool,
    /// Discount codes one visitor may try a minute; 0 is no limit (ten times as many per
    /// client address).
    pub discount_attempts: u32,
    /// Where the outbox's events go, and whether this process runs the relay.
    pub events: EventSettings,
}

/// The outbox relay of the shop: `EVENTS_RELAY`, `EVENTS_NATS_URL`, `EVENTS_AMQP_URL`,
/// `EVENTS_WEBHOOK_URL` + `EVENTS_WEBHOOK_SECRET`.
#[derive(Debug, Clone)]
pub struct EventSettings {
    /// Run the relay in this process (on by default): it writes the orders and delivers the
    /// events. Off when `cart relay` (or another shop process) runs it.
    pub relay: bool,
    /// NATS (JetStream) server to publish the events to.
    pub nats_url: Option<String>,
    /// RabbitMQ server to publish the events to (exchange `cart.events`).
    pub amqp_url: Option<String>,
    /// The webhook endpoint, with its `whsec_…` signing secret.
    pub webhook: Option<(String, String)>,
}

impl Default for EventSettings {
    fn default() -> EventSettings {
        EventSettings {
            relay: true,
            nats_url: None,
            amqp_url: None,
            webhook: None,
        }
    }
}

impl Settings {
    /// Reads the environment; a malformed value is an error that names the variable.
    pub fn from_env() -> Result<Settings, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut bind: SocketAddr = var("BIND")
            .unwrap_or_else(|| "127.0.0.1:3000".into())
            .parse()
            .map_err(|e| format!("BIND must be an address such as 127.0.0.1:3000: {e}"))?;
        if let Some(port) = var("PORT") {
            bind.set_port(
                port.parse()
                    .map_err(|e| format!("PORT must be a port number: {e}"))?,
            );
        }
        let merge_strategy = match var("MERGE_STRATEGY") {
            Some(s) => s
                .parse::<MergeStrategy>()
                .map_err(|e| format!("MERGE_STRATEGY: {e}"))?,
            None => MergeStrategy::Add,
        };
        let database_url = var("DATABASE_URL").unwrap_or_else(|| "sqlite://shop.db".into());
        let redis_url = var("REDIS_URL");
        let session_cache = match var("SESSION_CACHE").as_deref() {
            Some("1" | "true") => true,
            Some("0" | "false") => false,
            Some(other) => return Err(format!("SESSION_CACHE must be 1 or 0, got {other:?}")),
            None => database_url.starts_with("sqlite:") && redis_url.is_none(),
        };
        let number = |name: &str, default: u32, max: u32| -> Result<u32, String> {
            match var(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| format!("{name} must be a number from 1 to {max}, got {v:?}")),
            }
        };
        Ok(Settings {
            max_quantity: number("MAX_QUANTITY", 999, 1_000_000_000)?,
            seed_per_kind: i64::from(number("SEED_PER_KIND", 100, 100_000)?),
            discount_attempts: match var("DISCOUNT_ATTEMPTS_PER_MINUTE") {
                None => CartRouter::DEFAULT_DISCOUNT_ATTEMPTS,
                Some(v) => v.parse::<u32>().ok().filter(|n| *n <= 1_000_000).ok_or_else(|| {
                    format!("DISCOUNT_ATTEMPTS_PER_MINUTE must be a number from 0 to 1000000, got {v:?}")
                })?,
            },
            quantity_rules: match var("QUANTITY_RULES").as_deref() {
                None | Some("1" | "true") => true,
                Some("0" | "false") => false,
                Some(other) => return Err(format!("QUANTITY_RULES must be 1 or 0, got {other:?}")),
            },
            events: EventSettings {
                relay: match var("EVENTS_RELAY").as_deref() {
                    None | Some("1" | "true") => true,
                    Some("0" | "false") => false,
                    Some(other) => {
                        return Err(format!("EVENTS_RELAY must be 1 or 0, got {other:?}"))
                    }
                },
                nats_url: var("EVENTS_NATS_URL"),
                amqp_url: var("EVENTS_AMQP_URL"),
                webhook: match (var("EVENTS_WEBHOOK_URL"), var("EVENTS_WEBHOOK_SECRET")) {
                    (Some(url), Some(secret)) => Some((url, secret)),
                    (None, None) => None,
                    _ => {
                        return Err(
                            "EVENTS_WEBHOOK_URL and EVENTS_WEBHOOK_SECRET go together".into()
                        )
                    }
                },
            },
            session_cache,
            database_url,
            redis_url,
            bind,
            merge_strategy,
            admin_password: var("ADMIN_PASSWORD"),
            secure_cookies: var("SECURE_COOKIES").is_some_and(|v| v == "1" || v == "true"),
        })
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct Shop {
    pub db: Db,
    pub carts: Carts,
    pub catalog: ShopCatalog,
    pub settings: Arc<Settings>,
}

/// The limits `serve` puts on connections and requests, from the environment.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A request head must have arrived this long after the connection opened (or after the
    /// previous answer on a kept-alive connection), or the connection is closed.
    pub header_timeout: std::time::Duration,
    /// The longest wait for the next piece of a request body.
    pub body_timeout: std::time::Duration,
    /// The longest a request may take, from its head to its answer.
    pub request_timeout: std::time::Duration,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// The most connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: std::time::Duration::from_secs(10),
            body_timeout: std::time::Duration::from_secs(15),
            request_timeout: std::time::Duration::from_secs(30),
            max_body_bytes: 64 * 1024,
            max_connections: 1024,
        }
    }
}

impl Limits {
    /// Reads `HEADER_TIMEOUT_SECS`, `BODY_TIMEOUT_SECS`, `REQUEST_TIMEOUT_SECS`,
    /// `MAX_BODY_BYTES` and `MAX_CONNECTIONS`; a malformed value is an error that names the
    /// variable.
    pub fn from_env() -> Result<Limits, String> {
        let defaults = Limits::default();
        let number = |name: &str, default: u64, max: u64| -> Result<u64, String> {
            match std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| format!("{name} must be a number from 1 to {max}, got {v:?}")),
            }
        };
        let secs = |name: &str, default: std::time::Duration| {
            number(name, default.as_secs(), 86_400).map(std::time::Duration::from_secs)
        };
        Ok(Limits {
            header_timeout: secs("HEADER_TIMEOUT_SECS", defaults.header_timeout)?,
            body_timeout: secs("BODY_TIMEOUT_SECS", defaults.body_timeout)?,
            request_timeout: secs("REQUEST_TIMEOUT_SECS", defaults.request_timeout)?,
            max_body_bytes: number("MAX_BODY_BYTES", defaults.max_body_bytes as u64, 1 << 30)?
                as usize,
            max_connections: number(
                "MAX_CONNECTIONS",
                defaults.max_connections as u64,
                1_000_000,
            )? as usize,
        })
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Opens the database, migrates, seeds, and builds the whole app.
///
/// Several processes may start at once on one database: the preparation (the shop's
/// tables, the catalogue, the cart tables, the discounts, the session table) runs under
/// one database-wide lock ([`Db::startup_lock`]), and the catalogue is read only once it is
/// whole.
pub async fn app(settings: Settings) -> Result<(Router, Shop), BoxError> {
    let db = Db::connect(&settings.database_url).await?;
    let lock = db.startup_lock().await?;
    db.prepare().await?;
    let catalog = ShopCatalog::load(&db, settings.seed_per_kind, settings.quantity_rules).await?;
    let carts = Carts::builder(db.store())
        .catalog(catalog.clone())
        .tax_calculator(EightPercentTax)
        .shipping_calculator(FlatRateShipping)
        .max_quantity_per_item(settings.max_quantity)
        // One process owns the database: carts can be served from memory too.
        .cache_carts(settings.session_cache)
        .build();
    carts.migrate().await?;
    seed_discounts(&carts).await?;
    let sessions = Sessions::open(&db, settings.redis_url.as_deref()).await?;
    lock.release().await?;
    {
        let sessions = sessions.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                if let Err(e) = sessions.delete_expired().await {
                    tracing::warn!(error = %e, "could not delete expired sessions");
                }
            }
        });
    }
    let shop = Shop {
        db: db.clone(),
        carts: carts.clone(),
        catalog,
        settings: Arc::new(settings),
    };
    // The orders of checked-out carts are written by the relay, from the outbox: at least
    // once per cart, retried until the order book takes them (a crash between a checkout
    // and its order is completed by the next start's relay).
    if shop.settings.events.relay {
        relay(&shop).await?.spawn();
    }

    let cache = shop
        .settings
        .session_cache
        .then(|| MokaStore::new(Some(100_000)));
    let probe = (db.clone(), sessions.clone());
    let session_layer = SessionManagerLayer::new(sessions::Cached {
        cache,
        store: sessions,
    })
    .with_name("shop_session")
    .with_http_only(true)
    .with_same_site(SameSite::Lax)
    .with_secure(shop.settings.secure_cookies)
    .with_expiry(Expiry::OnInactivity(Duration::days(30)));
    let backend = Backend { db };
    let auth_layer = tower::layer::layer_fn(move |inner| {
        AuthManager::new(inner, backend.clone(), AUTH_DATA_KEY)
    });

    let attempts = shop.settings.discount_attempts;
    let cart_routes = CartRouter::new()
        .discount_attempts(attempts, attempts.saturating_mul(10))
        .template(|details: &CartDetails| {
            CartPage {
                badge: details.badge(),
                user: None,
                cart: details,
            }
            .render()
            .map_err(Into::into)
        })
        .build();

    let mut router = Router::new()
        .route("/", get(products))
        .route("/docs", get(docs))
        // `Idempotency-Key` on the shop's own checkout, as on the cart routes: a repeat of a
        // keyed checkout gets its confirmation again and places nothing.
        .route("/checkout", post(checkout).layer(IdempotencyLayer::new()))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .merge(cart_routes)
        .layer(auth_layer)
        .layer(middleware::from_fn(load_session))
        // Directly inside the session layer, before anything loads the session: the cart
        // takes the session's identity from the id the request came with, even when a login
        // racing this request has already cycled that session away.
        .layer(CartLayer::new(carts.clone()))
        .layer(session_layer)
        .with_state(shop.clone());
    if let Some(password) = shop.settings.admin_password.clone() {
        let guard = Arc::new(AdminGuard::new(&password));
        let admin = admin_router(carts)
            .merge(admin_prices::routes(shop.clone()))
            .layer(middleware::from_fn(move |req: Request, next: Next| {
                let guard = guard.clone();
                async move { require_admin(&guard, req, next).await }
            }));
        router = router.nest("/admin", admin);
    }
    // The liveness probe does no session or database work; the readiness probe checks both.
    let router = router
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let (db, sessions) = probe.clone();
                async move { readyz(&db, &sessions).await }
            }),
        )
        .layer(middleware::map_response(retry_after_on_503))
        // Every POST of the shop (checkout, login, logout, the cart routes, the admin) is
        // refused when a browser sends it from another site, before any session is read.
        .layer(SameSiteLayer::new());
    Ok((router, shop))
}

/// How long `/readyz` waits for each dependency.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The readiness probe: 200 `ready` when the database and the session store both answer
/// within [`READY_TIMEOUT`]; else 503 naming what is down (checked side by side).
async fn readyz(db: &Db, sessions: &Sessions) -> Response {
    let (database, store) = tokio::join!(db.check(READY_TIMEOUT), sessions.check(READY_TIMEOUT));
    let mut down = Vec::new();
    if let Err(e) = database {
        tracing::warn!(error = %e, "readiness: the database is unavailable");
        down.push("database");
    }
    if let Err(e) = store {
        tracing::warn!(error = %e, "readiness: the session store is unavailable");
        down.push("session store");
    }
    let mut res = if down.is_empty() {
        "ready".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {} unavailable", down.join(" and ")),
        )
            .into_response()
    };
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

/// Every 503 the shop sends (the session store or the database unavailable, from the
/// shop's handlers or the library's cart routes) tells the client when to try again.
async fn retry_after_on_503(mut res: Response) -> Response {
    if res.status() == StatusCode::SERVICE_UNAVAILABLE
        && !res.headers().contains_key(header::RETRY_AFTER)
    {
        res.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    }
    res
}

/// Where axum-login keeps the user in the session (its default).
const AUTH_DATA_KEY: &str = "axum-login.data";

/// Loads the visitor's session before anything reads it. When the session store (the
/// database, or Redis) cannot be reached, the answer is a 503 that says so, rather than the
/// bare 500 axum-login gives for any session error. The record stays loaded for the request,
/// so this costs no extra query.
async fn load_session(session: tower_sessions::Session, req: Request, next: Next) -> Response {
    if let Err(e) = session.get_value(AUTH_DATA_KEY).await {
        // The cart's own answer: a 503 problem for JSON clients (RFC 9457), a page for the
        // others, with `Retry-After` and `Cache-Control: no-store`; the error is logged.
        let res = axum_cart::ErrorResponse::new(
            req.headers(),
            CartError::SessionUnavailable(Box::new(e)),
        )
        .into_response();
        return res;
    }
    next.run(req).await
}

/// Serves the shop until the process is stopped, with `limits` on every connection and
/// request (see [`limit_requests`] and [`serve_router`]).
pub async fn serve(settings: Settings, limits: Limits) -> Result<(), BoxError> {
    let bind = settings.bind;
    let (router, _) = app(settings).await?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    tracing::info!("shop listening on http://{bind}");
    println!("The shop is open at http://{bind}");
    serve_router(listener, limit_requests(router, &limits), &limits).await;
    Ok(())
}

/// The request limits of [`Limits`] as tower-http layers around `router`: the body size
/// (413 for a larger declared `Content-Length`, before anything is read), the wait for each
/// piece of the body, and the whole request's time (408).
pub fn limit_requests(router: Router, limits: &Limits) -> Router {
    use tower_http::limit::RequestBodyLimitLayer;
    use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
    router
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(RequestBodyTimeoutLayer::new(limits.body_timeout))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
}

/// Accepts connections on `listener` and serves HTTP/1.1 on each (hyper's connection
/// builder, as `axum::serve` does), with the header read timeout of `limits` and at most
/// `limits.max_connections` connections at once: beyond that, the loop stops accepting and
/// new connections wait in the kernel's listen queue until one closes. Never returns; an
/// accept error (such as running out of file descriptors) is logged and retried.
pub async fn serve_router(listener: tokio::net::TcpListener, router: Router, limits: &Limits) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let http = Arc::new(http);
    let mut warned_full = false;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if !warned_full {
                    tracing::warn!(
                        max = limits.max_connections,
                        "connection limit reached; new connections wait"
                    );
                    warned_full = true;
                }
                match permits.clone().acquire_owned().await {
                    Ok(p) => p,
                    // The semaphore is never closed.
                    Err(_) => return,
                }
            }
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::error!(error = %e, "accept failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        if permits.available_permits() > limits.max_connections / 10 {
            warned_full = false;
        }
        let _ = stream.set_nodelay(true);
        // The client's address, for the admin guard's per-client limit (ConnectInfo, as
        // `axum::serve` would give it).
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            router.clone(),
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        ));
        let http = http.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = http.serve_connection(TokioIo::new(stream), service).await {
                // Timeouts, resets and malformed requests of one client end its connection
                // only.
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

async fn seed_discounts(carts: &Carts) -> Result<(), CartError> {
    let yesterday = OffsetDateTime::now_utc() - Duration::days(1);
    let codes = [
        NewDiscount::percent("SUMMER25", Decimal::from(25)).min_cart_value(Decimal::from(50)),
        NewDiscount::fixed("FIXED10", Decimal::from(10)),
        NewDiscount::percent("LASTONE", Decimal::from(10)).max_uses(1),
        NewDiscount::percent("EXPIRED", Decimal::from(15))
            .valid_from(yesterday - Duration::days(30))
            .valid_until(yesterday),
    ];
    for code in codes {
        match carts.create_discount(code).await {
            Ok(_) | Err(CartError::InvalidDiscount(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The shop's outbox relay: its order book as the checkout hook, and the sinks the
/// settings name. A lease of 15 s (a killed process's events wait that long) and 5 s per
/// delivery.
async fn relay(shop: &Shop) -> Result<Relay, BoxError> {
    let events = &shop.settings.events;
    let hook_shop = shop.clone();
    let mut relay = Relay::new(&shop.carts)
        .lease(std::time::Duration::from_secs(15))
        .delivery_timeout(std::time::Duration::from_secs(5))
        .on_checkout(move |order: Order| {
            let shop = hook_shop.clone();
            async move { save_order(&shop, &order).await }
        });
    if let Some(url) = &events.nats_url {
        let sink = NatsSink::connect(url)
            .await
            .map_err(|e| format!("EVENTS_NATS_URL: {e}"))?;
        relay = relay.sink(sink);
    }
    if let Some(url) = &events.amqp_url {
        let sink = AmqpSink::connect(url)
            .await
            .map_err(|e| format!("EVENTS_AMQP_URL: {e}"))?;
        relay = relay.sink(sink);
    }
    if let Some((url, secret)) = &events.webhook {
        let sink = WebhookSink::new(url, secret).map_err(|e| format!("EVENTS_WEBHOOK_URL: {e}"))?;
        relay = relay.sink(sink);
    }
    Ok(relay)
}

/// Records a placed order in the shop's own tables; safe to call twice for one cart.
pub async fn save_order(shop: &Shop, order: &Order) -> Result<(), BoxError> {
    let user = shop.carts.cart(order.cart_id).user_id().await?;
    record_order(
        shop,
        order.cart_id,
        &order.lines,
        &order.totals,
        user.as_deref(),
    )
    .await
}

/// Writes the lines first and the order row last: the order row is the mark that the
/// order is complete, so a crash in between is completed when the relay runs the hook again
/// (every row is written once: a duplicate is skipped).
async fn record_order(
    shop: &Shop,
    cart_id: axum_cart::CartId,
    lines: &[axum_cart::Line],
    t: &axum_cart::Totals,
    username: Option<&str>,
) -> Result<(), BoxError> {
    let cart_id = cart_id.get();
    let ignore_duplicate = |r: Result<u64, sqlx::Error>| match r {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(()),
        Err(e) => Err(e),
    };
    for line in lines {
        let name = shop
            .catalog
            .get(line.product.kind(), line.product.id())
            .map(|p| p.name.clone())
            .unwrap_or_else(|| line.product.to_string());
        let done = shop
            .db
            .exec(
                "INSERT INTO shop_order_lines (cart_id, kind, product_id, name, quantity, unit_price_cents) \
                 VALUES (?, ?, ?, ?, ?, ?)",
                &[
                    Arg::Int(cart_id),
                    Arg::Text(line.product.kind()),
                    Arg::Int(line.product.id()),
                    Arg::Text(&name),
                    Arg::Int(line.quantity),
                    Arg::Int(cents(line.unit_price)),
                ],
            )
            .await;
        ignore_duplicate(done)?;
    }
    let done = shop
        .db
        .exec(
            "INSERT INTO shop_orders (cart_id, username, subtotal_cents, discount_cents, tax_cents, \
             shipping_cents, total_cents, discount_code, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &[
                Arg::Int(cart_id),
                Arg::Text(username.unwrap_or("")),
                Arg::Int(cents(t.subtotal)),
                Arg::Int(cents(t.discount)),
                Arg::Int(cents(t.tax)),
                Arg::Int(cents(t.shipping)),
                Arg::Int(cents(t.total)),
                Arg::Text(t.discount_code.as_deref().unwrap_or("")),
                Arg::Int(OffsetDateTime::now_utc().unix_timestamp()),
            ],
        )
        .await;
    ignore_duplicate(done)?;
    Ok(())
}

// ---- pages -------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "docs.html")]
struct DocsPage {
    badge: CartBadge,
    user: Option<String>,
}

#[derive(Template)]
#[template(path = "products.html")]
struct ProductsPage<'a> {
    badge: CartBadge,
    user: Option<String>,
    kinds: &'static [&'static str],
    kind: &'a str,
    products: &'a [Arc<ShopProduct>],
}

#[derive(Template)]
#[template(path = "cart.html")]
struct CartPage<'a> {
    badge: CartBadge,
    user: Option<String>,
    cart: &'a CartDetails,
}

#[derive(Template)]
#[template(path = "confirmation.html")]
struct ConfirmationPage<'a> {
    badge: CartBadge,
    user: Option<String>,
    order: &'a Order,
    names: Vec<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    badge: CartBadge,
    user: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    badge: CartBadge,
    user: Option<String>,
    message: String,
}

fn page(template: &impl Template, status: StatusCode) -> Response {
    match template.render() {
        Ok(html) if status == StatusCode::SERVICE_UNAVAILABLE => {
            (status, [(header::RETRY_AFTER, "5")], Html(html)).into_response()
        }
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered.",
            )
                .into_response()
        }
    }
}

fn user_of(auth: &AuthSession) -> Option<String> {
    auth.user.as_ref().map(|u| u.username.clone())
}

#[derive(serde::Deserialize)]
struct KindQuery {
    kind: Option<String>,
}

async fn products(
    State(shop): State<Shop>,
    badge: CartBadge,
    auth: AuthSession,
    Query(q): Query<KindQuery>,
) -> Response {
    let kind = q
        .kind
        .as_deref()
        .and_then(|k| KINDS.iter().copied().find(|x| *x == k))
        .unwrap_or("book");
    page(
        &ProductsPage {
            badge,
            user: user_of(&auth),
            kinds: &KINDS,
            kind,
            products: &shop.catalog.of_kind(kind),
        },
        StatusCode::OK,
    )
}

/// `GET /docs`: what the shop offers to machines, with the cart's OpenAPI document.
async fn docs(badge: CartBadge, auth: AuthSession) -> Response {
    page(
        &DocsPage {
            badge,
            user: user_of(&auth),
        },
        StatusCode::OK,
    )
}

async fn checkout(State(shop): State<Shop>, auth: AuthSession, mut cart: Cart) -> Response {
    let user = user_of(&auth);
    let result = async {
        // The order book gets the order from the relay (the outbox's `checked_out` event):
        // a failing order book never fails the checkout.
        let order = cart.checkout().await?;
        // The session keeps naming the order: a repeated checkout (a double submit, a
        // reload) shows this confirmation again, and the next add starts a fresh cart.
        Ok::<_, CartError>(order)
    }
    .await;
    let badge = CartBadge::empty(shop.carts.config());
    match result {
        Ok(order) => {
            let names = order
                .lines
                .iter()
                .map(|l| {
                    shop.catalog
                        .get(l.product.kind(), l.product.id())
                        .map(|p| p.name.clone())
                        .unwrap_or_else(|| l.product.to_string())
                })
                .collect();
            page(
                &ConfirmationPage {
                    badge,
                    user,
                    order: &order,
                    names,
                },
                StatusCode::OK,
            )
        }
        Err(e) => {
            // With the database unavailable, reading the badge would only wait out the pool
            // timeout a second time.
            let badge = match e {
                CartError::Unavailable(_) => badge,
                _ => CartBadge::from_cart(&cart).await.unwrap_or(badge),
            };
            page(
                &ErrorPage {
                    badge,
                    user,
                    message: e.to_string(),
                },
                axum_cart::http_status(&e),
            )
        }
    }
}

async fn login_page(badge: CartBadge, auth: AuthSession) -> Response {
    page(
        &LoginPage {
            badge,
            user: user_of(&auth),
            error: None,
        },
        StatusCode::OK,
    )
}

async fn login(
    State(shop): State<Shop>,
    mut auth: AuthSession,
    mut cart: Cart,
    form: Result<Form<Credentials>, axum::extract::rejection::FormRejection>,
) -> Response {
    let refuse = |badge, message: &str| {
        page(
            &LoginPage {
                badge,
                user: None,
                error: Some(message.to_owned()),
            },
            StatusCode::BAD_REQUEST,
        )
    };
    // The header badge is read only for a refusal page, so an outage costs one wait, not two.
    let badge = || async {
        CartBadge::from_cart(&cart)
            .await
            .unwrap_or_else(|_| CartBadge::empty(shop.carts.config()))
    };
    let Ok(Form(creds)) = form else {
        return refuse(badge().await, "Enter a username.");
    };
    let user = match auth.authenticate(creds).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            return refuse(
                badge().await,
                "A username is 1 to 40 letters, digits, '_', '-' or '.'.",
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "login failed");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                "Login is not available right now.",
            )
                .into_response();
        }
    };
    // A login over an authenticated session (another user, or the same one again) gets a
    // new session id too: axum-login cycles it only for a session without a user.
    if auth.user.is_some() {
        if let Err(e) = auth.session.cycle_id().await {
            tracing::error!(error = %e, "login failed");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                "Login is not available right now.",
            )
                .into_response();
        }
    }
    if let Err(e) = auth.login(&user).await {
        tracing::error!(error = %e, "login failed");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "Login is not available right now.",
        )
            .into_response();
    }
    if let Err(e) = cart
        .login(&user.username, shop.settings.merge_strategy)
        .await
    {
        tracing::error!(error = %e, "cart merge on login failed");
    }
    Redirect::to("/").into_response()
}

async fn logout(mut auth: AuthSession, mut cart: Cart) -> Response {
    if let Err(e) = auth.logout().await {
        tracing::error!(error = %e, "logout failed");
    }
    let _ = cart.forget().await;
    Redirect::to("/").into_response()
}

/// Wrong admin passwords one client may try at once before it is refused (429)…
const ADMIN_FAILURE_BURST: u32 = 5;
/// …and then one more per this period (so at most 300 guesses an hour per client).
const ADMIN_FAILURE_PERIOD: std::time::Duration = std::time::Duration::from_secs(12);
/// Clients with failures remembered before the old entries are dropped.
const ADMIN_CLIENTS_TRACKED: usize = 10_000;

/// The `/admin` guard: HTTP basic auth (RFC 7617) as user `admin` with `ADMIN_PASSWORD`.
///
/// - The scheme is matched case-insensitively (`Basic`, `basic`, `BASIC`) and spaces around
///   the credentials are ignored.
/// - The given `user:password` is compared with the expected one through their SHA-256
///   digests, in constant time, so neither the content nor the length of the password shows
///   in the answer time.
/// - Wrong credentials are counted per client (its IP address when the server provides
///   [`ConnectInfo`](axum::extract::ConnectInfo), else one shared count for all) with a
///   [`governor`] rate limiter: after [`ADMIN_FAILURE_BURST`] failures the client gets 429
///   with `Retry-After` — for every request, the right password included, so guessing
///   learns nothing meanwhile — and one more try per [`ADMIN_FAILURE_PERIOD`]. Each time a
///   client is locked out a WARN line is logged. A request without credentials (a browser's
///   first) is answered 401 and not counted.
struct AdminGuard {
    /// SHA-256 of `admin:{password}`.
    expected: [u8; 32],
    failures: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    /// Clients refused until this instant.
    locked: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, std::time::Instant>>,
}

impl AdminGuard {
    fn new(password: &str) -> AdminGuard {
        let burst =
            std::num::NonZeroU32::new(ADMIN_FAILURE_BURST).unwrap_or(std::num::NonZeroU32::MIN);
        let quota = governor::Quota::with_period(ADMIN_FAILURE_PERIOD)
            .unwrap_or_else(|| governor::Quota::per_minute(std::num::NonZeroU32::MIN))
            .allow_burst(burst);
        AdminGuard {
            expected: sha256(format!("admin:{password}").as_bytes()),
            failures: governor::RateLimiter::keyed(quota),
            locked: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// How long this client is still refused, if it is.
    fn locked_for(&self, client: std::net::IpAddr) -> Option<std::time::Duration> {
        let locked = self.locked.lock().unwrap_or_else(|p| p.into_inner());
        let until = *locked.get(&client)?;
        until.checked_duration_since(std::time::Instant::now())
    }

    /// Counts a failure of this client; `Some(wait)` when it is now refused for `wait`.
    fn failed(&self, client: std::net::IpAddr) -> Option<std::time::Duration> {
        use governor::clock::Clock;
        if self.failures.len() > ADMIN_CLIENTS_TRACKED {
            self.failures.retain_recent();
        }
        let not_until = self.failures.check_key(&client).err()?;
        let wait = not_until
            .wait_time_from(self.failures.clock().now())
            .max(std::time::Duration::from_secs(1));
        let now = std::time::Instant::now();
        let mut locked = self.locked.lock().unwrap_or_else(|p| p.into_inner());
        if locked.len() > ADMIN_CLIENTS_TRACKED {
            locked.retain(|_, until| *until > now);
        }
        locked.insert(client, now.checked_add(wait).unwrap_or(now));
        Some(wait)
    }

    /// Whether the credentials of this `Authorization` header are the admin's.
    fn accepts(&self, authorization: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let Some(given) = basic_credentials(authorization) else {
            return false;
        };
        bool::from(sha256(&given).ct_eq(&self.expected))
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// The decoded `user:password` of a basic-auth header value (RFC 7617: the scheme in any
/// case, then the base64 credentials, spaces around them ignored).
fn basic_credentials(value: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = value.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()
}

async fn require_admin(guard: &AdminGuard, req: Request, next: Next) -> Response {
    let client = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| {
            c.0.ip()
        });
    if let Some(wait) = guard.locked_for(client) {
        tracing::debug!(%client, "admin request refused: too many failed logins");
        return too_many_logins(wait);
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match given {
        Some(given) if guard.accepts(given) => return next.run(req).await,
        Some(_) => {
            if let Some(wait) = guard.failed(client) {
                tracing::warn!(
                    %client,
                    retry_after_secs = retry_after_secs(wait),
                    "repeated failed admin logins: refusing this client for a while"
                );
                return too_many_logins(wait);
            }
            tracing::info!(%client, "failed admin login");
        }
        None => {}
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"shop admin\", charset=\"UTF-8\"",
        )],
        "Admin login required.",
    )
        .into_response()
}

/// Whole seconds, rounded up, at least 1.
fn retry_after_secs(wait: std::time::Duration) -> u64 {
    let secs = wait.as_secs();
    let secs = if wait.subsec_nanos() > 0 {
        secs.saturating_add(1)
    } else {
        secs
    };
    secs.max(1)
}

fn too_many_logins(wait: std::time::Duration) -> Response {
    let secs = retry_after_secs(wait);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, secs.to_string())],
        format!("Too many failed admin logins. Try again in {secs} seconds."),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn basic_credentials_follow_rfc_7617() {
        let creds = |v: &str| super::basic_credentials(v.as_bytes());
        let want = Some(b"admin:secret".to_vec());
        assert_eq!(creds("Basic YWRtaW46c2VjcmV0"), want);
        assert_eq!(creds("basic YWRtaW46c2VjcmV0"), want);
        assert_eq!(creds("  BASIC    YWRtaW46c2VjcmV0  "), want);
        assert_eq!(creds("Bearer YWRtaW46c2VjcmV0"), None);
        assert_eq!(creds("Basic"), None);
        assert_eq!(creds("Basic !!!"), None);
        assert_eq!(creds("BasicYWRtaW46c2VjcmV0"), None);
    }

    #[test]
    fn retry_after_rounds_up() {
        use std::time::Duration;
        assert_eq!(super::retry_after_secs(Duration::from_millis(11_200)), 12);
        assert_eq!(super::retry_after_secs(Duration::from_secs(12)), 12);
        assert_eq!(super::retry_after_secs(Duration::ZERO), 1);
    }
}
