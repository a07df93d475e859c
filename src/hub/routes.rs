//! The hub's HTTP routes: the router, refusals, the edge-id check, new epochs. Receiving a
//! batch is in [`super::receive`], reading back in [`super::read`] and [`super::feed`].
//!
//! Every answer that is not a success is a JSON [`Refusal`]. A store that cannot reach its
//! database answers `503` (the edge backs off and sends again); any other store failure is
//! `500`, logged with its cause.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::feed::read_feed;
use super::metrics::HubMetrics;
use super::outcome::{ForkOutcome, HubPosition};
use super::read::{edge_position, epoch_events, epoch_position, read_events};
use super::receive::{receive, receive_in_epoch};
use super::{EdgeIdentity, HubError, HubOptions, HubStore};
use crate::sync::wire::{ForkRequest, Refusal};

/// What every handler shares.
#[derive(Debug, Clone)]
pub(super) struct Hub {
    pub store: HubStore,
    pub options: HubOptions,
    pub metrics: Arc<HubMetrics>,
}

/// The hub's routes, without TLS. A request that carries an [`EdgeIdentity`] extension (the
/// TLS accept loop adds one per client certificate) may only touch that edge's paths; without
/// one, every edge's paths are open.
pub fn router(store: HubStore, options: HubOptions) -> Router {
    let body_limit = compressed_limit(options.max_batch_bytes);
    Router::new()
        .route("/v1/edges/{edge_id}", get(edge_position))
        .route("/v1/edges/{edge_id}/events", get(read_events).post(receive))
        .route("/v1/edges/{edge_id}/epochs", post(fork))
        .route("/v1/edges/{edge_id}/epochs/{epoch}", get(epoch_position))
        .route("/v1/edges/{edge_id}/epochs/{epoch}/events", get(epoch_events).post(receive_in_epoch))
        .route_layer(middleware::from_fn(authorize))
        .route("/v1/events", get(read_feed))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        // The batch handler reads its body itself, under the same limit, so that it can answer
        // 413 with a `Refusal`; this bounds every other body too.
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(Hub { metrics: Arc::new(HubMetrics::new(&store)), store, options })
}

/// `GET /metrics`: the hub's metrics ([`super::metrics`]).
async fn metrics(State(hub): State<Hub>) -> Response {
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

async fn not_found(uri: axum::http::Uri) -> Reject {
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
async fn authorize(
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
async fn fork(State(hub): State<Hub>, Path(edge_id): Path<String>, body: axum::body::Bytes) -> Response {
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
mod tests {
    use super::*;

    #[test]
    fn edge_ids_are_safe_identifiers() {
        for good in ["edge-1", "A.b_c-9", &"x".repeat(64)] {
            assert!(is_valid_edge_id(good), "{good}");
        }
        for bad in ["", "edge 1", "edge/1", "é", &"x".repeat(65), "a%2Fb"] {
            assert!(!is_valid_edge_id(bad), "{bad}");
        }
    }

    #[test]
    fn the_compressed_body_limit_leaves_room_for_gzip_overhead() {
        assert_eq!(compressed_limit(64 << 20), (64 << 20) + (4 << 20) + (64 << 10));
        assert_eq!(compressed_limit(usize::MAX), usize::MAX);
    }
}
