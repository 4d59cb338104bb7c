//! Users: bind, merge, login and forget.

use time::OffsetDateTime;

use super::binding::{valid_key, Decision, Lock};
use super::write::after_writes;
use super::{check, ensure_changeable, ensure_open, Binding, Cart};

use crate::error::CartError;
use crate::events::CartEvent;
use crate::product::ProductRef;
use crate::store::Write;
use crate::types::{subtotal, Line, MergeReport, MergeStrategy};

impl Cart {
    /// Binds the cart to an app user (creating its row if needed); `None` unbinds.
    ///
    /// User ids are strings: an app with integer keys passes `id.to_string()`.
    pub async fn bind_to_user(&mut self, user_id: Option<&str>) -> Result<(), CartError> {
        user_id.map(crate::user::check_user_id).transpose()?;
        let user = user_id.map(str::to_owned);
        self.locked(Lock::CART, |locked| {
            let t = &locked.target;
            ensure_open(t)?;
            if t.user_id == user {
                return Ok(Decision::nothing());
            }
            Ok(Decision::writes(vec![Write::SetUser {
                cart: t.id,
                user: user.clone(),
            }]))
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
    pub(super) async fn merge_with_key(
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
        // Each product's own maximum caps its merged line, as the line maximum does.
        let caps: Vec<(ProductRef, i64)> = refs
            .iter()
            .zip(&products)
            .filter_map(|(r, p)| Some((r.clone(), p.as_ref()?.quantity_rule().max?.min(max))))
            .collect();
        let cap = |p: &ProductRef| caps.iter().find(|(r, _)| r == p).map_or(max, |(_, c)| *c);
        if self.config().inventory.is_some() {
            // Each merged line at the quantity it will have (inventory is not reserved, so
            // this is the check of what was just read).
            let wanted: Vec<(ProductRef, i64)> = src_snap
                .lines
                .iter()
                .map(|sl| {
                    let q = match own.same_line(sl) {
                        Some(tl) => merged_quantity(strategy, tl.quantity, sl.quantity),
                        None => sl.quantity,
                    };
                    (sl.product.clone(), q.min(cap(&sl.product)))
                })
                .collect();
            self.check_stock_of(&wanted, Some(&products)).await?;
        }
        let sources = [src_id];
        // The source's own condition (a login's guest cart under `If-Match`), checked under
        // its lock as this cart's is.
        let source_condition = source.condition();
        let done = self
            .locked(Lock::merging(&sources), |locked| {
                let t = &locked.target;
                ensure_changeable(t)?;
                let mut report = MergeReport::default();
                let mut events = Vec::new();
                let Some(s) = locked.others.first() else {
                    return Ok(Decision::new(Vec::new(), report));
                };
                check(source_condition.as_deref(), s)?;
                ensure_changeable(s)?;
                let mut writes = Vec::new();
                for sl in &s.lines {
                    if unknown.contains(&sl.product) {
                        report.unknown_products.push(sl.product.clone());
                    }
                    let (quantity, unit_price, existed) = match t.same_line(sl) {
                        Some(tl) => {
                            let (q, p) = match strategy {
                                MergeStrategy::Add => {
                                    (tl.quantity.saturating_add(sl.quantity), sl.unit_price)
                                }
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
                    let line = Line {
                        quantity: quantity.min(cap(&sl.product)),
                        unit_price,
                        ..sl.clone()
                    };
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
                events.push(CartEvent::Merged {
                    cart_id: t.id,
                    from: vec![s.id],
                });
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
                Ok(Decision::new(writes, report).with_events(events))
            })
            .await
            .inspect_err(|e| {
                if let CartError::VersionMismatch { .. } = e {
                    source.drop_condition();
                    source.invalidate(Binding::Unverified(src_id));
                }
            })?;
        let report = done.outcome.unwrap_or_default();
        let id = done.cart;
        if !report.unknown_products.is_empty() {
            tracing::warn!(
                products = ?report.unknown_products,
                "merged lines whose product the catalogue does not know; they were kept"
            );
        }
        source.invalidate(Binding::None);
        if id.is_some() {
            source.drop_condition();
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
}

/// The quantity a product in both carts ends with under `strategy`.
pub(super) fn merged_quantity(strategy: MergeStrategy, target: i64, source: i64) -> i64 {
    match strategy {
        MergeStrategy::Add => target.saturating_add(source),
        MergeStrategy::Replace => source,
        MergeStrategy::KeepHigher => target.max(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_strategy_settles_a_product_in_both_carts() {
        assert_eq!(merged_quantity(MergeStrategy::Add, 2, 3), 5);
        assert_eq!(merged_quantity(MergeStrategy::Replace, 2, 3), 3);
        assert_eq!(merged_quantity(MergeStrategy::KeepHigher, 2, 3), 3);
        assert_eq!(merged_quantity(MergeStrategy::KeepHigher, 7, 3), 7);
    }

    #[test]
    fn adding_never_overflows() {
        assert_eq!(merged_quantity(MergeStrategy::Add, i64::MAX, 5), i64::MAX);
    }
}
