#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cart;
mod carts;
mod config;
mod discount;
mod error;
mod events;
mod inventory;
mod money;
mod options;
mod outbox;
mod prices;
mod product;
mod rules;
mod serial;
mod session;
mod shipping;
mod store;
mod tax;
mod types;
mod user;

#[cfg(feature = "http")]
mod http;

pub use async_trait::async_trait;
pub use cart::Cart;
pub use carts::{Carts, CartsBuilder, EventCounts};
pub use config::CartConfig;
pub use discount::{Discount, DiscountKind, NewDiscount};
pub use error::{BoxError, CartError, DiscountRefusal};
pub use events::CartEvent;
#[cfg(feature = "http")]
pub use http::{
    admin_router, cart_router, filters, http_status, CartBadge, CartDetails, CartItem, CartLayer,
    CartRejection, CartRouter, CartService, CartWarning, ErrorResponse, IdempotencyLayer,
    IdempotencyService, Quantity, SameSiteLayer, SameSiteService,
};
pub use inventory::{AlwaysInStock, InventoryChecker};
pub use options::{
    LineKey, LineOptions, ProductOption, MAX_OPTIONS, MAX_OPTION_NAME_LEN, MAX_OPTION_VALUE_LEN,
};
pub use outbox::{Consumer, DeliveryState, EventSink, OutboxEvent, Relay, RelayReport};
pub use prices::{LinePriceChange, PriceChange, PricePolicy};
pub use product::{Catalog, NoCatalog, Product, ProductRef};
pub use rules::{QuantityRefusal, QuantityRule};
pub use serial::CartPayload;
pub use session::{MemorySession, SessionAdapter, CART_ID_KEY};
pub use shipping::{FreeShipping, ShippingCalculator, ShippingOption};
pub use store::{CartFilter, CartRecord, Store};
pub use tax::{NoTax, TaxCalculator};
pub use types::{
    AddOptions, CartId, CartView, Line, LoadedLine, MergeReport, MergeStrategy, Order, Totals,
    BATCH_LIMIT, DEFAULT_MAX_LINES, QUANTITY_LIMIT,
};

#[cfg(feature = "amqp")]
#[cfg_attr(docsrs, doc(cfg(feature = "amqp")))]
pub use outbox::AmqpSink;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub use outbox::NatsSink;
#[cfg(any(feature = "nats", feature = "amqp", feature = "webhook"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "nats", feature = "amqp", feature = "webhook")))
)]
pub use outbox::SinkError;
#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
pub use outbox::WebhookSink;

#[cfg(feature = "http")]
pub use session::TowerSession;
#[cfg(feature = "signed-cookie")]
pub use session::{SignedCookieConfig, SignedCookieSession};

/// The code blocks of `docs/CONFIGURATION.md`, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/CONFIGURATION.md")]
pub struct ConfigurationDoctests;

/// The code blocks of `docs/AGENTS.md`, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/AGENTS.md")]
pub struct AgentsDoctests;

/// The code blocks of `docs/EVENTS.md`, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/EVENTS.md")]
pub struct EventsDoctests;

/// The code blocks of `docs/HTTP.md`, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/HTTP.md")]
pub struct HttpDoctests;
