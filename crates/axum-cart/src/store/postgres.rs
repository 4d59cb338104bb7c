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
        skip_locked: " FOR UPDATE OF o SKIP LOCKED",
        share_lock: "",
        lines_index: "",
        begin: None,
        upsert: Upsert::OnConflict,
        returning: true,
        ordered_delete: false,
        guard_codes: true,
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
        migrator(sqlx::migrate!("migrations/postgres"))
            .run(&store.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::{list_sql, numbered, spelled, user_page_sql};
    use crate::store::CartFilter;
    use crate::CartId;

    #[test]
    fn statements_are_spelled_for_postgres() {
        let filter = CartFilter::new()
            .user("u")
            .inactive_days(3)
            .checked_out(true);
        let (sql, args) = list_sql(&filter, &Postgres::SQL);
        let sql = spelled(&Postgres::SQL, &sql);
        assert!(sql.contains(
            "WHERE c.checked_out = TRUE AND c.user_id = $1 AND c.updated_at < $2 GROUP BY"
        ));
        assert!(sql.ends_with("LIMIT $3 OFFSET $4") && !sql.contains('?'));
        assert_eq!(args.len(), 4);
        let (page, _) = user_page_sql(&Postgres::SQL, "u", true, Some((5, CartId::from_db(9))), 10);
        assert!(numbered(&page).contains(
            "c.user_id = $1 AND c.checked_out = FALSE AND (c.created_at < $2 OR (c.created_at = $3 AND c.id < $4))"
        ));
        assert_eq!(
            numbered(&Postgres::SQL.limited_delete("updated_at < ?")),
            "DELETE FROM cart_carts WHERE id IN \
             (SELECT id FROM cart_carts WHERE updated_at < $1 ORDER BY id LIMIT $2)"
        );
    }
}
