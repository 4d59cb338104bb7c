//! [`CartDetails`]: the cart as the page and the JSON answers show it.

use askama::Template;
use rust_decimal::Decimal;

use crate::{Cart, CartBadge, CartError, LineOptions, QuantityRule};

/// One line of [`CartDetails`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CartItem {
    /// The line's stable key ([`LineKey`](crate::LineKey)): what
    /// `POST /cart/lines/{line}/update` and `/remove` take.
    pub line: String,
    /// The product kind.
    pub kind: String,
    /// The product id.
    pub id: i64,
    /// The line's options, e.g. `{"grind": "espresso"}` (`{}` for none).
    pub options: LineOptions,
    /// How many units the line may hold, from the catalogue's product (no rule when the
    /// catalogue does not have it): `{"min": 1, "max": 20, "step": 1}`, `max` `null` for
    /// no maximum but the cart's.
    pub quantity_rule: QuantityRule,
    /// The product's name from the catalogue (`"kind #id"` if it is gone).
    pub name: String,
    /// Units.
    pub quantity: i64,
    /// Price of one unit.
    #[serde(with = "rust_decimal::serde::str")]
    pub unit_price: Decimal,
    /// quantity × unit_price.
    #[serde(with = "rust_decimal::serde::str")]
    pub total_price: Decimal,
}

/// Everything the cart page shows: the JSON body of the cart routes, and what a
/// replacement template receives. Money is serialised as strings with two decimals.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct CartDetails {
    /// Total units.
    pub count: i64,
    /// Distinct products.
    pub unique_count: usize,
    /// Whether there are no lines.
    pub is_empty: bool,
    /// Whether the cart has been checked out.
    pub checked_out: bool,
    /// The lines, in the order they were added.
    pub items: Vec<CartItem>,
    /// Σ quantity × unit_price.
    #[serde(with = "rust_decimal::serde::str")]
    pub subtotal: Decimal,
    /// The applied discount code.
    pub discount_code: Option<String>,
    /// What the discount takes off.
    #[serde(with = "rust_decimal::serde::str")]
    pub discount: Decimal,
    /// Tax.
    #[serde(with = "rust_decimal::serde::str")]
    pub tax: Decimal,
    /// Shipping.
    #[serde(with = "rust_decimal::serde::str")]
    pub shipping: Decimal,
    /// subtotal − discount + tax + shipping.
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    /// The configured currency symbol (not serialised).
    #[serde(skip)]
    pub currency_symbol: String,
    /// The cart page's path, without a trailing slash; the actions are below it, e.g.
    /// `{cart_url}/checkout` (not serialised).
    #[serde(skip)]
    pub cart_url: String,
}

impl CartDetails {
    /// Reads a cart's figures and lines (with product names from the catalogue): what an
    /// app's own cart page shows. The figures and lines come from one statement (the
    /// bundled page's whole budget), the names from one catalogue lookup.
    ///
    /// ```
    /// use askama::Template;
    /// use axum::http::StatusCode;
    /// use axum::response::{Html, IntoResponse, Response};
    /// use axum_cart::{Cart, CartDetails, CartError};
    ///
    /// #[derive(Template)]
    /// #[template(
    ///     source = "{% for item in cart.items %}<p>{{ item.quantity }} × {{ item.name }}</p>{% endfor %}\
    ///               <p>Total {{ cart.currency_symbol }}{{ cart.total }}</p>",
    ///     ext = "html"
    /// )]
    /// struct MyCartPage {
    ///     cart: CartDetails,
    /// }
    ///
    /// async fn my_cart_page(cart: Cart) -> Result<Response, CartError> {
    ///     let page = MyCartPage { cart: CartDetails::load(&cart).await? };
    ///     Ok(match page.render() {
    ///         Ok(html) => Html(html).into_response(),
    ///         Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    ///     })
    /// }
    /// ```
    pub async fn load(cart: &Cart) -> Result<CartDetails, CartError> {
        let totals = cart.totals().await?;
        let lines = cart.items_with_products().await?;
        let config = cart.carts().config();
        let items = lines
            .iter()
            .map(|l| CartItem {
                line: l.line.key().to_string(),
                kind: l.line.product.kind().to_owned(),
                id: l.line.product.id(),
                options: l.line.options.clone(),
                quantity_rule: l
                    .product
                    .as_ref()
                    .map_or_else(QuantityRule::new, |p| p.quantity_rule()),
                name: l.name(),
                quantity: l.line.quantity,
                unit_price: l.line.unit_price,
                total_price: l.line.total_price(),
            })
            .collect::<Vec<_>>();
        Ok(CartDetails {
            count: totals.count,
            unique_count: totals.unique_count,
            is_empty: items.is_empty(),
            checked_out: totals.checked_out,
            items,
            subtotal: totals.subtotal,
            discount_code: totals.discount_code,
            discount: totals.discount,
            tax: totals.tax,
            shipping: totals.shipping,
            total: totals.total,
            currency_symbol: config.currency_symbol.clone(),
            cart_url: crate::config::normal_cart_url(&config.cart_url),
        })
    }

    /// The header badge of this cart (a checked-out cart shows as empty).
    pub fn badge(&self) -> CartBadge {
        let (count, subtotal) = if self.checked_out {
            (0, Decimal::ZERO)
        } else {
            (self.count, self.subtotal)
        };
        CartBadge::new(
            count,
            subtotal,
            self.currency_symbol.clone(),
            self.cart_url.clone(),
        )
    }
}

/// The bundled page: `templates/cart.html`.
#[derive(Template)]
#[template(path = "cart.html")]
pub(super) struct CartPage<'a> {
    pub(super) cart: &'a CartDetails,
}
