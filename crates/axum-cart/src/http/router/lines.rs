//! The line routes: add, update and remove a line, priced from the catalogue.

use std::sync::Arc;

use axum::http::StatusCode;

use super::openapi::{AddBody, LinePathDoc, NotFound, ProductPathDoc, QuantityBody, Unprocessable};
use super::{Answer, CartRequest, LinePath, ProductPath};
use crate::http::body::{bad_quantity, shown, Fields};
use crate::http::respond::Problem;
use crate::http::Quantity;
use crate::product::parse_plain_int;
use crate::{AddOptions, Cart, CartError, Carts, LineKey, Product, ProductRef};

/// `POST /cart/add/{kind}/{id}`: adds `quantity` (default 1) with the given options
/// (`option.<name>` form fields or a JSON `options` object) at the catalogue's price, plus
/// what the options add.
#[utoipa::path(
    post,
    path = "/cart/add/{kind}/{id}",
    tag = "cart",
    operation_id = "add",
    summary = "Add a product",
    params(ProductPathDoc),
    request_body(content((AddBody = "application/x-www-form-urlencoded"), (AddBody = "application/json"))),
    responses(
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable)
    )
)]
pub(super) async fn add(req: CartRequest, path: ProductPath<false>, fields: Fields) -> Answer {
    req.change(async |cart| {
        let quantity = fields.quantity()?.unwrap_or(1);
        let options = fields.options()?;
        let pref = path_ref(&path, "product_not_found", "does not exist.")?;
        let product = find_product(&req.ctx.carts, &pref).await?;
        let extra = options.check(product.as_ref())?;
        let Some(price) = product.price() else {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "product_not_found",
                format!("Product {pref} has no price and cannot be added."),
            ));
        };
        let price = price.checked_add(extra).ok_or_else(|| {
            CartError::InvalidPrice(format!(
                "The price of {pref} with these options is too large."
            ))
        })?;
        // The catalogue's own product goes to the inventory checker, so it can downcast it
        // to the app's type; with no checker configured nothing is asked.
        let options = AddOptions::new().check_inventory().options(options);
        cart.add_with(product.as_ref(), price, quantity, options)
            .await?;
        Ok(())
    })
    .await
}

/// `POST /cart/update/{kind}/{id}`: sets the quantity of the product's line without
/// options (required; 0 removes the line).
#[utoipa::path(
    post,
    path = "/cart/update/{kind}/{id}",
    tag = "cart",
    operation_id = "update",
    summary = "Set the quantity of a product's line without options",
    params(ProductPathDoc),
    request_body(content((QuantityBody = "application/x-www-form-urlencoded"), (QuantityBody = "application/json"))),
    responses(
        (status = 404, response = NotFound)
    )
)]
pub(super) async fn update(
    req: CartRequest,
    path: ProductPath<true>,
    Quantity(quantity): Quantity,
) -> Answer {
    req.change(async |cart| {
        let pref = path_ref(&path, "item_does_not_exist", "is not in this cart.")?;
        set_quantity(cart, &LineKey::plain(pref), quantity).await
    })
    .await
}

/// `POST /cart/lines/{line}/update`: sets the quantity of the line with this key.
#[utoipa::path(
    post,
    path = "/cart/lines/{line}/update",
    tag = "cart",
    operation_id = "update_line",
    summary = "Set the quantity of a line",
    params(LinePathDoc),
    request_body(content((QuantityBody = "application/x-www-form-urlencoded"), (QuantityBody = "application/json"))),
    responses(
        (status = 404, response = NotFound)
    )
)]
pub(super) async fn update_line(
    req: CartRequest,
    path: LinePath,
    Quantity(quantity): Quantity,
) -> Answer {
    req.change(async |cart| set_quantity(cart, &path.key()?, quantity).await)
        .await
}

/// The quantity is required (0 removes the line). The stock checker and the quantity rule
/// get the catalogue's own product; a product the catalogue no longer has can still be
/// changed (or removed with 0).
async fn set_quantity(
    cart: &mut Cart,
    key: &LineKey,
    quantity: Option<i64>,
) -> Result<(), Problem> {
    let quantity = quantity.ok_or_else(|| bad_quantity("Quantity is required."))?;
    cart.update_line(key, quantity, AddOptions::new().check_inventory())
        .await?;
    Ok(())
}

/// `POST /cart/remove/{kind}/{id}`: removes the product's line without options.
#[utoipa::path(
    post,
    path = "/cart/remove/{kind}/{id}",
    tag = "cart",
    operation_id = "remove",
    summary = "Remove a product's line without options",
    params(ProductPathDoc),
    responses(
        (status = 404, response = NotFound)
    )
)]
pub(super) async fn remove(
    req: CartRequest,
    path: ProductPath<true>,
    _: crate::http::body::Fields,
) -> Answer {
    req.change(async |cart| {
        let pref = path_ref(&path, "item_does_not_exist", "is not in this cart.")?;
        Ok(cart.remove_line(&LineKey::plain(pref)).await?)
    })
    .await
}

/// `POST /cart/lines/{line}/remove`: removes the line with this key.
#[utoipa::path(
    post,
    path = "/cart/lines/{line}/remove",
    tag = "cart",
    operation_id = "remove_line",
    summary = "Remove a line",
    params(LinePathDoc),
    responses(
        (status = 404, response = NotFound)
    )
)]
pub(super) async fn remove_line(req: CartRequest, path: LinePath, _: Fields) -> Answer {
    req.change(async |cart| Ok(cart.remove_line(&path.key()?).await?))
        .await
}

/// The product the path names, or the 404 an unknown product gets.
fn path_ref<const IN_CART: bool>(
    path: &ProductPath<IN_CART>,
    code: &'static str,
    message: &str,
) -> Result<ProductRef, Problem> {
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            code,
            format!(
                "Product {}:{} {message}",
                shown(&path.kind),
                shown(&path.id)
            ),
        )
    };
    let id = parse_plain_int(&path.id).ok_or_else(not_found)?;
    ProductRef::new(&path.kind, id).map_err(|_| not_found())
}

/// The catalogue's product, or 404.
async fn find_product(carts: &Carts, product: &ProductRef) -> Result<Arc<dyn Product>, Problem> {
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
