//! `GET /api/v1/orders/{order_id}` (an order and the studies it matched) and
//! `GET /api/v1/orders?accession=ACC` or `?patient_id=PID` (search).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::{ApiError, ApiState, json, params, read};
/// One order, 404 if no message placed it.
pub(super) async fn one(
    State(state): State<ApiState>,
    Path(order_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    params::order_id(&order_id)?;
    let reader = state.reader.clone();
    let lookup = order_id.clone();
    let order = read(move || crate::projections::views::order(&reader, &lookup)).await?;
    json(order.ok_or_else(|| ApiError::not_found(format!("no order {order_id}")))?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchParams {
    accession: Option<String>,
    patient_id: Option<String>,
}

/// `{"items": [order, ...], "truncated": bool}`, in the order they were received.
pub(super) async fn search(
    State(state): State<ApiState>,
    query: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p = params::query(query)?;
    let search = params::search(p.accession.as_deref(), p.patient_id.as_deref())?;
    let reader = state.reader.clone();
    json(read(move || crate::projections::views::search_orders(&reader, &search)).await?)
}
