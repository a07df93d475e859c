//! `GET /api/v1/events?after=SEQ&limit=N` and `GET /api/v1/events/{seq}`.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::{ApiError, ApiState};

/// Events per page when `limit` is not given, and the most one page may hold.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize)]
pub(super) struct ListParams {
    after: Option<String>,
    limit: Option<String>,
}

/// A page of events: `{"items": [...], "next": SEQ | null}`. `next` is the `after` of the
/// next page; it is null once the end of the log was reached.
pub(super) async fn list(
    State(state): State<ApiState>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let after = parse_number("after", params.after.as_deref(), 0)?;
    let limit = parse_number("limit", params.limit.as_deref(), DEFAULT_LIMIT as u64)? as usize;
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let reader = state.reader.clone();
    let page = tokio::task::spawn_blocking(move || reader.after(after, limit))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let items: Vec<_> = page.items.iter().map(|e| e.to_json()).collect();
    Ok(Json(serde_json::json!({ "items": items, "next": page.next })))
}

/// One event by its sequence number.
pub(super) async fn one(
    State(state): State<ApiState>,
    Path(seq): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let seq = parse_number("seq", Some(&seq), 0)?;
    let reader = state.reader.clone();
    let event = tokio::task::spawn_blocking(move || reader.get(seq))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    event.map(|e| Json(e.to_json())).ok_or_else(|| ApiError::not_found(format!("no event with seq {seq}")))
}

fn parse_number(name: &str, value: Option<&str>, default: u64) -> Result<u64, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request(format!("{name} must be a non-negative integer, got {v:?}"))),
    }
}
