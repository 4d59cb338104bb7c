//! The reading routes: the cart page and the shipping options.

use askama::Template;
use axum::extract::State;

use super::details::CartPage;
use super::openapi::{NotModified, ServerError, ShippingOptions, Unavailable};
use super::{conditional, Answer, CartDetails, CartRequest, Settings};
use crate::http::respond::{html_response, json_response, Format};
use crate::{BoxError, CartError};

/// `GET /cart`: the cart page (the bundled template or the app's), or the cart as JSON,
/// with its `ETag`; 304 when `If-None-Match` names it.
#[utoipa::path(
    get,
    path = "/cart",
    tag = "cart",
    operation_id = "show",
    summary = "The cart",
    params(
        ("If-None-Match" = Option<String>, Header,
            description = "An `ETag` of an earlier answer: 304 while the cart is still at it"),
    ),
    responses(
        (status = 200, description = "The cart: JSON for JSON clients, else the cart page",
            headers(("etag" = String, description = "The cart's version, for `If-Match` and `If-None-Match`")),
            content((CartDetails = "application/json"), (String = "text/html"))),
        (status = 304, response = NotModified),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable)
    )
)]
pub(super) async fn show(State(settings): State<Settings>, req: CartRequest) -> Answer {
    req.answer(async {
        let cart = req.open().await?;
        let tag = conditional::etag(&cart).await?;
        if req.pre.not_modified(&tag) {
            return Ok(conditional::not_modified(tag));
        }
        let details = CartDetails::load(&cart).await?;
        let res = match req.reply.format {
            Format::Json => json_response(&details),
            Format::Html => {
                let page = match &settings.template {
                    Some(render) => render(&details),
                    None => CartPage { cart: &details }.render().map_err(BoxError::from),
                }
                .map_err(|e| CartError::plugin("cart template", e))?;
                html_response(page)
            }
        };
        Ok(conditional::with_etag(res, tag))
    })
    .await
}

/// One row of the shipping page.
struct ShippingRow {
    name: String,
    price: String,
}

/// The shipping page: `templates/cart_shipping.html`.
#[derive(Template)]
#[template(path = "cart_shipping.html", escape = "entities")]
struct ShippingPage<'a> {
    options: Vec<ShippingRow>,
    cart_url: &'a str,
}

/// `GET /cart/shipping-options`: the shipping choices, as a small page or JSON.
#[utoipa::path(
    get,
    path = "/cart/shipping-options",
    tag = "cart",
    operation_id = "shipping_options",
    summary = "The shipping choices",
    responses(
        (status = 200, description = "The shipping choices: JSON for JSON clients, else a small page",
            content((ShippingOptions = "application/json"), (String = "text/html"))),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable)
    )
)]
pub(super) async fn shipping_options(req: CartRequest) -> Answer {
    req.answer(async {
        let cart = req.open().await?;
        let options = cart.shipping_options().await?;
        Ok(match req.reply.format {
            Format::Json => json_response(&ShippingOptions { options }),
            Format::Html => {
                let symbol = &req.ctx.carts.config().currency_symbol;
                let page = ShippingPage {
                    options: options
                        .into_iter()
                        .map(|o| ShippingRow {
                            price: crate::money::format(symbol, o.price),
                            name: o.name,
                        })
                        .collect(),
                    cart_url: &req.reply.cart_url,
                };
                html_response(
                    page.render()
                        .map_err(|e| CartError::plugin("shipping page", e.into()))?,
                )
            }
        })
    })
    .await
}
