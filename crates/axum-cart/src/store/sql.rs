//! The SQL text the backends share, built once from a backend's [`Spelling`]: statements
//! are written with `?` and turned into `$1, $2…` for PostgreSQL in one place
//! ([`numbered`]). Pure functions (no driver), so they are tested for every dialect in
//! any build.

use std::borrow::Cow;

use rust_decimal::Decimal;

use super::{now_epoch, CartFilter};
use crate::CartId;

/// The few ways the backends spell the same SQL.
#[derive(Debug)]
pub(crate) struct Spelling {
    /// Parameters are `$1, $2…` (PostgreSQL) instead of `?`.
    pub numbered: bool,
    /// Boolean literals: `TRUE`/`FALSE` or `1`/`0`.
    pub true_: &'static str,
    pub false_: &'static str,
    /// Σ quantity as a 64-bit integer.
    pub units: &'static str,
    /// The money columns: `value`, `min_cart_value`, `unit_price` (integer cents on SQLite).
    pub value: &'static str,
    pub min_value: &'static str,
    pub price: &'static str,
    /// The lock clause of a locking read (` FOR UPDATE`), empty where the whole write is
    /// locked up front (SQLite's `BEGIN IMMEDIATE`).
    pub lock: &'static str,
    /// The lock clause of a relay's claim of outbox rows (` FOR UPDATE … SKIP LOCKED`),
    /// empty on SQLite (its one writer claims).
    pub skip_locked: &'static str,
    /// The lock clause of the locked write's read of the lines.
    pub share_lock: &'static str,
    /// The index hint of that read (MySQL: the line key, which starts with the cart id, so
    /// a small table is not scanned, and locked, whole in id order).
    pub lines_index: &'static str,
    /// How the locked write begins its transaction, if not with a plain `BEGIN`.
    pub begin: Option<&'static str>,
    /// How an insert-or-update is spelled.
    pub upsert: Upsert,
    /// `INSERT … RETURNING id` (else the driver's last insert id).
    pub returning: bool,
    /// `DELETE … ORDER BY id LIMIT ?` directly (MySQL cannot use a LIMIT in an `IN`
    /// subquery), else through `id IN (SELECT … LIMIT ?)`.
    pub ordered_delete: bool,
    /// The schema's guard raises its own code for each refusal (checked out, full, frozen);
    /// SQLite's raise one code for all, and the store reads the cart to tell them apart.
    pub guard_codes: bool,
}

/// How an insert that hits a unique key updates the row instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upsert {
    /// `ON CONFLICT (key) DO UPDATE SET c = excluded.c` (SQLite, PostgreSQL).
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    OnConflict,
    /// `ON DUPLICATE KEY UPDATE c = VALUES(c)` (MySQL).
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    OnDuplicateKey,
}

impl Spelling {
    /// The upsert tail: on a conflict of `key`, set `columns` to the inserted values.
    pub fn upsert(&self, key: &str, columns: &[&str]) -> String {
        let set = |f: &dyn Fn(&str) -> String| {
            columns.iter().map(|c| f(c)).collect::<Vec<_>>().join(", ")
        };
        match self.upsert {
            Upsert::OnConflict => format!(
                "ON CONFLICT ({key}) DO UPDATE SET {}",
                set(&|c| format!("{c} = excluded.{c}"))
            ),
            Upsert::OnDuplicateKey => format!(
                "ON DUPLICATE KEY UPDATE {}",
                set(&|c| format!("{c} = VALUES({c})"))
            ),
        }
    }

    /// `WHERE checked_out = FALSE` and the like, on `column`.
    pub fn open(&self, column: &str) -> String {
        format!("{column} = {}", self.false_)
    }

    /// A checked-out cart.
    pub fn closed(&self, column: &str) -> String {
        format!("{column} = {}", self.true_)
    }

    /// Deletes up to `?` (the last parameter) cart rows matching `condition`, lowest ids
    /// first.
    pub fn limited_delete(&self, condition: &str) -> String {
        if self.ordered_delete {
            format!("DELETE FROM cart_carts WHERE {condition} ORDER BY id LIMIT ?")
        } else {
            format!(
                "DELETE FROM cart_carts WHERE id IN \
                 (SELECT id FROM cart_carts WHERE {condition} ORDER BY id LIMIT ?)"
            )
        }
    }

    /// ` RETURNING id` where the backend has it.
    pub fn returning_id(&self) -> &'static str {
        if self.returning {
            " RETURNING id"
        } else {
            ""
        }
    }

    /// The ten discount columns, in the order `decode_discount` reads them.
    pub fn discount_select(&self) -> String {
        format!(
            "SELECT d.id, d.code, d.discount_type, d.{}, d.{}, d.max_uses, d.current_uses, \
             d.active, d.valid_from, d.valid_until FROM cart_discounts d",
            self.value, self.min_value
        )
    }
}

/// A value bound into a statement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Val<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
    Flag(bool),
    /// Bound as NUMERIC, or as integer cents on SQLite.
    Money(Option<Decimal>),
}

impl From<i64> for Val<'_> {
    fn from(v: i64) -> Self {
        Val::Int(Some(v))
    }
}
impl From<Option<i64>> for Val<'_> {
    fn from(v: Option<i64>) -> Self {
        Val::Int(v)
    }
}
impl<'a> From<&'a str> for Val<'a> {
    fn from(v: &'a str) -> Self {
        Val::Text(Some(v))
    }
}
impl<'a> From<Option<&'a str>> for Val<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Val::Text(v)
    }
}
impl From<bool> for Val<'_> {
    fn from(v: bool) -> Self {
        Val::Flag(v)
    }
}
impl From<Decimal> for Val<'_> {
    fn from(v: Decimal) -> Self {
        Val::Money(Some(v))
    }
}
impl From<Option<Decimal>> for Val<'_> {
    fn from(v: Option<Decimal>) -> Self {
        Val::Money(v)
    }
}

/// Turns the `?` parameters of `sql` into `$1, $2…` (in order), leaving quoted text and
/// identifiers alone. The one place PostgreSQL's parameters are written.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0usize;
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                out.push(c);
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            None => out.push(c),
        }
    }
    out
}

/// `sql` as the backend writes it.
pub(crate) fn spelled<'s>(spelling: &Spelling, sql: &'s str) -> Cow<'s, str> {
    if spelling.numbered {
        Cow::Owned(numbered(sql))
    } else {
        Cow::Borrowed(sql)
    }
}

/// The columns every cart query selects, in this order.
pub(crate) const CART_COLUMNS: &str =
    "c.id, c.checked_out, c.user_id, c.created_at, c.updated_at, c.frozen_until, c.version";

/// How many columns [`CART_COLUMNS`] has: what follows them starts here.
pub(crate) const CART_WIDTH: usize = 7;

/// A cart listing: carts with their line and unit counts, newest first.
fn listing(spelling: &Spelling, clause: &str, page: &str) -> String {
    format!(
        "SELECT {CART_COLUMNS}, COUNT(i.id), {units} \
         FROM cart_carts c LEFT JOIN cart_items i ON i.cart_id = c.id {clause}\
         GROUP BY c.id, c.checked_out, c.user_id, c.created_at, c.updated_at \
         ORDER BY c.created_at DESC, c.id DESC {page}",
        units = spelling.units
    )
}

/// The whole statement of a cart listing (one page, by offset), with `?` parameters, and
/// the values to bind in order.
pub(crate) fn list_sql<'a>(filter: &'a CartFilter, spelling: &Spelling) -> (String, Vec<Val<'a>>) {
    let mut clauses = Vec::new();
    let mut args = Vec::new();
    match filter.checked_out {
        Some(true) => clauses.push(spelling.closed("c.checked_out")),
        Some(false) => clauses.push(spelling.open("c.checked_out")),
        None => {}
    }
    if let Some(user) = &filter.user_id {
        args.push(Val::Text(Some(user.as_str())));
        clauses.push("c.user_id = ?".to_owned());
    }
    if let Some(days) = filter.inactive_days {
        args.push(Val::from(now_epoch() - i64::from(days) * 86_400));
        clauses.push("c.updated_at < ?".to_owned());
    }
    let clause = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {} ", clauses.join(" AND "))
    };
    args.push(Val::from(i64::from(filter.limit.clamp(1, 1000))));
    args.push(Val::from(i64::from(filter.offset)));
    (listing(spelling, &clause, "LIMIT ? OFFSET ?"), args)
}

/// The statement of one page of a user's carts, in the order of [`list_sql`] (newest
/// first: `created_at DESC, id DESC`), and the values to bind in order. Pages follow each
/// other by the last row seen (keyset), not by offset, so a cart created or deleted while
/// the pages are read never makes another one be skipped or listed twice.
pub(crate) fn user_page_sql<'a>(
    spelling: &Spelling,
    user_id: &'a str,
    open_only: bool,
    after: Option<(i64, CartId)>,
    limit: i64,
) -> (String, Vec<Val<'a>>) {
    let mut args = vec![Val::Text(Some(user_id))];
    let mut clauses = vec!["c.user_id = ?".to_owned()];
    if open_only {
        clauses.push(spelling.open("c.checked_out"));
    }
    if let Some((created_at, id)) = after {
        args.extend([created_at, created_at, id.get()].map(Val::from));
        clauses.push("(c.created_at < ? OR (c.created_at = ? AND c.id < ?))".to_owned());
    }
    args.push(Val::from(limit.max(1)));
    let clause = format!("WHERE {} ", clauses.join(" AND "));
    (listing(spelling, &clause, "LIMIT ?"), args)
}

/// The SQL condition "this discount (the `cart_discounts` row of the statement) has been
/// used": a checkout counted a use of it, or a checked-out cart holds it. The use count is
/// a column of the row the statement writes, so a checkout committing concurrently is seen
/// (it counts its use in the same transaction that checks the cart out).
pub(crate) fn discount_in_use(spelling: &Spelling) -> String {
    format!(
        "(cart_discounts.current_uses > 0 OR EXISTS (SELECT 1 FROM cart_carts c \
         WHERE c.discount_id = cart_discounts.id AND {}))",
        spelling.closed("c.checked_out")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Spelling = Spelling {
        numbered: false,
        true_: "1",
        false_: "0",
        units: "SUM(i.quantity)",
        value: "value",
        min_value: "min_cart_value",
        price: "unit_price",
        lock: "",
        skip_locked: "",
        share_lock: "",
        lines_index: "",
        begin: None,
        upsert: Upsert::OnDuplicateKey,
        returning: false,
        ordered_delete: true,
        guard_codes: false,
    };
    const D: Spelling = Spelling {
        numbered: true,
        true_: "TRUE",
        false_: "FALSE",
        upsert: Upsert::OnConflict,
        returning: true,
        ordered_delete: false,
        ..Q
    };

    #[test]
    fn numbering_skips_quoted_text() {
        assert_eq!(
            numbered("a = ? AND b = '?' AND \"c?\" = ? OR d IN (?, ?)"),
            "a = $1 AND b = '?' AND \"c?\" = $2 OR d IN ($3, $4)"
        );
        assert_eq!(numbered("no parameters"), "no parameters");
        assert_eq!(spelled(&Q, "x = ?"), "x = ?");
        assert_eq!(spelled(&D, "x = ? AND y = ?"), "x = $1 AND y = $2");
    }

    #[test]
    fn listing_binds_in_order_of_its_parameters() {
        let filter = CartFilter::new().user("alice").checked_out(false).limit(5);
        let (sql, args) = list_sql(&filter, &D);
        assert!(sql.contains("WHERE c.checked_out = FALSE AND c.user_id = ? GROUP BY"));
        assert!(sql.ends_with("ORDER BY c.created_at DESC, c.id DESC LIMIT ? OFFSET ?"));
        assert_eq!(
            args,
            vec![Val::Text(Some("alice")), Val::from(5), Val::from(0)]
        );
        assert_eq!(sql.matches('?').count(), args.len());
        let numbered = numbered(&sql);
        assert!(numbered.contains("c.user_id = $1") && numbered.ends_with("LIMIT $2 OFFSET $3"));

        let closed = CartFilter::new().checked_out(true);
        let (sql, args) = list_sql(&closed, &Q);
        assert!(sql.contains("WHERE c.checked_out = 1 GROUP BY"));
        assert_eq!(args.len(), 2);
        let (sql, _) = list_sql(&CartFilter::new(), &Q);
        assert!(!sql.contains("WHERE"));
    }

    #[test]
    fn keyset_page_follows_the_last_row() {
        let after = Some((100, CartId::from_db(7)));
        let (sql, args) = user_page_sql(&D, "bob", true, after, 0);
        let sql = numbered(&sql);
        assert!(sql.contains(
            "WHERE c.user_id = $1 AND c.checked_out = FALSE AND \
             (c.created_at < $2 OR (c.created_at = $3 AND c.id < $4)) GROUP BY"
        ));
        assert!(sql.ends_with("LIMIT $5"));
        let expected = [
            Val::Text(Some("bob")),
            100.into(),
            100.into(),
            7.into(),
            1.into(),
        ];
        assert_eq!(args, expected);

        let (sql, args) = user_page_sql(&Q, "bob", false, None, 20);
        assert!(sql.contains("WHERE c.user_id = ? GROUP BY") && sql.ends_with("LIMIT ?"));
        assert_eq!(args, vec![Val::Text(Some("bob")), Val::from(20)]);
    }

    #[test]
    fn upserts_and_deletes_per_dialect() {
        assert_eq!(
            D.upsert("source_id", &["target_id", "merged_at"]),
            "ON CONFLICT (source_id) DO UPDATE SET target_id = excluded.target_id, \
             merged_at = excluded.merged_at"
        );
        assert_eq!(
            Q.upsert("source_id", &["target_id", "merged_at"]),
            "ON DUPLICATE KEY UPDATE target_id = VALUES(target_id), merged_at = VALUES(merged_at)"
        );
        assert_eq!(
            Q.limited_delete("user_id = ?"),
            "DELETE FROM cart_carts WHERE user_id = ? ORDER BY id LIMIT ?"
        );
        assert_eq!(
            D.limited_delete("user_id = ?"),
            "DELETE FROM cart_carts WHERE id IN \
             (SELECT id FROM cart_carts WHERE user_id = ? ORDER BY id LIMIT ?)"
        );
        assert!(discount_in_use(&D).ends_with("AND c.checked_out = TRUE))"));
        assert_eq!((D.returning_id(), Q.returning_id()), (" RETURNING id", ""));
    }
}
