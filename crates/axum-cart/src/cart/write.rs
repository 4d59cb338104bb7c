//! Line changes: add, update, remove, clear, bulk add.

use rust_decimal::Decimal;

use super::binding::{Decision, Lock};
use super::{ensure_open, exceeds, Binding, Cart};

use crate::error::{CartError, WRITE_ATTEMPTS};
use crate::events::CartEvent;
use crate::money;
use crate::product::{product_ref, Product, ProductRef};
use crate::store::{AddOutcome, Snapshot, Write};
use crate::types::{AddOptions, Line, BATCH_LIMIT};

impl Cart {
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
        let done = self
            .locked(Lock::CART, |locked| {
                let t = &locked.target;
                ensure_open(t)?;
                let old = t
                    .line(&pref)
                    .ok_or_else(|| CartError::ItemDoesNotExist(pref.clone()))?;
                let line = Line::new(pref.clone(), quantity, unit_price.unwrap_or(old.unit_price));
                if quantity == 0 {
                    let delete = Write::Delete {
                        cart: t.id,
                        product: pref.clone(),
                    };
                    Ok(Decision::new(vec![delete], (old.clone(), true)))
                } else {
                    let upsert = Write::Upsert {
                        cart: t.id,
                        line: line.clone(),
                    };
                    Ok(Decision::new(vec![upsert], (line, false)))
                }
            })
            .await?;
        let (line, deleted) = done
            .outcome
            .ok_or_else(|| CartError::ItemDoesNotExist(pref.clone()))?;
        if let Some(cart_id) = done.cart {
            self.carts.emit(vec![CartEvent::ItemUpdated {
                cart_id,
                line: line.clone(),
                deleted,
            }]);
        }
        Ok(line)
    }

    /// Removes a product's line.
    pub async fn remove(&mut self, product: &(impl Product + ?Sized)) -> Result<(), CartError> {
        let pref = product_ref(product)?;
        let done = self
            .locked(Lock::CART, |locked| {
                let t = &locked.target;
                ensure_open(t)?;
                t.line(&pref)
                    .ok_or_else(|| CartError::ItemDoesNotExist(pref.clone()))?;
                Ok(Decision::writes(vec![Write::Delete {
                    cart: t.id,
                    product: pref.clone(),
                }]))
            })
            .await?;
        let cart_id = done
            .cart
            .ok_or_else(|| CartError::ItemDoesNotExist(pref.clone()))?;
        self.carts.emit(vec![CartEvent::ItemRemoved {
            cart_id,
            product: pref,
        }]);
        Ok(())
    }

    /// Removes every line. The cart row, its discount and its user stay.
    pub async fn clear(&mut self) -> Result<(), CartError> {
        if let Binding::Unverified(_) = self.binding() {
            // Which row the session's id names (as the locked change would find out).
            self.snapshot().await?;
        }
        if self.binding() == Binding::None {
            // No row: nothing to clear.
            return Ok(());
        }
        let done = self
            .locked(Lock::CART, |locked| {
                let t = &locked.target;
                ensure_open(t)?;
                Ok(Decision::writes(vec![Write::Clear { cart: t.id }]))
            })
            .await?;
        if let Some(cart_id) = done.cart {
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
        let done = self
            .locked(Lock::CART, |locked| {
                let t = &locked.target;
                ensure_open(t)?;
                let writes = lines
                    .iter()
                    .map(|l| Write::Upsert {
                        cart: t.id,
                        line: l.clone(),
                    })
                    .collect();
                Ok(Decision::new(writes, set_events(t, &lines)))
            })
            .await?;
        if let (Some(_), Some(events)) = (done.cart, done.outcome) {
            self.carts.emit(events);
        }
        Ok(lines)
    }

    /// Checks lines for `add_bulk` and `from_serializable`: quantity 1..=max, prices, size.
    pub(super) fn checked_lines(&self, lines: Vec<Line>) -> Result<Vec<Line>, CartError> {
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
}

/// `PriceMismatch` unless `given` is the product's price (both to cents, half-up, as
/// everywhere money is compared); a product with no price skips the check (PRICE-05).
pub(super) fn check_price(expected: Option<Decimal>, given: Decimal) -> Result<(), CartError> {
    match expected.map(money::cents) {
        Some(expected) if expected != money::cents(given) => Err(CartError::PriceMismatch {
            expected,
            got: given,
        }),
        _ => Ok(()),
    }
}

/// One line per product, the last one given winning, in the order products first appear.
pub(super) fn dedupe(lines: Vec<Line>) -> Vec<Line> {
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
pub(super) fn set_events(target: &Snapshot, lines: &[Line]) -> Vec<CartEvent> {
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
pub(super) fn after_writes(lines: &[Line], writes: &[Write]) -> Vec<Line> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::CartId;

    fn line(kind: &str, id: i64, quantity: i64) -> Line {
        Line::new(
            ProductRef::new(kind, id).expect("a product"),
            quantity,
            Decimal::ONE,
        )
    }

    #[test]
    fn dedupe_keeps_the_last_quantity_in_first_seen_order() {
        let lines = dedupe(vec![line("a", 1, 1), line("b", 1, 2), line("a", 1, 5)]);
        let seen: Vec<(String, i64)> = lines
            .iter()
            .map(|l| (l.product.kind().to_owned(), l.quantity))
            .collect();
        assert_eq!(seen, [("a".to_owned(), 5), ("b".to_owned(), 2)]);
    }

    #[test]
    fn after_writes_applies_upserts_deletes_and_clears_in_order() {
        let cart = CartId::from_db(1);
        let before = [line("a", 1, 1), line("b", 1, 1)];
        let writes = [
            Write::Upsert {
                cart,
                line: line("a", 1, 4),
            },
            Write::Delete {
                cart,
                product: ProductRef::new("b", 1).expect("b"),
            },
            Write::Upsert {
                cart,
                line: line("c", 1, 2),
            },
        ];
        let after = after_writes(&before, &writes);
        let seen: Vec<(&str, i64)> = after
            .iter()
            .map(|l| (l.product.kind(), l.quantity))
            .collect();
        assert_eq!(seen, [("a", 4), ("c", 2)]);
        assert!(after_writes(&before, &[Write::Clear { cart }]).is_empty());
    }

    #[test]
    fn prices_compare_to_the_cent_and_a_product_without_price_passes() {
        assert!(check_price(Some(Decimal::new(1250, 2)), Decimal::new(12500, 3)).is_ok());
        assert!(check_price(None, Decimal::new(1, 0)).is_ok());
        let err = check_price(Some(Decimal::new(1250, 2)), Decimal::new(1249, 2)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Price mismatch: expected 12.50, got 12.49."
        );
    }
}
