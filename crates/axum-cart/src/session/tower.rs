//! The tower-sessions adapter.

use async_trait::async_trait;

use super::{digest, SessionAdapter};
use crate::error::BoxError;

/// The default adapter of [`CartLayer`](crate::CartLayer): the cart id is the key
/// [`CART_ID_KEY`](crate::CART_ID_KEY) of the app's [`tower_sessions::Session`].
///
/// The app installs `tower_sessions::SessionManagerLayer` (with any store) outside the
/// `CartLayer`; the session cookie and the store are entirely the app's. Reading the id
/// never modifies the session, so read-only requests set no cookie.
///
/// ```
/// # async fn demo(session: tower_sessions::Session, carts: axum_cart::Carts) -> Result<(), axum_cart::CartError> {
/// use axum_cart::TowerSession;
/// let cart = carts.open(TowerSession(session)).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TowerSession(pub tower_sessions::Session);

#[async_trait]
impl SessionAdapter for TowerSession {
    async fn get(&self, key: &str) -> Result<Option<String>, BoxError> {
        Ok(match self.0.get_value(key).await? {
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            // Anything else under the key is not ours to interpret: no value.
            _ => None,
        })
    }
    async fn set(&self, key: &str, value: &str) -> Result<(), BoxError> {
        self.0.insert(key, value).await?;
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), BoxError> {
        self.0.remove_value(key).await?;
        Ok(())
    }
    /// A digest of the session id (the id itself is a secret and never stored).
    fn identity(&self) -> Option<String> {
        self.0.id().map(|id| digest(&id.to_string()))
    }
    /// `Session::save`: the session manager would otherwise save after the handler, where a
    /// failure can only become an empty 500.
    async fn persist(&self) -> Result<(), BoxError> {
        self.0.save().await?;
        Ok(())
    }
}
