//! The transactional outbox on every backend: each committed change writes its events in
//! its own transaction (a refused change writes none), and the relay delivers them at least
//! once, in order per cart, retrying a failing sink, parking an event that keeps failing,
//! sharing the work between relays, taking over a dead relay's events after its lease, and
//! writing one `abandoned` event per idle cart.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum_cart::{
    async_trait, BoxError, CartError, Carts, Consumer, DeliveryState, EventSink, MergeStrategy,
    NewDiscount, Order, OutboxEvent, Relay,
};
use serde_json::Value;

use common::{d, p, Harness};

backend_tests!(
    every_change_writes_its_events_with_the_cart_as_it_left_it,
    a_refused_change_writes_no_event,
    the_relay_delivers_every_event_once_in_order_per_cart,
    a_failing_sink_is_retried_and_only_it_gets_the_event_again,
    an_event_that_keeps_failing_is_parked_and_can_be_retried,
    two_relays_share_the_work_and_keep_each_carts_order,
    a_dead_relays_events_are_taken_over_after_its_lease,
    a_result_after_another_relay_took_the_event_is_not_recorded,
    an_idle_cart_gets_one_abandoned_event,
    the_checkout_hook_runs_until_it_succeeds_once_per_cart,
    delivered_events_are_cleaned,
);

/// A sink that keeps what it receives; it fails while `failures` is above 0.
#[derive(Clone, Default)]
struct Recording {
    name: &'static str,
    seen: Arc<Mutex<Vec<OutboxEvent>>>,
    failures: Arc<AtomicU32>,
}

impl Recording {
    fn named(name: &'static str) -> Recording {
        Recording {
            name,
            ..Recording::default()
        }
    }

    fn failing(name: &'static str, times: u32) -> Recording {
        let r = Recording::named(name);
        r.failures.store(times, Ordering::SeqCst);
        r
    }

    fn events(&self) -> Vec<OutboxEvent> {
        self.seen.lock().unwrap().clone()
    }

    fn bodies(&self) -> Vec<Value> {
        self.events().iter().map(body).collect()
    }
}

#[async_trait]
impl EventSink for Recording {
    fn name(&self) -> &str {
        self.name
    }

    async fn deliver(&self, event: &OutboxEvent) -> Result<(), BoxError> {
        let fail = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if fail.is_ok() {
            return Err("the broker is down".into());
        }
        self.seen.lock().unwrap().push(event.clone());
        Ok(())
    }
}

fn body(e: &OutboxEvent) -> Value {
    serde_json::from_str(&e.body).expect("an event body is JSON")
}

/// A relay with no waits between retries, no abandoned sweep.
fn relay(carts: &Carts) -> Relay {
    Relay::new(carts)
        .retry_backoff(Duration::ZERO, Duration::ZERO)
        .abandoned_after(None)
}

/// Runs rounds until one finds nothing to do.
async fn drain(relay: &Relay) {
    for _ in 0..1000 {
        if relay.run_once().await.unwrap().is_idle() {
            return;
        }
    }
    panic!("the relay never became idle");
}

async fn every_change_writes_its_events_with_the_cart_as_it_left_it(h: Harness) {
    let carts = h.carts();
    carts
        .create_discount(NewDiscount::percent("TEN", d("10")))
        .await
        .unwrap();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("12.50"), 2).await.unwrap();
    cart.add(&p("book", 1), d("12.50"), 1).await.unwrap();
    cart.add(&p("pen", 2), d("1.99"), 1).await.unwrap();
    cart.update(&p("pen", 2), 4, None).await.unwrap();
    cart.apply_discount("ten").await.unwrap();
    cart.remove_discount().await.unwrap();
    cart.remove(&p("pen", 2)).await.unwrap();
    cart.apply_discount("TEN").await.unwrap();
    cart.bind_to_user(Some("alice")).await.unwrap();
    let mut guest = carts.new_cart();
    guest.add(&p("mug", 3), d("8.00"), 1).await.unwrap();
    cart.merge(&mut guest, MergeStrategy::Add).await.unwrap();
    cart.checkout().await.unwrap();
    let id = cart.id().await.unwrap().unwrap();
    let guest_id = carts.events(None, 1000).await.unwrap();
    let guest_id = guest_id
        .iter()
        .find(|e| e.cart_id != id)
        .map(|e| e.cart_id)
        .expect("the guest cart's event");

    let sink = Recording::named("rec");
    drain(&relay(&carts).sink(sink.clone())).await;
    let mine: Vec<Value> = sink
        .bodies()
        .into_iter()
        .filter(|b| b["cart_id"] == id.get())
        .collect();
    let types: Vec<&str> = mine.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "item_added",
            "item_added",
            "item_added",
            "item_updated",
            "discount_applied",
            "discount_removed",
            "item_removed",
            "discount_applied",
            "item_added",
            "merged",
            "checked_out"
        ],
        "{}",
        h.backend
    );
    // Each change's events carry the version it committed: one step per change (the
    // merge's two events are one change; binding to a user has no event).
    let versions: Vec<i64> = mine
        .iter()
        .map(|b| b["version"].as_i64().unwrap())
        .collect();
    assert_eq!(
        versions,
        [1, 2, 3, 4, 5, 6, 7, 8, 10, 10, 11],
        "{}",
        h.backend
    );
    // Money as decimal strings, quantities as integers, the line as it is now.
    assert_eq!(mine[1]["data"]["line"]["quantity"], 3);
    assert_eq!(mine[1]["data"]["line"]["unit_price"], "12.50");
    assert_eq!(mine[1]["data"]["line"]["total"], "37.50");
    assert_eq!(mine[3]["data"]["line"]["quantity"], 4);
    assert_eq!(mine[4]["data"]["code"], "TEN");
    assert_eq!(
        mine[6]["data"]["product"],
        serde_json::json!({"kind": "pen", "id": 2})
    );
    assert_eq!(mine[9]["data"]["from"], serde_json::json!([guest_id.get()]));
    // The checkout: its lines, figures and user.
    let out = &mine[10];
    assert_eq!(out["user_id"], "alice");
    assert_eq!(out["data"]["subtotal"], "45.50");
    assert_eq!(out["data"]["discount_code"], "TEN");
    assert_eq!(out["data"]["discount"], "4.55");
    assert_eq!(out["data"]["total_before_tax"], "40.95");
    assert_eq!(out["data"]["lines"].as_array().unwrap().len(), 2);
    // Ids are unique; the time is RFC 3339.
    let mut ids: Vec<&str> = mine.iter().map(|b| b["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), mine.len());
    assert!(
        out["time"].as_str().unwrap().ends_with('Z'),
        "{}",
        out["time"]
    );
    // The guest cart's own events: its add (version 1), then the merge's `cleared`, the
    // last step of its own versions, with its own (no) user, not the target's.
    let guest: Vec<Value> = sink
        .bodies()
        .into_iter()
        .filter(|b| b["cart_id"] == guest_id.get())
        .collect();
    let seen: Vec<(&str, i64)> = guest
        .iter()
        .map(|b| (b["type"].as_str().unwrap(), b["version"].as_i64().unwrap()))
        .collect();
    assert_eq!(seen, [("item_added", 1), ("cleared", 2)], "{}", h.backend);
    assert_eq!(guest[1]["user_id"], Value::Null, "{}", h.backend);
}

async fn a_refused_change_writes_no_event(h: Harness) {
    let carts = h.builder().max_quantity_per_item(5).build();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("1.00"), 5).await.unwrap();
    let before = carts.events(None, 1000).await.unwrap().len();
    assert!(matches!(
        cart.add(&p("book", 1), d("1.00"), 1).await,
        Err(CartError::InvalidQuantity(_))
    ));
    assert!(cart.update(&p("pen", 9), 1, None).await.is_err());
    assert!(cart.apply_discount("NOPE").await.is_err());
    let mut empty = carts.new_cart();
    assert!(matches!(empty.checkout().await, Err(CartError::EmptyCart)));
    cart.remove_discount().await.unwrap(); // nothing to remove: no change
    assert_eq!(
        carts.events(None, 1000).await.unwrap().len(),
        before,
        "{}: refused or empty changes write no event",
        h.backend
    );
    cart.checkout().await.unwrap();
    // A checked-out cart refuses changes: none of them writes an event either.
    let after_checkout = carts.events(None, 1000).await.unwrap().len();
    let mut out = carts.cart(cart.id().await.unwrap().unwrap());
    assert!(out.add(&p("book", 2), d("1.00"), 1).await.is_err());
    assert_eq!(
        carts.events(None, 1000).await.unwrap().len(),
        after_checkout
    );
}

async fn the_relay_delivers_every_event_once_in_order_per_cart(h: Harness) {
    let carts = h.carts();
    // 8 carts changed concurrently, 10 changes each.
    let mut tasks = Vec::new();
    for c in 0..8i64 {
        let carts = carts.clone();
        tasks.push(tokio::spawn(async move {
            let mut cart = carts.new_cart();
            for i in 0..10i64 {
                if i % 3 == 2 {
                    cart.update(&p("book", c + 1), i + 1, None).await.unwrap();
                } else {
                    cart.add(&p("book", c + 1), d("2.00"), 1).await.unwrap();
                }
            }
            cart.id().await.unwrap().unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let sink = Recording::named("rec");
    let relay = relay(&carts).sink(sink.clone());
    drain(&relay).await;
    let events = sink.events();
    assert_eq!(events.len(), 80, "{}", h.backend);
    let mut per_cart: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for e in &events {
        per_cart
            .entry(e.cart_id.get())
            .or_default()
            .push(body(e)["version"].as_i64().unwrap());
    }
    for (cart, versions) in &per_cart {
        assert_eq!(
            versions,
            &(1..=10).collect::<Vec<_>>(),
            "cart {cart}: in order"
        );
    }
    let counts = carts.event_counts().await.unwrap();
    assert_eq!(
        (counts.pending, counts.delivered, counts.parked),
        (0, 80, 0)
    );
    assert!(relay.run_once().await.unwrap().is_idle(), "nothing twice");
}

async fn a_failing_sink_is_retried_and_only_it_gets_the_event_again(h: Harness) {
    let carts = h.carts();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("2.00"), 1).await.unwrap();
    cart.add(&p("book", 1), d("2.00"), 1).await.unwrap();
    let good = Recording::named("good");
    let flaky = Recording::failing("flaky", 2);
    let relay = relay(&carts).sink(good.clone()).sink(flaky.clone());
    let first = relay.run_once().await.unwrap();
    assert_eq!((first.delivered, first.retrying), (0, 1), "{}", h.backend);
    let pending = carts
        .events(Some(DeliveryState::Pending), 10)
        .await
        .unwrap();
    let oldest = pending.last().unwrap();
    assert_eq!(oldest.attempts, 1);
    assert!(oldest
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("flaky: the broker is down")));
    drain(&relay).await;
    // The good sink got each event once (the retry went only to the flaky one), the flaky
    // one got them too, in order.
    assert_eq!(good.events().len(), 2);
    let versions: Vec<Value> = flaky
        .bodies()
        .iter()
        .map(|b| b["version"].clone())
        .collect();
    assert_eq!(versions, [Value::from(1), Value::from(2)]);
    assert_eq!(carts.event_counts().await.unwrap().delivered, 2);
}

async fn an_event_that_keeps_failing_is_parked_and_can_be_retried(h: Harness) {
    let carts = h.carts();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("2.00"), 1).await.unwrap();
    let sink = Recording::failing("down", u32::MAX);
    let relay = relay(&carts).sink(sink.clone()).max_attempts(3);
    let mut parked = 0;
    for _ in 0..5 {
        parked += relay.run_once().await.unwrap().parked;
    }
    assert_eq!(parked, 1, "{}", h.backend);
    let listed = carts.events(Some(DeliveryState::Parked), 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].attempts, 3);
    assert_eq!(listed[0].consumer, Consumer::Sinks);
    // A parked event holds its cart's next event back (the order per cart holds); another
    // cart's events go out.
    cart.add(&p("book", 1), d("2.00"), 1).await.unwrap();
    let mut other = carts.new_cart();
    other.add(&p("book", 2), d("2.00"), 1).await.unwrap();
    sink.failures.store(0, Ordering::SeqCst);
    drain(&relay).await;
    let got = sink.events();
    assert_eq!(got.len(), 1, "{}: only the other cart's event", h.backend);
    assert_eq!(Some(got[0].cart_id), other.id().await.unwrap());
    // Retried by hand, it is delivered, and then the event it held back.
    assert_eq!(carts.retry_events(Some(&listed[0].id)).await.unwrap(), 1);
    assert_eq!(carts.retry_events(Some("no-such-event")).await.unwrap(), 0);
    drain(&relay).await;
    let cart_id = cart.id().await.unwrap();
    let mine: Vec<i64> = sink
        .events()
        .iter()
        .filter(|e| Some(e.cart_id) == cart_id)
        .map(|e| body(e)["version"].as_i64().unwrap())
        .collect();
    assert_eq!(mine, vec![1, 2], "{}: in order", h.backend);
    assert_eq!(carts.event_counts().await.unwrap().parked, 0);
}

async fn two_relays_share_the_work_and_keep_each_carts_order(h: Harness) {
    let carts = h.carts();
    let sink = Recording::named("rec");
    let a = relay(&carts).sink(sink.clone());
    let b = relay(&carts).sink(sink.clone());
    let writer = {
        let carts = carts.clone();
        tokio::spawn(async move {
            let mut carts_made = Vec::new();
            for _ in 0..6 {
                carts_made.push(carts.new_cart());
            }
            for round in 0..8 {
                for cart in carts_made.iter_mut() {
                    cart.add(&p("book", 1), d("1.00"), 1).await.unwrap();
                }
                if round % 2 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let run = |r: Relay| {
        tokio::spawn(async move {
            for _ in 0..400 {
                r.run_once().await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            r
        })
    };
    let (ta, tb) = (run(a), run(b));
    writer.await.unwrap();
    let (a, b) = (ta.await.unwrap(), tb.await.unwrap());
    drain(&a).await;
    drain(&b).await;
    let events = sink.events();
    assert_eq!(events.len(), 48, "{}: each event once", h.backend);
    let mut per_cart: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for e in &events {
        per_cart
            .entry(e.cart_id.get())
            .or_default()
            .push(body(e)["version"].as_i64().unwrap());
    }
    for versions in per_cart.values() {
        assert_eq!(versions, &(1..=8).collect::<Vec<_>>());
    }
}

/// A sink that never answers: its relay "dies" holding the lease.
struct Hanging;

#[async_trait]
impl EventSink for Hanging {
    fn name(&self) -> &str {
        "rec"
    }

    async fn deliver(&self, _: &OutboxEvent) -> Result<(), BoxError> {
        std::future::pending().await
    }
}

async fn a_dead_relays_events_are_taken_over_after_its_lease(h: Harness) {
    let carts = h.carts();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("1.00"), 1).await.unwrap();
    // Leases count in whole seconds: a 3 s lease ends 2 to 3 s after the claim.
    // (The lease is at least twice the delivery timeout.)
    let dead = relay(&carts)
        .sink(Hanging)
        .delivery_timeout(Duration::from_millis(1500))
        .lease(Duration::from_secs(3));
    let claimed = std::time::Instant::now();
    let task = tokio::spawn(async move { dead.run_once().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    task.abort(); // killed mid-delivery, its lease taken
    let sink = Recording::named("rec");
    let alive = relay(&carts).sink(sink.clone());
    assert!(alive.run_once().await.unwrap().is_idle(), "leased: not yet");
    tokio::time::sleep(Duration::from_millis(3200).saturating_sub(claimed.elapsed())).await;
    assert_eq!(
        alive.run_once().await.unwrap().delivered,
        1,
        "{}",
        h.backend
    );
    assert_eq!(sink.events().len(), 1);
}

/// A sink that answers once `gate` lets it.
struct Gated(Arc<tokio::sync::Semaphore>);

#[async_trait]
impl EventSink for Gated {
    fn name(&self) -> &str {
        "rec"
    }

    async fn deliver(&self, _: &OutboxEvent) -> Result<(), BoxError> {
        let _pass = self.0.acquire().await?;
        Ok(())
    }
}

async fn a_result_after_another_relay_took_the_event_is_not_recorded(h: Harness) {
    let carts = h.carts();
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("1.00"), 1).await.unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let slow = relay(&carts).sink(Gated(gate.clone()));
    let task = tokio::spawn(async move { slow.run_once().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // As if its lease had run out and another relay had taken the event meanwhile.
    h.raw
        .exec("UPDATE cart_outbox SET lease_until = lease_until + 1000")
        .await
        .unwrap();
    gate.add_permits(1);
    let report = task.await.unwrap().unwrap();
    assert!(report.is_idle(), "{}: {report:?}", h.backend);
    let counts = carts.event_counts().await.unwrap();
    assert_eq!(
        (counts.pending, counts.delivered),
        (1, 0),
        "{}: the other relay's claim stands",
        h.backend
    );
}

async fn an_idle_cart_gets_one_abandoned_event(h: Harness) {
    let carts = h.carts();
    let mut idle = carts.new_cart();
    idle.add(&p("book", 1), d("3.00"), 2).await.unwrap();
    let mut empty = carts.new_cart();
    empty.add(&p("book", 1), d("3.00"), 1).await.unwrap();
    empty.clear().await.unwrap();
    let mut done = carts.new_cart();
    done.add(&p("book", 1), d("3.00"), 1).await.unwrap();
    done.checkout().await.unwrap();
    // Two hours pass for every cart.
    h.raw
        .exec("UPDATE cart_carts SET updated_at = updated_at - 7200")
        .await
        .unwrap();
    let sink = Recording::named("rec");
    let relay = Relay::new(&carts)
        .sink(sink.clone())
        .abandoned_after(Some(Duration::from_secs(3600)));
    drain(&relay).await;
    let abandoned: Vec<Value> = sink
        .bodies()
        .into_iter()
        .filter(|b| b["type"] == "abandoned")
        .collect();
    let idle_id = idle.id().await.unwrap().unwrap();
    assert_eq!(
        abandoned.len(),
        1,
        "{}: only the idle cart with lines",
        h.backend
    );
    assert_eq!(abandoned[0]["cart_id"], idle_id.get());
    assert_eq!(abandoned[0]["data"]["subtotal"], "6.00");
    assert_eq!(abandoned[0]["data"]["lines"][0]["quantity"], 2);
    // Once per idle spell: not again, until the cart changes and goes idle again.
    drain(&relay).await;
    idle.add(&p("book", 1), d("3.00"), 1).await.unwrap();
    drain(&relay).await;
    h.raw
        .exec("UPDATE cart_carts SET updated_at = updated_at - 7200")
        .await
        .unwrap();
    drain(&relay).await;
    let count = sink
        .bodies()
        .iter()
        .filter(|b| b["type"] == "abandoned")
        .count();
    assert_eq!(count, 2);
}

async fn the_checkout_hook_runs_until_it_succeeds_once_per_cart(h: Harness) {
    let carts = h.carts();
    let calls = Arc::new(AtomicU32::new(0));
    let orders: Arc<Mutex<Vec<Order>>> = Arc::default();
    let relay = {
        let (calls, orders) = (calls.clone(), orders.clone());
        relay(&carts).on_checkout(move |order: Order| {
            let (calls, orders) = (calls.clone(), orders.clone());
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                    return Err::<(), BoxError>("the order book is down".into());
                }
                orders.lock().unwrap().push(order);
                Ok(())
            }
        })
    };
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("5.00"), 2).await.unwrap();
    cart.checkout().await.unwrap();
    cart.checkout().await.unwrap(); // a repeat: no second order
    drain(&relay).await;
    let orders = orders.lock().unwrap().clone();
    assert_eq!(orders.len(), 1, "{}: exactly one order", h.backend);
    assert_eq!(orders[0].cart_id, cart.id().await.unwrap().unwrap());
    assert_eq!(orders[0].totals.subtotal, d("10.00"));
    assert!(orders[0].placed_now);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    // The hook's row is listed apart from the sinks' one.
    let rows = carts
        .events(Some(DeliveryState::Delivered), 10)
        .await
        .unwrap();
    assert!(rows.iter().any(|e| e.consumer == Consumer::CheckoutHook));
}

async fn delivered_events_are_cleaned(h: Harness) {
    let carts = h.carts();
    // One event that parks.
    let mut lone = carts.new_cart();
    lone.add(&p("book", 1), d("1.00"), 1).await.unwrap();
    let failing = relay(&carts)
        .sink(Recording::failing("rec", 1))
        .max_attempts(1);
    drain(&failing).await;
    let mut cart = carts.new_cart();
    for _ in 0..5 {
        cart.add(&p("book", 1), d("1.00"), 1).await.unwrap();
    }
    let mut placed = carts.new_cart();
    placed.add(&p("book", 1), d("1.00"), 1).await.unwrap();
    placed.checkout().await.unwrap();
    // No hook: the checkout's row for one waits, untried.
    drain(&relay(&carts).sink(Recording::named("rec"))).await;
    let counts = carts.event_counts().await.unwrap();
    assert_eq!((counts.pending, counts.delivered, counts.parked), (1, 7, 1));
    assert_eq!(carts.clean_events(30, 2).await.unwrap(), 0, "all recent");
    h.raw
        .exec(
            "UPDATE cart_outbox SET finished_at = finished_at - 40 * 86400, \
             created_at = created_at - 40 * 86400",
        )
        .await
        .unwrap();
    // The delivered ones, and the row no relay ever tried.
    assert_eq!(carts.clean_events(30, 2).await.unwrap(), 8, "{}", h.backend);
    let counts = carts.event_counts().await.unwrap();
    assert_eq!(
        (counts.pending, counts.delivered, counts.parked),
        (0, 0, 1),
        "parked events stay"
    );
}
