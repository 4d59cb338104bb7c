//! The transactional outbox: every committed change writes its events into `cart_outbox`
//! in its own transaction, and a [`Relay`] delivers them at least once, in order per cart,
//! to the app's [`EventSink`]s (NATS JetStream, RabbitMQ, signed webhooks, a function of
//! the app) and runs the checkout hook. See `docs/EVENTS.md`.

#[cfg(feature = "amqp")]
mod amqp;
#[cfg(any(feature = "nats", feature = "amqp", feature = "webhook"))]
mod error;
mod event;
#[cfg(feature = "nats")]
mod nats;
mod relay;
mod sink;
#[cfg(feature = "webhook")]
mod webhook;

#[cfg(feature = "amqp")]
pub use amqp::AmqpSink;
#[cfg(any(feature = "nats", feature = "amqp", feature = "webhook"))]
pub use error::SinkError;
pub(crate) use event::{abandoned, cart_of, price_changes, record, Context, Lane, NewEvent};
pub use event::{Consumer, DeliveryState, OutboxEvent};
#[cfg(feature = "nats")]
pub use nats::NatsSink;
pub use relay::{Relay, RelayReport};
pub use sink::EventSink;
#[cfg(feature = "webhook")]
pub use webhook::WebhookSink;
