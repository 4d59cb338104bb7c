//! Events across the wire, through real shop processes: 1000 changes of 50 carts over HTTP,
//! the shop killed (SIGKILL) in the middle of them and restarted, and then every event of
//! every committed change is found at NATS JetStream, at RabbitMQ and at a webhook receiver
//! that fails every other request, in order per cart, each signature valid; and a failing
//! order book is retried until the checkout has exactly one order.
//!
//! The broker tests need `CART_TEST_NATS_URL` and `CART_TEST_AMQP_URL` (and the PostgreSQL /
//! MySQL ones their database URL too); without them they are *ignored*, and say so in the
//! summary. Each test reads only its own events: the ids its shop's outbox holds.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Client, ShopProcess};

/// A Standard Webhooks secret (the standard's own example).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const CARTS: usize = 50;
const CHANGES: usize = 20;

// ---- the database, read by the test --------------------------------------------------------

enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
}

impl Db {
    async fn open(url: &str) -> Db {
        if url.starts_with("sqlite:") {
            Db::Sqlite(sqlx::SqlitePool::connect(url).await.unwrap())
        } else if url.starts_with("postgres") {
            Db::Postgres(sqlx::PgPool::connect(url).await.unwrap())
        } else {
            Db::MySql(sqlx::MySqlPool::connect(url).await.unwrap())
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        match self {
            Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            Db::MySql(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        }
    }

    async fn exec(&self, sql: &str) {
        match self {
            Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Db::MySql(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        }
        .unwrap();
    }

    /// The sinks' events of the outbox, in commit order: (event id, body).
    async fn events(&self) -> Vec<(String, Value)> {
        let sql = "SELECT event_id, body FROM cart_outbox WHERE lane = 'events' ORDER BY id";
        let rows: Vec<(String, String)> = match self {
            Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
            Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
            Db::MySql(p) => {
                // The binary collation makes MySQL report text as bytes.
                let rows: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as(sql).fetch_all(p).await.unwrap();
                rows.into_iter()
                    .map(|(a, b)| (String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap()))
                    .collect()
            }
        };
        rows.into_iter()
            .map(|(id, body)| (id, serde_json::from_str(&body).unwrap()))
            .collect()
    }

    /// Waits (up to `limit`) until the outbox has nothing pending.
    async fn drained(&self, limit: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self
                .count("SELECT COUNT(*) FROM cart_outbox WHERE state = 0")
                .await
                == 0
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

// ---- the receivers --------------------------------------------------------------------------

/// What the webhook receiver got.
#[derive(Debug, Clone)]
struct Hit {
    id: String,
    body: Value,
    valid: bool,
    answered: u16,
}

/// A webhook receiver that fails half the requests: 500 to the first delivery of each
/// event, 204 to the next; it checks each signature itself.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Hit>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        use axum::http::{HeaderMap, StatusCode};
        let got: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let log = got.clone();
        let app = axum::Router::new().route(
            "/hooks/cart",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let log = log.clone();
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let (id, ts, sig) = (
                        header("webhook-id"),
                        header("webhook-timestamp"),
                        header("webhook-signature"),
                    );
                    let mut log = log.lock().unwrap();
                    let status = if log.iter().any(|h| h.id == id) {
                        StatusCode::NO_CONTENT
                    } else {
                        StatusCode::INTERNAL_SERVER_ERROR
                    };
                    log.push(Hit {
                        valid: signature(&id, &ts, &body) == sig,
                        body: serde_json::from_str(&body).unwrap_or(Value::Null),
                        id,
                        answered: status.as_u16(),
                    });
                    status
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, got, task }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/cart", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, as Standard Webhooks 1.0 signs.
fn signature(id: &str, timestamp: &str, body: &str) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine.decode(&SECRET["whsec_".len()..]).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", engine.encode(mac.finalize().into_bytes()))
}

/// A queue of this test only, bound to the `cart.events` exchange with `#`.
async fn amqp_queue(url: &str) -> (lapin::Connection, lapin::Channel, String) {
    use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    let props = lapin::ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current());
    let conn = lapin::Connection::connect(url, props).await.unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .exchange_declare(
            "cart.events",
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let queue = support::unique_name("shop_t");
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(&queue, exclusive, FieldTable::default())
        .await
        .unwrap();
    channel
        .queue_bind(
            &queue,
            "cart.events",
            "#",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    (conn, channel, queue)
}

/// The (id, body) of the queue's messages that are `ours`, in arrival order.
async fn amqp_messages(
    channel: &lapin::Channel,
    queue: &str,
    ours: &HashSet<String>,
) -> Vec<(String, Value)> {
    let mut got = Vec::new();
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < ours.len() && Instant::now() < deadline {
        let options = lapin::options::BasicGetOptions { no_ack: true };
        let Some(m) = channel.basic_get(queue, options).await.unwrap() else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let m = m.delivery;
        let Some(id) = m.properties.message_id().as_ref().map(|i| i.to_string()) else {
            continue;
        };
        if ours.contains(&id) {
            seen.insert(id.clone());
            got.push((id, serde_json::from_slice(&m.data).unwrap()));
        }
    }
    got
}

/// The (id, body) of the JetStream messages of `cart.events.>` since `since` that are
/// `ours`, in stream order.
async fn nats_messages(
    url: &str,
    since: time::OffsetDateTime,
    ours: &HashSet<String>,
) -> Vec<(String, Value)> {
    use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
    use futures_util::StreamExt;
    let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
    let stream = js
        .stream_by_subject("cart.events.item_added")
        .await
        .unwrap();
    let consumer = js
        .get_stream(&stream)
        .await
        .unwrap()
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::ByStartTime { start_time: since },
            ack_policy: AckPolicy::None,
            filter_subject: "cart.events.>".into(),
            ..pull::Config::default()
        })
        .await
        .unwrap();
    let mut got = Vec::new();
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(1000)
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .unwrap();
        let before = got.len();
        let mut fetched = 0;
        while let Some(m) = batch.next().await {
            let m = m.unwrap();
            fetched += 1;
            let id = m
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            if ours.contains(&id) {
                got.push((id, serde_json::from_slice(&m.payload).unwrap()));
            }
        }
        if fetched == 0 && got.len() == before {
            return got;
        }
    }
}

/// Checks what one sink received against the outbox: nothing lost, each cart's events
/// first seen in commit order. Returns (delivered, duplicates).
fn check(sink: &str, outbox: &[(String, Value)], got: &[(String, Value)]) -> (usize, usize) {
    let mut first_seen: Vec<&str> = Vec::new();
    let mut seen = HashSet::new();
    for (id, _) in got {
        if seen.insert(id.as_str()) {
            first_seen.push(id);
        }
    }
    let lost: Vec<&String> = outbox
        .iter()
        .map(|(id, _)| id)
        .filter(|id| !seen.contains(id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{sink}: {} events lost: {lost:?}",
        lost.len()
    );
    let body: HashMap<&str, &Value> = outbox.iter().map(|(id, b)| (id.as_str(), b)).collect();
    for (id, b) in got {
        assert_eq!(body[id.as_str()], b, "{sink}: the outbox's body");
    }
    let mut per_cart: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for id in &first_seen {
        let b = body[id];
        per_cart
            .entry(b["cart_id"].as_i64().unwrap())
            .or_default()
            .push(b["version"].as_i64().unwrap());
    }
    for (cart, versions) in &per_cart {
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "{sink}: cart {cart} out of order: {versions:?}"
        );
    }
    (first_seen.len(), got.len() - first_seen.len())
}

// ---- the storm -------------------------------------------------------------------------------

/// What one visitor did: its changes answered 200, and those sent.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    acked: usize,
    sent: usize,
    /// Answers replayed from their key (a change that had committed before the kill).
    replayed: usize,
}

/// Visitor `i`'s change number `n`: adds of its own product (book `i + 1`), every fifth a
/// quantity update.
fn change(i: usize, n: usize) -> (String, Option<String>) {
    let product = i + 1;
    if n % 5 == 4 {
        (
            format!("/cart/update/book/{product}"),
            Some(format!("quantity={}", n + 1)),
        )
    } else {
        (format!("/cart/add/book/{product}"), None)
    }
}

/// Visitors `0..CARTS` send their changes to `addr` until each is done or the shop stops
/// answering. Each change carries its own `Idempotency-Key`, so the one a kill cut off is
/// sent again after the restart and committed exactly once, whether or not it had been.
async fn storm(
    addr: SocketAddr,
    visitors: Vec<(Client, Tally)>,
    acked: Arc<AtomicU64>,
) -> Vec<(Client, Tally)> {
    let mut tasks = Vec::new();
    for (i, (mut client, mut tally)) in visitors.into_iter().enumerate() {
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            while tally.acked < CHANGES {
                let (path, form) = change(i, tally.acked);
                let key = format!("visitor-{i}-change-{}", tally.acked);
                tally.sent += 1;
                let keyed = [("Idempotency-Key", key.as_str())];
                match client
                    .send_with(addr, "POST", &path, true, form.as_deref(), &keyed)
                    .await
                {
                    // The first try of this key may still hold it (a kill cut it off before
                    // it committed): wait as the answer says, then send it again.
                    Ok(res) if res.status == 409 && res.header("retry-after").is_some() => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Ok(res) if res.status == 200 => {
                        if res.header("idempotent-replayed").is_some() {
                            tally.replayed += 1;
                        }
                        tally.acked += 1;
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(res) => panic!("visitor {i}: {path} answered {}: {}", res.status, res.body),
                    // The shop was killed: this change may or may not have committed.
                    Err(_) => break,
                }
            }
            (client, tally)
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn kill_mid_stream_then_restart(test: &str, database_url: &str) {
    let nats = std::env::var("CART_TEST_NATS_URL").expect("CART_TEST_NATS_URL");
    let amqp = std::env::var("CART_TEST_AMQP_URL").expect("CART_TEST_AMQP_URL");
    let receiver = Receiver::start().await;
    let (_conn, channel, queue) = amqp_queue(&amqp).await;
    let since = time::OffsetDateTime::now_utc() - time::Duration::seconds(2);
    let hook = receiver.url();
    let env = [
        ("DATABASE_URL", database_url),
        ("EVENTS_NATS_URL", nats.as_str()),
        ("EVENTS_AMQP_URL", amqp.as_str()),
        ("EVENTS_WEBHOOK_URL", hook.as_str()),
        ("EVENTS_WEBHOOK_SECRET", SECRET),
        ("QUANTITY_RULES", "0"),
        ("MAX_QUANTITY", "1000000"),
    ];
    let port = support::free_port();
    let mut shop = ShopProcess::start_on(test, port, &env).await;
    let acked = Arc::new(AtomicU64::new(0));
    let visitors = vec![(Client::new(), Tally::default()); CARTS];
    let running = tokio::spawn(storm(shop.addr, visitors, acked.clone()));
    let started = Instant::now();
    while acked.load(Ordering::SeqCst) < (CARTS * CHANGES / 2) as u64
        && started.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shop.kill();
    let at_kill = acked.load(Ordering::SeqCst);
    let visitors = running.await.unwrap();
    let cut_off = visitors.iter().filter(|(_, t)| t.acked < CHANGES).count();

    // Restart on the same address; the visitors (same cookies) send the rest.
    let shop = ShopProcess::start_on(test, port, &env).await;
    let visitors = storm(shop.addr, visitors, acked.clone()).await;
    let db = Db::open(database_url).await;
    let drained = db.drained(Duration::from_secs(90)).await;
    assert!(
        drained,
        "{test}: the outbox drains after the restart:\n{}",
        shop.log()
    );

    // Every committed change has its event, each cart's versions 1..=V without a gap, and
    // V (the cart's version, as its JSON says) is at least the changes acknowledged.
    let outbox = db.events().await;
    let mut versions: HashMap<usize, Vec<i64>> = HashMap::new();
    for (_, b) in &outbox {
        let product = b["data"]["line"]["product"]["id"].as_i64().unwrap();
        let visitor = usize::try_from(product - 1).unwrap();
        versions
            .entry(visitor)
            .or_default()
            .push(b["version"].as_i64().unwrap());
    }
    let (mut acked_total, mut replayed) = (0, 0);
    for (i, (mut client, tally)) in visitors.into_iter().enumerate() {
        acked_total += tally.acked;
        replayed += tally.replayed;
        let cart = client.get_json(shop.addr, "/cart").await.unwrap().json();
        let v = cart["version"].as_i64().unwrap();
        let mine = versions.remove(&i).unwrap_or_default();
        assert_eq!(
            mine,
            (1..=v).collect::<Vec<_>>(),
            "{test}: visitor {i}'s events"
        );
        // Every change acknowledged, each committed exactly once (the retried ones too).
        assert_eq!(tally.acked, CHANGES, "{test}: visitor {i}");
        assert_eq!(v, CHANGES as i64, "{test}: visitor {i}: changes committed");
    }
    assert!(versions.is_empty(), "no events of carts nobody made");
    assert_eq!(
        outbox.len(),
        CARTS * CHANGES,
        "{test}: one event per change"
    );

    let ours: HashSet<String> = outbox.iter().map(|(id, _)| id.clone()).collect();
    let at_nats = nats_messages(&nats, since, &ours).await;
    let at_rabbit = amqp_messages(&channel, &queue, &ours).await;
    let hits = receiver.hits();
    let invalid: Vec<&Hit> = hits.iter().filter(|h| !h.valid).collect();
    assert!(
        invalid.is_empty(),
        "{test}: invalid signatures: {invalid:?}"
    );
    let accepted: Vec<(String, Value)> = hits
        .iter()
        .filter(|h| h.answered == 204)
        .map(|h| (h.id.clone(), h.body.clone()))
        .collect();
    let (n_nats, dup_nats) = check("nats", &outbox, &at_nats);
    let (n_rabbit, dup_rabbit) = check("rabbitmq", &outbox, &at_rabbit);
    let (n_hook, dup_hook) = check("webhook", &outbox, &accepted);
    let refused = hits.len() - accepted.len();
    eprintln!(
        "{test}: {CARTS} carts x {CHANGES} changes over HTTP; SIGKILL after {at_kill} \
         acknowledged ({cut_off} visitors cut off, their change sent again with its key after \
         the restart: {replayed} of those answered from the key); {acked_total} acknowledged \
         in all, {} events produced; delivered: NATS {n_nats} ({dup_nats} duplicates), RabbitMQ \
         {n_rabbit} ({dup_rabbit} duplicates), webhook {n_hook} ({dup_hook} duplicates, \
         {refused} requests refused with 500, every signature valid); lost 0",
        outbox.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(all(cart_test_nats, cart_test_amqp)),
    ignore = "CART_TEST_NATS_URL and CART_TEST_AMQP_URL are not both set"
)]
async fn sqlite_sigkill_mid_stream_loses_no_event() {
    let path = std::env::temp_dir().join(format!("{}.db", support::unique_name("delivery")));
    let url = format!("sqlite://{}", path.display());
    kill_mid_stream_then_restart("delivery-sqlite", &url).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(all(cart_test_nats, cart_test_amqp, cart_test_postgres)),
    ignore = "CART_TEST_NATS_URL, CART_TEST_AMQP_URL and CART_TEST_POSTGRES_URL are not all set"
)]
async fn postgres_sigkill_mid_stream_loses_no_event() {
    let Some(db) = support::PgDatabase::create("delivery-postgres").await else {
        return;
    };
    kill_mid_stream_then_restart("delivery-postgres", &db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(all(cart_test_nats, cart_test_amqp, cart_test_mysql)),
    ignore = "CART_TEST_NATS_URL, CART_TEST_AMQP_URL and CART_TEST_MYSQL_URL are not all set"
)]
async fn mysql_sigkill_mid_stream_loses_no_event() {
    let Some(db) = support::MySqlDatabase::create("delivery-mysql").await else {
        return;
    };
    kill_mid_stream_then_restart("delivery-mysql", &db.url).await;
}

// ---- the order book down ----------------------------------------------------------------------

/// The shop's order book (`shop_orders`) is renamed away while a visitor checks out: the
/// checkout answers 200 all the same, the relay's hook fails 3 times, the table comes back,
/// and the checkout has exactly one order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_order_book_gets_exactly_one_order_once_it_is_back() {
    let path = std::env::temp_dir().join(format!("{}.db", support::unique_name("orders")));
    let url = format!("sqlite://{}", path.display());
    let shop = ShopProcess::start("orders-down", &[("DATABASE_URL", &url)]).await;
    let db = Db::open(&url).await;
    db.exec("ALTER TABLE shop_orders RENAME TO shop_orders_away")
        .await;

    let mut visitor = Client::new();
    let res = visitor
        .post_json(shop.addr, "/cart/add/book/1", None)
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.body);
    let res = visitor
        .post_json(shop.addr, "/cart/checkout", None)
        .await
        .unwrap();
    assert_eq!(res.status, 200, "the checkout does not fail: {}", res.body);
    assert_eq!(res.json()["checked_out"], true);
    let attempts = "SELECT COALESCE(MAX(attempts), 0) FROM cart_outbox WHERE lane = 'orders'";
    let started = Instant::now();
    while db.count(attempts).await < 3 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(db.count(attempts).await, 3, "the hook failed 3 times");
    // A retried checkout meanwhile gets the checked-out cart, not an error.
    let again = visitor
        .post_json(shop.addr, "/cart/checkout", None)
        .await
        .unwrap();
    assert_eq!(again.status, 200, "{}", again.body);

    db.exec("ALTER TABLE shop_orders_away RENAME TO shop_orders")
        .await;
    let orders = "SELECT COUNT(*) FROM shop_orders";
    let started = Instant::now();
    while db.count(orders).await == 0 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waited = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        db.count(orders).await,
        1,
        "exactly one order:\n{}",
        shop.log()
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM cart_outbox WHERE lane = 'orders' AND state = 1")
            .await,
        1
    );
    eprintln!(
        "orders-down: the hook failed 3 times while shop_orders was away, then wrote the one \
         order {waited:.1?} after it was back"
    );
    drop(shop);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
