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

    /// A stable identity of this session that every concurrent request of it shares, as 1
    /// to 64 lowercase hex digits (use [`digest`](crate::session::digest)), or `None` when
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
            identity: digest(&tower_sessions::session::Id::default().to_string()).into(),
        }
    }
}

/// A SHA-256 digest in lowercase hex (64 characters): what the database keeps of a session
/// identity (see [`SessionAdapter::identity`]), so no secret of the session is stored.
pub fn digest(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random binding key.
pub(crate) fn random_key() -> String {
    digest(&tower_sessions::session::Id::default().to_string())
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

/// The default adapter of [`CartLayer`](crate::CartLayer): the cart id is the key
/// [`CART_ID_KEY`] of the app's [`tower_sessions::Session`].
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

/// How the signed cookie of [`SignedCookieSession`] is written.
///
/// The cookie is signed (HMAC-SHA256) with the app's [`tower_cookies::Key`]; it is
/// `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` unless switched off, and lives
/// [`max_age`](Self::max_age) (30 days by default) from the moment the cart is created.
///
/// ```
/// use axum_cart::SignedCookieConfig;
/// use tower_cookies::Key;
///
/// let config = SignedCookieConfig::new(Key::generate())
///     .secure(false) // plain-HTTP development only
///     .max_age(time::Duration::days(7));
/// ```
#[derive(Clone)]
#[must_use]
pub struct SignedCookieConfig {
    key: tower_cookies::Key,
    secure: bool,
    max_age: time::Duration,
}

impl std::fmt::Debug for SignedCookieConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedCookieConfig")
            .field("key", &"<redacted>")
            .field("secure", &self.secure)
            .field("max_age", &self.max_age)
            .finish()
    }
}

impl SignedCookieConfig {
    /// The default lifetime of the cookie: 30 days.
    pub const DEFAULT_MAX_AGE: time::Duration = time::Duration::days(30);

    /// Signed with `key`, `Secure`, 30 days.
    pub fn new(key: tower_cookies::Key) -> Self {
        SignedCookieConfig {
            key,
            secure: true,
            max_age: Self::DEFAULT_MAX_AGE,
        }
    }

    /// Whether the cookie carries `Secure` (default `true`: browsers then send it over
    /// HTTPS and `localhost` only).
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The cookie's `Max-Age` (default 30 days). Negative values count as zero.
    pub fn max_age(mut self, max_age: time::Duration) -> Self {
        self.max_age = max_age.max(time::Duration::ZERO);
        self
    }
}

/// A cart id kept in a signed cookie, for apps with no server-side session: the
/// counterpart of django-cart's `CookieSessionAdapter` + `CartCookieMiddleware`.
///
/// Each key is one cookie of the same name (the cart id is the cookie `CART-ID`). A cookie
/// whose signature does not verify (tampered, forged, unsigned, signed with another key,
/// garbage) is ignored: the visitor simply has no cart id and gets a fresh cart. Changes
/// are collected here and sent as `Set-Cookie` headers by [`CartLayer`](crate::CartLayer)
/// (see [`set_cookie_headers`](Self::set_cookie_headers)); nothing is sent when nothing
/// changed.
pub struct SignedCookieSession {
    config: SignedCookieConfig,
    jar: Mutex<tower_cookies::cookie::CookieJar>,
}

impl std::fmt::Debug for SignedCookieSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedCookieSession")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SignedCookieSession {
    /// The session of a request, read from its `Cookie` headers.
    ///
    /// When a name appears more than once (a cookie planted for a parent domain, say), a
    /// copy that verifies wins over one that does not.
    pub fn from_headers(headers: &axum::http::HeaderMap, config: SignedCookieConfig) -> Self {
        use tower_cookies::cookie::{Cookie, CookieJar};
        let mut jar = CookieJar::new();
        for header in headers.get_all(axum::http::header::COOKIE) {
            let Ok(text) = header.to_str() else { continue };
            for part in text.split(';') {
                let Ok(cookie) = Cookie::parse_encoded(part.trim().to_owned()) else {
                    continue;
                };
                let name = cookie.name().to_owned();
                if jar.get(&name).is_some() && jar.signed(&config.key).get(&name).is_some() {
                    continue;
                }
                jar.add_original(cookie);
            }
        }
        SignedCookieSession {
            config,
            jar: Mutex::new(jar),
        }
    }

    fn jar(&self) -> Result<std::sync::MutexGuard<'_, tower_cookies::cookie::CookieJar>, BoxError> {
        self.jar
            .lock()
            .map_err(|_| "cookie jar lock poisoned".into())
    }

    /// The `Set-Cookie` values for what changed since the request (empty if nothing did).
    pub fn set_cookie_headers(&self) -> Vec<axum::http::HeaderValue> {
        let Ok(jar) = self.jar() else {
            return Vec::new();
        };
        jar.delta()
            .filter_map(|c| axum::http::HeaderValue::from_str(&c.to_string()).ok())
            .collect()
    }
}

#[async_trait]
impl SessionAdapter for SignedCookieSession {
    async fn get(&self, key: &str) -> Result<Option<String>, BoxError> {
        let jar = self.jar()?;
        Ok(jar
            .signed(&self.config.key)
            .get(key)
            .map(|c| c.value().to_owned()))
    }
    async fn set(&self, key: &str, value: &str) -> Result<(), BoxError> {
        use tower_cookies::cookie::{Cookie, SameSite};
        let cookie = Cookie::build((key.to_owned(), value.to_owned()))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.config.secure)
            .max_age(self.config.max_age)
            .build();
        self.jar()?.signed_mut(&self.config.key).add(cookie);
        Ok(())
    }
    /// A digest of the cart id the (verified) cookie names: requests carrying the same
    /// cookie share the session's next cart.
    fn identity(&self) -> Option<String> {
        let jar = self.jar().ok()?;
        let id = jar.signed(&self.config.key).get(CART_ID_KEY)?;
        Some(digest(&format!("signed-cookie:{}", id.value())))
    }
    async fn delete(&self, key: &str) -> Result<(), BoxError> {
        use tower_cookies::cookie::{Cookie, SameSite};
        let cookie = Cookie::build(key.to_owned())
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.config.secure)
            .build();
        self.jar()?.remove(cookie);
        Ok(())
    }
}
