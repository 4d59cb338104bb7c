//! Idempotency keys: the rows of `cart_idempotency` (migration 9000000000000010), written
//! once for every backend over its [`Dialect`].
//!
//! A row is reserved (`running`) by the request that inserts it first, holding a random
//! `token`; the cart write of that request marks it `applied` in the write's own
//! transaction ([`mark_applied`]), so the change and the mark commit together or not at
//! all; the answer is stored last (`complete`). A request finding the row reads what it
//! needs from it ([`Reservation`]). A row whose request stopped (its `locked_at` older
//! than the takeover time) is taken over by giving it a new token: the old request's
//! mark then matches nothing and its write rolls back.
//!
//! Without the `http` feature only the mark and the sweep are used.
#![cfg_attr(not(feature = "http"), allow(dead_code))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use super::common::SqlBackend;
use super::decode::RowExt;
use super::driver::{is_unique_error, Dialect, Stmt};
use super::now_epoch;
use crate::session::random_key;
use crate::CartError;

const RUNNING: &str = "running";
const APPLIED: &str = "applied";
/// Seconds after its change committed that an `applied` row is still taken as its request
/// finishing (storing its answer, or a further write of the same request): a repeat then is
/// 409. After them the request is taken as stopped, and a repeat recovers the answer.
const APPLIED_GRACE_SECS: i64 = 10;
const COMPLETE: &str = "complete";

/// The key of one request: whose, which, and what request it names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyRequest<'a> {
    /// The visitor (the session's identity).
    pub scope: &'a str,
    /// The `Idempotency-Key` as sent.
    pub key: &'a str,
    /// SHA-256 (hex) of the method, path and body.
    pub fingerprint: &'a str,
    /// Seconds the row is kept from now.
    pub ttl: i64,
    /// Seconds after which a request holding the row counts as stopped.
    pub takeover: i64,
}

/// The reservation a request holds while it runs: what its cart write marks applied.
#[derive(Debug)]
pub(crate) struct KeyMark {
    scope: String,
    key: String,
    token: String,
    /// A write of this request has committed the mark: a later write of the same request
    /// may mark it again.
    applied: AtomicBool,
}

impl KeyMark {
    fn new(scope: &str, key: &str) -> KeyMark {
        KeyMark {
            scope: scope.to_owned(),
            key: key.to_owned(),
            token: random_key(),
            applied: AtomicBool::new(false),
        }
    }

    /// Whether a cart write of this request committed under the key.
    pub(crate) fn applied(&self) -> bool {
        self.applied.load(Ordering::SeqCst)
    }

    /// A cart write of this request committed under the key.
    pub(crate) fn set_applied(&self) {
        self.applied.store(true, Ordering::SeqCst);
    }
}

/// A stored answer: status, the headers kept (a JSON object of strings) and the body.
#[derive(Debug, Clone)]
pub(crate) struct StoredAnswer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

/// What a request with a key found.
#[derive(Debug)]
pub(crate) enum Reservation {
    /// The key is this request's: run it.
    Fresh(Arc<KeyMark>),
    /// The key's change committed but its answer was never stored (the request stopped in
    /// between): the key is this request's now; it must change nothing, only answer.
    Recover(Arc<KeyMark>),
    /// The stored answer of the key's request.
    Complete(StoredAnswer),
    /// Another request with the key is running.
    InFlight,
    /// The key was used for another request (method, path or body).
    Reused,
}

/// The rows of the keys, on every backend.
#[async_trait]
pub(crate) trait Keys {
    /// Reserves the key for this request, or says what holds it.
    async fn reserve_key(&self, req: &KeyRequest<'_>) -> Result<Reservation, CartError>;
    /// Stores the answer of the request holding `mark`, kept `ttl` seconds from now.
    async fn complete_key(
        &self,
        mark: &KeyMark,
        answer: &StoredAnswer,
        ttl: i64,
    ) -> Result<(), CartError>;
    /// Stores the answer of a request that held no reservation (a visitor who had no
    /// session when it arrived); a row already there is kept.
    async fn store_key(&self, req: &KeyRequest<'_>, answer: &StoredAnswer)
        -> Result<(), CartError>;
    /// Gives the key up after a failure: removed if nothing was applied under it (a retry
    /// runs again), else left `applied` and free to take over at once (a retry answers).
    async fn abandon_key(&self, mark: &KeyMark) -> Result<(), CartError>;
    /// Deletes up to `limit` rows that expired before `now`; returns how many.
    async fn delete_expired_keys(&self, now: i64, limit: i64) -> Result<u64, CartError>;
}

/// Marks the key of `mark` applied in the cart write's transaction: refused (the write
/// rolls back) when another request took the key over, or when this request only
/// answers for a change already applied.
pub(crate) async fn mark_applied<D: Dialect>(
    conn: &mut D::Connection,
    mark: &KeyMark,
) -> Result<(), CartError> {
    let states = if mark.applied() {
        "'running', 'applied'"
    } else {
        "'running'"
    };
    let done = Stmt::<D>::new(format!(
        "UPDATE cart_idempotency SET state = '{APPLIED}', locked_at = ? WHERE scope = ? \
         AND idem_key = ? AND token = ? AND state IN ({states})"
    ))
    .bind(now_epoch())
    .bind(mark.scope.as_str())
    .bind(mark.key.as_str())
    .bind(mark.token.as_str())
    .affected(conn)
    .await?;
    if done == 0 {
        return Err(CartError::IdempotencyKeyInFlight);
    }
    Ok(())
}

/// A row that does not read as one of ours.
fn corrupt(what: &str) -> CartError {
    CartError::Database(sqlx::Error::Protocol(format!("cart_idempotency: {what}")))
}

#[async_trait]
impl<D: Dialect> Keys for SqlBackend<D> {
    async fn reserve_key(&self, req: &KeyRequest<'_>) -> Result<Reservation, CartError> {
        let mut conn = self.writer()?.acquire().await?;
        // A row deleted or taken over between two statements is simply looked at again.
        for _ in 0..4 {
            let now = now_epoch();
            let mark = KeyMark::new(req.scope, req.key);
            let inserted = Stmt::<D>::new(format!(
                "INSERT INTO cart_idempotency (scope, idem_key, fingerprint, state, token, \
                 locked_at, created_at, expires_at) VALUES (?, ?, ?, '{RUNNING}', ?, ?, ?, ?)"
            ))
            .bind(req.scope)
            .bind(req.key)
            .bind(req.fingerprint)
            .bind(mark.token.as_str())
            .bind(now)
            .bind(now)
            .bind(now.saturating_add(req.ttl))
            .run(&mut conn)
            .await;
            match inserted {
                Ok(_) => return Ok(Reservation::Fresh(Arc::new(mark))),
                Err(e) if is_unique_error(&e) => {}
                Err(e) => return Err(e.into()),
            }
            let row = Stmt::<D>::new(
                "SELECT fingerprint, state, token, locked_at, expires_at, status, headers, body \
                 FROM cart_idempotency WHERE scope = ? AND idem_key = ?",
            )
            .bind(req.scope)
            .bind(req.key)
            .one(&mut conn)
            .await?;
            let Some(row) = row else { continue };
            let state = row.text(1)?;
            let token = row.text(2)?;
            if row.int(4)? <= now {
                // Expired: as if it were not there.
                Stmt::<D>::new(
                    "DELETE FROM cart_idempotency WHERE scope = ? AND idem_key = ? AND token = ?",
                )
                .bind(req.scope)
                .bind(req.key)
                .bind(token.as_str())
                .run(&mut conn)
                .await?;
                continue;
            }
            if row.text(0)? != req.fingerprint {
                return Ok(Reservation::Reused);
            }
            if state == COMPLETE {
                let status = row
                    .int_opt(5)?
                    .and_then(|s| u16::try_from(s).ok())
                    .filter(|s| (100..=599).contains(s))
                    .ok_or_else(|| corrupt("a complete row without a status"))?;
                return Ok(Reservation::Complete(StoredAnswer {
                    status,
                    headers: row.text_opt(6)?.unwrap_or_default(),
                    body: row.text_opt(7)?.unwrap_or_default(),
                }));
            }
            if state != RUNNING && state != APPLIED {
                return Err(corrupt("an unknown state"));
            }
            // A running request may still be working: it is waited out. An applied change
            // committed, so nothing can apply it again: once its request had the time to
            // store its answer, a repeat recovers it (a request that gave its key up, or a
            // stopped process, at most `APPLIED_GRACE_SECS` later).
            let grace = if state == RUNNING {
                req.takeover
            } else {
                APPLIED_GRACE_SECS
            };
            if row.int(3)? > now.saturating_sub(grace) {
                return Ok(Reservation::InFlight);
            }
            // The request holding it stopped: take it over.
            let taken = Stmt::<D>::new(
                "UPDATE cart_idempotency SET token = ?, locked_at = ? WHERE scope = ? \
                 AND idem_key = ? AND token = ? AND state = ?",
            )
            .bind(mark.token.as_str())
            .bind(now)
            .bind(req.scope)
            .bind(req.key)
            .bind(token.as_str())
            .bind(state.as_str())
            .affected(&mut conn)
            .await?;
            if taken == 1 {
                let mark = Arc::new(mark);
                return Ok(if state == RUNNING {
                    Reservation::Fresh(mark)
                } else {
                    Reservation::Recover(mark)
                });
            }
        }
        Ok(Reservation::InFlight)
    }

    async fn complete_key(
        &self,
        mark: &KeyMark,
        answer: &StoredAnswer,
        ttl: i64,
    ) -> Result<(), CartError> {
        Stmt::<D>::new(format!(
            "UPDATE cart_idempotency SET state = '{COMPLETE}', status = ?, headers = ?, \
             body = ?, expires_at = ? WHERE scope = ? AND idem_key = ? AND token = ?"
        ))
        .bind(i64::from(answer.status))
        .bind(answer.headers.as_str())
        .bind(answer.body.as_str())
        .bind(now_epoch().saturating_add(ttl))
        .bind(mark.scope.as_str())
        .bind(mark.key.as_str())
        .bind(mark.token.as_str())
        .run(&mut *self.writer()?.acquire().await?)
        .await?;
        Ok(())
    }

    async fn store_key(
        &self,
        req: &KeyRequest<'_>,
        answer: &StoredAnswer,
    ) -> Result<(), CartError> {
        let now = now_epoch();
        let token = random_key();
        let stored = Stmt::<D>::new(format!(
            "INSERT INTO cart_idempotency (scope, idem_key, fingerprint, state, token, \
             locked_at, status, headers, body, created_at, expires_at) \
             VALUES (?, ?, ?, '{COMPLETE}', ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(req.scope)
        .bind(req.key)
        .bind(req.fingerprint)
        .bind(token.as_str())
        .bind(now)
        .bind(i64::from(answer.status))
        .bind(answer.headers.as_str())
        .bind(answer.body.as_str())
        .bind(now)
        .bind(now.saturating_add(req.ttl))
        .run(&mut *self.writer()?.acquire().await?)
        .await;
        match stored {
            Ok(_) => Ok(()),
            Err(e) if is_unique_error(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn abandon_key(&self, mark: &KeyMark) -> Result<(), CartError> {
        let mut conn = self.writer()?.acquire().await?;
        Stmt::<D>::new(format!(
            "DELETE FROM cart_idempotency WHERE scope = ? AND idem_key = ? AND token = ? \
             AND state = '{RUNNING}'"
        ))
        .bind(mark.scope.as_str())
        .bind(mark.key.as_str())
        .bind(mark.token.as_str())
        .run(&mut conn)
        .await?;
        Stmt::<D>::new(format!(
            "UPDATE cart_idempotency SET locked_at = 0 WHERE scope = ? AND idem_key = ? \
             AND token = ? AND state = '{APPLIED}'"
        ))
        .bind(mark.scope.as_str())
        .bind(mark.key.as_str())
        .bind(mark.token.as_str())
        .run(&mut conn)
        .await?;
        Ok(())
    }

    async fn delete_expired_keys(&self, now: i64, limit: i64) -> Result<u64, CartError> {
        let sql = if D::SQL.ordered_delete {
            "DELETE FROM cart_idempotency WHERE expires_at < ? ORDER BY expires_at LIMIT ?"
        } else {
            "DELETE FROM cart_idempotency WHERE (scope, idem_key) IN (SELECT scope, idem_key \
             FROM cart_idempotency WHERE expires_at < ? ORDER BY expires_at LIMIT ?)"
        };
        let done = Stmt::<D>::new(sql)
            .bind(now)
            .bind(limit)
            .affected(&mut *self.writer()?.acquire().await?)
            .await?;
        Ok(done)
    }
}
