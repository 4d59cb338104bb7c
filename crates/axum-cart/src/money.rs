//! Money rules shared by every part of the crate: exact decimals, two places, half-up.

use rust_decimal::{Decimal, RoundingStrategy};

use crate::error::CartError;

/// The largest unit price the schema stores (`NUMERIC(18,2)` leaves room; this keeps
/// `quantity × price` sums far from overflow).
pub(crate) const MAX_UNIT_PRICE: Decimal = Decimal::from_parts(276_447_231, 23_283, 0, false, 2); // 999_999_999_999.99

/// Rounds half-up to cents and always carries exactly two decimal places.
pub(crate) fn cents(value: Decimal) -> Decimal {
    let mut v = value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    v.rescale(2);
    v
}

/// Checks a unit price: zero or positive, at most two decimal places, at most
/// 999,999,999,999.99. Returns it with exactly two decimal places.
pub(crate) fn unit_price(price: Decimal) -> Result<Decimal, CartError> {
    if price.is_sign_negative() && !price.is_zero() {
        return Err(CartError::InvalidPrice(format!(
            "Unit price cannot be negative, got {price}."
        )));
    }
    let normal = price.normalize();
    if normal.scale() > 2 {
        return Err(CartError::InvalidPrice(format!(
            "Unit price must have at most 2 decimal places, got {price}."
        )));
    }
    if price > MAX_UNIT_PRICE {
        return Err(CartError::InvalidPrice(format!(
            "Unit price cannot exceed {MAX_UNIT_PRICE}, got {price}."
        )));
    }
    let mut v = normal;
    v.rescale(2);
    Ok(v)
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

/// Decimal with two places → integer cents (SQLite storage).
pub(crate) fn to_cents(value: Decimal) -> i64 {
    let scaled = cents(value) * Decimal::ONE_HUNDRED;
    i64::try_from(scaled.trunc()).unwrap_or(i64::MAX)
}

/// Integer cents → Decimal with two places.
pub(crate) fn from_cents(value: i64) -> Decimal {
    Decimal::new(value, 2)
}

/// Formats an amount with a currency symbol: `$19.98`, `-$1.00`.
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
    fn cents_round_trip() {
        assert_eq!(to_cents(d("9.99")), 999);
        assert_eq!(from_cents(999).to_string(), "9.99");
        assert_eq!(from_cents(0).to_string(), "0.00");
    }

    #[test]
    fn format_uses_symbol_and_two_places() {
        assert_eq!(format("$", d("19.98")), "$19.98");
        assert_eq!(format("$", d("1234567.891")), "$1234567.89");
        assert_eq!(format("€", Decimal::ZERO), "€0.00");
    }
}
