//! The one error type of the crate.

use rust_decimal::Decimal;

use crate::options::LineKey;
use crate::prices::LinePriceChange;
use crate::product::ProductRef;
use crate::rules::{QuantityRefusal, QuantityRule};

fn missing_line(key: &LineKey) -> String {
    if key.has_options() {
        format!(
            "Product {} with these options is not in this cart.",
            key.product()
        )
    } else {
        format!("Product {} is not in this cart.", key.product())
    }
}

/// A boxed error returned by the app's plug-ins (tax, shipping, inventory, catalogue, session).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong with a cart.
///
/// Messages say what was wrong and with which value; the ones the original django-cart
/// pins down (for example `"Quantity must be at least 1."`) are kept word for word.
/// Over HTTP, [`http_status`](crate::http_status) gives the status code the bundled router
/// answers with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CartError {
    /// A quantity below 1 (or below 0 for `update`), or above the configured maximum.
    #[error("{0}")]
    InvalidQuantity(String),
    /// A unit price that is negative, too large, or has more than two decimal places.
    #[error("{0}")]
    InvalidPrice(String),
    /// A product reference that cannot be stored (empty kind, bad characters, negative id).
    #[error("{0}")]
    InvalidProduct(String),
    /// `update` or `remove` of a line that is not in the cart.
    #[error("{}", missing_line(.0))]
    ItemDoesNotExist(LineKey),
    /// Line options that are malformed (bad name, too long, too many) or that the product
    /// does not take ([`LineOptions::check`](crate::LineOptions::check)).
    #[error("{0}")]
    InvalidOptions(String),
    /// A quantity the product's [`QuantityRule`] does not allow; [`QuantityRefusal`] says
    /// which part, and its code is the `code` of the JSON error.
    #[error("The quantity of {product} {refusal} ({rule}).")]
    QuantityRule {
        /// The product.
        product: ProductRef,
        /// Its rule.
        rule: QuantityRule,
        /// What the quantity broke.
        refusal: QuantityRefusal,
    },
    /// An add of a new line to a cart that already has the most lines it may have
    /// ([`CartsBuilder::max_lines`](crate::CartsBuilder::max_lines)).
    #[error("The cart cannot have more than {max} lines.")]
    TooManyLines {
        /// The configured maximum.
        max: usize,
    },
    /// The catalogue does not know this product.
    #[error("Product {0} does not exist.")]
    ProductNotFound(ProductRef),
    /// `validate_price` was asked for and the given price is not the product's price.
    #[error("Price mismatch: expected {expected}, got {got}.")]
    PriceMismatch {
        /// The product's current price.
        expected: Decimal,
        /// The price the caller gave.
        got: Decimal,
    },
    /// The inventory checker refused the quantity.
    #[error("Not enough {product} stock available (requested {quantity}).")]
    InsufficientStock {
        /// The product.
        product: ProductRef,
        /// The line quantity that was asked for.
        quantity: i64,
    },
    /// A discount code refused: it does not exist, is already applied, is not valid for this
    /// cart, or (for the admin) a definition or change of a discount that is not allowed.
    /// [`DiscountRefusal`] says which.
    #[error("{0}")]
    InvalidDiscount(DiscountRefusal),
    /// Checkout of a cart whose subtotal is below the configured minimum.
    #[error("Cart total {subtotal} is below the minimum order amount of {minimum}.")]
    MinimumOrderNotMet {
        /// The cart's subtotal.
        subtotal: Decimal,
        /// The configured minimum.
        minimum: Decimal,
    },
    /// Checkout of a cart with no lines.
    #[error("Cart is empty.")]
    EmptyCart,
    /// Checkout under [`PricePolicy::Refuse`](crate::PricePolicy::Refuse) of a cart whose
    /// lines' prices are no longer the catalogue's: the changes, in line order. Nothing was
    /// checked out. Answered with 409 (`prices_changed`), the JSON body listing them as
    /// `"changes"`.
    #[error("{}", prices_changed_message(.0))]
    PricesChanged(Vec<LinePriceChange>),
    /// Checkout of a cart with products the catalogue no longer has (under every
    /// [`PricePolicy`](crate::PricePolicy)), in line order. Nothing was checked out.
    /// Answered with 409 (`product_unavailable`), the JSON body listing them as `"products"`.
    #[error("{}", unavailable_message(.0))]
    ProductUnavailable(Vec<ProductRef>),
    /// A change to a cart that has been checked out.
    #[error("This cart has been checked out and can no longer be changed.")]
    CheckedOut,
    /// A change to the lines or discount of a cart frozen for its payment
    /// ([`Cart::freeze`](crate::Cart::freeze)). Answered with 409.
    #[error("This cart is frozen while its payment runs; unfreeze it to change it.")]
    CartFrozen,
    /// A conditional change ([`Cart::if_version`](crate::Cart::if_version), or a request
    /// with `If-Match`) of a cart that is no longer at the version it named: another change
    /// came first. Nothing was written. Answered with 412 (`version_mismatch`); the bundled
    /// routes' JSON body carries the cart as it now is as `"cart"`.
    ///
    /// ```
    /// use axum_cart::CartError;
    /// let err = CartError::VersionMismatch { current: 7 };
    /// assert_eq!(err.code(), "version_mismatch");
    /// ```
    #[error("The cart has changed since you saw it (it is now at version {current}): review it and try again.")]
    VersionMismatch {
        /// The cart's version now.
        current: u64,
    },
    /// Another request made with the same `Idempotency-Key` is still being processed, or
    /// took the key over from this one (which ran longer than the takeover time). Nothing
    /// was written. Answered with 409 (`idempotency_key_in_flight`) and `Retry-After: 1`.
    #[error(
        "A request with this Idempotency-Key is still being processed: try again in a moment."
    )]
    IdempotencyKeyInFlight,
    /// `merge` of a cart into itself.
    #[error("Cannot merge a cart with itself.")]
    MergeIntoSelf,
    /// Input that is not valid as a whole: a serialised cart payload, a merge strategy
    /// name, a batch that is too large.
    #[error("{0}")]
    InvalidPayload(String),
    /// The session is not set up: the request has no session for the cart (for example no
    /// `SessionManagerLayer` outside [`CartLayer`](crate::CartLayer)). Answered with 500.
    #[error("Session error: {0}")]
    Session(String),
    /// The session store failed or did not answer in time while reading or writing the
    /// cart id. Nothing was left behind: a cart row created for the failed write is removed
    /// again. Answered with 503 and `Retry-After`.
    #[error("The session store is unavailable: {0}")]
    SessionUnavailable(#[source] BoxError),
    /// A plug-in (tax, shipping, inventory, catalogue, checkout hook) failed.
    #[error("The {plugin} failed: {source}")]
    Plugin {
        /// Which plug-in.
        plugin: &'static str,
        /// What it reported.
        #[source]
        source: BoxError,
    },
    /// The database could not be reached in time (pool timeout, connection refused).
    #[error("The cart database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database error.
    #[error("Cart database error: {0}")]
    Database(#[source] sqlx::Error),
    /// The database kept reporting a deadlock or serialisation failure: the change was
    /// rolled back and run again `attempts` times, and nothing was written.
    #[error("The cart database stayed busy after {attempts} attempts: {source}")]
    Contention {
        /// How many times the change was run.
        attempts: u32,
        /// The last failure.
        #[source]
        source: sqlx::Error,
    },
    /// A database URL this build cannot open: an unknown scheme, or a backend whose cargo
    /// feature (`sqlite`, `postgres`, `mysql`) is not enabled.
    #[error("{0}")]
    UnsupportedDatabase(String),
    /// Running the schema migrations failed.
    #[error("Cart migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for CartError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                CartError::Unavailable(err)
            }
            // The server refused a new connection: too many connections.
            sqlx::Error::Database(ref db) if too_many_connections(db.as_ref()) => {
                CartError::Unavailable(err)
            }
            other => CartError::Database(other),
        }
    }
}

impl CartError {
    /// A stable snake_case name of the variant, used as `"code"` in JSON error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            CartError::InvalidQuantity(_) => "invalid_quantity",
            CartError::InvalidPrice(_) => "invalid_price",
            CartError::InvalidProduct(_) => "invalid_product",
            CartError::ItemDoesNotExist(_) => "item_does_not_exist",
            CartError::InvalidOptions(_) => "invalid_options",
            CartError::QuantityRule { refusal, .. } => refusal.code(),
            CartError::TooManyLines { .. } => "too_many_lines",
            CartError::ProductNotFound(_) => "product_not_found",
            CartError::PriceMismatch { .. } => "price_mismatch",
            CartError::InsufficientStock { .. } => "insufficient_stock",
            CartError::InvalidDiscount(_) => "invalid_discount",
            CartError::MinimumOrderNotMet { .. } => "minimum_order_not_met",
            CartError::EmptyCart => "empty_cart",
            CartError::PricesChanged(_) => "prices_changed",
            CartError::ProductUnavailable(_) => "product_unavailable",
            CartError::CheckedOut => "checked_out",
            CartError::CartFrozen => "cart_frozen",
            CartError::VersionMismatch { .. } => "version_mismatch",
            CartError::IdempotencyKeyInFlight => "idempotency_key_in_flight",
            CartError::MergeIntoSelf => "merge_into_self",
            CartError::InvalidPayload(_) => "invalid_payload",
            CartError::Session(_) => "session_error",
            CartError::SessionUnavailable(_) => "session_unavailable",
            CartError::Plugin { .. } => "plugin_error",
            CartError::Unavailable(_) => "database_unavailable",
            CartError::Contention { .. } => "database_busy",
            CartError::UnsupportedDatabase(_) => "unsupported_database",
            CartError::Database(_) => "database_error",
            CartError::Migrate(_) => "migration_error",
        }
    }

    /// A deadlock or serialisation failure: the database rolled the statement back and
    /// running it again is the documented remedy (SQLSTATE 40001 / 40P01).
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, CartError::Database(err) if is_transient(err))
    }

    /// The one retry policy of the writes: after failed attempt number `attempt` (from 1),
    /// `Ok` when a transient failure should be run again, the error otherwise; a transient
    /// failure of the last attempt becomes [`CartError::Contention`].
    pub(crate) fn retry_after(self, attempt: u32) -> Result<(), CartError> {
        match self {
            CartError::Database(source) if is_transient(&source) => {
                if attempt < WRITE_ATTEMPTS {
                    Ok(())
                } else {
                    Err(CartError::Contention {
                        attempts: attempt,
                        source,
                    })
                }
            }
            other => Err(other),
        }
    }

    /// A failure of the session adapter: a set-up error of the layer stays a set-up error,
    /// anything else is the store being unavailable.
    pub(crate) fn session(err: BoxError) -> Self {
        match err.downcast::<SessionSetupError>() {
            Ok(setup) => CartError::Session(setup.0),
            Err(other) => CartError::SessionUnavailable(other),
        }
    }

    pub(crate) fn plugin(plugin: &'static str, source: BoxError) -> Self {
        CartError::Plugin { plugin, source }
    }
}

fn prices_changed_message(changes: &[LinePriceChange]) -> String {
    let listed: Vec<String> = changes
        .iter()
        .map(|c| format!("{} from {} to {}", c.name, c.change.from, c.change.to))
        .collect();
    format!(
        "Prices changed since they were added to the cart: {}. Review the cart before checking out.",
        listed.join("; ")
    )
}

fn unavailable_message(products: &[ProductRef]) -> String {
    let listed: Vec<String> = products.iter().map(ProductRef::to_string).collect();
    match listed.as_slice() {
        [one] => {
            format!("Product {one} is no longer available: remove it from the cart to check out.")
        }
        _ => format!(
            "Products {} are no longer available: remove them from the cart to check out.",
            listed.join(", ")
        ),
    }
}

/// How many times a write runs in all when the database reports a deadlock or
/// serialisation failure.
pub(crate) const WRITE_ATTEMPTS: u32 = 4;

/// Runs `op` under the one retry policy of the writes ([`CartError::retry_after`]): a
/// deadlock or serialisation failure runs it again, up to [`WRITE_ATTEMPTS`] times in all.
pub(crate) async fn retrying<T, F, Fut>(mut op: F) -> Result<T, CartError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CartError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Err(e) if e.is_transient() => e.retry_after(attempt)?,
            other => return other,
        }
    }
}

/// PostgreSQL's SQLSTATE 53300; MySQL's errors 1040 (the server's limit), 1203 and 1226 (a
/// user's), recognised by their number (1040 comes without a SQLSTATE).
fn too_many_connections(db: &dyn sqlx::error::DatabaseError) -> bool {
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return matches!(my.number(), 1040 | 1203 | 1226);
    }
    db.code().as_deref() == Some("53300")
}

fn is_transient(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db)
        if matches!(db.code().as_deref(), Some("40001" | "40P01")))
}

/// Why a discount code was refused, or an admin change of a discount was not allowed.
///
/// The messages (its `Display`) are the original django-cart's where it has them.
///
/// ```
/// use axum_cart::{CartError, DiscountRefusal};
/// let err = CartError::InvalidDiscount(DiscountRefusal::Expired);
/// assert_eq!(err.to_string(), "This discount has expired.");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscountRefusal {
    /// No discount has this code (the code as shown to the visitor).
    #[error("Discount code '{0}' does not exist.")]
    NotFound(String),
    /// The cart already has a discount.
    #[error("A discount is already applied to this cart.")]
    AlreadyApplied,
    /// The discount was deactivated.
    #[error("This discount is no longer active.")]
    Inactive,
    /// The discount reached its maximum number of uses.
    #[error("This discount has reached its maximum number of uses.")]
    UsedUp,
    /// The discount's validity window has not started.
    #[error("This discount is not yet valid.")]
    NotYetValid,
    /// The discount's validity window is over.
    #[error("This discount has expired.")]
    Expired,
    /// The cart's subtotal is below the discount's minimum cart value.
    #[error("Minimum cart value of {0} required.")]
    BelowMinimum(Decimal),
    /// Creating a discount whose code another discount has.
    #[error("Discount code '{0}' already exists.")]
    CodeTaken(String),
    /// Lowering a discount's maximum uses below the uses it already has.
    #[error("Maximum uses cannot be below the {uses} uses discount '{code}' already has.")]
    MaxUsesBelowUses {
        /// The discount's code.
        code: String,
        /// The uses it has.
        uses: i64,
    },
    /// Changing the type or value of a discount that has been used at checkout.
    #[error(
        "Discount '{0}' has been used at checkout, so its type and value can no longer change \
         (placed orders keep them). Create a new code instead."
    )]
    TermsFixed(String),
    /// Deleting a discount that has been used at checkout.
    #[error(
        "Discount '{0}' has been used at checkout and cannot be deleted (placed orders keep \
         it); deactivate it instead."
    )]
    InUse(String),
    /// A discount definition that is not valid (its code, value, bounds or dates), with
    /// what is wrong.
    #[error("{0}")]
    Invalid(String),
}

/// The request has no session the cart can use: a set-up error of the app.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct SessionSetupError(pub(crate) String);

/// A session store that did not answer within the layer's session timeout.
#[cfg(feature = "http")]
#[derive(Debug, thiserror::Error)]
#[error("the session store did not answer within {0:?}")]
pub(crate) struct SessionTimeout(pub(crate) std::time::Duration);
