//! Content negotiation and error rendering: the one place that decides between HTML and
//! JSON, and the one shape of an error answer ([`ErrorResponse`]).

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::http::layer::CartContext;
use crate::CartError;

/// What a 503 tells the client to wait before trying again, in seconds.
const RETRY_AFTER_SECS: u64 = 5;

/// The status an HTTP answer gives a [`CartError`]: 400 for malformed input, 404 for an
/// unknown product or line, 409 for a conflict with the cart's state (stock, checked out),
/// 412 for a change conditional on another version of the cart (`If-Match`), 422 for a
/// refused discount or checkout, 503 when the database or session store is unavailable or
/// busy, 500 otherwise.
///
/// The bundled routes, [`ErrorResponse`] and `CartError`'s own `IntoResponse` answer with
/// it; an app rendering its own error page uses it too.
///
/// ```
/// use axum::http::StatusCode;
/// use axum_cart::{http_status, CartError};
///
/// assert_eq!(http_status(&CartError::EmptyCart), StatusCode::UNPROCESSABLE_ENTITY);
/// ```
pub fn http_status(err: &CartError) -> StatusCode {
    match err {
        CartError::InvalidQuantity(_)
        | CartError::InvalidPrice(_)
        | CartError::InvalidProduct(_)
        | CartError::PriceMismatch { .. }
        | CartError::InvalidOptions(_)
        | CartError::QuantityRule { .. }
        | CartError::InvalidPayload(_)
        | CartError::MergeIntoSelf => StatusCode::BAD_REQUEST,
        CartError::ItemDoesNotExist(_) | CartError::ProductNotFound(_) => StatusCode::NOT_FOUND,
        CartError::InsufficientStock { .. }
        | CartError::CheckedOut
        | CartError::CartFrozen
        | CartError::IdempotencyKeyInFlight
        | CartError::PricesChanged(_)
        | CartError::ProductUnavailable(_) => StatusCode::CONFLICT,
        CartError::InvalidDiscount(_)
        | CartError::MinimumOrderNotMet { .. }
        | CartError::TooManyLines { .. }
        | CartError::EmptyCart => StatusCode::UNPROCESSABLE_ENTITY,
        CartError::VersionMismatch { .. } => StatusCode::PRECONDITION_FAILED,
        CartError::Unavailable(_)
        | CartError::SessionUnavailable(_)
        | CartError::Contention { .. } => StatusCode::SERVICE_UNAVAILABLE,
        CartError::Session(_)
        | CartError::Plugin { .. }
        | CartError::Database(_)
        | CartError::UnsupportedDatabase(_)
        | CartError::Migrate(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Whether the client wants JSON or HTML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Html,
    Json,
}

impl Format {
    /// JSON when `Accept` names JSON; HTML when it names HTML; otherwise the format of the
    /// request body; otherwise HTML.
    pub(crate) fn of(headers: &HeaderMap) -> Format {
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
        if text(header::CONTENT_TYPE).starts_with("application/json") {
            Format::Json
        } else {
            Format::Html
        }
    }
}

/// Where the problem types are described: `type` is this followed by the code.
pub(crate) const PROBLEM_TYPE_BASE: &str =
    "https://github.com/axum-cart/axum-cart/blob/main/docs/PROBLEMS.md#";

/// The short, stable summary of a problem type: its code as words, e.g. `invalid_quantity`
/// is "Invalid quantity".
pub(crate) fn problem_title(code: &str) -> String {
    let mut title = String::with_capacity(code.len());
    for (i, c) in code.chars().enumerate() {
        match c {
            '_' => title.push(' '),
            c if i == 0 => title.push(c.to_ascii_uppercase()),
            c => title.push(c),
        }
    }
    title
}

/// A cart error answer in the client's format. A client that asked for JSON (or sent it)
/// gets an RFC 9457 problem: `application/problem+json` with
///
/// - `type`: a stable URI per code (`…/docs/PROBLEMS.md#invalid_quantity`),
/// - `title`: the code in words ("Invalid quantity"), `status`, and `detail`: the message,
/// - `code` and `error`: the snake_case code and the message again, as earlier versions
///   answered them,
/// - and, where they apply, `changes` (`prices_changed`), `products`
///   (`product_unavailable`) and `cart`: the visitor's cart as `GET /cart` shows it, on
///   every 409 and 412 of the cart routes, so a client can show what is in the way.
///
/// Any other client gets a small HTML page with the message and a link back to the cart.
/// The answer carries `Cache-Control: no-store`, every 503 `Retry-After: 5` and every 429
/// the wait. For a server-side failure (500, 503) the message is generic and the error is
/// logged through `tracing`.
///
/// It is what the bundled routes answer and what [`Quantity`](crate::Quantity) rejects
/// with; an app's own handlers build one from the request headers:
///
/// ```
/// use axum::http::HeaderMap;
/// use axum::response::Redirect;
/// use axum_cart::{Cart, ErrorResponse};
///
/// async fn empty_the_cart(headers: HeaderMap, mut cart: Cart) -> Result<Redirect, ErrorResponse> {
///     cart.clear().await.map_err(|e| ErrorResponse::new(&headers, e))?;
///     Ok(Redirect::to("/cart"))
/// }
/// ```
#[derive(Debug)]
#[must_use]
pub struct ErrorResponse {
    problem: Problem,
    format: Format,
    cart_url: String,
}

impl ErrorResponse {
    /// The answer to `error` for a request with these headers; the HTML page links to
    /// `/cart` (see [`cart_url`](Self::cart_url)).
    pub fn new(headers: &HeaderMap, error: CartError) -> Self {
        Reply::new(Format::of(headers), "/cart".to_owned()).error(error)
    }

    /// Where the HTML page's "Back to your cart" link points.
    pub fn cart_url(mut self, url: impl Into<String>) -> Self {
        self.cart_url = url.into();
        self
    }

    /// The status answered.
    pub fn status(&self) -> StatusCode {
        self.problem.status
    }

    /// The stable snake_case code of the JSON body, e.g. `"invalid_quantity"`.
    pub fn code(&self) -> &'static str {
        self.problem.code
    }
}

/// The bundled HTML error page: `templates/cart_error.html`.
#[derive(Template)]
#[template(path = "cart_error.html", escape = "entities")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    message: &'a str,
    cart_url: &'a str,
}

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        let Problem {
            status,
            code,
            message,
            members,
            retry_after,
        } = self.problem;
        let mut res = match self.format {
            Format::Json => {
                let mut body = serde_json::Map::with_capacity(6 + members.len());
                let mut put = |k: &str, v: serde_json::Value| body.insert(k.to_owned(), v);
                put("type", format!("{PROBLEM_TYPE_BASE}{code}").into());
                put("title", problem_title(code).into());
                put("status", status.as_u16().into());
                put("detail", message.clone().into());
                put("code", code.into());
                put("error", message.into());
                for (key, value) in members {
                    put(key, value);
                }
                let mut res = (status, axum::Json(body)).into_response();
                res.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
                res
            }
            Format::Html => {
                let page = ErrorPage {
                    status: status.as_u16(),
                    reason: status.canonical_reason().unwrap_or("Error"),
                    message: &message,
                    cart_url: &self.cart_url,
                };
                let html = page.render().unwrap_or_else(|_| message.clone());
                (status, Html(html)).into_response()
            }
        };
        no_store(&mut res);
        res.extensions_mut().insert(ProblemCode(code));
        let retry_after = match (retry_after, status) {
            (Some(secs), _) => Some(secs),
            (None, StatusCode::SERVICE_UNAVAILABLE) => Some(RETRY_AFTER_SECS),
            _ => None,
        };
        if let Some(secs) = retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// The code of an error answer, left in its extensions for the layers it passes through.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProblemCode(pub(crate) &'static str);

/// The media type of a problem answer (RFC 9457).
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// A [`CartError`] as an answer of the app's own handlers: [`http_status`] with a problem
/// body (see [`ErrorResponse`]); server-side failures (500, 503) are logged and answered
/// with a generic message. [`ErrorResponse`] answers HTML clients with a page.
impl IntoResponse for CartError {
    fn into_response(self) -> Response {
        Reply::new(Format::Json, "/cart".to_owned())
            .error(self)
            .into_response()
    }
}

/// An error before it meets a request: status, stable code, message for the client, and
/// the members a JSON answer carries beside them.
#[derive(Debug)]
pub(crate) struct Problem {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// Extension members of the JSON body (`"changes"`, `"products"`, `"cart"`).
    pub(crate) members: Vec<(&'static str, serde_json::Value)>,
    /// Seconds for `Retry-After` (503s get [`RETRY_AFTER_SECS`] without it).
    pub(crate) retry_after: Option<u64>,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Problem {
            status,
            code,
            message: message.into(),
            members: Vec::new(),
            retry_after: None,
        }
    }

    /// With an extension member of the JSON body.
    pub(crate) fn member(mut self, key: &'static str, value: serde_json::Value) -> Self {
        self.members.push((key, value));
        self
    }
}

impl From<CartError> for Problem {
    fn from(err: CartError) -> Self {
        let status = http_status(&err);
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
        let mut problem = Problem::new(status, err.code(), message);
        if let CartError::IdempotencyKeyInFlight = err {
            problem.retry_after = Some(1);
        }
        // The lists a client shows next to the message.
        let list = match &err {
            CartError::PricesChanged(changes) => {
                serde_json::to_value(changes).ok().map(|v| ("changes", v))
            }
            CartError::ProductUnavailable(products) => {
                serde_json::to_value(products).ok().map(|v| ("products", v))
            }
            _ => None,
        };
        match list {
            Some((key, value)) => problem.member(key, value),
            None => problem,
        }
    }
}

/// How to answer one request: its format and the cart page's URL. An extractor that never
/// fails; the URL is the configured one when the [`CartLayer`](crate::CartLayer) is there.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) format: Format,
    pub(crate) cart_url: String,
}

impl Reply {
    fn new(format: Format, cart_url: String) -> Self {
        Reply { format, cart_url }
    }

    /// The answer of a request with these headers and extensions.
    pub(crate) fn of(headers: &HeaderMap, extensions: &Extensions) -> Self {
        let cart_url = extensions
            .get::<CartContext>()
            .map_or_else(|| "/cart".to_owned(), |ctx| ctx.page_url());
        Reply::new(Format::of(headers), cart_url)
    }

    /// An error in this request's format.
    pub(crate) fn error(&self, problem: impl Into<Problem>) -> ErrorResponse {
        ErrorResponse {
            problem: problem.into(),
            format: self.format,
            cart_url: self.cart_url.clone(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Reply {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Reply::of(&parts.headers, &parts.extensions))
    }
}

pub(crate) fn no_store(res: &mut Response) {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// `303 See Other` to `url`.
pub(crate) fn see_other(url: &str) -> Response {
    let location = HeaderValue::from_str(url).unwrap_or_else(|_| HeaderValue::from_static("/cart"));
    let mut res = StatusCode::SEE_OTHER.into_response();
    res.headers_mut().insert(header::LOCATION, location);
    no_store(&mut res);
    res
}

pub(crate) fn json_response<T: serde::Serialize>(body: &T) -> Response {
    let mut res = axum::Json(body).into_response();
    no_store(&mut res);
    res
}

pub(crate) fn html_response(page: String) -> Response {
    let mut res = Html(page).into_response();
    no_store(&mut res);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(pairs: &[(&'static str, &'static str)]) -> Format {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(*k, v.parse().unwrap());
        }
        Format::of(&headers)
    }

    #[test]
    fn accept_decides_then_the_body_type() {
        assert_eq!(format(&[]), Format::Html);
        assert_eq!(format(&[("accept", "application/json")]), Format::Json);
        assert_eq!(
            format(&[("accept", "application/problem+json")]),
            Format::Json
        );
        assert_eq!(
            format(&[("accept", "text/html"), ("accept", "APPLICATION/JSON")]),
            Format::Json,
            "every Accept header counts, case-insensitively"
        );
        assert_eq!(
            format(&[
                ("accept", "text/html"),
                ("content-type", "application/json")
            ]),
            Format::Html
        );
        assert_eq!(
            format(&[("content-type", "application/json; charset=utf-8")]),
            Format::Json
        );
        assert_eq!(format(&[("accept", "*/*")]), Format::Html);
        assert_eq!(
            format(&[("content-type", "application/x-www-form-urlencoded")]),
            Format::Html
        );
    }

    #[test]
    fn server_errors_get_a_generic_message() {
        let p = Problem::from(CartError::SessionUnavailable("down".into()));
        assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(p.message.contains("temporarily unavailable"));
        let p = Problem::from(CartError::UnsupportedDatabase("x://".into()));
        assert_eq!(p.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!p.message.contains("x://"));
        let p = Problem::from(CartError::EmptyCart);
        assert_eq!(
            (p.code, p.message.as_str()),
            ("empty_cart", "Cart is empty.")
        );
    }

    #[test]
    fn the_html_page_escapes_and_links_back() {
        let reply = Reply::new(Format::Html, "/shop/cart?a=\"1\"".into());
        let res = reply
            .error(Problem::new(StatusCode::NOT_FOUND, "x", "<b>'no'</b>"))
            .into_response();
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        let page = ErrorPage {
            status: 404,
            reason: "Not Found",
            message: "<b>'no'</b> & co",
            cart_url: "/cart?a=\"1\"",
        }
        .render()
        .unwrap();
        assert!(page.contains("<title>404 Not Found</title>"));
        assert!(page.contains("<p>&lt;b&gt;&#x27;no&#x27;&lt;/b&gt; &amp; co</p>"));
        assert!(page.contains(r#"<a href="/cart?a=&quot;1&quot;">Back to your cart</a>"#));
        assert!(page.ends_with("</html>\n"), "{page:?}");
    }
}
