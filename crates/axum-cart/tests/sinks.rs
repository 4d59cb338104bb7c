//! The three sinks against real servers, through a real [`Relay`] over real [`Carts`]
//! (SQLite in a temporary file): NATS JetStream (`CART_TEST_NATS_URL`), RabbitMQ
//! (`CART_TEST_AMQP_URL`) and a webhook receiver this file starts. The broker tests are
//! *ignored*, and say so in the summary, when their URL was not set at build time (see
//! the crate's `build.rs`). Each test reads only what it sent: its own stream and subjects
//! on NATS, its own queue on RabbitMQ (filtered by its own event ids, the exchange being
//! shared), its own receiver.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum_cart::{
    AmqpSink, Carts, Consumer, DeliveryState, EventSink, NatsSink, OutboxEvent, Relay, WebhookSink,
};
use common::{d, p, Harness};
use serde_json::Value;

/// A Standard Webhooks secret (the standard's own example).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

static NAMES: AtomicU64 = AtomicU64::new(0);

/// A name no other test (of this run or another) uses: letters, digits and `_`.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        NAMES.fetch_add(1, Ordering::Relaxed)
    )
}

/// Several carts, each changed several times, the carts' changes interleaved: every kind
/// of line change, a discount, a clear and a checkout. Returns the outbox's events in
/// commit order.
async fn changes(carts: &Carts, n_carts: usize) -> Vec<OutboxEvent> {
    carts
        .create_discount(axum_cart::NewDiscount::percent("TEN", d("10")))
        .await
        .ok();
    let mut open: Vec<axum_cart::Cart> = (0..n_carts).map(|_| carts.new_cart()).collect();
    for step in 0..6 {
        for (i, cart) in open.iter_mut().enumerate() {
            let book = p("book", i64::try_from(i).unwrap() + 1);
            match step {
                0 => cart.add(&book, d("12.50"), 1).await.map(|_| ()).unwrap(),
                1 => cart
                    .add(&p("pen", 7), d("1.99"), 3)
                    .await
                    .map(|_| ())
                    .unwrap(),
                2 => cart.update(&book, 4, None).await.map(|_| ()).unwrap(),
                3 => cart.remove(&p("pen", 7)).await.unwrap(),
                4 if i % 2 == 0 => cart.apply_discount("TEN").await.map(|_| ()).unwrap(),
                4 => cart.clear().await.unwrap(),
                _ if i % 2 == 0 => {
                    cart.checkout().await.unwrap();
                }
                _ => cart.add(&book, d("12.50"), 2).await.map(|_| ()).unwrap(),
            }
        }
    }
    in_commit_order(carts).await
}

/// The sinks' events (not the checkout hook's rows: these relays run no hook), oldest first.
async fn in_commit_order(carts: &Carts) -> Vec<OutboxEvent> {
    let mut events = carts.events(None, 1000).await.unwrap();
    events.retain(|e| e.consumer == Consumer::Sinks);
    events.reverse();
    events
}

/// The sinks' events still pending.
async fn pending(carts: &Carts) -> usize {
    let mut events = carts
        .events(Some(DeliveryState::Pending), 1000)
        .await
        .unwrap();
    events.retain(|e| e.consumer == Consumer::Sinks);
    events.len()
}

/// Runs rounds until no sinks' event is pending (or `rounds` rounds ran).
async fn drain(relay: &Relay, carts: &Carts, rounds: usize) {
    for _ in 0..rounds {
        relay.run_once().await.expect("relay round");
        if pending(carts).await == 0 {
            return;
        }
    }
    panic!(
        "still pending after {rounds} rounds: {} ({:?})",
        pending(carts).await,
        carts.event_counts().await.unwrap()
    );
}

/// A relay that retries at once, with no abandoned sweep.
fn relay(carts: &Carts) -> Relay {
    Relay::new(carts)
        .retry_backoff(Duration::ZERO, Duration::ZERO)
        .max_attempts(20)
        .abandoned_after(None)
        .delivery_timeout(Duration::from_secs(10))
}

/// Checks what a consumer received (`(event id, type from the transport, body)` in
/// arrival order) against the outbox: every event once, its own body, its type, and each
/// cart's events in commit order with versions rising by one.
fn check_arrivals(sent: &[OutboxEvent], got: &[(String, String, Value)]) {
    let ids: HashSet<&str> = got.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids.len(), got.len(), "no event twice: {got:?}");
    assert_eq!(got.len(), sent.len(), "every event arrived");
    let by_id: HashMap<&str, &OutboxEvent> = sent.iter().map(|e| (e.id.as_str(), e)).collect();
    let mut per_cart: HashMap<i64, Vec<&str>> = HashMap::new();
    let mut versions: HashMap<i64, Vec<i64>> = HashMap::new();
    for (id, kind, body) in got {
        let event = by_id.get(id.as_str()).expect("an event of this test");
        assert_eq!(kind, &event.event_type);
        assert_eq!(body, &serde_json::from_str::<Value>(&event.body).unwrap());
        assert_eq!(body["id"], id.as_str());
        assert_eq!(body["type"], kind.as_str());
        let cart = body["cart_id"].as_i64().unwrap();
        per_cart.entry(cart).or_default().push(id);
        if let Some(v) = body["version"].as_i64() {
            versions.entry(cart).or_default().push(v);
        }
    }
    for (cart, arrived) in &per_cart {
        let committed: Vec<&str> = sent
            .iter()
            .filter(|e| e.cart_id.get() == *cart)
            .map(|e| e.id.as_str())
            .collect();
        assert_eq!(arrived, &committed, "cart {cart}: commit order");
    }
    for (cart, v) in &versions {
        assert!(
            v.windows(2).all(|w| w[1] == w[0] + 1),
            "cart {cart}: versions rise by one: {v:?}"
        );
        assert!(v.len() >= 5, "cart {cart}: versions in the bodies: {v:?}");
    }
}

// ---------------------------------------------------------------------------------------
// NATS JetStream

fn nats_url() -> String {
    std::env::var("CART_TEST_NATS_URL").expect("CART_TEST_NATS_URL (set at build time)")
}

/// Every message of `stream`, through a pull consumer of its own.
async fn jetstream_messages(
    js: &async_nats::jetstream::Context,
    stream: &str,
) -> Vec<async_nats::jetstream::Message> {
    use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
    use futures_util::StreamExt;
    let consumer = js
        .get_stream(stream)
        .await
        .unwrap()
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            ..pull::Config::default()
        })
        .await
        .unwrap();
    let mut all = Vec::new();
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(500)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .unwrap();
        let before = all.len();
        while let Some(m) = batch.next().await {
            all.push(m.unwrap());
        }
        if all.len() == before {
            return all;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(cart_test_nats), ignore = "CART_TEST_NATS_URL is not set")]
async fn nats_gets_every_event_once_in_order_per_cart() {
    let h = Harness::sqlite().await.unwrap();
    let carts = h.carts();
    let sent = changes(&carts, 5).await;
    assert!(sent.len() >= 30, "{}", sent.len());

    let client = async_nats::connect(nats_url()).await.unwrap();
    let stream = unique("CART_T");
    let prefix = format!("{}.cart.events", unique("t"));
    let sink = NatsSink::new(client.clone(), &stream, &prefix)
        .await
        .unwrap();
    let relay = relay(&carts).sink(sink.clone());
    drain(&relay, &carts, 50).await;
    assert_eq!(
        carts.event_counts().await.unwrap().delivered,
        sent.len() as u64
    );

    // A redelivery (a crash between the ack and the outbox's update) is dropped by
    // JetStream: the same `Nats-Msg-Id`.
    sink.deliver(&sent[0]).await.unwrap();
    sink.deliver(&sent[3]).await.unwrap();

    let js = async_nats::jetstream::new(client);
    let messages = jetstream_messages(&js, &stream).await;
    let got: Vec<(String, String, Value)> = messages
        .iter()
        .map(|m| {
            let id = m
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .map(|v| v.as_str().to_owned())
                .expect("Nats-Msg-Id");
            let kind = m
                .subject
                .as_str()
                .strip_prefix(&format!("{prefix}."))
                .expect("the sink's subject")
                .to_owned();
            (id, kind, serde_json::from_slice(&m.payload).unwrap())
        })
        .collect();
    check_arrivals(&sent, &got);
    js.delete_stream(&stream).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(cart_test_nats), ignore = "CART_TEST_NATS_URL is not set")]
async fn nats_connect_makes_sure_a_stream_covers_the_subjects() {
    use futures_util::StreamExt;
    // The default subjects: `cart.events.>`, in CART_EVENTS or whichever stream covers them.
    let sink = NatsSink::connect(&nats_url()).await.unwrap();
    let watcher = async_nats::connect(nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(watcher.clone());
    let name = js
        .stream_by_subject("cart.events.item_added")
        .await
        .unwrap();
    assert!(!name.is_empty());
    // An event goes to `cart.events.<type>`, acknowledged by that stream.
    let mut watch = watcher.subscribe("cart.events.>").await.unwrap();
    watcher.flush().await.unwrap();
    let h = Harness::sqlite().await.unwrap();
    let carts = h.carts();
    carts
        .new_cart()
        .add(&p("book", 1), d("1.00"), 1)
        .await
        .unwrap();
    let event = carts.events(None, 1).await.unwrap().remove(0);
    sink.deliver(&event).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(m) = watch.next().await {
            let id = m
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .map(|v| v.as_str().to_owned());
            if id.as_deref() == Some(event.id.as_str()) {
                return m;
            }
        }
        panic!("subscription ended");
    })
    .await
    .expect("the event on cart.events.>");
    assert_eq!(seen.subject.as_str(), "cart.events.item_added");
    assert_eq!(seen.payload, event.body.as_bytes());
    drop(sink);

    // Its own prefix: a stream of that name is created once, then found.
    let client = async_nats::connect(nats_url()).await.unwrap();
    let stream = unique("CART_T");
    let prefix = unique("t");
    NatsSink::new(client.clone(), &stream, &prefix)
        .await
        .unwrap();
    NatsSink::new(client.clone(), "ANOTHER_NAME", &prefix)
        .await
        .unwrap();
    assert_eq!(
        js.stream_by_subject(format!("{prefix}.x")).await.unwrap(),
        stream
    );
    assert!(js.get_stream("ANOTHER_NAME").await.is_err());
    js.delete_stream(&stream).await.unwrap();

    for bad in ["", "a..b", "cart.*", "a b"] {
        let err = NatsSink::new(client.clone(), &stream, bad)
            .await
            .unwrap_err();
        assert!(
            matches!(err, axum_cart::SinkError::Config(_)),
            "{bad}: {err}"
        );
    }
    let err = NatsSink::connect("nats://u:hunter2@127.0.0.1:1")
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
}

// ---------------------------------------------------------------------------------------
// RabbitMQ

fn amqp_url() -> String {
    std::env::var("CART_TEST_AMQP_URL").expect("CART_TEST_AMQP_URL (set at build time)")
}

/// A queue of this test only, bound to `cart.events` with `#`.
async fn amqp_queue() -> (lapin::Connection, lapin::Channel, String) {
    use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    let props = lapin::ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current());
    let conn = lapin::Connection::connect(&amqp_url(), props)
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .exchange_declare(
            AmqpSink::EXCHANGE,
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let queue = unique("cart_t");
    channel
        .queue_declare(
            &queue,
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            &queue,
            AmqpSink::EXCHANGE,
            "#",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    (conn, channel, queue)
}

/// What `queue` holds of `sent` (other tests' events share the exchange), in arrival order,
/// waiting up to 10 s for all of them.
async fn amqp_received(
    channel: &lapin::Channel,
    queue: &str,
    sent: &[OutboxEvent],
) -> Vec<(String, String, Value)> {
    let ours: HashSet<&str> = sent.iter().map(|e| e.id.as_str()).collect();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < sent.len() && tokio::time::Instant::now() < deadline {
        let options = lapin::options::BasicGetOptions { no_ack: true };
        let Some(m) = channel.basic_get(queue, options).await.unwrap() else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let m = m.delivery;
        let props = &m.properties;
        let id = props.message_id().as_ref().expect("message_id").to_string();
        if !ours.contains(id.as_str()) {
            continue;
        }
        assert_eq!(m.exchange.as_str(), AmqpSink::EXCHANGE);
        assert_eq!(
            props.content_type().as_ref().map(|c| c.as_str()),
            Some("application/json")
        );
        assert_eq!(*props.delivery_mode(), Some(2), "persistent");
        assert_eq!(
            props.kind().as_ref().map(|k| k.as_str()),
            Some(m.routing_key.as_str())
        );
        got.push((
            id,
            m.routing_key.to_string(),
            serde_json::from_slice(&m.data).unwrap(),
        ));
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(cart_test_amqp), ignore = "CART_TEST_AMQP_URL is not set")]
async fn rabbitmq_gets_every_event_once_in_order_per_cart() {
    let (_conn, channel, queue) = amqp_queue().await;
    let h = Harness::sqlite().await.unwrap();
    let carts = h.carts();
    let sent = changes(&carts, 5).await;
    let sink = AmqpSink::connect(&amqp_url()).await.unwrap();
    let relay = relay(&carts).sink(sink);
    drain(&relay, &carts, 50).await;
    assert_eq!(
        carts.event_counts().await.unwrap().delivered,
        sent.len() as u64
    );
    let got = amqp_received(&channel, &queue, &sent).await;
    check_arrivals(&sent, &got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(cart_test_amqp), ignore = "CART_TEST_AMQP_URL is not set")]
async fn rabbitmq_connect_errors_are_clear() {
    let err = AmqpSink::connect("amqp://guest:hunter2@127.0.0.1:1/%2f")
        .await
        .unwrap_err();
    let text = format!("{err}");
    assert!(
        text.contains("connecting to amqp://…@127.0.0.1:1"),
        "{text}"
    );
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    // Refused credentials.
    let url = amqp_url();
    let wrong = match url.split_once('@') {
        Some((_, host)) => format!("amqp://nobody:wrong@{host}"),
        None => url.replace("amqp://", "amqp://nobody:wrong@"),
    };
    assert!(AmqpSink::connect(&wrong).await.is_err());
}

/// A TCP proxy to a real server, which the test can cut (every connection and the
/// listener) and bring back on the same port: a broker restart, as the app sees it.
struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut proxy = Proxy {
            addr,
            target,
            task: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Closes the listener and every connection.
    async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    async fn restore(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

/// The address of `url`'s host and port (default `port`).
async fn server_addr(url: &str, port: u16) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let host = rest.split(['/', '?']).next().unwrap();
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    };
    tokio::net::lookup_host(host).await.unwrap().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(cart_test_amqp), ignore = "CART_TEST_AMQP_URL is not set")]
async fn rabbitmq_down_keeps_events_pending_then_the_sink_reconnects() {
    let (_conn, channel, queue) = amqp_queue().await;
    let url = amqp_url();
    let mut proxy = Proxy::start(server_addr(&url, 5672).await).await;
    let creds = url
        .split_once("://")
        .and_then(|(_, r)| r.rsplit_once('@'))
        .map_or("guest:guest", |(c, _)| c);
    let proxied = format!("amqp://{creds}@{}/%2f", proxy.addr);
    let h = Harness::sqlite().await.unwrap();
    let carts = h.carts();
    let sink = AmqpSink::connect(&proxied).await.unwrap();
    let relay = relay(&carts).sink(sink);

    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("10.00"), 1).await.unwrap();
    drain(&relay, &carts, 5).await;

    // The broker goes away: the events stay pending, with the error.
    proxy.cut().await;
    cart.add(&p("book", 2), d("10.00"), 1).await.unwrap();
    let mut other = carts.new_cart();
    other.add(&p("pen", 1), d("1.00"), 1).await.unwrap();
    for _ in 0..3 {
        relay.run_once().await.unwrap();
    }
    let pending = carts
        .events(Some(DeliveryState::Pending), 100)
        .await
        .unwrap();
    assert_eq!(pending.len(), 2, "{pending:?}");
    for e in &pending {
        assert!(e.attempts >= 1, "{e:?}");
        let error = e.last_error.as_deref().unwrap_or_default();
        assert!(error.starts_with("amqp: "), "{error}");
        assert!(!error.contains(creds), "{error}");
    }

    // It is back: the same sink reconnects, every event arrives.
    proxy.restore().await;
    drain(&relay, &carts, 10).await;
    let sent = in_commit_order(&carts).await;
    assert_eq!(sent.len(), 3);
    let got = amqp_received(&channel, &queue, &sent).await;
    let ids: Vec<&str> = got.iter().map(|(id, _, _)| id.as_str()).collect();
    let want: Vec<&str> = sent.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "{got:?}");
    assert_eq!(
        ids.iter().collect::<HashSet<_>>(),
        want.iter().collect::<HashSet<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(cart_test_nats), ignore = "CART_TEST_NATS_URL is not set")]
async fn nats_down_keeps_events_pending_then_they_arrive() {
    let url = nats_url();
    let mut proxy = Proxy::start(server_addr(&url, 4222).await).await;
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|_| Duration::from_millis(100))
        .connect(format!("nats://{}", proxy.addr))
        .await
        .unwrap();
    let stream = unique("CART_T");
    let prefix = unique("t");
    let sink = NatsSink::new(client, &stream, &prefix).await.unwrap();
    let h = Harness::sqlite().await.unwrap();
    let carts = h.carts();
    let relay = relay(&carts)
        .sink(sink)
        .delivery_timeout(Duration::from_secs(2));

    proxy.cut().await;
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("10.00"), 1).await.unwrap();
    cart.add(&p("book", 2), d("10.00"), 1).await.unwrap();
    relay.run_once().await.unwrap();
    let pending = carts
        .events(Some(DeliveryState::Pending), 100)
        .await
        .unwrap();
    assert_eq!(pending.len(), 2);
    assert!(pending
        .iter()
        .any(|e| e.attempts == 1 && e.last_error.as_deref().unwrap_or("").starts_with("nats: ")));

    proxy.restore().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while carts.event_counts().await.unwrap().pending > 0 {
        assert!(tokio::time::Instant::now() < deadline, "never delivered");
        relay.run_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
    let messages = jetstream_messages(&js, &stream).await;
    let sent = in_commit_order(&carts).await;
    let ids: Vec<String> = messages
        .iter()
        .filter_map(|m| {
            let id = m
                .headers
                .as_ref()?
                .get(async_nats::header::NATS_MESSAGE_ID)?;
            Some(id.as_str().to_owned())
        })
        .collect();
    let want: Vec<String> = sent.iter().map(|e| e.id.clone()).collect();
    assert_eq!(messages.len(), want.len(), "{messages:?}");
    assert_eq!(ids, want);
    js.delete_stream(&stream).await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Webhooks

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    content_type: String,
    body: String,
    answered: u16,
}

/// A webhook receiver on a local port that answers 500 to every other request (the first
/// one included) when `flaky`.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(addr: SocketAddr, flaky: bool) -> Receiver {
        use axum::http::{HeaderMap, StatusCode};
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let count = Arc::new(AtomicU64::new(0));
        let log = got.clone();
        let app = axum::Router::new().route(
            "/hooks/cart",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let log = log.clone();
                let count = count.clone();
                async move {
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    let status = if flaky && n % 2 == 0 {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    };
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    log.lock().unwrap().push(Received {
                        id: header("webhook-id"),
                        timestamp: header("webhook-timestamp"),
                        signature: header("webhook-signature"),
                        content_type: header("content-type"),
                        body,
                        answered: status.as_u16(),
                    });
                    (status, if status.is_success() { "" } else { "try later" })
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, got, task }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/cart", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The test's own check of a Standard Webhooks signature.
fn verify(r: &Received) {
    use base64::Engine as _;
    use hmac::Mac as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", r.id, r.timestamp, r.body).as_bytes());
    let expected = format!("v1,{}", engine.encode(mac.finalize().into_bytes()));
    assert_eq!(r.signature, expected, "signature of {}", r.id);
    let ts: i64 = r.timestamp.parse().expect("unix seconds");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - ts).abs() < 60, "timestamp {ts} is now");
    assert_eq!(r.content_type, "application/json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_receiver_failing_every_other_request_loses_nothing() {
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap(), true).await;
    let h = Harness::sqlite().await.unwrap();
    let carts = h.carts();
    let sent = changes(&carts, 4).await;
    let sink = WebhookSink::new(&receiver.url(), SECRET).unwrap();
    let relay = relay(&carts).sink(sink);
    drain(&relay, &carts, 100).await;
    let counts = carts.event_counts().await.unwrap();
    assert_eq!((counts.delivered, counts.parked), (sent.len() as u64, 0));

    let all = receiver.received();
    all.iter().for_each(verify);
    assert!(all.iter().any(|r| r.answered == 500), "some were refused");
    let accepted: Vec<(String, String, Value)> = all
        .iter()
        .filter(|r| r.answered == 204)
        .map(|r| {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            let kind = body["type"].as_str().unwrap().to_owned();
            (r.id.clone(), kind, body)
        })
        .collect();
    check_arrivals(&sent, &accepted);
    // A refused event was sent again with the same id and body.
    let refused: HashSet<&str> = all
        .iter()
        .filter(|r| r.answered == 500)
        .map(|r| r.id.as_str())
        .collect();
    assert!(refused
        .iter()
        .all(|id| accepted.iter().any(|(a, _, _)| a == id)));
    // Delivered, an event keeps no error.
    let events = carts.events(None, 1000).await.unwrap();
    assert!(events.iter().all(|e| e.last_error.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_failures_record_the_status_and_park_after_the_most_attempts() {
    use axum::http::StatusCode;
    let app = axum::Router::new().route(
        "/hooks/cart",
        axum::routing::post(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance") }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let h = Harness::sqlite().await.unwrap();
    let carts = h.carts();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("10.00"), 1).await.unwrap();
    let url = format!("http://user:hunter2@{addr}/hooks/cart");
    let relay = relay(&carts)
        .sink(WebhookSink::new(&url, SECRET).unwrap())
        .max_attempts(2);
    relay.run_once().await.unwrap();
    let e = &carts.events(None, 10).await.unwrap()[0];
    assert_eq!((e.state, e.attempts), (DeliveryState::Pending, 1));
    let error = e.last_error.as_deref().unwrap();
    assert!(error.contains("503 Service Unavailable"), "{error}");
    assert!(error.contains("down for maintenance"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
    relay.run_once().await.unwrap();
    let e = &carts.events(None, 10).await.unwrap()[0];
    assert_eq!((e.state, e.attempts), (DeliveryState::Parked, 2));
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_receiver_gone_keeps_events_pending_then_they_arrive() {
    // A free port, with nothing listening on it: connections are refused.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let h = Harness::sqlite().await.unwrap();
    let carts = h.carts();
    let sink = WebhookSink::new(&format!("http://{addr}/hooks/cart"), SECRET).unwrap();
    let relay = relay(&carts).sink(sink);
    let mut a = carts.new_cart();
    let mut b = carts.new_cart();
    a.add(&p("book", 1), d("10.00"), 1).await.unwrap();
    b.add(&p("book", 2), d("10.00"), 1).await.unwrap();
    a.add(&p("book", 3), d("10.00"), 1).await.unwrap();
    for _ in 0..2 {
        let report = relay.run_once().await.unwrap();
        assert_eq!((report.delivered, report.retrying), (0, 2));
    }
    let pending = carts
        .events(Some(DeliveryState::Pending), 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 3);
    for e in pending.iter().filter(|e| e.attempts > 0) {
        let error = e.last_error.as_deref().unwrap();
        assert!(error.starts_with("webhook: "), "{error}");
    }
    assert_eq!(pending.iter().filter(|e| e.attempts == 2).count(), 2);

    let receiver = Receiver::start(addr, false).await;
    drain(&relay, &carts, 10).await;
    let sent = in_commit_order(&carts).await;
    let got = receiver.received();
    got.iter().for_each(verify);
    let ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    let a_id = a.id().await.unwrap().unwrap();
    let a_ids: Vec<&str> = sent
        .iter()
        .filter(|e| e.cart_id == a_id)
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(
        ids.iter()
            .filter(|id| a_ids.contains(id))
            .copied()
            .collect::<Vec<_>>(),
        a_ids,
        "cart a's events in order"
    );
}
