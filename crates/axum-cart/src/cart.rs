//! The cart facade: [`Carts`] (shared, one per app) and [`Cart`] (one per request).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use rust_decimal::Decimal;
use time::OffsetDateTime;
use tokio::sync::broadcast;

use crate::config::{CartConfig, CartsBuilder};
use crate::discount::{normalize_code, Discount, NewDiscount};
use crate::error::{CartError, DiscountRefusal, WRITE_ATTEMPTS};
use crate::events::CartEvent;
use crate::money;
use crate::product::{product_ref, Product, ProductRef};
use crate::serial::CartPayload;
use crate::session::{random_key, SessionAdapter};
use crate::shipping::ShippingOption;
use crate::store::{
    now_epoch, AddOutcome, CartFilter, CartRecord, Locked, Snapshot, Store, Write, WriteOutcome,
    WriteRequest,
};

/// The most units one line can ever hold, whatever the configuration.
pub const QUANTITY_LIMIT: i64 = 1_000_000_000;

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

/// One line of a cart: a product, how many, at what unit price.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Line {
    /// The product.
    pub product: ProductRef,
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
            quantity,
            unit_price,
        }
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
    lines: Arc<[Line]>,
    subtotal: Decimal,
    discount: Decimal,
    discount_code: Option<String>,
    cart_id: Option<CartId>,
    user_id: Option<String>,
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

fn subtotal(lines: &[Line]) -> Decimal {
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

/// Options of [`Cart::add_with`].
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct AddOptions {
    validate_price: bool,
    check_inventory: bool,
}

impl AddOptions {
    /// No checks (the default of [`Cart::add`]).
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
}

pub(crate) struct CartsInner {
    pub(crate) store: Store,
    pub(crate) config: CartConfig,
    pub(crate) events: broadcast::Sender<CartEvent>,
    pub(crate) cache: Option<SnapshotCache>,
}

/// Carts as last read, shared by every [`Cart`] of one [`Carts`]: see
/// [`CartsBuilder::cache_carts`]. Every change made through the `Carts` drops the entries it
/// touched; a generation counter keeps a read that raced a change from storing what it read.
#[derive(Default)]
pub(crate) struct SnapshotCache {
    map: Mutex<(u64, HashMap<CartId, Arc<Snapshot>>)>,
}

/// Entries kept before the cache starts over.
const CACHE_LIMIT: usize = 100_000;

impl SnapshotCache {
    fn lock(&self) -> MutexGuard<'_, (u64, HashMap<CartId, Arc<Snapshot>>)> {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, id: CartId) -> (u64, Option<Arc<Snapshot>>) {
        let guard = self.lock();
        (guard.0, guard.1.get(&id).cloned())
    }

    fn put(&self, id: CartId, snap: Arc<Snapshot>, generation: u64) {
        let mut guard = self.lock();
        if guard.0 == generation {
            if guard.1.len() >= CACHE_LIMIT {
                guard.1.clear();
            }
            guard.1.insert(id, snap);
        }
    }

    fn forget(&self, ids: &[CartId]) {
        let mut guard = self.lock();
        guard.0 += 1;
        for id in ids {
            guard.1.remove(id);
        }
    }

    fn clear(&self) {
        let mut guard = self.lock();
        guard.0 += 1;
        guard.1.clear();
    }
}

/// The app's cart service: store, settings and event channel. Cheap to clone; build one at
/// start-up with [`Carts::builder`] and share it.
///
/// ```
/// # async fn demo() -> Result<(), axum_cart::CartError> {
/// use axum_cart::{Carts, MemorySession, ProductRef};
/// use rust_decimal::Decimal;
///
/// let carts = Carts::connect("sqlite::memory:").await?;
/// carts.migrate().await?;
///
/// let mut cart = carts.open(MemorySession::default()).await?;
/// let book = ProductRef::new("book", 42)?;
/// cart.add(&book, Decimal::new(1250, 2), 2).await?;
/// assert_eq!(cart.count().await?, 2);
/// assert_eq!(cart.total().await?.to_string(), "25.00");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Carts {
    pub(crate) inner: Arc<CartsInner>,
}

impl fmt::Debug for Carts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Carts")
            .field("store", &self.inner.store)
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Carts {
    /// Starts the configuration of a cart service on this store (or pool).
    pub fn builder(store: impl Into<Store>) -> CartsBuilder {
        CartsBuilder::new(store.into())
    }

    /// A cart service with default settings on the database at `url`.
    pub async fn connect(url: &str) -> Result<Carts, CartError> {
        Ok(Carts::builder(Store::connect(url).await?).build())
    }

    /// Creates or updates the cart tables. See [`Store::migrate`].
    pub async fn migrate(&self) -> Result<(), CartError> {
        self.inner.store.migrate().await
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The settings.
    pub fn config(&self) -> &CartConfig {
        &self.inner.config
    }

    /// Receives every [`CartEvent`] sent from now on, after its change has committed.
    pub fn subscribe(&self) -> broadcast::Receiver<CartEvent> {
        self.inner.events.subscribe()
    }

    /// The cart of the visitor whose session this is: `Cart(request)`.
    ///
    /// No row is created until the first change; a session pointing at a cart that is gone
    /// or checked out gets a fresh cart.
    pub async fn open(&self, session: impl SessionAdapter) -> Result<Cart, CartError> {
        let session: Arc<dyn SessionAdapter> = Arc::new(session);
        let id = session.cart_id().await.map_err(CartError::session)?;
        Ok(self.facade(Some(session), id.map_or(Binding::None, Binding::Unverified)))
    }

    /// A facade over an existing cart, tied to no session (admin pages, background jobs,
    /// the user's cart in a login merge).
    pub fn cart(&self, id: CartId) -> Cart {
        self.facade(None, Binding::Open(id))
    }

    /// A new cart tied to no session; its row is created by the first change.
    pub fn new_cart(&self) -> Cart {
        self.facade(None, Binding::None)
    }

    fn facade(&self, session: Option<Arc<dyn SessionAdapter>>, binding: Binding) -> Cart {
        Cart {
            carts: self.clone(),
            session,
            state: Mutex::new(State {
                binding,
                snap: None,
                previous: None,
                tax: None,
                shipping: None,
            }),
        }
    }

    /// All carts of a user, newest first, checked-out ones included (order history): every
    /// one of them, read in pages of 1000. A user id that cannot be stored (empty, over 255
    /// characters, control characters) is refused with [`CartError::InvalidPayload`].
    pub async fn user_carts(&self, user_id: &str) -> Result<Vec<CartRecord>, CartError> {
        crate::user::check_user_id(user_id)?;
        self.all_user_carts(user_id, false).await
    }

    /// The user's open carts, newest first: what a login merge looks at. Every one of
    /// them, like [`user_carts`](Self::user_carts).
    pub async fn active_user_carts(&self, user_id: &str) -> Result<Vec<CartRecord>, CartError> {
        crate::user::check_user_id(user_id)?;
        self.all_user_carts(user_id, true).await
    }

    /// Carts matching `filter`, newest first, with their line and unit counts, in one
    /// query whatever the page size (the admin cart list).
    pub async fn list_carts(&self, filter: &CartFilter) -> Result<Vec<CartRecord>, CartError> {
        self.inner.store.backend.list_carts(filter).await
    }

    /// Deletes carts with no activity for `days` days (the original's `clean_carts`, but aged
    /// by last activity): open carts only unless `include_checked_out`. Deletes in batches
    /// of `batch` rows, each its own short statement, so a large table is never locked for
    /// long; `progress` hears the running total after each batch. With `dry_run` nothing is
    /// deleted and the number that would be is returned.
    pub async fn clean(
        &self,
        days: u32,
        include_checked_out: bool,
        dry_run: bool,
        batch: u32,
        mut progress: impl FnMut(u64) + Send,
    ) -> Result<u64, CartError> {
        let cutoff = crate::store::now_epoch() - i64::from(days) * 86_400;
        let backend = &self.inner.store.backend;
        if dry_run {
            return backend.count_stale(cutoff, include_checked_out).await;
        }
        let batch = i64::from(batch.max(1));
        let mut total = 0;
        loop {
            let n = backend
                .delete_stale(cutoff, include_checked_out, batch)
                .await;
            // After the write, never before: a read in between would cache the old rows.
            self.clear_cache();
            let n = n?;
            total += n;
            progress(total);
            if n < batch as u64 {
                return Ok(total);
            }
        }
    }

    /// Creates a discount code. The rules of [`NewDiscount::validate`] are checked here and
    /// by the database; a code that exists already (in any case) is refused.
    pub async fn create_discount(&self, discount: NewDiscount) -> Result<Discount, CartError> {
        let discount = discount.validate()?;
        self.inner.store.backend.create_discount(&discount).await
    }

    /// Every discount, by code.
    pub async fn discounts(&self) -> Result<Vec<Discount>, CartError> {
        self.inner.store.backend.list_discounts().await
    }

    /// One discount by code (trimmed, any case).
    pub async fn discount(&self, code: &str) -> Result<Option<Discount>, CartError> {
        match normalize_code(code) {
            Ok(code) => self.inner.store.backend.discount_by_code(&code).await,
            Err(_) => Ok(None),
        }
    }

    /// Switches a code off (or on again). `false` if there is no such code.
    pub async fn set_discount_active(&self, code: &str, active: bool) -> Result<bool, CartError> {
        let Ok(code) = normalize_code(code) else {
            return Ok(false);
        };
        let done = self
            .inner
            .store
            .backend
            .set_discount_active(&code, active)
            .await;
        // After the write: cached carts holding the code see its new state.
        self.clear_cache();
        done
    }

    /// Drops every cached read (see [`CartsBuilder::cache_carts`]).
    fn clear_cache(&self) {
        if let Some(cache) = &self.inner.cache {
            cache.clear();
        }
    }

    /// Drops cached reads of these carts (after a change to them).
    fn forget_cached(&self, ids: &[CartId]) {
        if let Some(cache) = &self.inner.cache {
            cache.forget(ids);
        }
    }

    fn emit(&self, events: Vec<CartEvent>) {
        for event in events {
            // No subscriber is not an error.
            let _ = self.inner.events.send(event);
        }
    }

    /// Every cart of a user (open ones only with `open_only`), newest first, read page by
    /// page: each page starts after the last cart of the one before, so none is skipped or
    /// listed twice while carts come and go.
    async fn all_user_carts(
        &self,
        user_id: &str,
        open_only: bool,
    ) -> Result<Vec<CartRecord>, CartError> {
        const PAGE: i64 = 1000;
        let backend = &self.inner.store.backend;
        let mut all: Vec<CartRecord> = Vec::new();
        loop {
            let after = all.last().map(|c| (c.created_at.unix_timestamp(), c.id));
            let page = backend
                .user_carts_page(user_id, open_only, after, PAGE)
                .await?;
            let full = page.len() >= PAGE as usize;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// Deletes one cart, open or checked out, with its lines and the records of carts
    /// merged into it; `false` if there is no such cart. The cart's discount is kept (its
    /// use count too). A session still naming the cart gets a fresh cart on its next
    /// request.
    ///
    /// ```
    /// # async fn demo() -> Result<(), axum_cart::CartError> {
    /// use axum_cart::{Carts, ProductRef};
    /// use rust_decimal::Decimal;
    /// let carts = Carts::connect("sqlite::memory:").await?;
    /// carts.migrate().await?;
    /// let mut cart = carts.new_cart();
    /// cart.add(&ProductRef::new("book", 1)?, Decimal::ONE, 1).await?;
    /// let id = cart.id().await?.expect("a row");
    /// assert!(carts.delete_cart(id).await?);
    /// assert!(!carts.delete_cart(id).await?, "gone already");
    /// # Ok(()) }
    /// ```
    pub async fn delete_cart(&self, id: CartId) -> Result<bool, CartError> {
        let deleted = self.inner.store.backend.delete_cart(id).await?;
        self.forget_cached(&[id]);
        Ok(deleted)
    }

    /// Deletes every cart of a user, open and checked out (order history too), with their
    /// lines and the records of carts merged into them, for a privacy erasure request.
    /// Deletes in batches of 1000 rows, each its own short statement (like
    /// [`clean`](Self::clean)); returns how many carts were deleted. Discount codes are
    /// not personal data and stay.
    ///
    /// A cart the user's session creates after the call (a request still in flight) is
    /// not covered: log the user out first. A user id that cannot be stored is refused
    /// with [`CartError::InvalidPayload`].
    ///
    /// ```
    /// # async fn demo() -> Result<(), axum_cart::CartError> {
    /// use axum_cart::Carts;
    /// let carts = Carts::connect("sqlite::memory:").await?;
    /// carts.migrate().await?;
    /// carts.new_cart().bind_to_user(Some("alice")).await?;
    /// assert_eq!(carts.delete_user_carts("alice").await?, 1);
    /// assert!(carts.user_carts("alice").await?.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn delete_user_carts(&self, user_id: &str) -> Result<u64, CartError> {
        const BATCH: i64 = 1000;
        crate::user::check_user_id(user_id)?;
        let backend = &self.inner.store.backend;
        let mut total: u64 = 0;
        loop {
            let n = backend.delete_user_carts(user_id, BATCH).await?;
            total = total.saturating_add(n);
            if n < BATCH as u64 {
                break;
            }
        }
        if let Some(cache) = &self.inner.cache {
            cache.clear();
        }
        Ok(total)
    }

    /// Changes the rules of an existing discount code (the admin's edit form): its type,
    /// value, minimum cart value, maximum uses, active flag and validity window become
    /// those of `discount`, whose code names the discount (trimmed, any case). Its id and
    /// use count stay. The rules of [`NewDiscount::validate`] apply, and also:
    ///
    /// - the maximum uses cannot be below the uses the code already has;
    /// - once a checkout has used the code (or a checked-out cart holds it), its type and
    ///   value are fixed, so placed orders keep their figures: create a new code instead.
    ///
    /// Refusals are [`CartError::InvalidDiscount`] and change nothing; `Ok(None)` when there
    /// is no such code.
    pub async fn update_discount(
        &self,
        discount: NewDiscount,
    ) -> Result<Option<Discount>, CartError> {
        use crate::store::DiscountChange;
        let wanted = discount.validate()?;
        let backend = &self.inner.store.backend;
        let change = backend.update_discount(&wanted).await?;
        if let Some(cache) = &self.inner.cache {
            cache.clear();
        }
        match change {
            DiscountChange::NotFound => Ok(None),
            DiscountChange::Done => backend.discount_by_code(&wanted.code).await,
            DiscountChange::Refused => {
                let Some(current) = backend.discount_by_code(&wanted.code).await? else {
                    return Ok(None);
                };
                if matches!(wanted.max_uses, Some(max) if max < current.current_uses) {
                    return Err(CartError::InvalidDiscount(
                        DiscountRefusal::MaxUsesBelowUses {
                            code: current.code,
                            uses: current.current_uses,
                        },
                    ));
                }
                Err(CartError::InvalidDiscount(DiscountRefusal::TermsFixed(
                    current.code,
                )))
            }
        }
    }

    /// Deletes a discount code (trimmed, any case). Open carts holding it lose it (they are
    /// priced without it from then on). A code that a checkout has used, or that a
    /// checked-out cart holds, is never deleted — the order keeps its discount — and the
    /// refusal is [`CartError::InvalidDiscount`]: deactivate such a code instead
    /// ([`set_discount_active`](Self::set_discount_active)). `Ok(false)` when there is no
    /// such code.
    pub async fn delete_discount(&self, code: &str) -> Result<bool, CartError> {
        use crate::store::DiscountChange;
        let Ok(code) = normalize_code(code) else {
            return Ok(false);
        };
        let change = self.inner.store.backend.delete_discount(&code).await?;
        if let Some(cache) = &self.inner.cache {
            cache.clear();
        }
        match change {
            DiscountChange::Done => Ok(true),
            DiscountChange::NotFound => Ok(false),
            DiscountChange::Refused => Err(CartError::InvalidDiscount(DiscountRefusal::InUse(
                code.to_owned(),
            ))),
        }
    }
}

/// Where the facade stands with its cart row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binding {
    /// No row yet: the first change creates one.
    None,
    /// An id from the session, not yet read: it may be gone or checked out.
    Unverified(CartId),
    /// An open cart.
    Open(CartId),
    /// A checked-out cart: changes are refused.
    Closed(CartId),
}

impl Binding {
    fn id(self) -> Option<CartId> {
        match self {
            Binding::None => None,
            Binding::Unverified(id) | Binding::Open(id) | Binding::Closed(id) => Some(id),
        }
    }
}

struct State {
    binding: Binding,
    snap: Option<Arc<Snapshot>>,
    /// The checked-out cart the session still names (its order, for a repeated checkout).
    previous: Option<Arc<Snapshot>>,
    tax: Option<Decimal>,
    shipping: Option<Decimal>,
}

/// One visitor's cart: the facade handlers use.
///
/// Reads (`count`, `summary`, `total`, …) load the cart and its lines in one query and keep
/// them, with the tax and shipping figures, until the next change made through this value.
/// Changes are single atomic statements (`add`) or short locked transactions (everything
/// else), and are refused once the cart is checked out.
pub struct Cart {
    carts: Carts,
    session: Option<Arc<dyn SessionAdapter>>,
    state: Mutex<State>,
}

impl fmt::Debug for Cart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cart")
            .field("binding", &self.binding())
            .finish_non_exhaustive()
    }
}

fn empty_snapshot() -> Arc<Snapshot> {
    Arc::new(Snapshot {
        id: CartId(0),
        checked_out: false,
        user_id: None,
        discount: None,
        created_at: 0,
        updated_at: 0,
        lines: Vec::new(),
    })
}

impl Cart {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is only ever replaced whole, so a poisoned lock still holds valid data.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn binding(&self) -> Binding {
        self.lock().binding
    }

    fn config(&self) -> &CartConfig {
        &self.carts.inner.config
    }

    fn invalidate(&self, binding: Binding) {
        let mut st = self.lock();
        st.binding = binding;
        st.snap = None;
        st.tax = None;
        st.shipping = None;
    }

    /// The cart's id, once it has a row.
    pub async fn id(&self) -> Result<Option<CartId>, CartError> {
        self.snapshot().await?;
        Ok(self.binding().id())
    }

    /// The service this cart belongs to.
    pub fn carts(&self) -> &Carts {
        &self.carts
    }

    async fn snapshot(&self) -> Result<Arc<Snapshot>, CartError> {
        let binding = {
            let st = self.lock();
            if let Some(snap) = &st.snap {
                return Ok(snap.clone());
            }
            st.binding
        };
        let mut previous = None;
        let mut binding = binding;
        let mut hops = 0;
        let (binding, snap) = loop {
            let Some(id) = binding.id() else {
                break (Binding::None, empty_snapshot());
            };
            match self.load_shared(id).await? {
                None => {
                    // The session names a cart that a login merged away (this request
                    // raced the login): follow the merge to the user's cart.
                    if let (Binding::Unverified(_), true) = (binding, hops < 4) {
                        hops += 1;
                        match self.carts.inner.store.backend.merged_into(id).await? {
                            Some(target) if target != id => {
                                binding = Binding::Unverified(target);
                                continue;
                            }
                            _ => {}
                        }
                    }
                    break (Binding::None, empty_snapshot());
                }
                Some(s) if s.checked_out => match binding {
                    // The session still names its last order: this visitor gets a fresh
                    // cart, and a repeated checkout gets that order back.
                    Binding::Unverified(_) => {
                        previous = Some(s);
                        break (Binding::None, empty_snapshot());
                    }
                    _ => break (Binding::Closed(id), s),
                },
                Some(s) => break (Binding::Open(id), s),
            }
        };
        let mut st = self.lock();
        st.binding = binding;
        st.snap = Some(snap.clone());
        if previous.is_some() {
            st.previous = previous;
        }
        Ok(snap)
    }

    /// The cart from the shared cache when there is one, else from the database.
    async fn load_shared(&self, id: CartId) -> Result<Option<Arc<Snapshot>>, CartError> {
        let Some(cache) = &self.carts.inner.cache else {
            return Ok(self.carts.inner.store.backend.load(id).await?.map(Arc::new));
        };
        let (generation, hit) = cache.get(id);
        if let Some(snap) = hit {
            return Ok(Some(snap));
        }
        let loaded = self.carts.inner.store.backend.load(id).await?.map(Arc::new);
        if let Some(snap) = &loaded {
            cache.put(id, snap.clone(), generation);
        }
        Ok(loaded)
    }

    /// Reads the cart again from the database, dropping what this value had cached.
    pub async fn refresh(&self) -> Result<(), CartError> {
        let binding = self.binding();
        if let Some(id) = binding.id() {
            self.carts.forget_cached(&[id]);
        }
        self.invalidate(binding);
        self.snapshot().await.map(|_| ())
    }

    fn view(&self, snap: &Snapshot) -> CartView {
        let subtotal = subtotal(&snap.lines);
        CartView {
            lines: snap.lines.clone().into(),
            subtotal,
            discount: discount_amount(snap, subtotal),
            discount_code: snap.discount.as_ref().map(|d| d.code.clone()),
            cart_id: CartId::new(snap.id.get()),
            user_id: snap.user_id.clone(),
        }
    }

    // ---- reads -------------------------------------------------------------------------

    /// The lines, in the order they were first added.
    pub async fn lines(&self) -> Result<Vec<Line>, CartError> {
        Ok(self.snapshot().await?.lines.clone())
    }

    /// One product's line, if it is in the cart.
    pub async fn line(&self, product: &(impl Product + ?Sized)) -> Result<Option<Line>, CartError> {
        let p = product_ref(product)?;
        Ok(self.snapshot().await?.line(&p).cloned())
    }

    /// Total units (`len(cart)`).
    pub async fn count(&self) -> Result<i64, CartError> {
        Ok(self
            .snapshot()
            .await?
            .lines
            .iter()
            .map(|l| l.quantity)
            .sum())
    }

    /// Distinct products.
    pub async fn unique_count(&self) -> Result<usize, CartError> {
        Ok(self.snapshot().await?.lines.len())
    }

    /// Whether the cart has no lines.
    pub async fn is_empty(&self) -> Result<bool, CartError> {
        Ok(self.snapshot().await?.lines.is_empty())
    }

    /// Whether the product is in the cart (`product in cart`).
    pub async fn contains(&self, product: &(impl Product + ?Sized)) -> Result<bool, CartError> {
        Ok(self.line(product).await?.is_some())
    }

    /// Whether the cart has been checked out.
    pub async fn is_checked_out(&self) -> Result<bool, CartError> {
        Ok(self.snapshot().await?.checked_out)
    }

    /// The cart row as an admin page lists it; `None` while the cart has no row.
    pub async fn record(&self) -> Result<Option<CartRecord>, CartError> {
        let snap = self.snapshot().await?;
        Ok(self.binding().id().map(|_| snap.record()))
    }

    /// The user the cart is bound to.
    pub async fn user_id(&self) -> Result<Option<String>, CartError> {
        Ok(self.snapshot().await?.user_id.clone())
    }

    /// The lines with their products, loaded with one catalogue call per product kind.
    /// A product the catalogue no longer has is `None` on its line, not an error.
    pub async fn items_with_products(&self) -> Result<Vec<crate::LoadedLine>, CartError> {
        let snap = self.snapshot().await?;
        let refs: Vec<ProductRef> = snap.lines.iter().map(|l| l.product.clone()).collect();
        let products = self.catalog_products(&refs).await?;
        Ok(snap
            .lines
            .iter()
            .zip(products)
            .map(|(l, product)| LoadedLine {
                line: l.clone(),
                product,
            })
            .collect())
    }

    /// Σ quantity × unit_price, exactly two decimal places (`"0.00"` when empty).
    pub async fn summary(&self) -> Result<Decimal, CartError> {
        Ok(subtotal(&self.snapshot().await?.lines))
    }

    /// The applied discount code, if any.
    pub async fn discount_code(&self) -> Result<Option<String>, CartError> {
        Ok(self
            .snapshot()
            .await?
            .discount
            .as_ref()
            .map(|d| d.code.clone()))
    }

    /// What the applied discount takes off: 0.00 with none, and 0.00 once it is no longer
    /// valid (expired, switched off, used up, or the cart fell below its minimum).
    pub async fn discount_amount(&self) -> Result<Decimal, CartError> {
        let snap = self.snapshot().await?;
        Ok(discount_amount(&snap, subtotal(&snap.lines)))
    }

    /// The tax from the configured calculator, half-up to cents. Computed once per value.
    pub async fn tax(&self) -> Result<Decimal, CartError> {
        let snap = self.snapshot().await?;
        if let Some(tax) = self.lock().tax {
            return Ok(tax);
        }
        let view = self.view(&snap);
        let tax = self
            .config()
            .tax
            .calculate(&view)
            .await
            .map_err(|e| CartError::plugin("tax calculator", e))?;
        let tax = money::cents(tax);
        self.lock().tax = Some(tax);
        Ok(tax)
    }

    /// The shipping from the configured calculator, half-up to cents. Computed once per value.
    pub async fn shipping(&self) -> Result<Decimal, CartError> {
        let snap = self.snapshot().await?;
        if let Some(shipping) = self.lock().shipping {
            return Ok(shipping);
        }
        let view = self.view(&snap);
        let shipping = self
            .config()
            .shipping
            .calculate(&view)
            .await
            .map_err(|e| CartError::plugin("shipping calculator", e))?;
        let shipping = money::cents(shipping);
        self.lock().shipping = Some(shipping);
        Ok(shipping)
    }

    /// The shipping choices of the configured calculator (not cached).
    pub async fn shipping_options(&self) -> Result<Vec<ShippingOption>, CartError> {
        let view = self.view(&*self.snapshot().await?);
        self.config()
            .shipping
            .options(&view)
            .await
            .map_err(|e| CartError::plugin("shipping calculator", e))
    }

    /// summary − discount + tax + shipping, never below 0.00, half-up to cents.
    pub async fn total(&self) -> Result<Decimal, CartError> {
        Ok(self.totals().await?.total)
    }

    /// Every figure at once.
    pub async fn totals(&self) -> Result<Totals, CartError> {
        let snap = self.snapshot().await?;
        let tax = self.tax().await?;
        let shipping = self.shipping().await?;
        Ok(totals(&snap, tax, shipping))
    }

    /// Whether `checkout` would go through, judged on what this value has read: `Ok(())`,
    /// or the error checkout would return (empty, below the minimum, discount invalid).
    pub async fn can_checkout(&self) -> Result<(), CartError> {
        let snap = self.snapshot().await?;
        checkout_rules(
            &snap,
            self.config().min_order_amount,
            OffsetDateTime::now_utc(),
        )
        .map(|_| ())
    }

    // ---- changes -----------------------------------------------------------------------

    /// Adds `quantity` units (at least 1) of `product` at `unit_price`. A product already in
    /// the cart accumulates, and its unit price becomes the latest one. Returns the line.
    ///
    /// One atomic statement: concurrent adds never lose units.
    pub async fn add(
        &mut self,
        product: &dyn Product,
        unit_price: Decimal,
        quantity: i64,
    ) -> Result<Line, CartError> {
        self.add_with(product, unit_price, quantity, AddOptions::new())
            .await
    }

    /// [`add`](Self::add) with price validation and/or an inventory check.
    pub async fn add_with(
        &mut self,
        product: &dyn Product,
        unit_price: Decimal,
        quantity: i64,
        options: AddOptions,
    ) -> Result<Line, CartError> {
        if quantity < 1 {
            return Err(CartError::InvalidQuantity(
                "Quantity must be at least 1.".into(),
            ));
        }
        let unit_price = money::unit_price(unit_price)?;
        if options.validate_price {
            check_price(product.price(), unit_price)?;
        }
        let max = self.config().line_limit();
        if quantity > max {
            return Err(exceeds(max));
        }
        let pref = product_ref(product)?;
        if let Binding::Closed(_) = self.binding() {
            return Err(CartError::CheckedOut);
        }
        // With no checker configured everything is in stock: no question, no query.
        if options.check_inventory && self.config().inventory.is_some() {
            // The quantity the line will really have: read the cart (one query), so a
            // session id of a cart that is checked out or gone counts as no line at all.
            let existing = match self.binding() {
                Binding::None => 0,
                _ => {
                    let binding = self.binding();
                    self.invalidate(binding);
                    let snap = self.snapshot().await?;
                    match self.binding() {
                        Binding::Open(_) => snap.line(&pref).map_or(0, |l| l.quantity),
                        _ => 0,
                    }
                }
            };
            let wanted = existing.saturating_add(quantity);
            self.check_stock(&pref, Some(product), wanted).await?;
        }
        let line = Line::new(pref, quantity, unit_price);
        for attempt in 1..=WRITE_ATTEMPTS {
            let binding = self.binding();
            let cart_id = match binding {
                Binding::Closed(_) => return Err(CartError::CheckedOut),
                Binding::Unverified(id) | Binding::Open(id) => id,
                Binding::None => self.ensure_row().await?,
            };
            let outcome = self
                .carts
                .inner
                .store
                .backend
                .add(cart_id, &line, max)
                .await;
            let outcome = match outcome {
                Err(e) => {
                    e.retry_after(attempt)?;
                    continue;
                }
                Ok(outcome) => outcome,
            };
            match outcome {
                AddOutcome::Added { quantity } => {
                    self.carts.forget_cached(&[cart_id]);
                    self.invalidate(Binding::Open(cart_id));
                    let line = Line { quantity, ..line };
                    self.carts.emit(vec![CartEvent::ItemAdded {
                        cart_id,
                        line: line.clone(),
                    }]);
                    return Ok(line);
                }
                AddOutcome::Exceeded => return Err(exceeds(max)),
                AddOutcome::CheckedOut => match binding {
                    Binding::Unverified(_) => self.invalidate(Binding::None),
                    _ => {
                        self.invalidate(Binding::Closed(cart_id));
                        return Err(CartError::CheckedOut);
                    }
                },
                AddOutcome::Gone => {
                    self.carts.forget_cached(&[cart_id]);
                    self.rebind_after_gone(cart_id).await?
                }
            }
        }
        Err(CartError::CheckedOut)
    }

    /// The row this value writes to: the bound one, or a new row created for the session
    /// (or found, when a concurrent request of the same session created it first: the row's
    /// unique session key makes them meet) and stored in the session. If the session cannot
    /// store it, the row is removed again and the error returned: no row is left that no
    /// session points to.
    async fn ensure_row(&self) -> Result<CartId, CartError> {
        if let Binding::Open(id) = self.binding() {
            return Ok(id);
        }
        let key = self.binding_key();
        let backend = &self.carts.inner.store.backend;
        let (id, created) = backend
            .create_cart(key.as_ref().map(|(k, _)| k.as_str()))
            .await?;
        if let Err(e) = self.remember_new(id).await {
            if created {
                if let Err(undo) = backend.delete_if_empty(id).await {
                    tracing::warn!(error = %undo, "could not remove the cart row of a failed session write");
                }
            }
            tracing::warn!(error = %e, "the session could not store a new cart; nothing was kept");
            return Err(e);
        }
        // A new session has an identity once saved: the cart takes it as its key, so the
        // session's later requests (even one whose session a login cycled away) find it.
        if let (Some((_, false)), Some(session)) = (&key, &self.session) {
            if let Some(identity) = session.identity().filter(|k| valid_key(k)) {
                backend.set_key(id, &identity).await?;
            }
        }
        self.invalidate(Binding::Open(id));
        Ok(id)
    }

    /// The unique key a new cart row of this session carries: the session's identity
    /// (shared by its concurrent requests), else a random one; `None` with no session.
    fn binding_key(&self) -> Option<(String, bool)> {
        let session = self.session.as_ref()?;
        Some(match session.identity().filter(|k| valid_key(k)) {
            Some(identity) => (identity, true),
            None => (random_key(), false),
        })
    }

    /// Stores a newly created (or found) cart in the session and saves the session now.
    async fn remember_new(&self, id: CartId) -> Result<(), CartError> {
        let Some(session) = &self.session else {
            return Ok(());
        };
        session.set_cart_id(id).await.map_err(CartError::session)?;
        session.persist().await.map_err(CartError::session)
    }

    /// Releases this session's binding key from whichever cart holds it: that cart stops
    /// being the session's (logout, login as someone else), so the session's next cart
    /// must not find it.
    async fn release_binding(&self) -> Result<(), CartError> {
        let key = self.session.as_ref().and_then(|s| s.identity());
        if let Some(key) = key.filter(|k| valid_key(k)) {
            self.carts.inner.store.backend.release_key(&key).await?;
        }
        Ok(())
    }

    /// The cart row is gone: merged into the user's cart by a concurrent login, or cleaned.
    /// A merged cart is followed to where it went (the login already pointed the session
    /// there; this request's view of the session may predate that), so a change racing a
    /// login lands in the user's cart. Else, if the session now names another cart, carry
    /// on with that one; else start afresh.
    async fn rebind_after_gone(&self, gone: CartId) -> Result<(), CartError> {
        let backend = &self.carts.inner.store.backend;
        let mut next = gone;
        for _ in 0..8 {
            match backend.merged_into(next).await? {
                Some(target) if target != next => next = target,
                _ => break,
            }
        }
        if next != gone {
            self.invalidate(Binding::Unverified(next));
            return Ok(());
        }
        let next = match &self.session {
            Some(session) => session
                .cart_id()
                .await
                .map_err(CartError::session)?
                .filter(|id| *id != gone),
            None => None,
        };
        self.invalidate(next.map_or(Binding::None, Binding::Unverified));
        Ok(())
    }

    /// Points the session at an existing cart (a login moving it to the user's cart).
    async fn remember(&self, id: CartId) -> Result<(), CartError> {
        if let Some(session) = &self.session {
            session.set_cart_id(id).await.map_err(CartError::session)?;
        }
        Ok(())
    }

    /// Runs a locked write: `plan` sees the freshly read, locked carts and says what to
    /// write. Handles the binding (creating the row when needed, stale ids, checked-out
    /// carts) and drops the cache afterwards. Returns the cart id when something was written.
    async fn locked<F>(
        &mut self,
        others: &[CartId],
        lock_discount: bool,
        mut plan: F,
    ) -> Result<Option<CartId>, CartError>
    where
        F: FnMut(&Locked) -> Result<Vec<Write>, CartError> + Send,
    {
        let binding = self.binding();
        if let Binding::Unverified(_) = binding {
            self.snapshot().await?;
        }
        let mut transient = 0;
        let mut gone = 0;
        while gone < 2 {
            let binding = self.binding();
            let target = match binding {
                Binding::None => {
                    // Ask the plan on an empty cart first: no row is created for nothing.
                    let probe = Locked {
                        target: (*empty_snapshot()).clone(),
                        others: Vec::new(),
                    };
                    let others_known = others.is_empty();
                    if others_known && plan(&probe)?.is_empty() {
                        return Ok(None);
                    }
                    self.ensure_row().await?
                }
                Binding::Closed(_) => return Err(CartError::CheckedOut),
                Binding::Unverified(id) | Binding::Open(id) => id,
            };
            let result = self
                .carts
                .inner
                .store
                .backend
                .write(
                    WriteRequest {
                        target,
                        others,
                        lock_discount,
                    },
                    &mut plan,
                )
                .await;
            match result {
                // A deadlock or serialisation failure rolled everything back: run it again.
                Err(e) if e.is_transient() => {
                    transient += 1;
                    e.retry_after(transient)?;
                }
                Ok(WriteOutcome::Written) => {
                    self.carts.forget_cached(&[target]);
                    self.carts.forget_cached(others);
                    self.invalidate(Binding::Open(target));
                    return Ok(Some(target));
                }
                Ok(WriteOutcome::Unchanged) => return Ok(None),
                Ok(WriteOutcome::Gone(missing)) => {
                    self.carts.forget_cached(others);
                    self.carts.forget_cached(&[target]);
                    if missing != target {
                        // Another cart of the write (a merge source) is gone: nothing to do.
                        return Ok(None);
                    }
                    self.rebind_after_gone(target).await?;
                    gone += 1;
                }
                Err(CartError::CheckedOut) => {
                    self.invalidate(Binding::Closed(target));
                    return Err(CartError::CheckedOut);
                }
                Err(e) => return Err(e),
            }
        }
        Err(CartError::CheckedOut)
    }

    /// Sets a line's quantity (0 removes it) and, if given, its unit price.
    pub async fn update(
        &mut self,
        product: &dyn Product,
        quantity: i64,
        unit_price: Option<Decimal>,
    ) -> Result<Line, CartError> {
        self.update_with(product, quantity, unit_price, AddOptions::new())
            .await
    }

    /// [`update`](Self::update) with the checks of [`AddOptions`]: `validate_price` compares
    /// a given unit price with [`Product::price`] (PRICE-04: only when a price is given), and
    /// `check_inventory` asks the inventory checker for the new quantity (when it is above 0).
    pub async fn update_with(
        &mut self,
        product: &dyn Product,
        quantity: i64,
        unit_price: Option<Decimal>,
        options: AddOptions,
    ) -> Result<Line, CartError> {
        if quantity < 0 {
            return Err(CartError::InvalidQuantity(
                "Quantity cannot be negative.".into(),
            ));
        }
        let unit_price = unit_price.map(money::unit_price).transpose()?;
        if let (true, Some(given)) = (options.validate_price, unit_price) {
            check_price(product.price(), given)?;
        }
        let max = self.config().line_limit();
        if quantity > max {
            return Err(exceeds(max));
        }
        let pref = product_ref(product)?;
        if options.check_inventory && quantity > 0 {
            self.check_stock(&pref, Some(product), quantity).await?;
        }
        let mut result: Option<(Line, bool)> = None;
        let id = self
            .locked(&[], false, |locked| {
                let t = &locked.target;
                ensure_open(t)?;
                let old = t
                    .line(&pref)
                    .ok_or_else(|| CartError::ItemDoesNotExist(pref.clone()))?;
                let line = Line::new(pref.clone(), quantity, unit_price.unwrap_or(old.unit_price));
                if quantity == 0 {
                    let old = old.clone();
                    result = Some((old, true));
                    Ok(vec![Write::Delete {
                        cart: t.id,
                        product: pref.clone(),
                    }])
                } else {
                    result = Some((line.clone(), false));
                    Ok(vec![Write::Upsert { cart: t.id, line }])
                }
            })
            .await?;
        let (line, deleted) = result.ok_or_else(|| CartError::ItemDoesNotExist(pref.clone()))?;
        if let Some(cart_id) = id {
            self.carts.emit(vec![CartEvent::ItemUpdated {
                cart_id,
                line: line.clone(),
                deleted,
            }]);
        }
        Ok(line)
    }

    /// Asks the inventory checker (if one is configured) whether `quantity` units of the
    /// product can be in the cart. `product` is the app's own product when the caller has it
    /// (the checker may downcast it); otherwise the catalogue's is looked up, and failing
    /// that the reference itself is asked about.
    async fn check_stock(
        &self,
        pref: &ProductRef,
        product: Option<&dyn Product>,
        quantity: i64,
    ) -> Result<(), CartError> {
        let Some(inventory) = self.config().inventory.clone() else {
            return Ok(());
        };
        let looked_up = match product {
            Some(_) => None,
            None => self
                .catalog_products(std::slice::from_ref(pref))
                .await?
                .pop()
                .flatten(),
        };
        let product: &dyn Product = match (product, &looked_up) {
            (Some(p), _) => p,
            (None, Some(p)) => p.as_ref(),
            (None, None) => pref,
        };
        let ok = inventory
            .check(product, quantity)
            .await
            .map_err(|e| CartError::plugin("inventory checker", e))?;
        if ok {
            Ok(())
        } else {
            Err(CartError::InsufficientStock {
                product: pref.clone(),
                quantity,
            })
        }
    }

    /// The stock check of several lines at their resulting quantities, with the catalogue's
    /// products: `products` when the caller has loaded them (in the order of `wanted`), else
    /// loaded here (one catalogue call per kind).
    async fn check_stock_of(
        &self,
        wanted: &[(ProductRef, i64)],
        products: Option<&[Option<Arc<dyn Product>>]>,
    ) -> Result<(), CartError> {
        let Some(inventory) = self.config().inventory.clone() else {
            return Ok(());
        };
        let loaded;
        let products = match products {
            Some(p) => p,
            None => {
                let refs: Vec<ProductRef> = wanted.iter().map(|(p, _)| p.clone()).collect();
                loaded = self.catalog_products(&refs).await?;
                &loaded
            }
        };
        for ((pref, quantity), product) in wanted.iter().zip(products) {
            let asked: &dyn Product = match &product {
                Some(p) => p.as_ref(),
                None => pref,
            };
            let ok = inventory
                .check(asked, *quantity)
                .await
                .map_err(|e| CartError::plugin("inventory checker", e))?;
            if !ok {
                return Err(CartError::InsufficientStock {
                    product: pref.clone(),
                    quantity: *quantity,
                });
            }
        }
        Ok(())
    }

    /// The catalogue's product for each reference (matched by kind and id), one catalogue
    /// call per kind; `None` where the catalogue has none (or there is no catalogue).
    async fn catalog_products(
        &self,
        refs: &[ProductRef],
    ) -> Result<Vec<Option<Arc<dyn Product>>>, CartError> {
        let Some(catalog) = self.config().catalog.clone() else {
            return Ok(refs.iter().map(|_| None).collect());
        };
        let mut by_kind: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for r in refs {
            by_kind.entry(r.kind()).or_default().push(r.id());
        }
        let mut found: HashMap<(String, i64), Arc<dyn Product>> = HashMap::new();
        for (kind, ids) in by_kind {
            let products = catalog
                .products(kind, &ids)
                .await
                .map_err(|e| CartError::plugin("catalogue", e))?;
            for p in products {
                found.insert((p.kind().to_owned(), p.id()), p);
            }
        }
        Ok(refs
            .iter()
            .map(|r| found.get(&(r.kind().to_owned(), r.id())).cloned())
            .collect())
    }

    /// Removes a product's line.
    pub async fn remove(&mut self, product: &(impl Product + ?Sized)) -> Result<(), CartError> {
        let pref = product_ref(product)?;
        let id = self
            .locked(&[], false, |locked| {
                let t = &locked.target;
                ensure_open(t)?;
                t.line(&pref)
                    .ok_or_else(|| CartError::ItemDoesNotExist(pref.clone()))?;
                Ok(vec![Write::Delete {
                    cart: t.id,
                    product: pref.clone(),
                }])
            })
            .await?;
        let cart_id = id.ok_or_else(|| CartError::ItemDoesNotExist(pref.clone()))?;
        self.carts.emit(vec![CartEvent::ItemRemoved {
            cart_id,
            product: pref,
        }]);
        Ok(())
    }

    /// Removes every line. The cart row, its discount and its user stay.
    pub async fn clear(&mut self) -> Result<(), CartError> {
        let id = self
            .locked(&[], false, |locked| {
                let t = &locked.target;
                if t.id.get() == 0 {
                    return Ok(Vec::new());
                }
                ensure_open(t)?;
                Ok(vec![Write::Clear { cart: t.id }])
            })
            .await?;
        if let Some(cart_id) = id {
            self.carts.emit(vec![CartEvent::Cleared { cart_id }]);
        }
        Ok(())
    }

    /// Writes several lines at once, all or nothing. Each line is set to the given
    /// quantity and price (an existing line is replaced, not increased); a product given
    /// twice is one line, the last one given. With an inventory checker configured, every
    /// line's quantity is checked first.
    pub async fn add_bulk(
        &mut self,
        lines: impl IntoIterator<Item = Line>,
    ) -> Result<Vec<Line>, CartError> {
        let lines = self.checked_lines(dedupe(lines.into_iter().collect()))?;
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<(ProductRef, i64)> = lines
            .iter()
            .map(|l| (l.product.clone(), l.quantity))
            .collect();
        self.check_stock_of(&wanted, None).await?;
        let mut events = Vec::new();
        let id = self
            .locked(&[], false, |locked| {
                let t = &locked.target;
                ensure_open(t)?;
                events = set_events(t, &lines);
                Ok(lines
                    .iter()
                    .map(|l| Write::Upsert {
                        cart: t.id,
                        line: l.clone(),
                    })
                    .collect())
            })
            .await?;
        if id.is_some() {
            self.carts.emit(events);
        }
        Ok(lines)
    }

    /// Checks lines for `add_bulk` and `from_serializable`: quantity 1..=max, prices, size.
    fn checked_lines(&self, lines: Vec<Line>) -> Result<Vec<Line>, CartError> {
        if lines.len() > BATCH_LIMIT {
            return Err(CartError::InvalidPayload(format!(
                "At most {BATCH_LIMIT} lines can be written at once, got {}.",
                lines.len()
            )));
        }
        let max = self.config().line_limit();
        lines
            .into_iter()
            .map(|l| {
                if l.quantity < 1 {
                    return Err(CartError::InvalidQuantity(
                        "Quantity must be at least 1.".into(),
                    ));
                }
                if l.quantity > max {
                    return Err(exceeds(max));
                }
                Ok(Line {
                    unit_price: money::unit_price(l.unit_price)?,
                    ..l
                })
            })
            .collect()
    }

    /// Applies a discount code (trimmed, any case). Refused if the cart already has one,
    /// if the code does not exist, or if it is not valid for this cart now.
    pub async fn apply_discount(&mut self, code: &str) -> Result<Discount, CartError> {
        let snap = self.snapshot().await?;
        ensure_open(&snap)?;
        if snap.discount.is_some() {
            return Err(CartError::InvalidDiscount(DiscountRefusal::AlreadyApplied));
        }
        let shown: String = code.trim().chars().take(60).collect();
        let missing = || CartError::InvalidDiscount(DiscountRefusal::NotFound(shown.clone()));
        let normal = normalize_code(code).map_err(|_| missing())?;
        let discount = self
            .carts
            .inner
            .store
            .backend
            .discount_by_code(&normal)
            .await?
            .ok_or_else(missing)?;
        let now = OffsetDateTime::now_utc();
        self.locked(&[], false, |locked| {
            let t = &locked.target;
            ensure_open(t)?;
            if t.discount.is_some() {
                return Err(CartError::InvalidDiscount(DiscountRefusal::AlreadyApplied));
            }
            discount.check(subtotal(&t.lines), now)?;
            Ok(vec![Write::SetDiscount {
                cart: t.id,
                discount: Some(discount.id),
            }])
        })
        .await?;
        Ok(discount)
    }

    /// Removes the applied discount; nothing happens if there is none.
    pub async fn remove_discount(&mut self) -> Result<(), CartError> {
        self.locked(&[], false, |locked| {
            let t = &locked.target;
            if t.discount.is_none() {
                return Ok(Vec::new());
            }
            ensure_open(t)?;
            Ok(vec![Write::SetDiscount {
                cart: t.id,
                discount: None,
            }])
        })
        .await?;
        Ok(())
    }

    /// Binds the cart to an app user (creating its row if needed); `None` unbinds.
    ///
    /// User ids are strings: an app with integer keys passes `id.to_string()`.
    pub async fn bind_to_user(&mut self, user_id: Option<&str>) -> Result<(), CartError> {
        user_id.map(crate::user::check_user_id).transpose()?;
        let user = user_id.map(str::to_owned);
        self.locked(&[], false, |locked| {
            let t = &locked.target;
            ensure_open(t)?;
            if t.user_id == user {
                return Ok(Vec::new());
            }
            Ok(vec![Write::SetUser {
                cart: t.id,
                user: user.clone(),
            }])
        })
        .await?;
        Ok(())
    }

    /// Moves `source`'s lines into this cart, in one transaction.
    ///
    /// A product in both carts is combined by `strategy`, clamped to the line maximum.
    /// The source's discount moves here if this cart has none. The source row is deleted
    /// afterwards, so it is never left behind as an open orphan. Lines whose product the
    /// catalogue no longer has are left out and reported. Merging a cart into itself (even
    /// through two values over the same row) is refused and changes nothing.
    pub async fn merge(
        &mut self,
        source: &mut Cart,
        strategy: MergeStrategy,
    ) -> Result<MergeReport, CartError> {
        self.merge_with_key(source, strategy, None).await
    }

    /// [`merge`](Self::merge); with `key`, this cart also takes that session key in the same
    /// transaction (the login hands the guest session's key to the user's cart).
    async fn merge_with_key(
        &mut self,
        source: &mut Cart,
        strategy: MergeStrategy,
        key: Option<String>,
    ) -> Result<MergeReport, CartError> {
        let src_snap = source.snapshot().await?;
        let own = self.snapshot().await?;
        let Some(src_id) = source.lock().binding.id() else {
            return Ok(MergeReport::default());
        };
        if self.binding().id() == Some(src_id) || own.id == src_id {
            return Err(CartError::MergeIntoSelf);
        }
        if src_snap.checked_out {
            return Err(CartError::CheckedOut);
        }
        if src_snap.lines.is_empty() && src_snap.discount.is_none() {
            return Ok(MergeReport::default());
        }
        let refs: Vec<ProductRef> = src_snap.lines.iter().map(|l| l.product.clone()).collect();
        // One catalogue call per kind, for the unknown products and the stock check alike.
        let products = self.catalog_products(&refs).await?;
        let unknown: Vec<ProductRef> = match self.config().catalog {
            Some(_) => refs
                .iter()
                .zip(&products)
                .filter(|(_, p)| p.is_none())
                .map(|(r, _)| r.clone())
                .collect(),
            None => Vec::new(),
        };
        let max = self.config().line_limit();
        if self.config().inventory.is_some() {
            // Each merged line at the quantity it will have (inventory is not reserved, so
            // this is the check of what was just read).
            let wanted: Vec<(ProductRef, i64)> = src_snap
                .lines
                .iter()
                .map(|sl| {
                    let q = match own.line(&sl.product) {
                        Some(tl) => merged_quantity(strategy, tl.quantity, sl.quantity),
                        None => sl.quantity,
                    };
                    (sl.product.clone(), q.min(max))
                })
                .collect();
            self.check_stock_of(&wanted, Some(&products)).await?;
        }
        let mut report = MergeReport::default();
        let mut events = Vec::new();
        let id = self
            .locked(&[src_id], false, |locked| {
                let t = &locked.target;
                ensure_open(t)?;
                let Some(s) = locked.others.first() else {
                    return Ok(Vec::new());
                };
                ensure_open(s)?;
                report = MergeReport::default();
                events.clear();
                let mut writes = Vec::new();
                for sl in &s.lines {
                    if unknown.contains(&sl.product) {
                        report.unknown_products.push(sl.product.clone());
                    }
                    let (quantity, unit_price, existed) = match t.line(&sl.product) {
                        Some(tl) => {
                            let (q, p) = match strategy {
                                MergeStrategy::Add => (tl.quantity + sl.quantity, sl.unit_price),
                                MergeStrategy::Replace => (sl.quantity, sl.unit_price),
                                MergeStrategy::KeepHigher if tl.quantity >= sl.quantity => {
                                    (tl.quantity, tl.unit_price)
                                }
                                MergeStrategy::KeepHigher => (sl.quantity, sl.unit_price),
                            };
                            (q, p, true)
                        }
                        None => (sl.quantity, sl.unit_price, false),
                    };
                    let line = Line::new(sl.product.clone(), quantity.min(max), unit_price);
                    report.merged += 1;
                    events.push(if existed {
                        CartEvent::ItemUpdated {
                            cart_id: t.id,
                            line: line.clone(),
                            deleted: false,
                        }
                    } else {
                        CartEvent::ItemAdded {
                            cart_id: t.id,
                            line: line.clone(),
                        }
                    });
                    writes.push(Write::Upsert { cart: t.id, line });
                }
                if t.discount.is_none() {
                    // The source's code moves only if it is valid for the merged cart.
                    let after = after_writes(&t.lines, &writes);
                    if let Some(d) = s
                        .discount
                        .as_ref()
                        .filter(|d| d.check(subtotal(&after), OffsetDateTime::now_utc()).is_ok())
                    {
                        report.discount_moved = true;
                        writes.push(Write::SetDiscount {
                            cart: t.id,
                            discount: Some(d.id),
                        });
                    }
                }
                events.push(CartEvent::Cleared { cart_id: s.id });
                writes.push(Write::MergeAway {
                    cart: s.id,
                    into: t.id,
                });
                if let Some(key) = &key {
                    writes.push(Write::SetKey {
                        cart: t.id,
                        key: key.clone(),
                    });
                }
                Ok(writes)
            })
            .await?;
        if !report.unknown_products.is_empty() {
            tracing::warn!(
                products = ?report.unknown_products,
                "merged lines whose product the catalogue does not know; they were kept"
            );
        }
        source.invalidate(Binding::None);
        if id.is_some() {
            self.carts.emit(events);
        }
        Ok(report)
    }

    /// The login flow, done right: after it, this value and its session point at the user's
    /// open cart, holding the guest's lines merged in by `strategy`.
    ///
    /// If the user has no open cart, the guest cart is bound to the user (and created if the
    /// guest had none). If the guest cart already is the user's, nothing changes.
    pub async fn login(
        &mut self,
        user_id: &str,
        strategy: MergeStrategy,
    ) -> Result<MergeReport, CartError> {
        crate::user::check_user_id(user_id)?;
        let guest = self.snapshot().await?;
        let guest_id = self.binding().id();
        if guest
            .user_id
            .as_deref()
            .is_some_and(|owner| owner != user_id)
        {
            // The session's cart is another user's (a login over someone else's session): it
            // is never merged into or bound to this user. The session lets go of it and
            // takes this user's own cart.
            self.release_binding().await?;
            let open = self.carts.active_user_carts(user_id).await?;
            if let Some(own) = open.first() {
                self.remember(own.id).await?;
                self.invalidate(Binding::Unverified(own.id));
            } else {
                if let Some(session) = &self.session {
                    session.clear_cart_id().await.map_err(CartError::session)?;
                }
                self.invalidate(Binding::None);
                self.bind_to_user(Some(user_id)).await?;
            }
            return Ok(MergeReport::default());
        }
        let open = self.carts.active_user_carts(user_id).await?;
        let Some(target) = open.iter().find(|c| Some(c.id) != guest_id) else {
            if guest.user_id.as_deref() != Some(user_id) {
                self.bind_to_user(Some(user_id)).await?;
            }
            return Ok(MergeReport::default());
        };
        // Point the session at the user's cart first: a change racing this login then finds
        // it as soon as the guest cart is gone (see `rebind_after_gone`).
        self.remember(target.id).await?;
        // Requests of this session racing the login (their session may already have been
        // cycled away, so they come without the cart id) find the user's cart by the guest
        // session's key, which moves over with the merge.
        let key = self
            .session
            .as_ref()
            .and_then(|s| s.identity())
            .filter(|k| valid_key(k));
        let mut user_cart = self.carts.cart(target.id);
        match user_cart.merge_with_key(self, strategy, key).await {
            Ok(report) => {
                self.invalidate(Binding::Open(target.id));
                Ok(report)
            }
            Err(e) => {
                if let Some(id) = guest_id {
                    self.remember(id).await?;
                }
                Err(e)
            }
        }
    }

    /// Forgets this visitor's cart (for logout): the session loses the cart id and the next
    /// change starts a new cart. The cart row itself is kept.
    pub async fn forget(&mut self) -> Result<(), CartError> {
        if let Some(session) = &self.session {
            self.release_binding().await?;
            session.clear_cart_id().await.map_err(CartError::session)?;
        }
        self.invalidate(Binding::None);
        Ok(())
    }

    /// Checks the cart out: atomic, idempotent and race-safe.
    ///
    /// Locks the cart and checks out what it holds at that moment (changes racing the
    /// checkout either make it in or go to the session's next cart): refuses an empty cart
    /// ([`CartError::EmptyCart`]), a subtotal below the minimum
    /// ([`CartError::MinimumOrderNotMet`]) and a discount that is no longer valid
    /// ([`CartError::InvalidDiscount`], rolled back whole), counts one use of the discount
    /// and marks the cart checked out; the order's figures are those of the checked-out
    /// lines. A second call, from any value or process, changes nothing and returns the
    /// order with `placed_now: false`, and so does a repeated checkout of the session within
    /// [`CartsBuilder::checkout_replay_window`] (a double submit, a retry after a lost
    /// response). Inventory is not reserved.
    pub async fn checkout(&mut self) -> Result<Order, CartError> {
        let min = self.config().min_order_amount;
        // Calculators run outside the lock, on a fresh read.
        self.refresh().await?;
        let pre = self.snapshot().await?;
        match self.binding() {
            Binding::Closed(id) => return self.placed_order(id).await,
            Binding::None => {
                if let Some(order) = self.recent_order() {
                    self.install(Binding::Closed(order.id), order.clone(), None);
                    return self.placed_order(order.id).await;
                }
            }
            Binding::Open(_) | Binding::Unverified(_) => {}
        }
        // A failing calculator refuses the checkout before anything is written.
        let totals = self.totals().await?;
        let mut already = false;
        let mut frozen: Option<Snapshot> = None;
        let outcome = self
            .locked(&[], true, |locked| {
                let t = &locked.target;
                already = t.checked_out;
                frozen = None;
                if already {
                    return Ok(Vec::new());
                }
                let mut writes = checkout_rules(t, min, OffsetDateTime::now_utc())?;
                writes.push(Write::CheckOut { cart: t.id });
                frozen = Some(t.clone());
                Ok(writes)
            })
            .await;
        let outcome = match outcome {
            Err(CartError::CheckedOut) => None,
            other => other?,
        };
        let Some(cart_id) = outcome.or(pre.id.get().ne(&0).then_some(pre.id)) else {
            return Err(CartError::EmptyCart);
        };
        let placed_now = !already && outcome.is_some();
        let used_code = placed_now && frozen.as_ref().is_some_and(|f| f.discount.is_some());
        match frozen.filter(|_| placed_now) {
            Some(mut snap) => {
                // The cart as checked out: nothing can change it any more.
                snap.checked_out = true;
                let unchanged = snap.lines == pre.lines
                    && snap.discount.as_ref().map(|d| d.id) == pre.discount.as_ref().map(|d| d.id);
                let figures = unchanged.then_some((totals.tax, totals.shipping));
                self.install(Binding::Closed(cart_id), Arc::new(snap), figures);
            }
            None => self.invalidate(Binding::Closed(cart_id)),
        }
        if used_code {
            // The checkout counted a use of the code: other carts cached with it must see
            // the new count (a code may now be used up).
            self.carts.clear_cache();
        }
        let order = self.placed_order(cart_id).await?;
        if placed_now {
            self.carts.emit(vec![CartEvent::CheckedOut { cart_id }]);
        }
        Ok(Order {
            placed_now,
            ..order
        })
    }

    /// The order of a checked-out cart this value is bound to, as placed.
    async fn placed_order(&self, cart_id: CartId) -> Result<Order, CartError> {
        let snap = self.snapshot().await?;
        let totals = self.totals().await?;
        Ok(Order {
            cart_id,
            lines: snap.lines.clone(),
            totals: Totals {
                checked_out: true,
                ..totals
            },
            placed_now: false,
        })
    }

    /// The checked-out cart the session still names, if it was checked out within the
    /// replay window.
    fn recent_order(&self) -> Option<Arc<Snapshot>> {
        let previous = self.lock().previous.clone()?;
        let window = self.config().checkout_replay_window.whole_seconds();
        (previous.updated_at >= now_epoch().saturating_sub(window)).then_some(previous)
    }

    /// Binds this value to `snap` as read (and, when known, its tax and shipping).
    fn install(&self, binding: Binding, snap: Arc<Snapshot>, figures: Option<(Decimal, Decimal)>) {
        let mut st = self.lock();
        st.binding = binding;
        st.snap = Some(snap);
        st.tax = figures.map(|f| f.0);
        st.shipping = figures.map(|f| f.1);
    }

    // ---- save and restore --------------------------------------------------------------

    /// Freezes the cart as a payload: lines keyed `"kind:id"` and the discount code.
    pub async fn to_serializable(&self) -> Result<CartPayload, CartError> {
        let snap = self.snapshot().await?;
        Ok(CartPayload::new(
            snap.lines.clone(),
            snap.discount.as_ref().map(|d| d.code.clone()),
        ))
    }

    /// Restores a payload into this cart, all or nothing: each line is set to the
    /// payload's quantity and price (lines not in the payload stay). Quantities must be
    /// within the line maximum; with a catalogue, every product must exist and every price
    /// must be the product's current price. The discount is re-applied only if it still
    /// exists, is valid, and the cart has none.
    pub async fn from_serializable(&mut self, payload: &CartPayload) -> Result<(), CartError> {
        let lines = self.checked_lines(payload.lines().to_vec())?;
        let refs: Vec<ProductRef> = lines.iter().map(|l| l.product.clone()).collect();
        let products = self.catalog_products(&refs).await?;
        if self.config().catalog.is_some() {
            for (l, product) in lines.iter().zip(&products) {
                // Matched by kind and id; prices compared to cents, as everywhere.
                let p = product
                    .as_ref()
                    .ok_or_else(|| CartError::ProductNotFound(l.product.clone()))?;
                check_price(p.price(), l.unit_price)?;
            }
        }
        let wanted: Vec<(ProductRef, i64)> = lines
            .iter()
            .map(|l| (l.product.clone(), l.quantity))
            .collect();
        self.check_stock_of(&wanted, Some(&products)).await?;
        let discount = match payload.discount_code() {
            Some(code) => match normalize_code(code) {
                Ok(code) => {
                    self.carts
                        .inner
                        .store
                        .backend
                        .discount_by_code(&code)
                        .await?
                }
                Err(_) => None,
            },
            None => None,
        };
        let now = OffsetDateTime::now_utc();
        let mut events = Vec::new();
        let id = self
            .locked(&[], false, |locked| {
                let t = &locked.target;
                ensure_open(t)?;
                events = set_events(t, &lines);
                let mut writes: Vec<Write> = lines
                    .iter()
                    .map(|l| Write::Upsert {
                        cart: t.id,
                        line: l.clone(),
                    })
                    .collect();
                if let (Some(d), None) = (&discount, &t.discount) {
                    let after = after_writes(&t.lines, &writes);
                    if d.check(subtotal(&after), now).is_ok() {
                        writes.push(Write::SetDiscount {
                            cart: t.id,
                            discount: Some(d.id),
                        });
                    }
                }
                Ok(writes)
            })
            .await?;
        if id.is_some() {
            self.carts.emit(events);
        }
        Ok(())
    }
}

/// `PriceMismatch` unless `given` is the product's price (both to cents, half-up, as
/// everywhere money is compared); a product with no price skips the check (PRICE-05).
fn check_price(expected: Option<Decimal>, given: Decimal) -> Result<(), CartError> {
    match expected.map(money::cents) {
        Some(expected) if expected != money::cents(given) => Err(CartError::PriceMismatch {
            expected,
            got: given,
        }),
        _ => Ok(()),
    }
}

/// The quantity a product in both carts ends with under `strategy`.
fn merged_quantity(strategy: MergeStrategy, target: i64, source: i64) -> i64 {
    match strategy {
        MergeStrategy::Add => target.saturating_add(source),
        MergeStrategy::Replace => source,
        MergeStrategy::KeepHigher => target.max(source),
    }
}

/// One line per product, the last one given winning, in the order products first appear.
fn dedupe(lines: Vec<Line>) -> Vec<Line> {
    let mut out: Vec<Line> = Vec::with_capacity(lines.len());
    for line in lines {
        match out.iter_mut().find(|l| l.product == line.product) {
            Some(existing) => *existing = line,
            None => out.push(line),
        }
    }
    out
}

/// The events of setting `lines` on `target`: `ItemUpdated` for a product already there
/// (the quantity may go down), `ItemAdded` for a new one.
fn set_events(target: &Snapshot, lines: &[Line]) -> Vec<CartEvent> {
    lines
        .iter()
        .map(|l| match target.line(&l.product) {
            Some(_) => CartEvent::ItemUpdated {
                cart_id: target.id,
                line: l.clone(),
                deleted: false,
            },
            None => CartEvent::ItemAdded {
                cart_id: target.id,
                line: l.clone(),
            },
        })
        .collect()
}

/// `lines` after the upserts and deletes among `writes`.
fn after_writes(lines: &[Line], writes: &[Write]) -> Vec<Line> {
    let mut after = lines.to_vec();
    for w in writes {
        match w {
            Write::Upsert { line, .. } => {
                match after.iter_mut().find(|x| x.product == line.product) {
                    Some(x) => *x = line.clone(),
                    None => after.push(line.clone()),
                }
            }
            Write::Delete { product, .. } => after.retain(|x| &x.product != product),
            Write::Clear { .. } => after.clear(),
            _ => {}
        }
    }
    after
}

/// A binding key as the cart writes it: 1 to 64 lowercase hex digits.
fn valid_key(key: &str) -> bool {
    (1..=64).contains(&key.len()) && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn exceeds(max: i64) -> CartError {
    CartError::InvalidQuantity(format!("Quantity cannot exceed {max}."))
}

fn ensure_open(snap: &Snapshot) -> Result<(), CartError> {
    if snap.checked_out {
        Err(CartError::CheckedOut)
    } else {
        Ok(())
    }
}

fn discount_amount(snap: &Snapshot, subtotal: Decimal) -> Decimal {
    match &snap.discount {
        // A placed order keeps the discount it was checked out with, even once the code
        // is used up or expired.
        Some(d) if snap.checked_out || d.check(subtotal, OffsetDateTime::now_utc()).is_ok() => {
            d.amount(subtotal)
        }
        _ => money::cents(Decimal::ZERO),
    }
}

fn totals(snap: &Snapshot, tax: Decimal, shipping: Decimal) -> Totals {
    let sub = subtotal(&snap.lines);
    let discount = discount_amount(snap, sub);
    Totals {
        count: snap.lines.iter().map(|l| l.quantity).sum(),
        unique_count: snap.lines.len(),
        subtotal: sub,
        discount_code: snap.discount.as_ref().map(|d| d.code.clone()),
        discount,
        tax,
        shipping,
        total: money::cents((sub - discount + tax + shipping).max(Decimal::ZERO)),
        checked_out: snap.checked_out,
    }
}

/// The checks of checkout, in the original's order, on a freshly read cart; the discount
/// use to count if they pass.
fn checkout_rules(
    snap: &Snapshot,
    min: Option<Decimal>,
    now: OffsetDateTime,
) -> Result<Vec<Write>, CartError> {
    if snap.lines.is_empty() {
        return Err(CartError::EmptyCart);
    }
    let sub = subtotal(&snap.lines);
    if let Some(minimum) = min {
        if sub < minimum {
            return Err(CartError::MinimumOrderNotMet {
                subtotal: sub,
                minimum,
            });
        }
    }
    let mut writes = Vec::new();
    if let Some(d) = &snap.discount {
        d.check(sub, now)?;
        writes.push(Write::UseDiscount { discount: d.id });
    }
    Ok(writes)
}
