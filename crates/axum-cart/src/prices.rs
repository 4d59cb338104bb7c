//! Prices that stay honest: a line keeps the unit price of its add, and these types say
//! when the catalogue's current price differs, and what checkout does about it.

use rust_decimal::Decimal;

use crate::product::ProductRef;

/// What [`Cart::checkout`](crate::Cart::checkout) does with a line whose unit price is no
/// longer the catalogue's current price; set with
/// [`CartsBuilder::checkout_prices`](crate::CartsBuilder::checkout_prices).
///
/// It applies only when a catalogue is configured
/// ([`CartsBuilder::catalog`](crate::CartsBuilder::catalog), not [`NoCatalog`](crate::NoCatalog)).
/// A product whose [`price`](crate::Product::price) is `None` keeps its line's price under
/// every policy, and a product the catalogue no longer has refuses the checkout under every
/// policy ([`CartError::ProductUnavailable`](crate::CartError::ProductUnavailable)).
///
/// ```
/// use axum_cart::PricePolicy;
/// assert_eq!(PricePolicy::default(), PricePolicy::Reprice);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PricePolicy {
    /// The default: the checked-out lines take the catalogue's current price (written to
    /// the cart's lines in the checkout's own locked transaction, so the order and the
    /// stored lines agree), and [`Order::price_changes`](crate::Order::price_changes) lists
    /// the lines that changed.
    #[default]
    Reprice,
    /// A changed price refuses the checkout with
    /// [`CartError::PricesChanged`](crate::CartError::PricesChanged), listing the changes;
    /// nothing is written. The visitor adds the product again (the bundled router's add
    /// takes the current price) to accept the new price.
    Refuse,
    /// The lines keep the prices of their adds, as without a catalogue.
    Keep,
}

/// A unit price that changed since the line was added: `from` the line's price `to` the
/// catalogue's current one. Serialised as `{"from": "12.50", "to": "13.00"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct PriceChange {
    /// The unit price the line was added at.
    #[serde(with = "rust_decimal::serde::str")]
    pub from: Decimal,
    /// The catalogue's current unit price.
    #[serde(with = "rust_decimal::serde::str")]
    pub to: Decimal,
}

impl PriceChange {
    /// A change from `from` to `to`.
    pub fn new(from: Decimal, to: Decimal) -> PriceChange {
        PriceChange { from, to }
    }

    /// Whether the price went up.
    ///
    /// ```
    /// use axum_cart::PriceChange;
    /// use rust_decimal::Decimal;
    /// assert!(PriceChange::new(Decimal::new(1250, 2), Decimal::new(1300, 2)).went_up());
    /// ```
    pub fn went_up(&self) -> bool {
        self.to > self.from
    }
}

/// One line's price change, with its product: what checkout reports in
/// [`Order::price_changes`](crate::Order::price_changes) and
/// [`CartError::PricesChanged`](crate::CartError::PricesChanged). Serialised flat:
/// `{"kind": "coffee", "id": 3, "name": "Coffee", "from": "12.50", "to": "13.00"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct LinePriceChange {
    /// The line's product.
    #[serde(flatten)]
    pub product: ProductRef,
    /// The product's name from the catalogue.
    pub name: String,
    /// The change.
    #[serde(flatten)]
    pub change: PriceChange,
}

impl LinePriceChange {
    /// The change of `product`'s line, named `name`.
    pub fn new(product: ProductRef, name: impl Into<String>, change: PriceChange) -> Self {
        LinePriceChange {
            product,
            name: name.into(),
            change,
        }
    }

    /// "The price of Coffee went up from 12.50 to 13.00 since you added it."
    pub fn message(&self) -> String {
        format!(
            "The price of {} went {} from {} to {} since you added it.",
            self.name,
            if self.change.went_up() { "up" } else { "down" },
            self.change.from,
            self.change.to
        )
    }
}
