//! A cart with no session store at all: the cart id travels in a signed cookie
//! (HMAC-SHA256, `HttpOnly`, `SameSite=Lax`). A tampered or forged cookie is ignored and the
//! visitor simply gets a fresh cart.
//!
//! ```sh
//! CART_COOKIE_KEY=$(head -c 48 /dev/urandom | base64) \
//!     cargo run -p axum-cart --example signed_cookie
//! curl -i -c jar -b jar -X POST http://127.0.0.1:3002/cart/add/sticker/3 -d quantity=5
//! curl -b jar http://127.0.0.1:3002/cart -H 'Accept: application/json'
//! ```

use std::sync::Arc;

use axum::Router;
use axum_cart::{
    async_trait, cart_router, BoxError, CartLayer, Carts, Catalog, Product, SignedCookieConfig,
    Store,
};
use rust_decimal::Decimal;
use tower_cookies::Key;

/// Stickers 1 to 9 at 1.50.
struct Stickers;

struct Sticker(i64);

impl Product for Sticker {
    fn kind(&self) -> &str {
        "sticker"
    }
    fn id(&self) -> i64 {
        self.0
    }
    fn price(&self) -> Option<Decimal> {
        Some(Decimal::new(150, 2))
    }
}

#[async_trait]
impl Catalog for Stickers {
    async fn products(&self, kind: &str, ids: &[i64]) -> Result<Vec<Arc<dyn Product>>, BoxError> {
        let known = |id: &&i64| kind == "sticker" && (1..=9).contains(*id);
        Ok(ids
            .iter()
            .filter(known)
            .map(|&id| Arc::new(Sticker(id)) as Arc<dyn Product>)
            .collect())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The signing key must survive restarts (else every cookie is refused): a secret of at
    // least 64 characters, e.g. `head -c 48 /dev/urandom | base64`.
    let key = match std::env::var("CART_COOKIE_KEY") {
        Ok(secret) => Key::try_from(secret.as_bytes())?,
        Err(_) => {
            eprintln!("CART_COOKIE_KEY is not set: using a random key for this run only");
            Key::generate()
        }
    };
    let carts = Carts::builder(Store::connect("sqlite://signed_cookie.db").await?)
        .catalog(Stickers)
        .build();
    carts.migrate().await?;

    let cookie = SignedCookieConfig::new(key).secure(false); // plain-HTTP development only
    let app = Router::new()
        .merge(cart_router())
        .layer(CartLayer::new(carts).with_signed_cookie(cookie));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3002").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
