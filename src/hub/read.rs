//! Reading back what the hub holds: an edge's position in an epoch, and the events of an
//! epoch's history page by page.
//!
//! `GET /v1/edges/{edge_id}[/epochs/{n}][?at=SEQ]` → [`crate::sync::wire::Position`] (epoch 0
//! lists every epoch of the edge); `GET /v1/edges/{edge_id}[/epochs/{n}]/events?after=&limit=`
//! → `{"items": [{"seq", "epoch", "event"}], "next", "stored_through"}`: the whole history of
//! the epoch, the parent's events up to the fork point included (each item says which epoch's
//! stream holds it), the stored msgpack converted generically ([`super::json`]).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};

use super::json::{EnvelopeJson, render};
use super::routes::{Hub, Reject, epoch_number};
use crate::sync::wire::Position;

/// Events per page of `GET …/events` when `limit` is not given, and the most one page may hold.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// A `limit` parameter: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent (400 otherwise).
pub(super) fn limit_param(value: Option<&str>) -> Result<usize, Reject> {
    match value {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| Reject::bad_request("bad query", format!("limit must be between 1 and {MAX_LIMIT}"))),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct AtParams {
    at: Option<String>,
}

/// A sequence-number parameter (400 when it is not one).
pub(super) fn seq_param(name: &str, value: Option<&str>) -> Result<Option<u64>, Reject> {
    value
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| Reject::bad_request("bad query", format!("{name} must be a sequence number, got {v:?}")))
        })
        .transpose()
}

/// `GET /v1/edges/{edge_id}`: epoch 0, with every epoch listed; `404` for an edge the hub
/// never heard from (so an edge can tell a hub that holds nothing of it from one at zero).
pub(super) async fn edge_position(
    State(hub): State<Hub>,
    Path(edge_id): Path<String>,
    query: Result<Query<AtParams>, QueryRejection>,
) -> Result<Json<Position>, Reject> {
    position(hub, edge_id, 0, query).await
}

/// `GET /v1/edges/{edge_id}/epochs/{epoch}`.
pub(super) async fn epoch_position(
    State(hub): State<Hub>,
    Path((edge_id, epoch)): Path<(String, String)>,
    query: Result<Query<AtParams>, QueryRejection>,
) -> Result<Json<Position>, Reject> {
    position(hub, edge_id, epoch_number(&epoch)?, query).await
}

async fn position(
    hub: Hub,
    edge_id: String,
    epoch: u64,
    query: Result<Query<AtParams>, QueryRejection>,
) -> Result<Json<Position>, Reject> {
    let Query(params) = query.map_err(|e| Reject::bad_request("bad query", e.body_text()))?;
    let at = seq_param("at", params.at.as_deref())?;
    match hub.store.position(&edge_id, epoch, at).await.map_err(Reject::store)? {
        Some(position) => Ok(Json(position)),
        None if epoch == 0 => Err(Reject::unknown_edge(&edge_id)),
        None => Err(Reject::no_epoch(epoch)),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct PageParams {
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
    /// The epoch whose stream holds the event (the parent's, up to the fork point).
    epoch: u64,
    /// The stored envelope, written as JSON when the page is.
    #[serde(serialize_with = "as_json")]
    event: Vec<u8>,
}

fn as_json<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    EnvelopeJson(bytes).serialize(serializer)
}

/// `GET /v1/edges/{edge_id}/events?after=SEQ&limit=N`: epoch 0's events with `seq > after`.
pub(super) async fn read_events(
    State(hub): State<Hub>,
    Path(edge_id): Path<String>,
    query: Result<Query<PageParams>, QueryRejection>,
) -> Result<axum::response::Response, Reject> {
    page(hub, edge_id, 0, query).await
}

/// `GET /v1/edges/{edge_id}/epochs/{epoch}/events?after=SEQ&limit=N`: the epoch's history.
pub(super) async fn epoch_events(
    State(hub): State<Hub>,
    Path((edge_id, epoch)): Path<(String, String)>,
    query: Result<Query<PageParams>, QueryRejection>,
) -> Result<axum::response::Response, Reject> {
    page(hub, edge_id, epoch_number(&epoch)?, query).await
}

async fn page(
    hub: Hub,
    edge_id: String,
    epoch: u64,
    query: Result<Query<PageParams>, QueryRejection>,
) -> Result<axum::response::Response, Reject> {
    let Query(params) = query.map_err(|e| Reject::bad_request("bad query", e.body_text()))?;
    let after = seq_param("after", params.after.as_deref())?.unwrap_or(0);
    let limit = limit_param(params.limit.as_deref())?;
    let Some((mut rows, stored_through)) =
        hub.store.history(&edge_id, epoch, after, limit + 1).await.map_err(Reject::store)?
    else {
        return Err(Reject::no_epoch(epoch));
    };
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(|(seq, _, _)| *seq) } else { None };
    let items = rows.into_iter().map(|(seq, epoch, event)| ItemJson { seq, epoch, event }).collect();
    render(PageJson { items, next, stored_through }).await
}
