//! Reading the PostgreSQL store: an epoch's position and its history, along its lineage (the
//! same answers as the redb store's [`crate::hub::epochs`]).

use deadpool_postgres::GenericClient;

use super::super::HubError;
use super::super::outcome::{HistoryItem, HubPosition};
use super::{PgStore, Segment, StreamRow, db_error, lineage, sql, unsigned};
use crate::sync::wire::{EpochSummary, EventRef, Position};

const STREAMS: &str = "SELECT epoch, parent, fork_at, fork_event_id, stored_through, events
                       FROM hub_streams WHERE edge_id = $1 ORDER BY epoch";

/// Every stream row of `edge_id`, ascending by epoch.
pub(super) async fn stream_rows(client: &impl GenericClient, edge_id: &str) -> Result<Vec<StreamRow>, HubError> {
    let statement = client.prepare_cached(STREAMS).await.map_err(db_error)?;
    let rows = client.query(&statement, &[&edge_id]).await.map_err(db_error)?;
    Ok(rows
        .iter()
        .map(|r| StreamRow {
            epoch: unsigned(r.get(0)),
            parent: r.get::<_, Option<i64>>(1).map(unsigned),
            fork_at: unsigned(r.get(2)),
            fork_event_id: r.get(3),
            stored_through: unsigned(r.get(4)),
            events: unsigned(r.get(5)),
        })
        .collect())
}

/// The last event stored at or below `seq` in the history `segments`.
pub(super) async fn event_at_or_below(
    client: &impl GenericClient,
    edge_id: &str,
    segments: &[Segment],
    seq: u64,
) -> Result<Option<EventRef>, HubError> {
    let statement = client
        .prepare_cached(
            "SELECT seq, event_id FROM hub_events
             WHERE edge_id = $1 AND epoch = $2 AND seq > $3 AND seq <= $4 ORDER BY seq DESC LIMIT 1",
        )
        .await
        .map_err(db_error)?;
    for segment in segments.iter().rev() {
        let upper = segment.through.min(seq).min(i64::MAX as u64);
        if upper <= segment.after {
            continue;
        }
        let params = [sql(segment.epoch)?, sql(segment.after)?, sql(upper)?];
        let row =
            client.query_opt(&statement, &[&edge_id, &params[0], &params[1], &params[2]]).await.map_err(db_error)?;
        if let Some(row) = row {
            return Ok(Some(EventRef { seq: unsigned(row.get(0)), event_id: row.get(1) }));
        }
    }
    Ok(None)
}

impl PgStore {
    /// `stored_through` and `last_event` of `epoch`; `None` for an epoch the hub does not have.
    pub async fn head(&self, edge_id: &str, epoch: u64) -> Result<Option<HubPosition>, HubError> {
        let client = self.client().await?;
        let rows = stream_rows(&client, edge_id).await?;
        let Some(segments) = lineage(&rows, epoch)? else { return Ok(None) };
        let stored_through = rows.iter().find(|r| r.epoch == epoch).map_or(0, |r| r.stored_through);
        let last_event = event_at_or_below(&client, edge_id, &segments, stored_through).await?;
        Ok(Some(HubPosition { stored_through, last_event }))
    }

    /// Where the hub is in `epoch` (see [`crate::hub::HubStore::position`]).
    pub async fn position(&self, edge_id: &str, epoch: u64, at: Option<u64>) -> Result<Option<Position>, HubError> {
        let mut client = self.client().await?;
        // One snapshot for every read of the answer.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(db_error)?;
        let rows = stream_rows(&tx, edge_id).await?;
        if epoch == 0 && rows.is_empty() {
            return Ok(None);
        }
        let Some(segments) = lineage(&rows, epoch)? else { return Ok(None) };
        let own = rows.iter().find(|r| r.epoch == epoch).copied();
        let (stored_through, events) = own.map_or((0, 0), |r| (r.stored_through, r.events));
        let skipped = tx
            .query(
                "SELECT seq FROM hub_skipped WHERE edge_id = $1 AND epoch = $2 ORDER BY seq",
                &[&edge_id, &sql(epoch)?],
            )
            .await
            .map_err(db_error)?
            .iter()
            .map(|r| unsigned(r.get(0)))
            .collect();
        let last_event = event_at_or_below(&tx, edge_id, &segments, stored_through).await?;
        let event_at = match at {
            Some(at) => Some(event_at_or_below(&tx, edge_id, &segments, at).await?),
            None => None,
        };
        let mut position = Position {
            edge_id: edge_id.to_owned(),
            epoch,
            stored_through,
            events,
            skipped,
            last_event: Some(last_event),
            event_at,
            parent: own.and_then(|r| r.parent),
            fork_at: own.map_or(0, |r| r.fork_at),
            epochs: Vec::new(),
        };
        if epoch == 0 {
            position.epochs = rows
                .iter()
                .map(|r| EpochSummary {
                    epoch: r.epoch,
                    parent: r.parent,
                    fork_at: r.fork_at,
                    stored_through: r.stored_through,
                    events: r.events,
                })
                .collect();
            if own.is_none() {
                position
                    .epochs
                    .insert(0, EpochSummary { epoch: 0, parent: None, fork_at: 0, stored_through: 0, events: 0 });
            }
        }
        tx.commit().await.map_err(db_error)?;
        Ok(Some(position))
    }

    /// Up to `limit` events of `epoch`'s history with `seq > after`, and its `stored_through`.
    pub async fn history(
        &self,
        edge_id: &str,
        epoch: u64,
        after: u64,
        limit: usize,
    ) -> Result<Option<(Vec<HistoryItem>, u64)>, HubError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(db_error)?;
        let rows = stream_rows(&tx, edge_id).await?;
        let Some(segments) = lineage(&rows, epoch)? else { return Ok(None) };
        let stored_through = rows.iter().find(|r| r.epoch == epoch).map_or(0, |r| r.stored_through);
        let statement = tx
            .prepare_cached(
                "SELECT seq, envelope FROM hub_events
                 WHERE edge_id = $1 AND epoch = $2 AND seq > $3 AND seq <= $4 ORDER BY seq LIMIT $5",
            )
            .await
            .map_err(db_error)?;
        let mut out: Vec<HistoryItem> = Vec::with_capacity(limit.min(1024));
        for segment in &segments {
            let from = after.max(segment.after);
            if out.len() >= limit || from >= segment.through {
                continue;
            }
            let want = i64::try_from(limit - out.len()).unwrap_or(i64::MAX);
            let through = segment.through.min(i64::MAX as u64);
            let found = tx
                .query(
                    &statement,
                    &[&edge_id, &sql(segment.epoch)?, &sql(from.min(i64::MAX as u64))?, &sql(through)?, &want],
                )
                .await
                .map_err(db_error)?;
            out.extend(found.iter().map(|r| (unsigned(r.get(0)), segment.epoch, r.get::<_, Vec<u8>>(1))));
        }
        tx.commit().await.map_err(db_error)?;
        Ok(Some((out, stored_through)))
    }

    /// Every edge's streams, for `zenedge hub check`: (edge_id, epoch, stored_through, events).
    pub async fn streams(&self) -> Result<Vec<(String, u64, u64, u64)>, HubError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT edge_id, epoch, stored_through, events FROM hub_streams ORDER BY edge_id, epoch", &[])
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(|r| (r.get(0), unsigned(r.get(1)), unsigned(r.get(2)), unsigned(r.get(3)))).collect())
    }
}
