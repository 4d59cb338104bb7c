//! The events of the outbox: [`OutboxEvent`] as the relay delivers and lists it, and the
//! JSON document each one carries, built in the transaction of its change.

use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::events::CartEvent;
use crate::options::LineOptions;
use crate::prices::{LinePriceChange, PriceChange};
use crate::product::ProductRef;
use crate::types::{CartId, Line};

/// One event of the outbox: what happened to a cart, with the JSON document the sinks send.
///
/// The document (`body`) is an object with `id`, `type`, `time` (RFC 3339, UTC), `cart_id`,
/// `user_id` (or `null`), `version` (the cart's version after the change, `null` for an
/// `abandoned` event) and `data`; money is a decimal string, quantities are integers. The
/// types and their `data` are listed in `docs/EVENTS.md`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OutboxEvent {
    /// Unique, and the same on every redelivery: what a consumer dedupes on (a UUID).
    pub id: String,
    /// `item_added`, `item_updated`, `item_removed`, `cleared`, `discount_applied`,
    /// `discount_removed`, `merged`, `checked_out` or `abandoned`.
    pub event_type: String,
    /// The cart.
    pub cart_id: CartId,
    /// When the change committed (to the second).
    pub created_at: OffsetDateTime,
    /// The event as JSON, exactly as the sinks send it.
    pub body: String,
    /// How many deliveries have failed so far.
    pub attempts: u32,
    /// Where its delivery stands.
    pub state: DeliveryState,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// Who this row of the outbox is for: the sinks, or the checkout hook (a `checked_out`
    /// event has a row for each, delivered and retried on its own).
    pub consumer: Consumer,
}

/// Who a row of the outbox is delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Consumer {
    /// The relay's [`EventSink`](crate::EventSink)s.
    Sinks,
    /// The relay's [`on_checkout`](crate::Relay::on_checkout) hook.
    CheckoutHook,
}

impl Consumer {
    /// `sinks` or `checkout_hook`.
    pub fn as_str(self) -> &'static str {
        match self {
            Consumer::Sinks => "sinks",
            Consumer::CheckoutHook => "checkout_hook",
        }
    }
}

/// Where an event's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryState {
    /// Not yet delivered to every sink (waiting, or retrying with backoff).
    Pending,
    /// Every sink has it.
    Delivered,
    /// It failed the relay's most attempts: no longer retried until someone asks
    /// ([`Carts::retry_events`](crate::Carts::retry_events), the admin page, `cart events retry`).
    Parked,
}

impl DeliveryState {
    pub(crate) fn from_db(state: i64) -> DeliveryState {
        match state {
            1 => DeliveryState::Delivered,
            2 => DeliveryState::Parked,
            _ => DeliveryState::Pending,
        }
    }

    /// The state as the outbox stores it.
    pub(crate) fn to_db(self) -> i64 {
        match self {
            DeliveryState::Pending => 0,
            DeliveryState::Delivered => 1,
            DeliveryState::Parked => 2,
        }
    }

    /// `pending`, `delivered` or `parked`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Parked => "parked",
        }
    }
}

/// Which consumer a row of the outbox is for: the sinks, or the app's checkout hook (a
/// `checked_out` event gets a row in each, so a failing sink never holds an order back and
/// the other way round).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    Events,
    Orders,
}

impl Lane {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Lane::Events => "events",
            Lane::Orders => "orders",
        }
    }

    pub(crate) fn consumer(lane: &str) -> Consumer {
        match lane {
            "orders" => Consumer::CheckoutHook,
            _ => Consumer::Sinks,
        }
    }
}

/// An event to write into the outbox in the transaction of its change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewEvent {
    pub id: String,
    pub event_type: &'static str,
    pub cart_id: CartId,
    pub created_at: i64,
    pub body: String,
    /// `checked_out` events also go to the orders lane.
    pub order: bool,
}

/// What a change's events need beside themselves: the cart's user, its version and lines
/// after the change, and its discount (code and amount). `None` where it is not known (a
/// one-statement add knows only its line).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Context<'a> {
    pub user_id: Option<&'a str>,
    pub version: Option<i64>,
    pub lines: Option<&'a [Line]>,
    pub discount: Option<(&'a str, Decimal)>,
    /// A checkout's price changes.
    pub price_changes: &'a [LinePriceChange],
}

/// The outbox rows of `event`.
pub(crate) fn record(event: &CartEvent, cx: Context<'_>) -> NewEvent {
    let now = OffsetDateTime::now_utc();
    let (event_type, cart_id, data) = data(event, cx);
    let id = uuid::Uuid::now_v7().to_string();
    let body = document(&id, event_type, now, cart_id, cx, data);
    NewEvent {
        id,
        event_type,
        cart_id,
        created_at: now.unix_timestamp(),
        body,
        order: event_type == "checked_out",
    }
}

/// The `abandoned` event of a cart idle since `updated_at` with `lines`.
pub(crate) fn abandoned(
    cart_id: CartId,
    user_id: Option<&str>,
    updated_at: i64,
    lines: &[Line],
) -> NewEvent {
    let now = OffsetDateTime::now_utc();
    let id = uuid::Uuid::now_v7().to_string();
    let data = json!({
        "lines": lines_json(lines),
        "subtotal": money(crate::types::subtotal(lines)),
        "last_activity": epoch_text(updated_at),
    });
    let cx = Context {
        user_id,
        ..Context::default()
    };
    let body = document(&id, "abandoned", now, cart_id, cx, data);
    NewEvent {
        id,
        event_type: "abandoned",
        cart_id,
        created_at: now.unix_timestamp(),
        body,
        order: false,
    }
}

fn document(
    id: &str,
    event_type: &str,
    now: OffsetDateTime,
    cart_id: CartId,
    cx: Context<'_>,
    data: Value,
) -> String {
    let mut doc = Map::new();
    doc.insert("id".into(), json!(id));
    doc.insert("type".into(), json!(event_type));
    doc.insert(
        "time".into(),
        json!(now.format(&Rfc3339).unwrap_or_default()),
    );
    doc.insert("cart_id".into(), json!(cart_id.get()));
    doc.insert("user_id".into(), json!(cx.user_id));
    doc.insert("version".into(), json!(cx.version));
    doc.insert("data".into(), data);
    Value::Object(doc).to_string()
}

/// The cart `event` is about.
pub(crate) fn cart_of(event: &CartEvent) -> CartId {
    data(event, Context::default()).1
}

fn data(event: &CartEvent, cx: Context<'_>) -> (&'static str, CartId, Value) {
    let lines = cx.lines.unwrap_or_default();
    match event {
        CartEvent::ItemAdded { cart_id, line } => {
            ("item_added", *cart_id, json!({ "line": line_json(line) }))
        }
        CartEvent::ItemUpdated {
            cart_id,
            line,
            deleted,
        } => (
            "item_updated",
            *cart_id,
            json!({ "line": line_json(line), "deleted": deleted }),
        ),
        CartEvent::ItemRemoved {
            cart_id,
            product,
            options,
        } => (
            "item_removed",
            *cart_id,
            json!({ "product": { "kind": product.kind(), "id": product.id() },
                    "options": options_json(options) }),
        ),
        CartEvent::Cleared { cart_id } => ("cleared", *cart_id, json!({})),
        CartEvent::DiscountApplied { cart_id, code } => {
            ("discount_applied", *cart_id, json!({ "code": code }))
        }
        CartEvent::DiscountRemoved { cart_id, code } => {
            ("discount_removed", *cart_id, json!({ "code": code }))
        }
        CartEvent::Merged { cart_id, from } => (
            "merged",
            *cart_id,
            json!({ "from": from.iter().map(|c| c.get()).collect::<Vec<_>>(),
                    "lines": lines_json(lines) }),
        ),
        CartEvent::CheckedOut { cart_id } => {
            let subtotal = crate::types::subtotal(lines);
            let (code, discount) = match cx.discount {
                Some((code, amount)) => (Some(code), amount),
                None => (None, Decimal::ZERO),
            };
            (
                "checked_out",
                *cart_id,
                json!({
                    "lines": lines_json(lines),
                    "subtotal": money(subtotal),
                    "discount_code": code,
                    "discount": money(discount),
                    "total_before_tax": money(subtotal.saturating_sub(discount).max(Decimal::ZERO)),
                    "price_changes": serde_json::to_value(cx.price_changes).unwrap_or_default(),
                }),
            )
        }
    }
}

/// The price changes a `checked_out` event's body records (empty for any other body).
pub(crate) fn price_changes(body: &str) -> Vec<LinePriceChange> {
    let Ok(doc) = serde_json::from_str::<Value>(body) else {
        return Vec::new();
    };
    let Some(changes) = doc["data"]["price_changes"].as_array() else {
        return Vec::new();
    };
    changes
        .iter()
        .filter_map(|c| {
            let product = ProductRef::new(c["kind"].as_str()?, c["id"].as_i64()?).ok()?;
            let from = c["from"].as_str()?.parse().ok()?;
            let to = c["to"].as_str()?.parse().ok()?;
            let name = c["name"].as_str().unwrap_or_default();
            Some(LinePriceChange::new(
                product,
                name,
                PriceChange::new(from, to),
            ))
        })
        .collect()
}

fn lines_json(lines: &[Line]) -> Vec<Value> {
    lines.iter().map(line_json).collect()
}

fn line_json(line: &Line) -> Value {
    json!({
        "product": { "kind": line.product.kind(), "id": line.product.id() },
        "options": options_json(&line.options),
        "quantity": line.quantity,
        "unit_price": money(line.unit_price),
        "total": money(line.total_price()),
    })
}

fn options_json(options: &LineOptions) -> Value {
    let mut map = Map::new();
    for (name, value) in options.iter() {
        map.insert(name.to_owned(), json!(value));
    }
    Value::Object(map)
}

fn money(amount: Decimal) -> String {
    crate::money::cents(amount).to_string()
}

fn epoch_text(epoch: i64) -> String {
    OffsetDateTime::from_unix_timestamp(epoch)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}
