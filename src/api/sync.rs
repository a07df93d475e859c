//! `GET /api/v1/status`, the dead letters of the sync: `GET /api/v1/dead-letters`,
//! `POST /api/v1/dead-letters/{seq}/retry` and `/skip`, and `POST /api/v1/sync/fork` (after
//! the sync stopped at `hub_diverged`: start a new epoch of this edge's stream on the hub).
//!
//! Operator actions need scope `operator` (the route table), are logged with the client's
//! name, and are written through the log
//! writer like everything else.

use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;

use super::{ApiError, ApiState, Caller, params, read};
use crate::sync::SyncReport;
use crate::sync::dead_letters::{self, DeadLetter, DeadLetterAction, DeadLetterStatus, Refusal};

/// A dead letter as the API lists it.
#[derive(Debug, Serialize)]
struct LetterJson {
    seq: u64,
    #[serde(flatten)]
    letter: DeadLetter,
}

/// All dead letters, oldest sequence number first: `{"items": [...], "next": null}`.
pub(super) async fn dead_letters(State(state): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    let reader = state.reader.clone();
    let letters = read(move || dead_letters::all(&reader)).await?;
    let items: Vec<_> = letters.into_iter().map(|(seq, letter)| LetterJson { seq, letter }).collect();
    super::json(serde_json::json!({ "items": items, "next": null }))
}

pub(super) async fn retry(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(seq): Path<String>,
) -> Result<Response, ApiError> {
    act(state, &caller, &seq, DeadLetterAction::Retry).await
}

pub(super) async fn skip(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(seq): Path<String>,
) -> Result<Response, ApiError> {
    act(state, &caller, &seq, DeadLetterAction::Skip).await
}

async fn act(state: ApiState, caller: &Caller, seq: &str, action: DeadLetterAction) -> Result<Response, ApiError> {
    let seq = params::number("seq", Some(seq), 0)?;
    let outcome = dead_letters::act(&state.log, seq, action).await.map_err(ApiError::internal)?;
    match outcome {
        Ok(letter) => {
            tracing::info!(
                seq,
                status = letter.status.as_str(),
                client = caller.client,
                "dead letter changed by an operator"
            );
            if action == DeadLetterAction::Retry {
                state.sync.request_retry();
            }
            Ok(Json(LetterJson { seq, letter }).into_response())
        }
        Err(Refusal::NotFound) => Err(ApiError::not_found(format!("no dead letter with seq {seq}"))),
        Err(Refusal::WrongState(status)) => {
            Err(ApiError { status: StatusCode::CONFLICT, message: wrong_state(seq, action, status) })
        }
    }
}

fn wrong_state(seq: u64, action: DeadLetterAction, status: DeadLetterStatus) -> String {
    let verb = match action {
        DeadLetterAction::Retry => "retried",
        DeadLetterAction::Skip => "skipped",
    };
    let why = match status {
        DeadLetterStatus::Retry => "it is already waiting for redelivery",
        DeadLetterStatus::Skipped => "it is already skipped",
        DeadLetterStatus::Delivered => "the hub already stored it",
        DeadLetterStatus::Parked => "it is parked",
    };
    format!("dead letter {seq} cannot be {verb}: {why} (status {})", status.as_str())
}

/// How long a fork may take: one exchange with the hub and one commit.
const FORK_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// `POST /api/v1/sync/fork`: the sync worker, stopped at `hub_diverged`, asks the hub for a
/// new epoch forking after the last common sequence number and goes on sending there. 409
/// when the sync has not diverged (or is off); 502 when the hub refused or could not be
/// reached (the sync stays stopped; the request may be repeated).
pub(super) async fn fork(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let answer = state.sync.request_fork().map_err(|message| ApiError { status: StatusCode::CONFLICT, message })?;
    match tokio::time::timeout(FORK_WAIT, answer).await {
        Ok(Ok(Ok(done))) => {
            tracing::info!(
                epoch = done.epoch,
                fork_at = done.fork_at,
                client = caller.client,
                "sync forked by an operator"
            );
            Ok(Json(done).into_response())
        }
        Ok(Ok(Err(message))) => Err(ApiError { status: StatusCode::BAD_GATEWAY, message }),
        Ok(Err(_)) => Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the sync worker stopped before it answered".into(),
        }),
        Err(_) => Err(ApiError {
            status: StatusCode::GATEWAY_TIMEOUT,
            message: "the sync worker did not answer in time; `zenedge status` shows whether the fork happened".into(),
        }),
    }
}

/// The sync's report now (reads the dead letters).
pub(super) async fn sync_report(state: &ApiState) -> Result<SyncReport, ApiError> {
    let reader = state.reader.clone();
    let counts = read(move || dead_letters::counts(&reader)).await?;
    let last_seq = state.writer.last_seq.load(Ordering::Acquire);
    Ok(state.sync.report(last_seq, counts, jiff::Timestamp::now()))
}

/// The daemon at a glance: log head, what the log holds (`stored`, over its whole life),
/// what was answered since the daemon started (`ingest`), disk, sync, forwarding, scheduled
/// backups.
pub(super) async fn status(State(state): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    status_value(&state).await.map(Json)
}

/// The body of `GET /api/v1/status`; the status page shows the same figures from it.
pub(super) async fn status_value(state: &ApiState) -> Result<serde_json::Value, ApiError> {
    let sync = sync_report(state).await?;
    let reader = state.reader.clone();
    let stored = read(move || crate::projections::views::totals(&reader)).await?;
    let disk = state.disk.clone();
    let space = tokio::task::spawn_blocking(move || disk.space()).await.ok().and_then(Result::ok);
    let m = &state.metrics;
    Ok(serde_json::json!({
        "edge_id": state.edge_id,
        "last_seq": state.writer.last_seq.load(Ordering::Acquire),
        "stored": stored,
        "ingest": {
            "hl7_messages": m.hl7_by_ack(),
            "dicom_instances_stored": m.dicom_instances_stored(),
            "studies_completed": m.dicom_studies_completed.get(),
        },
        "disk": {
            "free": space.map(|s| s.free),
            "reserve": space.map(|s| s.reserve),
            "below_reserve": space.map(|s| s.below_reserve()),
        },
        "sync": sync,
        "forward": state.forward.snapshot(),
        "backup": state.scheduled_backups.report(),
    }))
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
