//! The edges' audit trails on the hub ([`crate::sync::wire_audit`]).
//!
//! `POST /v1/edges/{edge_id}/audit` (behind the edge-id check of every `/v1/edges/…` path): a
//! gzip'ed msgpack array of stored audit records, ids ascending. `415` unless declared as such,
//! `413` beyond the batch limit, `422` for a body that is no such array; then one durable write
//! that stores the records the hub lacks, each once per `(edge_id, id)`, and `200
//! {"stored_through": <last id>, "stored": <new records>}`.
//!
//! `GET /v1/audit?edge=EDGE&after=ID&limit=N` (limit 1-1000, default 100): one edge's records
//! with `id > after`, ascending, `{"items": [{"edge_id", "id", "recorded_at", "record"}],
//! "next": ID|null}`, each record as JSON ([`super::json`]); with client certificates, only a
//! consumer's certificate may read it (as the feed).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::EdgeIdentity;
use super::feed::consumer_only;
use super::json::EnvelopeJson;
use super::read::{limit_param, seq_param};
use super::receive::{check_media_type, read_body};
use super::routes::{Hub, Reject, blocking, compressed_limit, is_valid_edge_id};
use crate::sync::wire_audit::{AuditStored, decode_audit_page};

/// `POST /v1/edges/{edge_id}/audit`: one page of an edge's audit records.
pub(super) async fn receive_audit(
    State(hub): State<Hub>,
    Path(edge_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    match store_page(&hub, &edge_id, &headers, body).await {
        Ok(stored) => {
            tracing::debug!(edge_id, last = stored.stored_through, stored = stored.stored, "audit records stored");
            Json(stored).into_response()
        }
        Err(reject) => {
            if reject.status.is_client_error() {
                tracing::warn!(edge_id, status = reject.status.as_u16(), reason = reject.reason, "audit page refused");
            }
            reject.into_response()
        }
    }
}

async fn store_page(
    hub: &Hub,
    edge_id: &str,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<AuditStored, Reject> {
    check_media_type(headers)?;
    let max = hub.options.max_batch_bytes;
    let body = read_body(body, compressed_limit(max), hub.options.body_timeout).await?;
    let records = blocking(move || decode_audit_page(&body, max)).await?.map_err(|e| {
        let status = match e {
            crate::sync::wire::WireError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Reject::new(status, "unacceptable audit page", e.to_string())
    })?;
    let Some(last) = records.last().map(|r| r.head.id) else {
        return Err(Reject::new(StatusCode::UNPROCESSABLE_ENTITY, "empty audit page", "the page holds no record"));
    };
    let stored = hub.store.store_audit(edge_id, Arc::new(records)).await.map_err(Reject::store)?;
    Ok(AuditStored { stored_through: last, stored })
}

#[derive(Debug, Deserialize)]
pub(super) struct AuditParams {
    edge: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

/// A stored record as JSON (`{"id", "recorded_at", "record"}`) with its edge.
fn item_json(edge_id: &str, stored: &[u8]) -> serde_json::Value {
    let mut value = serde_json::to_value(EnvelopeJson(stored)).unwrap_or(serde_json::Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("edge_id".into(), edge_id.into());
    }
    value
}

/// `GET /v1/audit?edge=&after=&limit=`.
pub(super) async fn read_audit(
    State(hub): State<Hub>,
    identity: Option<Extension<EdgeIdentity>>,
    query: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Response, Reject> {
    consumer_only(identity.as_ref().map(|Extension(i)| i), "the audit records")?;
    let Query(params) = query.map_err(|e| Reject::bad_request("bad query", e.body_text()))?;
    let edge_id = params.edge.unwrap_or_default();
    if !is_valid_edge_id(&edge_id) {
        return Err(Reject::bad_request(
            "bad edge id",
            "edge= must name an edge: 1-64 characters of A-Z a-z 0-9 . _ -",
        ));
    }
    let after = seq_param("after", params.after.as_deref())?.unwrap_or(0);
    let limit = limit_param(params.limit.as_deref())?;
    let mut rows = hub.store.audit_page(&edge_id, after, limit + 1).await.map_err(Reject::store)?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(|(id, _)| *id) } else { None };
    // A page of up to 1,000 records is milliseconds of CPU: not on the async workers.
    let items =
        blocking(move || rows.iter().map(|(_, stored)| item_json(&edge_id, stored)).collect::<Vec<_>>()).await?;
    Ok(Json(serde_json::json!({ "items": items, "next": next })).into_response())
}
