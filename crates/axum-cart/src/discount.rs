//! Discount codes: percentage or fixed amount, with validity windows, usage caps and a
//! minimum cart value.
//!
//! Codes are stored trimmed and upper-cased, and looked up the same way, so `"summer25 "`
//! applies `SUMMER25` on every backend. A code is printable ASCII (letters, digits,
//! punctuation, inner spaces) and its case is folded in ASCII only: no Unicode case mapping
//! can turn a look-alike such as `ſummer25` (long s), `ﬁxed10` (ligature) or `fıxed10`
//! (dotless i) into a real code. Such codes do not exist when applied and cannot be created.
//!
//! Amounts are bounded by their columns: a value at most [`MAX_VALUE`] (`NUMERIC(10,2)`),
//! a minimum cart value at most [`MAX_MIN_CART_VALUE`] (`NUMERIC(18,2)`).

use rust_decimal::Decimal;
use time::OffsetDateTime;

use crate::error::{CartError, DiscountRefusal};
use crate::money;

/// The longest discount code the schema stores.
pub(crate) const MAX_CODE_LEN: usize = 50;

/// The largest discount value (`NUMERIC(10,2)`): 99,999,999.99. A percentage is at most 100.
pub(crate) const MAX_VALUE: Decimal = money::MAX_DISCOUNT_VALUE;

/// The largest minimum cart value (`NUMERIC(18,2)`): 9,999,999,999,999,999.99.
pub(crate) const MAX_MIN_CART_VALUE: Decimal = money::MAX_AMOUNT;

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
            other => Err(CartError::InvalidDiscount(DiscountRefusal::Invalid(
                format!("Unknown discount type {other:?}: expected \"percent\" or \"fixed\"."),
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
        let refuse = |why| Err(CartError::InvalidDiscount(why));
        if !self.active {
            return refuse(DiscountRefusal::Inactive);
        }
        if let Some(max) = self.max_uses {
            if self.current_uses >= max {
                return refuse(DiscountRefusal::UsedUp);
            }
        }
        if matches!(self.valid_from, Some(from) if now < from) {
            return refuse(DiscountRefusal::NotYetValid);
        }
        if matches!(self.valid_until, Some(until) if now > until) {
            return refuse(DiscountRefusal::Expired);
        }
        if let Some(min) = self.min_cart_value {
            if subtotal < min {
                return refuse(DiscountRefusal::BelowMinimum(money::cents(min)));
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
    ///
    /// The arithmetic is checked: no subtotal or value (however large) makes it panic.
    pub fn amount(&self, subtotal: Decimal) -> Decimal {
        let subtotal = subtotal.max(Decimal::ZERO);
        let raw = match self.kind {
            DiscountKind::Percent => percent_of(subtotal, self.value),
            DiscountKind::Fixed => self.value,
        };
        money::cents(raw.max(Decimal::ZERO).min(subtotal))
    }
}

/// `value` percent of `subtotal` (both not negative), without overflow: exact when
/// `subtotal × value` fits in a `Decimal`, else computed as `subtotal / 100 × value`, and
/// when even that overflows the result is above any subtotal, so `subtotal` (the cap).
fn percent_of(subtotal: Decimal, value: Decimal) -> Decimal {
    match subtotal.checked_mul(value) {
        Some(product) => product
            .checked_div(Decimal::ONE_HUNDRED)
            .unwrap_or(subtotal),
        None => subtotal
            .checked_div(Decimal::ONE_HUNDRED)
            .and_then(|hundredth| hundredth.checked_mul(value))
            .unwrap_or(subtotal),
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
    /// The longest discount code, in characters.
    pub const MAX_CODE_LEN: usize = MAX_CODE_LEN;
    /// The largest discount value (`NUMERIC(10,2)`): 99,999,999.99. A percentage is at most
    /// 100.
    pub const MAX_VALUE: Decimal = MAX_VALUE;
    /// The largest minimum cart value (`NUMERIC(18,2)`): 9,999,999,999,999,999.99.
    pub const MAX_MIN_CART_VALUE: Decimal = MAX_MIN_CART_VALUE;

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
    ///
    /// Refused, with a message saying what is wrong: an empty code, a code of more than
    /// [`NewDiscount::MAX_CODE_LEN`] characters or with characters other than printable ASCII; a
    /// negative value, one with more than two decimal places or above [`NewDiscount::MAX_VALUE`]; a
    /// percentage above 100; a minimum cart value that is negative, has more than two
    /// decimal places or is above [`NewDiscount::MAX_MIN_CART_VALUE`]; `max_uses` outside
    /// `0..=i32::MAX`; `valid_from` after `valid_until`.
    ///
    /// ```
    /// use axum_cart::NewDiscount;
    /// use rust_decimal::Decimal;
    /// let huge = NewDiscount::fixed("BIG", Decimal::ONE).min_cart_value(Decimal::MAX);
    /// assert_eq!(
    ///     huge.validate().unwrap_err().to_string(),
    ///     "Minimum cart value cannot exceed 9999999999999999.99, got 79228162514264337593543950335."
    /// );
    /// let long = NewDiscount::fixed("A".repeat(51), Decimal::ONE);
    /// assert_eq!(
    ///     long.validate().unwrap_err().to_string(),
    ///     "Discount codes are at most 50 characters, got 51."
    /// );
    /// ```
    pub fn validate(&self) -> Result<Discount, CartError> {
        let bad = |m: String| Err(CartError::InvalidDiscount(DiscountRefusal::Invalid(m)));
        let code = match code_problem(self.code.trim()) {
            Some(problem) => return bad(problem),
            None => fold(self.code.trim()),
        };
        let value = match money::bounded("Discount value", self.value, MAX_VALUE) {
            Ok(v) => v,
            Err(m) => return bad(m),
        };
        if self.kind == DiscountKind::Percent && self.value > Decimal::ONE_HUNDRED {
            return bad(format!(
                "Percentage discounts cannot exceed 100% — value must be between 0 and 100, got {}.",
                self.value
            ));
        }
        let min_cart_value = match self
            .min_cart_value
            .map(|min| money::bounded("Minimum cart value", min, MAX_MIN_CART_VALUE))
            .transpose()
        {
            Ok(v) => v,
            Err(m) => return bad(m),
        };
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
            value,
            min_cart_value,
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

/// The form every code is stored and looked up in: trimmed, ASCII upper-case. A code that
/// cannot be stored (empty aside, see [`code_problem`]) is one that does not exist.
pub(crate) fn normalize_code(code: &str) -> Result<String, CartError> {
    let code = code.trim();
    if code.is_empty() {
        return Err(CartError::InvalidDiscount(DiscountRefusal::Invalid(
            "Discount code cannot be empty.".into(),
        )));
    }
    if code_problem(code).is_some() {
        let shown: String = code.chars().take(20).collect();
        return Err(CartError::InvalidDiscount(DiscountRefusal::NotFound(
            format!("{}…", shown.escape_debug()),
        )));
    }
    Ok(fold(code))
}

/// Upper-case in ASCII only: every other character is left as it is (and refused by
/// [`code_problem`]), so no Unicode case mapping (`ſ` → `S`, `ﬁ` → `FI`, `ı` → `I`) can
/// make a look-alike equal to a real code.
fn fold(code: &str) -> String {
    code.to_ascii_uppercase()
}

/// What is wrong with a trimmed code, if anything: empty, too long, or a character other
/// than printable ASCII (letters, digits, punctuation, spaces inside).
fn code_problem(code: &str) -> Option<String> {
    if code.is_empty() {
        return Some("Discount code cannot be empty.".into());
    }
    let len = code.chars().count();
    if len > MAX_CODE_LEN {
        return Some(format!(
            "Discount codes are at most {MAX_CODE_LEN} characters, got {len}."
        ));
    }
    code.chars()
        .find(|c| !(c.is_ascii_graphic() || *c == ' '))
        .map(|c| {
            format!(
                "Discount codes may only contain ASCII letters, digits, punctuation and spaces; {:?} (U+{:04X}) is not allowed.",
                c, u32::from(c)
            )
        })
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
        assert_eq!(normalize_code("Summer 25").unwrap(), "SUMMER 25");
    }

    #[test]
    fn look_alike_codes_do_not_fold_into_real_ones() {
        for look_alike in ["ſummer25", "ﬁxed10", "fıxed10", "ＳＵＭＭＥＲ25", "straße"] {
            let err = normalize_code(look_alike).unwrap_err().to_string();
            assert!(err.ends_with("does not exist."), "{look_alike}: {err}");
            let err = NewDiscount::fixed(look_alike, d("1"))
                .validate()
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("Discount codes may only contain ASCII"),
                "{err}"
            );
        }
        assert_eq!(
            NewDiscount::fixed("ſummer25", d("1"))
                .validate()
                .unwrap_err()
                .to_string(),
            "Discount codes may only contain ASCII letters, digits, punctuation and spaces; 'ſ' (U+017F) is not allowed."
        );
        assert!(normalize_code("a\u{0}b").is_err());
    }

    #[test]
    fn amounts_never_panic() {
        let all = NewDiscount::percent("ALL", d("100")).preview();
        assert_eq!(all.amount(Decimal::MAX), money::cents(Decimal::MAX));
        let mut odd = all.clone();
        odd.value = Decimal::MAX;
        assert_eq!(odd.amount(Decimal::MAX), money::cents(Decimal::MAX));
        assert_eq!(odd.amount(d("10")).to_string(), "10.00");
        let half = NewDiscount::percent("HALF", d("50")).preview();
        assert_eq!(
            half.amount(Decimal::MAX),
            money::cents(Decimal::MAX / Decimal::from(2))
        );
        let fixed = NewDiscount::fixed("F", MAX_VALUE).preview();
        assert_eq!(fixed.amount(Decimal::MAX), MAX_VALUE);
    }

    #[test]
    fn bounds_are_refused_with_the_bound_in_the_message() {
        let huge = d("79228162514264337593543950335");
        let e = NewDiscount::fixed("X", d("1"))
            .min_cart_value(huge)
            .validate()
            .unwrap_err();
        assert!(matches!(e, CartError::InvalidDiscount(_)));
        assert!(
            e.to_string().contains("cannot exceed 9999999999999999.99"),
            "{e}"
        );
        let at = NewDiscount::fixed("X", MAX_VALUE)
            .min_cart_value(MAX_MIN_CART_VALUE)
            .validate()
            .unwrap();
        assert_eq!(at.min_cart_value, Some(MAX_MIN_CART_VALUE));
        assert_eq!(at.value, MAX_VALUE);
        let e = NewDiscount::fixed("X", d("100000000"))
            .validate()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Discount value cannot exceed 99999999.99, got 100000000."
        );
        assert!(NewDiscount::fixed("X", huge).validate().is_err());
        assert_eq!(
            NewDiscount::fixed("A".repeat(51), d("1"))
                .validate()
                .unwrap_err()
                .to_string(),
            "Discount codes are at most 50 characters, got 51."
        );
        assert!(NewDiscount::fixed("A".repeat(50), d("1"))
            .validate()
            .is_ok());
    }
}
