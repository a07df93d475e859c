//! `GET /api/v1/matches?after=SEQ&limit=N[&accession=ACC]`: the recorded (study, order)
//! pairs in the order they were matched.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::params::{self, DEFAULT_LIMIT, MAX_LIMIT};
use super::{ApiError, ApiState, json, read};
use crate::projections::views::{self, MatchQuery};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    after: Option<String>,
    limit: Option<String>,
    accession: Option<String>,
}

/// `{"items": [{"seq", "study_instance_uid", "order_id", "accession_number"}, ...],
/// "next": SEQ | null}`: pairs whose `StudyMatched` has `seq > after`, by seq. `next` is
/// the `after` of the next page, null when this page holds the last pair.
pub(super) async fn list(
    State(state): State<ApiState>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p = params::query(query)?;
    let after = params::number("after", p.after.as_deref(), 0)?;
    let limit = params::limit(p.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
    let accession = p.accession.as_deref().map(|a| params::text("accession", a).map(str::to_owned)).transpose()?;
    let reader = state.reader.clone();
    let page =
        read(move || views::matches(&reader, &MatchQuery { after, limit, accession: accession.as_deref() })).await?;
    json(page)
}
