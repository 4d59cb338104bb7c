//! The locked write's reads and writes, the joined cart load and the upsert add: written
//! once for every backend over its [`Dialect`].

use super::common::SqlBackend;
use super::decode::{decode_cart, decode_discount, decode_line, fold_snapshot, RowExt};
use super::driver::{
    is_check_error, is_checked_out_error, is_fk_error, is_frozen_error, is_full_error, Dialect,
    Stmt,
};
use super::sql::{CART_COLUMNS, CART_WIDTH};
use super::{now_epoch, used_up, AddLimits, AddOutcome, Snapshot, Write};
use crate::events::CartEvent;
use crate::outbox::{record, Context};
use crate::{CartError, CartId, Line};

/// The cart, its discount and its lines in one statement, one row per line.
pub(crate) async fn joined_load<D: Dialect>(
    store: &SqlBackend<D>,
    id: CartId,
) -> Result<Option<Snapshot>, CartError> {
    let s = &D::SQL;
    let sql = format!(
        "SELECT {CART_COLUMNS}, d.id, d.code, d.discount_type, d.{}, d.{}, d.max_uses, \
         d.current_uses, d.active, d.valid_from, d.valid_until, \
         i.product_kind, i.product_id, i.quantity, i.{}, i.options \
         FROM cart_carts c \
         LEFT JOIN cart_discounts d ON d.id = c.discount_id \
         LEFT JOIN cart_items i ON i.cart_id = c.id \
         WHERE c.id = ? ORDER BY i.id",
        s.value, s.min_value, s.price
    );
    let stmt = Stmt::<D>::new(sql).bind(id.get());
    let rows = stmt.all(&mut *store.pool.acquire().await?).await?;
    fold_snapshot(&rows)
}

/// Adds to a line with `ON CONFLICT … DO UPDATE … RETURNING`: one statement. Past the
/// maximum the quantity is set to 0, which the `quantity` CHECK refuses, so the whole
/// statement fails (as on MySQL): the guard's step of the cart's version, made before the
/// line is written, is rolled back with it. The schema's guard refuses a line write to a
/// checked-out or frozen cart and a new line in a full cart (`add` gives the cart's most
/// lines in `max_lines`), under the cart row's lock on PostgreSQL and MySQL and under
/// SQLite's single writer: exact under concurrency. The same guard adds 1 to the cart's
/// version for a row that gives `max_lines` (an add's, never a locked write's): once per
/// add that writes (migration 9000000000000009).
pub(crate) async fn upsert_add<D: Dialect>(
    store: &SqlBackend<D>,
    cart: CartId,
    line: &Line,
    max: AddLimits,
) -> Result<AddOutcome, CartError> {
    let price = D::SQL.price;
    let sql = format!(
        "INSERT INTO cart_items (cart_id, product_kind, product_id, quantity, {price}, \
         options, options_key, max_lines) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (cart_id, product_kind, product_id, options_key) DO UPDATE \
         SET quantity = CASE WHEN cart_items.quantity + excluded.quantity <= ? \
         THEN cart_items.quantity + excluded.quantity ELSE 0 END, {price} = excluded.{price} \
         RETURNING quantity"
    );
    let stored = Stored::of(line);
    let mut tx = begin::<D>(store).await?;
    let result = line_stmt::<D>(&sql, cart, line, &stored)
        .bind(max.lines_bound())
        .bind(max.quantity)
        .int(&mut tx)
        .await;
    if let Ok(Some(quantity)) = result {
        record_add::<D>(&mut tx, cart, line, quantity).await?;
        tx.commit().await?;
        D::after_write(store).await;
        return Ok(AddOutcome::Added { quantity });
    }
    if let Err(e) = tx.rollback().await {
        tracing::debug!(error = %e, "the rollback of a refused add failed");
    }
    let mut conn = store.writer()?.acquire().await?;
    match result {
        Ok(Some(quantity)) => Ok(AddOutcome::Added { quantity }),
        Ok(None) => Ok(AddOutcome::Exceeded),
        Err(e) if is_check_error(&e) => Ok(AddOutcome::Exceeded),
        // SQLite raises every refusal of its guard with one code: which one, the cart says.
        Err(e) if is_checked_out_error::<D>(&e) && !D::SQL.guard_codes => {
            refused_add::<D>(&mut conn, cart, line, &stored).await
        }
        Err(e) if is_checked_out_error::<D>(&e) => Ok(AddOutcome::CheckedOut),
        Err(e) if is_full_error(&e) => Ok(AddOutcome::TooManyLines),
        Err(e) if is_frozen_error(&e) => Ok(AddOutcome::Frozen),
        Err(e) if is_fk_error(&e) => Ok(AddOutcome::Gone),
        Err(e) => Err(e.into()),
    }
}

/// A transaction on the writer, begun the backend's way (SQLite: `BEGIN IMMEDIATE`), safe
/// to cancel (see [`begin_on`]).
pub(crate) async fn begin<D: Dialect>(
    store: &SqlBackend<D>,
) -> Result<sqlx::Transaction<'static, D>, sqlx::Error> {
    begin_on(store.writer()?, D::SQL.begin).await
}

/// A transaction on `pool` (begun with `statement`, or the driver's `BEGIN`) in a task of
/// its own. sqlx's `begin` is not cancel-safe: a future dropped during the `BEGIN` round
/// trip (a client hanging up, a timeout) hands the connection back to the pool inside a
/// transaction nothing ends; on SQLite's one writer every later write then failed. Here
/// the task runs to the end whatever happens to the caller, and a transaction nobody
/// takes is dropped, so it rolls back.
pub(crate) async fn begin_on<D: Dialect>(
    pool: &sqlx::Pool<D>,
    statement: Option<&'static str>,
) -> Result<sqlx::Transaction<'static, D>, sqlx::Error> {
    let pool = pool.clone();
    tokio::spawn(async move {
        match statement {
            Some(begin) => pool.begin_with(begin).await,
            None => pool.begin().await,
        }
    })
    .await
    .map_err(|_| sqlx::Error::WorkerCrashed)?
}

/// Writes the `item_added` event of a one-statement add in its transaction: the line at
/// the `quantity` the add left it with, the cart's user and version as the add left them.
pub(crate) async fn record_add<D: Dialect>(
    conn: &mut D::Connection,
    cart: CartId,
    line: &Line,
    quantity: i64,
) -> Result<(), CartError> {
    let row = Stmt::<D>::new("SELECT user_id, version FROM cart_carts WHERE id = ?")
        .bind(cart.get())
        .one(conn)
        .await?;
    let (user, version) = match &row {
        Some(r) => (r.text_opt(0)?, r.int_opt(1)?),
        None => (None, None),
    };
    let event = CartEvent::ItemAdded {
        cart_id: cart,
        line: Line {
            quantity,
            ..line.clone()
        },
    };
    let cx = Context {
        user_id: user.as_deref(),
        version,
        ..Context::default()
    };
    super::outbox::insert::<D>(conn, &record(&event, cx)).await?;
    Ok(())
}

/// Why an add wrote nothing: the cart is gone, checked out or frozen, the line would pass
/// its maximum, or the line is new and the cart is full. Read after the fact (the rare path).
pub(crate) async fn refused_add<D: Dialect>(
    conn: &mut D::Connection,
    cart: CartId,
    line: &Line,
    stored: &Stored,
) -> Result<AddOutcome, CartError> {
    let row = Stmt::<D>::new(
        "SELECT c.checked_out, (SELECT COUNT(*) FROM cart_items i WHERE i.cart_id = c.id \
         AND i.product_kind = ? AND i.product_id = ? AND i.options_key = ?), c.frozen_until \
         FROM cart_carts c WHERE c.id = ?",
    )
    .bind(line.product.kind())
    .bind(line.product.id())
    .bind(stored.key.as_str())
    .bind(cart.get())
    .one(conn)
    .await?;
    let Some(row) = row else {
        return Ok(AddOutcome::Gone);
    };
    Ok(if row.flag(0)? {
        AddOutcome::CheckedOut
    } else if row.int_opt(2)?.is_some_and(|until| until > now_epoch()) {
        AddOutcome::Frozen
    } else if row.int(1)? > 0 {
        AddOutcome::Exceeded
    } else {
        AddOutcome::TooManyLines
    })
}

/// A line's options as the schema stores them: the JSON text and its key.
pub(crate) struct Stored {
    pub text: String,
    pub key: String,
}

impl Stored {
    pub(crate) fn of(line: &Line) -> Stored {
        Stored {
            text: line.options.to_db(),
            key: line.options.digest(),
        }
    }
}

/// An insert of a line (cart, kind, id, quantity, price, options, options key), with its
/// values bound.
pub(crate) fn line_stmt<'a, D: Dialect>(
    sql: &str,
    cart: CartId,
    line: &'a Line,
    stored: &'a Stored,
) -> Stmt<'a, D> {
    Stmt::new(sql)
        .bind(cart.get())
        .bind(line.product.kind())
        .bind(line.product.id())
        .bind(line.quantity)
        .bind(line.unit_price)
        .bind(stored.text.as_str())
        .bind(stored.key.as_str())
}

/// Reads one cart of a locked write, locking its row (and its discount's with
/// `lock_discount`) where the backend locks rows.
pub(crate) async fn read_locked<D: Dialect>(
    conn: &mut D::Connection,
    id: CartId,
    lock_discount: bool,
) -> Result<Option<Snapshot>, CartError> {
    let s = &D::SQL;
    let cart = format!(
        "SELECT {CART_COLUMNS}, c.discount_id FROM cart_carts c WHERE c.id = ?{}",
        s.lock
    );
    let Some(row) = Stmt::<D>::new(cart).bind(id.get()).one(conn).await? else {
        return Ok(None);
    };
    let mut snap = decode_cart(&row, 0)?;
    if let Some(discount) = row.int_opt(CART_WIDTH)? {
        let lock = if lock_discount { s.lock } else { "" };
        let sql = format!("{} WHERE d.id = ?{lock}", s.discount_select());
        snap.discount = match Stmt::<D>::new(sql).bind(discount).one(conn).await? {
            Some(r) => decode_discount(&r, 0)?,
            None => None,
        };
    }
    let lines = format!(
        "SELECT product_kind, product_id, quantity, {}, options FROM cart_items{} \
         WHERE cart_id = ? ORDER BY id{}",
        s.price, s.lines_index, s.share_lock
    );
    for r in &Stmt::<D>::new(lines).bind(id.get()).all(conn).await? {
        if let Some(line) = decode_line(r, 0)? {
            snap.lines.push(line);
        }
    }
    Ok(Some(snap))
}

/// Writes one change of a locked write.
pub(crate) async fn apply<D: Dialect>(
    conn: &mut D::Connection,
    write: &Write,
) -> Result<(), CartError> {
    let s = &D::SQL;
    let now = now_epoch();
    let stored;
    let stmt = match write {
        Write::Upsert { cart, line } => {
            let sql = format!(
                "INSERT INTO cart_items (cart_id, product_kind, product_id, quantity, {}, \
                 options, options_key) VALUES (?, ?, ?, ?, ?, ?, ?) {}",
                s.price,
                s.upsert(
                    "cart_id, product_kind, product_id, options_key",
                    &["quantity", s.price]
                )
            );
            stored = Stored::of(line);
            line_stmt::<D>(&sql, *cart, line, &stored)
        }
        Write::Update { cart, line } => {
            stored = Stored::of(line);
            Stmt::new(format!(
                "UPDATE cart_items SET quantity = ?, {} = ? WHERE cart_id = ? \
                 AND product_kind = ? AND product_id = ? AND options_key = ?",
                s.price
            ))
            .bind(line.quantity)
            .bind(line.unit_price)
            .bind(cart.get())
            .bind(line.product.kind())
            .bind(line.product.id())
            .bind(stored.key.as_str())
        }
        Write::Delete { cart, key } => Stmt::new(
            "DELETE FROM cart_items WHERE cart_id = ? AND product_kind = ? AND product_id = ? \
             AND options_key = ?",
        )
        .bind(cart.get())
        .bind(key.product().kind())
        .bind(key.product().id())
        .bind(key.digest()),
        Write::Clear { cart } => {
            Stmt::new("DELETE FROM cart_items WHERE cart_id = ?").bind(cart.get())
        }
        Write::SetDiscount { cart, discount } => {
            Stmt::new("UPDATE cart_carts SET discount_id = ?, updated_at = ? WHERE id = ?")
                .bind(*discount)
                .bind(now)
                .bind(cart.get())
        }
        Write::SetUser { cart, user } => {
            Stmt::new("UPDATE cart_carts SET user_id = ?, updated_at = ? WHERE id = ?")
                .bind(user.as_deref())
                .bind(now)
                .bind(cart.get())
        }
        Write::UseDiscount { discount } => {
            let done = Stmt::<D>::new(
                "UPDATE cart_discounts SET current_uses = current_uses + 1 \
                 WHERE id = ? AND (max_uses IS NULL OR current_uses < max_uses)",
            )
            .bind(*discount)
            .affected(conn)
            .await?;
            return if done == 0 { Err(used_up()) } else { Ok(()) };
        }
        Write::Freeze { cart, until } => {
            Stmt::new("UPDATE cart_carts SET frozen_until = ? WHERE id = ?")
                .bind(*until)
                .bind(cart.get())
        }
        Write::CheckOut { cart } => Stmt::new(format!(
            "UPDATE cart_carts SET checked_out = {}, checked_out_at = ?, updated_at = ?, \
             session_key = NULL, frozen_until = NULL WHERE id = ? AND {}",
            s.true_,
            s.open("checked_out")
        ))
        .bind(now)
        .bind(now)
        .bind(cart.get()),
        Write::MergeAway { cart, into } => {
            let sql = format!(
                "INSERT INTO cart_merges (source_id, target_id, merged_at) VALUES (?, ?, ?) {}",
                s.upsert("source_id", &["target_id", "merged_at"])
            );
            Stmt::<D>::new(sql)
                .bind(cart.get())
                .bind(into.get())
                .bind(now)
                .run(conn)
                .await?;
            Stmt::new("DELETE FROM cart_carts WHERE id = ?").bind(cart.get())
        }
        Write::SetKey { cart, key } => {
            set_key::<D>(conn, *cart, key).await?;
            return Ok(());
        }
        Write::Event(event) => {
            super::outbox::insert::<D>(conn, event).await?;
            return Ok(());
        }
    };
    match stmt.run(conn).await {
        Ok(_) => Ok(()),
        Err(e) if is_checked_out_error::<D>(&e) => Err(CartError::CheckedOut),
        Err(e) if is_frozen_error(&e) => Err(CartError::CartFrozen),
        Err(e) => Err(e.into()),
    }
}

/// Gives `cart` the session key `key`, taking it from any other cart first.
pub(crate) async fn set_key<D: Dialect>(
    conn: &mut D::Connection,
    cart: CartId,
    key: &str,
) -> Result<(), sqlx::Error> {
    Stmt::<D>::new("UPDATE cart_carts SET session_key = NULL WHERE session_key = ? AND id <> ?")
        .bind(key)
        .bind(cart.get())
        .run(conn)
        .await?;
    Stmt::<D>::new("UPDATE cart_carts SET session_key = ? WHERE id = ?")
        .bind(key)
        .bind(cart.get())
        .run(conn)
        .await?;
    Ok(())
}
