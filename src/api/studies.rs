//! `GET /api/v1/studies/{study_uid}`: a study with its series and instances, as the log
//! holds them.

use axum::Json;
use axum::extract::{Path, State};

use super::{ApiError, ApiState};
use crate::dicom::scan::is_valid_uid;

pub(super) async fn one(
    State(state): State<ApiState>,
    Path(uid): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !is_valid_uid(&uid) {
        return Err(ApiError::bad_request(format!(
            "{uid:?} is not a DICOM UID (digits and dots, at most 64 characters)"
        )));
    }
    let reader = state.reader.clone();
    let lookup = uid.clone();
    let study = tokio::task::spawn_blocking(move || reader.study(&lookup))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let study = study.ok_or_else(|| ApiError::not_found(format!("no instance of study {uid} was stored")))?;
    Ok(Json(serde_json::to_value(study).map_err(ApiError::internal)?))
}
