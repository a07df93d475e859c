//! `GET /api/v1/studies/{study_uid}` (a study with its series and instances, its patient
//! case and its orders) and `GET /api/v1/studies?accession=ACC` or `?patient_id=PID`
//! (search among completed studies).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::{ApiError, ApiState, json, params, read};
pub(super) async fn one(
    State(state): State<ApiState>,
    Path(uid): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    params::study_uid(&uid)?;
    let reader = state.reader.clone();
    let lookup = uid.clone();
    let study = read(move || crate::projections::views::study(&reader, &lookup)).await?;
    json(study.ok_or_else(|| ApiError::not_found(format!("no instance of study {uid} was stored")))?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchParams {
    accession: Option<String>,
    patient_id: Option<String>,
}

/// `{"items": [study summary, ...], "truncated": bool}` in the order the studies' first
/// instances arrived. Only completed studies are indexed.
pub(super) async fn search(
    State(state): State<ApiState>,
    query: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p = params::query(query)?;
    let search = params::search(p.accession.as_deref(), p.patient_id.as_deref())?;
    let reader = state.reader.clone();
    json(read(move || crate::projections::views::search_studies(&reader, &search)).await?)
}
