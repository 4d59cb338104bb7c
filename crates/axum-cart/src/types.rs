//! The value types: ids, lines, views, totals, orders, merge settings.

use std::fmt;
use std::sync::Arc;

use rust_decimal::Decimal;

use crate::error::CartError;
use crate::money;
use crate::options::{LineKey, LineOptions};
use crate::prices::{LinePriceChange, PriceChange};
use crate::product::{Product, ProductRef};

/// The most units one line can ever hold, whatever the configuration.
pub const QUANTITY_LIMIT: i64 = 1_000_000_000;

/// The most lines a cart may hold unless configured otherwise
/// ([`CartsBuilder::max_lines`](crate::CartsBuilder::max_lines)).
pub const DEFAULT_MAX_LINES: usize = 500;

/// The most lines one `add_bulk` or restored payload may carry.
pub const BATCH_LIMIT: usize = 1000;

/// A cart's database id. It never appears in URLs or responses of the bundled router.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct CartId(i64);

impl CartId {
    /// The integer value.
    pub fn get(self) -> i64 {
        self.0
    }

    /// A cart id from its integer value; `None` unless positive.
    pub fn new(id: i64) -> Option<CartId> {
        (id > 0).then_some(CartId(id))
    }

    /// Parses a stored id: a plain positive ASCII decimal integer, nothing else.
    pub fn parse(text: &str) -> Option<CartId> {
        crate::product::parse_plain_int(text).and_then(CartId::new)
    }

    pub(crate) fn from_db(id: i64) -> CartId {
        CartId(id)
    }
}

impl fmt::Debug for CartId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CartId({})", self.0)
    }
}

impl fmt::Display for CartId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One line of a cart: a product with its options, how many, at what unit price.
///
/// A line is identified by its product and its options ([`key`](Line::key)): the same
/// product in two sizes is two lines.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Line {
    /// The product.
    pub product: ProductRef,
    /// The line's options; empty for most lines.
    pub options: LineOptions,
    /// Units, at least 1.
    pub quantity: i64,
    /// Price of one unit, two decimal places.
    #[serde(with = "rust_decimal::serde::str")]
    pub unit_price: Decimal,
}

impl Line {
    /// A line. Nothing is checked here; the cart checks lines when they are written.
    pub fn new(product: ProductRef, quantity: i64, unit_price: Decimal) -> Line {
        Line {
            product,
            options: LineOptions::new(),
            quantity,
            unit_price,
        }
    }

    /// The same line with these options.
    #[must_use]
    pub fn with_options(mut self, options: LineOptions) -> Line {
        self.options = options;
        self
    }

    /// The line's stable key: its product and options.
    pub fn key(&self) -> LineKey {
        LineKey::new(self.product.clone(), &self.options)
    }

    /// The text of [`key`](Self::key), built without the product's copy (a page renders one
    /// per line).
    pub(crate) fn key_string(&self) -> String {
        use std::fmt::Write as _;
        let digest = self.options.digest();
        let kind = self.product.kind();
        let mut key = String::with_capacity(kind.len() + 21 + digest.len());
        key.push_str(kind);
        key.push(':');
        let _ = write!(key, "{}", self.product.id());
        if !digest.is_empty() {
            key.push(':');
            key.push_str(&digest);
        }
        key
    }

    /// Whether `other` is the same line (same product and options), whatever its quantity.
    pub(crate) fn same_line(&self, other: &Line) -> bool {
        self.product == other.product && self.options == other.options
    }

    /// `quantity × unit_price`, two decimal places.
    pub fn total_price(&self) -> Decimal {
        money::cents(Decimal::from(self.quantity) * self.unit_price)
    }
}

/// A line with its product loaded from the catalogue.
#[derive(Clone)]
pub struct LoadedLine {
    /// The line.
    pub line: Line,
    /// The product, or `None` if the catalogue no longer has it (or no catalogue is set).
    pub product: Option<Arc<dyn Product>>,
}

impl LoadedLine {
    /// The product's name, or `"kind #id"` when the product is gone.
    pub fn name(&self) -> String {
        match &self.product {
            Some(p) => p.name(),
            None => format!("{} #{}", self.line.product.kind(), self.line.product.id()),
        }
    }

    /// How the line's unit price (the price of its add) differs from the product's current
    /// price in the catalogue, rounded to cents; `None` when they agree, when the product
    /// has no price, or when it is gone. This is the fact alone: what checkout does about it
    /// is the [`PricePolicy`](crate::PricePolicy).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use axum_cart::{Line, LoadedLine, Product, ProductRef};
    /// use rust_decimal::Decimal;
    ///
    /// struct Coffee;
    /// impl Product for Coffee {
    ///     fn kind(&self) -> &str { "coffee" }
    ///     fn id(&self) -> i64 { 1 }
    ///     fn price(&self) -> Option<Decimal> { Some(Decimal::new(1300, 2)) }
    /// }
    ///
    /// let line = Line::new(ProductRef::new("coffee", 1).unwrap(), 1, Decimal::new(1250, 2));
    /// let loaded = LoadedLine { line, product: Some(Arc::new(Coffee)) };
    /// let change = loaded.price_change().unwrap();
    /// assert_eq!((change.from.to_string(), change.to.to_string()), ("12.50".into(), "13.00".into()));
    /// ```
    pub fn price_change(&self) -> Option<PriceChange> {
        crate::cart::price_change(&self.line, self.product.as_deref()?)
    }
}

impl fmt::Debug for LoadedLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedLine")
            .field("line", &self.line)
            .field("product", &self.product.as_ref().map(|p| p.name()))
            .finish()
    }
}

/// What a tax or shipping calculator sees of a cart: its lines and figures, and whose cart
/// it is (so a rule by customer can be written).
#[derive(Debug, Clone)]
pub struct CartView {
    pub(crate) lines: Arc<[Line]>,
    pub(crate) subtotal: Decimal,
    pub(crate) discount: Decimal,
    pub(crate) discount_code: Option<String>,
    pub(crate) cart_id: Option<CartId>,
    pub(crate) user_id: Option<String>,
}

impl CartView {
    /// A view of these lines with no discount: for testing a calculator.
    ///
    /// ```
    /// use axum_cart::{CartView, Line, ProductRef};
    /// use rust_decimal::Decimal;
    /// let view = CartView::from_lines(vec![Line::new(ProductRef::new("book", 1).unwrap(), 2, Decimal::new(999, 2))]);
    /// assert_eq!(view.subtotal().to_string(), "19.98");
    /// assert_eq!(view.count(), 2);
    /// ```
    pub fn from_lines(lines: Vec<Line>) -> CartView {
        let subtotal = subtotal(&lines);
        CartView {
            lines: lines.into(),
            subtotal,
            discount: money::cents(Decimal::ZERO),
            discount_code: None,
            cart_id: None,
            user_id: None,
        }
    }

    /// The same view, as the cart of `user_id`: for testing a calculator's rules by customer.
    ///
    /// ```
    /// use axum_cart::CartView;
    /// let view = CartView::from_lines(Vec::new()).for_user("b2b-17");
    /// assert_eq!(view.user_id(), Some("b2b-17"));
    /// assert_eq!(view.cart_id(), None);
    /// ```
    #[must_use]
    pub fn for_user(mut self, user_id: impl Into<String>) -> CartView {
        self.user_id = Some(user_id.into());
        self
    }

    /// The cart's id; `None` for a cart with no row yet (or a view built by hand).
    pub fn cart_id(&self) -> Option<CartId> {
        self.cart_id
    }

    /// The user the cart is bound to, if any.
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// The lines.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// Σ quantity × unit_price, before any discount.
    pub fn subtotal(&self) -> Decimal {
        self.subtotal
    }

    /// The discount currently taken off (0.00 if none or no longer valid).
    pub fn discount(&self) -> Decimal {
        self.discount
    }

    /// The applied discount code.
    pub fn discount_code(&self) -> Option<&str> {
        self.discount_code.as_deref()
    }

    /// Total units.
    pub fn count(&self) -> i64 {
        self.lines.iter().map(|l| l.quantity).sum()
    }
}

pub(crate) fn subtotal(lines: &[Line]) -> Decimal {
    money::cents(
        lines
            .iter()
            .map(|l| Decimal::from(l.quantity) * l.unit_price)
            .sum(),
    )
}

/// Every figure of a cart at once, for a page or a JSON body.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Totals {
    /// Total units.
    pub count: i64,
    /// Distinct products.
    pub unique_count: usize,
    /// Σ quantity × unit_price.
    #[serde(with = "rust_decimal::serde::str")]
    pub subtotal: Decimal,
    /// The applied discount code.
    pub discount_code: Option<String>,
    /// The amount the discount takes off.
    #[serde(with = "rust_decimal::serde::str")]
    pub discount: Decimal,
    /// Tax.
    #[serde(with = "rust_decimal::serde::str")]
    pub tax: Decimal,
    /// Shipping.
    #[serde(with = "rust_decimal::serde::str")]
    pub shipping: Decimal,
    /// subtotal − discount + tax + shipping, never below 0.00.
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    /// Whether the cart has been checked out.
    pub checked_out: bool,
}

/// The result of a checkout: what was ordered, at which prices.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Order {
    /// The checked-out cart: a stable key for the app's own order row.
    pub cart_id: CartId,
    /// The lines as checked out.
    pub lines: Vec<Line>,
    /// The figures as checked out.
    pub totals: Totals,
    /// `false` when the cart had already been checked out (a retry): nothing changed.
    pub placed_now: bool,
    /// The lines this checkout moved to the catalogue's current price
    /// ([`PricePolicy::Reprice`](crate::PricePolicy::Reprice)), in line order: `from` the
    /// price of the add `to` the price in [`lines`](Self::lines). Empty when no price
    /// changed, and for a repeated checkout (`placed_now == false`).
    pub price_changes: Vec<LinePriceChange>,
}

/// How `merge` combines a product that is in both carts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MergeStrategy {
    /// old + new (the default).
    #[default]
    Add,
    /// new.
    Replace,
    /// max(old, new).
    KeepHigher,
}

impl std::str::FromStr for MergeStrategy {
    type Err = CartError;
    fn from_str(s: &str) -> Result<Self, CartError> {
        match s {
            "add" => Ok(MergeStrategy::Add),
            "replace" => Ok(MergeStrategy::Replace),
            "keep_higher" => Ok(MergeStrategy::KeepHigher),
            other => Err(CartError::InvalidPayload(format!(
                "Invalid merge strategy '{other}'. Must be 'add', 'replace', or 'keep_higher'."
            ))),
        }
    }
}

/// What `merge` (or `login`) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MergeReport {
    /// Lines written into the target.
    pub merged: usize,
    /// Source lines whose product the catalogue does not know (any more, or not yet: a
    /// catalogue still loading). They are merged all the same, never dropped, and listed
    /// here (and logged) so the app can look into them.
    pub unknown_products: Vec<ProductRef>,
    /// Whether the source's discount moved to the target.
    pub discount_moved: bool,
}

/// Options of [`Cart::add_with`](crate::Cart::add_with).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct AddOptions {
    pub(crate) validate_price: bool,
    pub(crate) check_inventory: bool,
    pub(crate) options: LineOptions,
}

impl AddOptions {
    /// No checks (the default of [`Cart::add`](crate::Cart::add)).
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuse a unit price that differs from [`Product::price`] ([`CartError::PriceMismatch`]).
    pub fn validate_price(mut self) -> Self {
        self.validate_price = true;
        self
    }

    /// Ask the inventory checker for the line's resulting quantity first
    /// ([`CartError::InsufficientStock`]).
    pub fn check_inventory(mut self) -> Self {
        self.check_inventory = true;
        self
    }

    /// The line's options: an add with options is its own line, checked against
    /// [`Product::options`] ([`CartError::InvalidOptions`]); with `validate_price`, the
    /// expected price includes what the options add.
    ///
    /// ```
    /// use axum_cart::{AddOptions, LineOptions};
    /// let espresso = LineOptions::from_pairs([("grind", "espresso")]).unwrap();
    /// let options = AddOptions::new().validate_price().options(espresso);
    /// # let _ = options;
    /// ```
    pub fn options(mut self, options: LineOptions) -> Self {
        self.options = options;
        self
    }
}
