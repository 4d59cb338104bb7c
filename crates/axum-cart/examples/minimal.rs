//! The smallest shop: `cart_router()` for the cart pages and JSON API, and the `Cart`
//! extractor in a handler of the app's own, on an embedded SQLite file.
//!
//! ```sh
//! cargo run -p axum-cart --example minimal
//! curl -i -c jar -b jar -X POST http://127.0.0.1:3000/cart/add/book/1 -d quantity=2
//! curl -b jar http://127.0.0.1:3000/cart -H 'Accept: application/json'
//! curl -b jar http://127.0.0.1:3000/badge
//! ```

use std::sync::Arc;

use axum::{routing::get, Router};
use axum_cart::{
    async_trait, cart_router, BoxError, Cart, CartError, CartLayer, Carts, Catalog, Product, Store,
};
use rust_decimal::Decimal;
use tower_sessions::{MemoryStore, SessionManagerLayer};

/// Books 1 to 100 at 12.50: the catalogue every price comes from (never the client).
struct Books;

struct Book(i64);

impl Product for Book {
    fn kind(&self) -> &str {
        "book"
    }
    fn id(&self) -> i64 {
        self.0
    }
    fn price(&self) -> Option<Decimal> {
        Some(Decimal::new(1250, 2))
    }
}

#[async_trait]
impl Catalog for Books {
    async fn products(&self, kind: &str, ids: &[i64]) -> Result<Vec<Arc<dyn Product>>, BoxError> {
        let known = |id: &&i64| kind == "book" && (1..=100).contains(*id);
        Ok(ids
            .iter()
            .filter(known)
            .map(|&id| Arc::new(Book(id)) as Arc<dyn Product>)
            .collect())
    }
}

/// An app route of its own: the visitor's cart is just an argument.
async fn badge(cart: Cart) -> Result<String, CartError> {
    Ok(format!(
        "{} items, {}",
        cart.count().await?,
        cart.total().await?
    ))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let carts = Carts::builder(Store::connect("sqlite://minimal.db").await?)
        .catalog(Books)
        .build();
    carts.migrate().await?;

    let app = Router::new()
        .merge(cart_router()) // GET /cart, POST /cart/add/{kind}/{id}, …
        .route("/badge", get(badge))
        .layer(CartLayer::new(carts))
        .layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
