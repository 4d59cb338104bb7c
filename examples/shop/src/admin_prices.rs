//! The admin's price edit, to see "prices that stay honest" end to end: `GET
//! /admin/products?kind=…` lists one kind's products with a price form each, and `POST
//! /admin/products/{kind}/{id}` (form field `price`, e.g. `13.00`) changes one product's
//! price in `shop_products` and in the catalogue this process serves. Carts keep the prices
//! of their adds; the cart page then shows the change and checkout takes the new price.
//!
//! Behind the shop's admin guard (mounted with the library's admin pages). A bad price is a
//! 400, an unknown product a 404, and neither changes anything. Another process serving the
//! same database sees the new price after its next start.

use std::str::FromStr;

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use rust_decimal::Decimal;

use crate::catalog::{ShopProduct, KINDS};
use crate::db::{cents, Arg};
use crate::Shop;

/// The largest price the form takes.
const MAX_PRICE: Decimal = Decimal::from_parts(99_999_999, 0, 0, false, 2); // 999,999.99

/// The routes, relative to `/admin`.
pub fn routes(shop: Shop) -> Router {
    Router::new()
        .route("/products", get(list))
        .route("/products/{kind}/{id}", post(set_price))
        .with_state(shop)
}

#[derive(Template)]
#[template(path = "admin_prices.html")]
struct PricesPage<'a> {
    kinds: &'static [&'static str],
    kind: &'a str,
    products: &'a [std::sync::Arc<ShopProduct>],
}

#[derive(serde::Deserialize)]
struct KindQuery {
    kind: Option<String>,
}

/// `GET /admin/products?kind=book`: the products of one kind, a price form each.
async fn list(State(shop): State<Shop>, Query(q): Query<KindQuery>) -> Response {
    let kind = q
        .kind
        .as_deref()
        .and_then(|k| KINDS.iter().copied().find(|x| *x == k))
        .unwrap_or("book");
    let products = shop.catalog.of_kind(kind);
    match (PricesPage {
        kinds: &KINDS,
        kind,
        products: &products,
    })
    .render()
    {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "the admin price page failed to render");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered.",
            )
        }
    }
}

#[derive(serde::Deserialize)]
struct PriceForm {
    price: Option<String>,
}

/// `POST /admin/products/{kind}/{id}`: sets the price; back to the list (or the product as
/// JSON for a client asking for JSON).
async fn set_price(
    State(shop): State<Shop>,
    Path((kind, id)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<PriceForm>, FormRejection>,
) -> Response {
    let product = id
        .parse::<i64>()
        .ok()
        .and_then(|id| shop.catalog.get(&kind, id));
    let Some(product) = product else {
        return refuse(StatusCode::NOT_FOUND, "No such product.");
    };
    let text = match form {
        Ok(Form(PriceForm { price: Some(price) })) => price,
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "Send the new price as the form field \"price\", e.g. price=13.00.",
            )
        }
    };
    let price = match parse_price(&text) {
        Ok(price) => price,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, &message),
    };
    let stored = shop
        .db
        .exec(
            "UPDATE shop_products SET price_cents = ? WHERE kind = ? AND id = ?",
            &[
                Arg::Int(cents(price)),
                Arg::Text(product.kind),
                Arg::Int(product.id),
            ],
        )
        .await;
    if let Err(e) = stored {
        tracing::error!(error = %e, "could not store a price");
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "The price could not be stored. Please try again.",
        );
    }
    let Some(product) = shop.catalog.set_price(product.kind, product.id, price) else {
        return refuse(StatusCode::NOT_FOUND, "No such product.");
    };
    tracing::info!(kind = product.kind, id = product.id, %price, "price changed");
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        axum::Json(Priced {
            kind: product.kind,
            id: product.id,
            name: &product.name,
            price: format!("{:.2}", product.price),
        })
        .into_response()
    } else {
        Redirect::to(&format!("/admin/products?kind={}", product.kind)).into_response()
    }
}

/// The JSON answer of a price change; money as a string with two decimals.
#[derive(serde::Serialize)]
struct Priced<'a> {
    kind: &'a str,
    id: i64,
    name: &'a str,
    price: String,
}

/// A price as the form sends it: digits with at most two decimals, 0.00 to 999,999.99.
fn parse_price(text: &str) -> Result<Decimal, String> {
    let text = text.trim();
    let shown: String = text.chars().take(40).collect();
    let well_formed = !text.is_empty()
        && text.len() <= 16
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && text.bytes().filter(|b| *b == b'.').count() <= 1
        && text.split('.').nth(1).is_none_or(|cents| cents.len() <= 2)
        && !text.starts_with('.')
        && !text.ends_with('.');
    let price = well_formed
        .then(|| Decimal::from_str(text).ok())
        .flatten()
        .ok_or_else(|| {
            format!(
                "The price must be an amount such as 13.00 (at most two decimals), got {shown:?}."
            )
        })?;
    if price > MAX_PRICE {
        return Err(format!("The price cannot exceed {MAX_PRICE}, got {shown}."));
    }
    let mut price = price;
    price.rescale(2);
    Ok(price)
}

/// A refusal: the status and a short message (plain text, which any client shows).
fn refuse(status: StatusCode, message: &str) -> Response {
    (status, message.to_owned()).into_response()
}

#[cfg(test)]
mod tests {
    use super::parse_price;

    #[test]
    fn prices_are_amounts_with_at_most_two_decimals() {
        assert_eq!(parse_price("13").unwrap().to_string(), "13.00");
        assert_eq!(parse_price(" 13.5 ").unwrap().to_string(), "13.50");
        assert_eq!(parse_price("0.00").unwrap().to_string(), "0.00");
        for bad in [
            "",
            "-1",
            "1.234",
            "abc",
            "1e3",
            "1.2.3",
            ".5",
            "5.",
            "1000000.00",
        ] {
            assert!(parse_price(bad).is_err(), "{bad:?}");
        }
    }
}
