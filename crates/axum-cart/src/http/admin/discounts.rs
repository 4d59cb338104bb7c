//! The discount pages: the list with the create form, one code's page, and their changes.

use askama::Template;
use axum::extract::{Form, NestedPath, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::forms::{local_input, parse_create, parse_edit, CreateForm, EditForm};
use super::{encode, error_page, prefix, refused, render};
use crate::{CartError, Carts, Discount};

/// A discount with the URL path of its page.
struct DiscountRow {
    d: Discount,
    /// `{base}/discounts/{code}`, the code percent-encoded.
    path: String,
}

/// `templates/admin/discounts.html`.
#[derive(Template)]
#[template(path = "admin/discounts.html")]
struct ListPage {
    base: String,
    rows: Vec<DiscountRow>,
    error: Option<String>,
}

/// `templates/admin/discount.html`.
#[derive(Template)]
#[template(path = "admin/discount.html")]
struct EditPage {
    base: String,
    d: Discount,
    path: String,
    valid_from: String,
    valid_until: String,
    error: Option<String>,
}

fn discount_path(base: &str, code: &str) -> String {
    format!("{base}/discounts/{}", encode(code))
}

fn no_discount() -> Response {
    (StatusCode::NOT_FOUND, "No such discount code.").into_response()
}

/// Back to the list.
fn to_list(base: &NestedPath) -> Response {
    Redirect::to(&format!("{}/discounts", prefix(base))).into_response()
}

/// The list of codes, with an error message above it when a change was refused.
async fn list_page(
    carts: &Carts,
    base: &NestedPath,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let rows = match carts.discounts().await {
        Ok(rows) => rows,
        Err(e) => return error_page(&e),
    };
    let base = prefix(base);
    let rows = rows
        .into_iter()
        .map(|d| DiscountRow {
            path: discount_path(&base, &d.code),
            d,
        })
        .collect();
    render(status, &ListPage { base, rows, error })
}

/// One discount's page: its edit form, on/off and delete.
async fn edit_page(
    carts: &Carts,
    base: &NestedPath,
    code: &str,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let d = match carts.discount(code).await {
        Ok(Some(d)) => d,
        Ok(None) => return no_discount(),
        Err(e) => return error_page(&e),
    };
    let base = prefix(base);
    let page = EditPage {
        path: discount_path(&base, &d.code),
        base,
        valid_from: local_input(d.valid_from),
        valid_until: local_input(d.valid_until),
        d,
        error,
    };
    render(status, &page)
}

/// A failed change of one code: refused (nothing changed), on the code's page with
/// `status`; a server failure, as its error.
async fn refused_on_page(
    carts: &Carts,
    base: &NestedPath,
    code: &str,
    err: CartError,
    status: StatusCode,
) -> Response {
    if refused(&err) {
        edit_page(carts, base, code, Some(err.to_string()), status).await
    } else {
        error_page(&err)
    }
}

/// `GET /discounts`: every code, with a form to create one.
pub(super) async fn list(State(carts): State<Carts>, base: NestedPath) -> Response {
    list_page(&carts, &base, None, StatusCode::OK).await
}

/// `GET /discounts/{code}`: one code's page.
pub(super) async fn detail(
    State(carts): State<Carts>,
    base: NestedPath,
    Path(code): Path<String>,
) -> Response {
    edit_page(&carts, &base, &code, None, StatusCode::OK).await
}

/// `POST /discounts`: creates a code.
pub(super) async fn create(
    State(carts): State<Carts>,
    base: NestedPath,
    form: Result<Form<CreateForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let new = match form {
        Ok(Form(form)) => parse_create(&form),
        Err(_) => Err("The form was incomplete.".to_owned()),
    };
    let new = match new {
        Ok(new) => new,
        Err(message) => {
            return list_page(&carts, &base, Some(message), StatusCode::BAD_REQUEST).await
        }
    };
    match carts.create_discount(new).await {
        Ok(_) => to_list(&base),
        Err(e) if refused(&e) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            list_page(&carts, &base, Some(e.to_string()), status).await
        }
        Err(e) => error_page(&e),
    }
}

/// `POST /discounts/{code}`: changes a code's rules.
pub(super) async fn edit(
    State(carts): State<Carts>,
    base: NestedPath,
    Path(code): Path<String>,
    form: Result<Form<EditForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let new = match form {
        Ok(Form(form)) => parse_edit(&code, &form),
        Err(_) => Err(
            "The form was incomplete: it needs a type, a value and active yes or no.".to_owned(),
        ),
    };
    let new = match new {
        Ok(new) => new,
        Err(message) => {
            return edit_page(&carts, &base, &code, Some(message), StatusCode::BAD_REQUEST).await
        }
    };
    match carts.update_discount(new).await {
        Ok(Some(d)) => Redirect::to(&discount_path(&prefix(&base), &d.code)).into_response(),
        Ok(None) => no_discount(),
        Err(e) => refused_on_page(&carts, &base, &code, e, StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

/// `POST /discounts/{code}/delete`: deletes a code no checkout has used (409 otherwise).
pub(super) async fn delete(
    State(carts): State<Carts>,
    base: NestedPath,
    Path(code): Path<String>,
) -> Response {
    match carts.delete_discount(&code).await {
        Ok(true) => to_list(&base),
        Ok(false) => no_discount(),
        Err(e) => refused_on_page(&carts, &base, &code, e, StatusCode::CONFLICT).await,
    }
}

/// `POST /discounts/{code}/deactivate`.
pub(super) async fn deactivate(
    State(carts): State<Carts>,
    base: NestedPath,
    Path(code): Path<String>,
) -> Response {
    set_active(&carts, &base, &code, false).await
}

/// `POST /discounts/{code}/activate`.
pub(super) async fn activate(
    State(carts): State<Carts>,
    base: NestedPath,
    Path(code): Path<String>,
) -> Response {
    set_active(&carts, &base, &code, true).await
}

async fn set_active(carts: &Carts, base: &NestedPath, code: &str, active: bool) -> Response {
    match carts.set_discount_active(code, active).await {
        Ok(true) => to_list(base),
        Ok(false) => no_discount(),
        Err(e) => error_page(&e),
    }
}
