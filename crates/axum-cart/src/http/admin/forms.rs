//! The discount forms and how their fields are read.

use rust_decimal::Decimal;

use crate::{DiscountKind, NewDiscount};

/// The create form.
#[derive(Debug, serde::Deserialize)]
pub(super) struct CreateForm {
    code: String,
    kind: String,
    value: String,
    #[serde(flatten)]
    rules: Rules,
}

/// The edit form: every rule of a discount (the code is in the URL).
#[derive(Debug, serde::Deserialize)]
pub(super) struct EditForm {
    kind: String,
    value: String,
    active: String,
    #[serde(default)]
    valid_from: String,
    #[serde(flatten)]
    rules: Rules,
}

/// The optional rules both forms have.
#[derive(Debug, Default, serde::Deserialize)]
struct Rules {
    #[serde(default)]
    min_cart_value: String,
    #[serde(default)]
    max_uses: String,
    #[serde(default)]
    valid_until: String,
}

/// A new discount from the create form, or the message refusing it.
pub(super) fn parse_create(form: &CreateForm) -> Result<NewDiscount, String> {
    let kind = parse_kind(&form.kind)?;
    let new = NewDiscount::new(form.code.clone(), kind, parse_money("Value", &form.value)?);
    parse_rules(new, &form.rules)
}

/// The discount `code` as the edit form defines it, or the message refusing it.
pub(super) fn parse_edit(code: &str, form: &EditForm) -> Result<NewDiscount, String> {
    let kind = parse_kind(&form.kind)?;
    let active = match form.active.trim() {
        "yes" => true,
        "no" => false,
        other => return Err(format!("Active must be yes or no, got {other:?}.")),
    };
    let mut new = NewDiscount::new(code, kind, parse_money("Value", &form.value)?).active(active);
    if let Some(from) = parse_instant("Valid from", &form.valid_from, false)? {
        new = new.valid_from(from);
    }
    parse_rules(new, &form.rules)
}

/// A time as the `datetime-local` inputs show it (UTC, to the second).
pub(super) fn local_input(at: Option<time::OffsetDateTime>) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    at.and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&format).ok())
        .unwrap_or_default()
}

fn parse_money(name: &str, s: &str) -> Result<Decimal, String> {
    s.trim()
        .parse::<Decimal>()
        .map_err(|_| format!("{name} must be a number such as 10.00, got {:?}.", s.trim()))
}

fn parse_kind(s: &str) -> Result<DiscountKind, String> {
    match s {
        "percent" => Ok(DiscountKind::Percent),
        "fixed" => Ok(DiscountKind::Fixed),
        other => Err(format!("Type must be percent or fixed, got {other:?}.")),
    }
}

/// An instant in UTC from `YYYY-MM-DD` (the start of the day, or its last second when
/// `end_of_day`), `YYYY-MM-DDTHH:MM` or `YYYY-MM-DDTHH:MM:SS`.
fn parse_instant(
    name: &str,
    s: &str,
    end_of_day: bool,
) -> Result<Option<time::OffsetDateTime>, String> {
    use time::macros::format_description;
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let seconds = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let minutes = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let day = format_description!("[year]-[month]-[day]");
    let at = if let Ok(at) = time::PrimitiveDateTime::parse(s, &seconds) {
        at
    } else if let Ok(at) = time::PrimitiveDateTime::parse(s, &minutes) {
        at
    } else if let Ok(date) = time::Date::parse(s, &day) {
        let (h, m, sec) = if end_of_day { (23, 59, 59) } else { (0, 0, 0) };
        date.with_hms(h, m, sec).map_err(|e| e.to_string())?
    } else {
        return Err(format!(
            "{name} must be a date such as 2026-12-31 or 2026-12-31T18:00, got {s:?}."
        ));
    };
    Ok(Some(at.assume_utc()))
}

/// The optional rules both forms share.
fn parse_rules(mut new: NewDiscount, rules: &Rules) -> Result<NewDiscount, String> {
    if !rules.min_cart_value.trim().is_empty() {
        new = new.min_cart_value(parse_money("Min cart value", &rules.min_cart_value)?);
    }
    let max_uses = rules.max_uses.trim();
    if !max_uses.is_empty() {
        let uses = max_uses
            .parse::<i64>()
            .map_err(|_| format!("Max uses must be a whole number, got {max_uses:?}."))?;
        new = new.max_uses(uses);
    }
    if let Some(until) = parse_instant("Valid until", &rules.valid_until, true)? {
        new = new.valid_until(until);
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_utc_days_or_times() {
        let at = |s, end| {
            parse_instant("At", s, end)
                .unwrap()
                .map(|t| local_input(Some(t)))
        };
        assert_eq!(at("", false), None);
        assert_eq!(at("2026-12-31", false).unwrap(), "2026-12-31T00:00:00");
        assert_eq!(at("2026-12-31", true).unwrap(), "2026-12-31T23:59:59");
        assert_eq!(
            at(" 2026-12-31T18:00 ", true).unwrap(),
            "2026-12-31T18:00:00"
        );
        assert_eq!(
            at("2026-12-31T18:00:05", false).unwrap(),
            "2026-12-31T18:00:05"
        );
        assert!(parse_instant("At", "31/12/2026", false)
            .unwrap_err()
            .starts_with("At must be a date"));
    }

    #[test]
    fn money_kinds_and_uses() {
        assert_eq!(parse_money("Value", " 10.5 "), Ok(Decimal::new(105, 1)));
        assert!(parse_money("Value", "ten").is_err());
        assert_eq!(parse_kind("fixed"), Ok(DiscountKind::Fixed));
        assert!(parse_kind("Percent").is_err());
        let new = NewDiscount::new("X", DiscountKind::Fixed, Decimal::ONE);
        let rules = Rules {
            max_uses: "1.5".into(),
            ..Rules::default()
        };
        assert!(parse_rules(new, &rules).unwrap_err().contains("Max uses"));
    }
}
