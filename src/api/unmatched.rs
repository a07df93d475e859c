//! `GET /api/v1/unmatched/orders` and `GET /api/v1/unmatched/studies`: what still waits for
//! a match, oldest first, with how long it has waited.
//!
//! Parameters: `limit` (default 100, at most 1000), `after` (the `next` of the previous
//! page, `<waiting since, µs>:<id>`: keyset paging, see [`crate::projections::views::WaitingCursor`]), and
//! `older_than` (a duration such as `30m` or `24h`: only what has waited at least that
//! long). Ages are computed when the request is served.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use jiff::Timestamp;
use serde::Deserialize;

use super::params::{self, DEFAULT_LIMIT, MAX_LIMIT};
use super::{ApiError, ApiState, json, read};
use crate::config::parse_duration;
use crate::projections::views::{self, WaitingCursor, WaitingQuery};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    after: Option<String>,
    limit: Option<String>,
    older_than: Option<String>,
}

impl ListParams {
    fn waiting_query(self) -> Result<WaitingQuery, ApiError> {
        let limit = params::limit(self.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
        let after = match self.after.as_deref() {
            None => None,
            Some(text) => Some(WaitingCursor::parse(params::text("after", text)?).ok_or_else(|| {
                ApiError::bad_request(format!("after must be the next cursor of a page (<µs>:<id>), got {text:?}"))
            })?),
        };
        let older_than = match self.older_than.as_deref() {
            None => None,
            Some(text) => Some(parse_duration(text).map_err(|e| ApiError::bad_request(format!("older_than: {e}")))?),
        };
        Ok(WaitingQuery { now: Timestamp::now(), older_than, after, limit })
    }
}

/// `{"items": [{"accession_number", "order_id", "waiting_since", "age_seconds",
/// "patient_id", "patient_name", "procedure", "modality"}, ...], "next": cursor | null}`.
pub(super) async fn orders(
    State(state): State<ApiState>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = params::query(query)?.waiting_query()?;
    let reader = state.reader.clone();
    json(read(move || views::unmatched_orders(&reader, &query)).await?)
}

/// `{"items": [{"accession_number", "study_instance_uid", "waiting_since", "age_seconds",
/// "patient_id", "patient_name", "modalities", "study_date"}, ...], "next": cursor | null}`.
pub(super) async fn studies(
    State(state): State<ApiState>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = params::query(query)?.waiting_query()?;
    let reader = state.reader.clone();
    json(read(move || views::unmatched_studies(&reader, &query)).await?)
}
