//! MySQL / MariaDB: all of the MySQL SQL. Money is DECIMAL(18,2); writes lock rows with
//! `SELECT … FOR UPDATE`, carts in id order, then the discount.

use async_trait::async_trait;
use rust_decimal::Decimal;
use sqlx::mysql::MySqlRow;
use sqlx::{MySqlConnection, MySqlPool, Row};

use super::{
    decode_cart, decode_discount, decode_line, decode_record, duplicate_code, fold_snapshot,
    is_check_error, is_checked_out_error, is_fk_error, is_unique_error, list_sql, migrator,
    now_epoch, used_up, AddOutcome, Arg, Backend, CartFilter, CartRecord, ListDialect, Locked,
    Plan, RowExt, Snapshot, Write, WriteOutcome, WriteRequest, CART_COLUMNS,
};
use crate::discount::Discount;
use crate::error::CartError;
use crate::types::{CartId, Line};

fn ph(_: usize) -> String {
    "?".to_owned()
}

const LIST: ListDialect = ListDialect {
    placeholder: ph,
    open: "c.checked_out = 0",
    closed: "c.checked_out = 1",
    units: "CAST(COALESCE(SUM(i.quantity), 0) AS SIGNED)",
};

fn migrations() -> sqlx::migrate::Migrator {
    migrator(sqlx::migrate!("migrations/mysql"))
}

pub(super) struct MySqlBackend {
    pool: MySqlPool,
}

impl MySqlBackend {
    pub(super) fn new(pool: MySqlPool) -> Self {
        MySqlBackend { pool }
    }
}

impl RowExt for MySqlRow {
    fn int(&self, i: usize) -> Result<i64, sqlx::Error> {
        self.try_get(i)
    }
    fn int_opt(&self, i: usize) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(i)
    }
    fn flag(&self, i: usize) -> Result<bool, sqlx::Error> {
        self.try_get(i)
    }
    // The tables use a binary collation (exact matching, as on the other backends), which
    // MySQL reports as VARBINARY: the bytes are UTF-8 text all the same.
    fn text(&self, i: usize) -> Result<String, sqlx::Error> {
        self.try_get_unchecked(i)
    }
    fn text_opt(&self, i: usize) -> Result<Option<String>, sqlx::Error> {
        self.try_get_unchecked(i)
    }
    fn money(&self, i: usize) -> Result<Decimal, sqlx::Error> {
        self.try_get(i)
    }
    fn money_opt(&self, i: usize) -> Result<Option<Decimal>, sqlx::Error> {
        self.try_get(i)
    }
}

const LOAD: &str = "SELECT c.id, c.checked_out, c.user_id, c.created_at, c.updated_at, \
     d.id, d.code, d.discount_type, d.value, d.min_cart_value, d.max_uses, d.current_uses, \
     d.active, d.valid_from, d.valid_until, \
     i.product_kind, i.product_id, i.quantity, i.unit_price \
     FROM cart_carts c \
     LEFT JOIN cart_discounts d ON d.id = c.discount_id \
     LEFT JOIN cart_items i ON i.cart_id = c.id \
     WHERE c.id = ? ORDER BY i.id";

const DISCOUNT: &str = "SELECT d.id, d.code, d.discount_type, d.value, d.min_cart_value, \
     d.max_uses, d.current_uses, d.active, d.valid_from, d.valid_until FROM cart_discounts d";

/// MySQL has no `DO UPDATE … WHERE`: past the maximum the quantity is set to 0, which the
/// `cart_items_quantity` CHECK refuses, so the whole statement fails and nothing changes.
const ADD: &str =
    "INSERT INTO cart_items (cart_id, product_kind, product_id, quantity, unit_price) \
     VALUES (?, ?, ?, ?, ?) \
     ON DUPLICATE KEY UPDATE \
     unit_price = IF(quantity + VALUES(quantity) <= ?, VALUES(unit_price), unit_price), \
     quantity = LAST_INSERT_ID(4611686018427387904 + IF(quantity + VALUES(quantity) <= ?, quantity + VALUES(quantity), 0)) - 4611686018427387904";

/// What the update branch of [`ADD`] adds to the line's new quantity in `LAST_INSERT_ID`:
/// 2^62, far above any row id, so an update's report can never be mistaken for the id of an
/// inserted row.
const UPDATED: u64 = 1 << 62;

async fn lock_cart(
    conn: &mut MySqlConnection,
    id: CartId,
) -> Result<Option<(Snapshot, Option<i64>)>, CartError> {
    let row = sqlx::query(&format!(
        "SELECT {CART_COLUMNS}, c.discount_id FROM cart_carts c WHERE c.id = ? FOR UPDATE"
    ))
    .bind(id.get())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let snap = decode_cart(&row, 0)?;
    let discount_id = row.int_opt(5)?;
    Ok(Some((snap, discount_id)))
}

async fn read_locked(
    conn: &mut MySqlConnection,
    id: CartId,
    lock_discount: bool,
) -> Result<Option<Snapshot>, CartError> {
    let Some((mut snap, discount_id)) = lock_cart(conn, id).await? else {
        return Ok(None);
    };
    if let Some(did) = discount_id {
        let lock = if lock_discount { " FOR UPDATE" } else { "" };
        let row = sqlx::query(&format!("{DISCOUNT} WHERE d.id = ?{lock}"))
            .bind(did)
            .fetch_optional(&mut *conn)
            .await?;
        snap.discount = match row {
            Some(r) => decode_discount(&r, 0)?,
            None => None,
        };
    }
    // A locking read: under REPEATABLE READ a plain SELECT would read the snapshot taken at
    // the transaction's first plain read, which can predate a change committed while this
    // transaction waited for a later cart's lock (a merge would then miss a unit).
    let rows = sqlx::query(
        "SELECT product_kind, product_id, quantity, unit_price FROM cart_items WHERE cart_id = ? \
         ORDER BY id LOCK IN SHARE MODE",
    )
    .bind(id.get())
    .fetch_all(&mut *conn)
    .await?;
    for r in &rows {
        if let Some(line) = decode_line(r, 0)? {
            snap.lines.push(line);
        }
    }
    Ok(Some(snap))
}

async fn apply(conn: &mut MySqlConnection, write: &Write) -> Result<(), CartError> {
    let now = now_epoch();
    let result = match write {
        Write::Upsert { cart, line } => sqlx::query(
            "INSERT INTO cart_items (cart_id, product_kind, product_id, quantity, unit_price) \
                 VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
                 quantity = VALUES(quantity), unit_price = VALUES(unit_price)",
        )
        .bind(cart.get())
        .bind(line.product.kind())
        .bind(line.product.id())
        .bind(line.quantity)
        .bind(line.unit_price)
        .execute(&mut *conn)
        .await,
        Write::Delete { cart, product } => {
            sqlx::query("DELETE FROM cart_items WHERE cart_id = ? AND product_kind = ? AND product_id = ?")
                .bind(cart.get())
                .bind(product.kind())
                .bind(product.id())
                .execute(&mut *conn)
                .await
        }
        Write::Clear { cart } => {
            sqlx::query("DELETE FROM cart_items WHERE cart_id = ?").bind(cart.get()).execute(&mut *conn).await
        }
        Write::SetDiscount { cart, discount } => {
            sqlx::query("UPDATE cart_carts SET discount_id = ?, updated_at = ? WHERE id = ?")
                .bind(discount)
                .bind(now)
                .bind(cart.get())
                .execute(&mut *conn)
                .await
        }
        Write::SetUser { cart, user } => sqlx::query("UPDATE cart_carts SET user_id = ?, updated_at = ? WHERE id = ?")
            .bind(user)
            .bind(now)
            .bind(cart.get())
            .execute(&mut *conn)
            .await,
        Write::UseDiscount { discount } => {
            let done = sqlx::query(
                "UPDATE cart_discounts SET current_uses = current_uses + 1 \
                 WHERE id = ? AND (max_uses IS NULL OR current_uses < max_uses)",
            )
            .bind(discount)
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 0 {
                return Err(used_up());
            }
            return Ok(());
        }
        Write::CheckOut { cart } => sqlx::query(
            "UPDATE cart_carts SET checked_out = 1, checked_out_at = ?, updated_at = ?, session_key = NULL WHERE id = ? AND checked_out = 0",
        )
        .bind(now)
        .bind(now)
        .bind(cart.get())
        .execute(&mut *conn)
        .await,
        Write::MergeAway { cart, into } => {
            sqlx::query("INSERT INTO cart_merges (source_id, target_id, merged_at) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE target_id = VALUES(target_id), merged_at = VALUES(merged_at)")
                .bind(cart.get())
                .bind(into.get())
                .bind(now)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM cart_carts WHERE id = ?").bind(cart.get()).execute(&mut *conn).await
        }
        Write::SetKey { cart, key } => {
            set_key(&mut *conn, *cart, key).await?;
            return Ok(());
        }
    };
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_checked_out_error(&e) => Err(CartError::CheckedOut),
        Err(e) => Err(e.into()),
    }
}

/// Gives `cart` the session key `key`, taking it from any other cart first.
async fn set_key(conn: &mut MySqlConnection, cart: CartId, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE cart_carts SET session_key = NULL WHERE session_key = ? AND id <> ?")
        .bind(key)
        .bind(cart.get())
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE cart_carts SET session_key = ? WHERE id = ?")
        .bind(key)
        .bind(cart.get())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn touch(conn: &mut MySqlConnection, id: CartId) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE cart_carts SET updated_at = ? WHERE id = ?")
        .bind(now_epoch())
        .bind(id.get())
        .execute(conn)
        .await?;
    Ok(())
}

#[async_trait]
impl Backend for MySqlBackend {
    fn name(&self) -> &'static str {
        "mysql"
    }

    async fn migrate(&self) -> Result<(), CartError> {
        migrations().run(&self.pool).await?;
        Ok(())
    }

    async fn load(&self, id: CartId) -> Result<Option<Snapshot>, CartError> {
        let rows = sqlx::query(LOAD)
            .bind(id.get())
            .fetch_all(&self.pool)
            .await?;
        fold_snapshot(&rows)
    }

    async fn add(&self, cart_id: CartId, line: &Line, max: i64) -> Result<AddOutcome, CartError> {
        let mut conn = self.pool.acquire().await?;
        let result = sqlx::query(ADD)
            .bind(cart_id.get())
            .bind(line.product.kind())
            .bind(line.product.id())
            .bind(line.quantity)
            .bind(line.unit_price)
            .bind(max)
            .bind(max)
            .execute(&mut *conn)
            .await;
        let done = match result {
            Ok(done) => done,
            Err(e) if is_checked_out_error(&e) => return Ok(AddOutcome::CheckedOut),
            Err(e) if is_fk_error(&e) => return Ok(AddOutcome::Gone),
            Err(e) if is_check_error(&e) => return Ok(AddOutcome::Exceeded),
            Err(e) => return Err(e.into()),
        };
        // An insert affects 1 row: the line holds what was added. An update affects 2, and
        // `LAST_INSERT_ID(…)` in its branch recorded the line's new quantity as this
        // statement wrote it, in this connection's own session: reading it back can never
        // see another request's units (a `SELECT quantity` could).
        if done.rows_affected() == 1 {
            return Ok(AddOutcome::Added {
                quantity: line.quantity,
            });
        }
        let reported: u64 = sqlx::query_scalar("SELECT LAST_INSERT_ID()")
            .fetch_one(&mut *conn)
            .await?;
        let quantity = reported
            .checked_sub(UPDATED)
            .and_then(|q| i64::try_from(q).ok())
            .unwrap_or(line.quantity);
        Ok(AddOutcome::Added { quantity })
    }

    async fn create_cart(&self, key: Option<&str>) -> Result<(CartId, bool), CartError> {
        // A key released between the failed insert and the look-up is simply tried again;
        // after a few tries the cart is created without one (an insert with no key cannot
        // conflict).
        let mut key = key;
        let mut tries = 0;
        loop {
            let now = now_epoch();
            let done = sqlx::query(
                "INSERT INTO cart_carts (session_key, created_at, updated_at) VALUES (?, ?, ?)",
            )
            .bind(key)
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await;
            let inserted = done.map(|d| i64::try_from(d.last_insert_id()).unwrap_or(i64::MAX));
            match inserted {
                Ok(id) => return Ok((CartId::from_db(id), true)),
                Err(e) if key.is_some() && is_unique_error(&e) => {
                    let found: Option<i64> =
                        sqlx::query_scalar("SELECT id FROM cart_carts WHERE session_key = ?")
                            .bind(key)
                            .fetch_optional(&self.pool)
                            .await?;
                    if let Some(id) = found {
                        return Ok((CartId::from_db(id), false));
                    }
                    tries += 1;
                    if tries >= 3 {
                        key = None;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn delete_if_empty(&self, cart: CartId) -> Result<(), CartError> {
        sqlx::query(
            "DELETE FROM cart_carts WHERE id = ? AND user_id IS NULL AND discount_id IS NULL \
             AND NOT EXISTS (SELECT 1 FROM cart_items WHERE cart_id = ?)",
        )
        .bind(cart.get())
        .bind(cart.get())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn release_key(&self, key: &str) -> Result<(), CartError> {
        sqlx::query("UPDATE cart_carts SET session_key = NULL WHERE session_key = ?")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_key(&self, cart: CartId, key: &str) -> Result<(), CartError> {
        let mut conn = self.pool.acquire().await?;
        set_key(&mut conn, cart, key).await?;
        Ok(())
    }

    async fn merged_into(&self, cart: CartId) -> Result<Option<CartId>, CartError> {
        let id: Option<i64> =
            sqlx::query_scalar("SELECT target_id FROM cart_merges WHERE source_id = ?")
                .bind(cart.get())
                .fetch_optional(&self.pool)
                .await?;
        Ok(id.map(CartId::from_db))
    }

    async fn write(
        &self,
        request: WriteRequest<'_>,
        plan: &mut Plan<'_>,
    ) -> Result<WriteOutcome, CartError> {
        let WriteRequest {
            target,
            others,
            lock_discount,
        } = request;
        // Rows are locked in one order everywhere (the target, the others by id, then the
        // discount) so concurrent writes queue instead of deadlocking.
        let mut tx = self.pool.begin().await?;
        let target_id = target;
        let Some(target_snap) = read_locked(&mut tx, target_id, lock_discount).await? else {
            return Ok(WriteOutcome::Gone(target_id));
        };
        let mut other_snaps = Vec::with_capacity(others.len());
        for id in others {
            match read_locked(&mut tx, *id, false).await? {
                Some(s) => other_snaps.push(s),
                None => return Ok(WriteOutcome::Gone(*id)),
            }
        }
        let writes = plan(&Locked {
            target: target_snap,
            others: other_snaps,
        })?;
        if writes.is_empty() {
            return Ok(WriteOutcome::Unchanged);
        }
        for w in &writes {
            apply(&mut tx, w).await?;
        }
        if writes
            .iter()
            .all(|w| !matches!(w, Write::MergeAway { cart, .. } if *cart == target_id))
        {
            touch(&mut tx, target_id).await?;
        }
        tx.commit().await?;
        Ok(WriteOutcome::Written)
    }

    async fn discount_by_code(&self, code: &str) -> Result<Option<Discount>, CartError> {
        let row = sqlx::query(&format!("{DISCOUNT} WHERE d.code = ?"))
            .bind(code)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => decode_discount(&r, 0),
            None => Ok(None),
        }
    }

    async fn create_discount(&self, d: &Discount) -> Result<Discount, CartError> {
        let result = sqlx::query(
            "INSERT INTO cart_discounts (code, discount_type, value, min_cart_value, max_uses, \
             current_uses, active, valid_from, valid_until, created_at) \
             VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
        )
        .bind(&d.code)
        .bind(d.kind.as_str())
        .bind(d.value)
        .bind(d.min_cart_value)
        .bind(d.max_uses)
        .bind(d.active)
        .bind(d.valid_from.map(|t| t.unix_timestamp()))
        .bind(d.valid_until.map(|t| t.unix_timestamp()))
        .bind(now_epoch())
        .execute(&self.pool)
        .await;
        match result {
            Ok(done) => Ok(Discount {
                id: i64::try_from(done.last_insert_id()).unwrap_or(i64::MAX),
                ..d.clone()
            }),
            Err(e) if is_unique_error(&e) => Err(duplicate_code(&d.code)),
            Err(e) => Err(e.into()),
        }
    }

    async fn list_discounts(&self) -> Result<Vec<Discount>, CartError> {
        let rows = sqlx::query(&format!("{DISCOUNT} ORDER BY d.code"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .filter_map(|r| decode_discount(r, 0).transpose())
            .collect()
    }

    async fn set_discount_active(&self, code: &str, active: bool) -> Result<bool, CartError> {
        let done = sqlx::query("UPDATE cart_discounts SET active = ? WHERE code = ?")
            .bind(active)
            .bind(code)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_carts(&self, filter: &CartFilter) -> Result<Vec<CartRecord>, CartError> {
        let (sql, args) = list_sql(filter, &LIST);
        let mut query = sqlx::query(&sql);
        for arg in args {
            query = match arg {
                Arg::Int(v) => query.bind(v),
                Arg::Text(v) => query.bind(v),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(decode_record).collect()
    }

    async fn count_stale(&self, cutoff: i64, include_checked_out: bool) -> Result<u64, CartError> {
        let scope = if include_checked_out {
            ""
        } else {
            " AND checked_out = 0"
        };
        let sql = format!("SELECT COUNT(*) FROM cart_carts WHERE updated_at < ?{scope}");
        let n: i64 = sqlx::query_scalar(&sql)
            .bind(cutoff)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn delete_stale(
        &self,
        cutoff: i64,
        include_checked_out: bool,
        limit: i64,
    ) -> Result<u64, CartError> {
        let scope = if include_checked_out {
            ""
        } else {
            " AND checked_out = 0"
        };
        let sql = format!("DELETE FROM cart_carts WHERE updated_at < ?{scope} ORDER BY id LIMIT ?");
        let done = sqlx::query(&sql)
            .bind(cutoff)
            .bind(limit)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn user_carts_page(
        &self,
        user_id: &str,
        open_only: bool,
        after: Option<(i64, CartId)>,
        limit: i64,
    ) -> Result<Vec<CartRecord>, CartError> {
        let (sql, args) = super::user_page_sql(&LIST, user_id, open_only, after, limit);
        let mut query = sqlx::query(&sql);
        for arg in args {
            query = match arg {
                Arg::Int(v) => query.bind(v),
                Arg::Text(v) => query.bind(v),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(decode_record).collect()
    }

    async fn delete_cart(&self, cart: CartId) -> Result<bool, CartError> {
        let done = sqlx::query("DELETE FROM cart_carts WHERE id = ?")
            .bind(cart.get())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_user_carts(&self, user_id: &str, limit: i64) -> Result<u64, CartError> {
        let done = sqlx::query("DELETE FROM cart_carts WHERE user_id = ? ORDER BY id LIMIT ?")
            .bind(user_id)
            .bind(limit)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn update_discount(&self, d: &Discount) -> Result<super::DiscountChange, CartError> {
        let in_use = super::discount_in_use("c.checked_out = 1");
        let sql = format!(
            "UPDATE cart_discounts SET discount_type = ?, value = ?, min_cart_value = ?, \
             max_uses = ?, active = ?, valid_from = ?, valid_until = ? \
             WHERE code = ? AND (? IS NULL OR current_uses <= ?) \
             AND ((discount_type = ? AND value = ?) OR NOT {in_use})"
        );
        let done = sqlx::query(&sql)
            .bind(d.kind.as_str())
            .bind(d.value)
            .bind(d.min_cart_value)
            .bind(d.max_uses)
            .bind(d.active)
            .bind(d.valid_from.map(|t| t.unix_timestamp()))
            .bind(d.valid_until.map(|t| t.unix_timestamp()))
            .bind(&d.code)
            .bind(d.max_uses)
            .bind(d.max_uses)
            .bind(d.kind.as_str())
            .bind(d.value)
            .execute(&self.pool)
            .await?;
        self.discount_change(done.rows_affected(), &d.code).await
    }

    async fn delete_discount(&self, code: &str) -> Result<super::DiscountChange, CartError> {
        // One statement: the foreign key (`ON DELETE SET NULL`) detaches the open carts
        // holding the code, and the use count it checks is the deleted row's own.
        let in_use = super::discount_in_use("c.checked_out = 1");
        let done = sqlx::query(&format!(
            "DELETE FROM cart_discounts WHERE code = ? AND NOT {in_use}"
        ))
        .bind(code)
        .execute(&self.pool)
        .await?;
        self.discount_change(done.rows_affected(), code).await
    }
}

impl MySqlBackend {
    /// What a discount change that wrote `rows` rows means.
    async fn discount_change(
        &self,
        rows: u64,
        code: &str,
    ) -> Result<super::DiscountChange, CartError> {
        if rows > 0 {
            return Ok(super::DiscountChange::Done);
        }
        Ok(match self.discount_by_code(code).await? {
            Some(_) => super::DiscountChange::Refused,
            None => super::DiscountChange::NotFound,
        })
    }
}
