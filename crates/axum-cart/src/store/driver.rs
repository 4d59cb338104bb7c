//! The seam between the shared store code and sqlx: [`Driver`] (what every sqlx backend
//! does the same way, implemented once for any `sqlx::Database` with the needed bounds),
//! [`Dialect`] (what each backend does its own way, implemented in its file) and [`Stmt`]
//! (a statement written once, with `?` parameters, bound and run on any backend).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use async_trait::async_trait;
use rust_decimal::Decimal;
use sqlx::error::BoxDynError;
use sqlx::{Arguments, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::common::SqlBackend;
use super::decode::RowExt;
use super::sql::{spelled, Spelling, Val};
use super::{AddLimits, AddOutcome, Snapshot};
use crate::{CartError, CartId, Line};

/// A boxed, sendable future of a sqlx result.
pub(crate) type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'a>>;

/// What every sqlx backend does the same way: run a statement, bind and read the plain
/// column types. The one place the sqlx bounds are spelled out.
pub(crate) trait Driver: Database {
    /// Binds a non-money value.
    fn push<'q>(args: &mut Self::Arguments<'q>, v: Val<'q>) -> Result<(), BoxDynError>;
    fn run<'e>(
        conn: &'e mut Self::Connection,
        sql: &'e str,
        args: Self::Arguments<'e>,
    ) -> Fut<'e, Self::QueryResult>;
    fn fetch_all<'e>(
        conn: &'e mut Self::Connection,
        sql: &'e str,
        args: Self::Arguments<'e>,
    ) -> Fut<'e, Vec<Self::Row>>;
    fn fetch_optional<'e>(
        conn: &'e mut Self::Connection,
        sql: &'e str,
        args: Self::Arguments<'e>,
    ) -> Fut<'e, Option<Self::Row>>;
    fn get_int(row: &Self::Row, i: usize) -> Result<Option<i64>, sqlx::Error>;
    fn get_flag(row: &Self::Row, i: usize) -> Result<bool, sqlx::Error>;
    fn get_text(row: &Self::Row, i: usize) -> Result<Option<String>, sqlx::Error>;
}

impl<DB: Database> Driver for DB
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    i64: Type<DB> + for<'r> Decode<'r, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    bool: Type<DB> + for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    str: Type<DB>,
    String: Type<DB> + for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    fn push<'q>(args: &mut Self::Arguments<'q>, v: Val<'q>) -> Result<(), BoxDynError> {
        match v {
            Val::Int(v) => args.add(v),
            Val::Text(v) => args.add(v),
            Val::Flag(v) => args.add(v),
            Val::Money(_) => Err("a money value is bound by the dialect".into()),
        }
    }
    fn run<'e>(
        conn: &'e mut DB::Connection,
        sql: &'e str,
        args: DB::Arguments<'e>,
    ) -> Fut<'e, DB::QueryResult> {
        conn.execute(sqlx::query_with(sql, args))
    }
    fn fetch_all<'e>(
        conn: &'e mut DB::Connection,
        sql: &'e str,
        args: DB::Arguments<'e>,
    ) -> Fut<'e, Vec<DB::Row>> {
        conn.fetch_all(sqlx::query_with(sql, args))
    }
    fn fetch_optional<'e>(
        conn: &'e mut DB::Connection,
        sql: &'e str,
        args: DB::Arguments<'e>,
    ) -> Fut<'e, Option<DB::Row>> {
        conn.fetch_optional(sqlx::query_with(sql, args))
    }
    fn get_int(row: &DB::Row, i: usize) -> Result<Option<i64>, sqlx::Error> {
        row.try_get(i)
    }
    fn get_flag(row: &DB::Row, i: usize) -> Result<bool, sqlx::Error> {
        row.try_get(i)
    }
    fn get_text(row: &DB::Row, i: usize) -> Result<Option<String>, sqlx::Error> {
        row.try_get(i)
    }
}

/// What one backend does its own way; the rest of the store is written once over it.
#[async_trait]
pub(crate) trait Dialect: Driver + Sync {
    /// `"sqlite"`, `"postgres"` or `"mysql"`.
    const BACKEND: &'static str;
    /// How it spells the shared statements.
    const SQL: Spelling;
    /// The error code (`DatabaseError::code`) of the schema's guard refusing a line write
    /// on a checked-out cart.
    const CHECKED_OUT_CODE: &'static str;
    /// What the backend keeps beside its pools.
    type State: Default + Send + Sync;

    fn rows_affected(done: &Self::QueryResult) -> u64;
    /// The id an insert created, for backends without `RETURNING`.
    fn last_insert_id(_done: &Self::QueryResult) -> Option<i64> {
        None
    }
    fn push_money<'q>(
        args: &mut Self::Arguments<'q>,
        v: Option<Decimal>,
    ) -> Result<(), BoxDynError>;
    fn money_opt(row: &Self::Row, i: usize) -> Result<Option<Decimal>, sqlx::Error>;
    fn text_opt(row: &Self::Row, i: usize) -> Result<Option<String>, sqlx::Error> {
        Self::get_text(row, i)
    }
    /// The pool the writes go through.
    fn writer_pool(pool: &sqlx::Pool<Self>) -> sqlx::Pool<Self> {
        pool.clone()
    }

    async fn migrate(store: &SqlBackend<Self>) -> Result<(), CartError>;
    /// The cart with its discount and lines, in one statement.
    async fn load(store: &SqlBackend<Self>, id: CartId) -> Result<Option<Snapshot>, CartError> {
        super::locked::joined_load(store, id).await
    }
    /// Adds to a line in one statement, refused past `max`.
    async fn add(
        store: &SqlBackend<Self>,
        cart: CartId,
        line: &Line,
        max: AddLimits,
    ) -> Result<AddOutcome, CartError> {
        super::locked::upsert_add(store, cart, line, max).await
    }
    /// Runs after a successful `add`.
    async fn after_write(_store: &SqlBackend<Self>) {}
}

/// The values of a statement as the backend's arguments.
fn arguments<'q, D: Dialect>(vals: &'q [Val<'_>]) -> Result<D::Arguments<'q>, sqlx::Error> {
    let mut args = D::Arguments::<'q>::default();
    for v in vals.iter().copied() {
        match v {
            Val::Money(m) => D::push_money(&mut args, m),
            other => D::push(&mut args, other),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

/// One statement, written once with `?` parameters (numbered for PostgreSQL here), and
/// its values.
pub(crate) struct Stmt<'a, D> {
    sql: String,
    vals: Vec<Val<'a>>,
    dialect: PhantomData<fn() -> D>,
}

impl<'a, D: Dialect> Stmt<'a, D> {
    pub fn new(sql: impl AsRef<str>) -> Self {
        Self::with(sql, Vec::new())
    }

    pub fn with(sql: impl AsRef<str>, vals: Vec<Val<'a>>) -> Self {
        Stmt {
            sql: spelled(&D::SQL, sql.as_ref()).into_owned(),
            vals,
            dialect: PhantomData,
        }
    }

    pub fn bind(mut self, v: impl Into<Val<'a>>) -> Self {
        self.vals.push(v.into());
        self
    }

    pub async fn run(&self, conn: &mut D::Connection) -> Result<D::QueryResult, sqlx::Error> {
        D::run(conn, &self.sql, arguments::<D>(&self.vals)?).await
    }

    /// Runs it; how many rows it wrote.
    pub async fn affected(&self, conn: &mut D::Connection) -> Result<u64, sqlx::Error> {
        Ok(D::rows_affected(&self.run(conn).await?))
    }

    pub async fn all(&self, conn: &mut D::Connection) -> Result<Vec<D::Row>, sqlx::Error> {
        D::fetch_all(conn, &self.sql, arguments::<D>(&self.vals)?).await
    }

    pub async fn one(&self, conn: &mut D::Connection) -> Result<Option<D::Row>, sqlx::Error> {
        D::fetch_optional(conn, &self.sql, arguments::<D>(&self.vals)?).await
    }

    /// The integer first column of the first row, if there is a row.
    pub async fn int(&self, conn: &mut D::Connection) -> Result<Option<i64>, sqlx::Error> {
        match self.one(conn).await? {
            Some(row) => row.int(0).map(Some),
            None => Ok(None),
        }
    }

    /// Runs an insert (written with [`Spelling::returning_id`]); the id it created.
    pub async fn insert_id(&self, conn: &mut D::Connection) -> Result<i64, sqlx::Error> {
        if D::SQL.returning {
            return self.int(conn).await?.ok_or(sqlx::Error::RowNotFound);
        }
        let done = self.run(conn).await?;
        D::last_insert_id(&done).ok_or(sqlx::Error::RowNotFound)
    }
}

/// The schema's guard refused a line write: the cart is checked out. Recognised by the
/// code the guard raises ([`Dialect::CHECKED_OUT_CODE`]), never by its message.
pub(crate) fn is_checked_out_error<D: Dialect>(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some(D::CHECKED_OUT_CODE))
}

/// The schema's guard refused a new line: the cart has its most lines (SQLSTATE AXC03,
/// migration 9000000000000007 on PostgreSQL and MySQL).
pub(crate) fn is_full_error(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some(super::FULL_SQLSTATE))
}

/// The schema's guard refused a line write: the cart is frozen (SQLSTATE AXC04, migration
/// 9000000000000008 on PostgreSQL and MySQL).
pub(crate) fn is_frozen_error(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some(super::FROZEN_SQLSTATE))
}

/// A CHECK constraint refused the write: the add past a line's maximum (it sets the
/// quantity to 0). By the kind sqlx gives it: SQLSTATE 23514 on PostgreSQL,
/// SQLITE_CONSTRAINT_CHECK on SQLite, error 3819 on MySQL and 4025 on MariaDB.
pub(crate) fn is_check_error(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_check_violation())
}

pub(crate) fn is_fk_error(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

pub(crate) fn is_unique_error(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}
