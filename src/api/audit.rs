//! `GET /api/v1/audit?after=ID&limit=N`: a page of the audit trail, each record with its
//! DICOM PS3.15 A.5 message. Reading the trail is itself recorded (Audit Log Used) before the
//! page is sent; when that record cannot be committed the answer is 503.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{Extensions, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::params;
use super::{ApiError, ApiState};
use crate::audit::{self, AuditRecord, Requester};

#[derive(Serialize)]
struct Item {
    id: u64,
    recorded_at: jiff::Timestamp,
    record: AuditRecord,
    /// The record as the syslog target receives it.
    xml: String,
}

#[derive(Serialize)]
struct PageJson {
    items: Vec<Item>,
    /// The `after` of the next page; null once the end of the trail was reached.
    next: Option<u64>,
}

/// Who made the request: the authenticated client ([`super::Caller`], put on the request by
/// the route's guard) and the connection's address (an extension the server puts on each
/// request; none for a request without a connection).
pub(super) fn requester(extensions: &Extensions) -> Requester {
    let source = extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0);
    let client = extensions.get::<super::Caller>().map(|c| c.client.clone());
    Requester { client, source }
}

/// Commits `records` before the answer; 503 when the trail cannot take them.
pub(super) async fn recorded(state: &ApiState, records: Vec<AuditRecord>) -> Result<(), ApiError> {
    let result = match &state.journal {
        Some(journal) => journal.record(records).await,
        None => audit::record(&state.log, records).await,
    };
    result.map_err(|e| {
        tracing::warn!(error = %e, "API request refused: its audit record could not be committed");
        let why = match e {
            crate::log::AppendError::DiskReserve { .. } => "free disk space is below store.disk_reserve",
            _ => "the log is not accepting writes",
        };
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!("the audit trail cannot record this request now ({why}); try again later"),
        }
    })
}

pub(super) async fn list(
    State(state): State<ApiState>,
    uri: Uri,
    extensions: Extensions,
    query: Result<Query<params::PageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let (after, limit) = params::page(query)?;
    let path = uri.path_and_query().map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    let used = audit::kinds::audit_log_used(&state.edge_id, &requester(&extensions), &path, jiff::Timestamp::now());
    recorded(&state, vec![used]).await?;
    if let Some(journal) = &state.journal {
        journal.settled(std::time::Duration::from_secs(5)).await;
    }
    let reader = state.reader.clone();
    let page = super::read(move || audit::page(&reader, after, limit)).await?;
    let next = (page.len() == limit).then(|| page.last().map(|r| r.id)).flatten();
    let source = state.audit_source.clone();
    let items = page
        .into_iter()
        .map(|r| Item {
            id: r.id,
            recorded_at: r.recorded_at,
            xml: audit::render(&r.record, &source),
            record: r.record,
        })
        .collect();
    Ok(Json(PageJson { items, next }).into_response())
}
