//! The relay: takes due events from the outbox and delivers them to the sinks, at least
//! once and in order per cart, and runs the checkout hook once per checked-out cart, retried
//! until it succeeds. One task in the app ([`Relay::spawn`]) or its own process
//! (`cart relay`); several relays share the work, each event taken by one at a time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::{EventSink, Lane};
use crate::error::{BoxError, CartError};
use crate::store::{now_epoch, Claimed, Delivery};
use crate::{Carts, Order};

type CheckoutHook =
    Arc<dyn Fn(Order) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>> + Send + Sync>;

/// Delivers the outbox's events to [`EventSink`]s and runs the checkout hook.
///
/// Every committed change of a cart writes its events into the outbox in its own
/// transaction; the relay takes them from there, so an event is never lost to a crash, a
/// broker outage or a failing hook. Delivery is at least once, in order per cart: a
/// consumer dedupes on [`OutboxEvent::id`](crate::OutboxEvent::id). A failed delivery is
/// retried with exponential backoff (1 s, 2 s, 4 s, … up to 10 minutes by default), only to
/// the sinks that do not have the event yet; after [`max_attempts`](Self::max_attempts) it
/// is parked (listed by the admin pages and `cart events`, retried from there). A parked
/// event holds its cart's later events back until it is retried, so that the order per cart
/// holds.
///
/// Carts with lines and no change for a day (see [`abandoned_after`](Self::abandoned_after))
/// get one `abandoned` event, for recovery emails.
///
/// ```no_run
/// # async fn demo(carts: axum_cart::Carts) {
/// use axum_cart::{Order, Relay};
///
/// let relay = Relay::new(&carts)
///     .on_checkout(|order: Order| async move {
///         // Create the app's order, keyed on `order.cart_id`: it may run again.
///         println!("order of cart {}", order.cart_id);
///         Ok(())
///     })
///     .spawn();
/// # drop(relay); }
/// ```
#[must_use]
pub struct Relay {
    carts: Carts,
    sinks: Vec<Arc<dyn EventSink>>,
    hook: Option<CheckoutHook>,
    max_attempts: u32,
    first_retry: Duration,
    max_retry: Duration,
    lease: Duration,
    timeout: Duration,
    batch: usize,
    poll: Duration,
    abandoned_after: Option<Duration>,
    abandoned_every: Duration,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sinks: Vec<&str> = self.sinks.iter().map(|s| s.name()).collect();
        f.debug_struct("Relay")
            .field("sinks", &sinks)
            .field("checkout_hook", &self.hook.is_some())
            .field("max_attempts", &self.max_attempts)
            .field("lease", &self.lease)
            .field("abandoned_after", &self.abandoned_after)
            .finish_non_exhaustive()
    }
}

/// What one round of a relay ([`Relay::run_once`]) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayReport {
    /// Events every sink now has.
    pub delivered: u64,
    /// Events a sink refused, to be tried again later.
    pub retrying: u64,
    /// Events parked in this round (they failed the most attempts).
    pub parked: u64,
    /// Checked-out carts whose hook succeeded.
    pub orders: u64,
    /// `abandoned` events written.
    pub abandoned: u64,
}

impl RelayReport {
    /// Whether the round found anything to do.
    pub fn is_idle(&self) -> bool {
        *self == RelayReport::default()
    }

    fn add(&mut self, other: RelayReport) {
        self.delivered = self.delivered.saturating_add(other.delivered);
        self.retrying = self.retrying.saturating_add(other.retrying);
        self.parked = self.parked.saturating_add(other.parked);
        self.orders = self.orders.saturating_add(other.orders);
        self.abandoned = self.abandoned.saturating_add(other.abandoned);
    }
}

impl Relay {
    /// The default most attempts before an event is parked: 10.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

    /// A relay of `carts`' outbox with no sinks and no hook.
    pub fn new(carts: &Carts) -> Relay {
        Relay {
            carts: carts.clone(),
            sinks: Vec::new(),
            hook: None,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            first_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(600),
            lease: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            batch: 64,
            poll: Duration::from_secs(1),
            abandoned_after: Some(Duration::from_secs(86_400)),
            abandoned_every: Duration::from_secs(60),
        }
    }

    /// Delivers every event to `sink` as well. Names must be unique among the relay's sinks.
    pub fn sink(mut self, sink: impl EventSink) -> Self {
        self.sinks.push(Arc::new(sink));
        self
    }

    /// Runs `hook` with the [`Order`] of every checked-out cart, at least once, until it
    /// succeeds: a failing hook is retried with backoff (and parked after the most
    /// attempts, like an event), and never fails the checkout itself. It may run more than
    /// once for one cart (a crash after it succeeded, before the relay recorded that): key
    /// the app's order on [`Order::cart_id`].
    pub fn on_checkout<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Order) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.hook = Some(Arc::new(move |order| Box::pin(hook(order))));
        self
    }

    /// How many failed deliveries park an event (default
    /// [`DEFAULT_MAX_ATTEMPTS`](Self::DEFAULT_MAX_ATTEMPTS); at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The wait after the first failure, doubled after each further one up to `max`
    /// (default 1 s and 10 minutes). Waits count in whole seconds.
    pub fn retry_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.first_retry = first;
        self.max_retry = max.max(first);
        self
    }

    /// How long a relay keeps the events it took before another relay may take them
    /// (default 60 s; at least twice the [delivery timeout](Self::delivery_timeout), raised
    /// to that): after a relay dies, its events wait this long. A result that comes after
    /// the lease ran out is not recorded (another relay has the event by then). Leases are
    /// read on each relay's clock: keep the hosts' clocks in step (NTP) to well within it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_secs(1));
        self
    }

    /// How long one delivery to one sink, or one run of the checkout hook, may take before
    /// it counts as failed (default 10 s). The sinks of one event are sent to at once, and
    /// the events of different carts too.
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How often an idle relay looks for new events (default 1 s). Changes made through
    /// this process's [`Carts`] wake it at once.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }

    /// After how long without a change a cart with lines gets its `abandoned` event
    /// (default 24 hours; `None` writes none). Checked once a minute.
    pub fn abandoned_after(mut self, idle: Option<Duration>) -> Self {
        self.abandoned_after = idle;
        self
    }

    /// One round: the due events to the sinks, the due orders to the hook, the abandoned
    /// carts' events (when the relay has sinks). Errors of the database end the round;
    /// a sink's or the hook's are recorded on the event.
    pub async fn run_once(&self) -> Result<RelayReport, CartError> {
        let mut report = RelayReport::default();
        if !self.sinks.is_empty() {
            if let Some(idle) = self.abandoned_after {
                report.abandoned = self.abandon(idle).await?;
            }
            report.add(self.round(Lane::Events).await?);
        }
        if self.hook.is_some() {
            report.add(self.round(Lane::Orders).await?);
        }
        Ok(report)
    }

    /// Runs rounds until the task is dropped or aborted: at once while there is work, else
    /// when this process changes a cart or after the poll interval. A database error is
    /// logged and the round tried again after the poll interval.
    pub async fn run(self) {
        let wake = self.carts.inner.outbox.clone();
        let mut last_abandoned: Option<tokio::time::Instant> = None;
        let mut relay = self;
        let abandoned_after = relay.abandoned_after;
        loop {
            // The abandoned sweep runs once a `abandoned_every`, not every round.
            let sweep = last_abandoned.is_none_or(|t| t.elapsed() >= relay.abandoned_every);
            relay.abandoned_after = if sweep { abandoned_after } else { None };
            match relay.run_once().await {
                Ok(report) => {
                    if sweep {
                        last_abandoned = Some(tokio::time::Instant::now());
                    }
                    if report.delivered + report.orders + report.abandoned > 0 {
                        tracing::debug!(?report, "relay round");
                        continue;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "relay round failed; trying again"),
            }
            let _ = tokio::time::timeout(relay.poll, wake.notified()).await;
        }
    }

    /// [`run`](Self::run) as a task of the current tokio runtime.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn abandon(&self, idle: Duration) -> Result<u64, CartError> {
        let idle = i64::try_from(idle.as_secs()).unwrap_or(i64::MAX);
        let cutoff = now_epoch().saturating_sub(idle);
        let backend = &self.carts.inner.store.backend;
        let written = backend.abandon_idle(cutoff, 1000).await?;
        if written > 0 {
            self.carts.inner.outbox.notify_one();
        }
        Ok(written)
    }

    async fn round(&self, lane: Lane) -> Result<RelayReport, CartError> {
        let backend = self.carts.inner.store.backend.clone();
        // A delivery (every sink at once, or the hook) takes at most the timeout: the lease
        // outlasts it, so no other relay takes an event that is still being delivered.
        let lease = self.lease.max(self.timeout.saturating_mul(2));
        let lease = i64::try_from(lease.as_secs()).unwrap_or(i64::MAX);
        let batch = i64::try_from(self.batch).unwrap_or(64);
        let claimed = backend
            .claim_events(lane, now_epoch().saturating_add(lease), batch)
            .await?;
        let mut report = RelayReport::default();
        // One event per cart: they can all go at once.
        let mut tasks = JoinSet::new();
        for c in claimed {
            let work = Work {
                carts: self.carts.clone(),
                sinks: self.sinks.clone(),
                hook: self.hook.clone(),
                timeout: self.timeout,
            };
            tasks.spawn(async move {
                let outcome = match lane {
                    Lane::Events => work.to_sinks(&c).await,
                    Lane::Orders => work.to_hook(&c).await,
                };
                (c, outcome)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let Ok((c, outcome)) = joined else {
                // A sink panicked: its event's lease runs out and it is tried again.
                continue;
            };
            let mut counted = RelayReport::default();
            let delivery = match outcome {
                Ok(done_sinks) => {
                    match lane {
                        Lane::Events => counted.delivered = 1,
                        Lane::Orders => counted.orders = 1,
                    }
                    Delivery::Delivered { done_sinks }
                }
                Err((done_sinks, error, permanent)) => {
                    let attempts = c.event.attempts.saturating_add(1);
                    let park = permanent || attempts >= self.max_attempts;
                    if park {
                        counted.parked = 1;
                        tracing::warn!(event = %c.event.id, %error, "event parked");
                    } else {
                        counted.retrying = 1;
                        tracing::debug!(event = %c.event.id, %error, "delivery failed; retrying");
                    }
                    let wait = self.backoff(attempts);
                    Delivery::Failed {
                        done_sinks,
                        error,
                        retry_at: now_epoch().saturating_add(wait),
                        park,
                    }
                }
            };
            if backend.finish_event(&c, &delivery).await? {
                report.add(counted);
            } else {
                // The lease ran out and another relay took the event: its result counts.
                tracing::warn!(event = %c.event.id, "delivery outlasted its lease; not recorded");
            }
        }
        Ok(report)
    }

    /// The wait in seconds after the `attempts`-th failure.
    fn backoff(&self, attempts: u32) -> i64 {
        let doubling = 2u32.saturating_pow(attempts.saturating_sub(1).min(30));
        let wait = self
            .first_retry
            .saturating_mul(doubling)
            .min(self.max_retry);
        i64::try_from(wait.as_secs()).unwrap_or(i64::MAX)
    }
}

/// What one delivery needs, owned (it runs as its own task).
struct Work {
    carts: Carts,
    sinks: Vec<Arc<dyn EventSink>>,
    hook: Option<CheckoutHook>,
    timeout: Duration,
}

/// The sinks that have the event, the error, and whether retrying cannot help.
type Failure = (Vec<String>, String, bool);

impl Work {
    /// Every sink that does not have the event yet, all at once, each within the timeout.
    async fn to_sinks(&self, c: &Claimed) -> Result<Vec<String>, Failure> {
        let mut done = c.done_sinks.clone();
        let event = Arc::new(c.event.clone());
        let mut deliveries = JoinSet::new();
        for sink in &self.sinks {
            if done.iter().any(|d| d == sink.name()) {
                continue;
            }
            let (sink, event, timeout) = (sink.clone(), event.clone(), self.timeout);
            deliveries.spawn(async move {
                let name = sink.name().to_owned();
                let outcome = match tokio::time::timeout(timeout, sink.deliver(&event)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(error_chain(&*e)),
                    Err(_) => Err(format!("no answer within {timeout:?}")),
                };
                (name, outcome)
            });
        }
        let mut errors = Vec::new();
        while let Some(joined) = deliveries.join_next().await {
            match joined {
                Ok((name, Ok(()))) => done.push(name),
                Ok((name, Err(e))) => errors.push(format!("{name}: {e}")),
                Err(e) => errors.push(format!("a sink panicked: {e}")),
            }
        }
        // The sinks' order, whatever order they answered in.
        done.sort_by_key(|d| self.sinks.iter().position(|s| s.name() == d));
        errors.sort();
        if errors.is_empty() {
            Ok(done)
        } else {
            Err((done, errors.join("; "), false))
        }
    }

    async fn to_hook(&self, c: &Claimed) -> Result<Vec<String>, Failure> {
        let Some(hook) = &self.hook else {
            return Err((Vec::new(), "no checkout hook".into(), false));
        };
        let order = match crate::cart::placed(&self.carts, c.event.cart_id).await {
            Ok(Some(order)) => Order {
                price_changes: super::price_changes(&c.event.body),
                ..order
            },
            Ok(None) => {
                let gone = "the checked-out cart is gone (deleted), so it has no order";
                return Err((Vec::new(), gone.into(), true));
            }
            Err(e) => return Err((Vec::new(), format!("reading the order: {e}"), false)),
        };
        match tokio::time::timeout(self.timeout, hook(order)).await {
            Ok(Ok(())) => Ok(vec!["hook".to_owned()]),
            Ok(Err(e)) => Err((Vec::new(), format!("hook: {}", error_chain(&*e)), false)),
            Err(_) => {
                let late = format!("hook: no answer within {:?}", self.timeout);
                Err((Vec::new(), late, false))
            }
        }
    }
}

/// An error with its sources, `: `-separated.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
