//! The store, written once for every backend: [`SqlBackend`] over a [`Dialect`]. Each
//! statement is written once, here and in `locked.rs` (the locked write, the load and the
//! add), with `?` parameters and the backend's [`Spelling`] (`D::SQL`); the backend files
//! hold only what really differs.
//!
//! [`Spelling`]: super::sql::Spelling

use async_trait::async_trait;

use super::decode::{decode_discount, decode_record};
use super::driver::{is_unique_error, Dialect, Stmt};
use super::locked::{apply, read_locked, set_key};
use super::outbox;
use super::sql::{discount_in_use, list_sql, user_page_sql};
use super::{
    duplicate_code, now_epoch, AddLimits, AddOutcome, Backend, CartFilter, CartRecord, Claimed,
    Delivery, DiscountChange, EventQuery, Locked, Plan, Snapshot, Write, WriteOutcome,
    WriteRequest,
};
use crate::{CartError, CartId, Discount, Line};

/// A store on one backend's pool.
pub(crate) struct SqlBackend<D: Dialect> {
    /// Reads (and the writes that need no ordering with the cart writes).
    pub(crate) pool: sqlx::Pool<D>,
    /// Cart writes: the same pool, or SQLite's one writer connection.
    writer: sqlx::Pool<D>,
    /// What the backend keeps beside its pools (only SQLite keeps anything).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) state: D::State,
}

impl<D: Dialect> SqlBackend<D> {
    pub(crate) fn new(pool: sqlx::Pool<D>) -> Self {
        SqlBackend {
            writer: D::writer_pool(&pool),
            pool,
            state: D::State::default(),
        }
    }

    /// The writer pool, which follows the app's pool: closing that one closes writes too.
    pub(crate) fn writer(&self) -> Result<&sqlx::Pool<D>, sqlx::Error> {
        if self.pool.is_closed() {
            Err(sqlx::Error::PoolClosed)
        } else {
            Ok(&self.writer)
        }
    }

    /// What a discount change that wrote `rows` rows means.
    async fn discount_change(&self, rows: u64, code: &str) -> Result<DiscountChange, CartError> {
        if rows > 0 {
            return Ok(DiscountChange::Done);
        }
        Ok(match self.discount_by_code(code).await? {
            Some(_) => DiscountChange::Refused,
            None => DiscountChange::NotFound,
        })
    }

    async fn records(&self, stmt: Stmt<'_, D>) -> Result<Vec<CartRecord>, CartError> {
        let rows = stmt.all(&mut *self.pool.acquire().await?).await?;
        rows.iter().map(decode_record).collect()
    }
}

#[async_trait]
impl<D: Dialect> Backend for SqlBackend<D> {
    fn name(&self) -> &'static str {
        D::BACKEND
    }

    async fn migrate(&self) -> Result<(), CartError> {
        D::migrate(self).await
    }

    async fn load(&self, id: CartId) -> Result<Option<Snapshot>, CartError> {
        D::load(self, id).await
    }

    async fn add(
        &self,
        cart: CartId,
        line: &Line,
        max: AddLimits,
    ) -> Result<AddOutcome, CartError> {
        D::add(self, cart, line, max).await
    }

    async fn create_cart(&self, key: Option<&str>) -> Result<(CartId, bool), CartError> {
        // A key released between the failed insert and the look-up is simply tried again;
        // after a few tries the cart is created without one (an insert with no key cannot
        // conflict).
        let mut key = key;
        let mut tries = 0;
        let insert = format!(
            "INSERT INTO cart_carts (session_key, created_at, updated_at, version) \
             VALUES (?, ?, ?, 0){}",
            D::SQL.returning_id()
        );
        loop {
            let now = now_epoch();
            let mut conn = self.writer()?.acquire().await?;
            let stmt = Stmt::<D>::new(&insert).bind(key).bind(now).bind(now);
            match stmt.insert_id(&mut conn).await {
                Ok(id) => return Ok((CartId::from_db(id), true)),
                Err(e) if key.is_some() && is_unique_error(&e) => {
                    let found = Stmt::<D>::new("SELECT id FROM cart_carts WHERE session_key = ?")
                        .bind(key)
                        .int(&mut conn)
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
        Stmt::<D>::new(
            "DELETE FROM cart_carts WHERE id = ? AND user_id IS NULL AND discount_id IS NULL \
             AND NOT EXISTS (SELECT 1 FROM cart_items WHERE cart_id = ?)",
        )
        .bind(cart.get())
        .bind(cart.get())
        .run(&mut *self.writer()?.acquire().await?)
        .await?;
        Ok(())
    }

    async fn release_key(&self, key: &str) -> Result<(), CartError> {
        Stmt::<D>::new("UPDATE cart_carts SET session_key = NULL WHERE session_key = ?")
            .bind(key)
            .run(&mut *self.writer()?.acquire().await?)
            .await?;
        Ok(())
    }

    async fn set_key(&self, cart: CartId, key: &str) -> Result<(), CartError> {
        let mut conn = self.writer()?.acquire().await?;
        set_key::<D>(&mut conn, cart, key).await?;
        Ok(())
    }

    async fn merged_into(&self, cart: CartId) -> Result<Option<CartId>, CartError> {
        let id = Stmt::<D>::new("SELECT target_id FROM cart_merges WHERE source_id = ?")
            .bind(cart.get())
            .int(&mut *self.pool.acquire().await?)
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
            mark,
        } = request;
        // Rows are locked in one order everywhere (the target, the others by id, then the
        // discount) so concurrent writes queue instead of deadlocking. SQLite's
        // BEGIN IMMEDIATE takes the write lock of the whole database up front instead.
        let mut tx = super::locked::begin(self).await?;
        let Some(target_snap) = read_locked::<D>(&mut tx, target, lock_discount).await? else {
            return Ok(WriteOutcome::Gone(target));
        };
        let mut other_snaps = Vec::with_capacity(others.len());
        for id in others {
            match read_locked::<D>(&mut tx, *id, false).await? {
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
            apply::<D>(&mut tx, w).await?;
        }
        if writes
            .iter()
            .all(|w| !matches!(w, Write::MergeAway { cart, .. } if *cart == target))
        {
            // The one version step of the whole change, under the row's lock.
            Stmt::<D>::new(
                "UPDATE cart_carts SET updated_at = ?, version = version + 1 WHERE id = ?",
            )
            .bind(now_epoch())
            .bind(target.get())
            .run(&mut tx)
            .await?;
        }
        if let Some(mark) = mark {
            // The key's change and its mark commit together, or neither does.
            super::keys::mark_applied::<D>(&mut tx, mark).await?;
        }
        tx.commit().await?;
        Ok(WriteOutcome::Written)
    }

    async fn claim_events(
        &self,
        lane: crate::outbox::Lane,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<Claimed>, CartError> {
        outbox::claim(self, lane, lease_until, limit).await
    }

    async fn finish_event(&self, claim: &Claimed, delivery: &Delivery) -> Result<bool, CartError> {
        outbox::finish(self, claim, delivery).await
    }

    async fn list_events(&self, query: &EventQuery) -> Result<Vec<crate::OutboxEvent>, CartError> {
        outbox::list(self, query).await
    }

    async fn event_counts(&self) -> Result<[u64; 3], CartError> {
        outbox::counts(self).await
    }

    async fn retry_parked(&self, event_id: Option<&str>) -> Result<u64, CartError> {
        outbox::retry_parked(self, event_id).await
    }

    async fn delete_delivered(&self, cutoff: i64, limit: i64) -> Result<u64, CartError> {
        outbox::delete_delivered(self, cutoff, limit).await
    }

    async fn abandon_idle(&self, cutoff: i64, limit: i64) -> Result<u64, CartError> {
        outbox::abandon_idle(self, cutoff, limit).await
    }

    async fn discount_by_code(&self, code: &str) -> Result<Option<Discount>, CartError> {
        let sql = format!("{} WHERE d.code = ?", D::SQL.discount_select());
        let row = Stmt::<D>::new(sql)
            .bind(code)
            .one(&mut *self.pool.acquire().await?)
            .await?;
        match row {
            Some(r) => decode_discount(&r, 0),
            None => Ok(None),
        }
    }

    async fn create_discount(&self, d: &Discount) -> Result<Discount, CartError> {
        let s = &D::SQL;
        let sql = format!(
            "INSERT INTO cart_discounts (code, discount_type, {}, {}, max_uses, \
             current_uses, active, valid_from, valid_until, created_at) \
             VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?){}",
            s.value,
            s.min_value,
            s.returning_id()
        );
        let result = Stmt::<D>::new(sql)
            .bind(d.code.as_str())
            .rules(d)
            .bind(now_epoch())
            .insert_id(&mut *self.pool.acquire().await?)
            .await;
        match result {
            Ok(id) => Ok(Discount { id, ..d.clone() }),
            Err(e) if is_unique_error(&e) => Err(duplicate_code(&d.code)),
            Err(e) => Err(e.into()),
        }
    }

    async fn list_discounts(&self) -> Result<Vec<Discount>, CartError> {
        let sql = format!("{} ORDER BY d.code", D::SQL.discount_select());
        let rows = Stmt::<D>::new(sql)
            .all(&mut *self.pool.acquire().await?)
            .await?;
        rows.iter()
            .filter_map(|r| decode_discount(r, 0).transpose())
            .collect()
    }

    async fn set_discount_active(&self, code: &str, active: bool) -> Result<bool, CartError> {
        let done = Stmt::<D>::new("UPDATE cart_discounts SET active = ? WHERE code = ?")
            .bind(active)
            .bind(code)
            .affected(&mut *self.pool.acquire().await?)
            .await?;
        Ok(done > 0)
    }

    async fn list_carts(&self, filter: &CartFilter) -> Result<Vec<CartRecord>, CartError> {
        let (sql, args) = list_sql(filter, &D::SQL);
        self.records(Stmt::with(sql, args)).await
    }

    async fn count_stale(&self, cutoff: i64, include_checked_out: bool) -> Result<u64, CartError> {
        let sql = format!(
            "SELECT COUNT(*) FROM cart_carts WHERE updated_at < ?{}",
            stale_scope::<D>(include_checked_out)
        );
        let n = Stmt::<D>::new(sql)
            .bind(cutoff)
            .int(&mut *self.pool.acquire().await?)
            .await?;
        Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    async fn delete_stale(
        &self,
        cutoff: i64,
        include_checked_out: bool,
        limit: i64,
    ) -> Result<u64, CartError> {
        let condition = format!("updated_at < ?{}", stale_scope::<D>(include_checked_out));
        let done = Stmt::<D>::new(D::SQL.limited_delete(&condition))
            .bind(cutoff)
            .bind(limit)
            .affected(&mut *self.pool.acquire().await?)
            .await?;
        Ok(done)
    }

    async fn user_carts_page(
        &self,
        user_id: &str,
        open_only: bool,
        after: Option<(i64, CartId)>,
        limit: i64,
    ) -> Result<Vec<CartRecord>, CartError> {
        let (sql, args) = user_page_sql(&D::SQL, user_id, open_only, after, limit);
        self.records(Stmt::with(sql, args)).await
    }

    async fn delete_cart(&self, cart: CartId) -> Result<bool, CartError> {
        let done = Stmt::<D>::new("DELETE FROM cart_carts WHERE id = ?")
            .bind(cart.get())
            .affected(&mut *self.writer()?.acquire().await?)
            .await?;
        Ok(done > 0)
    }

    async fn delete_user_carts(&self, user_id: &str, limit: i64) -> Result<u64, CartError> {
        let done = Stmt::<D>::new(D::SQL.limited_delete("user_id = ?"))
            .bind(user_id)
            .bind(limit)
            .affected(&mut *self.writer()?.acquire().await?)
            .await?;
        Ok(done)
    }

    async fn update_discount(&self, d: &Discount) -> Result<DiscountChange, CartError> {
        let s = &D::SQL;
        let sql = format!(
            "UPDATE cart_discounts SET discount_type = ?, {value} = ?, {min} = ?, \
             max_uses = ?, active = ?, valid_from = ?, valid_until = ? \
             WHERE code = ? AND (? IS NULL OR current_uses <= ?) \
             AND ((discount_type = ? AND {value} = ?) OR NOT {in_use})",
            value = s.value,
            min = s.min_value,
            in_use = discount_in_use(s)
        );
        let done = Stmt::<D>::new(sql)
            .rules(d)
            .bind(d.code.as_str())
            .bind(d.max_uses)
            .bind(d.max_uses)
            .bind(d.kind.as_str())
            .bind(d.value)
            .affected(&mut *self.pool.acquire().await?)
            .await?;
        self.discount_change(done, &d.code).await
    }

    async fn delete_discount(&self, code: &str) -> Result<DiscountChange, CartError> {
        // The open carts holding the code are detached first, in the same transaction: a
        // change of each of them, so each one's version steps (and the result does not
        // depend on a SQLite connection enforcing foreign keys). Then the delete, whose use
        // count is the deleted row's own; refused, it rolls the detaching back. Checked-out
        // carts keep the code, which refuses the delete.
        let in_use = discount_in_use(&D::SQL);
        let mut tx = super::locked::begin_on(&self.pool, None).await?;
        Stmt::<D>::new(format!(
            "UPDATE cart_carts SET discount_id = NULL, version = version + 1 WHERE discount_id \
             IN (SELECT id FROM cart_discounts WHERE code = ?) AND {}",
            D::SQL.open("checked_out")
        ))
        .bind(code)
        .run(&mut tx)
        .await?;
        let done = Stmt::<D>::new(format!(
            "DELETE FROM cart_discounts WHERE code = ? AND NOT {in_use}"
        ))
        .bind(code)
        .affected(&mut tx)
        .await?;
        if done > 0 {
            tx.commit().await?;
        }
        self.discount_change(done, code).await
    }
}

impl<'a, D: Dialect> Stmt<'a, D> {
    /// Binds the rules of a discount: type, value, minimum, maximum uses, active, window.
    fn rules(self, d: &'a Discount) -> Self {
        self.bind(d.kind.as_str())
            .bind(d.value)
            .bind(d.min_cart_value)
            .bind(d.max_uses)
            .bind(d.active)
            .bind(d.valid_from.map(|t| t.unix_timestamp()))
            .bind(d.valid_until.map(|t| t.unix_timestamp()))
    }
}

/// The scope of a stale-cart statement: open carts only unless `include_checked_out`.
fn stale_scope<D: Dialect>(include_checked_out: bool) -> String {
    if include_checked_out {
        String::new()
    } else {
        format!(" AND {}", D::SQL.open("checked_out"))
    }
}
