//! [`AmqpSink`]: the outbox's events to RabbitMQ (AMQP 0-9-1), with publisher confirms.

use std::sync::Arc;

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::Mutex;

use super::error::redacted;
use super::{EventSink, OutboxEvent, SinkError};
use crate::error::BoxError;

/// Publishes every event to RabbitMQ: to the durable topic exchange `cart.events`, with the
/// event's type as the routing key (`item_added`, `checked_out`, …), as a persistent message
/// whose body is the event's JSON document, `content_type` `application/json`,
/// `message_id` the event's id and `type` its type. A delivery succeeds only once the
/// broker confirmed it (publisher confirms); a `nack`, a closed channel or a lost
/// connection fails it, and the relay retries it later.
///
/// Bind the queues of the consumers to the exchange (routing key `#` for every event,
/// `checked_out` for orders only): like any exchange, it drops the messages that no queue
/// is bound for. After the connection dies (a broker restart, a network cut), the next
/// delivery opens a new one: the app needs no restart.
///
/// ```no_run
/// # async fn demo(carts: axum_cart::Carts) -> Result<(), axum_cart::SinkError> {
/// use axum_cart::{AmqpSink, Relay};
///
/// let rabbit = AmqpSink::connect("amqp://guest:guest@127.0.0.1:5672/%2f").await?;
/// Relay::new(&carts).sink(rabbit).spawn();
/// # Ok(()) }
/// ```
pub struct AmqpSink {
    url: String,
    live: Mutex<Option<Arc<Live>>>,
}

/// An open connection and its channel in confirm mode, with the exchange declared.
struct Live {
    connection: Connection,
    channel: Channel,
}

impl std::fmt::Debug for AmqpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSink")
            .field("url", &redacted(&self.url))
            .field("exchange", &Self::EXCHANGE)
            .finish_non_exhaustive()
    }
}

impl AmqpSink {
    /// The exchange the events go to: a durable topic exchange, declared by the sink.
    pub const EXCHANGE: &'static str = "cart.events";

    /// Connects to the broker at `url` (`amqp://user:password@host:5672/vhost`, `amqps://…`)
    /// and declares the exchange [`EXCHANGE`](Self::EXCHANGE): an error here is a wrong
    /// URL, an unreachable broker, refused credentials or an existing `cart.events`
    /// exchange of another kind.
    pub async fn connect(url: &str) -> Result<AmqpSink, SinkError> {
        let live = open(url).await?;
        Ok(AmqpSink {
            url: url.to_owned(),
            live: Mutex::new(Some(Arc::new(live))),
        })
    }

    /// The open connection, or a new one if it died.
    async fn live(&self) -> Result<Arc<Live>, SinkError> {
        let mut guard = self.live.lock().await;
        if let Some(live) = guard.as_ref() {
            if live.connection.status().connected() && live.channel.status().connected() {
                return Ok(live.clone());
            }
            let old = live.clone();
            *guard = None;
            // Best effort: a dead connection has nothing to close.
            let _ = old.connection.close(200, "reconnecting").await;
        }
        let live = Arc::new(open(&self.url).await?);
        *guard = Some(live.clone());
        Ok(live)
    }

    /// Forgets `failed` (unless another delivery replaced it already): the next delivery
    /// reconnects.
    async fn forget(&self, failed: &Arc<Live>) {
        let mut guard = self.live.lock().await;
        if guard.as_ref().is_some_and(|l| Arc::ptr_eq(l, failed)) {
            *guard = None;
            let _ = failed.connection.close(200, "reconnecting").await;
        }
    }
}

async fn open(url: &str) -> Result<Live, SinkError> {
    let properties = ConnectionProperties::default()
        .with_connection_name("axum-cart".into())
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current());
    let connection = Connection::connect(url, properties)
        .await
        .map_err(|e| SinkError::connect("amqp", format!("connecting to {}", redacted(url)), e))?;
    let setup = async {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let options = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                AmqpSink::EXCHANGE,
                ExchangeKind::Topic,
                options,
                FieldTable::default(),
            )
            .await?;
        Ok::<_, lapin::Error>(channel)
    };
    match setup.await {
        Ok(channel) => Ok(Live {
            connection,
            channel,
        }),
        Err(e) => {
            let _ = connection.close(200, "set-up failed").await;
            Err(SinkError::connect(
                "amqp",
                format!("declaring the topic exchange {}", AmqpSink::EXCHANGE),
                e,
            ))
        }
    }
}

#[async_trait]
impl EventSink for AmqpSink {
    fn name(&self) -> &str {
        "amqp"
    }

    async fn deliver(&self, event: &OutboxEvent) -> Result<(), BoxError> {
        let live = self.live().await?;
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(event.id.as_str().into())
            .with_type(event.event_type.as_str().into())
            .with_timestamp(u64::try_from(event.created_at.unix_timestamp()).unwrap_or(0));
        let published = async {
            live.channel
                .basic_publish(
                    AmqpSink::EXCHANGE,
                    &event.event_type,
                    BasicPublishOptions::default(),
                    event.body.as_bytes(),
                    properties,
                )
                .await?
                .await
        }
        .await;
        match published {
            Ok(Confirmation::Ack(_)) => Ok(()),
            Ok(Confirmation::Nack(_)) => Err("the broker refused the message (nack)".into()),
            Ok(Confirmation::NotRequested) => {
                self.forget(&live).await;
                Err("the channel is not in confirm mode".into())
            }
            Err(e) => {
                self.forget(&live).await;
                Err(Box::new(e))
            }
        }
    }
}
