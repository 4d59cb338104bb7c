//! The outbox's page: its events with their delivery state, and the retry of parked ones.

use askama::Template;
use axum::extract::{NestedPath, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::{error_page, prefix, render};
use crate::{Carts, DeliveryState, EventCounts, OutboxEvent};

/// How many events the page lists.
const PAGE: u32 = 200;

/// `templates/admin/events.html`.
#[derive(Template)]
#[template(path = "admin/events.html")]
struct EventsPage {
    base: String,
    counts: EventCounts,
    rows: Vec<Row>,
}

/// An event with its time as `YYYY-MM-DD HH:MM:SS`.
struct Row {
    e: OutboxEvent,
    time: String,
}

/// `?state=pending|delivered|parked`.
#[derive(serde::Deserialize)]
pub(super) struct Filter {
    state: Option<String>,
}

/// `GET /events`: the newest events, all or in one state.
pub(super) async fn list(
    State(carts): State<Carts>,
    base: NestedPath,
    Query(filter): Query<Filter>,
) -> Response {
    let state = match filter.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some("pending") => Some(DeliveryState::Pending),
        Some("delivered") => Some(DeliveryState::Delivered),
        Some("parked") => Some(DeliveryState::Parked),
        Some(_) => {
            let text = "state must be pending, delivered or parked.";
            return (StatusCode::BAD_REQUEST, text).into_response();
        }
    };
    let (counts, rows) = match (carts.event_counts().await, carts.events(state, PAGE).await) {
        (Ok(c), Ok(r)) => (c, r),
        (Err(e), _) | (_, Err(e)) => return error_page(&e),
    };
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let rows = rows
        .into_iter()
        .map(|e| Row {
            time: e.created_at.format(&format).unwrap_or_default(),
            e,
        })
        .collect();
    let base = prefix(&base);
    render(StatusCode::OK, &EventsPage { base, counts, rows })
}

/// `POST /events/retry`: every parked event back in line.
pub(super) async fn retry_all(State(carts): State<Carts>, base: NestedPath) -> Response {
    match carts.retry_events(None).await {
        Ok(_) => Redirect::to(&format!("{}/events", prefix(&base))).into_response(),
        Err(e) => error_page(&e),
    }
}

/// `POST /events/{id}/retry`: one parked event back in line; 404 if no parked event has
/// this id.
pub(super) async fn retry_one(
    State(carts): State<Carts>,
    base: NestedPath,
    Path(id): Path<String>,
) -> Response {
    match carts.retry_events(Some(&id)).await {
        Ok(0) => (StatusCode::NOT_FOUND, "No parked event has this id.").into_response(),
        Ok(_) => Redirect::to(&format!("{}/events", prefix(&base))).into_response(),
        Err(e) => error_page(&e),
    }
}
