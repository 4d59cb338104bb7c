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

pub(crate) use pricing::price_change;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use rust_decimal::Decimal;

use crate::carts::Carts;
use crate::config::CartConfig;
use crate::error::{retrying, CartError};
use crate::session::SessionAdapter;
use crate::store::Snapshot;
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
