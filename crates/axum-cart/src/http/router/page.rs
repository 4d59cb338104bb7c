//! The reading routes: the cart page and the shipping options.

use askama::Template;
use axum::extract::State;

use super::details::CartPage;
use super::openapi::{ServerError, ShippingOptions, Unavailable};
use super::{Answer, CartDetails, CartRequest, Settings};
use crate::http::respond::{html_response, json_response, Format};
use crate::{BoxError, CartError};

/// `GET /cart`: the cart page (the bundled template or the app's), or the cart as JSON.
#[utoipa::path(
    get,
    path = "/cart",
    tag = "cart",
    operation_id = "show",
    summary = "The cart",
    responses(
        (status = 200, description = "The cart: JSON for JSON clients, else the cart page",
            content((CartDetails = "application/json"), (String = "text/html"))),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable)
    )
)]
pub(super) async fn show(State(settings): State<Settings>, req: CartRequest) -> Answer {
    req.answer(async {
        let cart = req.open().await?;
        let details = CartDetails::load(&cart).await?;
        Ok(match req.reply.format {
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
