//! # axum-cart
//!
//! A session-backed shopping cart for axum apps: the successor of django-cart, stored in
//! SQLite (embedded default), PostgreSQL or MySQL/MariaDB through sqlx.
//!
//! - [`Carts`] is the app's cart service (store, settings, events), built once with
//!   [`Carts::builder`].
//! - [`Cart`] is one visitor's cart: add / update / remove / clear / add_bulk, counts,
//!   lines, money math (summary, tax, shipping, discount, total), discounts, checkout, user
//!   binding and merge, save and restore.
//! - Plug-ins are traits with no-op defaults: [`TaxCalculator`], [`ShippingCalculator`],
//!   [`InventoryChecker`], [`Catalog`], [`SessionAdapter`].
//!
//! Money is [`rust_decimal::Decimal`] everywhere, with exactly two decimal places.
//!
//! ```
//! # async fn demo() -> Result<(), axum_cart::CartError> {
//! use axum_cart::{Carts, MemorySession, ProductRef};
//! use rust_decimal::Decimal;
//!
//! let carts = Carts::connect("sqlite::memory:").await?;
//! carts.migrate().await?;
//! let mut cart = carts.open(MemorySession::default()).await?;
//! let coffee = ProductRef::new("coffee", 7)?;
//! cart.add(&coffee, Decimal::new(1200, 2), 2).await?;
//! cart.update(&coffee, 5, None).await?;
//! assert_eq!(cart.summary().await?.to_string(), "60.00");
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod cart;
pub mod config;
pub mod discount;
pub mod error;
pub mod events;
mod http;
pub mod inventory;
mod money;
pub mod product;
pub mod serial;
pub mod session;
pub mod shipping;
pub mod store;
pub mod tax;
mod user;

pub use async_trait::async_trait;
pub use cart::{
    AddOptions, Cart, CartId, CartView, Carts, Line, LoadedLine, MergeReport, MergeStrategy, Order,
    Totals, BATCH_LIMIT, QUANTITY_LIMIT,
};
pub use config::{CartConfig, CartsBuilder};
pub use discount::{Discount, DiscountKind, NewDiscount};
pub use error::{BoxError, CartError, DiscountRefusal};
pub use events::CartEvent;
pub use http::{
    admin_router, cart_router, filters, http_status, CartBadge, CartDetails, CartItem, CartLayer,
    CartRejection, CartRouter, CartService, ErrorResponse, Quantity, SameSiteLayer,
    SameSiteService,
};
pub use inventory::{AlwaysInStock, InventoryChecker};
pub use product::{Catalog, NoCatalog, Product, ProductRef};
pub use serial::CartPayload;
pub use session::{
    MemorySession, SessionAdapter, SignedCookieConfig, SignedCookieSession, TowerSession,
    CART_ID_KEY,
};
pub use shipping::{FreeShipping, ShippingCalculator, ShippingOption};
pub use store::{CartFilter, CartRecord, Store};
pub use tax::{NoTax, TaxCalculator};

/// The README's code blocks, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// The code blocks of `docs/CONFIGURATION.md`, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/CONFIGURATION.md")]
pub struct ConfigurationDoctests;

/// The code blocks of `docs/AGENTS.md`, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/AGENTS.md")]
pub struct AgentsDoctests;

/// The code blocks of `docs/HTTP.md`, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/HTTP.md")]
pub struct HttpDoctests;
