//! The session store follows the database (SQLite, PostgreSQL or MySQL through
//! tower-sessions-sqlx-store), or Redis when `REDIS_URL` is set, so several shop processes
//! sharing one database and Redis serve the same sessions.

use std::fmt;

use axum_cart::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_sqlx_store::{MySqlStore, PostgresStore, SqliteStore};

use crate::db::Db;

/// One of the session stores the shop can run on.
#[derive(Clone)]
pub enum Sessions {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
    MySql(MySqlStore),
    Redis(RedisStore<Pool>),
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sessions::Sqlite(_) => "Sessions::Sqlite",
            Sessions::Postgres(_) => "Sessions::Postgres",
            Sessions::MySql(_) => "Sessions::MySql",
            Sessions::Redis(_) => "Sessions::Redis",
        })
    }
}

impl Sessions {
    /// Redis if `redis_url` is given, else the database's own session table.
    pub async fn open(
        db: &Db,
        redis_url: Option<&str>,
    ) -> Result<Sessions, Box<dyn std::error::Error + Send + Sync>> {
        if let Some(url) = redis_url {
            let config = Config::from_url(url)?;
            let pool = Pool::new(config, None, None, None, 4)?;
            pool.init().await?;
            return Ok(Sessions::Redis(RedisStore::new(pool)));
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
            Sessions::Redis(_) => Ok(()),
        }
    }
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Sessions::Sqlite($s) => $e,
            Sessions::Postgres($s) => $e,
            Sessions::MySql($s) => $e,
            Sessions::Redis($s) => $e,
        }
    };
}

#[async_trait]
impl SessionStore for Sessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        each!(self, s => s.create(record).await)
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        each!(self, s => s.save(record).await)
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        each!(self, s => s.load(id).await)
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        each!(self, s => s.delete(id).await)
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
