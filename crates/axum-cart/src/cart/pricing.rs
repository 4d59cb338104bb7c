//! The current price of a line, and the checkout's price policy applied to a locked cart.
//!
//! Every comparison of a line's price with the catalogue goes through
//! [`current_unit_price`].

use std::collections::HashMap;
use std::sync::Arc;

use rust_decimal::Decimal;

use super::Cart;

use crate::error::CartError;
use crate::money;
use crate::prices::{LinePriceChange, PriceChange, PricePolicy};
use crate::product::{Product, ProductRef};
use crate::store::{Snapshot, Write};
use crate::types::Line;

/// The catalogue's current unit price of `line`: the product's price plus what the line's
/// options add, half-up to cents.
/// `None` when the product has no price, or one the schema cannot store (negative, too
/// large): the line then keeps its own price.
pub(crate) fn current_unit_price(line: &Line, product: &dyn Product) -> Option<Decimal> {
    // What the line's options add now; options the product no longer takes keep the price.
    let extra = match line.options.is_empty() {
        true => Ok(Decimal::ZERO),
        false => line.options.check(product),
    };
    let extra = match extra {
        Ok(extra) => extra,
        Err(e) => {
            tracing::warn!(product = %line.product, error = %e, "the line's options are no longer the product's; the line keeps its price");
            return None;
        }
    };
    let price = money::cents(product.price()?.checked_add(extra)?);
    match money::unit_price(price) {
        Ok(price) => Some(price),
        Err(e) => {
            tracing::warn!(product = %line.product, error = %e, "the catalogue's price cannot be stored; the line keeps its price");
            None
        }
    }
}

/// How `line`'s price differs from the catalogue's current one, if it does.
pub(crate) fn price_change(line: &Line, product: &dyn Product) -> Option<PriceChange> {
    let now = current_unit_price(line, product)?;
    (now != line.unit_price).then(|| PriceChange::new(line.unit_price, now))
}

/// One reading of the catalogue for a checkout: the product of each line read (`None` when
/// the catalogue no longer has it).
pub(super) struct PriceReading {
    products: HashMap<ProductRef, Option<Arc<dyn Product>>>,
}

/// A locked cart as a checkout would check it out.
pub(super) struct Priced {
    /// The cart with the lines as checked out.
    pub snap: Snapshot,
    /// The lines whose price changed (under `Reprice`: the new prices of `snap`).
    pub changes: Vec<LinePriceChange>,
    /// The writes that store the new prices.
    pub writes: Vec<Write>,
}

impl PriceReading {
    /// The cart as checked out under `policy`, or `Ok(None)` when it has a line this
    /// reading did not cover (added since) and `complete` is false; a covered line whose
    /// product is gone refuses, and so does a changed price under `Refuse`. With `complete`,
    /// a line not covered keeps its price.
    pub(super) fn apply(
        &self,
        cart: &Snapshot,
        policy: PricePolicy,
        complete: bool,
    ) -> Result<Option<Priced>, CartError> {
        let mut lines = Vec::with_capacity(cart.lines.len());
        let mut changes = Vec::new();
        let mut writes = Vec::new();
        let mut gone = Vec::new();
        let mut unread = false;
        for line in &cart.lines {
            let product = match self.products.get(&line.product) {
                None => {
                    unread = true;
                    lines.push(line.clone());
                    continue;
                }
                Some(None) => {
                    gone.push(line.product.clone());
                    continue;
                }
                Some(Some(p)) => p,
            };
            let change = match policy {
                PricePolicy::Keep => None,
                _ => price_change(line, product.as_ref()),
            };
            let Some(change) = change else {
                lines.push(line.clone());
                continue;
            };
            changes.push(LinePriceChange::new(
                line.product.clone(),
                product.name(),
                change,
            ));
            if policy == PricePolicy::Reprice {
                let repriced = Line {
                    unit_price: change.to,
                    ..line.clone()
                };
                writes.push(Write::Update {
                    cart: cart.id,
                    line: repriced.clone(),
                });
                lines.push(repriced);
            } else {
                lines.push(line.clone());
            }
        }
        if unread && !complete {
            return Ok(None);
        }
        if !gone.is_empty() {
            return Err(CartError::ProductUnavailable(gone));
        }
        if policy == PricePolicy::Refuse && !changes.is_empty() {
            return Err(CartError::PricesChanged(changes));
        }
        Ok(Some(Priced {
            snap: Snapshot {
                lines,
                ..cart.clone()
            },
            changes,
            writes,
        }))
    }
}

impl Cart {
    /// Whether checkout compares prices with the catalogue: a catalogue is configured.
    pub(crate) fn checks_prices(&self) -> bool {
        self.config().checks_catalog()
    }

    /// One reading of the catalogue for these lines (one call per kind), or `None` when no
    /// catalogue is configured.
    pub(super) async fn price_reading(
        &self,
        lines: &[Line],
    ) -> Result<Option<PriceReading>, CartError> {
        if !self.checks_prices() {
            return Ok(None);
        }
        let refs: Vec<ProductRef> = lines.iter().map(|l| l.product.clone()).collect();
        let found = self.catalog_products(&refs).await?;
        Ok(Some(PriceReading {
            products: refs.into_iter().zip(found).collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::CartId;

    struct Priced(Option<Decimal>);
    impl Product for Priced {
        fn kind(&self) -> &str {
            "coffee"
        }
        fn id(&self) -> i64 {
            1
        }
        fn price(&self) -> Option<Decimal> {
            self.0
        }
        fn name(&self) -> String {
            "Coffee".into()
        }
    }

    fn line(cents: i64) -> Line {
        Line::new(
            ProductRef::new("coffee", 1).expect("a product"),
            2,
            Decimal::new(cents, 2),
        )
    }

    #[test]
    fn the_current_price_is_rounded_to_cents_and_must_be_storable() {
        let l = line(1250);
        assert_eq!(
            current_unit_price(&l, &Priced(Some(Decimal::new(130049, 4)))),
            Some(Decimal::new(1300, 2))
        );
        assert_eq!(current_unit_price(&l, &Priced(None)), None);
        assert_eq!(
            current_unit_price(&l, &Priced(Some(Decimal::new(-1, 0)))),
            None
        );
        assert_eq!(price_change(&l, &Priced(Some(Decimal::new(125, 1)))), None);
        let change = price_change(&l, &Priced(Some(Decimal::new(13, 0)))).expect("a change");
        assert_eq!(
            (change.from.to_string(), change.to.to_string()),
            ("12.50".into(), "13.00".into())
        );
        assert!(change.went_up());
    }

    #[test]
    fn policies_reprice_refuse_or_keep() {
        let snap = Snapshot {
            id: CartId::from_db(1),
            checked_out: false,
            user_id: None,
            discount: None,
            created_at: 0,
            updated_at: 0,
            frozen_until: None,
            version: 0,
            lines: vec![line(1250)],
        };
        let product: Arc<dyn Product> = Arc::new(Priced(Some(Decimal::new(1300, 2))));
        let reading = PriceReading {
            products: [(snap.lines[0].product.clone(), Some(product))].into(),
        };
        let priced = reading
            .apply(&snap, PricePolicy::Reprice, false)
            .expect("reprices")
            .expect("read");
        assert_eq!(priced.snap.lines[0].unit_price.to_string(), "13.00");
        assert_eq!(priced.writes.len(), 1);
        assert_eq!(
            priced.changes[0].message(),
            "The price of Coffee went up from 12.50 to 13.00 since you added it."
        );
        let err = reading
            .apply(&snap, PricePolicy::Refuse, false)
            .err()
            .expect("refused");
        assert!(
            matches!(err, CartError::PricesChanged(ref c) if c.len() == 1),
            "{err:?}"
        );
        let kept = reading
            .apply(&snap, PricePolicy::Keep, false)
            .expect("kept")
            .expect("read");
        assert_eq!(kept.snap.lines, snap.lines);
        assert!(kept.changes.is_empty() && kept.writes.is_empty());
        let gone = PriceReading {
            products: [(snap.lines[0].product.clone(), None)].into(),
        };
        for policy in [PricePolicy::Reprice, PricePolicy::Refuse, PricePolicy::Keep] {
            let err = gone.apply(&snap, policy, false).err().expect("refused");
            assert!(matches!(err, CartError::ProductUnavailable(_)), "{err:?}");
        }
        let unread = PriceReading {
            products: HashMap::new(),
        };
        assert!(unread
            .apply(&snap, PricePolicy::Reprice, false)
            .expect("ok")
            .is_none());
        assert!(unread
            .apply(&snap, PricePolicy::Reprice, true)
            .expect("ok")
            .is_some());
    }
}
