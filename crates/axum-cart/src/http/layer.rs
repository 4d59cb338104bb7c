//! [`CartLayer`]: the tower layer that ties each request to its visitor's cart.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_trait::async_trait;
use axum::http::{request::Parts, Request, Response};
use tower::{Layer, Service};

use crate::error::{SessionSetupError, SessionTimeout};
use crate::{BoxError, Cart, CartError, CartId, Carts, SessionAdapter, TowerSession};
#[cfg(feature = "signed-cookie")]
use crate::{SignedCookieConfig, SignedCookieSession};

type AdapterFactory =
    Arc<dyn Fn(&Parts) -> Result<Arc<dyn SessionAdapter>, BoxError> + Send + Sync + 'static>;

#[derive(Clone)]
enum Storage {
    TowerSessions,
    #[cfg(feature = "signed-cookie")]
    SignedCookie(SignedCookieConfig),
    Custom(AdapterFactory),
}

/// The layer that gives every request access to its visitor's cart.
///
/// Build it from the app's [`Carts`] and add it to the router; handlers then take a
/// [`Cart`] or a [`CartBadge`](crate::CartBadge) as an argument.
///
/// - [`CartLayer::new`]: the cart id is kept in the app's `tower_sessions::Session` (the
///   default; install `SessionManagerLayer` outside this layer, and this layer directly
///   inside it, before any layer that reads the session: the cart takes the session's
///   identity from the id the request arrived with, which a login racing the request may
///   already have cycled away — see `docs/CONCURRENCY.md`).
/// - [`with_signed_cookie`](Self::with_signed_cookie): kept in a signed cookie, for apps
///   with no server-side session.
/// - [`with_adapter`](Self::with_adapter): kept wherever a custom [`SessionAdapter`] says.
///
/// The id is read at most once per request, and only when something asks for the cart: a
/// request that never touches the cart costs nothing.
///
/// ```no_run
/// # async fn demo() -> Result<(), axum_cart::CartError> {
/// use axum::{routing::get, Router};
/// use axum_cart::{cart_router, Cart, CartLayer, Carts};
/// use tower_sessions::{MemoryStore, SessionManagerLayer};
///
/// async fn count(cart: Cart) -> Result<String, axum_cart::CartError> {
///     Ok(cart.count().await?.to_string())
/// }
///
/// let carts = Carts::connect("sqlite::memory:").await?;
/// carts.migrate().await?;
/// let app: Router = Router::new()
///     .route("/count", get(count))
///     .merge(cart_router())
///     // Layers added last run first: the session must be outside the cart layer.
///     .layer(CartLayer::new(carts.clone()))
///     .layer(SessionManagerLayer::new(MemoryStore::default()));
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct CartLayer {
    carts: Carts,
    storage: Storage,
    session_timeout: std::time::Duration,
}

impl fmt::Debug for CartLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let storage = match &self.storage {
            Storage::TowerSessions => "tower-sessions",
            #[cfg(feature = "signed-cookie")]
            Storage::SignedCookie(_) => "signed cookie",
            Storage::Custom(_) => "custom adapter",
        };
        f.debug_struct("CartLayer")
            .field("carts", &self.carts)
            .field("storage", &storage)
            .field("session_timeout", &self.session_timeout)
            .finish()
    }
}

impl CartLayer {
    /// A layer over `carts` that keeps the cart id in the app's `tower_sessions::Session`
    /// (key `"CART-ID"`). The app installs `SessionManagerLayer` outside this layer.
    pub fn new(carts: Carts) -> Self {
        CartLayer {
            carts,
            storage: Storage::TowerSessions,
            session_timeout: Self::DEFAULT_SESSION_TIMEOUT,
        }
    }

    /// How long the cart waits for the session store by default: 5 seconds.
    pub const DEFAULT_SESSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

    /// Bounds every call the cart makes to the session adapter (read, write, save). A store
    /// that does not answer in time is [`CartError::SessionUnavailable`]: 503 with
    /// `Retry-After` from the bundled routes, and a cart row created for the failed write is
    /// removed again. Default [`DEFAULT_SESSION_TIMEOUT`](Self::DEFAULT_SESSION_TIMEOUT).
    ///
    /// This bounds the cart's own calls only; give the session store's client its own
    /// timeouts too (the session manager loads the session for other readers as well).
    pub fn session_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// Keeps the cart id in a cookie signed with the app's key instead (see
    /// [`SignedCookieSession`]); no session layer is needed. The layer writes the
    /// `Set-Cookie` itself. (Cargo feature `signed-cookie`.)
    #[cfg(feature = "signed-cookie")]
    pub fn with_signed_cookie(mut self, config: SignedCookieConfig) -> Self {
        self.storage = Storage::SignedCookie(config);
        self
    }

    /// Keeps the cart id wherever a custom adapter says. `factory` builds the adapter of
    /// each request from the request's head (headers, extensions put there by outer
    /// layers, …); an error there is reported when a handler asks for the cart.
    ///
    /// ```
    /// # fn demo(carts: axum_cart::Carts) {
    /// use axum_cart::{CartLayer, MemorySession};
    ///
    /// // One shared session for every request: a kiosk, or a test.
    /// let kiosk = MemorySession::default();
    /// let layer = CartLayer::new(carts).with_adapter(move |_parts| Ok(kiosk.clone()));
    /// # }
    /// ```
    pub fn with_adapter<F, A>(mut self, factory: F) -> Self
    where
        F: Fn(&Parts) -> Result<A, BoxError> + Send + Sync + 'static,
        A: SessionAdapter,
    {
        self.storage = Storage::Custom(Arc::new(move |parts: &Parts| {
            factory(parts).map(|a| Arc::new(a) as Arc<dyn SessionAdapter>)
        }));
        self
    }

    /// The cart service the layer serves.
    pub fn carts(&self) -> &Carts {
        &self.carts
    }
}

impl<S> Layer<S> for CartLayer {
    type Service = CartService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CartService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`CartLayer`].
#[derive(Clone)]
pub struct CartService<S> {
    inner: S,
    layer: CartLayer,
}

impl<S: fmt::Debug> fmt::Debug for CartService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CartService")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, B, ResB> Service<Request<B>> for CartService<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    ResB: Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);

        let (mut parts, body) = req.into_parts();
        #[cfg(feature = "signed-cookie")]
        let mut cookie_session = None;
        let adapter: Result<Arc<dyn SessionAdapter>, SessionError> = match &self.layer.storage {
            Storage::TowerSessions => match parts.extensions.get::<tower_sessions::Session>() {
                Some(session) => Ok(Arc::new(TowerSession(session.clone()))),
                None => Err(SessionError::Setup(
                    "CartLayer found no tower_sessions::Session in the request: add \
                     tower_sessions::SessionManagerLayer outside CartLayer, or use \
                     CartLayer::with_signed_cookie"
                        .to_owned(),
                )),
            },
            #[cfg(feature = "signed-cookie")]
            Storage::SignedCookie(config) => {
                let session = Arc::new(SignedCookieSession::from_headers(
                    &parts.headers,
                    config.clone(),
                ));
                cookie_session = Some(session.clone());
                Ok(session)
            }
            Storage::Custom(factory) => {
                factory(&parts).map_err(|e| SessionError::Adapter(e.to_string()))
            }
        };
        // The session's identity as the request arrived: a login later in the request may
        // cycle the session id, and a request whose session was cycled away meanwhile
        // still needs the identity it came with (see `Cart::login`).
        let identity = adapter.as_ref().ok().and_then(|a| a.identity());
        parts.extensions.insert(CartContext {
            carts: self.layer.carts.clone(),
            session: RequestSession(Arc::new(RequestSessionInner {
                adapter,
                id: Mutex::new(None),
                timeout: self.layer.session_timeout,
                identity,
            })),
            key: None,
        });
        let req = Request::from_parts(parts, body);

        Box::pin(async move {
            #[allow(unused_mut)]
            let mut res = inner.call(req).await?;
            #[cfg(feature = "signed-cookie")]
            if let Some(session) = cookie_session {
                for value in session.set_cookie_headers() {
                    res.headers_mut()
                        .append(axum::http::header::SET_COOKIE, value);
                }
            }
            Ok(res)
        })
    }
}

/// What [`CartLayer`] leaves in the request extensions.
#[derive(Clone)]
pub(crate) struct CartContext {
    pub(crate) carts: Carts,
    pub(crate) session: RequestSession,
    /// The request's `Idempotency-Key`, once the idempotency layer reserved it.
    pub(crate) key: Option<crate::http::router::KeyUse>,
}

impl CartContext {
    /// The visitor's cart (no query: the row is read when first needed), its changes made
    /// under the request's idempotency key, if it has one.
    pub(crate) async fn open(&self) -> Result<Cart, CartError> {
        let mut cart = self.carts.open(self.session.clone()).await?;
        if let Some(key) = &self.key {
            cart.under_key(key.mark.clone());
        }
        Ok(cart)
    }

    /// The cart page's path: the configured URL without its trailing slash.
    pub(crate) fn page_url(&self) -> String {
        crate::config::normal_cart_url(&self.carts.config().cart_url)
    }

    /// The cart id the session holds, read once per request.
    pub(crate) async fn cart_id(&self) -> Result<Option<CartId>, CartError> {
        self.session.cart_id().await.map_err(CartError::session)
    }
}

/// Why a request has no session adapter (both answered with 500).
enum SessionError {
    /// The app is not set up for the layer's storage.
    Setup(String),
    /// The app's adapter factory failed for this request.
    Adapter(String),
}

/// The request's session adapter, with the cart id cached so it is read at most once.
#[derive(Clone)]
pub(crate) struct RequestSession(Arc<RequestSessionInner>);

struct RequestSessionInner {
    adapter: Result<Arc<dyn SessionAdapter>, SessionError>,
    /// `None`: not read yet.
    id: Mutex<Option<Option<CartId>>>,
    timeout: std::time::Duration,
    /// The adapter's identity when the request arrived.
    identity: Option<String>,
}

impl RequestSession {
    fn adapter(&self) -> Result<&dyn SessionAdapter, BoxError> {
        match &self.0.adapter {
            Ok(adapter) => Ok(adapter.as_ref()),
            Err(SessionError::Setup(message)) => Err(SessionSetupError(message.clone()).into()),
            Err(SessionError::Adapter(message)) => Err(SessionSetupError(message.clone()).into()),
        }
    }

    /// Runs one adapter call within the layer's session timeout.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, BoxError>>,
    ) -> Result<T, BoxError> {
        match tokio::time::timeout(self.0.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(SessionTimeout(self.0.timeout).into()),
        }
    }

    fn remember(&self, id: Option<CartId>) {
        if let Ok(mut cached) = self.0.id.lock() {
            *cached = Some(id);
        }
    }

    fn forget_cached(&self) {
        if let Ok(mut cached) = self.0.id.lock() {
            *cached = None;
        }
    }
}

#[async_trait]
impl SessionAdapter for RequestSession {
    async fn get(&self, key: &str) -> Result<Option<String>, BoxError> {
        self.bounded(self.adapter()?.get(key)).await
    }
    async fn set(&self, key: &str, value: &str) -> Result<(), BoxError> {
        self.forget_cached();
        self.bounded(self.adapter()?.set(key, value)).await
    }
    async fn delete(&self, key: &str) -> Result<(), BoxError> {
        self.forget_cached();
        self.bounded(self.adapter()?.delete(key)).await
    }
    async fn cart_id(&self) -> Result<Option<CartId>, BoxError> {
        let cached = self.0.id.lock().ok().and_then(|c| *c);
        if let Some(id) = cached {
            return Ok(id);
        }
        let id = self.bounded(self.adapter()?.cart_id()).await?;
        self.remember(id);
        Ok(id)
    }
    async fn set_cart_id(&self, id: CartId) -> Result<(), BoxError> {
        self.forget_cached();
        self.bounded(self.adapter()?.set_cart_id(id)).await?;
        self.remember(Some(id));
        Ok(())
    }
    async fn clear_cart_id(&self) -> Result<(), BoxError> {
        self.forget_cached();
        self.bounded(self.adapter()?.clear_cart_id()).await?;
        self.remember(None);
        Ok(())
    }
    /// The identity the request came with; for a new session, the one it has once saved.
    fn identity(&self) -> Option<String> {
        self.0
            .identity
            .clone()
            .or_else(|| self.adapter().ok()?.identity())
    }
    async fn persist(&self) -> Result<(), BoxError> {
        self.bounded(self.adapter()?.persist()).await
    }
}
