//! [`CartDetails`]: the cart as the page and the JSON answers show it.

use askama::Template;
use rust_decimal::Decimal;

use crate::{
    Cart, CartBadge, CartError, LineOptions, LinePriceChange, Order, PriceChange, PricePolicy,
    QuantityRule,
};

/// One line of [`CartDetails`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
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
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
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
    /// How the catalogue's current price differs from `unit_price` (the price of the add):
    /// `{"from": "12.50", "to": "13.00"}`, or `null` when it does not (or the product has no
    /// price, is gone, or there is no catalogue). Checkout will take the new price
    /// ([`PricePolicy::Reprice`]) or refuse ([`PricePolicy::Refuse`]); under
    /// [`PricePolicy::Keep`] it is always `null`. In the answer of a checkout it is the
    /// change the checkout made (`unit_price` is then the new price).
    pub price_change: Option<PriceChange>,
}

/// Something the visitor should know before checking out, in
/// [`CartDetails::warnings`]: `{"code": "price_changed", "kind": "coffee", "id": 3,
/// "message": "The price of Coffee went up from 12.50 to 13.00 since you added it."}`.
///
/// The codes are stable: `price_changed` (the line's [`CartItem::price_change`] says how)
/// and `product_unavailable` (the catalogue no longer has the product: checkout is refused
/// until the line is removed). The message is for people and may change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[non_exhaustive]
pub struct CartWarning {
    /// `price_changed` or `product_unavailable`.
    pub code: &'static str,
    /// The line's product kind.
    pub kind: String,
    /// The line's product id.
    pub id: i64,
    /// A sentence naming the product.
    pub message: String,
}

impl CartWarning {
    fn price_changed(change: &LinePriceChange) -> CartWarning {
        CartWarning {
            code: "price_changed",
            kind: change.product.kind().to_owned(),
            id: change.product.id(),
            message: change.message(),
        }
    }
}

/// Everything the cart page shows: the JSON body of the cart routes, and what a
/// replacement template receives. Money is serialised as strings with two decimals.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
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
    /// Whether the cart is frozen for its payment ([`Cart::freeze`]): its lines and
    /// discount cannot change, and it checks out at the prices it holds.
    pub frozen: bool,
    /// The cart's version ([`Cart::version`]): every change that commits adds 1 (0 for a
    /// cart nothing has changed yet). The `ETag` of the cart routes names it, with the
    /// time the cart was created (never its id): `"<version>.<created>"`.
    pub version: u64,
    /// The lines, in the order they were added.
    pub items: Vec<CartItem>,
    /// What the visitor should know before checking out (changed prices, products gone),
    /// in line order; empty when all is well, when there is no catalogue, and for a
    /// checked-out cart (except in the answer of the checkout itself, which lists the
    /// prices it changed).
    pub warnings: Vec<CartWarning>,
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
        let frozen = !totals.checked_out && cart.is_frozen().await?;
        let version = cart.version().await?;
        // An open cart is compared with the catalogue; a placed order's prices are final,
        // and so are a frozen cart's.
        let compare = config.checks_catalog() && !totals.checked_out && !frozen;
        let mut warnings = Vec::new();
        let items = lines
            .iter()
            .map(|l| {
                let name = l.name();
                let price_change = match config.checkout_prices {
                    PricePolicy::Keep => None,
                    _ if compare => l.price_change(),
                    _ => None,
                };
                if let Some(change) = price_change {
                    warnings.push(CartWarning::price_changed(&LinePriceChange::new(
                        l.line.product.clone(),
                        name.clone(),
                        change,
                    )));
                }
                if compare && l.product.is_none() {
                    warnings.push(CartWarning {
                        code: "product_unavailable",
                        kind: l.line.product.kind().to_owned(),
                        id: l.line.product.id(),
                        message: format!(
                            "{name} is no longer available: remove it from the cart to check out."
                        ),
                    });
                }
                CartItem {
                    line: l.line.key_string(),
                    kind: l.line.product.kind().to_owned(),
                    id: l.line.product.id(),
                    options: l.line.options.clone(),
                    quantity_rule: l
                        .product
                        .as_ref()
                        .map_or_else(QuantityRule::new, |p| p.quantity_rule()),
                    name,
                    quantity: l.line.quantity,
                    unit_price: l.line.unit_price,
                    total_price: l.line.total_price(),
                    price_change,
                }
            })
            .collect::<Vec<_>>();
        Ok(CartDetails {
            count: totals.count,
            unique_count: totals.unique_count,
            is_empty: items.is_empty(),
            checked_out: totals.checked_out,
            frozen,
            version,
            items,
            warnings,
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

    /// The answer of a checkout: the checked-out cart, with the price changes the checkout
    /// made on its lines and as warnings.
    pub(super) fn with_order(mut self, order: &Order) -> CartDetails {
        for change in &order.price_changes {
            if let Some(item) = self
                .items
                .iter_mut()
                .find(|i| i.kind == change.product.kind() && i.id == change.product.id())
            {
                item.price_change = Some(change.change);
            }
            self.warnings.push(CartWarning {
                message: format!(
                    "{} The order was placed at {}.",
                    change.message(),
                    change.change.to
                ),
                ..CartWarning::price_changed(change)
            });
        }
        self
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
