//! One visitor's cart: [`Cart`], its binding to a cart row, and what its parts share.

mod binding;
mod catalog;
mod checkout;
mod discount;
mod freeze;
mod merge;
mod pricing;
mod read;
mod saved;
mod write;

use read::discount_amount;

pub(crate) use checkout::placed;
pub(crate) use pricing::price_change;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use rust_decimal::Decimal;

use crate::carts::Carts;
use crate::config::CartConfig;
use crate::error::{retrying, CartError};
use crate::session::SessionAdapter;
use crate::store::{KeyMark, Snapshot};
use crate::types::{subtotal, CartId, CartView};

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
    /// The condition on this value's changes ([`Cart::if_version`], an HTTP `If-Match`):
    /// one of these must match the cart a change locks. Dropped once a change commits or is
    /// refused for it.
    expect: Option<Vec<Expected>>,
    /// The idempotency key this value's changes are made under (an HTTP `Idempotency-Key`):
    /// each locked write marks it applied in its own transaction.
    mark: Option<Arc<KeyMark>>,
}

/// A version a conditional change expects its cart at (an entity tag of `If-Match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expected {
    /// Which cart.
    pub(crate) cart: Which,
    /// Its version.
    pub(crate) version: u64,
}

/// The cart an [`Expected`] version is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    /// Whichever row the change writes.
    Any,
    /// This row (id 0: no row yet).
    Row(CartId),
    /// The row created at this Unix time (0: no row yet), as an entity tag names it
    /// without giving the cart's id away.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    Created(i64),
}

impl Expected {
    /// Whether the cart as read (or locked) is at this version. "No row yet" is matched by
    /// a row at version 0 too: one nothing has changed, which looks just like no row.
    pub(crate) fn matches(&self, snap: &Snapshot) -> bool {
        self.matches_at(snap.version, snap)
    }

    /// Whether this names the cart `snap` as it was at `version`.
    fn matches_at(&self, version: u64, snap: &Snapshot) -> bool {
        let fresh = self.version == 0;
        version == self.version
            && match self.cart {
                Which::Any => true,
                Which::Row(id) => id == snap.id || (id.get() == 0 && fresh),
                Which::Created(at) => at == snap.created_at || (at == 0 && fresh),
            }
    }
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
        id: CartId::from_db(0),
        checked_out: false,
        user_id: None,
        discount: None,
        created_at: 0,
        updated_at: 0,
        frozen_until: None,
        version: 0,
        lines: Vec::new(),
    })
}

impl Cart {
    /// A cart of `carts` for this session (if any), bound to the cart id the session holds.
    pub(crate) fn new(
        carts: Carts,
        session: Option<Arc<dyn SessionAdapter>>,
        id: Option<CartId>,
    ) -> Cart {
        Cart::with_binding(
            carts,
            session,
            id.map_or(Binding::None, Binding::Unverified),
        )
    }

    /// A cart bound to an existing row, with no session.
    pub(crate) fn bound(carts: Carts, id: CartId) -> Cart {
        Cart::with_binding(carts, None, Binding::Open(id))
    }

    fn with_binding(
        carts: Carts,
        session: Option<Arc<dyn SessionAdapter>>,
        binding: Binding,
    ) -> Cart {
        Cart {
            carts,
            session,
            state: Mutex::new(State {
                binding,
                snap: None,
                previous: None,
                tax: None,
                shipping: None,
                expect: None,
                mark: None,
            }),
        }
    }

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

    /// The cart's version as of this value's last read or write (read now if this value
    /// has not read its cart yet, or has changed it since: one query).
    ///
    /// Every change that commits adds exactly 1 to it, whichever request, process or value
    /// makes it: every line change, the discount, clear, freeze and unfreeze, checkout,
    /// binding to a user, a merge into it, a restore, an admin's edit. A cart row starts
    /// at 0 (nothing changed yet), and a visitor with no cart row is at 0 too; carts that
    /// existed before the migration that added versions start at 1. A call that writes
    /// nothing (removing a discount the cart does not have) leaves it as it is; a call that
    /// writes what is already there (an update to the same quantity, clearing an empty
    /// cart) is a change, with its event, and steps it. The JSON of
    /// the cart routes carries it as `version`, their `ETag` names it. Pass it to
    /// [`if_version`](Self::if_version) to make a change conditional on it.
    ///
    /// ```
    /// # async fn demo(mut cart: axum_cart::Cart, book: axum_cart::ProductRef) -> Result<(), axum_cart::CartError> {
    /// use rust_decimal::Decimal;
    /// let before = cart.version().await?;
    /// cart.add(&book, Decimal::new(1250, 2), 1).await?;
    /// assert_eq!(cart.version().await?, before + 1); // nobody else changed it meanwhile
    /// # Ok(()) }
    /// ```
    pub async fn version(&self) -> Result<u64, CartError> {
        Ok(self.snapshot().await?.version)
    }

    /// Makes this value's next change conditional: it goes ahead only if the cart is still
    /// at `version` (as [`version`](Self::version) gave it) when the change holds the
    /// cart's lock, and is refused otherwise with [`CartError::VersionMismatch`] (the
    /// current version; 412 `version_mismatch` over HTTP), nothing written. The check is
    /// made in the change's own transaction, so of two changes made on the same version,
    /// one goes through and the other is refused. A conditional `add` runs as a locked
    /// change instead of the one-statement upsert (a few statements more).
    ///
    /// The condition names the cart this value has read: if the change would write another
    /// row (the session's cart was checked out or merged away meanwhile), it is refused too.
    /// It holds until a change commits or is refused for it; a change that changes nothing
    /// keeps it (the version is then still the same).
    ///
    /// ```
    /// # async fn demo(mut cart: axum_cart::Cart, book: axum_cart::ProductRef) -> Result<(), axum_cart::CartError> {
    /// use axum_cart::CartError;
    /// let seen = cart.version().await?;
    /// // … the visitor looks at the cart; another tab changes it meanwhile …
    /// match cart.if_version(seen).update(&book, 3, None).await {
    ///     Ok(_) => {}
    ///     Err(CartError::VersionMismatch { current }) => {
    ///         // Nothing was written: show the cart as it now is (at `current`).
    ///         cart.refresh().await?;
    ///     }
    ///     Err(other) => return Err(other),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn if_version(&mut self, version: u64) -> &mut Self {
        let mut st = self.lock();
        // The row this value has read; "no row yet" when it knows it has none.
        let cart = match st.binding {
            Binding::Open(id) | Binding::Closed(id) => Which::Row(id),
            Binding::None => Which::Row(CartId::from_db(0)),
            Binding::Unverified(_) => Which::Any,
        };
        st.expect = Some(vec![Expected { cart, version }]);
        drop(st);
        self
    }

    /// When the cart was created (Unix seconds, 0 with no row) and its version, as this
    /// value has read them: what the cart routes' entity tag names.
    #[cfg(feature = "http")]
    pub(crate) async fn tag_parts(&self) -> Result<(i64, u64), CartError> {
        let snap = self.snapshot().await?;
        Ok((snap.created_at, snap.version))
    }

    /// Makes this value's changes conditional on one of these versions (an HTTP
    /// `If-Match`; an empty list matches nothing).
    #[cfg(feature = "http")]
    pub(crate) fn expect(&mut self, tags: Vec<Expected>) {
        self.lock().expect = Some(tags);
    }

    /// Makes this value's changes under an idempotency key (`Idempotency-Key`): each
    /// locked write marks it applied in its own transaction, and an `add` runs as a locked
    /// write.
    #[cfg(feature = "http")]
    pub(crate) fn under_key(&mut self, mark: Arc<KeyMark>) {
        self.lock().mark = Some(mark);
    }

    /// The idempotency key of this value's changes, if any.
    pub(super) fn key_mark(&self) -> Option<Arc<KeyMark>> {
        self.lock().mark.clone()
    }

    /// The condition on this value's changes, if any.
    pub(super) fn condition(&self) -> Option<Vec<Expected>> {
        self.lock().expect.clone()
    }

    /// Drops the condition: a change committed, or was refused for it.
    pub(super) fn drop_condition(&self) {
        self.lock().expect = None;
    }

    /// `Err(VersionMismatch)` (and the condition dropped) when `condition` is set and the
    /// cart as `snap` has it matches none of it.
    pub(super) fn check_condition(
        &self,
        condition: Option<&[Expected]>,
        snap: &Snapshot,
    ) -> Result<(), CartError> {
        let checked = check(condition, snap);
        if checked.is_err() {
            self.drop_condition();
        }
        checked
    }

    /// [`check_condition`](Self::check_condition) with this value's own condition, for a
    /// change that ends before any write, judged on what this value read: a stale condition
    /// is refused first, as HTTP evaluates a precondition before the request.
    pub(super) async fn precondition(&self) -> Result<(), CartError> {
        let Some(condition) = self.condition() else {
            return Ok(());
        };
        let snap = self.snapshot().await?;
        self.check_condition(Some(&condition), &snap)
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
                        let backend = &self.carts.inner.store.backend;
                        match retrying(|| backend.merged_into(id)).await? {
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
            cart_id: self.binding().id(),
            user_id: snap.user_id.clone(),
        }
    }
}

/// `Err(VersionMismatch)` when `condition` is set and the cart as `snap` has it matches none
/// of it.
pub(super) fn check(condition: Option<&[Expected]>, snap: &Snapshot) -> Result<(), CartError> {
    match condition {
        Some(tags) if !tags.iter().any(|t| t.matches(snap)) => Err(CartError::VersionMismatch {
            current: snap.version,
        }),
        _ => Ok(()),
    }
}

/// [`check`] under the cart's lock: a checked-out cart also matches the version just before
/// its checkout (the last change it took). A checkout double-submitted with the `If-Match`
/// it was sent with gets its order, and any other change the 409 of a checked-out cart,
/// rather than a 412 for the checkout that won the race.
pub(super) fn check_locked(
    condition: Option<&[Expected]>,
    snap: &Snapshot,
) -> Result<(), CartError> {
    if let (Some(tags), true, Some(before)) =
        (condition, snap.checked_out, snap.version.checked_sub(1))
    {
        if tags.iter().any(|t| t.matches_at(before, snap)) {
            return Ok(());
        }
    }
    check(condition, snap)
}

pub(super) fn exceeds(max: i64) -> CartError {
    CartError::InvalidQuantity(format!("Quantity cannot exceed {max}."))
}

pub(super) fn ensure_open(snap: &Snapshot) -> Result<(), CartError> {
    if snap.checked_out {
        Err(CartError::CheckedOut)
    } else {
        Ok(())
    }
}

/// The cart's lines and discount may change: it is open and not frozen for a payment.
pub(super) fn ensure_changeable(snap: &Snapshot) -> Result<(), CartError> {
    ensure_open(snap)?;
    if snap.is_frozen() {
        Err(CartError::CartFrozen)
    } else {
        Ok(())
    }
}
