//! Storage: the cart, line and discount rows, in SQLite, PostgreSQL or MySQL/MariaDB.
//!
//! [`Store`] wraps a sqlx pool of one of the three backends. The SQL and the method bodies
//! the backends share are written once (`common.rs` and `locked.rs`, over the `Dialect` seam of
//! `driver.rs`, with the statement text of `sql.rs` and the row decoding of `decode.rs`);
//! each backend file (`sqlite.rs`, `postgres.rs`, `mysql.rs`) holds only what really differs
//! for it. Tables are prefixed `cart_` so they never collide with the app's own.
//!
//! Every change other than `add` goes through one transactional primitive: lock the carts
//! involved (`SELECT … FOR UPDATE` on PostgreSQL and MySQL, `BEGIN IMMEDIATE` on SQLite),
//! read them fresh, let the facade decide what to write, write it, commit.

mod common;
mod decode;
mod driver;
mod keys;
mod locked;
#[cfg(feature = "mysql")]
mod mysql;
mod outbox;

pub(crate) use outbox::{Claimed, Delivery, EventQuery};
#[cfg(feature = "postgres")]
mod postgres;
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::migrate::Migrator;

use crate::discount::from_epoch;
use crate::{CartError, CartId, Discount, DiscountRefusal, Line, LineKey};

pub(crate) use keys::{KeyMark, Keys};
#[cfg(feature = "http")]
pub(crate) use keys::{KeyRequest, Reservation, StoredAnswer};

/// The database holding the carts: SQLite (embedded default), PostgreSQL or MySQL/MariaDB.
///
/// Build it from a pool the app already has, or from a URL.
///
/// ```
/// # async fn demo() -> Result<(), axum_cart::CartError> {
/// use axum_cart::Store;
/// let store = Store::connect("sqlite::memory:").await?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Store {
    pub(crate) backend: Arc<dyn Backend>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend.name())
            .finish()
    }
}

impl Store {
    /// Connects by URL: `sqlite:…`, `postgres://…` / `postgresql://…`, `mysql://…` / `mariadb://…`.
    /// A SQLite file is created if missing and opened in WAL mode.
    pub async fn connect(url: &str) -> Result<Store, CartError> {
        let scheme: String = url.chars().take_while(|c| *c != ':').take(20).collect();
        match scheme.as_str() {
            #[cfg(feature = "sqlite")]
            "sqlite" => Ok(sqlite::connect(url).await?.into()),
            #[cfg(feature = "postgres")]
            "postgres" | "postgresql" => Ok(sqlx::PgPool::connect(url).await?.into()),
            #[cfg(feature = "mysql")]
            "mysql" | "mariadb" => {
                let url = url.replacen("mariadb://", "mysql://", 1);
                Ok(sqlx::MySqlPool::connect(&url).await?.into())
            }
            #[allow(unreachable_patterns)]
            "sqlite" | "postgres" | "postgresql" | "mysql" | "mariadb" => {
                Err(CartError::UnsupportedDatabase(format!(
                    "this build of axum-cart has no {scheme:?} backend: enable the cargo feature \
                     \"{}\"",
                    feature_of(&scheme)
                )))
            }
            _ => Err(CartError::UnsupportedDatabase(format!(
                "unsupported database URL scheme {scheme:?}: expected sqlite, postgres or mysql"
            ))),
        }
    }

    /// Creates or updates the cart tables (`cart_carts`, `cart_items`, `cart_discounts`).
    ///
    /// It is safe to run on every start and beside the app's own sqlx migrations: the
    /// versions start at 9_000_000_000_000_001, far from sqlx's timestamp versions, and
    /// migrations it does not know are ignored. An app that runs its own `sqlx::migrate!`
    /// on the same database should call `.set_ignore_missing(true)` on its migrator too.
    pub async fn migrate(&self) -> Result<(), CartError> {
        self.backend.migrate().await
    }

    /// `"sqlite"`, `"postgres"` or `"mysql"`.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }
}

/// The cargo feature of the backend a URL scheme names.
fn feature_of(scheme: &str) -> &'static str {
    match scheme {
        "sqlite" => "sqlite",
        "postgres" | "postgresql" => "postgres",
        _ => "mysql",
    }
}

#[cfg(feature = "sqlite")]
impl From<sqlx::SqlitePool> for Store {
    fn from(pool: sqlx::SqlitePool) -> Self {
        Store {
            backend: Arc::new(common::SqlBackend::<sqlx::Sqlite>::new(pool)),
        }
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::PgPool> for Store {
    fn from(pool: sqlx::PgPool) -> Self {
        Store {
            backend: Arc::new(common::SqlBackend::<sqlx::Postgres>::new(pool)),
        }
    }
}

#[cfg(feature = "mysql")]
impl From<sqlx::MySqlPool> for Store {
    fn from(pool: sqlx::MySqlPool) -> Self {
        Store {
            backend: Arc::new(common::SqlBackend::<sqlx::MySql>::new(pool)),
        }
    }
}

pub(crate) fn migrator(mut m: Migrator) -> Migrator {
    m.set_ignore_missing(true);
    m
}

/// One cart row, as listed for a user or an admin page.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct CartRecord {
    /// Distinct products on it.
    pub line_count: i64,
    /// Total units on it.
    pub item_count: i64,
    /// The cart id.
    pub id: CartId,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    /// Its last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
    /// Whether it has been checked out.
    pub checked_out: bool,
    /// The app user it is bound to.
    pub user_id: Option<String>,
}

/// The cart row and everything on it, read in one go.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub id: CartId,
    pub checked_out: bool,
    pub user_id: Option<String>,
    pub discount: Option<Discount>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Frozen (for a payment) until this Unix time, if it was frozen.
    pub frozen_until: Option<i64>,
    /// The cart's version: 0 for a row nothing has changed yet (and for no row at all);
    /// every committed change adds 1 (migration 9000000000000009).
    pub version: u64,
    pub lines: Vec<Line>,
}

impl Snapshot {
    /// Whether the cart is frozen now: an open cart whose freeze has not expired.
    pub(crate) fn is_frozen(&self) -> bool {
        !self.checked_out && self.frozen_until.is_some_and(|until| until > now_epoch())
    }

    /// The line with this key (product and options).
    pub(crate) fn line(&self, key: &LineKey) -> Option<&Line> {
        self.lines.iter().find(|l| l.key() == *key)
    }

    /// The line that is the same line as `line` (same product and options).
    pub(crate) fn same_line(&self, line: &Line) -> Option<&Line> {
        self.lines.iter().find(|l| l.same_line(line))
    }

    pub(crate) fn record(&self) -> CartRecord {
        CartRecord {
            line_count: self.lines.len() as i64,
            item_count: self.lines.iter().map(|l| l.quantity).sum(),
            id: self.id,
            created_at: from_epoch(self.created_at),
            updated_at: from_epoch(self.updated_at),
            checked_out: self.checked_out,
            user_id: self.user_id.clone(),
        }
    }
}

/// The bounds of one `add`: the line's most units, the cart's most lines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AddLimits {
    pub quantity: i64,
    pub lines: usize,
}

impl AddLimits {
    /// The most lines, as a bound value.
    pub(crate) fn lines_bound(&self) -> i64 {
        i64::try_from(self.lines).unwrap_or(i64::MAX)
    }
}

/// What `add` did.
#[derive(Debug)]
pub(crate) enum AddOutcome {
    /// The line now has `quantity`.
    Added { quantity: i64 },
    /// The existing quantity plus the new one would exceed the maximum; nothing changed.
    Exceeded,
    /// The line is new and the cart already has the most lines it may have; nothing changed.
    TooManyLines,
    /// The cart is checked out; nothing changed.
    CheckedOut,
    /// The cart is frozen for a payment; nothing changed.
    Frozen,
    /// The cart row no longer exists; nothing changed.
    Gone,
}

/// One change decided by the facade inside a locked write.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    /// Insert the line or set its quantity and price.
    Upsert { cart: CartId, line: Line },
    /// Set the quantity and price of a line the locked read found. An `UPDATE` by the
    /// whole unique key: on MySQL it locks that row only, where an upsert also locks the
    /// gap before it, which reaches into the neighbouring cart's lines (concurrent
    /// checkouts of neighbouring carts deadlocked on it).
    Update { cart: CartId, line: Line },
    /// Delete one line.
    Delete { cart: CartId, key: LineKey },
    /// Delete every line.
    Clear { cart: CartId },
    /// Attach or detach a discount.
    SetDiscount { cart: CartId, discount: Option<i64> },
    /// Bind to a user (or unbind).
    SetUser { cart: CartId, user: Option<String> },
    /// Count one use of a discount; fails if it would pass `max_uses`.
    UseDiscount { discount: i64 },
    /// Mark the cart checked out (which ends a freeze).
    CheckOut { cart: CartId },
    /// Freeze the cart until this Unix time, or end its freeze (`None`).
    Freeze { cart: CartId, until: Option<i64> },
    /// Delete the cart row (and its lines), recording that it was merged into `into`, so a
    /// request still holding its id follows it.
    MergeAway { cart: CartId, into: CartId },
    /// Give the cart this session key (taken from any other cart that holds it).
    SetKey { cart: CartId, key: String },
    /// Write an event into the outbox (in the change's transaction).
    Event(Box<crate::outbox::NewEvent>),
}

/// The carts of one locked write: the target first, then the others, freshly read.
pub(crate) struct Locked {
    pub target: Snapshot,
    pub others: Vec<Snapshot>,
}

/// Which carts one locked write locks: the target, the others (merge sources), and
/// whether the discount rows are locked too (a checkout counting a use).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteRequest<'a> {
    /// The cart the change is for.
    pub target: CartId,
    /// Other carts the change reads and writes (a merge's sources).
    pub others: &'a [CartId],
    /// Lock the discount of the target too.
    pub lock_discount: bool,
    /// The idempotency key the change is made under: marked applied before the commit.
    pub mark: Option<&'a KeyMark>,
}

/// What the facade decides, given the locked carts.
pub(crate) type Plan<'a> = dyn FnMut(&Locked) -> Result<Vec<Write>, CartError> + Send + 'a;

/// How a locked write ended.
#[derive(Debug)]
pub(crate) enum WriteOutcome {
    /// Committed.
    Written,
    /// The plan asked for no change; nothing was written and no row was created.
    Unchanged,
    /// This cart of the write no longer exists.
    Gone(CartId),
}

/// The operations every backend implements, each with its own SQL (the idempotency keys'
/// in `keys.rs`).
#[async_trait]
pub(crate) trait Backend: Keys + Send + Sync + 'static {
    fn name(&self) -> &'static str;
    async fn migrate(&self) -> Result<(), CartError>;
    /// The cart with its discount and lines, in one statement.
    async fn load(&self, id: CartId) -> Result<Option<Snapshot>, CartError>;
    /// Adds `line.quantity` to the line: one atomic statement, refused if the result would
    /// exceed `max`.
    async fn add(&self, cart: CartId, line: &Line, max: AddLimits)
        -> Result<AddOutcome, CartError>;
    /// Creates an empty cart row, or finds the one that already holds `key` (a concurrent
    /// request of the same session created it). `true` when this call created it.
    async fn create_cart(&self, key: Option<&str>) -> Result<(CartId, bool), CartError>;
    /// Deletes a cart created by [`create_cart`](Self::create_cart) if it is still empty
    /// and has no user or discount: the undo of a creation whose session write failed.
    async fn delete_if_empty(&self, cart: CartId) -> Result<(), CartError>;
    /// Releases a session key: no cart holds it afterwards.
    async fn release_key(&self, key: &str) -> Result<(), CartError>;
    /// Gives the cart this session key (taken from any other cart that holds it).
    async fn set_key(&self, cart: CartId, key: &str) -> Result<(), CartError>;
    /// The cart a merged cart went into, if `cart` was merged away.
    async fn merged_into(&self, cart: CartId) -> Result<Option<CartId>, CartError>;
    /// Locks `target` and `others`, asks `plan` what to write, writes it and commits; rolls
    /// everything back if the plan or a write fails.
    async fn write(
        &self,
        request: WriteRequest<'_>,
        plan: &mut Plan<'_>,
    ) -> Result<WriteOutcome, CartError>;
    async fn discount_by_code(&self, code: &str) -> Result<Option<Discount>, CartError>;
    /// Takes up to `limit` due events of `lane` (the oldest undelivered one of each cart),
    /// leased until `lease_until`.
    async fn claim_events(
        &self,
        lane: crate::outbox::Lane,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<Claimed>, CartError>;
    /// Records how a claimed event's delivery ended, if the claim still holds its lease;
    /// whether it did.
    async fn finish_event(&self, claim: &Claimed, delivery: &Delivery) -> Result<bool, CartError>;
    /// The sinks' events, newest first.
    async fn list_events(&self, query: &EventQuery) -> Result<Vec<crate::OutboxEvent>, CartError>;
    /// Pending, delivered and parked rows of the outbox, both lanes.
    async fn event_counts(&self) -> Result<[u64; 3], CartError>;
    /// Parked events (this one, or all) back to pending; how many rows.
    async fn retry_parked(&self, event_id: Option<&str>) -> Result<u64, CartError>;
    /// Deletes up to `limit` events delivered before `cutoff`.
    async fn delete_delivered(&self, cutoff: i64, limit: i64) -> Result<u64, CartError>;
    /// Writes the `abandoned` events of up to `limit` carts idle since `cutoff`.
    async fn abandon_idle(&self, cutoff: i64, limit: i64) -> Result<u64, CartError>;
    async fn create_discount(&self, discount: &Discount) -> Result<Discount, CartError>;
    async fn list_discounts(&self) -> Result<Vec<Discount>, CartError>;
    async fn set_discount_active(&self, code: &str, active: bool) -> Result<bool, CartError>;
    /// Carts matching the filter, newest first, with their line and unit counts: one query.
    async fn list_carts(&self, filter: &CartFilter) -> Result<Vec<CartRecord>, CartError>;
    /// How many carts are older than `cutoff` (last activity).
    async fn count_stale(&self, cutoff: i64, include_checked_out: bool) -> Result<u64, CartError>;
    /// Deletes up to `limit` of them, oldest ids first; returns how many.
    async fn delete_stale(
        &self,
        cutoff: i64,
        include_checked_out: bool,
        limit: i64,
    ) -> Result<u64, CartError>;
    /// One page of a user's carts (open ones only with `open_only`), newest first, with
    /// their line and unit counts: the carts after `after` (the `created_at` and id of the
    /// last cart of the previous page), at most `limit`. See `sql::user_page_sql`.
    async fn user_carts_page(
        &self,
        user_id: &str,
        open_only: bool,
        after: Option<(i64, CartId)>,
        limit: i64,
    ) -> Result<Vec<CartRecord>, CartError>;
    /// Deletes one cart row; its lines and the merge records pointing at it go with it
    /// (`ON DELETE CASCADE`). `true` if it existed.
    async fn delete_cart(&self, cart: CartId) -> Result<bool, CartError>;
    /// Deletes up to `limit` of the user's carts (checked out or not), lowest ids first,
    /// with their lines and merge records; returns how many.
    async fn delete_user_carts(&self, user_id: &str, limit: i64) -> Result<u64, CartError>;
    /// Replaces the rules (type, value, minimum, maximum uses, active, validity window) of
    /// the discount with `d.code`, keeping its id and uses, in one statement. Refused when
    /// `d.max_uses` is below the uses it already has, or when the type or value would change
    /// on a code that has been used (`sql::discount_in_use`).
    async fn update_discount(&self, d: &Discount) -> Result<DiscountChange, CartError>;
    /// Deletes the discount with this code, in one statement; open carts holding it are
    /// detached (`ON DELETE SET NULL`). Refused when the code has been used
    /// (`sql::discount_in_use`).
    async fn delete_discount(&self, code: &str) -> Result<DiscountChange, CartError>;
}

/// Which carts to list (admin pages, a user's history).
///
/// ```
/// use axum_cart::CartFilter;
/// let open_of_alice = CartFilter::new().user("alice").checked_out(false);
/// let stale = CartFilter::new().inactive_days(30).limit(100);
/// # let _ = (open_of_alice, stale);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
#[must_use]
pub struct CartFilter {
    /// Only checked-out (`Some(true)`) or open (`Some(false)`) carts.
    pub checked_out: Option<bool>,
    /// Only this user's carts.
    pub user_id: Option<String>,
    /// Only carts with no activity for this many days.
    pub inactive_days: Option<u32>,
    /// At most this many (default 50, at most 1000).
    pub limit: u32,
    /// Skip this many.
    pub offset: u32,
}

impl Default for CartFilter {
    fn default() -> Self {
        CartFilter {
            checked_out: None,
            user_id: None,
            inactive_days: None,
            limit: 50,
            offset: 0,
        }
    }
}

impl CartFilter {
    /// Every cart, 50 at a time.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only checked-out or only open carts.
    pub fn checked_out(mut self, checked_out: bool) -> Self {
        self.checked_out = Some(checked_out);
        self
    }
    /// Only this user's carts.
    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }
    /// Only carts idle for at least this many days.
    pub fn inactive_days(mut self, days: u32) -> Self {
        self.inactive_days = Some(days);
        self
    }
    /// Page size (clamped to 1..=1000).
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit.clamp(1, 1000);
        self
    }
    /// Page offset.
    pub fn offset(mut self, offset: u32) -> Self {
        self.offset = offset;
        self
    }
}

pub(crate) fn now_epoch() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The SQLSTATE the schema's guard raises (PostgreSQL) or signals (MySQL) when a line of
/// a checked-out cart is written (migration 9000000000000006). SQLite's triggers cannot
/// choose a code: there it is the trigger's extended result code.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) const CHECKED_OUT_SQLSTATE: &str = "AXC01";

/// The SQLSTATE of the guard refusing a new line in a full cart (PostgreSQL and MySQL).
pub(crate) const FULL_SQLSTATE: &str = "AXC03";

/// The SQLSTATE of the guard refusing a line write to a frozen cart (PostgreSQL and MySQL).
pub(crate) const FROZEN_SQLSTATE: &str = "AXC04";

pub(crate) fn used_up() -> CartError {
    CartError::InvalidDiscount(DiscountRefusal::UsedUp)
}

pub(crate) fn duplicate_code(code: &str) -> CartError {
    CartError::InvalidDiscount(DiscountRefusal::CodeTaken(code.to_owned()))
}

/// How an admin change of a discount ([`Backend::update_discount`],
/// [`Backend::delete_discount`]) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DiscountChange {
    /// Written.
    Done,
    /// No discount has this code.
    NotFound,
    /// The code exists but the change was refused; nothing was written.
    Refused,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unknown_scheme_is_refused_by_name() {
        let err = Store::connect("ftp://example.com/carts").await.unwrap_err();
        assert!(matches!(err, CartError::UnsupportedDatabase(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "unsupported database URL scheme \"ftp\": expected sqlite, postgres or mysql"
        );
    }

    /// Runs in the builds without the MySQL feature (CI builds each backend alone).
    #[cfg(not(feature = "mysql"))]
    #[tokio::test]
    async fn a_backend_not_compiled_in_names_its_feature() {
        let err = Store::connect("mariadb://root@127.0.0.1/test")
            .await
            .unwrap_err();
        assert!(matches!(err, CartError::UnsupportedDatabase(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("enable the cargo feature \"mysql\""),
            "{err}"
        );
    }
}
