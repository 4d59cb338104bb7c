//! Configuration: one builder for everything django-cart read from `settings.py`.
//!
//! Values are typed (a calculator is a value of a type implementing [`TaxCalculator`], not
//! a dotted path), so a misconfiguration is a compile error rather than a warning at run time.

use std::sync::Arc;

use rust_decimal::Decimal;

use crate::inventory::InventoryChecker;
use crate::prices::PricePolicy;
use crate::product::Catalog;
use crate::shipping::ShippingCalculator;
use crate::tax::TaxCalculator;
use crate::types::QUANTITY_LIMIT;

/// The settings a [`Carts`](crate::Carts) runs with. Read them back with [`Carts::config`](crate::Carts::config).
#[derive(Clone)]
#[non_exhaustive]
pub struct CartConfig {
    pub(crate) tax: Arc<dyn TaxCalculator>,
    pub(crate) shipping: Arc<dyn ShippingCalculator>,
    /// `None`: [`AlwaysInStock`], and no stock question is asked at all.
    pub(crate) inventory: Option<Arc<dyn InventoryChecker>>,
    pub(crate) catalog: Option<Arc<dyn Catalog>>,
    /// Whether `catalog` knows products (it is set, and not [`NoCatalog`](crate::NoCatalog)):
    /// only then are prices compared and products that are gone reported.
    pub(crate) catalog_knows_products: bool,
    /// The most units one line may hold (`CART_MAX_QUANTITY_PER_ITEM`); at most 1,000,000,000.
    pub max_quantity_per_item: Option<i64>,
    /// The most lines one cart may hold; 500 by default.
    pub max_lines: usize,
    /// The subtotal a cart needs to check out (`CART_MIN_ORDER_AMOUNT`).
    pub min_order_amount: Option<Decimal>,
    /// Where `cart_link` points (`CART_DETAIL_URL_NAME`); `/cart` by default.
    pub cart_url: String,
    /// The currency symbol `cart_summary` prints; `$` by default.
    pub currency_symbol: String,
    /// How long after a checkout a repeated checkout of the same session gets the placed
    /// order back (a double submit, a retry after a lost response); 15 minutes by default.
    pub checkout_replay_window: time::Duration,
    /// What checkout does with a line whose price is no longer the catalogue's
    /// ([`PricePolicy::Reprice`] by default); see
    /// [`CartsBuilder::checkout_prices`](crate::CartsBuilder::checkout_prices).
    pub checkout_prices: PricePolicy,
    /// How long a [`Cart::freeze`](crate::Cart::freeze) lasts unless it is ended sooner;
    /// 15 minutes by default.
    pub freeze_timeout: time::Duration,
}

impl std::fmt::Debug for CartConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CartConfig")
            .field("max_quantity_per_item", &self.max_quantity_per_item)
            .field("max_lines", &self.max_lines)
            .field("min_order_amount", &self.min_order_amount)
            .field("cart_url", &self.cart_url)
            .field("currency_symbol", &self.currency_symbol)
            .field("checkout_replay_window", &self.checkout_replay_window)
            .field("freeze_timeout", &self.freeze_timeout)
            .field("checkout_prices", &self.checkout_prices)
            .field("catalog", &self.catalog.is_some())
            .finish_non_exhaustive()
    }
}

/// The one normalisation of the cart page's path: trimmed, no trailing slash, `/cart` when
/// blank.
pub(crate) fn normal_cart_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.is_empty() {
        "/cart".to_owned()
    } else {
        url.to_owned()
    }
}

impl CartConfig {
    /// The effective line maximum: the configured one, else 1,000,000,000.
    pub fn line_limit(&self) -> i64 {
        self.max_quantity_per_item.unwrap_or(QUANTITY_LIMIT)
    }

    /// The configured catalogue, if any.
    pub fn catalog(&self) -> Option<&Arc<dyn Catalog>> {
        self.catalog.as_ref()
    }

    /// Whether a catalogue that knows products is configured (not [`NoCatalog`](crate::NoCatalog)).
    pub(crate) fn checks_catalog(&self) -> bool {
        self.catalog.is_some() && self.catalog_knows_products
    }
}
