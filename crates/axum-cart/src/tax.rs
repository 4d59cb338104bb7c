//! Tax: a pluggable calculator; the default charges nothing.

use async_trait::async_trait;
use rust_decimal::Decimal;

use crate::error::BoxError;
use crate::types::CartView;

/// Computes the tax of a cart. The result is rounded half-up to cents by the cart.
///
/// It runs at most once per [`Cart`](crate::Cart) value however often a page asks for
/// `tax()` or `total()`, so a calculator that calls a remote tax API costs one round trip.
///
/// ```
/// use axum_cart::{async_trait, BoxError, CartView, TaxCalculator};
/// use rust_decimal::Decimal;
///
/// /// 8% of the subtotal.
/// struct FlatRateTax;
///
/// #[async_trait]
/// impl TaxCalculator for FlatRateTax {
///     async fn calculate(&self, cart: &CartView) -> Result<Decimal, BoxError> {
///         Ok(cart.subtotal() * Decimal::new(8, 2))
///     }
/// }
/// ```
#[async_trait]
pub trait TaxCalculator: Send + Sync + 'static {
    /// The tax for this cart.
    async fn calculate(&self, cart: &CartView) -> Result<Decimal, BoxError>;
}

/// The default: zero tax.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTax;

#[async_trait]
impl TaxCalculator for NoTax {
    async fn calculate(&self, _: &CartView) -> Result<Decimal, BoxError> {
        Ok(Decimal::ZERO)
    }
}
