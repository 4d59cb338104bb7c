//! Money rules shared by every part of the crate: exact decimals, two places, half-up.
//!
//! Every amount that reaches the database is bounded by what its column holds, and the
//! arithmetic here is checked: no operator that can overflow (and panic) is applied to a
//! value a user, an admin form or the database supplies.

use rust_decimal::{Decimal, RoundingStrategy};

use crate::error::CartError;

/// The largest unit price the schema stores (`NUMERIC(18,2)` leaves room; this keeps
/// `quantity × price` sums far from overflow).
pub(crate) const MAX_UNIT_PRICE: Decimal = Decimal::from_parts(276_447_231, 23_283, 0, false, 2); // 999_999_999_999.99

/// The largest amount a `NUMERIC(18,2)` money column holds (16 digits before the point):
/// the bound of a discount's minimum cart value and of the minimum order amount. As
/// integer cents (SQLite) it is 999,999,999,999,999,999, below `i64::MAX`.
pub(crate) const MAX_AMOUNT: Decimal = Decimal::from_parts(2_808_348_671, 232_830_643, 0, false, 2); // 9_999_999_999_999_999.99

/// The largest discount value a `NUMERIC(10,2)` column holds (8 digits before the point).
pub(crate) const MAX_DISCOUNT_VALUE: Decimal = Decimal::from_parts(1_410_065_407, 2, 0, false, 2); // 99_999_999.99

/// Rounds half-up to cents and always carries exactly two decimal places.
pub(crate) fn cents(value: Decimal) -> Decimal {
    let mut v = value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    v.rescale(2);
    v
}

/// Checks a unit price: zero or positive, at most two decimal places, at most
/// 999,999,999,999.99. Returns it with exactly two decimal places.
pub(crate) fn unit_price(price: Decimal) -> Result<Decimal, CartError> {
    bounded("Unit price", price, MAX_UNIT_PRICE).map_err(CartError::InvalidPrice)
}

/// Parses a price string such as `"9.99"` strictly (no exponent, no spaces).
pub(crate) fn parse_price(text: &str) -> Result<Decimal, CartError> {
    let ok = !text.is_empty()
        && text.len() <= 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
    let parsed = if ok {
        text.parse::<Decimal>().ok()
    } else {
        None
    };
    match parsed {
        Some(p) => unit_price(p),
        None => {
            let shown: String = text.chars().take(40).collect();
            Err(CartError::InvalidPrice(format!(
                "Unit price must be a decimal number such as \"9.99\", got {shown:?}."
            )))
        }
    }
}

/// Checks an amount against `max`: zero or positive, at most two decimal places, at most
/// `max`. `what` names it in the message ("Minimum cart value"). Returns it with exactly
/// two decimal places.
pub(crate) fn bounded(what: &str, value: Decimal, max: Decimal) -> Result<Decimal, String> {
    if value.is_sign_negative() && !value.is_zero() {
        return Err(format!("{what} cannot be negative, got {value}."));
    }
    let mut normal = value.normalize();
    if normal.scale() > 2 {
        return Err(format!(
            "{what} must have at most 2 decimal places, got {value}."
        ));
    }
    if normal > max {
        return Err(format!("{what} cannot exceed {max}, got {value}."));
    }
    normal.rescale(2);
    Ok(normal)
}

/// Checks a minimum order amount (zero or positive, at most two decimal places, at most
/// [`MAX_AMOUNT`]).
pub(crate) fn order_minimum(amount: Decimal) -> Result<Decimal, CartError> {
    bounded("Minimum order amount", amount, MAX_AMOUNT).map_err(CartError::InvalidPrice)
}

/// Decimal with two places → integer cents (SQLite storage), without any arithmetic that
/// can overflow: the cents are the mantissa at scale 2. Every amount is bounded before it
/// is stored (unit prices by [`unit_price`], discounts by `NewDiscount::validate`), far
/// inside `i64`; an amount that is not is refused by [`try_to_cents`] and saturates here.
#[cfg(any(feature = "sqlite", test))]
pub(crate) fn to_cents(value: Decimal) -> i64 {
    try_to_cents(value).unwrap_or(if value.is_sign_negative() {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// Decimal → integer cents (half-up), `None` if they do not fit in an `i64`.
#[cfg(any(feature = "sqlite", test))]
pub(crate) fn try_to_cents(value: Decimal) -> Option<i64> {
    let v = cents(value);
    if v.scale() != 2 {
        // Too large to carry two decimal places at all.
        return None;
    }
    i64::try_from(v.mantissa()).ok()
}

/// Integer cents → Decimal with two places.
#[cfg(any(feature = "sqlite", test))]
pub(crate) fn from_cents(value: i64) -> Decimal {
    Decimal::new(value, 2)
}

/// Formats an amount with a currency symbol: `$19.98`, `-$1.00`.
#[cfg(feature = "http")]
pub(crate) fn format(symbol: &str, value: Decimal) -> String {
    let v = cents(value);
    if v.is_sign_negative() && !v.is_zero() {
        format!("-{symbol}{}", v.abs())
    } else {
        format!("{symbol}{}", v.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn max_unit_price_constant_is_what_it_says() {
        assert_eq!(MAX_UNIT_PRICE.to_string(), "999999999999.99");
    }

    #[test]
    fn cents_rounds_half_up_and_keeps_two_places() {
        assert_eq!(cents(d("13.3375")).to_string(), "13.34");
        assert_eq!(cents(d("0.125")).to_string(), "0.13");
        assert_eq!(cents(d("20")).to_string(), "20.00");
        assert_eq!(cents(d("3.085")).to_string(), "3.09");
    }

    #[test]
    fn unit_price_rejects_negative_three_places_and_huge() {
        assert!(unit_price(d("-5.00")).is_err());
        assert!(unit_price(d("9.999")).is_err());
        assert!(unit_price(d("1000000000000")).is_err());
        assert_eq!(unit_price(d("9.990")).unwrap().to_string(), "9.99");
        assert_eq!(unit_price(d("15.5")).unwrap().to_string(), "15.50");
        assert_eq!(unit_price(Decimal::ZERO).unwrap().to_string(), "0.00");
    }

    #[test]
    fn parse_price_is_strict() {
        assert!(parse_price("abc").is_err());
        assert!(parse_price("1e3").is_err());
        assert!(parse_price(" 1").is_err());
        assert!(parse_price("-1").is_err());
        assert_eq!(parse_price("9.99").unwrap().to_string(), "9.99");
    }

    #[test]
    fn bounds_are_what_they_say() {
        assert_eq!(MAX_AMOUNT.to_string(), "9999999999999999.99");
        assert_eq!(MAX_DISCOUNT_VALUE.to_string(), "99999999.99");
        assert_eq!(try_to_cents(MAX_AMOUNT), Some(999_999_999_999_999_999));
        assert_eq!(to_cents(MAX_UNIT_PRICE), 99_999_999_999_999);
    }

    #[test]
    fn huge_amounts_never_panic() {
        assert_eq!(try_to_cents(Decimal::MAX), None);
        assert_eq!(try_to_cents(Decimal::MIN), None);
        assert_eq!(to_cents(Decimal::MAX), i64::MAX);
        assert_eq!(try_to_cents(d("92233720368547758.08")), None);
        let e = order_minimum(Decimal::MAX).unwrap_err().to_string();
        assert_eq!(
            e,
            "Minimum order amount cannot exceed 9999999999999999.99, got 79228162514264337593543950335."
        );
        assert_eq!(order_minimum(MAX_AMOUNT).unwrap(), MAX_AMOUNT);
        assert!(order_minimum(d("-0.01")).is_err());
        assert!(order_minimum(d("0.001")).is_err());
        assert_eq!(order_minimum(d("10")).unwrap().to_string(), "10.00");
    }

    #[test]
    fn cents_round_trip() {
        assert_eq!(to_cents(d("9.99")), 999);
        assert_eq!(from_cents(999).to_string(), "9.99");
        assert_eq!(from_cents(0).to_string(), "0.00");
    }

    #[cfg(feature = "http")]
    #[test]
    fn format_uses_symbol_and_two_places() {
        assert_eq!(format("$", d("19.98")), "$19.98");
        assert_eq!(format("$", d("1234567.891")), "$1234567.89");
        assert_eq!(format("€", Decimal::ZERO), "€0.00");
    }
}
