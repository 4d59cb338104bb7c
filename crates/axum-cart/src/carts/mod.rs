//! The cart service: [`Carts`], one per app, shared by every request.

use std::fmt;
use std::sync::Arc;

use tokio::sync::broadcast;

mod builder;
mod cache;

pub use builder::CartsBuilder;
pub(crate) use cache::SnapshotCache;

use crate::cart::Cart;
use crate::config::CartConfig;
use crate::discount::{normalize_code, Discount, NewDiscount};
use crate::error::{CartError, DiscountRefusal};
use crate::events::CartEvent;
use crate::outbox::{DeliveryState, OutboxEvent};
use crate::session::SessionAdapter;
use crate::store::EventQuery;
use crate::store::{CartFilter, CartRecord, Store};
use crate::types::CartId;

pub(crate) struct CartsInner {
    pub(crate) store: Store,
    pub(crate) config: CartConfig,
    pub(crate) events: broadcast::Sender<CartEvent>,
    pub(crate) cache: Option<SnapshotCache>,
    /// Woken by every committed change of this process: an in-app relay delivers at once.
    pub(crate) outbox: Arc<tokio::sync::Notify>,
}

/// How many events the outbox holds, by delivery state ([`Carts::event_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventCounts {
    /// Waiting for delivery, or retrying.
    pub pending: u64,
    /// Delivered to every sink (until `cart clean` removes them).
    pub delivered: u64,
    /// Failed the most attempts; waiting for someone to retry them.
    pub parked: u64,
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

    /// The cart of the visitor whose session this is.
    ///
    /// No row is created until the first change; a session pointing at a cart that is gone
    /// or checked out gets a fresh cart.
    pub async fn open(&self, session: impl SessionAdapter) -> Result<Cart, CartError> {
        let session: Arc<dyn SessionAdapter> = Arc::new(session);
        let id = session.cart_id().await.map_err(CartError::session)?;
        Ok(Cart::new(self.clone(), Some(session), id))
    }

    /// A facade over an existing cart, tied to no session (admin pages, background jobs,
    /// the user's cart in a login merge).
    pub fn cart(&self, id: CartId) -> Cart {
        Cart::bound(self.clone(), id)
    }

    /// A new cart tied to no session; its row is created by the first change.
    pub fn new_cart(&self) -> Cart {
        Cart::new(self.clone(), None, None)
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
    /// deleted and the number that would be is returned. Without it, the expired
    /// idempotency keys go too ([`clean_idempotency_keys`](Self::clean_idempotency_keys)).
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
        let key_batch = batch;
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
                break;
            }
        }
        self.clean_idempotency_keys(key_batch).await?;
        Ok(total)
    }

    /// Deletes the idempotency keys of the HTTP routes (`Idempotency-Key`) whose time is
    /// up ([`CartRouter::idempotency_ttl`](crate::CartRouter::idempotency_ttl), 24 hours by
    /// default), in batches of `batch` rows, each its own short statement; returns how
    /// many. [`clean`](Self::clean) calls it too (`cart clean` reports it). A key that
    /// expired and was not deleted yet is already forgotten: its repeat runs again.
    pub async fn clean_idempotency_keys(&self, batch: u32) -> Result<u64, CartError> {
        let batch = i64::from(batch.max(1));
        let backend = &self.inner.store.backend;
        let now = crate::store::now_epoch();
        let mut total: u64 = 0;
        loop {
            let n = backend.delete_expired_keys(now, batch).await?;
            total = total.saturating_add(n);
            if n < batch.unsigned_abs() {
                return Ok(total);
            }
        }
    }

    /// Deletes the outbox's events delivered more than `days` days ago (at least 1), in
    /// batches of `batch` rows. Parked events and events a relay has tried stay. Events
    /// older than that which no relay ever tried are deleted too: an app that runs no relay
    /// with sinks (or no relay with a checkout hook) would otherwise keep every change's
    /// row. **A relay that was down for longer than `days` loses those**: run `cart clean`
    /// with more days than a relay outage can last. Returns how many. `cart clean` runs it
    /// after the carts.
    pub async fn clean_events(&self, days: u32, batch: u32) -> Result<u64, CartError> {
        let cutoff = crate::store::now_epoch() - i64::from(days.max(1)) * 86_400;
        let batch = i64::from(batch.max(1));
        let mut total = 0u64;
        loop {
            let n = self
                .inner
                .store
                .backend
                .delete_delivered(cutoff, batch)
                .await?;
            total = total.saturating_add(n);
            if n < batch.unsigned_abs() {
                return Ok(total);
            }
        }
    }

    /// The outbox's events, newest first: those in `state` (all with `None`), at most
    /// `limit` (1 to 1000). A `checked_out` event is listed once per
    /// [`Consumer`](crate::Consumer) (the sinks, the checkout hook), each with its own
    /// delivery state. What the admin pages and `cart events` list.
    pub async fn events(
        &self,
        state: Option<DeliveryState>,
        limit: u32,
    ) -> Result<Vec<OutboxEvent>, CartError> {
        let query = EventQuery {
            state,
            cart: None,
            limit: i64::from(limit.clamp(1, 1000)),
        };
        self.inner.store.backend.list_events(&query).await
    }

    /// The events of one cart, newest first, at most `limit` (1 to 1000).
    pub async fn cart_events(&self, id: CartId, limit: u32) -> Result<Vec<OutboxEvent>, CartError> {
        let query = EventQuery {
            state: None,
            cart: Some(id),
            limit: i64::from(limit.clamp(1, 1000)),
        };
        self.inner.store.backend.list_events(&query).await
    }

    /// How many events are pending, delivered and parked (per consumer, as
    /// [`events`](Self::events) lists them).
    pub async fn event_counts(&self) -> Result<EventCounts, CartError> {
        let [pending, delivered, parked] = self.inner.store.backend.event_counts().await?;
        Ok(EventCounts {
            pending,
            delivered,
            parked,
        })
    }

    /// Puts parked events back in line with a fresh count of attempts: the one with this
    /// id, or every parked one with `None`. Returns how many (an event parked in the sinks'
    /// and the orders' lane counts twice). The next relay round delivers them.
    pub async fn retry_events(&self, event_id: Option<&str>) -> Result<u64, CartError> {
        let n = self.inner.store.backend.retry_parked(event_id).await?;
        if n > 0 {
            self.inner.outbox.notify_one();
        }
        Ok(n)
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
    pub(crate) fn clear_cache(&self) {
        if let Some(cache) = &self.inner.cache {
            cache.clear();
        }
    }

    /// Drops cached reads of these carts (after a change to them).
    pub(crate) fn forget_cached(&self, ids: &[CartId]) {
        if let Some(cache) = &self.inner.cache {
            cache.forget(ids);
        }
    }

    pub(crate) fn emit(&self, events: Vec<CartEvent>) {
        if !events.is_empty() {
            self.inner.outbox.notify_one();
        }
        for event in events {
            // No subscriber is not an error.
            let _ = self.inner.events.send(event);
        }
    }

    /// Every cart of a user (open ones only with `open_only`), newest first, read page by
    /// page: each page starts after the last cart of the one before, so none is skipped or
    /// listed twice while carts come and go.
    pub(crate) async fn all_user_carts(
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
