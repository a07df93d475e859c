//! `GET /api/v1/worklist`: the modality worklist as JSON, the items a modality's C-FIND
//! would find, for a coordinator's screen and for checking the HL7 → MWL mapping.
//!
//! Parameters (all optional, combined with AND): `modality` and `station_ae` (exact),
//! `date` (SPS start date `YYYYMMDD`, or a range `a-b`, `-b`, `a-`), `patient_id` and
//! `accession` (exact), `include_completed` (`true` shows COMPLETED items, hidden by
//! default), `limit` (default 100, at most 1000; `truncated` says when more matched).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::params::{self, DEFAULT_LIMIT, MAX_LIMIT};
use super::{ApiError, ApiState, json, read};
use crate::projections::views::{self, WorklistQuery};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    modality: Option<String>,
    station_ae: Option<String>,
    date: Option<String>,
    patient_id: Option<String>,
    accession: Option<String>,
    include_completed: Option<String>,
    limit: Option<String>,
}

/// A date or date range parameter as (from, to).
fn date_range(text: &str) -> Result<(Option<String>, Option<String>), ApiError> {
    let date = |d: &str| -> Result<Option<String>, ApiError> {
        match d {
            "" => Ok(None),
            d if d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(d.to_owned())),
            _ => Err(ApiError::bad_request(format!("date must be YYYYMMDD or a range a-b, -b, a-; got {text:?}"))),
        }
    };
    let (from, to) = match text.split_once('-') {
        Some((from, to)) => (date(from)?, date(to)?),
        None => {
            let day = date(text)?;
            (day.clone(), day)
        }
    };
    if from.is_none() && to.is_none() {
        return Err(ApiError::bad_request(format!("date must name at least one day, got {text:?}")));
    }
    Ok((from, to))
}

impl ListParams {
    fn worklist_query(self) -> Result<(WorklistQuery, usize), ApiError> {
        let limit = params::limit(self.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
        let text = |name, value: Option<String>| -> Result<Option<String>, ApiError> {
            value.map(|v| params::text(name, &v).map(str::to_owned)).transpose()
        };
        let (date_from, date_to) = match self.date.as_deref() {
            Some(d) => date_range(d)?,
            None => (None, None),
        };
        let include_completed = match self.include_completed.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!("include_completed must be true or false, got {other:?}")));
            }
        };
        let query = WorklistQuery {
            modality: text("modality", self.modality)?,
            station_ae: text("station_ae", self.station_ae)?,
            patient_id: text("patient_id", self.patient_id)?,
            accession: text("accession", self.accession)?,
            name_prefix: None,
            date_from,
            date_to,
            include_completed,
        };
        Ok((query, limit))
    }
}

/// `{"items": [item, ...], "truncated": bool}`.
pub(super) async fn list(
    State(state): State<ApiState>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (query, limit) = params::query(query)?.worklist_query()?;
    let reader = state.reader.clone();
    json(read(move || views::worklist(&reader, &query, limit)).await?)
}

#[cfg(test)]
#[path = "worklist_tests.rs"]
mod tests;
