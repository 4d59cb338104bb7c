//! Inventory: a pluggable stock checker; the default always allows.

use async_trait::async_trait;

use crate::error::BoxError;
use crate::product::Product;

/// Checks and reserves stock.
///
/// The cart calls [`check`](InventoryChecker::check) only for `add` with
/// [`AddOptions::check_inventory`](crate::AddOptions::check_inventory), with the quantity
/// the line would have after the add. [`reserve`](InventoryChecker::reserve) and
/// [`release`](InventoryChecker::release) are never called by the library, `checkout`
/// included: stock reservation belongs to the app's own order flow.
///
/// ```
/// use axum_cart::{async_trait, BoxError, InventoryChecker, Product};
///
/// /// Ten of everything.
/// struct TenEach;
///
/// #[async_trait]
/// impl InventoryChecker for TenEach {
///     async fn check(&self, _: &dyn Product, quantity: i64) -> Result<bool, BoxError> {
///         Ok(quantity <= 10)
///     }
///     async fn reserve(&self, _: &dyn Product, quantity: i64) -> Result<bool, BoxError> {
///         Ok(quantity <= 10)
///     }
/// }
/// ```
#[async_trait]
pub trait InventoryChecker: Send + Sync + 'static {
    /// Whether `quantity` units of `product` are available.
    async fn check(&self, product: &dyn Product, quantity: i64) -> Result<bool, BoxError>;
    /// Takes `quantity` units out of stock; `false` if there are not enough.
    async fn reserve(&self, product: &dyn Product, quantity: i64) -> Result<bool, BoxError>;
    /// Puts reserved units back. Defaults to doing nothing and reporting success.
    async fn release(&self, _product: &dyn Product, _quantity: i64) -> Result<bool, BoxError> {
        Ok(true)
    }
}

/// The default: everything is always in stock.
#[derive(Debug, Default, Clone, Copy)]
pub struct AlwaysInStock;

#[async_trait]
impl InventoryChecker for AlwaysInStock {
    async fn check(&self, _: &dyn Product, _: i64) -> Result<bool, BoxError> {
        Ok(true)
    }
    async fn reserve(&self, _: &dyn Product, _: i64) -> Result<bool, BoxError> {
        Ok(true)
    }
}
