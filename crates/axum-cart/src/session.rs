//! Session storage: where the current visitor's cart id lives between requests.
//!
//! The only thing the cart keeps in a session is the cart id, under [`CART_ID_KEY`].
//! Everything else is a database row. [`SessionAdapter`] is the one trait to implement for
//! a custom store; it needs `get`, `set` and `delete` of string values, and gets the cart id
//! methods for free.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::cart::CartId;
use crate::error::BoxError;

/// The session key of the cart id: `"CART-ID"`, as in django-cart.
pub const CART_ID_KEY: &str = "CART-ID";

/// Where a visitor's cart id is kept.
///
/// ```
/// use std::sync::Arc;
/// use axum_cart::{async_trait, BoxError, SessionAdapter};
///
/// /// Keeps values in a Redis hash per visitor (sketch).
/// struct RedisSession { key: String /* , client: redis::Client */ }
///
/// #[async_trait]
/// impl SessionAdapter for RedisSession {
///     async fn get(&self, key: &str) -> Result<Option<String>, BoxError> {
///         // HGET self.key key
///         Ok(None)
///     }
///     async fn set(&self, key: &str, value: &str) -> Result<(), BoxError> {
///         // HSET self.key key value
///         Ok(())
///     }
///     async fn delete(&self, key: &str) -> Result<(), BoxError> {
///         // HDEL self.key key
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait SessionAdapter: Send + Sync + 'static {
    /// The value stored under `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<String>, BoxError>;
    /// Stores `value` under `key`.
    async fn set(&self, key: &str, value: &str) -> Result<(), BoxError>;
    /// Removes `key`; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), BoxError>;

    /// The stored cart id. Anything that is not a plain positive decimal integer counts as
    /// no id (a new cart is started), never as an error.
    async fn cart_id(&self) -> Result<Option<CartId>, BoxError> {
        Ok(self
            .get(CART_ID_KEY)
            .await?
            .as_deref()
            .and_then(CartId::parse))
    }

    /// Stores the cart id.
    async fn set_cart_id(&self, id: CartId) -> Result<(), BoxError> {
        self.set(CART_ID_KEY, &id.get().to_string()).await
    }

    /// Forgets the cart id, so the next change starts a new cart.
    async fn clear_cart_id(&self) -> Result<(), BoxError> {
        self.delete(CART_ID_KEY).await
    }
}

#[async_trait]
impl<S: SessionAdapter + ?Sized> SessionAdapter for Arc<S> {
    async fn get(&self, key: &str) -> Result<Option<String>, BoxError> {
        (**self).get(key).await
    }
    async fn set(&self, key: &str, value: &str) -> Result<(), BoxError> {
        (**self).set(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<(), BoxError> {
        (**self).delete(key).await
    }
}

/// A session held in memory: for tests, scripts and background jobs. Clones share values.
///
/// ```
/// # tokio_test_shim::block_on(async {
/// use axum_cart::{MemorySession, SessionAdapter};
/// let session = MemorySession::default();
/// session.set("CART-ID", "7").await.unwrap();
/// assert_eq!(session.cart_id().await.unwrap().map(|id| id.get()), Some(7));
/// session.set("CART-ID", "+7").await.unwrap();
/// assert_eq!(session.cart_id().await.unwrap(), None);
/// # });
/// # mod tokio_test_shim { pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f) } }
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemorySession {
    values: Arc<Mutex<HashMap<String, String>>>,
}

#[async_trait]
impl SessionAdapter for MemorySession {
    async fn get(&self, key: &str) -> Result<Option<String>, BoxError> {
        Ok(self
            .values
            .lock()
            .map_err(|_| "session lock poisoned")?
            .get(key)
            .cloned())
    }
    async fn set(&self, key: &str, value: &str) -> Result<(), BoxError> {
        self.values
            .lock()
            .map_err(|_| "session lock poisoned")?
            .insert(key.to_owned(), value.to_owned());
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), BoxError> {
        self.values
            .lock()
            .map_err(|_| "session lock poisoned")?
            .remove(key);
        Ok(())
    }
}
