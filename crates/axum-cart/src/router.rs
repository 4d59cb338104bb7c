//! [`cart_router`]: the cart page and its actions, ready to mount.
//!
//! | Route | What it does |
//! |---|---|
//! | `GET /cart` | the cart page (HTML, or the cart as JSON) |
//! | `POST /cart/add/{kind}/{id}` | adds `quantity` (default 1) at the catalogue price |
//! | `POST /cart/update/{kind}/{id}` | sets the quantity (0 removes) |
//! | `POST /cart/remove/{kind}/{id}` | removes the line |
//! | `POST /cart/clear` | removes every line |
//! | `POST /cart/discount` | applies the discount `code` |
//! | `POST /cart/discount/remove` | removes the discount |
//! | `POST /cart/checkout` | checks out and calls the app's checkout hook |
//! | `GET /cart/shipping-options` | the shipping choices |
//!
//! HTML requests are answered with `303 See Other` back to the cart page, JSON requests
//! (`Accept: application/json`) with the cart as JSON. Errors are a JSON
//! `{"error": …, "code": …}` or a small HTML page, with the status of
//! [`CartError::status`]. The full contract is in `docs/HTTP.md`.
//!
//! The routes need a [`CartLayer`](crate::CartLayer) and a catalogue
//! ([`CartsBuilder::catalog`](crate::CartsBuilder::catalog)): prices always come from the
//! catalogue, never from the client.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, Request};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{RequestPartsExt, Router};
use http_body_util::BodyExt;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::error::{BoxError, CartError};
use crate::extract::{context, CartRejection, MISSING_LAYER};
use crate::filters::{escape_html, CartBadge};
use crate::layer::CartContext;
use crate::product::{parse_plain_int, Product, ProductRef};
use crate::{AddOptions, Cart, Carts, Order};

/// The default largest request body the cart routes read: 16 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;

type CheckoutHook =
    Arc<dyn Fn(Order) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>> + Send + Sync>;
type TemplateFn = Arc<dyn Fn(&CartDetails) -> Result<String, BoxError> + Send + Sync>;

/// The cart routes with their default settings: `Router::new().merge(cart_router())`.
///
/// See [`CartRouter`] to add a checkout hook or replace the page template.
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
/// use axum_cart::{CartDetails, CartRouter, Order};
///
/// let cart_routes: Router = CartRouter::new()
///     .on_checkout(|order: Order| async move {
///         // Create the app's order from `order.lines` and `order.totals`, keyed on
///         // `order.cart_id` so it is created once.
///         println!("order of {} items", order.totals.count);
///         Ok(())
///     })
///     .template(|cart: &CartDetails| Ok(format!("<p>{} items</p>", cart.count)))
///     .build();
/// ```
#[derive(Clone)]
#[must_use]
pub struct CartRouter {
    hook: Option<CheckoutHook>,
    template: Option<TemplateFn>,
    body_limit: usize,
    same_site: crate::SameSiteLayer,
}

impl Default for CartRouter {
    fn default() -> Self {
        CartRouter::new()
    }
}

impl fmt::Debug for CartRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CartRouter")
            .field("checkout_hook", &self.hook.is_some())
            .field("custom_template", &self.template.is_some())
            .field("body_limit", &self.body_limit)
            .field("same_site", &self.same_site)
            .finish()
    }
}

impl CartRouter {
    /// The default routes: no checkout hook, the bundled template, 16 KiB bodies.
    pub fn new() -> Self {
        CartRouter {
            hook: None,
            template: None,
            body_limit: DEFAULT_BODY_LIMIT,
            same_site: crate::SameSiteLayer::new(),
        }
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

    /// Runs `hook` after a checkout went through, with the [`Order`] returned by
    /// [`Cart::checkout`] (lines and figures as checked out). It runs once per cart: a
    /// repeated checkout of the same cart (`placed_now == false`) does not call it.
    ///
    /// The cart is already checked out when the hook runs; if the hook fails, the client
    /// gets a 500 and the failure is logged, so make the hook reliable (or queue the work).
    pub fn on_checkout<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Order) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.hook = Some(Arc::new(move |order| Box::pin(hook(order))));
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

    /// The largest request body read (default [`DEFAULT_BODY_LIMIT`]); larger ones get 413.
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
        let settings = Arc::new(self);
        let action = |action: Action| -> MethodRouter<S> {
            let settings = settings.clone();
            post(move |req: Request| {
                let settings = settings.clone();
                async move { run(settings, action, req).await }
            })
            .fallback(method_not_allowed)
        };
        let page = {
            let settings = settings.clone();
            get(move |req: Request| {
                let settings = settings.clone();
                async move { cart_page(settings, req).await }
            })
            .fallback(method_not_allowed)
        };
        let same_site = settings.same_site;
        Router::new()
            .route("/cart", page)
            .route("/cart/add/{kind}/{id}", action(Action::Add))
            .route("/cart/update/{kind}/{id}", action(Action::Update))
            .route("/cart/remove/{kind}/{id}", action(Action::Remove))
            .route("/cart/clear", action(Action::Clear))
            .route("/cart/discount", action(Action::ApplyDiscount))
            .route("/cart/discount/remove", action(Action::RemoveDiscount))
            .route("/cart/checkout", action(Action::Checkout))
            .route(
                "/cart/shipping-options",
                get(shipping_options).fallback(method_not_allowed),
            )
            // Before anything is read: a forged request from another site changes nothing.
            .layer(same_site)
    }
}

// ---- the cart as data ------------------------------------------------------------------

/// One line of [`CartDetails`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CartItem {
    /// The product kind.
    pub kind: String,
    /// The product id.
    pub id: i64,
    /// The product's name from the catalogue (`"kind #id"` if it is gone).
    pub name: String,
    /// Units.
    pub quantity: i64,
    /// Price of one unit.
    #[serde(with = "rust_decimal::serde::str")]
    pub unit_price: Decimal,
    /// quantity × unit_price.
    #[serde(with = "rust_decimal::serde::str")]
    pub total_price: Decimal,
}

/// Everything the cart page shows: the JSON body of the cart routes, and what a
/// replacement template receives. Money is serialised as strings with two decimals.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct CartDetails {
    /// Total units.
    pub count: i64,
    /// Distinct products.
    pub unique_count: usize,
    /// Whether there are no lines.
    pub is_empty: bool,
    /// Whether the cart has been checked out.
    pub checked_out: bool,
    /// The lines, in the order they were added.
    pub items: Vec<CartItem>,
    /// Σ quantity × unit_price.
    #[serde(with = "rust_decimal::serde::str")]
    pub subtotal: Decimal,
    /// The applied discount code.
    pub discount_code: Option<String>,
    /// What the discount takes off.
    #[serde(with = "rust_decimal::serde::str")]
    pub discount: Decimal,
    /// Tax.
    #[serde(with = "rust_decimal::serde::str")]
    pub tax: Decimal,
    /// Shipping.
    #[serde(with = "rust_decimal::serde::str")]
    pub shipping: Decimal,
    /// subtotal − discount + tax + shipping.
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    /// The configured currency symbol (not serialised).
    #[serde(skip)]
    pub currency_symbol: String,
    /// The cart page's path, without a trailing slash; the actions are below it, e.g.
    /// `{cart_url}/checkout` (not serialised).
    #[serde(skip)]
    pub cart_url: String,
}

impl CartDetails {
    /// Reads a cart's figures and lines (with product names from the catalogue).
    pub async fn load(cart: &Cart) -> Result<CartDetails, CartError> {
        let totals = cart.totals().await?;
        let lines = cart.items_with_products().await?;
        let config = cart.carts().config();
        let items = lines
            .iter()
            .map(|l| CartItem {
                kind: l.line.product.kind().to_owned(),
                id: l.line.product.id(),
                name: l.name(),
                quantity: l.line.quantity,
                unit_price: l.line.unit_price,
                total_price: l.line.total_price(),
            })
            .collect::<Vec<_>>();
        Ok(CartDetails {
            count: totals.count,
            unique_count: totals.unique_count,
            is_empty: items.is_empty(),
            checked_out: totals.checked_out,
            items,
            subtotal: totals.subtotal,
            discount_code: totals.discount_code,
            discount: totals.discount,
            tax: totals.tax,
            shipping: totals.shipping,
            total: totals.total,
            currency_symbol: config.currency_symbol.clone(),
            cart_url: page_url(cart.carts()),
        })
    }

    /// The header badge of this cart (a checked-out cart shows as empty).
    pub fn badge(&self) -> CartBadge {
        let (count, subtotal) = if self.checked_out {
            (0, Decimal::ZERO)
        } else {
            (self.count, self.subtotal)
        };
        CartBadge::new(
            count,
            subtotal,
            self.currency_symbol.clone(),
            self.cart_url.clone(),
        )
    }
}

/// The bundled page: `templates/cart.html`.
#[derive(Template)]
#[template(path = "cart.html")]
struct CartPage<'a> {
    cart: &'a CartDetails,
}

/// The cart page's path: the configured URL without its trailing slash.
fn page_url(carts: &Carts) -> String {
    crate::config::normal_cart_url(&carts.config().cart_url)
}

// ---- responses -------------------------------------------------------------------------

/// Whether the client wants JSON or HTML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Html,
    Json,
}

impl Format {
    /// JSON when `Accept` names JSON; HTML when it names HTML; otherwise the format of the
    /// request body; otherwise HTML.
    fn of(headers: &HeaderMap) -> Format {
        let text = |name| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(",")
                .to_ascii_lowercase()
        };
        let accept = text(header::ACCEPT);
        if accept.contains("application/json") || accept.contains("+json") {
            return Format::Json;
        }
        if accept.contains("text/html") {
            return Format::Html;
        }
        let content_type = text(header::CONTENT_TYPE);
        if content_type.starts_with("application/json") {
            Format::Json
        } else {
            Format::Html
        }
    }
}

/// An error answer: status, stable code, message for the client.
#[derive(Debug)]
struct HttpError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl HttpError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        HttpError {
            status,
            code,
            message: message.into(),
        }
    }

    fn render(self, format: Format, cart_url: &str) -> Response {
        let mut res = match format {
            Format::Json => (
                self.status,
                axum::Json(serde_json::json!({ "error": self.message, "code": self.code })),
            )
                .into_response(),
            Format::Html => {
                let reason = self.status.canonical_reason().unwrap_or("Error");
                let page = format!(
                    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
                     <title>{status} {reason}</title>\n</head>\n<body>\n<main class=\"cart-error\">\n\
                     <h1>{reason}</h1>\n<p>{message}</p>\n<p><a href=\"{url}\">Back to your cart</a></p>\n\
                     </main>\n</body>\n</html>\n",
                    status = self.status.as_u16(),
                    message = escape_html(&self.message),
                    url = escape_html(cart_url),
                );
                (self.status, axum::response::Html(page)).into_response()
            }
        };
        no_store(&mut res);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        res
    }
}

/// What a 503 tells the client to wait before trying again, in seconds.
const RETRY_AFTER_SECS: &str = "5";

impl From<CartError> for HttpError {
    fn from(err: CartError) -> Self {
        let status = err.status();
        let message = if status.is_server_error() {
            tracing::error!(error = %err, code = err.code(), "cart request failed");
            match &err {
                CartError::Unavailable(_) | CartError::SessionUnavailable(_) => {
                    "The cart is temporarily unavailable. Please try again in a moment.".to_owned()
                }
                // Set-up errors of the layer name what is missing.
                CartError::Session(_) => err.to_string(),
                _ => "Something went wrong with the cart. Please try again later.".to_owned(),
            }
        } else {
            err.to_string()
        };
        HttpError::new(status, err.code(), message)
    }
}

impl From<CartRejection> for HttpError {
    fn from(rejection: CartRejection) -> Self {
        match rejection {
            CartRejection::MissingCartLayer => {
                tracing::error!("{MISSING_LAYER}");
                HttpError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "missing_cart_layer",
                    MISSING_LAYER,
                )
            }
            CartRejection::Cart(e) => e.into(),
        }
    }
}

/// A [`CartError`] as an answer of the app's own handlers: its [`status`](CartError::status)
/// with a JSON body `{"error": message, "code": snake_case}`. Server-side failures (500,
/// 503) are logged and answered with a generic message.
impl IntoResponse for CartError {
    fn into_response(self) -> Response {
        HttpError::from(self).render(Format::Json, "/cart")
    }
}

fn no_store(res: &mut Response) {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn see_other(url: &str) -> Response {
    let location = HeaderValue::from_str(url).unwrap_or_else(|_| HeaderValue::from_static("/cart"));
    let mut res = StatusCode::SEE_OTHER.into_response();
    res.headers_mut().insert(header::LOCATION, location);
    no_store(&mut res);
    res
}

fn json_response<T: serde::Serialize>(body: &T) -> Response {
    let mut res = axum::Json(body).into_response();
    no_store(&mut res);
    res
}

fn html_response(page: String) -> Response {
    let mut res = axum::response::Html(page).into_response();
    no_store(&mut res);
    res
}

/// The answer of a successful change: back to the page, or the cart as JSON.
async fn changed(format: Format, cart: &Cart, cart_url: &str) -> Result<Response, HttpError> {
    match format {
        Format::Html => Ok(see_other(cart_url)),
        Format::Json => Ok(json_response(&CartDetails::load(cart).await?)),
    }
}

/// The URL of the cart page, for links in answers, when the layer is there.
fn url_of(parts: &Parts) -> String {
    context(parts)
        .map(|ctx| page_url(&ctx.carts))
        .unwrap_or_else(|_| "/cart".to_owned())
}

/// The framework's refusal of a method, in the client's format.
async fn method_not_allowed(req: Request) -> Response {
    let (parts, _) = req.into_parts();
    HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("Method {} is not allowed here.", parts.method),
    )
    .render(Format::of(&parts.headers), &url_of(&parts))
}

// ---- cross-site requests ---------------------------------------------------------------

/// Whether a browser says this request comes from another site, by the strict default of
/// [`SameSiteLayer`](crate::SameSiteLayer).
pub(crate) fn cross_site(headers: &HeaderMap, uri: &axum::http::Uri) -> bool {
    crate::same_site::SameSiteLayer::new().is_cross_site(headers, uri)
}

/// An error answer for a request head, in the client's format.
pub(crate) fn refusal(
    parts: &Parts,
    status: StatusCode,
    code: &'static str,
    message: &str,
) -> Response {
    HttpError::new(status, code, message).render(Format::of(&parts.headers), &url_of(parts))
}

// ---- request bodies --------------------------------------------------------------------

/// The fields of a request body.
enum Fields {
    Empty,
    Form(Vec<(String, String)>),
    Json(serde_json::Map<String, Value>),
}

async fn read_fields(headers: &HeaderMap, body: Body, limit: usize) -> Result<Fields, HttpError> {
    let too_large = || {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The request body is larger than {limit} bytes."),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(too_large())
        }
        Err(_) => {
            return Err(HttpError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "The request body could not be read.",
            ))
        }
    };
    if bytes.is_empty() {
        return Ok(Fields::Empty);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match content_type.as_str() {
        "application/x-www-form-urlencoded" => serde_urlencoded::from_bytes(&bytes)
            .map(Fields::Form)
            .map_err(|_| {
                HttpError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_form",
                    "The form data could not be read.",
                )
            }),
        t if t == "application/json" || (t.starts_with("application/") && t.ends_with("+json")) => {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => Ok(Fields::Json(map)),
                Ok(_) => Err(HttpError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    "The JSON body must be an object, such as {\"quantity\": 2}.",
                )),
                Err(e) => Err(HttpError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    format!("The body is not valid JSON: {e}."),
                )),
            }
        }
        _ => Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as application/x-www-form-urlencoded or application/json.",
        )),
    }
}

fn shown(text: &str) -> String {
    text.chars().take(60).collect()
}

fn bad_quantity(message: impl Into<String>) -> HttpError {
    HttpError::new(StatusCode::BAD_REQUEST, "invalid_quantity", message)
}

/// A quantity as typed: an optional `-` and ASCII digits (surrounding spaces allowed).
/// Out-of-range values saturate, so the cart reports them against its limits.
fn parse_quantity(text: &str) -> Result<i64, HttpError> {
    let t = text.trim();
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_quantity(format!(
            "Quantity must be a whole number, got {:?}.",
            shown(text)
        )));
    }
    let value = digits.parse::<i64>().unwrap_or(i64::MAX);
    Ok(if negative { -value } else { value })
}

impl Fields {
    fn value(&self, name: &str) -> Option<Result<String, &'static str>> {
        match self {
            Fields::Empty => None,
            Fields::Form(pairs) => pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| Ok(v.clone())),
            Fields::Json(map) => match map.get(name)? {
                Value::Null => None,
                Value::String(s) => Some(Ok(s.clone())),
                _ => Some(Err("not a string")),
            },
        }
    }

    /// The `quantity` field, if given.
    fn quantity(&self) -> Result<Option<i64>, HttpError> {
        if let Fields::Json(map) = self {
            match map.get("quantity") {
                None | Some(Value::Null) => return Ok(None),
                Some(Value::Number(n)) => {
                    if let Some(q) = n.as_i64() {
                        return Ok(Some(q));
                    }
                    if n.as_u64().is_some() {
                        return Ok(Some(i64::MAX));
                    }
                    return match n.as_f64() {
                        // `2.0` is 2; out-of-range values saturate (`as` does).
                        Some(f) if f.fract() == 0.0 && f.is_finite() => Ok(Some(f as i64)),
                        _ => Err(bad_quantity(format!(
                            "Quantity must be a whole number, got {n}."
                        ))),
                    };
                }
                Some(Value::String(s)) => return parse_quantity(s).map(Some),
                Some(other) => {
                    return Err(bad_quantity(format!(
                        "Quantity must be a whole number, got {}.",
                        shown(&other.to_string())
                    )))
                }
            }
        }
        match self.value("quantity") {
            None => Ok(None),
            Some(Ok(text)) => parse_quantity(&text).map(Some),
            Some(Err(_)) => Err(bad_quantity("Quantity must be a whole number.")),
        }
    }
}

// ---- products --------------------------------------------------------------------------

/// A product reference from the path, or the 404 an unknown product gets.
fn path_ref(
    kind: &str,
    id: &str,
    code: &'static str,
    message: &str,
) -> Result<ProductRef, HttpError> {
    let not_found = || {
        HttpError::new(
            StatusCode::NOT_FOUND,
            code,
            format!("Product {}:{} {message}", shown(kind), shown(id)),
        )
    };
    let id = parse_plain_int(id).ok_or_else(not_found)?;
    ProductRef::new(kind, id).map_err(|_| not_found())
}

/// The catalogue's product, or 404.
async fn find_product(carts: &Carts, product: &ProductRef) -> Result<Arc<dyn Product>, HttpError> {
    if carts.config().catalog().is_none() {
        tracing::warn!("cart_router: no catalogue is configured, so no product can be added");
    }
    catalog_product(carts, product)
        .await?
        .ok_or_else(|| CartError::ProductNotFound(product.clone()).into())
}

/// The catalogue's product with this kind and id, if there is a catalogue and it has one.
async fn catalog_product(
    carts: &Carts,
    product: &ProductRef,
) -> Result<Option<Arc<dyn Product>>, CartError> {
    let Some(catalog) = carts.config().catalog() else {
        return Ok(None);
    };
    let found = catalog
        .products(product.kind(), &[product.id()])
        .await
        .map_err(|e| CartError::plugin("catalogue", e))?;
    Ok(found
        .into_iter()
        .find(|p| p.kind() == product.kind() && p.id() == product.id()))
}

// ---- handlers --------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Add,
    Update,
    Remove,
    Clear,
    ApplyDiscount,
    RemoveDiscount,
    Checkout,
}

async fn run(settings: Arc<CartRouter>, action: Action, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let format = Format::of(&parts.headers);
    let cart_url = url_of(&parts);
    match change(&settings, action, &mut parts, body, format, &cart_url).await {
        Ok(res) => res,
        Err(e) => e.render(format, &cart_url),
    }
}

async fn change(
    settings: &CartRouter,
    action: Action,
    parts: &mut Parts,
    body: Body,
    format: Format,
    cart_url: &str,
) -> Result<Response, HttpError> {
    let ctx: CartContext = context(parts)?;
    let product = match action {
        Action::Add | Action::Update | Action::Remove => {
            // A path that does not decode (not UTF-8) names no product: the same 404 as
            // any other unknown product of this action.
            let Path((kind, id)) =
                parts
                    .extract::<Path<(String, String)>>()
                    .await
                    .map_err(|_| match action {
                        Action::Add => HttpError::new(
                            StatusCode::NOT_FOUND,
                            "product_not_found",
                            "No such product.",
                        ),
                        _ => HttpError::new(
                            StatusCode::NOT_FOUND,
                            "item_does_not_exist",
                            "That product is not in this cart.",
                        ),
                    })?;
            Some((kind, id))
        }
        _ => None,
    };
    let fields = read_fields(&parts.headers, body, settings.body_limit).await?;
    let mut cart = ctx.open().await?;
    match (action, product) {
        (Action::Add, Some((kind, id))) => {
            let quantity = fields.quantity()?.unwrap_or(1);
            let pref = path_ref(&kind, &id, "product_not_found", "does not exist.")?;
            let product = find_product(&ctx.carts, &pref).await?;
            let Some(price) = product.price() else {
                return Err(HttpError::new(
                    StatusCode::NOT_FOUND,
                    "product_not_found",
                    format!("Product {pref} has no price and cannot be added."),
                ));
            };
            // The catalogue's own product goes to the inventory checker, so it can downcast
            // it to the app's type; with no checker configured nothing is asked.
            let options = AddOptions::new().check_inventory();
            cart.add_with(product.as_ref(), price, quantity, options)
                .await?;
        }
        (Action::Update, Some((kind, id))) => {
            let quantity = fields
                .quantity()?
                .ok_or_else(|| bad_quantity("Quantity is required."))?;
            let pref = path_ref(&kind, &id, "item_does_not_exist", "is not in this cart.")?;
            // The stock checker gets the catalogue's own product, as on add; a product the
            // catalogue no longer has can still be changed (or removed with 0).
            let product = catalog_product(&ctx.carts, &pref).await?;
            let asked: &dyn Product = match &product {
                Some(p) => p.as_ref(),
                None => &pref,
            };
            cart.update_with(asked, quantity, None, AddOptions::new().check_inventory())
                .await?;
        }
        (Action::Remove, Some((kind, id))) => {
            let pref = path_ref(&kind, &id, "item_does_not_exist", "is not in this cart.")?;
            cart.remove(&pref).await?;
        }
        (Action::Clear, _) => cart.clear().await?,
        (Action::ApplyDiscount, _) => {
            let code = match fields.value("code") {
                Some(Ok(code)) if !code.trim().is_empty() => code,
                Some(Err(_)) => {
                    return Err(HttpError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_discount",
                        "The discount code must be a string.",
                    ))
                }
                _ => {
                    return Err(HttpError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_discount",
                        "Enter a discount code.",
                    ))
                }
            };
            cart.apply_discount(&code).await?;
        }
        (Action::RemoveDiscount, _) => cart.remove_discount().await?,
        (Action::Checkout, _) => return checkout(settings, cart, format, cart_url).await,
        (Action::Add | Action::Update | Action::Remove, None) => {
            return Err(HttpError::new(
                StatusCode::NOT_FOUND,
                "product_not_found",
                "No such product.",
            ))
        }
    }
    changed(format, &cart, cart_url).await
}

async fn checkout(
    settings: &CartRouter,
    mut cart: Cart,
    format: Format,
    cart_url: &str,
) -> Result<Response, HttpError> {
    let order = cart.checkout().await?;
    if order.placed_now {
        if let Some(hook) = &settings.hook {
            hook(order.clone())
                .await
                .map_err(|e| CartError::plugin("checkout hook", e))?;
        }
    }
    // The session keeps naming the placed order: its next change starts a fresh cart, and a
    // repeated checkout (a double submit, a retry after a lost response) gets this order.
    changed(format, &cart, cart_url).await
}

async fn cart_page(settings: Arc<CartRouter>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let format = Format::of(&parts.headers);
    let cart_url = url_of(&parts);
    let result = async {
        let ctx = context(&parts)?;
        let cart = ctx.open().await?;
        let details = CartDetails::load(&cart).await?;
        Ok::<_, HttpError>(match format {
            Format::Json => json_response(&details),
            Format::Html => {
                let page = match &settings.template {
                    Some(render) => render(&details),
                    None => CartPage { cart: &details }.render().map_err(BoxError::from),
                }
                .map_err(|e| CartError::plugin("cart template", e))?;
                html_response(page)
            }
        })
    }
    .await;
    result.unwrap_or_else(|e| e.render(format, &cart_url))
}

async fn shipping_options(req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let format = Format::of(&parts.headers);
    let cart_url = url_of(&parts);
    let result = async {
        let ctx = context(&parts)?;
        let cart = ctx.open().await?;
        let options = cart.shipping_options().await?;
        Ok::<_, HttpError>(match format {
            Format::Json => json_response(&serde_json::json!({ "options": options })),
            Format::Html => {
                let symbol = &ctx.carts.config().currency_symbol;
                let rows: String = options
                    .iter()
                    .map(|o| {
                        format!(
                            "<tr><td>{}</td><td>{}</td></tr>\n",
                            escape_html(&o.name),
                            escape_html(&crate::money::format(symbol, o.price))
                        )
                    })
                    .collect();
                html_response(format!(
                    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
                     <title>Shipping options</title>\n</head>\n<body>\n<main class=\"cart-shipping\">\n\
                     <h1>Shipping options</h1>\n<table>\n<tr><th>Option</th><th>Price</th></tr>\n{rows}</table>\n\
                     <p><a href=\"{url}\">Back to your cart</a></p>\n</main>\n</body>\n</html>\n",
                    url = escape_html(&cart_url),
                ))
            }
        })
    }
    .await;
    result.unwrap_or_else(|e| e.render(format, &cart_url))
}
