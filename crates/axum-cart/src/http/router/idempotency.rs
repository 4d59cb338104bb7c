//! `Idempotency-Key` on the change routes: [`IdempotencyLayer`].
//!
//! A request that changes something (any method but `GET`, `HEAD`, `OPTIONS` and `TRACE`)
//! may send an `Idempotency-Key` of 1 to 255 visible ASCII characters (anything else is
//! 400 `invalid_idempotency_key`). The key is scoped to the visitor (the session's
//! identity, as the cart binds to it), and names one request: its method, path and body
//! (a SHA-256 fingerprint). The flow is Brandur Leach's "recovery points":
//!
//! 1. **Reserve**: the key is inserted as `running`. Already there: another request's
//!    fingerprint is 422 `idempotency_key_reused`; `running` and recent is 409
//!    `idempotency_key_in_flight` with `Retry-After: 1`; `complete` is the stored answer
//!    again, with `Idempotent-Replayed: true`.
//! 2. **Run**: the route runs with the key on its cart ([`Cart::under_key`]): every cart
//!    write marks the key `applied` in the write's own transaction, so the change and the
//!    mark commit together or not at all (an `add` runs as a locked write for this).
//! 3. **Store**: the answer (status, the headers that describe it, body) is stored and the
//!    key `complete`, kept for the TTL (default 24 hours). A 5xx or a 429 is not stored:
//!    a key under which nothing was applied is removed, so a retry runs again.
//!
//! A request that stopped (the process died) leaves its key `running` or `applied`. A
//! `running` key (nothing was applied) is taken over by a repeat after [`TAKEOVER_SECS`],
//! and runs again; an `applied` one (the change committed, the answer was not stored yet)
//! at once, since nothing may change again: the route answers with the cart as it now is, in its usual success shape, with
//! `Idempotent-Replayed: true`, and that answer is stored. A request whose key was taken
//! over from under it cannot commit its change any more (its mark matches nothing).
//!
//! A visitor with no session yet has no scope to reserve in: its request runs as usual
//! and its answer is stored under the session the request gave it (no other request can
//! carry that session before this answer is sent).
//!
//! [`Cart::under_key`]: crate::Cart

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Request};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower::{Layer, Service};

use super::CartDetails;
use crate::http::body::limit_in_force;
use crate::http::layer::CartContext;
use crate::http::respond::{Format, Problem, ProblemCode, Reply};
use crate::session::digest;
use crate::store::{KeyMark, KeyRequest, Reservation, StoredAnswer};
use crate::SessionAdapter as _;

/// The request header.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The header of a stored answer given again.
pub(crate) const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// Seconds after which a request holding a key counts as stopped, and a repeat may take
/// its key over.
pub(crate) const TAKEOVER_SECS: i64 = 60;

/// The largest answer stored for a key (a larger one is not stored, like a 5xx).
const MAX_STORED: usize = 1024 * 1024;

/// The headers of an answer that are stored and given again: what describes the answer.
/// Never a `Set-Cookie` (a session is never handed to a repeat), nor what describes the
/// moment (`RateLimit`, `Retry-After`, `Date`).
const KEPT_HEADERS: [HeaderName; 6] = [
    header::CONTENT_TYPE,
    header::CONTENT_LANGUAGE,
    header::CACHE_CONTROL,
    header::LOCATION,
    header::ETAG,
    header::ALLOW,
];

/// The key of the request the cart's changes are made under, as the layer leaves it on
/// the request's [`CartContext`].
#[derive(Clone)]
pub(crate) struct KeyUse {
    /// What each cart write marks applied.
    pub(crate) mark: Arc<KeyMark>,
    /// The key's change was applied by a request that stopped: answer, change nothing.
    pub(crate) recovering: bool,
}

/// `Idempotency-Key` support for routes that change the cart (see `docs/HTTP.md`).
///
/// [`CartRouter`](crate::CartRouter) puts it on every cart route (its TTL is
/// [`CartRouter::idempotency_ttl`](crate::CartRouter::idempotency_ttl)); an app adds it to
/// its own routes that change the cart, such as its own checkout. It needs the
/// [`CartLayer`](crate::CartLayer) outside it (the key is scoped to the visitor). The
/// route's [`Cart`](crate::Cart) makes its changes under the key: a repeat of a request
/// whose change committed never changes the cart again. A repeat that finds the change
/// committed but its answer lost (the process stopped in between) runs the handler again
/// with every cart write refused: a handler whose repeat changes nothing by itself (a
/// checkout answers with its order) answers as usual.
///
/// ```
/// use axum::{routing::post, Router};
/// use axum_cart::{Cart, CartError, IdempotencyLayer};
///
/// async fn checkout(mut cart: Cart) -> Result<String, CartError> {
///     let order = cart.checkout().await?;
///     Ok(format!("order of {} items", order.totals.count))
/// }
///
/// let app: Router = Router::new().route(
///     "/checkout",
///     post(checkout).layer(IdempotencyLayer::new().ttl(time::Duration::hours(12))),
/// );
/// ```
#[derive(Clone)]
#[must_use]
pub struct IdempotencyLayer {
    ttl: i64,
}

impl fmt::Debug for IdempotencyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyLayer")
            .field("ttl_secs", &self.ttl)
            .finish()
    }
}

impl Default for IdempotencyLayer {
    fn default() -> Self {
        IdempotencyLayer::new()
    }
}

impl IdempotencyLayer {
    /// How long an answer is kept for repeats by default: 24 hours.
    pub const DEFAULT_TTL: time::Duration = time::Duration::hours(24);

    /// Keys kept [`DEFAULT_TTL`](Self::DEFAULT_TTL).
    pub fn new() -> Self {
        IdempotencyLayer {
            ttl: Self::DEFAULT_TTL.whole_seconds(),
        }
    }

    /// How long the answer to a keyed request is kept for its repeats (whole seconds, at
    /// least 1). After that the key is forgotten (a repeat runs again) and
    /// [`Carts::clean`](crate::Carts::clean) deletes it.
    pub fn ttl(mut self, ttl: time::Duration) -> Self {
        self.ttl = ttl.whole_seconds().max(1);
        self
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = IdempotencyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IdempotencyService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`IdempotencyLayer`].
#[derive(Clone)]
pub struct IdempotencyService<S> {
    inner: S,
    layer: IdempotencyLayer,
}

impl<S> fmt::Debug for IdempotencyService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyService")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

impl<S> Service<Request> for IdempotencyService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let ttl = self.layer.ttl;
        Box::pin(async move { Ok(keyed(inner, req, ttl).await) })
    }
}

/// Why a request's `Idempotency-Key` is not one.
fn invalid_key() -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid_idempotency_key",
        "Idempotency-Key must be one header of 1 to 255 visible ASCII characters.",
    )
}

/// The request's key: `None` without the header, `Err` for one that is not a key.
fn key_of(headers: &HeaderMap) -> Option<Result<String, Problem>> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let value = values.next()?;
    let bytes = value.as_bytes();
    let valid = values.next().is_none()
        && (1..=255).contains(&bytes.len())
        && bytes.iter().all(|b| (0x21..=0x7e).contains(b));
    Some(match (valid, value.to_str()) {
        (true, Ok(key)) => Ok(key.to_owned()),
        _ => Err(invalid_key()),
    })
}

/// SHA-256 (hex) of the method, the path with its query, and the body.
fn fingerprint(method: &Method, path: &str, body: &[u8]) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    hash.update(method.as_str().as_bytes());
    hash.update(b"\n");
    hash.update(path.as_bytes());
    hash.update(b"\n");
    hash.update(body);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The visitor a key belongs to: the session's identity (a digest of it when it is not
/// one already), `None` for a visitor with no session yet.
fn scope_of(ctx: &CartContext) -> Option<String> {
    let identity = ctx.session.identity()?;
    let hex = identity.len() == 64
        && identity
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    Some(if hex { identity } else { digest(&identity) })
}

/// One request through the layer.
async fn keyed<S>(mut inner: S, mut req: Request, ttl: i64) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let safe = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    let key = match (safe, key_of(req.headers())) {
        (false, Some(key)) => key,
        _ => return call(&mut inner, req).await,
    };
    let reply = Reply::of(req.headers(), req.extensions());
    let key = match key {
        Ok(key) => key,
        Err(problem) => return reply.error(problem).into_response(),
    };
    let Some(ctx) = req.extensions().get::<CartContext>().cloned() else {
        // No CartLayer: the route answers its own set-up error.
        tracing::warn!(
            "IdempotencyLayer found no CartLayer outside it: the Idempotency-Key is ignored"
        );
        return call(&mut inner, req).await;
    };
    // The body, read within the route's limit, for the fingerprint; the route reads it again.
    let limit = limit_in_force(&mut req).and_then(|n| usize::try_from(n).ok());
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, limit.unwrap_or(usize::MAX))
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let problem = if e.downcast_ref::<LengthLimitError>().is_some() {
                let limit = limit.map_or_else(String::new, |n| format!(" {n} bytes"));
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("The request body is larger than{limit}."),
                )
            } else {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    "The request body could not be read.",
                )
            };
            return reply.error(problem).into_response();
        }
    };
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |o| &o.0)
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let print = fingerprint(&parts.method, &path, &bytes);
    let mut req = Request::from_parts(parts, Body::from(bytes));
    let backend = ctx.carts.inner.store.backend.clone();
    let scope = scope_of(&ctx);
    let request = |scope| KeyRequest {
        scope,
        key: &key,
        fingerprint: &print,
        ttl,
        takeover: TAKEOVER_SECS,
    };

    let Some(scope) = scope else {
        // A new visitor: nothing to reserve in yet.
        let res = call(&mut inner, req).await;
        let (res, answer) = settle(res).await;
        if let (Some(answer), Some(scope)) = (answer, scope_of(&ctx)) {
            if let Err(e) = backend.store_key(&request(&scope), &answer).await {
                tracing::warn!(error = %e, "the answer of an idempotency key could not be stored");
            }
        }
        return res;
    };

    let reservation = match backend.reserve_key(&request(&scope)).await {
        Ok(reservation) => reservation,
        Err(e) => return reply.error(e).into_response(),
    };
    let (mark, recovering) = match reservation {
        Reservation::Fresh(mark) => (mark, false),
        Reservation::Recover(mark) => (mark, true),
        Reservation::Complete(stored) => return replay(&stored),
        Reservation::InFlight => return in_flight(&reply, &ctx).await,
        Reservation::Reused => {
            return reply
                .error(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "This Idempotency-Key was used for another request (method, path or \
                     body): use a new key for a new request.",
                ))
                .into_response()
        }
    };
    if let Some(ctx) = req.extensions_mut().get_mut::<CartContext>() {
        ctx.key = Some(KeyUse {
            mark: mark.clone(),
            recovering,
        });
    }
    // A request dropped half-way (the client went away) gives its key up at once.
    let mut held = Held {
        backend: Some(backend.clone()),
        mark: mark.clone(),
    };
    let res = call(&mut inner, req).await;
    let (mut res, answer) = settle(res).await;
    held.backend = None;
    let kept = match answer {
        Some(answer) => backend.complete_key(&mark, &answer, ttl).await,
        None => backend.abandon_key(&mark).await,
    };
    if let Err(e) = kept {
        tracing::warn!(error = %e, "an idempotency key could not be updated");
    }
    if recovering {
        replayed(res.headers_mut());
    }
    res
}

/// A reservation while its request runs: dropped before the request answered (the
/// request's future was dropped), it gives the key up ([`Keys::abandon_key`]) in a task of
/// its own, so a retry need not wait out the takeover time.
///
/// [`Keys::abandon_key`]: crate::store::Keys::abandon_key
struct Held {
    /// `None` once the request answered.
    backend: Option<Arc<dyn crate::store::Backend>>,
    mark: Arc<KeyMark>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let (Some(backend), Ok(runtime)) =
            (self.backend.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let mark = self.mark.clone();
        runtime.spawn(async move {
            if let Err(e) = backend.abandon_key(&mark).await {
                tracing::warn!(error = %e, "the key of a dropped request could not be given up");
            }
        });
    }
}

/// 409 `idempotency_key_in_flight`; in JSON with the visitor's cart as it now is, as
/// `cart`, like every 409 of the cart routes.
async fn in_flight(reply: &Reply, ctx: &CartContext) -> Response {
    let mut problem = Problem::from(crate::CartError::IdempotencyKeyInFlight);
    if reply.format == Format::Json {
        let current = async {
            let cart = ctx.open().await?;
            CartDetails::load(&cart).await
        };
        match current.await.map(|d| serde_json::to_value(&d)) {
            Ok(Ok(value)) => problem = problem.member("cart", value),
            Ok(Err(e)) => tracing::warn!(error = %e, "the current cart could not be serialised"),
            Err(e) => tracing::warn!(error = %e, "the current cart could not be read"),
        }
    }
    reply.error(problem).into_response()
}

async fn call<S>(inner: &mut S, req: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    match inner.call(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    }
}

/// The answer, read whole, and what of it is stored: nothing for a 5xx, a 429, a 409
/// of a key in flight, or an answer too large or not text.
async fn settle(res: Response) -> (Response, Option<StoredAnswer>) {
    let (parts, body) = res.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::warn!(error = %e, "the answer of a keyed request could not be read");
            return (StatusCode::INTERNAL_SERVER_ERROR.into_response(), None);
        }
    };
    let status = parts.status;
    let in_flight = parts
        .extensions
        .get::<ProblemCode>()
        .is_some_and(|c| c.0 == "idempotency_key_in_flight");
    let storable = !status.is_server_error()
        && status != StatusCode::TOO_MANY_REQUESTS
        && !in_flight
        && bytes.len() <= MAX_STORED;
    let answer = match (storable, std::str::from_utf8(&bytes)) {
        (true, Ok(text)) => {
            let mut headers = serde_json::Map::new();
            for name in &KEPT_HEADERS {
                if let Some(value) = parts.headers.get(name).and_then(|v| v.to_str().ok()) {
                    headers.insert(name.as_str().to_owned(), value.into());
                }
            }
            Some(StoredAnswer {
                status: status.as_u16(),
                headers: serde_json::Value::Object(headers).to_string(),
                body: text.to_owned(),
            })
        }
        _ => None,
    };
    (Response::from_parts(parts, Body::from(bytes)), answer)
}

/// A stored answer given again.
fn replay(stored: &StoredAnswer) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut res = (status, Bytes::from(stored.body.clone())).into_response();
    let headers = res.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    if let Ok(serde_json::Value::Object(kept)) = serde_json::from_str(&stored.headers) {
        for (name, value) in kept {
            let (Ok(name), Some(Ok(value))) = (
                HeaderName::try_from(name.as_str()),
                value.as_str().map(HeaderValue::from_str),
            ) else {
                continue;
            };
            headers.insert(name, value);
        }
    }
    replayed(headers);
    res
}

fn replayed(headers: &mut HeaderMap) {
    headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(values: &[&[u8]]) -> Option<Result<String, Problem>> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(
                IDEMPOTENCY_KEY,
                HeaderValue::from_bytes(v).expect("a header value"),
            );
        }
        key_of(&headers)
    }

    #[test]
    fn keys_are_one_header_of_1_to_255_visible_ascii_characters() {
        assert!(key(&[]).is_none());
        for good in [&b"a"[..], b"!~", b"\"quoted\"", &[b'k'; 255]] {
            assert!(matches!(key(&[good]), Some(Ok(_))), "{good:?}");
        }
        for bad in [&b""[..], b"a b", b"a\tb", &[b'k'; 256], b"caf\xc3\xa9"] {
            assert!(matches!(key(&[bad]), Some(Err(_))), "{bad:?}");
        }
        assert!(matches!(key(&[b"a", b"a"]), Some(Err(_))));
    }

    #[test]
    fn the_fingerprint_names_method_path_and_body() {
        let one = fingerprint(&Method::POST, "/cart/add/book/1", b"{}");
        assert_eq!(one.len(), 64);
        assert_eq!(one, fingerprint(&Method::POST, "/cart/add/book/1", b"{}"));
        assert_ne!(one, fingerprint(&Method::PUT, "/cart/add/book/1", b"{}"));
        assert_ne!(one, fingerprint(&Method::POST, "/cart/add/book/2", b"{}"));
        assert_ne!(one, fingerprint(&Method::POST, "/cart/add/book/1", b"{ }"));
        assert_ne!(one, fingerprint(&Method::POST, "/cart/add/book/1?x", b"{}"));
    }
}
