//! The transactional outbox: every committed change writes its events into `cart_outbox`
//! in its own transaction, and a [`Relay`] delivers them at least once, in order per cart,
//! to the app's [`EventSink`]s (NATS JetStream, RabbitMQ, signed webhooks, a function of
//! the app) and runs the checkout hook. See `docs/EVENTS.md`.

mod event;
mod relay;
mod sink;

pub(crate) use event::{abandoned, price_changes, record, Context, Lane, NewEvent};
pub use event::{Consumer, DeliveryState, OutboxEvent};
pub use relay::{Relay, RelayReport};
pub use sink::EventSink;
