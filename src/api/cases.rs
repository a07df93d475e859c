//! `GET /api/v1/cases/{case_id}` (a patient case, its studies and their orders) and
//! `GET /api/v1/cases?patient_id=PID` (the cases of a patient, through merges).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::{ApiError, ApiState, json, params, read};

/// One case, 404 if unknown.
pub(super) async fn one(
    State(state): State<ApiState>,
    Path(case_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    params::case_id(&case_id)?;
    let reader = state.reader.clone();
    let lookup = case_id.clone();
    let case = read(move || crate::projections::views::case(&reader, &lookup)).await?;
    json(case.ok_or_else(|| ApiError::not_found(format!("no patient case {case_id}")))?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchParams {
    patient_id: Option<String>,
}

/// `{"items": [case, ...], "truncated": bool}`, oldest first: the cases under the patient
/// id itself and under the id it resolves to through merges (ADT^A40).
pub(super) async fn search(
    State(state): State<ApiState>,
    query: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p = params::query(query)?;
    let (_, patient_id) = params::one_search(&[("patient_id", p.patient_id.as_deref())])?;
    let (patient_id, reader) = (patient_id.to_owned(), state.reader.clone());
    json(read(move || crate::projections::views::search_cases(&reader, &patient_id)).await?)
}
