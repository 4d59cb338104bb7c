//! The admin pages: the router, and what its pages share.

use askama::Template;
use axum::extract::{NestedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::{http_status, CartError, Carts, SameSiteLayer};

mod carts;
mod discounts;
mod events;
mod forms;

/// The admin pages, the counterpart of django-cart's Django admin: a router to nest under a
/// prefix of the app's choosing, behind the app's own guard.
///
/// ```no_run
/// # fn demo(carts: axum_cart::Carts, require_staff: axum::middleware::FromFnLayer<fn(), (), ()>) {}
/// use axum::Router;
/// # fn mount(carts: axum_cart::Carts) -> Router {
/// Router::new().nest("/admin", axum_cart::admin_router(carts))
///     // .layer(your_own_guard) — the pages have no authentication of their own.
/// # }
/// ```
///
/// - `GET  /carts?checked_out=yes|no&user=NAME&idle_days=N&page=N`: carts, newest first,
///   with their line and unit counts (one query whatever the page size).
/// - `GET  /carts/{id}`: one cart with its lines and products; an open cart has a form per
///   line to set its quantity and unit price, and a button to remove it.
/// - `POST /carts/{id}/lines/{kind}/{product}`: set a line (form fields `quantity`, 0
///   removes the line, and optional `unit_price`); the cart's limits apply as for
///   [`Cart::update`](crate::Cart::update). `{product}` is the product id, followed by
///   `:` and the options' digest for a line with options (the end of its
///   [`LineKey`](crate::LineKey)).
/// - `POST /carts/{id}/lines/{kind}/{product}/remove`: remove a line.
/// - `GET  /discounts`: every code, with a form to create one.
/// - `POST /discounts`: create (form fields `code`, `kind` = percent|fixed, `value`,
///   optional `min_cart_value`, `max_uses`, `valid_until` as `YYYY-MM-DD`).
/// - `GET  /discounts/{code}`: one code's page: its edit form, on/off and delete.
/// - `POST /discounts/{code}`: edit (form fields `kind`, `value`, `active` = yes|no,
///   optional `min_cart_value`, `max_uses`, `valid_from`, `valid_until` as `YYYY-MM-DD` or
///   `YYYY-MM-DDTHH:MM[:SS]` in UTC); see [`Carts::update_discount`] for what is refused.
/// - `POST /discounts/{code}/delete`: delete; a code used at checkout is refused (409), see
///   [`Carts::delete_discount`].
/// - `POST /discounts/{code}/deactivate`, `POST /discounts/{code}/activate`.
/// - `GET  /events?state=pending|delivered|parked`: the outbox's newest events with their
///   delivery state, attempts and last error (see [`Relay`](crate::Relay)).
/// - `POST /events/retry`: every parked event back in line; `POST /events/{id}/retry`: one.
///
/// Codes are percent-encoded in every link and form action (a code may contain `/`, `?`,
/// `#` or `%`) and decoded by the routes. Refused input (a bad quantity or price, an unknown
/// line or code, a change the rules forbid) gets a 4xx naming the problem and changes
/// nothing. Form posts from another site are refused (403) before anything is changed.
pub fn admin_router(carts: Carts) -> Router {
    Router::new()
        .route("/carts", get(carts::list))
        .route("/carts/{id}", get(carts::detail))
        .route(
            "/carts/{id}/lines/{kind}/{product}",
            post(carts::line_update),
        )
        .route(
            "/carts/{id}/lines/{kind}/{product}/remove",
            post(carts::line_remove),
        )
        .route("/discounts", get(discounts::list).post(discounts::create))
        .route(
            "/discounts/{code}",
            get(discounts::detail).post(discounts::edit),
        )
        .route("/discounts/{code}/delete", post(discounts::delete))
        .route("/discounts/{code}/deactivate", post(discounts::deactivate))
        .route("/discounts/{code}/activate", post(discounts::activate))
        .route("/events", get(events::list))
        .route("/events/retry", post(events::retry_all))
        .route("/events/{id}/retry", post(events::retry_one))
        .route_layer(middleware::from_fn(refuse_cross_site))
        .with_state(carts)
}

/// Refuses a browser's form post from another site (403) before anything is read, by the
/// strict default of [`SameSiteLayer`].
async fn refuse_cross_site(req: Request, next: Next) -> Response {
    let changes = !matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    if changes && SameSiteLayer::new().is_cross_site(req.headers(), req.uri()) {
        return (StatusCode::FORBIDDEN, "Cross-site form posts are refused.").into_response();
    }
    next.run(req).await
}

/// A page, with `status`; a page that fails to render is a logged 500.
fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "admin page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered.",
            )
                .into_response()
        }
    }
}

/// Whether an error is the request's fault (shown on the page with a 4xx), not the
/// server's.
fn refused(err: &CartError) -> bool {
    !http_status(err).is_server_error()
}

/// A failure with no page to show it on: its status, with its message for a 4xx, a generic
/// one (and a log line) for a server error.
fn error_page(err: &CartError) -> Response {
    let status = http_status(err);
    let text = if status.is_server_error() {
        tracing::error!(error = %err, "admin page failed");
        "The cart database is not available right now.".to_owned()
    } else {
        err.to_string()
    };
    (status, text).into_response()
}

/// The prefix the admin router is nested under, without a trailing `/`.
fn prefix(base: &NestedPath) -> String {
    base.as_str().trim_end_matches('/').to_owned()
}

/// Percent-encodes a query value or one path segment: everything but the unreserved
/// characters of RFC 3986, so a `/`, `?`, `#` or `%` in a discount code stays inside its
/// segment. The routes decode it again (axum's `Path`).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn encode_keeps_only_unreserved_characters() {
        assert_eq!(super::encode("SUMMER-25_x.~"), "SUMMER-25_x.~");
        assert_eq!(super::encode("a/b?c#d%e f"), "a%2Fb%3Fc%23d%25e%20f");
        assert_eq!(super::encode("é"), "%C3%A9");
    }
}
