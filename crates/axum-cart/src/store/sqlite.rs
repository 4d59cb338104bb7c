//! SQLite: all of the SQLite SQL. Money is integer cents; writes use `BEGIN IMMEDIATE`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use rust_decimal::Decimal;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::{
    decode_cart, decode_discount, decode_line, decode_record, duplicate_code, is_checked_out_error,
    is_fk_error, is_unique_error, list_sql, migrator, now_epoch, used_up, AddOutcome, Arg, Backend,
    CartFilter, CartRecord, ListDialect, Locked, Plan, RowExt, Snapshot, Write, WriteOutcome,
    WriteRequest, CART_COLUMNS,
};
use crate::discount::Discount;
use crate::error::CartError;
use crate::money::{from_cents, to_cents};
use crate::product::ProductRef;
use crate::types::{CartId, Line};

fn ph(_: usize) -> String {
    "?".to_owned()
}

const LIST: ListDialect = ListDialect {
    placeholder: ph,
    open: "c.checked_out = 0",
    closed: "c.checked_out = 1",
    units: "COALESCE(SUM(i.quantity), 0)",
};

fn migrations() -> sqlx::migrate::Migrator {
    migrator(sqlx::migrate!("migrations/sqlite"))
}

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

pub(super) struct SqliteBackend {
    /// Reads (WAL lets them run beside a write).
    pool: SqlitePool,
    /// Writes: one connection, so concurrent writers queue in the pool, in order, instead
    /// of sleeping in SQLite's busy handler (which gives long latency tails).
    writer: SqlitePool,
    /// Writes since the last explicit checkpoint.
    writes: std::sync::atomic::AtomicU64,
}

/// How many writes between explicit WAL checkpoints. Under a steady stream of writes
/// SQLite's automatic checkpoint never gets to restart the WAL, which then grows without
/// bound (gigabytes in a minute of adds) and slows every write; a PASSIVE checkpoint on the
/// writer connection, between two writes, lets the next write start the WAL over.
const CHECKPOINT_EVERY: u64 = 1000;

impl SqliteBackend {
    pub(super) fn new(pool: SqlitePool) -> Self {
        let options = pool.connect_options();
        let name = options.get_filename().to_string_lossy().into_owned();
        // An in-memory database exists only in its own connections: share the pool.
        let writer = if name.is_empty() || name.contains(":memory:") || name.starts_with("file:") {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(10))
                .connect_lazy_with((*options).clone())
        };
        SqliteBackend {
            pool,
            writer,
            writes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Counts a write; every [`CHECKPOINT_EVERY`] writes, checkpoints the WAL on `conn`
    /// (the writer, so no other write is in the way). A busy checkpoint is simply skipped.
    async fn after_write(&self, conn: &mut SqliteConnection) {
        let n = self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % CHECKPOINT_EVERY == CHECKPOINT_EVERY - 1 {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(conn)
                .await
            {
                tracing::debug!(error = %e, "WAL checkpoint skipped");
            }
        }
    }

    /// The writer pool, which follows the app's pool: closing that one closes writes too.
    fn writer(&self) -> Result<&SqlitePool, sqlx::Error> {
        if self.pool.is_closed() {
            Err(sqlx::Error::PoolClosed)
        } else {
            Ok(&self.writer)
        }
    }
}

impl RowExt for SqliteRow {
    fn int(&self, i: usize) -> Result<i64, sqlx::Error> {
        self.try_get(i)
    }
    fn int_opt(&self, i: usize) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(i)
    }
    fn flag(&self, i: usize) -> Result<bool, sqlx::Error> {
        self.try_get(i)
    }
    fn text(&self, i: usize) -> Result<String, sqlx::Error> {
        self.try_get(i)
    }
    fn text_opt(&self, i: usize) -> Result<Option<String>, sqlx::Error> {
        self.try_get(i)
    }
    fn money(&self, i: usize) -> Result<Decimal, sqlx::Error> {
        Ok(from_cents(self.try_get(i)?))
    }
    fn money_opt(&self, i: usize) -> Result<Option<Decimal>, sqlx::Error> {
        Ok(self.try_get::<Option<i64>, _>(i)?.map(from_cents))
    }
}

/// The cart, its discount and its lines in one statement and ONE row: the lines are packed
/// as `kind:id:quantity:cents;…` (kinds never contain `:` or `;`). sqlx hands SQLite rows
/// from a worker thread one message at a time, so one row instead of one per line keeps a
/// 100-line cart as cheap to read as a 1-line one.
const LOAD: &str = "SELECT c.id, c.checked_out, c.user_id, c.created_at, c.updated_at, \
     d.id, d.code, d.discount_type, d.value_cents, d.min_cart_value_cents, d.max_uses, d.current_uses, \
     d.active, d.valid_from, d.valid_until, \
     (SELECT group_concat(i.product_kind || ':' || i.product_id || ':' || i.quantity || ':' \
             || i.unit_price_cents, ';' ORDER BY i.id) \
      FROM cart_items i WHERE i.cart_id = c.id) \
     FROM cart_carts c \
     LEFT JOIN cart_discounts d ON d.id = c.discount_id \
     WHERE c.id = ?";

/// Unpacks the lines of [`LOAD`].
fn unpack_lines(packed: &str) -> Result<Vec<Line>, CartError> {
    let mut lines = Vec::new();
    for item in packed.split(';').filter(|s| !s.is_empty()) {
        // kind:id:quantity:cents, read from the right: a stored kind that is not valid (it
        // may hold ':' or ';') is a skipped line, not a broken cart.
        let mut parts = item.rsplitn(4, ':');
        let (Some(cents), Some(qty), Some(id), Some(kind)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            super::skipped_line(item);
            continue;
        };
        let (Ok(id), Ok(quantity), Ok(cents)) = (id.parse(), qty.parse(), cents.parse()) else {
            super::skipped_line(item);
            continue;
        };
        match ProductRef::new(kind, id) {
            Ok(product) => lines.push(Line::new(product, quantity, from_cents(cents))),
            Err(_) => super::skipped_line(kind),
        }
    }
    Ok(lines)
}

const DISCOUNT: &str =
    "SELECT d.id, d.code, d.discount_type, d.value_cents, d.min_cart_value_cents, \
     d.max_uses, d.current_uses, d.active, d.valid_from, d.valid_until FROM cart_discounts d";

const ADD: &str = "INSERT INTO cart_items (cart_id, product_kind, product_id, quantity, unit_price_cents) \
     VALUES (?1, ?2, ?3, ?4, ?5) \
     ON CONFLICT (cart_id, product_kind, product_id) DO UPDATE \
     SET quantity = cart_items.quantity + excluded.quantity, unit_price_cents = excluded.unit_price_cents \
     WHERE cart_items.quantity + excluded.quantity <= ?6 \
     RETURNING quantity";

async fn lock_cart(
    conn: &mut SqliteConnection,
    id: CartId,
) -> Result<Option<(Snapshot, Option<i64>)>, CartError> {
    let row = sqlx::query(&format!(
        "SELECT {CART_COLUMNS}, c.discount_id FROM cart_carts c WHERE c.id = ?"
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
    conn: &mut SqliteConnection,
    id: CartId,
) -> Result<Option<Snapshot>, CartError> {
    let Some((mut snap, discount_id)) = lock_cart(conn, id).await? else {
        return Ok(None);
    };
    if let Some(did) = discount_id {
        let row = sqlx::query(&format!("{DISCOUNT} WHERE d.id = ?"))
            .bind(did)
            .fetch_optional(&mut *conn)
            .await?;
        snap.discount = match row {
            Some(r) => decode_discount(&r, 0)?,
            None => None,
        };
    }
    let rows = sqlx::query(
        "SELECT product_kind, product_id, quantity, unit_price_cents FROM cart_items WHERE cart_id = ? ORDER BY id",
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

async fn apply(conn: &mut SqliteConnection, write: &Write) -> Result<(), CartError> {
    let now = now_epoch();
    let result = match write {
        Write::Upsert { cart, line } => sqlx::query(
            "INSERT INTO cart_items (cart_id, product_kind, product_id, quantity, unit_price_cents) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (cart_id, product_kind, product_id) DO UPDATE \
                 SET quantity = excluded.quantity, unit_price_cents = excluded.unit_price_cents",
        )
        .bind(cart.get())
        .bind(line.product.kind())
        .bind(line.product.id())
        .bind(line.quantity)
        .bind(to_cents(line.unit_price))
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
            sqlx::query("INSERT INTO cart_merges (source_id, target_id, merged_at) VALUES (?, ?, ?) ON CONFLICT (source_id) DO UPDATE SET target_id = excluded.target_id, merged_at = excluded.merged_at")
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
async fn set_key(conn: &mut SqliteConnection, cart: CartId, key: &str) -> Result<(), sqlx::Error> {
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

async fn touch(conn: &mut SqliteConnection, id: CartId) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE cart_carts SET updated_at = ? WHERE id = ?")
        .bind(now_epoch())
        .bind(id.get())
        .execute(conn)
        .await?;
    Ok(())
}

#[async_trait]
impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<(), CartError> {
        // sqlx takes no lock on SQLite (its `lock` is a no-op): two processes migrating one
        // fresh file would both apply the first migration, and one fails. Migrating inside
        // one `BEGIN IMMEDIATE` transaction holds SQLite's write lock from the first
        // statement: a second process waits (busy timeout) and then finds the migrations
        // applied. sqlx runs each migration in a savepoint of this transaction.
        let mut tx = self.writer()?.begin_with("BEGIN IMMEDIATE").await?;
        migrations().run_direct(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn load(&self, id: CartId) -> Result<Option<Snapshot>, CartError> {
        let Some(row) = sqlx::query(LOAD)
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let mut snap = decode_cart(&row, 0)?;
        snap.discount = decode_discount(&row, 5)?;
        if let Some(packed) = row.text_opt(15)? {
            snap.lines = unpack_lines(&packed)?;
        }
        Ok(Some(snap))
    }

    async fn add(&self, cart_id: CartId, line: &Line, max: i64) -> Result<AddOutcome, CartError> {
        let mut conn = self.writer()?.acquire().await?;
        let result: Result<Option<i64>, sqlx::Error> = sqlx::query_scalar(ADD)
            .bind(cart_id.get())
            .bind(line.product.kind())
            .bind(line.product.id())
            .bind(line.quantity)
            .bind(to_cents(line.unit_price))
            .bind(max)
            .fetch_optional(&mut *conn)
            .await;
        if result.is_ok() {
            self.after_write(&mut conn).await;
        }
        match result {
            Ok(Some(quantity)) => Ok(AddOutcome::Added { quantity }),
            Ok(None) => Ok(AddOutcome::Exceeded),
            Err(e) if is_checked_out_error(&e) => Ok(AddOutcome::CheckedOut),
            Err(e) if is_fk_error(&e) => Ok(AddOutcome::Gone),
            Err(e) => Err(e.into()),
        }
    }

    async fn create_cart(&self, key: Option<&str>) -> Result<(CartId, bool), CartError> {
        // A key released between the failed insert and the look-up is simply tried again;
        // after a few tries the cart is created without one (an insert with no key cannot
        // conflict).
        let mut key = key;
        let mut tries = 0;
        loop {
            let now = now_epoch();
            let inserted: Result<i64, sqlx::Error> = sqlx::query_scalar(
                "INSERT INTO cart_carts (session_key, created_at, updated_at) VALUES (?, ?, ?) RETURNING id",
            )
            .bind(key)
            .bind(now)
            .bind(now)
            .fetch_one(self.writer()?)
            .await;
            match inserted {
                Ok(id) => return Ok((CartId::from_db(id), true)),
                Err(e) if key.is_some() && is_unique_error(&e) => {
                    let found: Option<i64> =
                        sqlx::query_scalar("SELECT id FROM cart_carts WHERE session_key = ?")
                            .bind(key)
                            .fetch_optional(self.writer()?)
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
        .execute(self.writer()?)
        .await?;
        Ok(())
    }

    async fn release_key(&self, key: &str) -> Result<(), CartError> {
        sqlx::query("UPDATE cart_carts SET session_key = NULL WHERE session_key = ?")
            .bind(key)
            .execute(self.writer()?)
            .await?;
        Ok(())
    }

    async fn set_key(&self, cart: CartId, key: &str) -> Result<(), CartError> {
        let mut conn = self.writer()?.acquire().await?;
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
            lock_discount: _,
        } = request;
        // BEGIN IMMEDIATE takes the write lock up front: the whole database is locked for
        // the few statements below, which also locks the discount rows.
        let mut tx = self.writer()?.begin_with("BEGIN IMMEDIATE").await?;
        let target_id = target;
        let Some(target_snap) = read_locked(&mut tx, target_id).await? else {
            return Ok(WriteOutcome::Gone(target_id));
        };
        let mut other_snaps = Vec::with_capacity(others.len());
        for id in others {
            match read_locked(&mut tx, *id).await? {
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
        let result: Result<i64, sqlx::Error> = sqlx::query_scalar(
            "INSERT INTO cart_discounts (code, discount_type, value_cents, min_cart_value_cents, max_uses, \
             current_uses, active, valid_from, valid_until, created_at) \
             VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&d.code)
        .bind(d.kind.as_str())
        .bind(to_cents(d.value))
        .bind(d.min_cart_value.map(to_cents))
        .bind(d.max_uses)
        .bind(d.active)
        .bind(d.valid_from.map(|t| t.unix_timestamp()))
        .bind(d.valid_until.map(|t| t.unix_timestamp()))
        .bind(now_epoch())
        .fetch_one(&self.pool)
        .await;
        match result {
            Ok(id) => Ok(Discount { id, ..d.clone() }),
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
        let sql = format!("DELETE FROM cart_carts WHERE id IN (SELECT id FROM cart_carts WHERE updated_at < ?{scope} ORDER BY id LIMIT ?)");
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
            .execute(self.writer()?)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_user_carts(&self, user_id: &str, limit: i64) -> Result<u64, CartError> {
        let done = sqlx::query(
            "DELETE FROM cart_carts WHERE id IN \
             (SELECT id FROM cart_carts WHERE user_id = ? ORDER BY id LIMIT ?)",
        )
        .bind(user_id)
        .bind(limit)
        .execute(self.writer()?)
        .await?;
        Ok(done.rows_affected())
    }

    async fn update_discount(&self, d: &Discount) -> Result<super::DiscountChange, CartError> {
        let in_use = super::discount_in_use("c.checked_out = 1");
        let sql = format!(
            "UPDATE cart_discounts SET discount_type = ?1, value_cents = ?2, \
             min_cart_value_cents = ?3, max_uses = ?4, active = ?5, valid_from = ?6, \
             valid_until = ?7 \
             WHERE code = ?8 AND (?4 IS NULL OR current_uses <= ?4) \
             AND ((discount_type = ?1 AND value_cents = ?2) OR NOT {in_use})"
        );
        let done = sqlx::query(&sql)
            .bind(d.kind.as_str())
            .bind(to_cents(d.value))
            .bind(d.min_cart_value.map(to_cents))
            .bind(d.max_uses)
            .bind(d.active)
            .bind(d.valid_from.map(|t| t.unix_timestamp()))
            .bind(d.valid_until.map(|t| t.unix_timestamp()))
            .bind(&d.code)
            .execute(&self.pool)
            .await?;
        self.discount_change(done.rows_affected(), &d.code).await
    }

    async fn delete_discount(&self, code: &str) -> Result<super::DiscountChange, CartError> {
        // The open carts holding it are detached in the same transaction, so the result
        // does not depend on the connection enforcing foreign keys.
        let in_use = super::discount_in_use("c.checked_out = 1");
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "UPDATE cart_carts SET discount_id = NULL WHERE discount_id IN \
             (SELECT id FROM cart_discounts WHERE code = ? AND NOT {in_use})"
        ))
        .bind(code)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(&format!(
            "DELETE FROM cart_discounts WHERE code = ? AND NOT {in_use}"
        ))
        .bind(code)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.discount_change(done.rows_affected(), code).await
    }
}

impl SqliteBackend {
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
