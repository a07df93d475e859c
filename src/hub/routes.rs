//! The hub's HTTP routes: receiving batches, reading back what was stored.
//!
//! Every answer that is not a success is a JSON [`Refusal`]. Decompressing, decoding and
//! storing a batch all run on the blocking pool in one task (up to `max_batch_bytes` of work
//! per request), and the `200` is built only after the store's commit returned.

use std::time::Instant;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};

use super::json::envelope_json;
use super::store::{Appended, HubStore, Redelivered};
use super::{EdgeIdentity, HubOptions};
use crate::sync::wire::{self, Received, Refusal, Stored, WireError};

/// Events per page of `GET /v1/edges/{edge_id}/events` when `limit` is not given, and the most
/// one page may hold.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// What every handler shares.
#[derive(Debug, Clone)]
struct Hub {
    store: HubStore,
    options: HubOptions,
}

/// The hub's routes, without TLS. A request that carries an [`EdgeIdentity`] extension (the
/// TLS accept loop adds one per client certificate) may only touch that edge's paths; without
/// one, every edge's paths are open.
pub fn router(store: HubStore, options: HubOptions) -> Router {
    let body_limit = compressed_limit(options.max_batch_bytes);
    Router::new()
        .route("/v1/edges/{edge_id}", get(edge_summary))
        .route("/v1/edges/{edge_id}/events", get(read_events).post(receive))
        .route_layer(middleware::from_fn(authorize))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(not_found)
        // The batch handler reads its body itself, under the same limit, so that it can answer
        // 413 with a `Refusal`; this bounds every other body too.
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(Hub { store, options })
}

/// The most bytes a compressed batch body may have: gzip never makes data more than a few
/// bytes per 32 KiB larger, so a body beyond `max_batch_bytes` plus a sixteenth plus 64 KiB
/// cannot expand to an acceptable batch.
pub fn compressed_limit(max_batch_bytes: usize) -> usize {
    max_batch_bytes.saturating_add(max_batch_bytes / 16).saturating_add(64 << 10)
}

/// A refused request: its status and the [`Refusal`] sent as the body.
#[derive(Debug)]
struct Reject {
    status: StatusCode,
    refusal: Refusal,
    /// A fixed description for the hub's log: the refusal's text may quote the request
    /// (decoder messages can quote field values), and logs never hold event contents.
    reason: &'static str,
}

impl Reject {
    fn new(status: StatusCode, reason: &'static str, error: impl Into<String>) -> Reject {
        Reject { status, refusal: Refusal { error: error.into(), stored_through: None, seq: None }, reason }
    }

    fn bad_request(reason: &'static str, error: impl Into<String>) -> Reject {
        Reject::new(StatusCode::BAD_REQUEST, reason, error)
    }

    fn unprocessable(error: impl Into<String>, seq: Option<u64>) -> Reject {
        let mut reject = Reject::new(StatusCode::UNPROCESSABLE_ENTITY, "unacceptable batch", error);
        reject.refusal.seq = seq;
        reject
    }

    fn out_of_order(first: u64, stored_through: u64) -> Reject {
        let error = format!(
            "batch starts at {first} but the hub holds this edge's events through {stored_through}: \
             expected first = {}",
            stored_through + 1
        );
        let mut reject = Reject::new(StatusCode::CONFLICT, "out of sequence", error);
        reject.refusal.stored_through = Some(stored_through);
        reject
    }

    /// A failure on the hub's side: logged with its cause, answered generically.
    fn internal(cause: impl std::fmt::Display) -> Reject {
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
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Reject> {
    tokio::task::spawn_blocking(work).await.map_err(Reject::internal)
}

/// Edge ids go into keys and URLs: 1-64 characters of `A-Z a-z 0-9 . _ -`.
pub fn is_valid_edge_id(edge_id: &str) -> bool {
    (1..=64).contains(&edge_id.len()) && edge_id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Every `/v1/edges/{edge_id}…` request: the edge id must be valid (400), and allowed for the
/// request's certificate if there is one (403).
async fn authorize(
    path: Result<Path<String>, PathRejection>,
    identity: Option<Extension<EdgeIdentity>>,
    request: Request,
    next: Next,
) -> Response {
    let edge_id = match path {
        Ok(Path(edge_id)) => edge_id,
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
    if redelivery && (first != last || !skipped.is_empty()) {
        return Err(bad_header(format!(
            "a redelivery carries exactly one event: {} must equal {} and {} must be absent",
            wire::FIRST_SEQ,
            wire::LAST_SEQ,
            wire::SKIPPED
        )));
    }
    Ok(BatchHeaders { first, last, skipped, redelivery })
}

/// `POST /v1/edges/{edge_id}/events`: one batch (see the module docs of [`super`]).
async fn receive(
    State(hub): State<Hub>,
    Path(edge_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
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
        blocking(move || store_batch(&hub, &edge_id, &batch, &body)).await.and_then(|r| r)
    };
    match outcome {
        Ok((stored, events)) => {
            tracing::debug!(
                edge_id,
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
    if reject.status == StatusCode::CONFLICT {
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
fn store_batch(hub: &Hub, edge_id: &str, batch: &BatchHeaders, body: &[u8]) -> Result<(Stored, usize), Reject> {
    // Out of sequence is answered before the body is even decompressed: an edge that lost its
    // place finds it again at the cost of a read transaction. The write transaction checks again.
    if !batch.redelivery {
        let stored_through = hub.store.stored_through(edge_id).map_err(Reject::internal)?;
        if batch.first != stored_through.saturating_add(1) {
            return Err(Reject::out_of_order(batch.first, stored_through));
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
        return redeliver(hub, edge_id, &envelopes[0]);
    }
    match hub.store.append(edge_id, batch.first, batch.last, &envelopes, &batch.skipped) {
        Ok(Appended::Stored { stored_through }) => Ok((Stored { stored_through }, envelopes.len())),
        Ok(Appended::OutOfOrder { stored_through }) => Err(Reject::out_of_order(batch.first, stored_through)),
        Err(e) => Err(Reject::internal(e)),
    }
}

/// One skipped event sent again: stored if it was recorded as skipped, `200` again if it was
/// stored already, `409` otherwise.
fn redeliver(hub: &Hub, edge_id: &str, envelope: &Received) -> Result<(Stored, usize), Reject> {
    let seq = envelope.head.seq;
    match hub.store.redeliver(edge_id, envelope).map_err(Reject::internal)? {
        Redelivered::Stored { stored_through } => Ok((Stored { stored_through }, 1)),
        Redelivered::AlreadyStored { stored_through } => Ok((Stored { stored_through }, 0)),
        Redelivered::NotSkipped { stored_through } => {
            let error = format!(
                "event {seq} was never skipped by this edge (the hub holds its events through \
                 {stored_through}): only a skipped event may be redelivered"
            );
            let mut reject = Reject::new(StatusCode::CONFLICT, "redelivery of an event never skipped", error);
            reject.refusal.stored_through = Some(stored_through);
            reject.refusal.seq = Some(seq);
            Err(reject)
        }
    }
}

/// `GET /v1/edges/{edge_id}`.
#[derive(Debug, Serialize)]
struct EdgeJson {
    edge_id: String,
    stored_through: u64,
    events: u64,
    skipped: Vec<u64>,
}

async fn edge_summary(State(hub): State<Hub>, Path(edge_id): Path<String>) -> Result<Json<EdgeJson>, Reject> {
    let store = hub.store.clone();
    let id = edge_id.clone();
    let summary = blocking(move || store.summary(&id)).await?.map_err(Reject::internal)?;
    Ok(Json(EdgeJson {
        edge_id,
        stored_through: summary.stored_through,
        events: summary.events,
        skipped: summary.skipped,
    }))
}

#[derive(Debug, Deserialize)]
struct PageParams {
    after: Option<String>,
    limit: Option<String>,
}

#[derive(Debug, Serialize)]
struct PageJson {
    items: Vec<ItemJson>,
    /// The `after` of the next page; null once the end of the stream was reached.
    next: Option<u64>,
    stored_through: u64,
}

#[derive(Debug, Serialize)]
struct ItemJson {
    seq: u64,
    event: serde_json::Value,
}

/// `GET /v1/edges/{edge_id}/events?after=SEQ&limit=N`: stored envelopes with `seq > after`.
async fn read_events(
    State(hub): State<Hub>,
    Path(edge_id): Path<String>,
    query: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<PageJson>, Reject> {
    let Query(params) = query.map_err(|e| Reject::bad_request("bad query", e.body_text()))?;
    let after = match params.after.as_deref() {
        None => 0,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| Reject::bad_request("bad query", format!("after must be a sequence number, got {v:?}")))?,
    };
    let limit = match params.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| Reject::bad_request("bad query", format!("limit must be between 1 and {MAX_LIMIT}")))?,
    };
    let store = hub.store.clone();
    let page = blocking(move || -> Result<PageJson, super::HubError> {
        let stored_through = store.stored_through(&edge_id)?;
        let mut rows = store.events(&edge_id, after, limit + 1)?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more { rows.last().map(|(seq, _)| *seq) } else { None };
        let items = rows.iter().map(|(seq, bytes)| ItemJson { seq: *seq, event: envelope_json(bytes) }).collect();
        Ok(PageJson { items, next, stored_through })
    })
    .await?
    .map_err(Reject::internal)?;
    Ok(Json(page))
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

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn batch_headers_are_read_strictly() {
        let ok =
            batch_headers(&headers(&[(wire::FIRST_SEQ, "5"), (wire::LAST_SEQ, "8"), (wire::SKIPPED, "6,8")])).unwrap();
        assert_eq!(ok, BatchHeaders { first: 5, last: 8, skipped: vec![6, 8], redelivery: false });
        let missing = batch_headers(&headers(&[(wire::FIRST_SEQ, "5")])).unwrap_err();
        assert!(missing.refusal.error.contains(wire::LAST_SEQ), "{missing:?}");
        let garbled = batch_headers(&headers(&[(wire::FIRST_SEQ, "five"), (wire::LAST_SEQ, "8")])).unwrap_err();
        assert_eq!(garbled.status, StatusCode::BAD_REQUEST);
        let two = batch_headers(&headers(&[(wire::FIRST_SEQ, "5"), (wire::LAST_SEQ, "6"), (wire::REDELIVERY, "1")]));
        assert!(two.is_err());
        let odd = batch_headers(&headers(&[(wire::FIRST_SEQ, "5"), (wire::LAST_SEQ, "5"), (wire::REDELIVERY, "yes")]));
        assert!(odd.is_err());
    }

    #[test]
    fn only_gzip_msgpack_bodies_are_accepted() {
        let good = headers(&[("content-type", "application/msgpack"), ("content-encoding", "gzip")]);
        check_media_type(&good).unwrap();
        let json = headers(&[("content-type", "application/json"), ("content-encoding", "gzip")]);
        assert_eq!(check_media_type(&json).unwrap_err().status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let plain = headers(&[("content-type", "application/msgpack")]);
        assert_eq!(check_media_type(&plain).unwrap_err().status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
