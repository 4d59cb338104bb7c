//! The axum integration (cargo feature `http`): the [`CartLayer`], the [`Cart`] and
//! [`CartBadge`] extractors, the [`cart_router`] routes, the [`admin_router`] pages, the
//! [`SameSiteLayer`] guard, and the pieces an app's own routes use: the [`Quantity`] body
//! extractor, [`ErrorResponse`] (the cart's error answer for HTML and JSON clients),
//! [`http_status`] and [`CartDetails::load`].
//!
//! - `layer`, `extract`: the layer and the extractors.
//! - `body`: form-or-JSON request bodies, within axum's `DefaultBodyLimit`.
//! - `respond`: content negotiation and error rendering, in one place.
//! - `router`: the cart routes, one handler per route.
//! - `admin`: the admin pages.
//! - `filters`: the askama filters; `same_site`: the cross-site guard.
//!
//! [`Cart`]: crate::Cart

mod admin;
mod body;
mod extract;
pub mod filters;
mod layer;
mod respond;
mod router;
mod same_site;

pub use admin::admin_router;
pub use body::Quantity;
pub use extract::CartRejection;
pub use filters::CartBadge;
pub use layer::{CartLayer, CartService};
pub use respond::{http_status, ErrorResponse};
pub use router::{
    cart_router, CartDetails, CartItem, CartRouter, CartWarning, IdempotencyLayer,
    IdempotencyService,
};
pub use same_site::{SameSiteLayer, SameSiteService};
