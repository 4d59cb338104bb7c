//! Checkout: the rules, the locked write, the order.

use std::sync::Arc;

use rust_decimal::Decimal;
use time::OffsetDateTime;

use super::binding::{Decision, Done, Lock};
use super::{check, Binding, Cart};

use crate::error::CartError;
use crate::events::CartEvent;
use crate::prices::LinePriceChange;
use crate::prices::PricePolicy;
use crate::store::{now_epoch, Snapshot, Write};
use crate::types::{subtotal, CartId, Line, Order, Totals};

impl Cart {
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
    /// [`CartsBuilder::checkout_replay_window`](crate::CartsBuilder::checkout_replay_window) (a double submit, a retry after a lost
    /// response). Inventory is not reserved.
    pub async fn checkout(&mut self) -> Result<Order, CartError> {
        let min = self.config().min_order_amount;
        let policy = self.config().checkout_prices;
        // Calculators run outside the lock, on a fresh read.
        self.refresh().await?;
        let pre = self.snapshot().await?;
        let pre_id = self.binding().id();
        match self.binding() {
            Binding::Closed(id) => {
                self.replay_condition(&pre)?;
                return self.placed_order(id).await;
            }
            Binding::None => {
                if let Some(order) = self.recent_order() {
                    self.replay_condition(&order)?;
                    self.install(Binding::Closed(order.id), order.clone(), None);
                    return self.placed_order(order.id).await;
                }
            }
            Binding::Open(_) | Binding::Unverified(_) => {}
        }
        // The catalogue is read before the lock (one call per kind); the locked plan
        // compares the locked lines with this reading.
        let mut reading = self.price_reading(&pre.lines).await?;
        // The cart as this call expects to check it out: its prices as the policy sets them
        // (a refusal is the locked plan's to decide).
        let expected = match &reading {
            Some(r) => match r.apply(&pre, frozen_keeps(&pre, policy), true) {
                Ok(Some(priced)) => priced.snap,
                _ => (*pre).clone(),
            },
            None => (*pre).clone(),
        };
        // A failing calculator refuses the checkout before anything is written.
        let figures = self.figures(&expected).await?;
        let mut rereads = 0;
        let done = loop {
            // The last attempt checks out a line added since the reading at its own price.
            let complete = rereads >= CATALOGUE_REREADS;
            let done = self
                .locked(Lock::CART_AND_DISCOUNT, |locked| {
                    let t = &locked.target;
                    if t.checked_out {
                        return Ok(Decision::new(Vec::new(), Planned::AlreadyOut));
                    }
                    let (snap, changes, mut writes) = match &reading {
                        Some(r) => match r.apply(t, frozen_keeps(t, policy), complete)? {
                            Some(p) => (p.snap, p.changes, p.writes),
                            None => {
                                let lines = t.lines.clone();
                                return Ok(Decision::new(Vec::new(), Planned::Unread(lines)));
                            }
                        },
                        None => (t.clone(), Vec::new(), Vec::new()),
                    };
                    // The new prices are written first: a checked-out cart takes no change.
                    writes.extend(checkout_rules(&snap, min, OffsetDateTime::now_utc())?);
                    writes.push(Write::CheckOut { cart: t.id });
                    let out = CartEvent::CheckedOut { cart_id: t.id };
                    let planned = Planned::Out(Box::new(snap), changes.clone());
                    let mut decision = Decision::new(writes, planned).with_events(vec![out]);
                    decision.price_changes = changes;
                    Ok(decision)
                })
                .await;
            match done {
                Ok(Done {
                    outcome: Some(Planned::Unread(lines)),
                    ..
                }) => {
                    // A line was added since the catalogue was read: read it again, for
                    // the cart as it now is.
                    rereads += 1;
                    reading = self.price_reading(&lines).await?;
                }
                other => break other,
            }
        };
        let (written, outcome) = match done {
            Err(CartError::CheckedOut) => (None, None),
            Ok(done) => (done.cart, done.outcome),
            Err(e) => return Err(e),
        };
        let Some(cart_id) = written.or(pre_id) else {
            return Err(CartError::EmptyCart);
        };
        let (frozen, price_changes) = match outcome {
            Some(Planned::Out(snap, changes)) if written.is_some() => (Some(*snap), changes),
            _ => (None, Vec::new()),
        };
        let placed_now = frozen.is_some();
        let used_code = frozen.as_ref().is_some_and(|f| f.discount.is_some());
        // The cart as checked out, at the locked version plus the checkout's own step.
        let stepped = frozen.and_then(|snap| {
            let version = snap.version.checked_add(1)?;
            Some(Snapshot { version, ..snap })
        });
        match stepped {
            Some(mut snap) => {
                // Nothing can change it any more.
                snap.checked_out = true;
                let unchanged = snap.lines == expected.lines
                    && snap.discount.as_ref().map(|d| d.id)
                        == expected.discount.as_ref().map(|d| d.id);
                let figures = unchanged.then_some(figures);
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
        Ok(Order {
            placed_now,
            price_changes,
            ..order
        })
    }

    /// The condition ([`Cart::if_version`]) of a repeated checkout, which changes nothing:
    /// it may name the placed cart as it was just before its checkout (a checkout is the
    /// last change a cart takes: the retry of a checkout whose answer was lost) or as it
    /// is. Refused otherwise.
    fn replay_condition(&self, placed: &Snapshot) -> Result<(), CartError> {
        let Some(condition) = self.condition() else {
            return Ok(());
        };
        let before = placed.version.checked_sub(1).map(|version| Snapshot {
            version,
            ..placed.clone()
        });
        if before.is_some_and(|b| check(Some(&condition), &b).is_ok()) {
            self.drop_condition();
            return Ok(());
        }
        self.check_condition(Some(&condition), placed)?;
        self.drop_condition();
        Ok(())
    }

    /// The order of a checked-out cart this value is bound to, as placed.
    pub(super) async fn placed_order(&self, cart_id: CartId) -> Result<Order, CartError> {
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
            price_changes: Vec::new(),
        })
    }

    /// The checked-out cart the session still names, if it was checked out within the
    /// replay window.
    pub(super) fn recent_order(&self) -> Option<Arc<Snapshot>> {
        let previous = self.lock().previous.clone()?;
        let window = self.config().checkout_replay_window.whole_seconds();
        (previous.updated_at >= now_epoch().saturating_sub(window)).then_some(previous)
    }

    /// Binds this value to `snap` as read (and, when known, its tax and shipping).
    pub(super) fn install(
        &self,
        binding: Binding,
        snap: Arc<Snapshot>,
        figures: Option<(Decimal, Decimal)>,
    ) {
        let mut st = self.lock();
        st.binding = binding;
        st.snap = Some(snap);
        st.tax = figures.map(|f| f.0);
        st.shipping = figures.map(|f| f.1);
    }
}

/// The order of the checked-out cart `id` as placed (the relay's checkout hook gets it, with
/// `placed_now: true`); `None` when there is no such checked-out cart.
pub(crate) async fn placed(carts: &crate::Carts, id: CartId) -> Result<Option<Order>, CartError> {
    let cart = carts.cart(id);
    cart.snapshot().await?;
    match cart.binding() {
        Binding::Closed(found) if found == id => {
            let order = cart.placed_order(id).await?;
            Ok(Some(Order {
                placed_now: true,
                ..order
            }))
        }
        _ => Ok(None),
    }
}

/// How many times checkout reads the catalogue again for lines added while it ran.
const CATALOGUE_REREADS: u32 = 2;

/// What the locked plan of a checkout decided.
enum Planned {
    /// The cart was already checked out: nothing to do.
    AlreadyOut,
    /// The cart has lines the catalogue reading does not cover (these are its lines now).
    Unread(Vec<Line>),
    /// Checked out: the cart as checked out, and the lines whose price changed.
    Out(Box<Snapshot>, Vec<LinePriceChange>),
}

/// The checks of checkout, in the original's order, on a freshly read cart; the discount
/// use to count if they pass.
pub(super) fn checkout_rules(
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

/// A frozen cart keeps its prices while its payment runs: it checks out at them.
fn frozen_keeps(cart: &Snapshot, policy: PricePolicy) -> PricePolicy {
    if cart.is_frozen() {
        PricePolicy::Keep
    } else {
        policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discount::{Discount, NewDiscount};
    use crate::error::DiscountRefusal;
    use crate::product::ProductRef;

    fn cart(lines: &[(&str, i64, i64)], discount: Option<Discount>) -> Snapshot {
        Snapshot {
            id: CartId::from_db(1),
            checked_out: false,
            user_id: None,
            discount,
            created_at: 0,
            updated_at: 0,
            frozen_until: None,
            version: 0,
            lines: lines
                .iter()
                .map(|&(kind, quantity, cents)| {
                    let product = ProductRef::new(kind, 1).expect("a product");
                    Line::new(product, quantity, Decimal::new(cents, 2))
                })
                .collect(),
        }
    }

    #[test]
    fn an_empty_cart_cannot_check_out() {
        let now = OffsetDateTime::now_utc();
        let err = checkout_rules(&cart(&[], None), None, now).unwrap_err();
        assert!(matches!(err, CartError::EmptyCart), "{err:?}");
    }

    #[test]
    fn the_minimum_is_the_subtotal_before_discount() {
        let now = OffsetDateTime::now_utc();
        let snap = cart(&[("book", 2, 450)], None); // 9.00
        let err = checkout_rules(&snap, Some(Decimal::TEN), now).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Cart total 9.00 is below the minimum order amount of 10."
        );
        assert!(checkout_rules(&snap, Some(Decimal::new(900, 2)), now)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_valid_discount_counts_one_use_and_an_expired_one_refuses() {
        let now = OffsetDateTime::now_utc();
        let mut code = NewDiscount::fixed("TEN", Decimal::ONE).preview();
        code.id = 7;
        let writes = checkout_rules(&cart(&[("book", 1, 500)], Some(code.clone())), None, now)
            .expect("checks pass");
        assert!(matches!(
            writes.as_slice(),
            [Write::UseDiscount { discount: 7 }]
        ));
        code.valid_until = Some(now - time::Duration::days(1));
        let err = checkout_rules(&cart(&[("book", 1, 500)], Some(code)), None, now).unwrap_err();
        assert!(matches!(
            err,
            CartError::InvalidDiscount(DiscountRefusal::Expired)
        ));
    }
}
