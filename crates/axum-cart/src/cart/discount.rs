//! Discount codes on a cart: apply and remove.

use time::OffsetDateTime;

use super::binding::{Decision, Lock};
use super::{ensure_changeable, Cart};

use crate::discount::{normalize_code, Discount};
use crate::error::{CartError, DiscountRefusal};
use crate::events::CartEvent;
use crate::store::Write;
use crate::types::subtotal;

impl Cart {
    /// Applies a discount code (trimmed, any case). Refused if the cart already has one,
    /// if the code does not exist, or if it is not valid for this cart now.
    pub async fn apply_discount(&mut self, code: &str) -> Result<Discount, CartError> {
        let snap = self.snapshot().await?;
        self.precondition().await?;
        ensure_changeable(&snap)?;
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
        self.locked(Lock::CART, |locked| {
            let t = &locked.target;
            ensure_changeable(t)?;
            if t.discount.is_some() {
                return Err(CartError::InvalidDiscount(DiscountRefusal::AlreadyApplied));
            }
            discount.check(subtotal(&t.lines), now)?;
            let applied = CartEvent::DiscountApplied {
                cart_id: t.id,
                code: discount.code.clone(),
            };
            let write = Write::SetDiscount {
                cart: t.id,
                discount: Some(discount.id),
            };
            Ok(Decision::writes(vec![write]).with_events(vec![applied]))
        })
        .await?;
        Ok(discount)
    }

    /// Removes the applied discount; nothing happens if there is none.
    pub async fn remove_discount(&mut self) -> Result<(), CartError> {
        self.locked(Lock::CART, |locked| {
            let t = &locked.target;
            let Some(d) = &t.discount else {
                return Ok(Decision::nothing());
            };
            ensure_changeable(t)?;
            let removed = CartEvent::DiscountRemoved {
                cart_id: t.id,
                code: d.code.clone(),
            };
            let write = Write::SetDiscount {
                cart: t.id,
                discount: None,
            };
            Ok(Decision::writes(vec![write]).with_events(vec![removed]))
        })
        .await?;
        Ok(())
    }
}
