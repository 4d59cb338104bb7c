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
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cart;
mod carts;
mod config;
mod discount;
mod error;
mod events;
mod inventory;
mod money;
mod product;
mod serial;
mod session;
mod shipping;
mod store;
mod tax;
mod types;
mod user;

#[cfg(feature = "http")]
mod admin;
#[cfg(feature = "http")]
mod extract;
/// The askama filters of the bundled templates, for an app's own templates: askama looks
/// filters up in a module named `filters` (see [`filters`]'s own docs).
#[cfg(feature = "http")]
pub mod filters;
#[cfg(feature = "http")]
mod layer;
#[cfg(feature = "http")]
mod router;
#[cfg(feature = "http")]
mod same_site;

pub use async_trait::async_trait;
pub use cart::Cart;
pub use carts::{Carts, CartsBuilder};
pub use config::CartConfig;
pub use discount::{Discount, DiscountKind, NewDiscount};
pub use error::{BoxError, CartError, DiscountRefusal};
pub use events::CartEvent;
pub use inventory::{AlwaysInStock, InventoryChecker};
pub use product::{Catalog, NoCatalog, Product, ProductRef};
pub use serial::CartPayload;
pub use session::{MemorySession, SessionAdapter, CART_ID_KEY};
pub use shipping::{FreeShipping, ShippingCalculator, ShippingOption};
pub use store::{CartFilter, CartRecord, Store};
pub use tax::{NoTax, TaxCalculator};
pub use types::{
    AddOptions, CartId, CartView, Line, LoadedLine, MergeReport, MergeStrategy, Order, Totals,
    BATCH_LIMIT, QUANTITY_LIMIT,
};

#[cfg(feature = "http")]
pub use admin::admin_router;
#[cfg(feature = "http")]
pub use extract::CartRejection;
#[cfg(feature = "http")]
pub use filters::CartBadge;
#[cfg(feature = "http")]
pub use layer::{CartLayer, CartService};
#[cfg(feature = "http")]
pub use router::{cart_router, CartDetails, CartItem, CartRouter};
#[cfg(feature = "http")]
pub use same_site::{SameSiteLayer, SameSiteService};
#[cfg(feature = "http")]
pub use session::TowerSession;
#[cfg(feature = "signed-cookie")]
pub use session::{SignedCookieConfig, SignedCookieSession};

/// The README's code blocks, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The code blocks of `docs/CONFIGURATION.md`, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/CONFIGURATION.md")]
pub struct ConfigurationDoctests;

/// The code blocks of `docs/AGENTS.md`, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/AGENTS.md")]
pub struct AgentsDoctests;

/// The code blocks of `docs/HTTP.md`, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/HTTP.md")]
pub struct HttpDoctests;
