//! Where the relay delivers events: the [`EventSink`] trait.

use async_trait::async_trait;

use super::OutboxEvent;
use crate::error::BoxError;

/// A destination of the outbox's events: a message broker, a webhook, a function of the
/// app. The [`Relay`](crate::Relay) calls [`deliver`](Self::deliver) at least once for every
/// event, in order per cart; an `Err` is retried with backoff, and parked after the relay's
/// most attempts. The same event may come again (after a crash, a timeout, a retry of
/// another sink): [`OutboxEvent::id`] is stable across redeliveries, so a consumer dedupes
/// on it.
///
/// ```
/// use axum_cart::{async_trait, BoxError, EventSink, OutboxEvent};
///
/// /// Logs every event.
/// struct Log;
///
/// #[async_trait]
/// impl EventSink for Log {
///     fn name(&self) -> &str {
///         "log"
///     }
///
///     async fn deliver(&self, event: &OutboxEvent) -> Result<(), BoxError> {
///         println!("{} {} {}", event.id, event.event_type, event.body);
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// A short name, unique among one relay's sinks (`"nats"`, `"amqp"`, `"webhook"`, …). The
    /// outbox keeps which sinks already have an event, so a retry goes only to those that
    /// failed: renaming a sink makes it receive the pending events again.
    fn name(&self) -> &str;

    /// Delivers one event; `Ok` only once the destination has it (a broker's ack, a 2xx).
    async fn deliver(&self, event: &OutboxEvent) -> Result<(), BoxError>;
}
