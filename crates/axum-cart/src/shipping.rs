//! Shipping: a pluggable calculator with options to show the customer; the default is free.

use async_trait::async_trait;
use rust_decimal::Decimal;

use crate::error::BoxError;
use crate::types::CartView;

/// One shipping choice shown to the customer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub struct ShippingOption {
    /// A stable id, e.g. `"standard"`.
    pub id: String,
    /// What the customer reads, e.g. `"Standard (3–5 days)"`.
    pub name: String,
    /// The price, serialised as a string with two decimals.
    #[serde(with = "rust_decimal::serde::str")]
    pub price: Decimal,
}

impl ShippingOption {
    /// An option; the price is rounded half-up to cents.
    pub fn new(id: impl Into<String>, name: impl Into<String>, price: Decimal) -> Self {
        ShippingOption {
            id: id.into(),
            name: name.into(),
            price: crate::money::cents(price),
        }
    }
}

/// Computes shipping: the cost of the cart and the options to choose from.
///
/// ```
/// use axum_cart::{async_trait, BoxError, CartView, ShippingCalculator, ShippingOption};
/// use rust_decimal::Decimal;
///
/// /// Free from 100.00, else 9.99.
/// struct FlatRateShipping;
///
/// #[async_trait]
/// impl ShippingCalculator for FlatRateShipping {
///     async fn calculate(&self, cart: &CartView) -> Result<Decimal, BoxError> {
///         Ok(if cart.subtotal() >= Decimal::from(100) { Decimal::ZERO } else { Decimal::new(999, 2) })
///     }
///     async fn options(&self, cart: &CartView) -> Result<Vec<ShippingOption>, BoxError> {
///         Ok(vec![
///             ShippingOption::new("standard", "Standard (3–5 days)", self.calculate(cart).await?),
///             ShippingOption::new("express", "Express (next-day)", Decimal::new(1999, 2)),
///         ])
///     }
/// }
/// ```
#[async_trait]
pub trait ShippingCalculator: Send + Sync + 'static {
    /// The shipping cost of this cart.
    async fn calculate(&self, cart: &CartView) -> Result<Decimal, BoxError>;
    /// The choices to offer for this cart.
    async fn options(&self, cart: &CartView) -> Result<Vec<ShippingOption>, BoxError>;
}

/// The default: free shipping, one option `{"id": "free", "name": "Free Shipping", "price": "0.00"}`.
#[derive(Debug, Default, Clone, Copy)]
pub struct FreeShipping;

#[async_trait]
impl ShippingCalculator for FreeShipping {
    async fn calculate(&self, _: &CartView) -> Result<Decimal, BoxError> {
        Ok(Decimal::ZERO)
    }
    async fn options(&self, _: &CartView) -> Result<Vec<ShippingOption>, BoxError> {
        Ok(vec![ShippingOption::new(
            "free",
            "Free Shipping",
            Decimal::ZERO,
        )])
    }
}
