//! [`CartsBuilder`]: the store plus every optional setting.

use std::sync::Arc;

use rust_decimal::Decimal;
use tokio::sync::broadcast;

use super::cache::SnapshotCache;
use super::{Carts, CartsInner};
use crate::config::{normal_cart_url, CartConfig};
use crate::inventory::InventoryChecker;
use crate::prices::PricePolicy;
use crate::product::{Catalog, NoCatalog};
use crate::shipping::{FreeShipping, ShippingCalculator};
use crate::store::Store;
use crate::tax::{NoTax, TaxCalculator};
use crate::types::{DEFAULT_MAX_LINES, QUANTITY_LIMIT};

/// Builds a [`Carts`]: the store plus every optional setting.
///
/// ```
/// # async fn demo() -> Result<(), axum_cart::CartError> {
/// use axum_cart::{Carts, Store};
/// use rust_decimal::Decimal;
///
/// let carts = Carts::builder(Store::connect("sqlite::memory:").await?)
///     .max_quantity_per_item(999)
///     .min_order_amount(Decimal::from(10))
///     .currency_symbol("€")
///     .build();
/// carts.migrate().await?;
/// # Ok(()) }
/// ```
#[must_use]
pub struct CartsBuilder {
    store: Store,
    config: CartConfig,
    event_capacity: usize,
    cache_carts: bool,
}

impl CartsBuilder {
    pub(crate) fn new(store: Store) -> Self {
        CartsBuilder {
            store,
            config: CartConfig {
                tax: Arc::new(NoTax),
                shipping: Arc::new(FreeShipping),
                inventory: None,
                catalog: None,
                catalog_knows_products: false,
                max_quantity_per_item: None,
                max_lines: DEFAULT_MAX_LINES,
                min_order_amount: None,
                cart_url: "/cart".to_owned(),
                currency_symbol: "$".to_owned(),
                checkout_replay_window: time::Duration::minutes(15),
                freeze_timeout: time::Duration::minutes(15),
                checkout_prices: PricePolicy::Reprice,
            },
            event_capacity: 1024,
            cache_carts: false,
        }
    }

    /// The tax calculator (`CART_TAX_CALCULATOR`); default [`NoTax`].
    pub fn tax_calculator(mut self, tax: impl TaxCalculator) -> Self {
        self.config.tax = Arc::new(tax);
        self
    }

    /// The shipping calculator (`CART_SHIPPING_CALCULATOR`); default [`FreeShipping`].
    pub fn shipping_calculator(mut self, shipping: impl ShippingCalculator) -> Self {
        self.config.shipping = Arc::new(shipping);
        self
    }

    /// The inventory checker (`CART_INVENTORY_CHECKER`); default
    /// [`AlwaysInStock`](crate::AlwaysInStock).
    pub fn inventory_checker(mut self, inventory: impl InventoryChecker) -> Self {
        self.config.inventory = Some(Arc::new(inventory));
        self
    }

    /// The product catalogue. With one, `items_with_products` loads products, `merge`
    /// skips lines of products that are gone, and `from_serializable` checks products and
    /// prices; the bundled router needs one to price what it adds. The cart page and
    /// checkout compare the lines' prices with it (see [`checkout_prices`](Self::checkout_prices));
    /// [`NoCatalog`] counts as no catalogue there.
    pub fn catalog(mut self, catalog: impl Catalog) -> Self {
        self.config.catalog_knows_products = !(&catalog as &dyn std::any::Any).is::<NoCatalog>();
        self.config.catalog = Some(Arc::new(catalog));
        self
    }

    /// What checkout does with a line whose unit price (the price of its add) is no longer
    /// the catalogue's current price: [`PricePolicy::Reprice`] (the default) checks it out at
    /// the current price, [`PricePolicy::Refuse`] refuses the checkout
    /// ([`CartError::PricesChanged`](crate::CartError::PricesChanged)), [`PricePolicy::Keep`]
    /// keeps the line's price. Without a [`catalog`](Self::catalog) prices are never
    /// compared and checkout keeps the lines' prices.
    ///
    /// ```
    /// # async fn demo() -> Result<(), axum_cart::CartError> {
    /// use axum_cart::{Carts, PricePolicy, Store};
    /// let carts = Carts::builder(Store::connect("sqlite::memory:").await?)
    ///     .checkout_prices(PricePolicy::Refuse)
    ///     .build();
    /// assert_eq!(carts.config().checkout_prices, PricePolicy::Refuse);
    /// # Ok(()) }
    /// ```
    pub fn checkout_prices(mut self, policy: PricePolicy) -> Self {
        self.config.checkout_prices = policy;
        self
    }

    /// The most units one line may hold (`CART_MAX_QUANTITY_PER_ITEM`).
    ///
    /// # Panics
    /// If `max` is 0 or above 1,000,000,000: a configuration error, found at start-up.
    pub fn max_quantity_per_item(mut self, max: u32) -> Self {
        let max = i64::from(max);
        assert!(
            (1..=QUANTITY_LIMIT).contains(&max),
            "max_quantity_per_item must be between 1 and {QUANTITY_LIMIT}, got {max}"
        );
        self.config.max_quantity_per_item = Some(max);
        self
    }

    /// The most lines one cart may hold (500 by default): an add of a new line to a full
    /// cart is refused with [`CartError::TooManyLines`](crate::CartError::TooManyLines), and
    /// so is a bulk add or restore that would pass it. A merge at login never drops a line,
    /// so it may leave a cart above it.
    ///
    /// # Panics
    /// If `max` is 0 or above 100,000: a configuration error, found at start-up.
    pub fn max_lines(mut self, max: usize) -> Self {
        assert!(
            (1..=100_000).contains(&max),
            "max_lines must be between 1 and 100000, got {max}"
        );
        self.config.max_lines = max;
        self
    }

    /// The subtotal needed to check out (`CART_MIN_ORDER_AMOUNT`).
    ///
    /// It is rounded half-up to cents.
    ///
    /// # Panics
    /// If `amount` is negative or above 9,999,999,999,999,999.99 (the largest amount the
    /// schema's money columns hold): a configuration error, found at start-up.
    pub fn min_order_amount(mut self, amount: Decimal) -> Self {
        match crate::money::order_minimum(crate::money::cents(amount)) {
            Ok(amount) => self.config.min_order_amount = Some(amount),
            Err(e) => panic!("min_order_amount: {e}"),
        }
        self
    }

    /// The cart page's path, where `cart_link` points and the routes redirect to; default
    /// `/cart`. Surrounding spaces and a trailing slash are dropped (`"/shop/cart/"` is
    /// `/shop/cart`, the path the router serves), and a blank URL means `/cart`.
    pub fn cart_url(mut self, url: impl Into<String>) -> Self {
        self.config.cart_url = normal_cart_url(&url.into());
        self
    }

    /// The currency symbol of `cart_summary`; default `$`.
    pub fn currency_symbol(mut self, symbol: impl Into<String>) -> Self {
        self.config.currency_symbol = symbol.into();
        self
    }

    /// How long after a checkout the session's repeated checkout gets the placed order back
    /// (`placed_now == false`) instead of "Cart is empty."; default 15 minutes. Negative
    /// values count as zero (no replay).
    pub fn checkout_replay_window(mut self, window: time::Duration) -> Self {
        self.config.checkout_replay_window = window.max(time::Duration::ZERO);
        self
    }

    /// How long a freeze ([`Cart::freeze`](crate::Cart::freeze)) lasts unless it is ended
    /// sooner (default 15 minutes; clamped to between 1 second and 1 day): a payment that
    /// never comes back does not lock the cart for good.
    pub fn freeze_timeout(mut self, timeout: time::Duration) -> Self {
        self.config.freeze_timeout = timeout.clamp(time::Duration::SECOND, time::Duration::DAY);
        self
    }

    /// How many events a slow subscriber may fall behind before it misses some; default 1024.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// Keeps every cart as last read in memory, shared by all the [`Cart`](crate::Cart)
    /// values of this `Carts`, so a page view of an unchanged cart costs no query. Every
    /// change made through this `Carts` (or its clones) drops what it touched.
    ///
    /// **Only for a single process that makes every change through this `Carts`**: a change
    /// made by another process (another app server, the `cart` command) is not seen until
    /// this process changes the same cart. Off by default; the demo shop turns it on for its
    /// single-process SQLite set-up.
    pub fn cache_carts(mut self, on: bool) -> Self {
        self.cache_carts = on;
        self
    }

    /// The finished [`Carts`].
    pub fn build(self) -> Carts {
        let (events, _) = broadcast::channel(self.event_capacity);
        Carts {
            inner: Arc::new(CartsInner {
                store: self.store,
                config: self.config,
                events,
                cache: self.cache_carts.then(SnapshotCache::default),
                outbox: Default::default(),
            }),
        }
    }
}
