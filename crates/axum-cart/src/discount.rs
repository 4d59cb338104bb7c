//! Discount codes: percentage or fixed amount, with validity windows, usage caps and a
//! minimum cart value.
//!
//! Codes are stored trimmed and upper-cased, and looked up the same way, so `"summer25 "`
//! applies `SUMMER25` on every backend.

use rust_decimal::Decimal;
use time::OffsetDateTime;

use crate::error::CartError;
use crate::money;

/// The longest discount code the schema stores.
pub const MAX_CODE_LEN: usize = 50;

/// How a discount's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DiscountKind {
    /// `value` percent of the subtotal (0 to 100).
    Percent,
    /// `value` off the subtotal, never more than the subtotal.
    Fixed,
}

impl DiscountKind {
    /// `"percent"` or `"fixed"`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            DiscountKind::Percent => "percent",
            DiscountKind::Fixed => "fixed",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, CartError> {
        match s {
            "percent" => Ok(DiscountKind::Percent),
            "fixed" => Ok(DiscountKind::Fixed),
            other => Err(CartError::InvalidDiscount(format!(
                "Unknown discount type {other:?}: expected \"percent\" or \"fixed\"."
            ))),
        }
    }
}

/// A discount row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Discount {
    /// Database id.
    pub id: i64,
    /// The code, upper-case.
    pub code: String,
    /// Percent or fixed.
    pub kind: DiscountKind,
    /// Percent (0–100) or amount, two decimal places.
    pub value: Decimal,
    /// The subtotal the cart must reach for the code to apply.
    pub min_cart_value: Option<Decimal>,
    /// How many checkouts may use the code; `None` is unlimited.
    pub max_uses: Option<i64>,
    /// How many checkouts have used it.
    pub current_uses: i64,
    /// Switched off codes never apply.
    pub active: bool,
    /// Valid from this instant (inclusive).
    #[serde(with = "time::serde::rfc3339::option")]
    pub valid_from: Option<OffsetDateTime>,
    /// Valid until this instant (inclusive).
    #[serde(with = "time::serde::rfc3339::option")]
    pub valid_until: Option<OffsetDateTime>,
}

impl Discount {
    /// Why this discount cannot apply to a cart with this subtotal at `now`, if it cannot.
    /// The checks and messages are the original's, in its order.
    pub fn check(&self, subtotal: Decimal, now: OffsetDateTime) -> Result<(), CartError> {
        let refuse = |m: String| Err(CartError::InvalidDiscount(m));
        if !self.active {
            return refuse("This discount is no longer active.".into());
        }
        if let Some(max) = self.max_uses {
            if self.current_uses >= max {
                return refuse("This discount has reached its maximum number of uses.".into());
            }
        }
        if matches!(self.valid_from, Some(from) if now < from) {
            return refuse("This discount is not yet valid.".into());
        }
        if matches!(self.valid_until, Some(until) if now > until) {
            return refuse("This discount has expired.".into());
        }
        if let Some(min) = self.min_cart_value {
            if subtotal < min {
                return refuse(format!(
                    "Minimum cart value of {} required.",
                    money::cents(min)
                ));
            }
        }
        Ok(())
    }

    /// The amount this discount takes off `subtotal`: exact to the cent (half-up), never
    /// more than the subtotal, never negative.
    ///
    /// ```
    /// use axum_cart::NewDiscount;
    /// use rust_decimal::Decimal;
    /// # use std::str::FromStr;
    /// let d = NewDiscount::percent("QUARTER", Decimal::from(25)).preview();
    /// assert_eq!(d.amount(Decimal::from_str("12.34").unwrap()).to_string(), "3.09");
    /// ```
    pub fn amount(&self, subtotal: Decimal) -> Decimal {
        let subtotal = subtotal.max(Decimal::ZERO);
        let raw = match self.kind {
            DiscountKind::Percent => subtotal * self.value / Decimal::ONE_HUNDRED,
            DiscountKind::Fixed => self.value,
        };
        money::cents(raw.max(Decimal::ZERO).min(subtotal))
    }
}

/// A discount to create, with a builder for the optional rules.
///
/// ```
/// use axum_cart::NewDiscount;
/// use rust_decimal::Decimal;
/// let summer = NewDiscount::percent("summer25", Decimal::from(25))
///     .min_cart_value(Decimal::from(50))
///     .max_uses(500);
/// assert_eq!(summer.validate().unwrap().code, "SUMMER25");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct NewDiscount {
    code: String,
    kind: DiscountKind,
    value: Decimal,
    min_cart_value: Option<Decimal>,
    max_uses: Option<i64>,
    active: bool,
    valid_from: Option<OffsetDateTime>,
    valid_until: Option<OffsetDateTime>,
}

impl NewDiscount {
    /// A percentage discount (`value` between 0 and 100).
    pub fn percent(code: impl Into<String>, value: Decimal) -> Self {
        Self::new(code, DiscountKind::Percent, value)
    }

    /// A fixed-amount discount.
    pub fn fixed(code: impl Into<String>, value: Decimal) -> Self {
        Self::new(code, DiscountKind::Fixed, value)
    }

    /// A discount of either kind.
    pub fn new(code: impl Into<String>, kind: DiscountKind, value: Decimal) -> Self {
        NewDiscount {
            code: code.into(),
            kind,
            value,
            min_cart_value: None,
            max_uses: None,
            active: true,
            valid_from: None,
            valid_until: None,
        }
    }

    /// The subtotal a cart must reach.
    pub fn min_cart_value(mut self, value: Decimal) -> Self {
        self.min_cart_value = Some(value);
        self
    }

    /// How many checkouts may use it.
    pub fn max_uses(mut self, uses: i64) -> Self {
        self.max_uses = Some(uses);
        self
    }

    /// Created switched off (or on).
    pub fn active(mut self, active: bool) -> Self {
        self.active = active;
        self
    }

    /// Valid from this instant.
    pub fn valid_from(mut self, at: OffsetDateTime) -> Self {
        self.valid_from = Some(at);
        self
    }

    /// Valid until this instant.
    pub fn valid_until(mut self, at: OffsetDateTime) -> Self {
        self.valid_until = Some(at);
        self
    }

    /// Checks every rule the database also enforces and returns the discount as it will be
    /// stored (id 0, no uses).
    pub fn validate(&self) -> Result<Discount, CartError> {
        let bad = |m: String| Err(CartError::InvalidDiscount(m));
        let code = normalize_code(&self.code)?;
        if self.value.is_sign_negative() && !self.value.is_zero() {
            return bad(format!(
                "Discount value cannot be negative, got {}.",
                self.value
            ));
        }
        if self.value.normalize().scale() > 2 || self.value >= Decimal::from(100_000_000) {
            return bad(format!(
                "Discount value must have at most 2 decimal places and 8 digits before the point, got {}.",
                self.value
            ));
        }
        if self.kind == DiscountKind::Percent && self.value > Decimal::ONE_HUNDRED {
            return bad(format!(
                "Percentage discounts cannot exceed 100% — value must be between 0 and 100, got {}.",
                self.value
            ));
        }
        if let Some(min) = self.min_cart_value {
            if min.is_sign_negative() && !min.is_zero() || min.normalize().scale() > 2 {
                return bad(format!(
                    "Minimum cart value must be zero or positive with at most 2 decimal places, got {min}."
                ));
            }
        }
        if let Some(max) = self.max_uses {
            if !(0..=i64::from(i32::MAX)).contains(&max) {
                return bad(format!(
                    "Maximum uses must be between 0 and {}, got {max}.",
                    i32::MAX
                ));
            }
        }
        if let (Some(from), Some(until)) = (self.valid_from, self.valid_until) {
            if from > until {
                return bad("valid_until must be the same as or later than valid_from.".into());
            }
        }
        Ok(Discount {
            id: 0,
            code,
            kind: self.kind,
            value: money::cents(self.value),
            min_cart_value: self.min_cart_value.map(money::cents),
            max_uses: self.max_uses,
            current_uses: 0,
            active: self.active,
            valid_from: self.valid_from.map(trunc_seconds),
            valid_until: self.valid_until.map(trunc_seconds),
        })
    }

    /// The discount as it would be stored, for computing amounts without a database.
    /// Panics if [`validate`](Self::validate) would fail; use it in examples and tests.
    #[doc(hidden)]
    pub fn preview(&self) -> Discount {
        self.validate().expect("preview of an invalid discount")
    }
}

/// The form every code is stored and looked up in: trimmed, upper-case.
pub(crate) fn normalize_code(code: &str) -> Result<String, CartError> {
    let code = code.trim().to_uppercase();
    if code.is_empty() {
        return Err(CartError::InvalidDiscount(
            "Discount code cannot be empty.".into(),
        ));
    }
    if code.chars().count() > MAX_CODE_LEN || code.chars().any(char::is_control) {
        let shown: String = code.chars().take(20).collect();
        return Err(CartError::InvalidDiscount(format!(
            "Discount code '{shown}…' does not exist."
        )));
    }
    Ok(code)
}

/// Timestamps are stored as whole seconds since the epoch.
pub(crate) fn trunc_seconds(t: OffsetDateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.unix_timestamp()).unwrap_or(t)
}

pub(crate) fn from_epoch(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use time::Duration;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn dmod_06_percent_is_capped_and_rounded_half_up() {
        let p = NewDiscount::percent("P", d("20")).preview();
        assert_eq!(p.amount(d("200")).to_string(), "40.00");
        assert_eq!(
            NewDiscount::percent("Q", d("25"))
                .preview()
                .amount(d("12.34"))
                .to_string(),
            "3.09"
        );
        assert_eq!(
            NewDiscount::percent("R", d("100"))
                .preview()
                .amount(d("200"))
                .to_string(),
            "200.00"
        );
    }

    #[test]
    fn dmod_07_fixed_never_exceeds_subtotal() {
        let f = NewDiscount::fixed("F", d("500")).preview();
        assert_eq!(f.amount(d("200")).to_string(), "200.00");
        assert_eq!(
            NewDiscount::fixed("G", d("25"))
                .preview()
                .amount(d("200"))
                .to_string(),
            "25.00"
        );
    }

    #[test]
    fn dmod_09_to_12_validation_rules() {
        assert!(NewDiscount::percent("X", d("100.01")).validate().is_err());
        assert!(NewDiscount::percent("X", d("100")).validate().is_ok());
        assert!(NewDiscount::fixed("X", d("500")).validate().is_ok());
        assert!(NewDiscount::fixed("X", d("-1")).validate().is_err());
        let now = OffsetDateTime::now_utc();
        let err = NewDiscount::fixed("X", d("1"))
            .valid_from(now)
            .valid_until(now - Duration::days(1))
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "valid_until must be the same as or later than valid_from."
        );
        assert!(NewDiscount::fixed("", d("1")).validate().is_err());
        assert!(NewDiscount::fixed("A".repeat(51), d("1"))
            .validate()
            .is_err());
    }

    #[test]
    fn dmod_13_check_order_and_messages() {
        let now = OffsetDateTime::now_utc();
        let mut x = NewDiscount::percent("X", d("10"))
            .min_cart_value(d("1000"))
            .preview();
        assert_eq!(
            x.check(d("200"), now).unwrap_err().to_string(),
            "Minimum cart value of 1000.00 required."
        );
        assert!(x.check(d("1000"), now).is_ok(), "DMOD-14: equality passes");
        x.valid_until = Some(now - Duration::seconds(1));
        assert_eq!(
            x.check(d("1000"), now).unwrap_err().to_string(),
            "This discount has expired."
        );
        x.valid_from = Some(now + Duration::seconds(10));
        assert_eq!(
            x.check(d("1000"), now).unwrap_err().to_string(),
            "This discount is not yet valid."
        );
        x.max_uses = Some(0);
        assert_eq!(
            x.check(d("1000"), now).unwrap_err().to_string(),
            "This discount has reached its maximum number of uses."
        );
        x.active = false;
        assert_eq!(
            x.check(d("1000"), now).unwrap_err().to_string(),
            "This discount is no longer active."
        );
    }

    #[test]
    fn codes_are_trimmed_and_upper_cased() {
        assert_eq!(normalize_code(" summer25 ").unwrap(), "SUMMER25");
    }
}
