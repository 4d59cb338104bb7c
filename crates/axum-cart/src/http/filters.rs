//! askama filters: django-cart's template tags for any askama template of the app.
//!
//! askama filters are synchronous, so they read a [`CartBadge`]: a small value with the
//! figures a page header shows, taken from the request with the `CartBadge` extractor (no
//! query and no row for a visitor without a cart) or from a loaded [`Cart`] with
//! [`CartBadge::from_cart`]. The template receives the badge and pipes it through the
//! filters. Bring them into scope with `use axum_cart::filters;` next to the template
//! struct (or `pub use axum_cart::filters::*;` inside the app's own `mod filters`).
//!
//! | django-cart tag | askama |
//! |---|---|
//! | `{% cart_item_count %}` | `{{ badge\|cart_item_count }}` |
//! | `{% cart_summary %}` | `{{ badge\|cart_summary }}` |
//! | `{% cart_is_empty %}` | `{{ badge\|cart_is_empty }}` (or `{% if badge\|cart_is_empty %}`) |
//! | `{% cart_link "Cart" "nav-btn" %}` | `{{ badge\|cart_link("Cart", "nav-btn") }}` |
//!
//! ```
//! use askama::Template;
//! use axum_cart::{filters, CartBadge};
//!
//! #[derive(Template)]
//! #[template(
//!     source = r#"<nav>{{ badge|cart_link("Cart", "nav-btn") }} {{ badge|cart_item_count }} {{ badge|cart_summary }}</nav>"#,
//!     ext = "html"
//! )]
//! struct Header<'a> {
//!     badge: &'a CartBadge,
//! }
//!
//! let badge = CartBadge::new(2, rust_decimal::Decimal::new(1998, 2), "$", "/cart");
//! assert_eq!(
//!     Header { badge: &badge }.render().unwrap(),
//!     r#"<nav><a href="/cart" class="nav-btn">Cart</a> 2 $19.98</nav>"#
//! );
//! ```
//!
//! [`Cart`]: crate::Cart

use askama::filters::Safe;
use askama::Template;
use rust_decimal::Decimal;

use crate::money;
use crate::{Cart, CartConfig, CartError};

/// What a page header shows about the visitor's cart: units, subtotal, and where the cart
/// page is. The input of the [askama filters](crate::filters).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CartBadge {
    /// Total units (`cart_item_count`); 0 without a cart or for a checked-out cart.
    pub count: i64,
    /// Σ quantity × unit_price before discount, tax and shipping (`cart_summary`).
    pub subtotal: Decimal,
    /// The currency symbol `cart_summary` prints.
    pub currency_symbol: String,
    /// Where `cart_link` points.
    pub cart_url: String,
}

impl CartBadge {
    /// A badge from its figures.
    pub fn new(
        count: i64,
        subtotal: Decimal,
        currency_symbol: impl Into<String>,
        cart_url: impl Into<String>,
    ) -> Self {
        CartBadge {
            count,
            subtotal: money::cents(subtotal),
            currency_symbol: currency_symbol.into(),
            cart_url: cart_url.into(),
        }
    }

    /// The badge of a visitor with no cart, with the configured currency and cart URL.
    pub fn empty(config: &CartConfig) -> Self {
        CartBadge::new(
            0,
            Decimal::ZERO,
            config.currency_symbol.clone(),
            link_url(config),
        )
    }

    /// The badge of a cart. Costs one query if the cart has not been read yet (none for a
    /// cart with no row); a checked-out cart shows as empty.
    pub async fn from_cart(cart: &Cart) -> Result<Self, CartError> {
        let config = cart.carts().config();
        if cart.is_checked_out().await? {
            return Ok(CartBadge::empty(config));
        }
        Ok(CartBadge::new(
            cart.count().await?,
            cart.summary().await?,
            config.currency_symbol.clone(),
            link_url(config),
        ))
    }

    /// Whether the cart has no units.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The subtotal with the currency symbol and exactly two decimals: `"$19.98"`.
    pub fn summary(&self) -> String {
        money::format(&self.currency_symbol, self.subtotal)
    }

    /// An HTML link to the cart page, label and class escaped; an empty class is left out:
    /// `<a href="/cart" class="btn">View Cart</a>`.
    pub fn link(&self, label: &str, css_class: &str) -> String {
        let link = CartLink {
            href: &self.cart_url,
            label,
            class: css_class,
        };
        link.render().unwrap_or_default()
    }
}

/// The cart link: `templates/cart_link.html`.
#[derive(Template)]
#[template(path = "cart_link.html", escape = "entities")]
struct CartLink<'a> {
    href: &'a str,
    label: &'a str,
    class: &'a str,
}

/// The cart URL links use: the configured one, `/cart` when it is blank.
fn link_url(config: &CartConfig) -> String {
    crate::config::normal_cart_url(&config.cart_url)
}

/// The escaper of the cart's own small pages (`escape = "entities"` in `askama.toml`):
/// `& < > " '` as the named entities `&amp; &lt; &gt; &quot;` and `&#x27;`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entities;

impl askama::filters::Escaper for Entities {
    fn write_escaped_str<W: std::fmt::Write>(&self, mut dest: W, text: &str) -> std::fmt::Result {
        let mut rest = 0;
        for (i, b) in text.bytes().enumerate() {
            let entity = match b {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                b'\'' => "&#x27;",
                _ => continue,
            };
            dest.write_str(&text[rest..i])?;
            dest.write_str(entity)?;
            rest = i + 1;
        }
        dest.write_str(&text[rest..])
    }
}

/// `{{ badge|cart_item_count }}`: total units in the visitor's cart (`{% cart_item_count %}`).
pub fn cart_item_count(badge: &CartBadge, _: &dyn askama::Values) -> askama::Result<i64> {
    Ok(badge.count)
}

/// `{{ badge|cart_summary }}`: the subtotal with the configured currency, exactly two
/// decimals, e.g. `$19.98` (`{% cart_summary %}`).
pub fn cart_summary(badge: &CartBadge, _: &dyn askama::Values) -> askama::Result<String> {
    Ok(badge.summary())
}

/// `{{ badge|cart_is_empty }}`: whether the visitor's cart is empty (`{% cart_is_empty %}`).
pub fn cart_is_empty(badge: &CartBadge, _: &dyn askama::Values) -> askama::Result<bool> {
    Ok(badge.is_empty())
}

/// `{{ badge|cart_link("View Cart", "btn") }}`: an `<a>` to the cart page with the label
/// and class HTML-escaped; an empty class leaves the attribute out (`{% cart_link %}`).
/// The result is marked safe, so it is not escaped twice.
pub fn cart_link(
    badge: &CartBadge,
    _: &dyn askama::Values,
    label: impl AsRef<str>,
    css_class: impl AsRef<str>,
) -> askama::Result<Safe<String>> {
    Ok(Safe(badge.link(label.as_ref(), css_class.as_ref())))
}
