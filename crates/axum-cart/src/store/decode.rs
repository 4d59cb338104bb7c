//! Decoding rows into carts, lines, discounts and records: written once for every backend
//! through [`RowExt`], whose money and text access is the backend's ([`Dialect`]).

use rust_decimal::Decimal;

use super::driver::Dialect;
use super::sql::CART_WIDTH;
use super::{CartRecord, Snapshot};
use crate::discount::from_epoch;
use crate::{CartError, CartId, Discount, DiscountKind, Line, LineOptions, ProductRef};

/// Column access by position; money is integer cents on SQLite, NUMERIC elsewhere.
pub(crate) trait RowExt {
    fn int_opt(&self, i: usize) -> Result<Option<i64>, sqlx::Error>;
    fn flag(&self, i: usize) -> Result<bool, sqlx::Error>;
    fn text_opt(&self, i: usize) -> Result<Option<String>, sqlx::Error>;
    fn money_opt(&self, i: usize) -> Result<Option<Decimal>, sqlx::Error>;

    fn int(&self, i: usize) -> Result<i64, sqlx::Error> {
        self.int_opt(i)?.ok_or_else(|| null(i))
    }
    fn text(&self, i: usize) -> Result<String, sqlx::Error> {
        self.text_opt(i)?.ok_or_else(|| null(i))
    }
    fn money(&self, i: usize) -> Result<Decimal, sqlx::Error> {
        self.money_opt(i)?.ok_or_else(|| null(i))
    }
}

/// A NULL where the schema has none.
fn null(i: usize) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: i.to_string(),
        source: Box::new(sqlx::error::UnexpectedNullError),
    }
}

impl<R> RowExt for R
where
    R: sqlx::Row,
    R::Database: Dialect,
{
    fn int_opt(&self, i: usize) -> Result<Option<i64>, sqlx::Error> {
        <R::Database as super::driver::Driver>::get_int(self, i)
    }
    fn flag(&self, i: usize) -> Result<bool, sqlx::Error> {
        <R::Database as super::driver::Driver>::get_flag(self, i)
    }
    fn text_opt(&self, i: usize) -> Result<Option<String>, sqlx::Error> {
        <R::Database as Dialect>::text_opt(self, i)
    }
    fn money_opt(&self, i: usize) -> Result<Option<Decimal>, sqlx::Error> {
        <R::Database as Dialect>::money_opt(self, i)
    }
}

pub(crate) fn decode_record<R: RowExt>(row: &R) -> Result<CartRecord, CartError> {
    let mut record = decode_cart(row, 0)?.record();
    record.line_count = row.int(CART_WIDTH)?;
    record.item_count = row.int(CART_WIDTH + 1)?;
    Ok(record)
}

pub(crate) fn decode_cart<R: RowExt>(row: &R, at: usize) -> Result<Snapshot, CartError> {
    Ok(Snapshot {
        id: CartId::from_db(row.int(at)?),
        checked_out: row.flag(at + 1)?,
        user_id: row.text_opt(at + 2)?,
        created_at: row.int(at + 3)?,
        updated_at: row.int(at + 4)?,
        frozen_until: row.int_opt(at + 5)?,
        version: version(row, at + 6)?,
        discount: None,
        lines: Vec::new(),
    })
}

/// A cart's version: never negative (it starts at 0 and only grows).
fn version<R: RowExt>(row: &R, i: usize) -> Result<u64, sqlx::Error> {
    u64::try_from(row.int(i)?).map_err(|e| sqlx::Error::ColumnDecode {
        index: i.to_string(),
        source: Box::new(e),
    })
}

/// Decodes the ten discount columns starting at `at`; `None` if the discount id is NULL.
pub(crate) fn decode_discount<R: RowExt>(
    row: &R,
    at: usize,
) -> Result<Option<Discount>, CartError> {
    let Some(id) = row.int_opt(at)? else {
        return Ok(None);
    };
    Ok(Some(Discount {
        id,
        code: row.text(at + 1)?,
        kind: DiscountKind::parse(&row.text(at + 2)?)?,
        value: row.money(at + 3)?,
        min_cart_value: row.money_opt(at + 4)?,
        max_uses: row.int_opt(at + 5)?,
        current_uses: row.int(at + 6)?,
        active: row.flag(at + 7)?,
        valid_from: row.int_opt(at + 8)?.map(from_epoch),
        valid_until: row.int_opt(at + 9)?.map(from_epoch),
    }))
}

/// Decodes a line from (kind, id, quantity, unit_price, options) at `at`; `None` if kind is
/// NULL, and `None` (reported in the log) for a stored line whose product or options are
/// not valid: one bad row must not make the whole cart unreadable.
pub(crate) fn decode_line<R: RowExt>(row: &R, at: usize) -> Result<Option<Line>, CartError> {
    let Some(kind) = row.text_opt(at)? else {
        return Ok(None);
    };
    let Ok(product) = ProductRef::new(&kind, row.int(at + 1)?) else {
        skipped_line(&kind);
        return Ok(None);
    };
    let stored = row.text(at + 4)?;
    let Some(options) = LineOptions::from_db(&stored) else {
        skipped_line(&stored);
        return Ok(None);
    };
    Ok(Some(
        Line::new(product, row.int(at + 2)?, row.money(at + 3)?).with_options(options),
    ))
}

/// Folds the rows of the one-statement cart load (cart, discount, line columns).
pub(crate) fn fold_snapshot<R: RowExt>(rows: &[R]) -> Result<Option<Snapshot>, CartError> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut snap = decode_cart(first, 0)?;
    snap.discount = decode_discount(first, CART_WIDTH)?;
    for row in rows {
        if let Some(line) = decode_line(row, CART_WIDTH + 10)? {
            snap.lines.push(line);
        }
    }
    Ok(Some(snap))
}

/// Reports a stored line that cannot be a cart line (its product kind or its options are
/// not valid): it is left out of the cart, and the schema refuses new ones.
pub(crate) fn skipped_line(what: &str) {
    let shown: String = what.chars().take(60).collect();
    tracing::warn!(
        line = ?shown,
        "skipped a stored cart line whose product is not valid"
    );
}
