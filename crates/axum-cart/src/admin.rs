//! Admin pages: the counterpart of django-cart's Django admin, as a router the app mounts
//! behind its own guard.
//!
//! ```no_run
//! # fn demo(carts: axum_cart::Carts, require_staff: axum::middleware::FromFnLayer<fn(), (), ()>) {}
//! use axum::Router;
//! # fn mount(carts: axum_cart::Carts) -> Router {
//! Router::new().nest("/admin", axum_cart::admin_router(carts))
//!     // .layer(your_own_guard) — the pages have no authentication of their own.
//! # }
//! ```
//!
//! - `GET  /carts?checked_out=yes|no&user=NAME&idle_days=N&page=N`: carts, newest first,
//!   with their line and unit counts (one query whatever the page size).
//! - `GET  /carts/{id}`: one cart with its lines and products; an open cart has a form per
//!   line to set its quantity and unit price, and a button to remove it.
//! - `POST /carts/{id}/lines/{kind}/{product}`: set a line (form fields `quantity`, 0
//!   removes the line, and optional `unit_price`); the cart's limits apply as for
//!   [`Cart::update`](crate::Cart::update).
//! - `POST /carts/{id}/lines/{kind}/{product}/remove`: remove a line.
//! - `GET  /discounts`: every code, with a form to create one.
//! - `POST /discounts`: create (form fields `code`, `kind` = percent|fixed, `value`,
//!   optional `min_cart_value`, `max_uses`, `valid_until` as `YYYY-MM-DD`).
//! - `GET  /discounts/{code}`: one code's page: its edit form, on/off and delete.
//! - `POST /discounts/{code}`: edit (form fields `kind`, `value`, `active` = yes|no,
//!   optional `min_cart_value`, `max_uses`, `valid_from`, `valid_until` as `YYYY-MM-DD` or
//!   `YYYY-MM-DDTHH:MM[:SS]` in UTC); see [`Carts::update_discount`] for what is refused.
//! - `POST /discounts/{code}/delete`: delete; a code used at checkout is refused (409), see
//!   [`Carts::delete_discount`].
//! - `POST /discounts/{code}/deactivate`, `POST /discounts/{code}/activate`.
//!
//! Codes are percent-encoded in every link and form action (a code may contain `/`, `?`,
//! `#` or `%`) and decoded by the routes. Refused input (a bad quantity or price, an unknown
//! line or code, a change the rules forbid) gets a 4xx naming the problem and changes
//! nothing. Form posts from another site are refused (403) before anything is changed.

use askama::Template;
use axum::extract::{Form, NestedPath, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use rust_decimal::Decimal;

use crate::discount::{Discount, DiscountKind, NewDiscount};
use crate::error::CartError;
use crate::product::{parse_plain_int, ProductRef};
use crate::router::cross_site;
use crate::store::{CartFilter, CartRecord};
use crate::{CartId, Carts, LoadedLine, Totals};

/// The admin pages, to nest under a prefix of the app's choosing behind its own guard.
pub fn admin_router(carts: Carts) -> Router {
    Router::new()
        .route("/carts", get(cart_list))
        .route("/carts/{id}", get(cart_detail))
        .route("/carts/{id}/lines/{kind}/{product}", post(line_update))
        .route(
            "/carts/{id}/lines/{kind}/{product}/remove",
            post(line_remove),
        )
        .route("/discounts", get(discount_list).post(discount_create))
        .route(
            "/discounts/{code}",
            get(discount_detail).post(discount_edit),
        )
        .route("/discounts/{code}/delete", post(discount_delete))
        .route("/discounts/{code}/deactivate", post(discount_deactivate))
        .route("/discounts/{code}/activate", post(discount_activate))
        .with_state(carts)
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#1f2937}\
table{border-collapse:collapse}td,th{border:1px solid #d1d5db;padding:.3rem .6rem;text-align:left}\
nav a{margin-right:1rem}.error{color:#b91c1c}form.inline{display:inline}";

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html><html><head><meta charset="utf-8"><title>Carts</title><style>{{ style|safe }}</style></head>
<body><nav><a href="{{ base }}/carts">Carts</a><a href="{{ base }}/discounts">Discounts</a></nav>
<h1>Carts</h1>
<form method="get" action="{{ base }}/carts">
 <label>Checked out <select name="checked_out"><option value="">any</option>
  <option value="yes"{% if checked_out == "yes" %} selected{% endif %}>yes</option>
  <option value="no"{% if checked_out == "no" %} selected{% endif %}>no</option></select></label>
 <label>User <input name="user" value="{{ user }}"></label>
 <label>Idle days <input name="idle_days" value="{{ idle_days }}" size="4"></label>
 <button>Filter</button></form>
<table><tr><th>Id</th><th>Created</th><th>Last activity</th><th>Checked out</th><th>User</th><th>Lines</th><th>Units</th></tr>
{% for c in rows %}<tr><td><a href="{{ base }}/carts/{{ c.id }}">#{{ c.id }}</a></td><td>{{ c.created_at }}</td><td>{{ c.updated_at }}</td>
<td>{% if c.checked_out %}yes{% else %}no{% endif %}</td><td>{% if let Some(u) = c.user_id %}{{ u }}{% endif %}</td><td>{{ c.line_count }}</td><td>{{ c.item_count }}</td></tr>
{% endfor %}</table>
<p>Page {{ page }}{% if more %} · <a href="{{ next }}">next</a>{% endif %}</p></body></html>"#
)]
struct CartListPage {
    style: &'static str,
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

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html><html><head><meta charset="utf-8"><title>Cart #{{ id }}</title><style>{{ style|safe }}</style></head>
<body><nav><a href="{{ base }}/carts">Carts</a><a href="{{ base }}/discounts">Discounts</a></nav>
<h1>Cart #{{ id }}</h1>
{% if let Some(e) = error %}<p class="error">{{ e }}</p>{% endif %}
<p>Created {{ record.created_at }} · last activity {{ record.updated_at }} · checked out: {% if record.checked_out %}yes{% else %}no{% endif %}{% if let Some(u) = record.user_id %} · user {{ u }}{% endif %}</p>
<table><tr><th>Product</th><th>Name</th><th>Quantity</th><th>Unit price</th><th>Total</th>{% if !record.checked_out %}<th></th>{% endif %}</tr>
{% for r in lines %}<tr><td>{{ r.line.line.product }}</td><td>{{ r.line.name() }}</td>
{% if record.checked_out %}<td>{{ r.line.line.quantity }}</td><td>{{ r.line.line.unit_price }}</td><td>{{ r.line.line.total_price() }}</td>
{% else %}<td><input form="line-{{ loop.index }}" name="quantity" value="{{ r.line.line.quantity }}" size="6" inputmode="numeric" aria-label="Quantity (0 removes the line)"></td>
<td><input form="line-{{ loop.index }}" name="unit_price" value="{{ r.line.line.unit_price }}" size="8" inputmode="decimal" aria-label="Unit price"></td>
<td>{{ r.line.line.total_price() }}</td>
<td><form id="line-{{ loop.index }}" class="inline" method="post" action="{{ r.path }}"><button>Save</button></form>
<form class="inline" method="post" action="{{ r.path }}/remove"><button>Remove</button></form></td>{% endif %}</tr>
{% endfor %}</table>
<p>Subtotal {{ totals.subtotal }} · discount {{ totals.discount }}{% if let Some(code) = totals.discount_code %} ({{ code }}){% endif %} · tax {{ totals.tax }} · shipping {{ totals.shipping }} · <strong>total {{ totals.total }}</strong></p>
</body></html>"#
)]
struct CartDetailPage {
    style: &'static str,
    base: String,
    id: CartId,
    record: CartRecord,
    lines: Vec<LineRow>,
    totals: Totals,
    error: Option<String>,
}

/// A discount with the URL path of its page.
struct DiscountRow {
    d: Discount,
    /// `{base}/discounts/{code}`, the code percent-encoded.
    path: String,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html><html><head><meta charset="utf-8"><title>Discounts</title><style>{{ style|safe }}</style></head>
<body><nav><a href="{{ base }}/carts">Carts</a><a href="{{ base }}/discounts">Discounts</a></nav>
<h1>Discounts</h1>
{% if let Some(e) = error %}<p class="error">{{ e }}</p>{% endif %}
<table><tr><th>Code</th><th>Type</th><th>Value</th><th>Min cart</th><th>Uses</th><th>Active</th><th>Valid until</th><th></th></tr>
{% for r in rows %}<tr><td><a href="{{ r.path }}">{{ r.d.code }}</a></td><td>{{ r.d.kind.as_str() }}</td><td>{{ r.d.value }}</td>
<td>{% if let Some(m) = r.d.min_cart_value %}{{ m }}{% endif %}</td>
<td>{{ r.d.current_uses }}{% if let Some(m) = r.d.max_uses %}/{{ m }}{% endif %}</td>
<td>{% if r.d.active %}yes{% else %}no{% endif %}</td><td>{% if let Some(u) = r.d.valid_until %}{{ u }}{% endif %}</td>
<td><form class="inline" method="post" action="{{ r.path }}/{% if r.d.active %}deactivate{% else %}activate{% endif %}"><button>{% if r.d.active %}Deactivate{% else %}Activate{% endif %}</button></form>
<a href="{{ r.path }}">Edit</a></td></tr>
{% endfor %}</table>
<h2>New code</h2>
<form method="post" action="{{ base }}/discounts">
 <label>Code <input name="code" required maxlength="50"></label>
 <label>Type <select name="kind"><option value="percent">percent</option><option value="fixed">fixed</option></select></label>
 <label>Value <input name="value" required size="8"></label>
 <label>Min cart value <input name="min_cart_value" size="8"></label>
 <label>Max uses <input name="max_uses" size="6"></label>
 <label>Valid until <input name="valid_until" type="date"></label>
 <button>Create</button></form></body></html>"#
)]
struct DiscountPage {
    style: &'static str,
    base: String,
    rows: Vec<DiscountRow>,
    error: Option<String>,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html><html><head><meta charset="utf-8"><title>Discount {{ d.code }}</title><style>{{ style|safe }}</style></head>
<body><nav><a href="{{ base }}/carts">Carts</a><a href="{{ base }}/discounts">Discounts</a></nav>
<h1>Discount {{ d.code }}</h1>
{% if let Some(e) = error %}<p class="error">{{ e }}</p>{% endif %}
<p>Used {{ d.current_uses }}{% if let Some(m) = d.max_uses %} of {{ m }}{% endif %} times · {% if d.active %}active{% else %}inactive{% endif %}</p>
<form method="post" action="{{ path }}">
 <label>Type <select name="kind"><option value="percent"{% if d.kind.as_str() == "percent" %} selected{% endif %}>percent</option><option value="fixed"{% if d.kind.as_str() == "fixed" %} selected{% endif %}>fixed</option></select></label>
 <label>Value <input name="value" value="{{ d.value }}" required size="8"></label>
 <label>Min cart value <input name="min_cart_value" value="{% if let Some(m) = d.min_cart_value %}{{ m }}{% endif %}" size="8"></label>
 <label>Max uses <input name="max_uses" value="{% if let Some(m) = d.max_uses %}{{ m }}{% endif %}" size="6"></label>
 <label>Active <select name="active"><option value="yes"{% if d.active %} selected{% endif %}>yes</option><option value="no"{% if !d.active %} selected{% endif %}>no</option></select></label>
 <label>Valid from (UTC) <input name="valid_from" type="datetime-local" step="1" value="{{ valid_from }}"></label>
 <label>Valid until (UTC) <input name="valid_until" type="datetime-local" step="1" value="{{ valid_until }}"></label>
 <button>Save</button></form>
<p><form class="inline" method="post" action="{{ path }}/{% if d.active %}deactivate{% else %}activate{% endif %}"><button>{% if d.active %}Deactivate{% else %}Activate{% endif %}</button></form>
<form class="inline" method="post" action="{{ path }}/delete"><button>Delete</button></form></p>
<p>A code used at checkout keeps its type and value and cannot be deleted (placed orders keep it); deactivate it instead.</p>
</body></html>"#
)]
struct DiscountEditPage {
    style: &'static str,
    base: String,
    d: Discount,
    path: String,
    valid_from: String,
    valid_until: String,
    error: Option<String>,
}

fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
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

fn error_page(err: &CartError) -> Response {
    let status = err.status();
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

/// Query of the cart list.
#[derive(Debug, Default, serde::Deserialize)]
struct ListQuery {
    #[serde(default)]
    checked_out: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    idle_days: String,
    #[serde(default)]
    page: Option<u32>,
}

const PAGE: u32 = 50;

async fn cart_list(
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
    render(&CartListPage {
        style: STYLE,
        base,
        rows,
        checked_out: q.checked_out.clone(),
        user: user.to_owned(),
        idle_days: q.idle_days.clone(),
        page,
        more,
        next,
    })
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
    let base = prefix(base);
    match result {
        Ok((lines, totals, Some(record))) => {
            let lines = lines
                .into_iter()
                .map(|line| LineRow {
                    path: format!(
                        "{base}/carts/{id}/lines/{}/{}",
                        encode(line.line.product.kind()),
                        line.line.product.id()
                    ),
                    line,
                })
                .collect();
            let page = CartDetailPage {
                style: STYLE,
                base,
                id,
                record,
                lines,
                totals,
                error,
            };
            (status, render(&page)).into_response()
        }
        Ok((_, _, None)) => no_cart(),
        Err(e) => error_page(&e),
    }
}

async fn cart_detail(
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
struct LineForm {
    quantity: String,
    #[serde(default)]
    unit_price: String,
}

/// The cart and product of a line URL; `None` for anything that cannot name a line.
fn line_target(id: &str, kind: &str, product: &str) -> Option<(CartId, ProductRef)> {
    let id = CartId::parse(id)?;
    let product = ProductRef::new(kind, parse_plain_int(product)?).ok()?;
    Some((id, product))
}

/// Runs a line change on an existing cart: redirects to the cart's page when it is done,
/// answers the page with the reason and a 4xx when it is refused (nothing changed).
async fn change_line(
    carts: &Carts,
    base: &NestedPath,
    id: CartId,
    change: impl std::future::Future<Output = Result<(), CartError>>,
) -> Response {
    match change.await {
        Ok(()) => Redirect::to(&format!("{}/carts/{id}", prefix(base))).into_response(),
        Err(e) if !e.status().is_server_error() => {
            cart_page(carts, base, id, Some(e.to_string()), e.status()).await
        }
        Err(e) => error_page(&e),
    }
}

/// Whether the cart row exists (a write through the facade must not create one).
async fn cart_exists(carts: &Carts, id: CartId) -> Result<bool, CartError> {
    Ok(carts.cart(id).record().await?.is_some())
}

async fn line_update(
    State(carts): State<Carts>,
    base: NestedPath,
    uri: Uri,
    headers: HeaderMap,
    Path((id, kind, product)): Path<(String, String, String)>,
    form: Result<Form<LineForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if cross_site(&headers, &uri) {
        return forbidden();
    }
    let Some((id, product)) = line_target(&id, &kind, &product) else {
        return (StatusCode::NOT_FOUND, "No such cart line.").into_response();
    };
    match cart_exists(&carts, id).await {
        Ok(true) => {}
        Ok(false) => return no_cart(),
        Err(e) => return error_page(&e),
    }
    let refuse =
        |message: String| cart_page(&carts, &base, id, Some(message), StatusCode::BAD_REQUEST);
    let Ok(Form(form)) = form else {
        return refuse("The form was incomplete: it needs a quantity.".into()).await;
    };
    let quantity = form.quantity.trim();
    let Ok(quantity) = quantity.parse::<i64>() else {
        return refuse(format!(
            "Quantity must be a whole number (0 removes the line), got {quantity:?}."
        ))
        .await;
    };
    let unit_price = match form.unit_price.trim() {
        "" => None,
        price => match price.parse::<Decimal>() {
            Ok(price) => Some(price),
            Err(_) => {
                return refuse(format!(
                    "Unit price must be a number such as 12.50, got {price:?}."
                ))
                .await
            }
        },
    };
    let mut cart = carts.cart(id);
    let change = async move {
        cart.update(&product, quantity, unit_price)
            .await
            .map(|_| ())
    };
    change_line(&carts, &base, id, change).await
}

async fn line_remove(
    State(carts): State<Carts>,
    base: NestedPath,
    uri: Uri,
    headers: HeaderMap,
    Path((id, kind, product)): Path<(String, String, String)>,
) -> Response {
    if cross_site(&headers, &uri) {
        return forbidden();
    }
    let Some((id, product)) = line_target(&id, &kind, &product) else {
        return (StatusCode::NOT_FOUND, "No such cart line.").into_response();
    };
    match cart_exists(&carts, id).await {
        Ok(true) => {}
        Ok(false) => return no_cart(),
        Err(e) => return error_page(&e),
    }
    let mut cart = carts.cart(id);
    let change = async move { cart.remove(&product).await };
    change_line(&carts, &base, id, change).await
}

fn discount_path(base: &str, code: &str) -> String {
    format!("{base}/discounts/{}", encode(code))
}

async fn discount_page(
    carts: &Carts,
    base: &NestedPath,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    match carts.discounts().await {
        Ok(rows) => {
            let base = prefix(base);
            let rows = rows
                .into_iter()
                .map(|d| DiscountRow {
                    path: discount_path(&base, &d.code),
                    d,
                })
                .collect();
            let page = DiscountPage {
                style: STYLE,
                base,
                rows,
                error,
            };
            (status, render(&page)).into_response()
        }
        Err(e) => error_page(&e),
    }
}

async fn discount_list(State(carts): State<Carts>, base: NestedPath) -> Response {
    discount_page(&carts, &base, None, StatusCode::OK).await
}

fn no_discount() -> Response {
    (StatusCode::NOT_FOUND, "No such discount code.").into_response()
}

/// A time as the `datetime-local` inputs show it (UTC, to the second).
fn local_input(at: Option<time::OffsetDateTime>) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    at.and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&format).ok())
        .unwrap_or_default()
}

/// One discount's page: its edit form, on/off and delete.
async fn discount_edit_page(
    carts: &Carts,
    base: &NestedPath,
    code: &str,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    match carts.discount(code).await {
        Ok(Some(d)) => {
            let base = prefix(base);
            let page = DiscountEditPage {
                style: STYLE,
                path: discount_path(&base, &d.code),
                base,
                valid_from: local_input(d.valid_from),
                valid_until: local_input(d.valid_until),
                d,
                error,
            };
            (status, render(&page)).into_response()
        }
        Ok(None) => no_discount(),
        Err(e) => error_page(&e),
    }
}

async fn discount_detail(
    State(carts): State<Carts>,
    base: NestedPath,
    Path(code): Path<String>,
) -> Response {
    discount_edit_page(&carts, &base, &code, None, StatusCode::OK).await
}

/// The create form.
#[derive(Debug, serde::Deserialize)]
struct CreateForm {
    code: String,
    kind: String,
    value: String,
    #[serde(default)]
    min_cart_value: String,
    #[serde(default)]
    max_uses: String,
    #[serde(default)]
    valid_until: String,
}

/// The edit form: every rule of a discount (the code is in the URL).
#[derive(Debug, serde::Deserialize)]
struct EditForm {
    kind: String,
    value: String,
    #[serde(default)]
    min_cart_value: String,
    #[serde(default)]
    max_uses: String,
    active: String,
    #[serde(default)]
    valid_from: String,
    #[serde(default)]
    valid_until: String,
}

fn parse_money(name: &str, s: &str) -> Result<Decimal, String> {
    s.trim()
        .parse::<Decimal>()
        .map_err(|_| format!("{name} must be a number such as 10.00, got {:?}.", s.trim()))
}

fn parse_kind(s: &str) -> Result<DiscountKind, String> {
    match s {
        "percent" => Ok(DiscountKind::Percent),
        "fixed" => Ok(DiscountKind::Fixed),
        other => Err(format!("Type must be percent or fixed, got {other:?}.")),
    }
}

/// An instant in UTC from `YYYY-MM-DD` (the start of the day, or its last second when
/// `end_of_day`), `YYYY-MM-DDTHH:MM` or `YYYY-MM-DDTHH:MM:SS`.
fn parse_instant(
    name: &str,
    s: &str,
    end_of_day: bool,
) -> Result<Option<time::OffsetDateTime>, String> {
    use time::macros::format_description;
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let seconds = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let minutes = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let day = format_description!("[year]-[month]-[day]");
    let at = if let Ok(at) = time::PrimitiveDateTime::parse(s, &seconds) {
        at
    } else if let Ok(at) = time::PrimitiveDateTime::parse(s, &minutes) {
        at
    } else if let Ok(date) = time::Date::parse(s, &day) {
        let (h, m, sec) = if end_of_day { (23, 59, 59) } else { (0, 0, 0) };
        date.with_hms(h, m, sec).map_err(|e| e.to_string())?
    } else {
        return Err(format!(
            "{name} must be a date such as 2026-12-31 or 2026-12-31T18:00, got {s:?}."
        ));
    };
    Ok(Some(at.assume_utc()))
}

/// The optional rules both forms share.
fn parse_rules(
    mut new: NewDiscount,
    min_cart_value: &str,
    max_uses: &str,
    valid_until: &str,
) -> Result<NewDiscount, String> {
    if !min_cart_value.trim().is_empty() {
        new = new.min_cart_value(parse_money("Min cart value", min_cart_value)?);
    }
    let max_uses = max_uses.trim();
    if !max_uses.is_empty() {
        let uses = max_uses
            .parse::<i64>()
            .map_err(|_| format!("Max uses must be a whole number, got {max_uses:?}."))?;
        new = new.max_uses(uses);
    }
    if let Some(until) = parse_instant("Valid until", valid_until, true)? {
        new = new.valid_until(until);
    }
    Ok(new)
}

fn parse_form(form: &CreateForm) -> Result<NewDiscount, String> {
    let kind = parse_kind(&form.kind)?;
    let new = NewDiscount::new(form.code.clone(), kind, parse_money("Value", &form.value)?);
    parse_rules(new, &form.min_cart_value, &form.max_uses, &form.valid_until)
}

fn parse_edit(code: &str, form: &EditForm) -> Result<NewDiscount, String> {
    let kind = parse_kind(&form.kind)?;
    let active = match form.active.trim() {
        "yes" => true,
        "no" => false,
        other => return Err(format!("Active must be yes or no, got {other:?}.")),
    };
    let mut new = NewDiscount::new(code, kind, parse_money("Value", &form.value)?).active(active);
    if let Some(from) = parse_instant("Valid from", &form.valid_from, false)? {
        new = new.valid_from(from);
    }
    parse_rules(new, &form.min_cart_value, &form.max_uses, &form.valid_until)
}

fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, "Cross-site form posts are refused.").into_response()
}

async fn discount_create(
    State(carts): State<Carts>,
    base: NestedPath,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<CreateForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if cross_site(&headers, &uri) {
        return forbidden();
    }
    let Ok(Form(form)) = form else {
        return discount_page(
            &carts,
            &base,
            Some("The form was incomplete.".into()),
            StatusCode::BAD_REQUEST,
        )
        .await;
    };
    let new = match parse_form(&form) {
        Ok(new) => new,
        Err(message) => {
            return discount_page(&carts, &base, Some(message), StatusCode::BAD_REQUEST).await
        }
    };
    match carts.create_discount(new).await {
        Ok(_) => Redirect::to(&format!("{}/discounts", prefix(&base))).into_response(),
        Err(e) if !e.status().is_server_error() => {
            discount_page(
                &carts,
                &base,
                Some(e.to_string()),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => error_page(&e),
    }
}

async fn discount_edit(
    State(carts): State<Carts>,
    base: NestedPath,
    uri: Uri,
    headers: HeaderMap,
    Path(code): Path<String>,
    form: Result<Form<EditForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if cross_site(&headers, &uri) {
        return forbidden();
    }
    let refused =
        |message: String, status| discount_edit_page(&carts, &base, &code, Some(message), status);
    let Ok(Form(form)) = form else {
        return refused(
            "The form was incomplete: it needs a type, a value and active yes or no.".into(),
            StatusCode::BAD_REQUEST,
        )
        .await;
    };
    let new = match parse_edit(&code, &form) {
        Ok(new) => new,
        Err(message) => return refused(message, StatusCode::BAD_REQUEST).await,
    };
    match carts.update_discount(new).await {
        Ok(Some(d)) => Redirect::to(&discount_path(&prefix(&base), &d.code)).into_response(),
        Ok(None) => no_discount(),
        Err(e) if !e.status().is_server_error() => {
            refused(e.to_string(), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => error_page(&e),
    }
}

async fn discount_delete(
    State(carts): State<Carts>,
    base: NestedPath,
    uri: Uri,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Response {
    if cross_site(&headers, &uri) {
        return forbidden();
    }
    match carts.delete_discount(&code).await {
        Ok(true) => Redirect::to(&format!("{}/discounts", prefix(&base))).into_response(),
        Ok(false) => no_discount(),
        Err(e) if !e.status().is_server_error() => {
            discount_edit_page(
                &carts,
                &base,
                &code,
                Some(e.to_string()),
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e) => error_page(&e),
    }
}

async fn set_active(
    carts: Carts,
    base: NestedPath,
    (uri, headers): (Uri, HeaderMap),
    code: String,
    active: bool,
) -> Response {
    if cross_site(&headers, &uri) {
        return forbidden();
    }
    match carts.set_discount_active(&code, active).await {
        Ok(true) => Redirect::to(&format!("{}/discounts", prefix(&base))).into_response(),
        Ok(false) => no_discount(),
        Err(e) => error_page(&e),
    }
}

async fn discount_deactivate(
    State(carts): State<Carts>,
    base: NestedPath,
    uri: Uri,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Response {
    set_active(carts, base, (uri, headers), code, false).await
}

async fn discount_activate(
    State(carts): State<Carts>,
    base: NestedPath,
    uri: Uri,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Response {
    set_active(carts, base, (uri, headers), code, true).await
}
