//! The binding of a `Cart` to its row: creation, session keys, merges followed, the locked write.

use super::{check_locked, empty_snapshot, Binding, Cart};

use crate::error::{retrying, CartError};
use crate::events::CartEvent;
use crate::outbox::{record, Context};
use crate::session::random_key;
use crate::store::{Locked, Snapshot, Write, WriteOutcome, WriteRequest};

use super::write::after_writes;
use crate::types::CartId;

impl Cart {
    /// The row this value writes to: the bound one, or a new row created for the session
    /// (or found, when a concurrent request of the same session created it first: the row's
    /// unique session key makes them meet) and stored in the session. If the session cannot
    /// store it, the row is removed again and the error returned: no row is left that no
    /// session points to.
    pub(super) async fn ensure_row(&self) -> Result<CartId, CartError> {
        if let Binding::Open(id) = self.binding() {
            return Ok(id);
        }
        let key = self.binding_key();
        let backend = &self.carts.inner.store.backend;
        let key_text = key.as_ref().map(|(k, _)| k.as_str());
        let (id, created) = retrying(|| backend.create_cart(key_text)).await?;
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
                retrying(|| backend.set_key(id, &identity)).await?;
            }
        }
        self.invalidate(Binding::Open(id));
        Ok(id)
    }

    /// The unique key a new cart row of this session carries: the session's identity
    /// (shared by its concurrent requests), else a random one; `None` with no session.
    pub(super) fn binding_key(&self) -> Option<(String, bool)> {
        let session = self.session.as_ref()?;
        Some(match session.identity().filter(|k| valid_key(k)) {
            Some(identity) => (identity, true),
            None => (random_key(), false),
        })
    }

    /// Stores a newly created (or found) cart in the session and saves the session now.
    pub(super) async fn remember_new(&self, id: CartId) -> Result<(), CartError> {
        let Some(session) = &self.session else {
            return Ok(());
        };
        session.set_cart_id(id).await.map_err(CartError::session)?;
        session.persist().await.map_err(CartError::session)
    }

    /// Releases this session's binding key from whichever cart holds it: that cart stops
    /// being the session's (logout, login as someone else), so the session's next cart
    /// must not find it.
    pub(super) async fn release_binding(&self) -> Result<(), CartError> {
        let key = self.session.as_ref().and_then(|s| s.identity());
        if let Some(key) = key.filter(|k| valid_key(k)) {
            let backend = &self.carts.inner.store.backend;
            retrying(|| backend.release_key(&key)).await?;
        }
        Ok(())
    }

    /// The cart row is gone: merged into the user's cart by a concurrent login, or cleaned.
    /// A merged cart is followed to where it went (the login already pointed the session
    /// there; this request's view of the session may predate that), so a change racing a
    /// login lands in the user's cart. Else, if the session now names another cart, carry
    /// on with that one; else start afresh.
    pub(super) async fn rebind_after_gone(&self, gone: CartId) -> Result<(), CartError> {
        let backend = &self.carts.inner.store.backend;
        let mut next = gone;
        for _ in 0..8 {
            match retrying(|| backend.merged_into(next)).await? {
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
    pub(super) async fn remember(&self, id: CartId) -> Result<(), CartError> {
        if let Some(session) = &self.session {
            session.set_cart_id(id).await.map_err(CartError::session)?;
        }
        Ok(())
    }

    /// Runs a locked change: `plan` sees the freshly read, locked carts and decides what to
    /// write and what the change reports. Handles the binding (creating the row when needed,
    /// stale ids, checked-out carts), runs a deadlock victim again ([`CartError::retry_after`])
    /// and drops the cache afterwards. With a condition ([`Cart::if_version`]), the locked
    /// target must match it before the plan is even asked: the check and the version step
    /// of the write are in one transaction, under the row's lock. Under an idempotency key
    /// ([`Cart::under_key`]), the transaction marks the key applied before it commits.
    pub(super) async fn locked<T, F>(
        &mut self,
        lock: Lock<'_>,
        mut plan: F,
    ) -> Result<Done<T>, CartError>
    where
        F: FnMut(&Locked) -> Result<Decision<T>, CartError> + Send,
        T: Send,
    {
        let binding = self.binding();
        if let Binding::Unverified(_) = binding {
            self.snapshot().await?;
        }
        let others = lock.others;
        let condition = self.condition();
        let condition = condition.as_deref();
        let mark = self.key_mark();
        let mut outcome: Option<T> = None;
        let mut events: Vec<CartEvent> = Vec::new();
        let mut transient = 0;
        let mut gone = 0;
        while gone < 2 {
            let binding = self.binding();
            let target = match binding {
                Binding::None => {
                    // Ask the plan on an empty cart first: no row is created for nothing.
                    if others.is_empty() {
                        let probe = Locked {
                            target: (*empty_snapshot()).clone(),
                            others: Vec::new(),
                        };
                        self.check_condition(condition, &probe.target)?;
                        let decision = plan(&probe)?;
                        if decision.writes.is_empty() {
                            return Ok(Done::nothing(Some(decision.outcome)));
                        }
                    }
                    self.ensure_row().await?
                }
                Binding::Closed(_) => {
                    self.precondition().await?;
                    return Err(CartError::CheckedOut);
                }
                Binding::Unverified(id) | Binding::Open(id) => id,
            };
            let request = WriteRequest {
                target,
                others,
                lock_discount: lock.discount,
                mark: mark.as_deref(),
            };
            // The one place a plan's outcome is carried out of the backend's transaction.
            let mut decide = |locked: &Locked| {
                check_locked(condition, &locked.target)?;
                let decision = plan(locked)?;
                outcome = Some(decision.outcome);
                let mut writes = decision.writes;
                if !writes.is_empty() {
                    let events = &decision.events;
                    let changes = &decision.price_changes;
                    writes.extend(outbox_writes(locked, &writes, events, changes));
                }
                events = decision.events;
                Ok(writes)
            };
            let result = self
                .carts
                .inner
                .store
                .backend
                .write(request, &mut decide)
                .await;
            match result {
                // A deadlock or serialisation failure rolled everything back: run it again.
                Err(e) if e.is_transient() => {
                    transient += 1;
                    e.retry_after(transient)?;
                }
                Ok(WriteOutcome::Written) => {
                    if let Some(mark) = &mark {
                        mark.set_applied();
                    }
                    self.carts.forget_cached(&[target]);
                    self.carts.forget_cached(others);
                    self.carts.emit(std::mem::take(&mut events));
                    self.invalidate(Binding::Open(target));
                    self.drop_condition();
                    return Ok(Done {
                        cart: Some(target),
                        outcome,
                    });
                }
                Ok(WriteOutcome::Unchanged) => return Ok(Done::nothing(outcome)),
                Ok(WriteOutcome::Gone(missing)) => {
                    self.carts.forget_cached(others);
                    self.carts.forget_cached(&[target]);
                    if missing != target {
                        // Another cart of the write (a merge source) is gone: nothing to do.
                        return Ok(Done::nothing(None));
                    }
                    self.rebind_after_gone(target).await?;
                    gone += 1;
                }
                Err(CartError::CheckedOut) => {
                    self.invalidate(Binding::Closed(target));
                    return Err(CartError::CheckedOut);
                }
                Err(e @ CartError::VersionMismatch { .. }) => {
                    // What this value read is out of date: the next read is fresh.
                    self.carts.forget_cached(&[target]);
                    self.invalidate(binding);
                    self.drop_condition();
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(CartError::CheckedOut)
    }
}

/// Which carts a change of the facade locks: its own, the sources of a merge, and the
/// discount rows (a checkout counting a use).
#[derive(Debug, Clone, Copy)]
pub(super) struct Lock<'a> {
    others: &'a [CartId],
    discount: bool,
}

impl Lock<'static> {
    /// This cart only.
    pub(super) const CART: Lock<'static> = Lock {
        others: &[],
        discount: false,
    };
    /// This cart and its discount.
    pub(super) const CART_AND_DISCOUNT: Lock<'static> = Lock {
        others: &[],
        discount: true,
    };
}

impl<'a> Lock<'a> {
    /// This cart and the carts merged into it.
    pub(super) fn merging(sources: &'a [CartId]) -> Lock<'a> {
        Lock {
            others: sources,
            discount: false,
        }
    }
}

/// What a plan decided on the locked carts: the writes, and what the change reports to its
/// caller (the line written, the events to send, …).
pub(super) struct Decision<T> {
    pub writes: Vec<Write>,
    pub outcome: T,
    /// What the change did, as events: written into the outbox in its transaction and sent
    /// to the subscribers once it committed.
    pub events: Vec<CartEvent>,
    /// A checkout's price changes, for its `checked_out` event.
    pub price_changes: Vec<crate::prices::LinePriceChange>,
}

impl<T> Decision<T> {
    pub(super) fn new(writes: Vec<Write>, outcome: T) -> Decision<T> {
        Decision {
            writes,
            outcome,
            events: Vec::new(),
            price_changes: Vec::new(),
        }
    }

    /// These writes make these events.
    pub(super) fn with_events(mut self, events: Vec<CartEvent>) -> Decision<T> {
        self.events = events;
        self
    }
}

impl Decision<()> {
    /// These writes, nothing to report.
    pub(super) fn writes(writes: Vec<Write>) -> Decision<()> {
        Decision::new(writes, ())
    }

    /// No change.
    pub(super) fn nothing() -> Decision<()> {
        Decision::new(Vec::new(), ())
    }
}

/// How a locked change ended: the cart written (`None` when nothing was written), and the
/// outcome of the plan whose decision stands (`None` when no plan ran to the end: a merge
/// source that was gone).
pub(super) struct Done<T> {
    pub cart: Option<CartId>,
    pub outcome: Option<T>,
}

impl<T> Done<T> {
    fn nothing(outcome: Option<T>) -> Done<T> {
        Done {
            cart: None,
            outcome,
        }
    }
}

/// The outbox rows of a change's `events`, with what they need of the cart after `writes`:
/// its user, its version (the change steps it once), its lines and its discount. An event
/// of a merge source (its `cleared`) gets the source's user and the version after its last
/// one; the source is gone after the merge.
fn outbox_writes(
    locked: &Locked,
    writes: &[Write],
    events: &[CartEvent],
    price_changes: &[crate::prices::LinePriceChange],
) -> Vec<Write> {
    if events.is_empty() {
        return Vec::new();
    }
    let target = &locked.target;
    let lines = after_writes(&target.lines, writes);
    let mut user = target.user_id.clone();
    for w in writes {
        if let Write::SetUser { cart, user: u } = w {
            if *cart == target.id {
                user.clone_from(u);
            }
        }
    }
    let discount = target.discount.as_ref().map(|d| {
        let amount = d.amount(crate::types::subtotal(&lines));
        (d.code.as_str(), amount)
    });
    let next = |s: &Snapshot| i64::try_from(s.version).ok().and_then(|v| v.checked_add(1));
    let cx = Context {
        user_id: user.as_deref(),
        version: next(target),
        lines: Some(&lines),
        discount,
        price_changes,
    };
    events
        .iter()
        .map(|e| {
            let source = if locked.others.is_empty() {
                None
            } else {
                let cart = crate::outbox::cart_of(e);
                locked
                    .others
                    .iter()
                    .find(|o| o.id == cart && cart != target.id)
            };
            let cx = match source {
                Some(s) => Context {
                    user_id: s.user_id.as_deref(),
                    version: next(s),
                    lines: Some(&[][..]),
                    discount: None,
                    price_changes: &[],
                },
                None => cx,
            };
            Write::Event(Box::new(record(e, cx)))
        })
        .collect()
}

/// A binding key as the cart writes it: 1 to 64 lowercase hex digits.
pub(super) fn valid_key(key: &str) -> bool {
    (1..=64).contains(&key.len()) && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
