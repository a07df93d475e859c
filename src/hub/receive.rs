//! Receiving a batch: `POST /v1/edges/{edge_id}[/epochs/{n}]/events` (the contract is in the
//! module docs of [`super`]). The position check before the body is decompressed, the body
//! read under the size limit and the body timeout, decoding and checking on the blocking pool,
//! then the store's transaction; the `200` is built only after it committed.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::metrics::Outcome;
use super::outcome::{Appended, BatchRange, HubPosition, Redelivered};
use super::routes::{Hub, Reject, blocking, compressed_limit, epoch_number};
use crate::sync::wire::{self, Received, Stored, WireError};

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
pub(super) fn check_media_type(headers: &HeaderMap) -> Result<(), Reject> {
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
        Err(reject) => refused(&hub, &edge_id, None, reject),
    }
}

/// Reads the body: at most `limit` bytes (`413`), within `timeout` of the headers (`408`).
pub(super) async fn read_body(
    body: axum::body::Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<bytes::Bytes, Reject> {
    let collected = tokio::time::timeout(timeout, http_body_util::Limited::new(body, limit).collect()).await;
    match collected {
        Err(_) => Err(Reject::new(
            StatusCode::REQUEST_TIMEOUT,
            "body too slow",
            format!("the request body did not arrive within {} s", timeout.as_secs()),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(Reject::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body too large",
            format!("compressed body is larger than {limit} bytes"),
        )),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "batch body not received");
            Err(Reject::bad_request("body unreadable", "the request body could not be read"))
        }
    }
}

async fn receive_batch(hub: Hub, edge_id: String, epoch: u64, headers: HeaderMap, body: axum::body::Body) -> Response {
    let started = Instant::now();
    let batch = match check_media_type(&headers).and_then(|()| batch_headers(&headers)) {
        Ok(batch) => batch,
        Err(reject) => return refused(&hub, &edge_id, None, reject),
    };
    let body = match read_body(body, compressed_limit(hub.options.max_batch_bytes), hub.options.body_timeout).await {
        Ok(body) => body,
        Err(reject) => return refused(&hub, &edge_id, Some(&batch), reject),
    };
    let compressed = body.len();
    match store_batch(&hub, &edge_id, epoch, &batch, body).await {
        Ok(done) => {
            let seconds = started.elapsed().as_secs_f64();
            hub.metrics.stored(&edge_id, done.events, seconds, done.stored.stored_through, done.lag_seconds);
            tracing::debug!(
                edge_id,
                epoch,
                first = batch.first,
                last = batch.last,
                events = done.events,
                skipped = batch.skipped.len(),
                redelivery = batch.redelivery,
                compressed,
                millis = started.elapsed().as_millis() as u64,
                "batch stored"
            );
            Json(done.stored).into_response()
        }
        Err(reject) => refused(&hub, &edge_id, Some(&batch), reject),
    }
}

/// Logs a refusal (facts only, never the refusal's text), counts it and answers it.
fn refused(hub: &Hub, edge_id: &str, batch: Option<&BatchHeaders>, reject: Reject) -> Response {
    let (first, last) = batch.map_or((None, None), |b| (Some(b.first), Some(b.last)));
    let outcome = match reject.status {
        StatusCode::CONFLICT => Outcome::conflict,
        StatusCode::SERVICE_UNAVAILABLE => Outcome::unavailable,
        s if s.is_client_error() => Outcome::refused,
        _ => Outcome::error,
    };
    hub.metrics.batch(outcome);
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

/// What a stored batch answers, and what the metrics record of it.
struct Done {
    stored: Stored,
    /// Envelopes stored.
    events: usize,
    /// Now minus the `recorded_at` of the batch's newest event.
    lag_seconds: Option<f64>,
}

/// Decodes, checks and stores one batch. The position is checked before the body is even
/// decompressed: an edge that lost its place finds it again at the cost of one read; the
/// store's transaction checks again.
async fn store_batch(
    hub: &Hub,
    edge_id: &str,
    epoch: u64,
    batch: &BatchHeaders,
    body: bytes::Bytes,
) -> Result<Done, Reject> {
    if !batch.redelivery {
        let position = hub.store.head(edge_id, epoch).await.map_err(Reject::store)?;
        let position = position.ok_or_else(|| Reject::no_epoch(epoch))?;
        if batch.first != position.stored_through.saturating_add(1) {
            return Err(Reject::out_of_order(batch.first, position));
        }
    }
    let envelopes = {
        let (options, edge_id, batch) = (hub.options, edge_id.to_owned(), batch.clone());
        blocking(move || decode(&options, &edge_id, &batch, &body)).await??
    };
    let lag_seconds = envelopes.last().and_then(|e| super::pg::columns(&e.bytes).recorded_at).map(|recorded| {
        let now = jiff::Timestamp::now();
        now.duration_since(recorded).as_secs_f64()
    });
    if batch.redelivery {
        let envelope =
            envelopes.into_iter().next().ok_or_else(|| Reject::unprocessable("the redelivery holds no event", None))?;
        return redeliver(hub, edge_id, epoch, envelope).await.map(|(stored, events)| Done {
            stored,
            events,
            lag_seconds: None,
        });
    }
    let range = BatchRange { first: batch.first, last: batch.last, prev_event_id: batch.prev_event_id };
    let events = envelopes.len();
    let outcome = hub
        .store
        .append(edge_id, epoch, range, Arc::new(envelopes), Arc::new(batch.skipped.clone()))
        .await
        .map_err(Reject::store)?;
    match outcome {
        Appended::Stored(position) => Ok(Done { stored: stored(position), events, lag_seconds }),
        Appended::OutOfOrder(position) => Err(Reject::out_of_order(batch.first, position)),
        Appended::ChainBroken { position, seq, held } => Err(Reject::chain_broken(seq, held, position)),
        Appended::NoEpoch => Err(Reject::no_epoch(epoch)),
    }
}

/// Decompresses and checks a batch body (blocking: up to `max_batch_bytes` of work).
fn decode(
    options: &super::HubOptions,
    edge_id: &str,
    batch: &BatchHeaders,
    body: &[u8],
) -> Result<Vec<Received>, Reject> {
    let envelopes = wire::decode_batch(body, options.max_batch_bytes).map_err(|e| match e {
        WireError::TooLarge(_) => Reject::new(StatusCode::PAYLOAD_TOO_LARGE, "batch too large", e.to_string()),
        _ => Reject::bad_request("undecodable body", e.to_string()),
    })?;
    if let Some(big) = envelopes.iter().find(|e| e.bytes.len() > options.max_event_bytes) {
        let error = format!(
            "event {} is {} bytes, more than this hub accepts ({} bytes)",
            big.head.seq,
            big.bytes.len(),
            options.max_event_bytes
        );
        return Err(Reject::unprocessable(error, Some(big.head.seq)));
    }
    wire::check_batch(edge_id, batch.first, batch.last, &envelopes, &batch.skipped)
        .map_err(|refusal| Reject::unprocessable(refusal.error, refusal.seq))?;
    Ok(envelopes)
}

/// The `200` body for `position`.
fn stored(position: HubPosition) -> Stored {
    Stored { stored_through: position.stored_through, last_event: Some(position.last_event) }
}

/// One skipped event sent again: stored if it was recorded as skipped, `200` again if it was
/// stored already, `409` otherwise.
async fn redeliver(hub: &Hub, edge_id: &str, epoch: u64, envelope: Received) -> Result<(Stored, usize), Reject> {
    let seq = envelope.head.seq;
    match hub.store.redeliver(edge_id, epoch, envelope).await.map_err(Reject::store)? {
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

#[cfg(test)]
#[path = "receive_tests.rs"]
mod tests;
