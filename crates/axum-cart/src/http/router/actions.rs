//! The whole-cart routes: clear, discounts, checkout.

use axum::extract::State;
use axum::http::StatusCode;

use super::{conditional, Answer, CartDetails, CartRequest, Settings};
use crate::http::body::Fields;
use crate::http::respond::{json_response, see_other, Format, Problem};
use crate::CartError;

/// `POST /cart/clear`: removes every line.
pub(super) async fn clear(req: CartRequest, _: Fields) -> Answer {
    req.change(async |cart| Ok(cart.clear().await?)).await
}

/// `POST /cart/freeze`: freezes the cart while its payment runs.
pub(super) async fn freeze(req: CartRequest, _: Fields) -> Answer {
    req.change(async |cart| Ok(cart.freeze().await?)).await
}

/// `POST /cart/unfreeze`: ends the cart's freeze.
pub(super) async fn unfreeze(req: CartRequest, _: Fields) -> Answer {
    req.change(async |cart| Ok(cart.unfreeze().await?)).await
}

/// `POST /cart/discount`: applies the discount `code`.
pub(super) async fn apply_discount(req: CartRequest, fields: Fields) -> Answer {
    req.change(async |cart| {
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
    })
    .await
}

/// `POST /cart/discount/remove`: removes the discount.
pub(super) async fn remove_discount(req: CartRequest, _: Fields) -> Answer {
    req.change(async |cart| Ok(cart.remove_discount().await?))
        .await
}

/// `POST /cart/checkout`: checks out, then runs the app's hook once per placed order. The
/// JSON answer is the checked-out cart with the price changes the checkout made.
pub(super) async fn checkout(
    State(settings): State<Settings>,
    req: CartRequest,
    _: Fields,
) -> Answer {
    req.answer(async {
        let mut cart = req.open().await?;
        let order = cart.checkout().await?;
        if order.placed_now {
            if let Some(hook) = &settings.hook {
                hook(order.clone())
                    .await
                    .map_err(|e| CartError::plugin("checkout hook", e))?;
            }
        }
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
