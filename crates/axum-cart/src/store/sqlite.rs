//! SQLite: what differs from the shared store. Money is integer cents; the cart is read
//! in one packed row; writes go through one writer connection and `BEGIN IMMEDIATE`.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rust_decimal::Decimal;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Arguments, Row, Sqlite, SqlitePool};

use super::common::SqlBackend;
use super::decode::{decode_cart, decode_discount, skipped_line, RowExt};
use super::driver::{Dialect, Stmt};
use super::migrator;
use super::sql::{Spelling, Upsert, CART_WIDTH};
use super::Snapshot;
use crate::money::{from_cents, to_cents};
use crate::{CartError, CartId, Line, LineOptions, ProductRef};

/// Opens a SQLite database the way a web app wants it: created if missing, WAL, a busy
/// timeout instead of "database is locked", foreign keys on.
pub(super) async fn connect(url: &str) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    SqlitePoolOptions::new()
        .test_before_acquire(false)
        // One connection keeps an in-memory database alive and shared.
        .max_connections(if in_memory { 1 } else { 8 })
        .min_connections(if in_memory { 1 } else { 0 })
        .idle_timeout(if in_memory {
            None
        } else {
            Some(Duration::from_secs(600))
        })
        .max_lifetime(if in_memory {
            None
        } else {
            Some(Duration::from_secs(1800))
        })
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
}

/// How many writes between explicit WAL checkpoints. Under a steady stream of writes
/// SQLite's automatic checkpoint never gets to restart the WAL, which then grows without
/// bound (gigabytes in a minute of adds) and slows every write; a PASSIVE checkpoint on the
/// writer connection, between two writes, lets the next write start the WAL over.
const CHECKPOINT_EVERY: u64 = 1000;

#[async_trait]
impl Dialect for Sqlite {
    const BACKEND: &'static str = "sqlite";
    const SQL: Spelling = Spelling {
        numbered: false,
        true_: "1",
        false_: "0",
        units: "COALESCE(SUM(i.quantity), 0)",
        value: "value_cents",
        min_value: "min_cart_value_cents",
        price: "unit_price_cents",
        // BEGIN IMMEDIATE takes the write lock up front: the whole database is locked for
        // the few statements of a locked write, which also locks the discount rows.
        lock: "",
        skip_locked: "",
        share_lock: "",
        lines_index: "",
        begin: Some("BEGIN IMMEDIATE"),
        upsert: Upsert::OnConflict,
        returning: true,
        ordered_delete: false,
        guard_codes: false,
    };
    /// SQLITE_CONSTRAINT_TRIGGER, the extended result code of a trigger's `RAISE(ABORT, …)`.
    /// The guard is the one trigger a line write of the store can trip: the other trigger
    /// of `cart_items` (the product kind's) refuses only kinds a `ProductRef` never holds.
    const CHECKED_OUT_CODE: &'static str = "1811";
    /// Writes since the last explicit checkpoint.
    type State = AtomicU64;

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
    fn push_money<'q>(
        args: &mut <Sqlite as sqlx::Database>::Arguments<'q>,
        v: Option<Decimal>,
    ) -> Result<(), BoxDynError> {
        args.add(v.map(to_cents))
    }
    fn money_opt(row: &SqliteRow, i: usize) -> Result<Option<Decimal>, sqlx::Error> {
        Ok(row.try_get::<Option<i64>, _>(i)?.map(from_cents))
    }

    /// Writes: one connection, so concurrent writers queue in the pool, in order, instead
    /// of sleeping in SQLite's busy handler (which gives long latency tails). An in-memory
    /// database exists only in its own connections: it shares the pool.
    fn writer_pool(pool: &SqlitePool) -> SqlitePool {
        let options = pool.connect_options();
        let name = options.get_filename().to_string_lossy().into_owned();
        if name.is_empty() || name.contains(":memory:") || name.starts_with("file:") {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(10))
                .connect_lazy_with((*options).clone())
        }
    }

    async fn migrate(store: &SqlBackend<Sqlite>) -> Result<(), CartError> {
        // sqlx takes no lock on SQLite (its `lock` is a no-op): two processes migrating one
        // fresh file would both apply the first migration, and one fails. Migrating inside
        // one `BEGIN IMMEDIATE` transaction holds SQLite's write lock from the first
        // statement: a second process waits (busy timeout) and then finds the migrations
        // applied. sqlx runs each migration in a savepoint of this transaction.
        let mut tx = store.writer()?.begin_with("BEGIN IMMEDIATE").await?;
        migrator(sqlx::migrate!("migrations/sqlite"))
            .run_direct(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn load(store: &SqlBackend<Sqlite>, id: CartId) -> Result<Option<Snapshot>, CartError> {
        let Some(row) = Stmt::<Sqlite>::new(LOAD)
            .bind(id.get())
            .one(&mut *store.pool.acquire().await?)
            .await?
        else {
            return Ok(None);
        };
        let mut snap = decode_cart(&row, 0)?;
        snap.discount = decode_discount(&row, CART_WIDTH)?;
        if let Some(packed) = row.text_opt(CART_WIDTH + 10)? {
            snap.lines = unpack_lines(&packed);
        }
        Ok(Some(snap))
    }

    /// Counts a write; every [`CHECKPOINT_EVERY`] writes, checkpoints the WAL on `conn`
    /// (the writer, so no other write is in the way). A busy checkpoint is simply skipped.
    async fn after_write(store: &SqlBackend<Sqlite>) {
        let n = store.state.fetch_add(1, Ordering::Relaxed);
        if n % CHECKPOINT_EVERY == CHECKPOINT_EVERY - 1 {
            let result = match store.writer() {
                Ok(writer) => {
                    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                        .execute(writer)
                        .await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "WAL checkpoint skipped");
            }
        }
    }
}

/// The cart, its discount and its lines in one statement and ONE row: the lines are packed
/// as `kind␟id␟quantity␟cents␟options␞…` (the ASCII unit and record separators, which
/// neither a kind nor stored options ever contain). sqlx hands SQLite rows from a worker
/// thread one message at a time, so one row instead of one per line keeps a 100-line cart
/// as cheap to read as a 1-line one.
const LOAD: &str = "SELECT c.id, c.checked_out, c.user_id, c.created_at, c.updated_at, c.frozen_until, c.version, \
     d.id, d.code, d.discount_type, d.value_cents, d.min_cart_value_cents, d.max_uses, d.current_uses, \
     d.active, d.valid_from, d.valid_until, \
     (SELECT group_concat(i.product_kind || char(31) || i.product_id || char(31) || i.quantity \
             || char(31) || i.unit_price_cents || char(31) || i.options, char(30) ORDER BY i.id) \
      FROM cart_items i WHERE i.cart_id = c.id) \
     FROM cart_carts c \
     LEFT JOIN cart_discounts d ON d.id = c.discount_id \
     WHERE c.id = ?";

/// Unpacks the lines of [`LOAD`].
fn unpack_lines(packed: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    for item in packed.split('\u{1e}').filter(|s| !s.is_empty()) {
        let mut parts = item.split('\u{1f}');
        let (Some(kind), Some(id), Some(qty), Some(cents), Some(options), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            skipped_line(item);
            continue;
        };
        let (Ok(id), Ok(quantity), Ok(cents)) = (id.parse(), qty.parse(), cents.parse()) else {
            skipped_line(item);
            continue;
        };
        let Some(options) = LineOptions::from_db(options) else {
            skipped_line(item);
            continue;
        };
        match ProductRef::new(kind, id) {
            Ok(product) => {
                lines.push(Line::new(product, quantity, from_cents(cents)).with_options(options))
            }
            Err(_) => skipped_line(kind),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::{list_sql, spelled};
    use crate::store::CartFilter;

    #[test]
    fn packed_lines_unpack_and_bad_ones_are_skipped() {
        let packed = [
            "book\u{1f}1\u{1f}2\u{1f}999\u{1f}",
            "",
            "pen\u{1f}7\u{1f}1\u{1f}50\u{1f}{\"size\":\"L\"}",
            "bad kind\u{1f}3\u{1f}1\u{1f}1\u{1f}",
            "mug\u{1f}x\u{1f}1\u{1f}1\u{1f}",
            "cup\u{1f}1\u{1f}1\u{1f}1\u{1f}{\"bad name\":\"x\"}",
            "short",
        ]
        .join("\u{1e}");
        let lines = unpack_lines(&packed);
        let got: Vec<_> = lines
            .iter()
            .map(|l| {
                (
                    l.product.kind().to_owned(),
                    l.product.id(),
                    l.quantity,
                    l.unit_price,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("book".to_owned(), 1, 2, Decimal::new(999, 2)),
                ("pen".to_owned(), 7, 1, Decimal::new(50, 2)),
            ]
        );
        assert_eq!(lines[1].options.get("size"), Some("L"));
        assert!(lines[0].options.is_empty());
        assert!(unpack_lines("").is_empty());
    }

    #[test]
    fn statements_are_spelled_for_sqlite() {
        let open = CartFilter::new().checked_out(false);
        let (sql, args) = list_sql(&open, &Sqlite::SQL);
        assert!(sql.contains("WHERE c.checked_out = 0 GROUP BY"));
        assert!(sql.contains("COALESCE(SUM(i.quantity), 0) FROM"));
        assert_eq!(spelled(&Sqlite::SQL, &sql), sql.as_str());
        assert_eq!(args.len(), 2);
        assert_eq!(
            Sqlite::SQL.upsert("source_id", &["target_id"]),
            "ON CONFLICT (source_id) DO UPDATE SET target_id = excluded.target_id"
        );
        assert!(Sqlite::SQL
            .discount_select()
            .contains("d.value_cents, d.min_cart_value_cents"));
        assert!(LOAD.ends_with("WHERE c.id = ?"));
    }
}
