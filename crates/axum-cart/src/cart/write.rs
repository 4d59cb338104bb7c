//! Line changes: add, update, remove, clear, bulk add.

use rust_decimal::Decimal;

use super::binding::{Decision, Lock};
use super::{ensure_changeable, exceeds, Binding, Cart};

use crate::error::{CartError, WRITE_ATTEMPTS};
use crate::events::CartEvent;
use crate::money;
use crate::options::LineKey;
use crate::product::{product_ref, Product, ProductRef};
use crate::store::{AddLimits, AddOutcome, Snapshot, Write};
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

    /// [`add`](Self::add) with line options, price validation and/or an inventory check.
    ///
    /// The options are checked against [`Product::options`]
    /// ([`CartError::InvalidOptions`]), the quantity against [`Product::quantity_rule`]
    /// ([`CartError::QuantityRule`]), and a new line against the cart's most lines
    /// ([`CartError::TooManyLines`]).
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
        let pref = product_ref(product)?;
        let extra = options.options.check(product)?;
        if options.validate_price {
            check_price(priced(product.price(), extra)?, unit_price)?;
        }
        let max = self.config().line_limit();
        if quantity > max {
            return Err(exceeds(max));
        }
        let rule = product.quantity_rule();
        if rule.max.is_some_and(|m| quantity > m) || quantity % rule.step != 0 {
            rule.check(&pref, quantity)?;
        }
        if let Binding::Closed(_) = self.binding() {
            self.precondition().await?;
            return Err(CartError::CheckedOut);
        }
        let line = Line::new(pref, quantity, unit_price).with_options(options.options);
        // With no checker configured everything is in stock: no question, no query.
        let ask_stock = options.check_inventory && self.config().inventory.is_some();
        if ask_stock || quantity < rule.min {
            // The quantity the line will really have: read the cart (one query), so a
            // session id of a cart that is checked out or gone counts as no line at all.
            let existing = match self.binding() {
                Binding::None => 0,
                _ => {
                    let binding = self.binding();
                    self.invalidate(binding);
                    let snap = self.snapshot().await?;
                    match self.binding() {
                        Binding::Open(_) => snap.same_line(&line).map_or(0, |l| l.quantity),
                        _ => 0,
                    }
                }
            };
            let wanted = existing.saturating_add(quantity);
            rule.check(&line.product, wanted)?;
            if ask_stock {
                self.check_stock(&line.product, Some(product), wanted)
                    .await?;
            }
        }
        let limits = AddLimits {
            quantity: rule.max.map_or(max, |m| m.min(max)),
            lines: self.config().max_lines,
        };
        let exceeded = |line: &Line| match rule.max {
            Some(m) if m < max => rule.above(&line.product).unwrap_or(exceeds(max)),
            _ => exceeds(max),
        };
        if self.condition().is_some() || self.key_mark().is_some() {
            return self.add_locked(line, limits, exceeded).await;
        }
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
                .add(cart_id, &line, limits)
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
                AddOutcome::Exceeded => return Err(exceeded(&line)),
                AddOutcome::Frozen => return Err(CartError::CartFrozen),
                AddOutcome::TooManyLines => {
                    return Err(CartError::TooManyLines {
                        max: self.config().max_lines,
                    })
                }
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

    /// A conditional add ([`Cart::if_version`]) or one under an idempotency key: the add
    /// as a locked change, so the version is checked (and the key marked) under the cart's
    /// lock in the transaction that writes the line. The same
    /// refusals as the one-statement add: checked out, frozen, past the line's maximum
    /// (`exceeded`), a new line in a full cart.
    async fn add_locked(
        &mut self,
        line: Line,
        limits: AddLimits,
        exceeded: impl Fn(&Line) -> CartError + Send + Sync,
    ) -> Result<Line, CartError> {
        let done = self
            .locked(Lock::CART, |locked| {
                let t = &locked.target;
                ensure_changeable(t)?;
                let (written, write) = match t.same_line(&line) {
                    Some(old) => {
                        let quantity = old
                            .quantity
                            .checked_add(line.quantity)
                            .filter(|q| *q <= limits.quantity)
                            .ok_or_else(|| exceeded(&line))?;
                        let written = Line {
                            quantity,
                            ..line.clone()
                        };
                        let update = Write::Update {
                            cart: t.id,
                            line: written.clone(),
                        };
                        (written, update)
                    }
                    None if t.lines.len() >= limits.lines => {
                        return Err(CartError::TooManyLines { max: limits.lines })
                    }
                    None => {
                        let insert = Write::Upsert {
                            cart: t.id,
                            line: line.clone(),
                        };
                        (line.clone(), insert)
                    }
                };
                let added = CartEvent::ItemAdded {
                    cart_id: t.id,
                    line: written.clone(),
                };
                Ok(Decision::new(vec![write], written).with_events(vec![added]))
            })
            .await?;
        let (Some(_), Some(line)) = (done.cart, done.outcome) else {
            return Err(CartError::CheckedOut);
        };
        Ok(line)
    }

    /// Sets the quantity (0 removes it) and, if given, the unit price of the product's
    /// line with no options. See [`update_line`](Self::update_line) for a line with options.
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
    /// [`AddOptions::options`] names the line with those options. A quantity above 0 must
    /// keep the product's [`Product::quantity_rule`].
    pub async fn update_with(
        &mut self,
        product: &dyn Product,
        quantity: i64,
        unit_price: Option<Decimal>,
        options: AddOptions,
    ) -> Result<Line, CartError> {
        let pref = product_ref(product)?;
        let key = LineKey::new(pref, &options.options);
        self.set_quantity(&key, Some(product), quantity, unit_price, &options)
            .await
    }

    /// Sets the quantity of the line with this key (0 removes it): how the bundled router
    /// changes a line, with or without options. The product's quantity rule (and, with
    /// `check_inventory`, the stock) is asked of the catalogue's product, when the
    /// catalogue has it.
    pub async fn update_line(
        &mut self,
        key: &LineKey,
        quantity: i64,
        options: AddOptions,
    ) -> Result<Line, CartError> {
        let product = match quantity > 0 && self.config().catalog.is_some() {
            true => self
                .catalog_products(std::slice::from_ref(key.product()))
                .await?
                .pop()
                .flatten(),
            false => None,
        };
        let asked: Option<&dyn Product> = product.as_deref().map(|p| p as &dyn Product);
        self.set_quantity(key, asked, quantity, None, &options)
            .await
    }

    async fn set_quantity(
        &mut self,
        key: &LineKey,
        product: Option<&dyn Product>,
        quantity: i64,
        unit_price: Option<Decimal>,
        options: &AddOptions,
    ) -> Result<Line, CartError> {
        if quantity < 0 {
            return Err(CartError::InvalidQuantity(
                "Quantity cannot be negative.".into(),
            ));
        }
        let unit_price = unit_price.map(money::unit_price).transpose()?;
        let max = self.config().line_limit();
        if quantity > max {
            return Err(exceeds(max));
        }
        if let (true, Some(given), Some(product)) = (options.validate_price, unit_price, product) {
            let extra = options.options.check(product)?;
            check_price(priced(product.price(), extra)?, given)?;
        }
        if quantity > 0 {
            if let Some(product) = product {
                product.quantity_rule().check(key.product(), quantity)?;
            }
            if options.check_inventory {
                let asked: &dyn Product = product.unwrap_or(key.product());
                self.check_stock(key.product(), Some(asked), quantity)
                    .await?;
            }
        }
        let done = self
            .locked(Lock::CART, |locked| {
                let t = &locked.target;
                ensure_changeable(t)?;
                let old = t
                    .line(key)
                    .ok_or_else(|| CartError::ItemDoesNotExist(key.clone()))?;
                let line = Line {
                    quantity,
                    unit_price: unit_price.unwrap_or(old.unit_price),
                    ..old.clone()
                };
                let (write, line, deleted) = if quantity == 0 {
                    let delete = Write::Delete {
                        cart: t.id,
                        key: key.clone(),
                    };
                    (delete, old.clone(), true)
                } else {
                    let update = Write::Update {
                        cart: t.id,
                        line: line.clone(),
                    };
                    (update, line, false)
                };
                let updated = CartEvent::ItemUpdated {
                    cart_id: t.id,
                    line: line.clone(),
                    deleted,
                };
                Ok(Decision::new(vec![write], line).with_events(vec![updated]))
            })
            .await?;
        done.outcome
            .ok_or_else(|| CartError::ItemDoesNotExist(key.clone()))
    }

    /// Removes the product's line with no options. See [`remove_line`](Self::remove_line)
    /// for a line with options.
    pub async fn remove(&mut self, product: &(impl Product + ?Sized)) -> Result<(), CartError> {
        let key = LineKey::plain(product_ref(product)?);
        self.remove_line(&key).await
    }

    /// Removes the line with this key.
    pub async fn remove_line(&mut self, key: &LineKey) -> Result<(), CartError> {
        let done = self
            .locked(Lock::CART, |locked| {
                let t = &locked.target;
                ensure_changeable(t)?;
                let old = t
                    .line(key)
                    .ok_or_else(|| CartError::ItemDoesNotExist(key.clone()))?;
                let removed = CartEvent::ItemRemoved {
                    cart_id: t.id,
                    product: old.product.clone(),
                    options: old.options.clone(),
                };
                let delete = Write::Delete {
                    cart: t.id,
                    key: key.clone(),
                };
                Ok(Decision::writes(vec![delete]).with_events(vec![removed]))
            })
            .await?;
        if done.cart.is_none() {
            return Err(CartError::ItemDoesNotExist(key.clone()));
        }
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
            return self.precondition().await;
        }
        self.locked(Lock::CART, |locked| {
            let t = &locked.target;
            ensure_changeable(t)?;
            let cleared = CartEvent::Cleared { cart_id: t.id };
            Ok(Decision::writes(vec![Write::Clear { cart: t.id }]).with_events(vec![cleared]))
        })
        .await?;
        Ok(())
    }

    /// Writes several lines at once, all or nothing. Each line is set to the given
    /// quantity and price (an existing line is replaced, not increased); a line given
    /// twice (same product and options) is one line, the last one given. With a catalogue,
    /// each line's options and quantity are checked against its product (a product the
    /// catalogue does not know is written as given); with an inventory checker, every
    /// line's quantity is checked first. The cart may not pass its most lines.
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
        let products = match self.config().catalog.is_some() {
            true => {
                let refs: Vec<ProductRef> = wanted.iter().map(|(p, _)| p.clone()).collect();
                Some(self.catalog_products(&refs).await?)
            }
            false => None,
        };
        for (line, product) in lines.iter().zip(products.iter().flatten()) {
            if let Some(product) = product {
                line.options.check(product.as_ref())?;
                product
                    .quantity_rule()
                    .check(&line.product, line.quantity)?;
            }
        }
        self.check_stock_of(&wanted, products.as_deref()).await?;
        let max_lines = self.config().max_lines;
        self.locked(Lock::CART, |locked| {
            let t = &locked.target;
            ensure_changeable(t)?;
            let new = lines.iter().filter(|l| t.same_line(l).is_none()).count();
            if t.lines.len().saturating_add(new) > max_lines {
                return Err(CartError::TooManyLines { max: max_lines });
            }
            let writes = lines
                .iter()
                .map(|l| Write::Upsert {
                    cart: t.id,
                    line: l.clone(),
                })
                .collect();
            Ok(Decision::writes(writes).with_events(set_events(t, &lines)))
        })
        .await?;
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

/// `price + extra` (what the options add), `None` for a product with no price.
pub(super) fn priced(price: Option<Decimal>, extra: Decimal) -> Result<Option<Decimal>, CartError> {
    price
        .map(|p| {
            p.checked_add(extra).ok_or_else(|| {
                CartError::InvalidPrice("The price with options is too large.".into())
            })
        })
        .transpose()
}

/// One line per product and options, the last one given winning, in the order lines first
/// appear.
pub(super) fn dedupe(lines: Vec<Line>) -> Vec<Line> {
    let mut out: Vec<Line> = Vec::with_capacity(lines.len());
    for line in lines {
        match out.iter_mut().find(|l| l.same_line(&line)) {
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
        .map(|l| match target.same_line(l) {
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
            Write::Upsert { line, .. } | Write::Update { line, .. } => {
                match after.iter_mut().find(|x| x.same_line(line)) {
                    Some(x) => *x = line.clone(),
                    None => after.push(line.clone()),
                }
            }
            Write::Delete { key, .. } => after.retain(|x| x.key() != *key),
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
                key: LineKey::plain(ProductRef::new("b", 1).expect("b")),
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
