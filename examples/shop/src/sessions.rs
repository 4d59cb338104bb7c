//! The session store follows the database (SQLite, PostgreSQL or MySQL through
//! tower-sessions-sqlx-store), or Redis when `REDIS_URL` is set, so several shop processes
//! sharing one database and Redis serve the same sessions.
//!
//! Every call to the store is bounded in time: a store that stops answering (Redis behind a
//! dropped connection, a database whose pool is exhausted) makes the call fail within a few
//! seconds, and the shop answers 503 instead of hanging. The Redis pool reconnects by
//! itself (a constant 500 ms between attempts, forever), gives up on a command after 2 s and
//! closes a connection that stops answering, so the shop recovers within seconds of Redis
//! coming back, without a restart.

use std::fmt;
use std::time::Duration;

use axum_cart::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};
use tower_sessions_redis_store::fred::types::config::{
    ConnectionConfig, PerformanceConfig, ReconnectPolicy, UnresponsiveConfig,
};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_sqlx_store::{MySqlStore, PostgresStore, SqliteStore};

use crate::db::Db;

/// One of the session stores the shop can run on.
#[derive(Clone)]
pub enum Sessions {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
    MySql(MySqlStore),
    /// The store, and the pool it runs on (for the readiness probe's `PING`).
    Redis(RedisStore<Pool>, Pool),
}

/// How long one Redis command may take, queueing during a reconnect included.
const REDIS_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a new Redis connection (TCP, then `AUTH`/`SELECT`) may take.
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the shop waits for Redis at start-up before it gives up.
const REDIS_START_TIMEOUT: Duration = Duration::from_secs(10);
/// The bound on any one session-store call: a little over Redis' command timeout, and over
/// the database pool's 5 s acquire timeout, so that the store's own, clearer error is the
/// one normally seen.
const REDIS_CALL_TIMEOUT: Duration = Duration::from_secs(3);
const DATABASE_CALL_TIMEOUT: Duration = Duration::from_secs(6);

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sessions::Sqlite(_) => "Sessions::Sqlite",
            Sessions::Postgres(_) => "Sessions::Postgres",
            Sessions::MySql(_) => "Sessions::MySql",
            Sessions::Redis(..) => "Sessions::Redis",
        })
    }
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Sessions::Sqlite($s) => $e,
            Sessions::Postgres($s) => $e,
            Sessions::MySql($s) => $e,
            Sessions::Redis($s, _) => $e,
        }
    };
}

impl Sessions {
    /// Redis if `redis_url` is given, else the database's own session table.
    pub async fn open(
        db: &Db,
        redis_url: Option<&str>,
    ) -> Result<Sessions, Box<dyn std::error::Error + Send + Sync>> {
        if let Some(url) = redis_url {
            let config = Config::from_url(url)
                .map_err(|e| format!("REDIS_URL is not a valid Redis URL: {e}"))?;
            let performance = PerformanceConfig {
                default_command_timeout: REDIS_COMMAND_TIMEOUT,
                ..PerformanceConfig::default()
            };
            let connection = ConnectionConfig {
                connection_timeout: REDIS_CONNECT_TIMEOUT,
                internal_command_timeout: REDIS_CONNECT_TIMEOUT,
                // A connection that leaves a command unanswered this long is closed and
                // reconnected (a half-open TCP connection is otherwise never noticed).
                unresponsive: UnresponsiveConfig {
                    max_timeout: Some(REDIS_COMMAND_TIMEOUT),
                    interval: Duration::from_millis(500),
                },
                ..ConnectionConfig::default()
            };
            // Retry forever, every 500 ms: the store comes back whenever Redis does.
            let policy = ReconnectPolicy::new_constant(0, 500);
            let pool = Pool::new(config, Some(performance), Some(connection), Some(policy), 4)?;
            match tokio::time::timeout(REDIS_START_TIMEOUT, pool.init()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("cannot connect to Redis ({url}): {e}").into()),
                Err(_) => {
                    return Err(format!(
                        "cannot connect to Redis ({url}): no connection within {} s",
                        REDIS_START_TIMEOUT.as_secs()
                    )
                    .into())
                }
            }
            return Ok(Sessions::Redis(RedisStore::new(pool.clone()), pool));
        }
        Ok(match db {
            Db::Sqlite(p) => {
                let s = SqliteStore::new(p.clone());
                s.migrate().await?;
                Sessions::Sqlite(s)
            }
            Db::Postgres(p) => {
                let s = PostgresStore::new(p.clone());
                s.migrate().await?;
                Sessions::Postgres(s)
            }
            Db::MySql(p) => {
                let s = MySqlStore::new(p.clone());
                s.migrate().await?;
                Sessions::MySql(s)
            }
        })
    }

    /// Deletes expired sessions from a database store (Redis expires them itself).
    pub async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            Sessions::Sqlite(s) => s.delete_expired().await,
            Sessions::Postgres(s) => s.delete_expired().await,
            Sessions::MySql(s) => s.delete_expired().await,
            Sessions::Redis(..) => Ok(()),
        }
    }

    /// The bound on one call to this store.
    pub fn call_timeout(&self) -> Duration {
        match self {
            Sessions::Redis(..) => REDIS_CALL_TIMEOUT,
            _ => DATABASE_CALL_TIMEOUT,
        }
    }

    /// Whether the store answers, within `timeout`: a Redis `PING`, or the load of a random
    /// session id from the database store. The error says what went wrong.
    pub async fn check(&self, timeout: Duration) -> Result<(), String> {
        let probe = async {
            match self {
                Sessions::Redis(_, pool) => pool
                    .ping::<String>(None)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
                _ => each!(self, s => s.load(&Id::default()).await)
                    .map(drop)
                    .map_err(|e| e.to_string()),
            }
        };
        match tokio::time::timeout(timeout, probe).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }

    /// Runs one store call, bounded by [`Sessions::call_timeout`].
    async fn bounded<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = session_store::Result<T>>,
    ) -> session_store::Result<T> {
        let limit = self.call_timeout();
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(session_store::Error::Backend(format!(
                "the session store did not answer a {what} within {limit:?}"
            ))),
        }
    }
}

#[async_trait]
impl SessionStore for Sessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.bounded("create", async { each!(self, s => s.create(record).await) })
            .await
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.bounded("save", async { each!(self, s => s.save(record).await) })
            .await
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.bounded("load", async { each!(self, s => s.load(id).await) })
            .await
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.bounded("delete", async { each!(self, s => s.delete(id).await) })
            .await
    }
}

/// The session store with an optional in-memory cache in front (tower-sessions'
/// `CachingSessionStore` logic, switchable at run time). The cache serves repeated reads of
/// a session from memory: right for one process, wrong for several sharing a store (one
/// would not see another's change), so the shop turns it on only for SQLite.
#[derive(Debug, Clone)]
pub struct Cached {
    pub cache: Option<tower_sessions_moka_store::MokaStore>,
    pub store: Sessions,
}

#[async_trait]
impl SessionStore for Cached {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.store.create(record).await?;
        if let Some(cache) = &self.cache {
            cache.save(record).await?;
        }
        Ok(())
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.store.save(record).await?;
        if let Some(cache) = &self.cache {
            cache.save(record).await?;
        }
        Ok(())
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let Some(cache) = &self.cache else {
            return self.store.load(id).await;
        };
        if let Some(record) = cache.load(id).await? {
            return Ok(Some(record));
        }
        let record = self.store.load(id).await?;
        if let Some(record) = &record {
            cache.save(record).await?;
        }
        Ok(record)
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.store.delete(id).await?;
        if let Some(cache) = &self.cache {
            cache.delete(id).await?;
        }
        Ok(())
    }
}
