//! The outbox's rows: written in the transaction of each change, claimed by a relay with a
//! lease (`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL and MySQL, SQLite's single
//! writer), marked delivered or failed, listed, retried and cleaned. Written once for every
//! backend over its [`Dialect`].

use super::common::SqlBackend;
use super::decode::RowExt;
use super::driver::{Dialect, Stmt};
use super::now_epoch;
use crate::outbox::{DeliveryState, Lane, NewEvent, OutboxEvent};
use crate::{CartError, CartId};

/// The columns of an event as [`decode_event`] reads them.
const EVENT_COLUMNS: &str = "o.id, o.event_id, o.event_type, o.cart_id, o.created_at, o.body, \
                             o.attempts, o.state, o.last_error, o.done_sinks, o.lane";

/// An event a relay took, with what the outbox knows of its delivery.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    /// The row.
    pub row: i64,
    pub event: OutboxEvent,
    /// The sinks that already have it.
    pub done_sinks: Vec<String>,
    /// The lease this claim holds: the result is recorded only while it is still the row's.
    pub lease_until: i64,
}

/// How one claimed event's delivery ended.
#[derive(Debug, Clone)]
pub(crate) enum Delivery {
    /// Every sink has it.
    Delivered { done_sinks: Vec<String> },
    /// Some sink failed: try again at `retry_at`, or park it.
    Failed {
        done_sinks: Vec<String>,
        error: String,
        retry_at: i64,
        park: bool,
    },
}

/// Which events a listing shows.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventQuery {
    pub state: Option<DeliveryState>,
    pub cart: Option<CartId>,
    pub limit: i64,
}

/// Writes `event`'s rows (one per lane it goes to) on `conn`, inside the change's
/// transaction.
pub(crate) async fn insert<D: Dialect>(
    conn: &mut D::Connection,
    event: &NewEvent,
) -> Result<(), sqlx::Error> {
    let mut lanes = vec![Lane::Events];
    if event.order {
        lanes.push(Lane::Orders);
    }
    let values = vec!["(?, ?, ?, ?, ?, ?)"; lanes.len()].join(", ");
    let mut stmt = Stmt::<D>::new(format!(
        "INSERT INTO cart_outbox (event_id, lane, cart_id, event_type, created_at, body) \
         VALUES {values}"
    ));
    for lane in lanes {
        stmt = stmt
            .bind(event.id.as_str())
            .bind(lane.as_str())
            .bind(event.cart_id.get())
            .bind(event.event_type)
            .bind(event.created_at)
            .bind(event.body.as_str());
    }
    stmt.run(conn).await?;
    Ok(())
}

/// Takes up to `limit` events of `lane` that are due, each the oldest undelivered one of its
/// cart (so one cart's events go out in order), and leases them until `lease_until`: no other
/// relay takes them before then.
pub(crate) async fn claim<D: Dialect>(
    store: &SqlBackend<D>,
    lane: Lane,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<Claimed>, CartError> {
    let now = now_epoch();
    let mut tx = super::locked::begin(store).await?;
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM cart_outbox o \
         WHERE o.lane = ? AND o.state = 0 AND o.next_attempt_at <= ? AND o.lease_until <= ? \
         AND NOT EXISTS (SELECT 1 FROM cart_outbox p WHERE p.cart_id = o.cart_id \
         AND p.lane = o.lane AND p.state <> 1 AND p.id < o.id) \
         ORDER BY o.id LIMIT ?{}",
        D::SQL.skip_locked
    );
    let rows = Stmt::<D>::new(sql)
        .bind(lane.as_str())
        .bind(now)
        .bind(now)
        .bind(limit)
        .all(&mut tx)
        .await?;
    let claimed = rows
        .iter()
        .map(|r| decode_claimed(r).map(|c| Claimed { lease_until, ..c }))
        .collect::<Result<Vec<_>, _>>()?;
    if !claimed.is_empty() {
        let marks = vec!["?"; claimed.len()].join(", ");
        let mut stmt = Stmt::<D>::new(format!(
            "UPDATE cart_outbox SET lease_until = ? WHERE id IN ({marks})"
        ))
        .bind(lease_until);
        for c in &claimed {
            stmt = stmt.bind(c.row);
        }
        stmt.run(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(claimed)
}

/// Records how a claimed event's delivery ended, ending its lease: only while the claim's
/// lease is still the row's (no other relay took the event after it ran out); whether it
/// was.
pub(crate) async fn finish<D: Dialect>(
    store: &SqlBackend<D>,
    claim: &Claimed,
    delivery: &Delivery,
) -> Result<bool, CartError> {
    let now = now_epoch();
    let (row, lease) = (claim.row, claim.lease_until);
    let mut conn = store.writer()?.acquire().await?;
    let recorded = match delivery {
        Delivery::Delivered { done_sinks } => {
            Stmt::<D>::new(
                "UPDATE cart_outbox SET state = 1, finished_at = ?, lease_until = 0, \
                 done_sinks = ?, last_error = NULL WHERE id = ? AND lease_until = ?",
            )
            .bind(now)
            .bind(sinks_text(done_sinks).as_str())
            .bind(row)
            .bind(lease)
            .affected(&mut conn)
            .await?
        }
        Delivery::Failed {
            done_sinks,
            error,
            retry_at,
            park,
        } => {
            let state = if *park {
                DeliveryState::Parked
            } else {
                DeliveryState::Pending
            };
            Stmt::<D>::new(
                "UPDATE cart_outbox SET attempts = attempts + 1, state = ?, next_attempt_at = ?, \
                 lease_until = 0, done_sinks = ?, last_error = ?, finished_at = ? \
                 WHERE id = ? AND lease_until = ?",
            )
            .bind(state.to_db())
            .bind(*retry_at)
            .bind(sinks_text(done_sinks).as_str())
            .bind(truncated(error).as_str())
            .bind(park.then_some(now))
            .bind(row)
            .bind(lease)
            .affected(&mut conn)
            .await?
        }
    };
    Ok(recorded == 1)
}

/// The outbox's rows (both lanes), newest first.
pub(crate) async fn list<D: Dialect>(
    store: &SqlBackend<D>,
    query: &EventQuery,
) -> Result<Vec<OutboxEvent>, CartError> {
    let mut sql = format!("SELECT {EVENT_COLUMNS} FROM cart_outbox o WHERE 1 = 1");
    if query.state.is_some() {
        sql.push_str(" AND o.state = ?");
    }
    if query.cart.is_some() {
        sql.push_str(" AND o.cart_id = ?");
    }
    sql.push_str(" ORDER BY o.id DESC LIMIT ?");
    let mut stmt = Stmt::<D>::new(sql);
    if let Some(state) = query.state {
        stmt = stmt.bind(state.to_db());
    }
    if let Some(cart) = query.cart {
        stmt = stmt.bind(cart.get());
    }
    let rows = stmt
        .bind(query.limit)
        .all(&mut *store.pool.acquire().await?)
        .await?;
    rows.iter()
        .map(|r| decode_claimed(r).map(|c| c.event))
        .collect()
}

/// How many rows of each state the outbox holds: pending, delivered, parked.
pub(crate) async fn counts<D: Dialect>(store: &SqlBackend<D>) -> Result<[u64; 3], CartError> {
    let rows =
        Stmt::<D>::new("SELECT state, COUNT(*) FROM cart_outbox GROUP BY state ORDER BY state")
            .all(&mut *store.pool.acquire().await?)
            .await?;
    let mut counts = [0u64; 3];
    for r in &rows {
        let n = u64::try_from(r.int(1)?).unwrap_or(0);
        match DeliveryState::from_db(r.int(0)?) {
            DeliveryState::Pending => counts[0] = counts[0].saturating_add(n),
            DeliveryState::Delivered => counts[1] = counts[1].saturating_add(n),
            DeliveryState::Parked => counts[2] = counts[2].saturating_add(n),
        }
    }
    Ok(counts)
}

/// Puts parked events (the one with this id, or all) back to pending with a fresh count of
/// attempts, in every lane; how many rows.
pub(crate) async fn retry_parked<D: Dialect>(
    store: &SqlBackend<D>,
    event_id: Option<&str>,
) -> Result<u64, CartError> {
    let mut sql = String::from(
        "UPDATE cart_outbox SET state = 0, attempts = 0, next_attempt_at = 0, lease_until = 0, \
         finished_at = NULL WHERE state = 2",
    );
    if event_id.is_some() {
        sql.push_str(" AND event_id = ?");
    }
    let mut stmt = Stmt::<D>::new(sql);
    if let Some(id) = event_id {
        stmt = stmt.bind(id);
    }
    Ok(stmt
        .affected(&mut *store.writer()?.acquire().await?)
        .await?)
}

/// Deletes up to `limit` rows finished before `cutoff`: delivered events, and the rows
/// created before it that no relay ever tried (an app with no sinks or no checkout hook);
/// how many.
pub(crate) async fn delete_delivered<D: Dialect>(
    store: &SqlBackend<D>,
    cutoff: i64,
    limit: i64,
) -> Result<u64, CartError> {
    let condition = "(state = 1 AND finished_at < ?) OR (state = 0 AND attempts = 0 \
                     AND created_at < ?)";
    let sql = if D::SQL.ordered_delete {
        format!("DELETE FROM cart_outbox WHERE ({condition}) ORDER BY id LIMIT ?")
    } else {
        format!(
            "DELETE FROM cart_outbox WHERE id IN \
             (SELECT id FROM cart_outbox WHERE ({condition}) ORDER BY id LIMIT ?)"
        )
    };
    Ok(Stmt::<D>::new(sql)
        .bind(cutoff)
        .bind(cutoff)
        .bind(limit)
        .affected(&mut *store.writer()?.acquire().await?)
        .await?)
}

/// Writes one `abandoned` event for each of up to `limit` open carts with lines and no
/// change since `cutoff` that have none for their current version; how many.
pub(crate) async fn abandon_idle<D: Dialect>(
    store: &SqlBackend<D>,
    cutoff: i64,
    limit: i64,
) -> Result<u64, CartError> {
    let candidates = Stmt::<D>::new(format!(
        "SELECT c.id FROM cart_carts c WHERE {} AND c.updated_at < ? \
         AND (c.abandoned_version IS NULL OR c.abandoned_version <> c.version) \
         AND EXISTS (SELECT 1 FROM cart_items i WHERE i.cart_id = c.id) ORDER BY c.id LIMIT ?",
        D::SQL.open("c.checked_out")
    ))
    .bind(cutoff)
    .bind(limit)
    .all(&mut *store.pool.acquire().await?)
    .await?;
    let mut written = 0u64;
    for row in &candidates {
        let id = CartId::from_db(row.int(0)?);
        let mut tx = super::locked::begin(store).await?;
        let Some(snap) = super::locked::read_locked::<D>(&mut tx, id, false).await? else {
            continue;
        };
        if snap.checked_out || snap.lines.is_empty() || snap.updated_at >= cutoff {
            continue;
        }
        // Only while the cart is as it was read: a change since then is activity.
        let marked = Stmt::<D>::new(
            "UPDATE cart_carts SET abandoned_version = version WHERE id = ? AND version = ? \
             AND (abandoned_version IS NULL OR abandoned_version <> version)",
        )
        .bind(id.get())
        .bind(i64::try_from(snap.version).unwrap_or(i64::MAX))
        .affected(&mut tx)
        .await?;
        if marked == 0 {
            continue;
        }
        let event =
            crate::outbox::abandoned(id, snap.user_id.as_deref(), snap.updated_at, &snap.lines);
        insert::<D>(&mut tx, &event).await?;
        tx.commit().await?;
        written += 1;
    }
    Ok(written)
}

fn decode_claimed<R: RowExt>(r: &R) -> Result<Claimed, CartError> {
    let created = r.int(4)?;
    Ok(Claimed {
        lease_until: 0,
        row: r.int(0)?,
        event: OutboxEvent {
            id: r.text(1)?,
            event_type: r.text(2)?,
            cart_id: CartId::from_db(r.int(3)?),
            created_at: time::OffsetDateTime::from_unix_timestamp(created)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            body: r.text(5)?,
            attempts: u32::try_from(r.int(6)?).unwrap_or(u32::MAX),
            state: DeliveryState::from_db(r.int(7)?),
            last_error: r.text_opt(8)?,
            consumer: Lane::consumer(&r.text(10)?),
        },
        done_sinks: r
            .text_opt(9)?
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// The sinks as the outbox keeps them: names joined by commas, at most 255 characters.
fn sinks_text(sinks: &[String]) -> String {
    sinks.join(",").chars().take(255).collect()
}

/// An error as the outbox keeps it: at most 1000 characters.
fn truncated(error: &str) -> String {
    error.chars().take(1000).collect()
}
