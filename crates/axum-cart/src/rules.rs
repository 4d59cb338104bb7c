//! Quantity rules: the minimum, maximum and step a product's line must keep.

use std::fmt;

use crate::error::CartError;
use crate::product::ProductRef;

/// How many units of one product a line may hold, as the product's
/// [`Product::quantity_rule`](crate::Product::quantity_rule) says: at least `min`, at most
/// `max` (the cart's own maximum stays the outer bound), in multiples of `step`.
///
/// ```
/// use axum_cart::QuantityRule;
/// let course = QuantityRule::new().max(1);
/// assert!(course.allows(1));
/// assert!(!course.allows(2));
/// let beans = QuantityRule::new().min(2).step(2).max(20);
/// assert!(beans.allows(4));
/// assert!(!beans.allows(3));
/// assert_eq!(beans.to_string(), "at least 2, at most 20, in steps of 2");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct QuantityRule {
    /// The fewest units a line may hold (at least 1).
    pub min: i64,
    /// The most units a line may hold, if the product limits it.
    pub max: Option<i64>,
    /// Quantities are multiples of this (at least 1).
    pub step: i64,
}

impl Default for QuantityRule {
    fn default() -> Self {
        QuantityRule::new()
    }
}

impl QuantityRule {
    /// No rule: any quantity from 1 up to the cart's maximum.
    pub const fn new() -> QuantityRule {
        QuantityRule {
            min: 1,
            max: None,
            step: 1,
        }
    }

    /// At least `min` units (values below 1 count as 1).
    pub const fn min(mut self, min: i64) -> QuantityRule {
        self.min = if min < 1 { 1 } else { min };
        self
    }

    /// At most `max` units (values below 1 count as 1).
    pub const fn max(mut self, max: i64) -> QuantityRule {
        self.max = Some(if max < 1 { 1 } else { max });
        self
    }

    /// Multiples of `step` (values below 1 count as 1).
    pub const fn step(mut self, step: i64) -> QuantityRule {
        self.step = if step < 1 { 1 } else { step };
        self
    }

    /// Whether this is no rule at all.
    pub fn is_none(&self) -> bool {
        *self == QuantityRule::new()
    }

    /// Whether a line may hold `quantity` units.
    pub fn allows(&self, quantity: i64) -> bool {
        self.refusal(quantity).is_none()
    }

    /// The cart's error for a line of `product` with `quantity` units, if the rule refuses it.
    pub(crate) fn check(&self, product: &ProductRef, quantity: i64) -> Result<(), CartError> {
        match self.refusal(quantity) {
            None => Ok(()),
            Some(refusal) => Err(CartError::QuantityRule {
                product: product.clone(),
                rule: *self,
                refusal,
            }),
        }
    }

    fn refusal(&self, quantity: i64) -> Option<QuantityRefusal> {
        if quantity < self.min {
            return Some(QuantityRefusal::BelowMinimum { min: self.min });
        }
        if let Some(max) = self.max.filter(|max| quantity > *max) {
            return Some(QuantityRefusal::AboveMaximum { max });
        }
        if quantity % self.step != 0 {
            return Some(QuantityRefusal::NotAMultiple { step: self.step });
        }
        None
    }

    /// The refusal of an add that would pass the rule's maximum.
    pub(crate) fn above(&self, product: &ProductRef) -> Option<CartError> {
        self.max.map(|max| CartError::QuantityRule {
            product: product.clone(),
            rule: *self,
            refusal: QuantityRefusal::AboveMaximum { max },
        })
    }
}

impl fmt::Display for QuantityRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![format!("at least {}", self.min)];
        if let Some(max) = self.max {
            parts.push(format!("at most {max}"));
        }
        if self.step > 1 {
            parts.push(format!("in steps of {}", self.step));
        }
        f.write_str(&parts.join(", "))
    }
}

/// Which part of a [`QuantityRule`] a quantity broke; each has its own stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuantityRefusal {
    /// Fewer than the minimum (`quantity_below_minimum`).
    BelowMinimum {
        /// The rule's minimum.
        min: i64,
    },
    /// More than the maximum (`quantity_above_maximum`).
    AboveMaximum {
        /// The rule's maximum.
        max: i64,
    },
    /// Not a multiple of the step (`quantity_not_a_multiple`).
    NotAMultiple {
        /// The rule's step.
        step: i64,
    },
}

impl QuantityRefusal {
    /// The stable code of the refusal, the `code` of JSON error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            QuantityRefusal::BelowMinimum { .. } => "quantity_below_minimum",
            QuantityRefusal::AboveMaximum { .. } => "quantity_above_maximum",
            QuantityRefusal::NotAMultiple { .. } => "quantity_not_a_multiple",
        }
    }
}

impl fmt::Display for QuantityRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantityRefusal::BelowMinimum { min } => write!(f, "must be at least {min}"),
            QuantityRefusal::AboveMaximum { max } => write!(f, "cannot exceed {max}"),
            QuantityRefusal::NotAMultiple { step } => write!(f, "must be a multiple of {step}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_part_of_a_rule_refuses_with_its_own_code() {
        let rule = QuantityRule::new().min(2).max(10).step(2);
        let p = ProductRef::new("coffee", 1).unwrap();
        let code = |q| match rule.check(&p, q) {
            Err(CartError::QuantityRule { refusal, .. }) => refusal.code(),
            Err(_) => "other",
            Ok(()) => "ok",
        };
        assert_eq!(code(1), "quantity_below_minimum");
        assert_eq!(code(12), "quantity_above_maximum");
        assert_eq!(code(3), "quantity_not_a_multiple");
        assert_eq!(code(4), "ok");
        let err = rule.check(&p, 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "The quantity of coffee:1 must be a multiple of 2 (at least 2, at most 10, in steps of 2)."
        );
    }

    #[test]
    fn nonsense_bounds_are_clamped() {
        let rule = QuantityRule::new().min(-5).step(0).max(0);
        assert_eq!((rule.min, rule.max, rule.step), (1, Some(1), 1));
        assert!(QuantityRule::new().is_none());
    }
}
