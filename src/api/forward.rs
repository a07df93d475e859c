//! Forwarding's dead letters (instances a destination refused): `GET
//! /api/v1/forward/dead-letters`, `POST /api/v1/forward/dead-letters/{destination}/{seq}/retry`
//! and `/skip` (`seq`: the instance's `InstanceStored`).
//!
//! Operator actions need scope `operator` (the route table); each commits, in the same
//! transaction as the letter's change, an audit record naming the client, the study, the SOP
//! instance and the destination, and is logged with the client's name. A retry wakes the
//! destination's worker, which sends the instance once more; a skip only stops asking for it
//! (retention still keeps its file: the destination never confirmed it).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::{ApiError, ApiState, Caller, params, read};
use crate::forward::dead_letters::{self, DeadLetterAction, DeadLetterStatus, Listed, Refusal};

/// Every forwarding dead letter, by destination and seq: `{"items": [...], "next": null}`.
pub(super) async fn list(State(state): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    let reader = state.reader.clone();
    let items = read(move || dead_letters::all(&reader)).await?;
    super::json(serde_json::json!({ "items": items, "next": null }))
}

pub(super) async fn retry(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    extensions: axum::http::Extensions,
    Path((destination, seq)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    act(state, &caller, &extensions, destination, &seq, DeadLetterAction::Retry).await
}

pub(super) async fn skip(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    extensions: axum::http::Extensions,
    Path((destination, seq)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    act(state, &caller, &extensions, destination, &seq, DeadLetterAction::Skip).await
}

async fn act(
    state: ApiState,
    caller: &Caller,
    extensions: &axum::http::Extensions,
    destination: String,
    seq: &str,
    action: DeadLetterAction,
) -> Result<Response, ApiError> {
    let seq = params::number("seq", Some(seq), 0)?;
    if !state.forward.knows(&destination) {
        return Err(ApiError::not_found(format!("no forwarding destination named {destination:?}")));
    }
    let (what, done) = match action {
        DeadLetterAction::Retry => ("retry", "retried"),
        DeadLetterAction::Skip => ("skip", "skipped"),
    };
    let (edge_id, who) = (state.edge_id.clone(), super::audit::requester(extensions));
    let path = format!("/api/v1/forward/dead-letters/{destination}/{seq}/{what}");
    let name = destination.clone();
    let audit: dead_letters::AuditOf = Box::new(move |letter, at| {
        let about = (name.as_str(), letter.study_instance_uid.as_str(), letter.sop_instance_uid.as_str());
        crate::audit::kinds::forward_letter_changed(&edge_id, &who, &path, what, about, at)
    });
    let outcome =
        dead_letters::act(&state.log, destination.clone(), seq, action, audit).await.map_err(ApiError::internal)?;
    match outcome {
        Ok(letter) => {
            tracing::info!(
                destination = %destination,
                seq,
                status = letter.status.as_str(),
                client = caller.client,
                "forwarding dead letter changed by an operator"
            );
            state.forward.wake(&destination);
            Ok(Json(Listed { destination, instance_seq: seq, letter }).into_response())
        }
        Err(Refusal::NotFound) => {
            Err(ApiError::not_found(format!("no forwarding dead letter of {destination:?} with seq {seq}")))
        }
        Err(Refusal::WrongState(status)) => {
            let why = match status {
                DeadLetterStatus::Retry => "it is already waiting to be sent again",
                DeadLetterStatus::Skipped => "it is already skipped",
                DeadLetterStatus::Delivered => "the destination already stored it",
                DeadLetterStatus::Parked => "it is parked",
            };
            let message = format!(
                "forwarding dead letter {seq} of {destination:?} cannot be {done}: {why} (status {})",
                status.as_str()
            );
            Err(ApiError { status: StatusCode::CONFLICT, message })
        }
    }
}
