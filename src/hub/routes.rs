//! The hub's HTTP handlers for receiving batches and new epochs (reading back is in
//! [`super::read`]; both are routed by [`super::router`]).
//!
//! Every answer that is not a success is a JSON [`Refusal`]. Decompressing, decoding and
//! storing a batch all run on the blocking pool in one task (up to `max_batch_bytes` of work
//! per request), and the `200` is built only after the store's commit returned.

use std::collections::HashMap;
use std::time::Instant;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::store::{Appended, BatchRange, ForkOutcome, HubPosition, HubStore, Redelivered};
use super::{EdgeIdentity, HubOptions};
use crate::sync::wire::{self, ForkRequest, Received, Refusal, Stored, WireError};

/// What every handler shares.
#[derive(Debug, Clone)]
pub(super) struct Hub {
    pub store: HubStore,
    pub options: HubOptions,
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
    reason: &'static str,
}

impl Reject {
    pub(super) fn new(status: StatusCode, reason: &'static str, error: impl Into<String>) -> Reject {
        Reject { status, refusal: Refusal::new(error), reason }
    }

    pub(super) fn bad_request(reason: &'static str, error: impl Into<String>) -> Reject {
        Reject::new(StatusCode::BAD_REQUEST, reason, error)
    }

    fn unprocessable(error: impl Into<String>, seq: Option<u64>) -> Reject {
        let mut reject = Reject::new(StatusCode::UNPROCESSABLE_ENTITY, "unacceptable batch", error);
        reject.refusal.seq = seq;
        reject
    }

    /// `409`: the hub is elsewhere; it says where, and which event it holds there.
    fn conflict(reason: &'static str, error: String, position: HubPosition) -> Reject {
        let mut reject = Reject::new(StatusCode::CONFLICT, reason, error);
        reject.refusal.stored_through = Some(position.stored_through);
        reject.refusal.last_event = Some(position.last_event);
        reject
    }

    fn out_of_order(first: u64, position: HubPosition) -> Reject {
        let error = format!(
            "batch starts at {first} but the hub holds this edge's events through {}: expected first = {}",
            position.stored_through,
            position.stored_through + 1
        );
        Reject::conflict("out of sequence", error, position)
    }

    fn chain_broken(seq: u64, held: uuid::Uuid, position: HubPosition) -> Reject {
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

/// The batch's description in its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BatchHeaders {
    first: u64,
    last: u64,
    skipped: Vec<u64>,
    redelivery: bool,
    /// The edge's event at `first - 1`.
    prev_event_id: Option<uuid::Uuid>,
}

fn bad_header(error: String) -> Reject {
    Reject::bad_request("bad headers", error)
}

/// A header's value as text, `None` when absent.
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Reject> {
    headers
        .get(name)
        .map(|v| v.to_str().map(str::trim).map_err(|_| bad_header(format!("header {name} is not ASCII text"))))
        .transpose()
}

fn seq_header(headers: &HeaderMap, name: &str) -> Result<u64, Reject> {
    let value = header_text(headers, name)?.ok_or_else(|| bad_header(format!("header {name} is missing")))?;
    value.parse().map_err(|_| bad_header(format!("header {name} must be a sequence number, got {value:?}")))
}

/// 415 unless the body is declared as gzip'ed msgpack.
fn check_media_type(headers: &HeaderMap) -> Result<(), Reject> {
    let unsupported = |error: String| Reject::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "media type", error);
    let content_type = header_text(headers, header::CONTENT_TYPE.as_str()).ok().flatten().unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case(wire::CONTENT_TYPE) {
        return Err(unsupported(format!("Content-Type must be {}, got {content_type:?}", wire::CONTENT_TYPE)));
    }
    let encoding = header_text(headers, header::CONTENT_ENCODING.as_str()).ok().flatten().unwrap_or("");
    if !encoding.eq_ignore_ascii_case("gzip") {
        return Err(unsupported(format!("Content-Encoding must be gzip, got {encoding:?}")));
    }
    Ok(())
}

/// The range, skipped sequence numbers and redelivery flag of a batch (400 when missing or
/// garbled).
fn batch_headers(headers: &HeaderMap) -> Result<BatchHeaders, Reject> {
    let first = seq_header(headers, wire::FIRST_SEQ)?;
    let last = seq_header(headers, wire::LAST_SEQ)?;
    let skipped = match header_text(headers, wire::SKIPPED)? {
        None => Vec::new(),
        Some(value) => wire::parse_skipped(value).map_err(|e| bad_header(format!("header {}: {e}", wire::SKIPPED)))?,
    };
    let redelivery = match header_text(headers, wire::REDELIVERY)? {
        None | Some("0") => false,
        Some("1") => true,
        Some(other) => return Err(bad_header(format!("header {} must be 1, got {other:?}", wire::REDELIVERY))),
    };
    let prev_event_id = match header_text(headers, wire::PREV_EVENT_ID)? {
        None => None,
        Some(v) => Some(v.parse::<uuid::Uuid>().map_err(|_| {
            bad_header(format!("header {} must be an event id (UUID), got {v:?}", wire::PREV_EVENT_ID))
        })?),
    };
    if redelivery && (first != last || !skipped.is_empty()) {
        return Err(bad_header(format!(
            "a redelivery carries exactly one event: {} must equal {} and {} must be absent",
            wire::FIRST_SEQ,
            wire::LAST_SEQ,
            wire::SKIPPED
        )));
    }
    Ok(BatchHeaders { first, last, skipped, redelivery, prev_event_id })
}

/// An epoch number in a path (400 when it is not one).
pub(super) fn epoch_number(text: &str) -> Result<u64, Reject> {
    text.parse().map_err(|_| Reject::bad_request("bad epoch", format!("the epoch must be a number, got {text:?}")))
}

/// `POST /v1/edges/{edge_id}/events`: one batch of epoch 0 (see the module docs of [`super`]).
pub(super) async fn receive(
    State(hub): State<Hub>,
    Path(edge_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    receive_batch(hub, edge_id, 0, headers, body).await
}

/// `POST /v1/edges/{edge_id}/epochs/{epoch}/events`: one batch of a later epoch.
pub(super) async fn receive_in_epoch(
    State(hub): State<Hub>,
    Path((edge_id, epoch)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    match epoch_number(&epoch) {
        Ok(epoch) => receive_batch(hub, edge_id, epoch, headers, body).await,
        Err(reject) => refused(&edge_id, None, reject),
    }
}

async fn receive_batch(hub: Hub, edge_id: String, epoch: u64, headers: HeaderMap, body: axum::body::Body) -> Response {
    let started = Instant::now();
    let batch = match check_media_type(&headers).and_then(|()| batch_headers(&headers)) {
        Ok(batch) => batch,
        Err(reject) => return refused(&edge_id, None, reject),
    };
    let limit = compressed_limit(hub.options.max_batch_bytes);
    let body = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            let error = format!("compressed body is larger than {limit} bytes");
            return refused(
                &edge_id,
                Some(&batch),
                Reject::new(StatusCode::PAYLOAD_TOO_LARGE, "body too large", error),
            );
        }
        Err(e) => {
            tracing::debug!(edge_id, error = %e, "batch body not received");
            let reject = Reject::bad_request("body unreadable", "the request body could not be read");
            return refused(&edge_id, Some(&batch), reject);
        }
    };
    let compressed = body.len();
    let outcome = {
        let (edge_id, batch) = (edge_id.clone(), batch.clone());
        blocking(move || store_batch(&hub, &edge_id, epoch, &batch, &body)).await.and_then(|r| r)
    };
    match outcome {
        Ok((stored, events)) => {
            tracing::debug!(
                edge_id,
                epoch,
                first = batch.first,
                last = batch.last,
                events,
                skipped = batch.skipped.len(),
                redelivery = batch.redelivery,
                compressed,
                millis = started.elapsed().as_millis() as u64,
                "batch stored"
            );
            Json(stored).into_response()
        }
        Err(reject) => refused(&edge_id, Some(&batch), reject),
    }
}

/// Logs a refusal (facts only, never the refusal's text) and answers it.
fn refused(edge_id: &str, batch: Option<&BatchHeaders>, reject: Reject) -> Response {
    let (first, last) = batch.map_or((None, None), |b| (Some(b.first), Some(b.last)));
    if reject.status == StatusCode::CONFLICT && reject.reason == "predecessor differs" {
        tracing::warn!(
            edge_id,
            first,
            last,
            stored_through = reject.refusal.stored_through,
            seq = reject.refusal.seq,
            "batch refused: the edge's history differs from the one the hub holds"
        );
    } else if reject.status == StatusCode::CONFLICT {
        tracing::info!(
            edge_id,
            first,
            last,
            stored_through = reject.refusal.stored_through,
            "batch out of sequence: the edge realigns"
        );
    } else if reject.status.is_client_error() {
        tracing::warn!(
            edge_id,
            first,
            last,
            status = reject.status.as_u16(),
            seq = reject.refusal.seq,
            reason = reject.reason,
            "batch refused"
        );
    }
    reject.into_response()
}

/// Decodes, checks and stores one batch (blocking). Returns the answer and the number of
/// envelopes stored.
fn store_batch(
    hub: &Hub,
    edge_id: &str,
    epoch: u64,
    batch: &BatchHeaders,
    body: &[u8],
) -> Result<(Stored, usize), Reject> {
    // Out of sequence is answered before the body is even decompressed: an edge that lost its
    // place finds it again at the cost of a read transaction. The write transaction checks again.
    if !batch.redelivery {
        let position = hub.store.head(edge_id, epoch).map_err(Reject::internal)?;
        let position = position.ok_or_else(|| Reject::no_epoch(epoch))?;
        if batch.first != position.stored_through.saturating_add(1) {
            return Err(Reject::out_of_order(batch.first, position));
        }
    }
    let envelopes = wire::decode_batch(body, hub.options.max_batch_bytes).map_err(|e| match e {
        WireError::TooLarge(_) => Reject::new(StatusCode::PAYLOAD_TOO_LARGE, "batch too large", e.to_string()),
        _ => Reject::bad_request("undecodable body", e.to_string()),
    })?;
    if let Some(big) = envelopes.iter().find(|e| e.bytes.len() > hub.options.max_event_bytes) {
        let error = format!(
            "event {} is {} bytes, more than this hub accepts ({} bytes)",
            big.head.seq,
            big.bytes.len(),
            hub.options.max_event_bytes
        );
        return Err(Reject::unprocessable(error, Some(big.head.seq)));
    }
    wire::check_batch(edge_id, batch.first, batch.last, &envelopes, &batch.skipped)
        .map_err(|refusal| Reject::unprocessable(refusal.error, refusal.seq))?;
    if batch.redelivery {
        return redeliver(hub, edge_id, epoch, &envelopes[0]);
    }
    let range = BatchRange { first: batch.first, last: batch.last, prev_event_id: batch.prev_event_id };
    match hub.store.append(edge_id, epoch, range, &envelopes, &batch.skipped) {
        Ok(Appended::Stored(position)) => Ok((stored(position), envelopes.len())),
        Ok(Appended::OutOfOrder(position)) => Err(Reject::out_of_order(batch.first, position)),
        Ok(Appended::ChainBroken { position, seq, held }) => Err(Reject::chain_broken(seq, held, position)),
        Ok(Appended::NoEpoch) => Err(Reject::no_epoch(epoch)),
        Err(e) => Err(Reject::internal(e)),
    }
}

/// The `200` body for `position`.
fn stored(position: HubPosition) -> Stored {
    Stored { stored_through: position.stored_through, last_event: Some(position.last_event) }
}

/// One skipped event sent again: stored if it was recorded as skipped, `200` again if it was
/// stored already, `409` otherwise.
fn redeliver(hub: &Hub, edge_id: &str, epoch: u64, envelope: &Received) -> Result<(Stored, usize), Reject> {
    let seq = envelope.head.seq;
    match hub.store.redeliver(edge_id, epoch, envelope).map_err(Reject::internal)? {
        Redelivered::Stored(position) => Ok((stored(position), 1)),
        Redelivered::AlreadyStored(position) => Ok((stored(position), 0)),
        Redelivered::NotSkipped(position) => {
            let error = format!(
                "event {seq} was never skipped by this edge (the hub holds its events through {}): \
                 only a skipped event may be redelivered",
                position.stored_through
            );
            let mut reject = Reject::conflict("redelivery of an event never skipped", error, position);
            reject.refusal.seq = Some(seq);
            Err(reject)
        }
        Redelivered::NoEpoch => Err(Reject::no_epoch(epoch)),
    }
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
    let store = hub.store.clone();
    let (id, asked) = (edge_id.clone(), request.clone());
    let outcome = match blocking(move || store.fork(&id, &asked)).await.and_then(|r| r.map_err(Reject::internal)) {
        Ok(outcome) => outcome,
        Err(reject) => return reject.into_response(),
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
