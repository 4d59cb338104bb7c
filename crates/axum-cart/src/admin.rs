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
//! - `GET  /carts/{id}`: one cart with its lines and products.
//! - `GET  /discounts`: every code, with a form to create one.
//! - `POST /discounts`: create (form fields `code`, `kind` = percent|fixed, `value`,
//!   optional `min_cart_value`, `max_uses`, `valid_until` as `YYYY-MM-DD`).
//! - `POST /discounts/{code}/deactivate`, `POST /discounts/{code}/activate`.
//!
//! Form posts from another site are refused (403).

use askama::Template;
use axum::extract::{Form, NestedPath, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use rust_decimal::Decimal;

use crate::cart::{CartId, Carts, LoadedLine, Totals};
use crate::discount::{Discount, DiscountKind, NewDiscount};
use crate::error::CartError;
use crate::router::cross_site;
use crate::store::{CartFilter, CartRecord};

/// The admin pages, to nest under a prefix of the app's choosing behind its own guard.
pub fn admin_router(carts: Carts) -> Router {
    Router::new()
        .route("/carts", get(cart_list))
        .route("/carts/{id}", get(cart_detail))
        .route("/discounts", get(discount_list).post(discount_create))
        .route("/discounts/{code}/deactivate", post(discount_deactivate))
        .route("/discounts/{code}/activate", post(discount_activate))
        .with_state(carts)
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#1f2937}\
table{border-collapse:collapse}td,th{border:1px solid #d1d5db;padding:.3rem .6rem;text-align:left}\
nav a{margin-right:1rem}.error{color:#b91c1c}";

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

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html><html><head><meta charset="utf-8"><title>Cart #{{ id }}</title><style>{{ style|safe }}</style></head>
<body><nav><a href="{{ base }}/carts">Carts</a><a href="{{ base }}/discounts">Discounts</a></nav>
<h1>Cart #{{ id }}</h1>
<p>Created {{ record.created_at }} · last activity {{ record.updated_at }} · checked out: {% if record.checked_out %}yes{% else %}no{% endif %}{% if let Some(u) = record.user_id %} · user {{ u }}{% endif %}</p>
<table><tr><th>Product</th><th>Name</th><th>Quantity</th><th>Unit price</th><th>Total</th></tr>
{% for l in lines %}<tr><td>{{ l.line.product }}</td><td>{{ l.name() }}</td><td>{{ l.line.quantity }}</td><td>{{ l.line.unit_price }}</td><td>{{ l.line.total_price() }}</td></tr>
{% endfor %}</table>
<p>Subtotal {{ totals.subtotal }} · discount {{ totals.discount }}{% if let Some(code) = totals.discount_code %} ({{ code }}){% endif %} · tax {{ totals.tax }} · shipping {{ totals.shipping }} · <strong>total {{ totals.total }}</strong></p>
</body></html>"#
)]
struct CartDetailPage {
    style: &'static str,
    base: String,
    id: CartId,
    record: CartRecord,
    lines: Vec<LoadedLine>,
    totals: Totals,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html><html><head><meta charset="utf-8"><title>Discounts</title><style>{{ style|safe }}</style></head>
<body><nav><a href="{{ base }}/carts">Carts</a><a href="{{ base }}/discounts">Discounts</a></nav>
<h1>Discounts</h1>
{% if let Some(e) = error %}<p class="error">{{ e }}</p>{% endif %}
<table><tr><th>Code</th><th>Type</th><th>Value</th><th>Min cart</th><th>Uses</th><th>Active</th><th>Valid until</th><th></th></tr>
{% for d in rows %}<tr><td>{{ d.code }}</td><td>{{ d.kind.as_str() }}</td><td>{{ d.value }}</td>
<td>{% if let Some(m) = d.min_cart_value %}{{ m }}{% endif %}</td>
<td>{{ d.current_uses }}{% if let Some(m) = d.max_uses %}/{{ m }}{% endif %}</td>
<td>{% if d.active %}yes{% else %}no{% endif %}</td><td>{% if let Some(u) = d.valid_until %}{{ u }}{% endif %}</td>
<td><form method="post" action="{{ base }}/discounts/{{ d.code }}/{% if d.active %}deactivate{% else %}activate{% endif %}"><button>{% if d.active %}Deactivate{% else %}Activate{% endif %}</button></form></td></tr>
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
    rows: Vec<Discount>,
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
    let base = base.as_str().trim_end_matches('/').to_owned();
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

/// Percent-encodes a query value.
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

async fn cart_detail(
    State(carts): State<Carts>,
    base: NestedPath,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = CartId::parse(&id) else {
        return (StatusCode::NOT_FOUND, "No such cart.").into_response();
    };
    let cart = carts.cart(id);
    let result = async {
        let lines = cart.items_with_products().await?;
        let totals = cart.totals().await?;
        let record = cart.record().await?;
        Ok::<_, CartError>((lines, totals, record))
    }
    .await;
    match result {
        Ok((lines, totals, Some(record))) => render(&CartDetailPage {
            style: STYLE,
            base: base.as_str().trim_end_matches('/').to_owned(),
            id,
            record,
            lines,
            totals,
        }),
        Ok((_, _, None)) => (StatusCode::NOT_FOUND, "No such cart.").into_response(),
        Err(e) => error_page(&e),
    }
}

async fn discount_page(
    carts: &Carts,
    base: &NestedPath,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    match carts.discounts().await {
        Ok(rows) => {
            let page = DiscountPage {
                style: STYLE,
                base: base.as_str().trim_end_matches('/').to_owned(),
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

fn parse_form(form: &CreateForm) -> Result<NewDiscount, String> {
    let money = |name: &str, s: &str| -> Result<Decimal, String> {
        s.trim()
            .parse::<Decimal>()
            .map_err(|_| format!("{name} must be a number such as 10.00, got {:?}.", s.trim()))
    };
    let kind = match form.kind.as_str() {
        "percent" => DiscountKind::Percent,
        "fixed" => DiscountKind::Fixed,
        other => return Err(format!("Type must be percent or fixed, got {other:?}.")),
    };
    let mut new = NewDiscount::new(form.code.clone(), kind, money("Value", &form.value)?);
    if !form.min_cart_value.trim().is_empty() {
        new = new.min_cart_value(money("Min cart value", &form.min_cart_value)?);
    }
    if !form.max_uses.trim().is_empty() {
        let uses = form.max_uses.trim().parse::<i64>().map_err(|_| {
            format!(
                "Max uses must be a whole number, got {:?}.",
                form.max_uses.trim()
            )
        })?;
        new = new.max_uses(uses);
    }
    if !form.valid_until.trim().is_empty() {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let day = time::Date::parse(form.valid_until.trim(), &format).map_err(|_| {
            format!(
                "Valid until must be a date such as 2026-12-31, got {:?}.",
                form.valid_until.trim()
            )
        })?;
        new = new.valid_until(
            day.with_hms(23, 59, 59)
                .map_err(|e| e.to_string())?
                .assume_utc(),
        );
    }
    Ok(new)
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
        Ok(_) => Redirect::to(&format!(
            "{}/discounts",
            base.as_str().trim_end_matches('/')
        ))
        .into_response(),
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
        Ok(true) => Redirect::to(&format!(
            "{}/discounts",
            base.as_str().trim_end_matches('/')
        ))
        .into_response(),
        Ok(false) => (StatusCode::NOT_FOUND, "No such discount code.").into_response(),
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
