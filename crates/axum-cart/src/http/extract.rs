//! The [`Cart`] and [`CartBadge`] extractors.

use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::{request::Parts, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::layer::CartContext;
use crate::http::respond::Problem;
use crate::{Cart, CartBadge, CartError};

/// Why a [`Cart`] or [`CartBadge`] could not be extracted.
///
/// Both extractors in handlers behind a [`CartLayer`](crate::CartLayer):
///
/// ```
/// use axum_cart::{Cart, CartBadge, CartError, ProductRef};
/// use rust_decimal::Decimal;
///
/// async fn add_coffee(mut cart: Cart) -> Result<String, CartError> {
///     // The first change creates the row and stores its id in the session or cookie.
///     cart.add(&ProductRef::new("coffee", 7)?, Decimal::new(1200, 2), 1).await?;
///     Ok(format!("{} in your cart", cart.count().await?))
/// }
///
/// async fn header(badge: CartBadge) -> String {
///     // No query and no row for a visitor without a cart.
///     format!("{} items, {}", badge.count, badge.summary())
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum CartRejection {
    /// The handler is not behind a [`CartLayer`](crate::CartLayer): a set-up error,
    /// answered with 500.
    MissingCartLayer,
    /// The session or the cart could not be read; answered like the error itself.
    Cart(CartError),
}

/// The body of the 500 answered when the layer is missing.
const MISSING_LAYER: &str = "Missing request extension: axum-cart's CartLayer is \
     not installed. Add `.layer(CartLayer::new(carts))` to the router that serves this handler.";

impl fmt::Display for CartRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CartRejection::MissingCartLayer => f.write_str(MISSING_LAYER),
            CartRejection::Cart(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for CartRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CartRejection::MissingCartLayer => None,
            CartRejection::Cart(e) => Some(e),
        }
    }
}

impl From<CartError> for CartRejection {
    fn from(err: CartError) -> Self {
        CartRejection::Cart(err)
    }
}

impl IntoResponse for CartRejection {
    fn into_response(self) -> Response {
        match self {
            CartRejection::MissingCartLayer => {
                tracing::error!("{MISSING_LAYER}");
                (StatusCode::INTERNAL_SERVER_ERROR, MISSING_LAYER).into_response()
            }
            CartRejection::Cart(e) => e.into_response(),
        }
    }
}

/// The bundled routes answer a missing layer in the client's format, with its own code.
impl From<CartRejection> for Problem {
    fn from(rejection: CartRejection) -> Self {
        match rejection {
            CartRejection::MissingCartLayer => {
                tracing::error!("{MISSING_LAYER}");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "missing_cart_layer",
                    MISSING_LAYER,
                )
            }
            CartRejection::Cart(e) => e.into(),
        }
    }
}

/// What the [`CartLayer`](crate::CartLayer) left in the request, or why it is missing.
pub(crate) fn context(parts: &Parts) -> Result<CartContext, CartRejection> {
    parts
        .extensions
        .get::<CartContext>()
        .cloned()
        .ok_or(CartRejection::MissingCartLayer)
}

/// `Cart(request)`: the visitor's cart. No query is made until the handler reads or
/// changes it; the first change creates the row and stores its id where the
/// [`CartLayer`](crate::CartLayer) keeps it.
impl<S: Send + Sync> FromRequestParts<S> for Cart {
    type Rejection = CartRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(context(parts)?.open().await?)
    }
}

/// The visitor's [`CartBadge`], for page headers: no query and no row for a visitor with
/// no cart id, one query otherwise.
impl<S: Send + Sync> FromRequestParts<S> for CartBadge {
    type Rejection = CartRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ctx = context(parts)?;
        if ctx.cart_id().await?.is_none() {
            return Ok(CartBadge::empty(ctx.carts.config()));
        }
        Ok(CartBadge::from_cart(&ctx.open().await?).await?)
    }
}
