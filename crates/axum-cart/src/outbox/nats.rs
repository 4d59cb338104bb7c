//! [`NatsSink`]: the outbox's events to NATS JetStream.

use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use async_trait::async_trait;

use super::error::redacted;
use super::{EventSink, OutboxEvent, SinkError};
use crate::error::BoxError;

/// Publishes every event to NATS JetStream, on the subject `cart.events.<type>`
/// (`cart.events.item_added`, `cart.events.checked_out`, …), with the event's JSON document
/// as the payload and its id in the `Nats-Msg-Id` header. A delivery succeeds only once
/// JetStream acknowledged it, so the message is stored in a stream; a redelivery of the same
/// event within the stream's duplicate window (2 minutes by default) is dropped by
/// JetStream itself, and consumers dedupe on the id for later ones.
///
/// [`connect`](Self::connect) makes sure a stream covers `cart.events.>`: it uses the one
/// that does, or creates `CART_EVENTS` (file storage, JetStream's default limits).
/// Configure retention on the stream as the app needs; the sink never changes an existing
/// stream. After the connection drops, the client reconnects by itself; deliveries fail
/// (and the relay retries them) until it has.
///
/// ```no_run
/// # async fn demo(carts: axum_cart::Carts) -> Result<(), axum_cart::SinkError> {
/// use axum_cart::{NatsSink, Relay};
///
/// let nats = NatsSink::connect("nats://127.0.0.1:4222").await?;
/// Relay::new(&carts).sink(nats).spawn();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct NatsSink {
    jetstream: jetstream::Context,
    prefix: String,
}

impl NatsSink {
    /// The stream [`connect`](Self::connect) creates when none covers the subjects.
    pub const DEFAULT_STREAM: &'static str = "CART_EVENTS";
    /// The subjects' prefix of [`connect`](Self::connect): events go to
    /// `cart.events.<type>`.
    pub const DEFAULT_SUBJECT_PREFIX: &'static str = "cart.events";

    /// Connects to the NATS server at `url` (`nats://host:4222`, `tls://…`, several
    /// comma-separated) and makes sure a stream covers `cart.events.>`.
    pub async fn connect(url: &str) -> Result<NatsSink, SinkError> {
        let client = async_nats::connect(url).await.map_err(|e| {
            SinkError::connect("nats", format!("connecting to {}", redacted(url)), e)
        })?;
        NatsSink::new(client, Self::DEFAULT_STREAM, Self::DEFAULT_SUBJECT_PREFIX).await
    }

    /// A sink on an existing client that publishes to `<subject_prefix>.<type>` and makes
    /// sure a stream covers `<subject_prefix>.>`: the one that does, or a new one named
    /// `stream`.
    pub async fn new(
        client: async_nats::Client,
        stream: &str,
        subject_prefix: &str,
    ) -> Result<NatsSink, SinkError> {
        let prefix = subject_prefix.trim_end_matches('.');
        let valid_token = |t: &str| {
            !t.is_empty()
                && !t
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, '*' | '>' | '.'))
        };
        if !prefix.split('.').all(valid_token) {
            return Err(SinkError::Config(format!(
                "nats: {subject_prefix:?} is not a subject prefix (dot-separated tokens \
                 without spaces or wildcards)"
            )));
        }
        let jetstream = jetstream::new(client);
        let subjects = format!("{prefix}.>");
        let covered = match jetstream.stream_by_subject(subjects.as_str()).await {
            Ok(_) => true,
            Err(e)
                if matches!(
                    e.kind(),
                    jetstream::context::GetStreamByNameErrorKind::NotFound
                ) =>
            {
                false
            }
            Err(e) => {
                return Err(SinkError::connect(
                    "nats",
                    format!("looking up the stream of {subjects}"),
                    e,
                ))
            }
        };
        if !covered {
            let config = stream::Config {
                name: stream.to_owned(),
                subjects: vec![subjects.clone()],
                ..stream::Config::default()
            };
            jetstream.get_or_create_stream(config).await.map_err(|e| {
                SinkError::connect(
                    "nats",
                    format!("creating stream {stream} for {subjects}"),
                    e,
                )
            })?;
        }
        Ok(NatsSink {
            jetstream,
            prefix: prefix.to_owned(),
        })
    }
}

#[async_trait]
impl EventSink for NatsSink {
    fn name(&self) -> &str {
        "nats"
    }

    async fn deliver(&self, event: &OutboxEvent) -> Result<(), BoxError> {
        let subject = format!("{}.{}", self.prefix, event.event_type);
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, event.id.as_str());
        headers.insert("Content-Type", "application/json");
        let ack = self
            .jetstream
            .publish_with_headers(subject, headers, bytes::Bytes::from(event.body.clone()))
            .await?;
        ack.await?;
        Ok(())
    }
}
