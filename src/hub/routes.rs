//! The hub's HTTP handlers other than receiving and reading: refusals, the edge-id check,
//! new epochs, metrics (all routed by [`super::router`]). Receiving a batch is in
//! [`super::receive`], reading back in [`super::read`] and [`super::feed`].
//!
//! Every answer that is not a success is a JSON [`Refusal`]. A store that cannot reach its
//! database answers `503` (the edge backs off and sends again); any other store failure is
//! `500`, logged with its cause.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::metrics::HubMetrics;
use super::outcome::{ForkOutcome, HubPosition};
use super::{EdgeIdentity, HubError, HubOptions, HubStore};
use crate::sync::wire::{ForkRequest, Refusal};

/// What every handler shares.
#[derive(Debug, Clone)]
pub(super) struct Hub {
    pub store: HubStore,
    pub options: HubOptions,
    pub metrics: Arc<HubMetrics>,
}

/// `GET /metrics`: the hub's metrics ([`super::metrics`]).
pub(super) async fn metrics(State(hub): State<Hub>) -> Response {
    ([("content-type", "text/plain; version=0.0.4")], hub.metrics.encode()).into_response()
}

/// The most bytes a compressed batch body may have: gzip never makes data more than a few
/// bytes per 32 KiB larger, so a body beyond `max_batch_bytes` plus a sixteenth plus 64 KiB
/// cannot expand to an acceptable batch.
pub fn compressed_limit(max_batch_bytes: usize) -> usize {
    max_batch_bytes.saturating_add(max_batch_bytes / 16).saturating_add(64 << 10)
}

/// A refused request: its status and the [`Refusal`] sent as the body.
#[derive(Debug)]
pub(super) struct Reject {
    pub status: StatusCode,
    pub refusal: Refusal,
    /// A fixed description for the hub's log: the refusal's text may quote the request
    /// (decoder messages can quote field values), and logs never hold event contents.
    pub(super) reason: &'static str,
}

impl Reject {
    pub(super) fn new(status: StatusCode, reason: &'static str, error: impl Into<String>) -> Reject {
        Reject { status, refusal: Refusal::new(error), reason }
    }

    pub(super) fn bad_request(reason: &'static str, error: impl Into<String>) -> Reject {
        Reject::new(StatusCode::BAD_REQUEST, reason, error)
    }

    pub(super) fn unprocessable(error: impl Into<String>, seq: Option<u64>) -> Reject {
        let mut reject = Reject::new(StatusCode::UNPROCESSABLE_ENTITY, "unacceptable batch", error);
        reject.refusal.seq = seq;
        reject
    }

    /// `409`: the hub is elsewhere; it says where, and which event it holds there.
    pub(super) fn conflict(reason: &'static str, error: String, position: HubPosition) -> Reject {
        let mut reject = Reject::new(StatusCode::CONFLICT, reason, error);
        reject.refusal.stored_through = Some(position.stored_through);
        reject.refusal.last_event = Some(position.last_event);
        reject
    }

    pub(super) fn out_of_order(first: u64, position: HubPosition) -> Reject {
        let error = format!(
            "batch starts at {first} but the hub holds this edge's events through {}: expected first = {}",
            position.stored_through,
            position.stored_through + 1
        );
        Reject::conflict("out of sequence", error, position)
    }

    pub(super) fn chain_broken(seq: u64, held: uuid::Uuid, position: HubPosition) -> Reject {
        let error =
            format!("the histories diverged: the hub holds event {held} at seq {seq}, not this batch's predecessor");
        let mut reject = Reject::conflict("predecessor differs", error, position);
        reject.refusal.seq = Some(seq);
        reject
    }

    pub(super) fn no_epoch(epoch: u64) -> Reject {
        let error = format!("this edge has no epoch {epoch} on the hub (epochs start with POST …/epochs)");
        Reject::new(StatusCode::NOT_FOUND, "no such epoch", error)
    }

    /// `404` for the position of an edge the hub never heard from.
    pub(super) fn unknown_edge(edge_id: &str) -> Reject {
        let error = format!("the hub holds nothing for edge {edge_id}");
        Reject::new(StatusCode::NOT_FOUND, "unknown edge", error)
    }

    /// A store's failure: `503` when its database cannot be reached now (logged at WARN: the
    /// sender retries), `422` for a number the store cannot hold, `501` for what this store
    /// does not do, else `500`.
    pub(super) fn store(e: HubError) -> Reject {
        match e {
            HubError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "the hub's database is unavailable: answered 503");
                Reject::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database unavailable",
                    "the hub's database is unavailable; try again later",
                )
            }
            HubError::SeqRange(n) => {
                Reject::unprocessable(format!("sequence number {n} is beyond what the hub stores (2^63 - 1)"), None)
            }
            HubError::Unsupported(what) => Reject::new(StatusCode::NOT_IMPLEMENTED, "not supported", what),
            other => Reject::internal(other),
        }
    }

    /// A failure on the hub's side: logged with its cause, answered generically.
    pub(super) fn internal(cause: impl std::fmt::Display) -> Reject {
        tracing::error!(error = %cause, "hub request failed");
        Reject::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error", "internal error; see the hub's log")
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        (self.status, Json(self.refusal)).into_response()
    }
}

pub(super) async fn not_found(uri: axum::http::Uri) -> Reject {
    Reject::new(StatusCode::NOT_FOUND, "no such path", format!("no such path: {}", uri.path()))
}

/// Runs `work` on the blocking pool.
pub(super) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Reject> {
    tokio::task::spawn_blocking(work).await.map_err(Reject::internal)
}

/// Edge ids go into keys and URLs: 1-64 characters of `A-Z a-z 0-9 . _ -`.
pub fn is_valid_edge_id(edge_id: &str) -> bool {
    (1..=64).contains(&edge_id.len()) && edge_id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Every `/v1/edges/{edge_id}…` request: the edge id must be valid (400), and allowed for the
/// request's certificate if there is one (403).
pub(super) async fn authorize(
    path: Result<Path<HashMap<String, String>>, PathRejection>,
    identity: Option<Extension<EdgeIdentity>>,
    request: Request,
    next: Next,
) -> Response {
    let edge_id = match path {
        Ok(Path(mut params)) => params.remove("edge_id").unwrap_or_default(),
        Err(e) => return Reject::bad_request("bad path", e.body_text()).into_response(),
    };
    if !is_valid_edge_id(&edge_id) {
        let error = "the edge id in the path must be 1-64 characters of A-Z a-z 0-9 . _ -";
        return Reject::bad_request("bad edge id", error).into_response();
    }
    if let Some(Extension(identity)) = identity
        && !identity.may_access(&edge_id)
    {
        tracing::warn!(certificate = identity.name(), edge_id, "refused: certificate of another edge");
        let error = format!("certificate is for edge {}, not {edge_id}", identity.name());
        return Reject::new(StatusCode::FORBIDDEN, "other edge", error).into_response();
    }
    next.run(request).await
}

/// An epoch number in a path (400 when it is not one).
pub(super) fn epoch_number(text: &str) -> Result<u64, Reject> {
    text.parse().map_err(|_| Reject::bad_request("bad epoch", format!("the epoch must be a number, got {text:?}")))
}

/// `POST /v1/edges/{edge_id}/epochs`: a new epoch forking from `parent` after `fork_at`
/// (`201`), or the one an identical earlier request made (`200`).
pub(super) async fn fork(State(hub): State<Hub>, Path(edge_id): Path<String>, body: axum::body::Bytes) -> Response {
    let request: ForkRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            let error = format!("the body must be {{\"parent\", \"fork_at\", \"fork_event_id\"}}: {e}");
            return Reject::bad_request("bad fork request", error).into_response();
        }
    };
    let outcome = match hub.store.fork(&edge_id, &request).await {
        Ok(outcome) => outcome,
        Err(e) => return Reject::store(e).into_response(),
    };
    match outcome {
        ForkOutcome::Created(forked) => {
            tracing::warn!(
                edge_id,
                epoch = forked.epoch,
                parent = forked.parent,
                fork_at = forked.fork_at,
                "new epoch of an edge's stream: two histories of this edge are kept from here"
            );
            (StatusCode::CREATED, Json(forked)).into_response()
        }
        ForkOutcome::Existing(forked) => Json(forked).into_response(),
        ForkOutcome::NoParent => Reject::no_epoch(request.parent).into_response(),
        ForkOutcome::BeyondParent { stored_through } => {
            let error = format!(
                "cannot fork after {}: epoch {} holds this edge's events only through {stored_through}",
                request.fork_at, request.parent
            );
            let mut reject = Reject::new(StatusCode::CONFLICT, "fork beyond the parent", error);
            reject.refusal.stored_through = Some(stored_through);
            reject.into_response()
        }
        ForkOutcome::EventDiffers { held } => {
            let error = format!(
                "cannot fork after {}: epoch {} holds another event there, so the histories differ before it",
                request.fork_at, request.parent
            );
            let mut reject = Reject::new(StatusCode::CONFLICT, "fork point differs", error);
            reject.refusal.seq = Some(request.fork_at);
            reject.refusal.last_event = Some(held);
            reject.into_response()
        }
    }
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
