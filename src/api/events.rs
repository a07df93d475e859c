//! `GET /api/v1/events?after=SEQ&limit=N` and `GET /api/v1/events/{seq}`: one shape for an
//! event ([`crate::events::Envelope::json_view`]), the same as the live stream's and
//! `zenedge events`'s.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::events::JsonEnvelope;

use super::params;
use super::{ApiError, ApiState};

#[derive(Serialize)]
struct PageJson<'a> {
    items: Vec<JsonEnvelope<'a>>,
    next: Option<u64>,
}

/// A page of events: `{"items": [...], "next": SEQ | null}`. `next` is the `after` of the
/// next page; it is null once the end of the log was reached.
pub(super) async fn list(
    State(state): State<ApiState>,
    query: Result<Query<params::PageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let (after, limit) = params::page(query)?;
    let reader = state.reader.clone();
    let page = tokio::task::spawn_blocking(move || crate::events::after(&reader, after, limit))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let items: Vec<_> = page.items.iter().map(|e| e.json_view()).collect();
    Ok(Json(PageJson { items, next: page.next }).into_response())
}

/// One event by its sequence number, in the same shape (keys in the same order) as in a
/// page and in the stream.
pub(super) async fn one(State(state): State<ApiState>, Path(seq): Path<String>) -> Result<Response, ApiError> {
    let seq = params::number("seq", Some(&seq), 0)?;
    let reader = state.reader.clone();
    let event = tokio::task::spawn_blocking(move || crate::events::get(&reader, seq))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let event = event.ok_or_else(|| ApiError::not_found(format!("no event with seq {seq}")))?;
    Ok(Json(event.json_view()).into_response())
}
