//! The shop's own tables (products, users, orders), next to the library's `cart_` tables in
//! the same database. One statement set works on SQLite, PostgreSQL and MySQL; money is
//! stored as integer cents, exact on every backend.

use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{
    ConnectOptions, Connection, MySqlConnection, MySqlPool, PgConnection, PgPool, Row, SqlitePool,
};

/// The database, whichever backend `DATABASE_URL` names.
#[derive(Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// A value bound into a shop statement.
pub enum Arg<'a> {
    Int(i64),
    Text(&'a str),
}

const SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS shop_products (
        kind VARCHAR(20) NOT NULL,
        id BIGINT NOT NULL,
        name VARCHAR(200) NOT NULL,
        price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
        PRIMARY KEY (kind, id))",
    "CREATE TABLE IF NOT EXISTS shop_users (
        username VARCHAR(100) NOT NULL PRIMARY KEY,
        created_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS shop_orders (
        cart_id BIGINT NOT NULL PRIMARY KEY,
        username VARCHAR(100),
        subtotal_cents BIGINT NOT NULL,
        discount_cents BIGINT NOT NULL,
        tax_cents BIGINT NOT NULL,
        shipping_cents BIGINT NOT NULL,
        total_cents BIGINT NOT NULL,
        discount_code VARCHAR(50),
        created_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS shop_order_lines (
        cart_id BIGINT NOT NULL,
        kind VARCHAR(50) NOT NULL,
        product_id BIGINT NOT NULL,
        name VARCHAR(200) NOT NULL,
        quantity BIGINT NOT NULL,
        unit_price_cents BIGINT NOT NULL,
        PRIMARY KEY (cart_id, kind, product_id))",
];

/// Why the shop's database could not be opened or prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// A setting is not valid.
    #[error("{0}")]
    Config(String),
    /// Another process held the start-up lock for too long.
    #[error("{lock}: another process held the start-up lock for more than {seconds} s")]
    LockTimeout {
        /// The lock: `pg_advisory_lock` or `GET_LOCK`.
        lock: &'static str,
        /// How long this process waited.
        seconds: u64,
    },
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl Db {
    /// Opens the database named by `url`; a SQLite file is created if missing, in WAL mode.
    /// The pool holds at most `DATABASE_MAX_CONNECTIONS` connections (4 on SQLite, 16
    /// otherwise) and a request waits at most 5 s for one.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        let max_connections = |default: u32| match std::env::var("DATABASE_MAX_CONNECTIONS") {
            Ok(v) if !v.trim().is_empty() => match v.trim().parse::<u32>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(DbError::Config(format!(
                    "DATABASE_MAX_CONNECTIONS must be a number of at least 1, got {v:?}"
                ))),
            },
            _ => Ok(default),
        };
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections(4)?)
                // A SQLite connection is a file handle, not a socket that can go stale:
                // no ping (a round trip to the connection's thread) before each use.
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await?;
            Ok(Db::Sqlite(pool))
        } else if url.starts_with("postgres") {
            Ok(Db::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(max_connections(16)?)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect(url)
                    .await?,
            ))
        } else if url.starts_with("mysql") || url.starts_with("mariadb") {
            let url = url.replacen("mariadb://", "mysql://", 1);
            Ok(Db::MySql(
                sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(max_connections(16)?)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect(&url)
                    .await?,
            ))
        } else {
            Err(DbError::Config(
                "DATABASE_URL must start with sqlite:, postgres:// or mysql://".into(),
            ))
        }
    }

    /// The cart store over the same pool.
    pub fn store(&self) -> axum_cart::Store {
        match self {
            Db::Sqlite(p) => p.clone().into(),
            Db::Postgres(p) => p.clone().into(),
            Db::MySql(p) => p.clone().into(),
        }
    }

    /// Runs one statement written with `?` placeholders (rewritten to `$n` for PostgreSQL).
    pub async fn exec(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64, sqlx::Error> {
        macro_rules! run {
            ($pool:expr, $sql:expr) => {{
                let mut q = sqlx::query($sql);
                for a in args {
                    q = match a {
                        Arg::Int(v) => q.bind(*v),
                        Arg::Text(v) => q.bind(*v),
                    };
                }
                q.execute($pool).await?.rows_affected()
            }};
        }
        Ok(match self {
            Db::Sqlite(p) => run!(p, sql),
            Db::Postgres(p) => {
                let sql = dollar(sql);
                run!(p, &sql)
            }
            Db::MySql(p) => run!(p, sql),
        })
    }

    /// Creates the shop tables (if missing). Safe to run from several processes at once
    /// under [`Db::startup_lock`]; on SQLite each `CREATE TABLE IF NOT EXISTS` is atomic.
    pub async fn prepare(&self) -> Result<(), sqlx::Error> {
        for sql in SCHEMA {
            self.exec(sql, &[]).await?;
        }
        Ok(())
    }

    /// Takes the database-wide start-up lock, so that one process at a time creates and
    /// migrates tables and seeds data: PostgreSQL `pg_advisory_lock` and MySQL `GET_LOCK`,
    /// each on a connection of its own outside the pool (so a pool of one connection still
    /// works), held until [`StartupLock::release`] or the process ends. SQLite needs none:
    /// its steps are safe by themselves (the cart migrations run in a `BEGIN IMMEDIATE`
    /// transaction, the seed in another, the tables are `IF NOT EXISTS`).
    ///
    /// Waits up to [`STARTUP_LOCK_TIMEOUT`] for another process to finish.
    pub async fn startup_lock(&self) -> Result<StartupLock, DbError> {
        let timeout = |lock: &'static str| DbError::LockTimeout {
            lock,
            seconds: STARTUP_LOCK_TIMEOUT.as_secs(),
        };
        match self {
            Db::Sqlite(_) => Ok(StartupLock(LockConn::None)),
            Db::Postgres(p) => {
                let mut conn = p.connect_options().connect().await?;
                let take = sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(STARTUP_LOCK_KEY)
                    .execute(&mut conn);
                tokio::time::timeout(STARTUP_LOCK_TIMEOUT, take)
                    .await
                    .map_err(|_| timeout("pg_advisory_lock"))??;
                Ok(StartupLock(LockConn::Postgres(conn)))
            }
            Db::MySql(p) => {
                let mut conn = p.connect_options().connect().await?;
                // MySQL lock names are server-wide; the session store's `tower_sessions`
                // database is server-wide too, so one name for the whole server is right.
                let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
                    .bind(MYSQL_STARTUP_LOCK)
                    .bind(STARTUP_LOCK_TIMEOUT.as_secs() as i64)
                    .fetch_one(&mut conn)
                    .await?;
                if got != Some(1) {
                    return Err(timeout("GET_LOCK"));
                }
                Ok(StartupLock(LockConn::MySql(conn)))
            }
        }
    }

    /// Inserts the catalogue of a new shop in one transaction, if `shop_products` is still
    /// empty when the transaction looks; rows already there are left alone (an idempotent
    /// insert), so two processes seeding at once both end with the whole catalogue and
    /// nobody ever reads half of it. Returns how many rows this call inserted.
    pub async fn seed_products(
        &self,
        rows: &[(&str, i64, String, i64)],
    ) -> Result<u64, sqlx::Error> {
        const COUNT: &str = "SELECT COUNT(*) FROM shop_products";
        const CHUNK: usize = 100;
        let values = |n: usize, dollar: bool| {
            (0..n)
                .map(|i| {
                    if dollar {
                        format!(
                            "(${}, ${}, ${}, ${})",
                            4 * i + 1,
                            4 * i + 2,
                            4 * i + 3,
                            4 * i + 4
                        )
                    } else {
                        "(?, ?, ?, ?)".to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        macro_rules! seed {
            ($tx:expr, $insert:expr, $tail:expr, $dollar:expr) => {{
                let mut tx = $tx;
                let existing: i64 = sqlx::query_scalar(COUNT).fetch_one(&mut *tx).await?;
                let mut inserted = 0;
                if existing == 0 {
                    for chunk in rows.chunks(CHUNK) {
                        let sql = format!(
                            "{} INTO shop_products (kind, id, name, price_cents) VALUES {}{}",
                            $insert,
                            values(chunk.len(), $dollar),
                            $tail
                        );
                        let mut q = sqlx::query(&sql);
                        for (kind, id, name, cents) in chunk {
                            q = q.bind(*kind).bind(*id).bind(name.as_str()).bind(*cents);
                        }
                        inserted += q.execute(&mut *tx).await?.rows_affected();
                    }
                }
                tx.commit().await?;
                inserted
            }};
        }
        Ok(match self {
            // IMMEDIATE: the write lock from the start, so the count cannot go stale.
            Db::Sqlite(p) => seed!(
                p.begin_with("BEGIN IMMEDIATE").await?,
                "INSERT",
                " ON CONFLICT DO NOTHING",
                false
            ),
            Db::Postgres(p) => seed!(p.begin().await?, "INSERT", " ON CONFLICT DO NOTHING", true),
            Db::MySql(p) => seed!(p.begin().await?, "INSERT IGNORE", "", false),
        })
    }

    /// `SELECT 1`, within `timeout`: is the database there?
    pub async fn check(&self, timeout: Duration) -> Result<(), String> {
        let probe = async {
            match self {
                Db::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(drop),
                Db::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(drop),
                Db::MySql(p) => sqlx::query("SELECT 1").execute(p).await.map(drop),
            }
        };
        match tokio::time::timeout(timeout, probe).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }

    /// Every product: (kind, id, name, price).
    pub async fn products(&self) -> Result<Vec<(String, i64, String, Decimal)>, sqlx::Error> {
        const SQL: &str = "SELECT kind, id, name, price_cents FROM shop_products ORDER BY kind, id";
        macro_rules! rows {
            ($pool:expr) => {{
                sqlx::query(SQL)
                    .fetch_all($pool)
                    .await?
                    .iter()
                    .map(|r| {
                        Ok((
                            r.try_get_unchecked::<String, _>(0)?,
                            r.try_get::<i64, _>(1)?,
                            r.try_get_unchecked::<String, _>(2)?,
                            Decimal::new(r.try_get::<i64, _>(3)?, 2),
                        ))
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()?
            }};
        }
        Ok(match self {
            Db::Sqlite(p) => rows!(p),
            Db::Postgres(p) => rows!(p),
            Db::MySql(p) => rows!(p),
        })
    }

    /// The integers a one-column query returns.
    pub async fn ids(&self, sql: &str) -> Result<Vec<i64>, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await?,
            Db::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await?,
            Db::MySql(p) => sqlx::query_scalar(sql).fetch_all(p).await?,
        })
    }

    /// An order row: the cart id, figures in cents, username, discount code.
    pub async fn order_total(&self, cart_id: i64) -> Result<Option<i64>, sqlx::Error> {
        const SQL: &str = "SELECT total_cents FROM shop_orders WHERE cart_id = ?";
        Ok(match self {
            Db::Sqlite(p) => {
                sqlx::query_scalar(SQL)
                    .bind(cart_id)
                    .fetch_optional(p)
                    .await?
            }
            Db::Postgres(p) => {
                sqlx::query_scalar(&dollar(SQL))
                    .bind(cart_id)
                    .fetch_optional(p)
                    .await?
            }
            Db::MySql(p) => {
                sqlx::query_scalar(SQL)
                    .bind(cart_id)
                    .fetch_optional(p)
                    .await?
            }
        })
    }
}

/// How long a starting process waits for another one's start-up preparation.
pub const STARTUP_LOCK_TIMEOUT: Duration = Duration::from_secs(120);
/// The PostgreSQL advisory-lock key of the start-up preparation (per database).
const STARTUP_LOCK_KEY: i64 = 0x7368_6f70_5f73_7461; // "shop_sta"
/// The MySQL lock name of the start-up preparation.
const MYSQL_STARTUP_LOCK: &str = "axum_cart_shop_startup";

/// The start-up lock of [`Db::startup_lock`]; released by [`StartupLock::release`], or by
/// the database when the connection closes (a process that dies holding it).
pub struct StartupLock(LockConn);

enum LockConn {
    None,
    Postgres(PgConnection),
    MySql(MySqlConnection),
}

impl StartupLock {
    /// Releases the lock and closes its connection.
    pub async fn release(self) -> Result<(), sqlx::Error> {
        match self.0 {
            LockConn::None => {}
            LockConn::Postgres(mut conn) => {
                sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(STARTUP_LOCK_KEY)
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
            }
            LockConn::MySql(mut conn) => {
                sqlx::query("SELECT RELEASE_LOCK(?)")
                    .bind(MYSQL_STARTUP_LOCK)
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
            }
        }
        Ok(())
    }
}

/// `?` placeholders → `$1, $2, …` (PostgreSQL).
fn dollar(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// Decimal → integer cents (prices here always have two places).
pub fn cents(value: Decimal) -> i64 {
    let v = value.round_dp(2) * Decimal::ONE_HUNDRED;
    i64::try_from(v.trunc()).unwrap_or(i64::MAX)
}
