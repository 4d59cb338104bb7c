//! Session storage: where the current visitor's cart id lives between requests.
//!
//! The only thing the cart keeps in a session is the cart id, under [`CART_ID_KEY`].
//! Everything else is a database row. [`SessionAdapter`] is the one trait to implement for
//! a custom store; it needs `get`, `set` and `delete` of string values, and gets the cart id
//! methods for free.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::error::BoxError;
use crate::types::CartId;

#[cfg(feature = "signed-cookie")]
mod signed;
#[cfg(feature = "http")]
mod tower;

#[cfg(feature = "signed-cookie")]
pub use signed::{SignedCookieConfig, SignedCookieSession};
#[cfg(feature = "http")]
pub use tower::TowerSession;

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

    /// A stable identity of this session that every concurrent request of it shares, as 1
    /// to 64 lowercase hex digits (e.g. a SHA-256 of the session id in hex), or `None` when
    /// there is none (a new visitor). A new cart row carries it as a unique key, so requests
    /// of one session racing to create its cart (its first one, or the next one after a
    /// checkout) all end up in the same row. tower-sessions: a digest of the session id;
    /// the signed cookie: a digest of the cart id the cookie names; [`MemorySession`]: a
    /// random id shared by its clones. The default is `None`: racing requests of an adapter
    /// without an identity may each create a cart, and the last session write wins.
    fn identity(&self) -> Option<String> {
        None
    }

    /// Writes what was `set` through to the session store now, so that a failing store is
    /// reported to the cart, which then undoes the cart row it just created, instead of
    /// failing after the response is built. The default does nothing (stores that write on
    /// `set`, or cookies sent with the response).
    async fn persist(&self) -> Result<(), BoxError> {
        Ok(())
    }

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
    async fn cart_id(&self) -> Result<Option<CartId>, BoxError> {
        (**self).cart_id().await
    }
    async fn set_cart_id(&self, id: CartId) -> Result<(), BoxError> {
        (**self).set_cart_id(id).await
    }
    async fn clear_cart_id(&self) -> Result<(), BoxError> {
        (**self).clear_cart_id().await
    }
    fn identity(&self) -> Option<String> {
        (**self).identity()
    }
    async fn persist(&self) -> Result<(), BoxError> {
        (**self).persist().await
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
#[derive(Debug, Clone)]
pub struct MemorySession {
    values: Arc<Mutex<HashMap<String, String>>>,
    identity: Arc<str>,
}

impl Default for MemorySession {
    fn default() -> Self {
        MemorySession {
            values: Arc::default(),
            identity: random_key().into(),
        }
    }
}

/// A SHA-256 digest in lowercase hex (64 characters): what the database keeps of a session
/// identity (see [`SessionAdapter::identity`]), so no secret of the session is stored.
pub(crate) fn digest(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random binding key: the digest of 128 random bits.
pub(crate) fn random_key() -> String {
    digest(&format!("{:032x}", rand::random::<u128>()))
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
    fn identity(&self) -> Option<String> {
        Some(self.identity.to_string())
    }
}
