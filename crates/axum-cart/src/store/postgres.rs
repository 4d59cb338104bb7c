//! PostgreSQL: what differs from the shared store. Money is NUMERIC(18,2); parameters are
//! `$n`; writes lock rows with `SELECT … FOR UPDATE`, carts in id order, then the discount.

use async_trait::async_trait;
use rust_decimal::Decimal;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArguments, PgQueryResult, PgRow};
use sqlx::{Arguments, Postgres, Row};

use super::common::SqlBackend;
use super::driver::Dialect;
use super::migrator;
use super::sql::{Spelling, Upsert};
use crate::CartError;

#[async_trait]
impl Dialect for Postgres {
    const BACKEND: &'static str = "postgres";
    const SQL: Spelling = Spelling {
        numbered: true,
        true_: "TRUE",
        false_: "FALSE",
        units: "CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT)",
        value: "value",
        min_value: "min_cart_value",
        price: "unit_price",
        lock: " FOR UPDATE",
        share_lock: "",
        begin: None,
        upsert: Upsert::OnConflict,
        returning: true,
        ordered_delete: false,
        detach_discount: false,
    };
    /// The SQLSTATE the guard raises (migration 9000000000000006), its own class so no
    /// other error is mistaken for it.
    const CHECKED_OUT_CODE: &'static str = super::CHECKED_OUT_SQLSTATE;
    type State = ();

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
    fn push_money(args: &mut PgArguments, v: Option<Decimal>) -> Result<(), BoxDynError> {
        args.add(v)
    }
    fn money_opt(row: &PgRow, i: usize) -> Result<Option<Decimal>, sqlx::Error> {
        row.try_get(i)
    }

    async fn migrate(store: &SqlBackend<Postgres>) -> Result<(), CartError> {
        migrator(sqlx::migrate!("../../migrations/postgres"))
            .run(&store.pool)
            .await?;
        Ok(())
    }
}
