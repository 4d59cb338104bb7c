//! The cart routes: [`cart_router`] and [`CartRouter`], one handler per route.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts, Path};
use axum::http::{request::Parts, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use utoipa::OpenApi as _;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::http::extract::context;
use crate::http::layer::CartContext;
use crate::http::respond::{json_response, see_other, ErrorResponse, Format, Problem, Reply};
use crate::{BoxError, Cart};

mod actions;
mod conditional;
mod details;
mod idempotency;
mod limit;
mod lines;
mod openapi;
mod page;

pub use details::{CartDetails, CartItem, CartWarning};
pub(crate) use idempotency::KeyUse;
pub use idempotency::{IdempotencyLayer, IdempotencyService};

type TemplateFn = Arc<dyn Fn(&CartDetails) -> Result<String, BoxError> + Send + Sync>;

/// The cart routes with their default settings: `Router::new().merge(cart_router())`.
///
/// | Route | What it does |
/// |---|---|
/// | `GET /cart` | the cart page (HTML, or the cart as JSON) |
/// | `POST /cart/add/{kind}/{id}` | adds `quantity` (default 1) with `option.<name>` options at the catalogue price |
/// | `POST /cart/update/{kind}/{id}` | sets the quantity of the line without options (0 removes) |
/// | `POST /cart/remove/{kind}/{id}` | removes the line |
/// | `POST /cart/lines/{line}/update` | sets the quantity of the line with this key (0 removes) |
/// | `POST /cart/lines/{line}/remove` | removes the line with this key |
/// | `POST /cart/clear` | removes every line |
/// | `POST /cart/freeze` | freezes the cart while its payment runs (changes get 409 `cart_frozen`) |
/// | `POST /cart/unfreeze` | ends the freeze |
/// | `POST /cart/discount` | applies the discount `code` |
/// | `POST /cart/discount/remove` | removes the discount |
/// | `POST /cart/checkout` | checks out (the app's order hook runs from the outbox: [`Relay::on_checkout`](crate::Relay::on_checkout)) |
/// | `GET /cart/shipping-options` | the shipping choices |
/// | `GET /cart/openapi.json` | the OpenAPI 3.1 document of these routes ([`CartRouter::openapi`]) |
///
/// HTML requests are answered with `303 See Other` back to the cart page, JSON requests
/// (`Accept: application/json`) with the cart as JSON. Errors are an
/// [`ErrorResponse`](crate::ErrorResponse): an RFC 9457 problem (`application/problem+json`)
/// or a small HTML page, with the status of [`http_status`](crate::http_status). Discount
/// code attempts are rate limited ([`CartRouter::discount_attempts`]). Every change takes an
/// `Idempotency-Key` ([`IdempotencyLayer`], [`CartRouter::idempotency_ttl`]): a repeat gets
/// the stored answer with `Idempotent-Replayed: true` and changes nothing. The contract is the
/// OpenAPI document the routes serve, explained in `docs/HTTP.md`.
///
/// The routes need a [`CartLayer`](crate::CartLayer) and a catalogue
/// ([`CartsBuilder::catalog`](crate::CartsBuilder::catalog)): prices always come from the
/// catalogue, never from the client.
///
/// See [`CartRouter`] to replace the page template or set the limits.
pub fn cart_router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    CartRouter::new().build()
}

/// Configures the cart routes, then [`build`](Self::build)s them.
///
/// ```
/// use axum::Router;
/// use axum_cart::{CartDetails, CartRouter};
///
/// let cart_routes: Router = CartRouter::new()
///     .template(|cart: &CartDetails| Ok(format!("<p>{} items</p>", cart.count)))
///     .build();
/// ```
///
/// What happens after a checkout (the app's order) is the [`Relay`](crate::Relay)'s
/// [`on_checkout`](crate::Relay::on_checkout) hook: it runs from the outbox, retried until it
/// succeeds, and never fails the checkout.
#[derive(Clone)]
#[must_use]
pub struct CartRouter {
    template: Option<TemplateFn>,
    body_limit: usize,
    same_site: crate::SameSiteLayer,
    limits: limit::DiscountLimits,
    idempotency: crate::IdempotencyLayer,
    document: openapi::Document,
}

impl Default for CartRouter {
    fn default() -> Self {
        CartRouter::new()
    }
}

impl fmt::Debug for CartRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CartRouter")
            .field("custom_template", &self.template.is_some())
            .field("body_limit", &self.body_limit)
            .field("same_site", &self.same_site)
            .field("discount_attempts", &self.limits)
            .field("idempotency", &self.idempotency)
            .finish()
    }
}

impl CartRouter {
    /// The default largest request body the cart routes read: 16 KiB.
    pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;

    /// The default routes: the bundled template, 16 KiB bodies.
    pub fn new() -> Self {
        CartRouter {
            template: None,
            body_limit: Self::DEFAULT_BODY_LIMIT,
            same_site: crate::SameSiteLayer::new(),
            limits: limit::DiscountLimits::default(),
            idempotency: crate::IdempotencyLayer::new(),
            document: openapi::Document::default(),
        }
    }

    /// The default discount code attempts a visitor may make a minute: 10.
    pub const DEFAULT_DISCOUNT_ATTEMPTS: u32 = 10;

    /// The default discount code attempts one client address may make a minute, for all
    /// the visitors behind it: 100.
    pub const DEFAULT_DISCOUNT_ATTEMPTS_PER_ADDRESS: u32 = 100;

    /// How many discount codes (`POST /cart/discount`) may be tried a minute: `per_visitor`
    /// by one visitor (its cart), `per_address` from one client address (default
    /// [`DEFAULT_DISCOUNT_ATTEMPTS`](Self::DEFAULT_DISCOUNT_ATTEMPTS) and
    /// [`DEFAULT_DISCOUNT_ATTEMPTS_PER_ADDRESS`](Self::DEFAULT_DISCOUNT_ATTEMPTS_PER_ADDRESS));
    /// 0 turns that limit off. Attempts over a limit get 429 `too_many_attempts` with
    /// `Retry-After`, and change nothing; the answers carry `RateLimit-Policy` and
    /// `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers) for the visitor's limit.
    ///
    /// The limits are [`governor`](https://docs.rs/governor) quotas that refill evenly over
    /// the minute, kept in memory by this router (per process). The client address is the
    /// peer address of [`ConnectInfo`](axum::extract::ConnectInfo) (serve the app with
    /// `into_make_service_with_connect_info::<SocketAddr>()`); without it only the
    /// visitor's limit applies. Behind a reverse proxy every request has the proxy's
    /// address: raise `per_address` or turn it off there.
    ///
    /// ```
    /// use axum_cart::CartRouter;
    /// // 5 a minute per visitor, no limit per address.
    /// let routes: axum::Router = CartRouter::new().discount_attempts(5, 0).build();
    /// ```
    pub fn discount_attempts(mut self, per_visitor: u32, per_address: u32) -> Self {
        self.limits = limit::DiscountLimits::new(per_visitor, per_address);
        self
    }

    /// The OpenAPI 3.1 document of the routes, as `GET /cart/openapi.json` serves it: to
    /// serve elsewhere, or to merge into the app's own document
    /// ([`OpenApi::merge`](utoipa::openapi::OpenApi::merge), or
    /// [`OpenApi::nest`](utoipa::openapi::OpenApi::nest) when the routes are nested under a
    /// prefix).
    ///
    /// ```
    /// use axum_cart::CartRouter;
    /// let doc = CartRouter::openapi();
    /// assert!(doc.paths.paths.contains_key("/cart/add/{kind}/{id}"));
    /// let json = doc.to_json().unwrap();
    /// assert!(json.contains("\"openapi\":\"3.1.0\""));
    /// ```
    pub fn openapi() -> utoipa::openapi::OpenApi {
        routes().into_openapi()
    }

    /// How the routes judge a browser's cross-site POST (refused with 403); default
    /// [`SameSiteLayer::new`](crate::SameSiteLayer::new), which also refuses a sibling
    /// subdomain (`Sec-Fetch-Site: same-site`).
    ///
    /// ```
    /// use axum_cart::{CartRouter, SameSiteLayer};
    /// // The shop posts from www.example.com to cart.example.com.
    /// let routes: axum::Router = CartRouter::new()
    ///     .same_site(SameSiteLayer::new().allow_same_site(true))
    ///     .build();
    /// ```
    pub fn same_site(mut self, policy: crate::SameSiteLayer) -> Self {
        self.same_site = policy;
        self
    }

    /// Replaces the HTML of `GET /cart`: `render` turns the cart into a page (typically
    /// with the app's own askama template). JSON requests are not affected.
    pub fn template<F>(mut self, render: F) -> Self
    where
        F: Fn(&CartDetails) -> Result<String, BoxError> + Send + Sync + 'static,
    {
        self.template = Some(Arc::new(render));
        self
    }

    /// How long the answer to a request with an `Idempotency-Key` is kept for its repeats:
    /// default [`IdempotencyLayer::DEFAULT_TTL`](crate::IdempotencyLayer::DEFAULT_TTL), 24
    /// hours. The keys of every change route are scoped to the visitor; a repeat within
    /// this time gets the stored answer with `Idempotent-Replayed: true` and changes
    /// nothing. Expired keys are forgotten at once and deleted by
    /// [`Carts::clean`](crate::Carts::clean) (`cart clean`). See `docs/HTTP.md`.
    ///
    /// ```
    /// use axum_cart::CartRouter;
    /// let routes: axum::Router = CartRouter::new()
    ///     .idempotency_ttl(time::Duration::hours(1))
    ///     .build();
    /// ```
    pub fn idempotency_ttl(mut self, ttl: time::Duration) -> Self {
        self.idempotency = self.idempotency.ttl(ttl);
        self
    }

    /// The largest request body read, the routes' [`DefaultBodyLimit`] (default
    /// [`DEFAULT_BODY_LIMIT`](Self::DEFAULT_BODY_LIMIT)); larger ones get 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The router, to merge into the app (`.merge(…)`) or nest under a prefix. When it is
    /// mounted elsewhere than `/cart`, set [`CartsBuilder::cart_url`](crate::CartsBuilder::cart_url)
    /// to the page's path, so links and redirects point there.
    pub fn build<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let same_site = self.same_site;
        let body_limit = DefaultBodyLimit::max(self.body_limit);
        let idempotency = self.idempotency.clone();
        let (router, doc) = routes().split_for_parts();
        let settings = CartRouter {
            document: openapi::Document::new(&doc),
            ..self
        };
        router
            // Inside the body limit (which it reads the body within), on the routes only.
            .route_layer(idempotency)
            .layer(body_limit)
            .with_state(Arc::new(settings))
            // Before anything is read: a forged request from another site changes nothing.
            .layer(same_site)
    }
}

/// Every cart route with its handler and its entry in the OpenAPI document: a route is
/// only added here, and `routes!` takes both from the handler's `#[utoipa::path]`.
fn routes() -> OpenApiRouter<Settings> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(only(routes!(page::show)))
        .routes(only(routes!(lines::add)))
        .routes(only(routes!(lines::update)))
        .routes(only(routes!(lines::remove)))
        .routes(only(routes!(lines::update_line)))
        .routes(only(routes!(lines::remove_line)))
        .routes(only(routes!(actions::clear)))
        .routes(only(routes!(actions::freeze)))
        .routes(only(routes!(actions::unfreeze)))
        .routes(only(routes!(actions::apply_discount)))
        .routes(only(routes!(actions::remove_discount)))
        .routes(only(routes!(actions::checkout)))
        .routes(only(routes!(page::shipping_options)))
        .routes(only(routes!(openapi::document)))
}

/// A route answers only its method (others get the cart's 405); a change route gets what
/// every change shares in the document (`openapi::change_route`).
fn only(
    (schemas, mut paths, method_router): UtoipaMethodRouter<Settings>,
) -> UtoipaMethodRouter<Settings> {
    openapi::change_route(&mut paths);
    (schemas, paths, method_router.fallback(method_not_allowed))
}

/// The routes' state: the router's settings.
type Settings = Arc<CartRouter>;

/// The framework's refusal of a method, in the client's format (axum adds `Allow`).
async fn method_not_allowed(reply: Reply, method: Method) -> ErrorResponse {
    reply.error(Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("Method {method} is not allowed here."),
    ))
}

/// What every cart route answers with.
type Answer = Result<Response, ErrorResponse>;

/// A request to the cart routes: how to answer it and the visitor's cart. Without a
/// [`CartLayer`](crate::CartLayer), a 500 `missing_cart_layer` in the client's format.
struct CartRequest {
    reply: Reply,
    ctx: CartContext,
    /// `If-Match` / `If-None-Match` (`conditional.rs`).
    pre: conditional::Preconditions,
}

impl<S: Send + Sync> FromRequestParts<S> for CartRequest {
    type Rejection = ErrorResponse;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let reply = Reply::of(&parts.headers, &parts.extensions);
        let pre = conditional::Preconditions::of(&parts.method, &parts.headers);
        match context(parts) {
            Ok(ctx) => Ok(CartRequest { reply, ctx, pre }),
            Err(rejection) => Err(reply.error(rejection)),
        }
    }
}

impl CartRequest {
    /// Runs a route's work, answering its error in the client's format (a stale `If-Match`
    /// with the current cart).
    async fn answer(&self, work: impl Future<Output = Result<Response, Problem>>) -> Answer {
        match work.await {
            Ok(res) => Ok(res),
            Err(problem) => Err(self
                .reply
                .error(conditional::with_current_cart(self, problem).await)),
        }
    }

    /// Opens the visitor's cart, makes a change, and answers like every change does. The
    /// repeat of a keyed request whose change was applied by a request that stopped before
    /// it answered (`idempotency.rs`) makes no change: it answers with the cart as it is.
    async fn change(&self, change: impl AsyncFnOnce(&mut Cart) -> Result<(), Problem>) -> Answer {
        self.answer(async {
            let mut cart = self.open().await?;
            if !self.ctx.key.as_ref().is_some_and(|k| k.recovering) {
                change(&mut cart).await?;
            }
            self.changed(&cart).await
        })
        .await
    }

    /// The visitor's cart (no query yet), its changes conditional on the `If-Match` sent.
    async fn open(&self) -> Result<Cart, Problem> {
        let mut cart = self.ctx.open().await?;
        self.pre.apply(&mut cart)?;
        Ok(cart)
    }

    /// The answer of a successful change: back to the page, or the cart as JSON (with its
    /// `ETag`).
    async fn changed(&self, cart: &Cart) -> Result<Response, Problem> {
        match self.reply.format {
            Format::Html => Ok(see_other(&self.reply.cart_url)),
            Format::Json => {
                let res = json_response(&CartDetails::load(cart).await?);
                Ok(conditional::tagged(res, cart).await?)
            }
        }
    }
}

/// The `{kind}/{id}` of a product route as sent; the handler checks them. A path that does
/// not decode (not UTF-8) names no product: 404 `product_not_found` on add
/// (`IN_CART == false`), `item_does_not_exist` on update and remove.
struct ProductPath<const IN_CART: bool> {
    kind: String,
    id: String,
}

impl<S: Send + Sync, const IN_CART: bool> FromRequestParts<S> for ProductPath<IN_CART> {
    type Rejection = ErrorResponse;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<(String, String)>::from_request_parts(parts, state).await {
            Ok(Path((kind, id))) => Ok(ProductPath { kind, id }),
            Err(_) => Err(
                Reply::of(&parts.headers, &parts.extensions).error(if IN_CART {
                    Problem::new(
                        StatusCode::NOT_FOUND,
                        "item_does_not_exist",
                        "That product is not in this cart.",
                    )
                } else {
                    Problem::new(
                        StatusCode::NOT_FOUND,
                        "product_not_found",
                        "No such product.",
                    )
                }),
            ),
        }
    }
}

/// The `{line}` of a line route: a [`LineKey`](crate::LineKey) as the JSON items carry it.
/// A key that does not parse names no line: 404 `item_does_not_exist`.
struct LinePath(String);

impl LinePath {
    fn key(&self) -> Result<crate::LineKey, Problem> {
        crate::LineKey::parse(&self.0).map_err(|_| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "item_does_not_exist",
                format!(
                    "Line {} is not in this cart.",
                    crate::http::body::shown(&self.0)
                ),
            )
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for LinePath {
    type Rejection = ErrorResponse;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(line)) => Ok(LinePath(line)),
            Err(_) => Err(
                Reply::of(&parts.headers, &parts.extensions).error(Problem::new(
                    StatusCode::NOT_FOUND,
                    "item_does_not_exist",
                    "That line is not in this cart.",
                )),
            ),
        }
    }
}
