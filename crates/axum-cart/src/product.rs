//! Products: how the app describes the things it sells, and how the cart loads them back.
//!
//! A cart line refers to a product by a [`ProductRef`]: a *kind* (the app's product type,
//! e.g. `"book"`) and an integer *id* (its primary key). The app's product structs stay as
//! they are; they only implement [`Product`]. A [`Catalog`] loads many products of one kind
//! in one call, which is how [`Cart::items_with_products`](crate::Cart::items_with_products)
//! avoids one query per line.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use rust_decimal::Decimal;

use crate::error::{BoxError, CartError};
use crate::options::ProductOption;
use crate::rules::QuantityRule;

/// The longest product kind the schema stores.
pub const MAX_KIND_LEN: usize = 50;

/// The identity of a product in a cart: its kind and its id, e.g. `book:42`.
///
/// ```
/// use axum_cart::ProductRef;
/// let p = ProductRef::new("book", 42).unwrap();
/// assert_eq!(p.to_string(), "book:42");
/// assert!(ProductRef::new("Book Shelf", 1).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub struct ProductRef {
    kind: String,
    id: i64,
}

impl ProductRef {
    /// A product reference. The kind is 1 to 50 characters of `a-z`, `0-9`, `_`, `-` or `.`;
    /// the id is zero or positive.
    pub fn new(kind: impl Into<String>, id: i64) -> Result<Self, CartError> {
        let kind = kind.into();
        validate_kind(&kind)?;
        if id < 0 {
            return Err(CartError::InvalidProduct(format!(
                "Product id must be zero or positive, got {id}."
            )));
        }
        Ok(ProductRef { kind, id })
    }

    /// The product kind, e.g. `"book"`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The product id within its kind.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Parses `"kind:id"`, the key format of the serialised cart.
    pub fn parse(key: &str) -> Result<Self, CartError> {
        let (kind, id) = key.split_once(':').ok_or_else(|| {
            CartError::InvalidProduct(format!("Expected '<kind>:<id>', got {key:?}."))
        })?;
        let id = parse_plain_int(id).ok_or_else(|| {
            CartError::InvalidProduct(format!(
                "Expected '<kind>:<id>' with an integer id, got {key:?}."
            ))
        })?;
        ProductRef::new(kind, id)
    }
}

/// Parses a plain ASCII decimal integer: no sign, no spaces, no underscores, no Unicode digits
/// (the original's `int()` accepted all of those).
pub(crate) fn parse_plain_int(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn validate_kind(kind: &str) -> Result<(), CartError> {
    let ok = !kind.is_empty()
        && kind.len() <= MAX_KIND_LEN
        && kind.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        });
    if ok {
        Ok(())
    } else {
        let shown: String = kind.chars().take(60).collect();
        Err(CartError::InvalidProduct(format!(
            "Product kind must be 1 to {MAX_KIND_LEN} characters of a-z, 0-9, '_', '-' or '.', got {shown:?}."
        )))
    }
}

impl fmt::Display for ProductRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
    }
}

/// Something the app sells. Implement it for the app's own product types.
///
/// Only [`kind`](Product::kind) and [`id`](Product::id) are required. [`price`](Product::price)
/// enables `validate_price` and the price-change warnings, [`name`](Product::name) is what
/// the cart page shows, [`options`](Product::options) says which line options it takes and
/// [`quantity_rule`](Product::quantity_rule) how many units a line may hold.
/// Products loaded by a [`Catalog`] come back as `Arc<dyn Product>`; get the concrete type
/// back with `(&*product as &dyn std::any::Any).downcast_ref::<Book>()`.
///
/// ```
/// use axum_cart::Product;
/// use rust_decimal::Decimal;
///
/// struct Book { id: i64, title: String, price: Decimal }
///
/// impl Product for Book {
///     fn kind(&self) -> &str { "book" }
///     fn id(&self) -> i64 { self.id }
///     fn price(&self) -> Option<Decimal> { Some(self.price) }
///     fn name(&self) -> String { self.title.clone() }
/// }
/// ```
pub trait Product: Any + Send + Sync {
    /// The product kind: the same string for every product of one type.
    fn kind(&self) -> &str;
    /// The product's id within its kind.
    fn id(&self) -> i64;
    /// The current price, if the product has one. `None` skips `validate_price`.
    fn price(&self) -> Option<Decimal> {
        None
    }
    /// A display name. Defaults to `"kind #id"`.
    fn name(&self) -> String {
        format!("{} #{}", self.kind(), self.id())
    }
    /// The options a line of this product may carry (a size, a grind, a gift note), and
    /// what each value adds to the price. Defaults to none: a line of it takes no options.
    fn options(&self) -> Vec<ProductOption> {
        Vec::new()
    }
    /// How many units a line of it may hold. Defaults to no rule (1 up to the cart's
    /// maximum).
    fn quantity_rule(&self) -> QuantityRule {
        QuantityRule::new()
    }
}

impl Product for ProductRef {
    fn kind(&self) -> &str {
        &self.kind
    }
    fn id(&self) -> i64 {
        self.id
    }
}

pub(crate) fn product_ref(p: &(impl Product + ?Sized)) -> Result<ProductRef, CartError> {
    ProductRef::new(p.kind(), p.id())
}

/// Loads the app's products, many of one kind at a time.
///
/// `items_with_products` and the bundled router call it once per distinct kind in the
/// cart. Return only the products that exist; a missing id is reported on its line, not
/// as an error. An unknown kind is simply an empty result.
///
/// ```
/// use std::sync::Arc;
/// use axum_cart::{async_trait, BoxError, Catalog, Product};
///
/// struct Coffee { id: i64 }
/// impl Product for Coffee {
///     fn kind(&self) -> &str { "coffee" }
///     fn id(&self) -> i64 { self.id }
/// }
///
/// struct Shop;
/// #[async_trait]
/// impl Catalog for Shop {
///     async fn products(&self, kind: &str, ids: &[i64]) -> Result<Vec<Arc<dyn Product>>, BoxError> {
///         Ok(match kind {
///             "coffee" => ids.iter().filter(|id| **id <= 100)
///                 .map(|id| Arc::new(Coffee { id: *id }) as Arc<dyn Product>).collect(),
///             _ => Vec::new(),
///         })
///     }
/// }
/// ```
#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// The products of `kind` among `ids`, in any order.
    async fn products(&self, kind: &str, ids: &[i64]) -> Result<Vec<Arc<dyn Product>>, BoxError>;
}

/// The default catalogue: knows no product.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCatalog;

#[async_trait]
impl Catalog for NoCatalog {
    async fn products(&self, _: &str, _: &[i64]) -> Result<Vec<Arc<dyn Product>>, BoxError> {
        Ok(Vec::new())
    }
}
