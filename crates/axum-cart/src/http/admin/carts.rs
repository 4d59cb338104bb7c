//! The cart pages: the list, one cart, and its line changes.

use askama::Template;
use axum::extract::{Form, NestedPath, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use rust_decimal::Decimal;

use super::{encode, error_page, prefix, refused, render};
use crate::{
    AddOptions, CartError, CartFilter, CartId, CartRecord, Carts, Line, LineKey, LoadedLine, Totals,
};

/// `templates/admin/carts.html`.
#[derive(Template)]
#[template(path = "admin/carts.html")]
struct ListPage {
    base: String,
    rows: Vec<CartRecord>,
    checked_out: String,
    user: String,
    idle_days: String,
    page: u32,
    more: bool,
    next: String,
}

/// A cart line with the URL path of its forms.
struct LineRow {
    line: LoadedLine,
    /// `{base}/carts/{id}/lines/{kind}/{product}`, each segment percent-encoded.
    path: String,
}

/// `templates/admin/cart.html`.
#[derive(Template)]
#[template(path = "admin/cart.html")]
struct DetailPage {
    base: String,
    id: CartId,
    record: CartRecord,
    lines: Vec<LineRow>,
    totals: Totals,
    error: Option<String>,
}

/// Query of the cart list.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    checked_out: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    idle_days: String,
    #[serde(default)]
    page: Option<u32>,
}

/// Carts per page.
const PAGE: u32 = 50;

/// `GET /carts`: carts, newest first, filtered, a page at a time.
pub(super) async fn list(
    State(carts): State<Carts>,
    base: NestedPath,
    Query(q): Query<ListQuery>,
) -> Response {
    let mut filter = CartFilter::new().limit(PAGE + 1);
    match q.checked_out.as_str() {
        "yes" => filter = filter.checked_out(true),
        "no" => filter = filter.checked_out(false),
        _ => {}
    }
    let user = q.user.trim();
    if !user.is_empty() {
        filter = filter.user(user);
    }
    if let Ok(days) = q.idle_days.trim().parse::<u32>() {
        filter = filter.inactive_days(days);
    }
    let page = q.page.unwrap_or(1).clamp(1, 100_000);
    filter = filter.offset((page - 1).saturating_mul(PAGE));
    let mut rows = match carts.list_carts(&filter).await {
        Ok(rows) => rows,
        Err(e) => return error_page(&e),
    };
    let more = rows.len() > PAGE as usize;
    rows.truncate(PAGE as usize);
    let base = prefix(&base);
    let next = format!(
        "{base}/carts?checked_out={}&user={}&idle_days={}&page={}",
        encode(&q.checked_out),
        encode(user),
        encode(&q.idle_days),
        page + 1
    );
    let page = ListPage {
        base,
        rows,
        checked_out: q.checked_out.clone(),
        user: user.to_owned(),
        idle_days: q.idle_days.clone(),
        page,
        more,
        next,
    };
    render(StatusCode::OK, &page)
}

fn no_cart() -> Response {
    (StatusCode::NOT_FOUND, "No such cart.").into_response()
}

/// The cart's page, with an error message above it when a change was refused.
async fn cart_page(
    carts: &Carts,
    base: &NestedPath,
    id: CartId,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let cart = carts.cart(id);
    let result = async {
        let lines = cart.items_with_products().await?;
        let totals = cart.totals().await?;
        let record = cart.record().await?;
        Ok::<_, CartError>((lines, totals, record))
    }
    .await;
    let (lines, totals, record) = match result {
        Ok((lines, totals, Some(record))) => (lines, totals, record),
        Ok((_, _, None)) => return no_cart(),
        Err(e) => return error_page(&e),
    };
    let base = prefix(base);
    let lines = lines
        .into_iter()
        .map(|line| LineRow {
            // The last segment is the product id, and the options' digest after a ':' for
            // a line with options: the line key, split at its first ':'.
            path: format!(
                "{base}/carts/{id}/lines/{}/{}",
                encode(line.line.product.kind()),
                line.line
                    .key()
                    .to_string()
                    .split_once(':')
                    .map_or("", |(_, rest)| rest)
            ),
            line,
        })
        .collect();
    let page = DetailPage {
        base,
        id,
        record,
        lines,
        totals,
        error,
    };
    render(status, &page)
}

/// `GET /carts/{id}`: one cart with its lines and products.
pub(super) async fn detail(
    State(carts): State<Carts>,
    base: NestedPath,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = CartId::parse(&id) else {
        return no_cart();
    };
    cart_page(&carts, &base, id, None, StatusCode::OK).await
}

/// The line edit form: the new quantity (0 removes the line) and, optionally, the unit
/// price.
#[derive(Debug, serde::Deserialize)]
pub(super) struct LineForm {
    quantity: String,
    #[serde(default)]
    unit_price: String,
}

/// The cart and line of a line URL (`…/lines/{kind}/{product id}` or
/// `…/lines/{kind}/{product id}:{options digest}`), when the cart exists; otherwise the 404
/// (or the failure) to answer. A write through the facade must not create the cart.
async fn existing_line(
    carts: &Carts,
    (id, kind, product): &(String, String, String),
) -> Result<(CartId, LineKey, Option<Line>), Response> {
    let target = CartId::parse(id).zip(LineKey::parse(&format!("{kind}:{product}")).ok());
    let Some((id, key)) = target else {
        return Err((StatusCode::NOT_FOUND, "No such cart line.").into_response());
    };
    let cart = carts.cart(id);
    let found = async {
        let record = cart.record().await?;
        let line = cart.lines().await?.into_iter().find(|l| l.key() == key);
        Ok::<_, CartError>((record, line))
    };
    match found.await {
        Ok((Some(_), line)) => Ok((id, key, line)),
        Ok((None, _)) => Err(no_cart()),
        Err(e) => Err(error_page(&e)),
    }
}

/// Runs a line change: redirects to the cart's page when it is done, answers the page with
/// the reason and a 4xx when it is refused (nothing changed).
async fn change_line(
    carts: &Carts,
    base: &NestedPath,
    id: CartId,
    change: Result<(), CartError>,
) -> Response {
    match change {
        Ok(()) => Redirect::to(&format!("{}/carts/{id}", prefix(base))).into_response(),
        Err(e) if refused(&e) => {
            let status = crate::http_status(&e);
            cart_page(carts, base, id, Some(e.to_string()), status).await
        }
        Err(e) => error_page(&e),
    }
}

/// The quantity and optional unit price of the line form, or the message refusing them.
fn line_change(form: &LineForm) -> Result<(i64, Option<Decimal>), String> {
    let quantity = form.quantity.trim();
    let Ok(quantity) = quantity.parse::<i64>() else {
        return Err(format!(
            "Quantity must be a whole number (0 removes the line), got {quantity:?}."
        ));
    };
    let unit_price =
        match form.unit_price.trim() {
            "" => None,
            price => Some(price.parse::<Decimal>().map_err(|_| {
                format!("Unit price must be a number such as 12.50, got {price:?}.")
            })?),
        };
    Ok((quantity, unit_price))
}

/// `POST /carts/{id}/lines/{kind}/{product}`: sets a line's quantity and unit price.
pub(super) async fn line_update(
    State(carts): State<Carts>,
    base: NestedPath,
    Path(target): Path<(String, String, String)>,
    form: Result<Form<LineForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (id, key, line) = match existing_line(&carts, &target).await {
        Ok(line) => line,
        Err(res) => return res,
    };
    let change = match form {
        Ok(Form(form)) => line_change(&form),
        Err(_) => Err("The form was incomplete: it needs a quantity.".to_owned()),
    };
    let (quantity, unit_price) = match change {
        Ok(change) => change,
        Err(message) => {
            return cart_page(&carts, &base, id, Some(message), StatusCode::BAD_REQUEST).await
        }
    };
    let changed = match line {
        Some(line) => {
            let options = AddOptions::new().options(line.options);
            carts
                .cart(id)
                .update_with(&line.product, quantity, unit_price, options)
                .await
        }
        None => Err(CartError::ItemDoesNotExist(key)),
    };
    change_line(&carts, &base, id, changed.map(|_| ())).await
}

/// `POST /carts/{id}/lines/{kind}/{product}/remove`: removes a line.
pub(super) async fn line_remove(
    State(carts): State<Carts>,
    base: NestedPath,
    Path(target): Path<(String, String, String)>,
) -> Response {
    let (id, key, _) = match existing_line(&carts, &target).await {
        Ok(line) => line,
        Err(res) => return res,
    };
    let removed = carts.cart(id).remove_line(&key).await;
    change_line(&carts, &base, id, removed).await
}
