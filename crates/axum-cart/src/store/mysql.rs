//! MySQL / MariaDB: what differs from the shared store. Money is DECIMAL(18,2); writes lock
//! rows with `SELECT … FOR UPDATE`, carts in id order, then the discount; `add` is a
//! CHECK-refused upsert whose new quantity is read back with `LAST_INSERT_ID`.

use async_trait::async_trait;
use rust_decimal::Decimal;
use sqlx::error::BoxDynError;
use sqlx::mysql::{MySqlArguments, MySqlQueryResult, MySqlRow};
use sqlx::{Arguments, MySql, Row};

use super::common::SqlBackend;
use super::driver::{
    is_check_error, is_checked_out_error, is_fk_error, is_frozen_error, is_full_error, Dialect,
    Stmt,
};
use super::locked::{line_stmt, record_add, Stored};
use super::sql::{Spelling, Upsert};
use super::{migrator, AddLimits, AddOutcome};
use crate::{CartError, CartId, Line};

/// MySQL has no `DO UPDATE … WHERE`: past the maximum the quantity is set to 0, which the
/// `cart_items_quantity` CHECK refuses, so the whole statement fails and nothing changes. A
/// new line in a full cart is refused by the guard trigger (SQLSTATE AXC03, migration
/// 9000000000000007), which reads the cart's most lines from `max_lines` (and stores NULL)
/// while it holds the cart row's lock: concurrent adds cannot pass the limit together.
const ADD: &str = "INSERT INTO cart_items (cart_id, product_kind, product_id, quantity, unit_price, \
     options, options_key, max_lines) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
     ON DUPLICATE KEY UPDATE \
     unit_price = IF(quantity + VALUES(quantity) <= ?, VALUES(unit_price), unit_price), \
     quantity = LAST_INSERT_ID(4611686018427387904 + IF(quantity + VALUES(quantity) <= ?, quantity + VALUES(quantity), 0)) - 4611686018427387904";

/// What the update branch of [`ADD`] adds to the line's new quantity in `LAST_INSERT_ID`:
/// 2^62, far above any row id, so an update's report can never be mistaken for the id of an
/// inserted row.
const UPDATED: u64 = 1 << 62;

#[async_trait]
impl Dialect for MySql {
    const BACKEND: &'static str = "mysql";
    const SQL: Spelling = Spelling {
        numbered: false,
        true_: "1",
        false_: "0",
        units: "CAST(COALESCE(SUM(i.quantity), 0) AS SIGNED)",
        value: "value",
        min_value: "min_cart_value",
        price: "unit_price",
        lock: " FOR UPDATE",
        skip_locked: " FOR UPDATE SKIP LOCKED",
        // A locking read: under REPEATABLE READ a plain SELECT would read the snapshot taken
        // at the transaction's first plain read, which can predate a change committed while
        // this transaction waited for a later cart's lock (a merge would then miss a unit).
        share_lock: " LOCK IN SHARE MODE",
        lines_index: " FORCE INDEX (cart_items_line_options)",
        begin: None,
        upsert: Upsert::OnDuplicateKey,
        returning: false,
        ordered_delete: true,
        guard_codes: true,
    };
    /// The SQLSTATE the guard triggers SIGNAL (migration 9000000000000006); the product
    /// kind's triggers keep the generic 45000.
    const CHECKED_OUT_CODE: &'static str = super::CHECKED_OUT_SQLSTATE;
    type State = ();

    fn rows_affected(done: &MySqlQueryResult) -> u64 {
        done.rows_affected()
    }
    fn last_insert_id(done: &MySqlQueryResult) -> Option<i64> {
        Some(i64::try_from(done.last_insert_id()).unwrap_or(i64::MAX))
    }
    fn push_money(args: &mut MySqlArguments, v: Option<Decimal>) -> Result<(), BoxDynError> {
        args.add(v)
    }
    fn money_opt(row: &MySqlRow, i: usize) -> Result<Option<Decimal>, sqlx::Error> {
        row.try_get(i)
    }
    // The tables use a binary collation (exact matching, as on the other backends), which
    // MySQL reports as VARBINARY: the bytes are UTF-8 text all the same.
    fn text_opt(row: &MySqlRow, i: usize) -> Result<Option<String>, sqlx::Error> {
        row.try_get_unchecked(i)
    }

    async fn migrate(store: &SqlBackend<MySql>) -> Result<(), CartError> {
        migrator(sqlx::migrate!("migrations/mysql"))
            .run(&store.pool)
            .await?;
        Ok(())
    }

    async fn add(
        store: &SqlBackend<MySql>,
        cart: CartId,
        line: &Line,
        max: AddLimits,
    ) -> Result<AddOutcome, CartError> {
        // In a task of its own, so that a caller dropped half-way (a client hanging up)
        // cannot leave the connection inside a transaction: sqlx's `begin` is not
        // cancel-safe (see `locked::begin_on`).
        let pool = store.writer()?.clone();
        let line = line.clone();
        tokio::spawn(async move { add_in_one_transaction(&pool, cart, &line, max).await })
            .await
            .map_err(|_| CartError::from(sqlx::Error::WorkerCrashed))?
    }
}

/// The add and its event in one transaction.
async fn add_in_one_transaction(
    pool: &sqlx::Pool<MySql>,
    cart: CartId,
    line: &Line,
    max: AddLimits,
) -> Result<AddOutcome, CartError> {
    {
        let stored = Stored::of(line);
        // The add and its event in one transaction, at READ COMMITTED: the upsert and the
        // guard's reads then take no gap locks, which under REPEATABLE READ reach into the
        // neighbouring carts' lines and deadlock concurrent adds held open for the event.
        let mut conn = pool.acquire().await?;
        Stmt::<MySql>::new("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .run(&mut conn)
            .await?;
        let mut tx = sqlx::Acquire::begin(&mut *conn).await?;
        let result = line_stmt::<MySql>(ADD, cart, line, &stored)
            .bind(max.lines_bound())
            .bind(max.quantity)
            .bind(max.quantity)
            .affected(&mut tx)
            .await;
        // A refused add wrote nothing: its transaction ends (dropped, it rolls back).
        let rows = match result {
            Ok(rows) => rows,
            Err(e) if is_checked_out_error::<MySql>(&e) => return Ok(AddOutcome::CheckedOut),
            Err(e) if is_full_error(&e) => return Ok(AddOutcome::TooManyLines),
            Err(e) if is_frozen_error(&e) => return Ok(AddOutcome::Frozen),
            Err(e) if is_fk_error(&e) => return Ok(AddOutcome::Gone),
            Err(e) if is_check_error(&e) => return Ok(AddOutcome::Exceeded),
            Err(e) => return Err(e.into()),
        };
        // An insert affects 1 row: the line holds what was added. An update affects 2, and
        // `LAST_INSERT_ID(…)` in its branch recorded the line's new quantity as this
        // statement wrote it, in this connection's own session: reading it back can never
        // see another request's units (a `SELECT quantity` could).
        // Read before the event's insert, which sets LAST_INSERT_ID anew.
        let quantity = if rows == 1 {
            line.quantity
        } else {
            let row = Stmt::<MySql>::new("SELECT LAST_INSERT_ID()")
                .one(&mut tx)
                .await?;
            let reported: Option<u64> = row.map(|r| r.try_get(0)).transpose()?;
            reported
                .and_then(|r| r.checked_sub(UPDATED))
                .and_then(|q| i64::try_from(q).ok())
                .unwrap_or(line.quantity)
        };
        record_add::<MySql>(&mut tx, cart, line, quantity).await?;
        tx.commit().await?;
        Ok(AddOutcome::Added { quantity })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::{discount_in_use, list_sql, spelled};
    use crate::store::CartFilter;

    #[test]
    fn statements_are_spelled_for_mysql() {
        let (sql, _) = list_sql(&CartFilter::new().checked_out(false), &MySql::SQL);
        assert!(sql.contains("WHERE c.checked_out = 0 GROUP BY"));
        assert!(sql.contains("CAST(COALESCE(SUM(i.quantity), 0) AS SIGNED)"));
        assert_eq!(spelled(&MySql::SQL, ADD), ADD);
        assert_eq!(ADD.matches('?').count(), 10);
        assert_eq!(
            MySql::SQL.limited_delete("user_id = ?"),
            "DELETE FROM cart_carts WHERE user_id = ? ORDER BY id LIMIT ?"
        );
        assert_eq!(
            MySql::SQL.upsert("source_id", &["target_id"]),
            "ON DUPLICATE KEY UPDATE target_id = VALUES(target_id)"
        );
        assert!(discount_in_use(&MySql::SQL).contains("c.checked_out = 1"));
        assert_eq!(UPDATED, 4_611_686_018_427_387_904);
    }
}
