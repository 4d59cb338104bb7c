//! The same cart on PostgreSQL, from a pool the app already has: the cart's tables
//! (`cart_*`) live beside the app's own.
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run -p axum-cart --example postgres --features postgres
//! curl -c jar -b jar -X POST http://127.0.0.1:3001/cart/add/ticket/7 -d quantity=1
//! curl -b jar http://127.0.0.1:3001/cart -H 'Accept: application/json'
//! ```

use std::sync::Arc;

use axum::Router;
use axum_cart::{async_trait, cart_router, BoxError, CartLayer, Carts, Catalog, Product};
use rust_decimal::Decimal;
use sqlx::postgres::PgPoolOptions;
use tower_sessions::{MemoryStore, SessionManagerLayer};

/// Every ticket costs 30.00. A real catalogue would read the app's own product table.
struct Tickets;

struct Ticket(i64);

impl Product for Ticket {
    fn kind(&self) -> &str {
        "ticket"
    }
    fn id(&self) -> i64 {
        self.0
    }
    fn price(&self) -> Option<Decimal> {
        Some(Decimal::new(3000, 2))
    }
}

#[async_trait]
impl Catalog for Tickets {
    async fn products(&self, kind: &str, ids: &[i64]) -> Result<Vec<Arc<dyn Product>>, BoxError> {
        if kind != "ticket" {
            return Ok(Vec::new());
        }
        Ok(ids
            .iter()
            .map(|&id| Arc::new(Ticket(id)) as Arc<dyn Product>)
            .collect())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| "set DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/test")?;
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .connect(&url)
        .await?;

    // The pool is the app's; the cart borrows it.
    let carts = Carts::builder(pool.clone()).catalog(Tickets).build();
    carts.migrate().await?; // creates or updates cart_carts, cart_items, …

    let app = Router::new()
        .merge(cart_router())
        .layer(CartLayer::new(carts))
        .layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
