//! Save and restore: the cart as a payload and back.

use time::OffsetDateTime;

use super::binding::{Decision, Lock};
use super::write::{after_writes, check_price, priced, set_events};
use super::{ensure_changeable, Cart};

use crate::discount::normalize_code;
use crate::error::CartError;
use crate::product::ProductRef;
use crate::serial::CartPayload;
use crate::store::Write;
use crate::types::subtotal;

impl Cart {
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
    /// within the line maximum and the cart within its most lines; with a catalogue, every
    /// product must exist, take the line's options and allow its quantity, and every price
    /// must be the product's current price (with what the options add). The discount is re-applied only if it still
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
                let extra = l.options.check(p.as_ref())?;
                p.quantity_rule().check(&l.product, l.quantity)?;
                check_price(priced(p.price(), extra)?, l.unit_price)?;
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
        let max_lines = self.config().max_lines;
        self.locked(Lock::CART, |locked| {
            let t = &locked.target;
            ensure_changeable(t)?;
            let new = lines.iter().filter(|l| t.same_line(l).is_none()).count();
            if t.lines.len().saturating_add(new) > max_lines {
                return Err(CartError::TooManyLines { max: max_lines });
            }
            let events = set_events(t, &lines);
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
            Ok(Decision::writes(writes).with_events(events))
        })
        .await?;
        Ok(())
    }
}
