//! The whole-cart routes: clear, discounts, checkout.

use axum::extract::State;
use axum::http::StatusCode;

use super::limit::ClientAddress;
use super::openapi::{DiscountBody, TooManyRequests, Unprocessable};
use super::{conditional, Answer, CartDetails, CartRequest, Settings};
use crate::http::body::Fields;
use crate::http::respond::{json_response, see_other, Format, Problem};
use axum::response::IntoResponse;

/// `POST /cart/clear`: removes every line.
#[utoipa::path(
    post,
    path = "/cart/clear",
    tag = "cart",
    operation_id = "clear",
    summary = "Remove every line"
)]
pub(super) async fn clear(req: CartRequest, _: Fields) -> Answer {
    req.change(async |cart| Ok(cart.clear().await?)).await
}

/// `POST /cart/freeze`: freezes the cart while its payment runs.
#[utoipa::path(
    post,
    path = "/cart/freeze",
    tag = "cart",
    operation_id = "freeze",
    summary = "Freeze the cart while its payment runs",
    responses(
        (status = 422, response = Unprocessable)
    )
)]
pub(super) async fn freeze(req: CartRequest, _: Fields) -> Answer {
    req.change(async |cart| Ok(cart.freeze().await?)).await
}

/// `POST /cart/unfreeze`: ends the cart's freeze.
#[utoipa::path(
    post,
    path = "/cart/unfreeze",
    tag = "cart",
    operation_id = "unfreeze",
    summary = "End the freeze"
)]
pub(super) async fn unfreeze(req: CartRequest, _: Fields) -> Answer {
    req.change(async |cart| Ok(cart.unfreeze().await?)).await
}

/// `POST /cart/discount`: applies the discount `code`.
#[utoipa::path(
    post,
    path = "/cart/discount",
    tag = "cart",
    operation_id = "apply_discount",
    summary = "Apply a discount code",
    request_body(content((DiscountBody = "application/x-www-form-urlencoded"), (DiscountBody = "application/json"))),
    responses(
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests)
    )
)]
pub(super) async fn apply_discount(
    State(settings): State<Settings>,
    req: CartRequest,
    ClientAddress(address): ClientAddress,
    fields: Fields,
) -> Answer {
    let visitor = match req.ctx.cart_id().await {
        Ok(visitor) => visitor,
        Err(e) => return Err(req.reply.error(e)),
    };
    let limits = &settings.limits;
    let (answer, left) = match limits.attempt(visitor, address) {
        Err((refusal, left)) => (Err(req.reply.error(refusal)), left),
        Ok(left) => (
            req.change(async |cart| apply(cart, &fields).await).await,
            left,
        ),
    };
    let mut res = answer.unwrap_or_else(IntoResponse::into_response);
    limits.headers(left, res.headers_mut());
    Ok(res)
}

/// The `code` field applied to the cart.
async fn apply(cart: &mut crate::Cart, fields: &Fields) -> Result<(), Problem> {
    let code = match fields.text("code") {
        Some(Ok(code)) if !code.trim().is_empty() => code,
        Some(Err(_)) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_discount",
                "The discount code must be a string.",
            ))
        }
        _ => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_discount",
                "Enter a discount code.",
            ))
        }
    };
    cart.apply_discount(&code).await?;
    Ok(())
}

/// `POST /cart/discount/remove`: removes the discount.
#[utoipa::path(
    post,
    path = "/cart/discount/remove",
    tag = "cart",
    operation_id = "remove_discount",
    summary = "Remove the discount"
)]
pub(super) async fn remove_discount(req: CartRequest, _: Fields) -> Answer {
    req.change(async |cart| Ok(cart.remove_discount().await?))
        .await
}

/// `POST /cart/checkout`: checks out; the app's order hook runs from the outbox
/// ([`Relay::on_checkout`](crate::Relay::on_checkout)). The JSON answer is the checked-out
/// cart with the price changes the checkout made.
#[utoipa::path(
    post,
    path = "/cart/checkout",
    tag = "cart",
    operation_id = "checkout",
    summary = "Check out",
    responses(
        (status = 200, description = "The checked-out cart, with the price changes the checkout made as `warnings` (JSON clients)", body = CartDetails),
        (status = 422, response = Unprocessable)
    )
)]
pub(super) async fn checkout(req: CartRequest, _: Fields) -> Answer {
    req.answer(async {
        let mut cart = req.open().await?;
        let order = cart.checkout().await?;
        // The session keeps naming the placed order: its next change starts a fresh cart,
        // and a repeated checkout (a double submit, a retry after a lost response) gets
        // this order.
        match req.reply.format {
            Format::Html => Ok(see_other(&req.reply.cart_url)),
            Format::Json => Ok(conditional::tagged(
                json_response(&CartDetails::load(&cart).await?.with_order(&order)),
                &cart,
            )
            .await?),
        }
    })
    .await
}
