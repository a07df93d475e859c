//! Writing the PostgreSQL store: a batch, a redelivered event and a new epoch, each in one
//! transaction that first locks the stream's row (see the module docs of [`super`]).

use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::{GenericClient, Transaction};

use super::super::HubError;
use super::super::outcome::{Appended, BatchRange, ForkOutcome, HubPosition, Redelivered};
use super::copy::copy_events;
use super::read::{event_at_or_below, stream_rows};
use super::{PgStore, Segment, StreamRow, db_error, lineage, sql, unsigned};
use crate::sync::wire::{ForkRequest, Forked, Received};

/// The channel the feed's long polls listen on.
pub(super) const CHANNEL: &str = "zenedge_hub_events";

/// The stream's row, locked until the transaction ends; `None` when it does not exist.
async fn lock_stream(tx: &Transaction<'_>, edge_id: &str, epoch: u64) -> Result<Option<StreamRow>, HubError> {
    let statement = tx
        .prepare_cached(
            "SELECT epoch, parent, fork_at, fork_event_id, stored_through, events
             FROM hub_streams WHERE edge_id = $1 AND epoch = $2 FOR UPDATE",
        )
        .await
        .map_err(db_error)?;
    let row = tx.query_opt(&statement, &[&edge_id, &sql(epoch)?]).await.map_err(db_error)?;
    Ok(row.map(|r| StreamRow {
        epoch: unsigned(r.get(0)),
        parent: r.get::<_, Option<i64>>(1).map(unsigned),
        fork_at: unsigned(r.get(2)),
        fork_event_id: r.get(3),
        stored_through: unsigned(r.get(4)),
        events: unsigned(r.get(5)),
    }))
}

/// Locks `epoch`'s row (creating epoch 0's for a new edge) and reads the epoch's lineage;
/// `None` when the epoch does not exist.
async fn lock_epoch(
    tx: &Transaction<'_>,
    edge_id: &str,
    epoch: u64,
) -> Result<Option<(StreamRow, Vec<Segment>)>, HubError> {
    let mut own = lock_stream(tx, edge_id, epoch).await?;
    if own.is_none() && epoch == 0 {
        tx.execute(
            "INSERT INTO hub_streams (edge_id, epoch, stored_through) VALUES ($1, 0, 0) ON CONFLICT DO NOTHING",
            &[&edge_id],
        )
        .await
        .map_err(db_error)?;
        own = lock_stream(tx, edge_id, epoch).await?;
    }
    let Some(own) = own else { return Ok(None) };
    let segments = if epoch == 0 {
        vec![Segment { epoch: 0, after: 0, through: u64::MAX }]
    } else {
        let Some(segments) = lineage(&stream_rows(tx, edge_id).await?, epoch)? else { return Ok(None) };
        segments
    };
    Ok(Some((own, segments)))
}

impl PgStore {
    /// Stores the checked batch `range` of `edge_id`'s `epoch` iff it starts right after
    /// `stored_through` and the event held at `first - 1` is its predecessor; one transaction.
    pub async fn append(
        &self,
        edge_id: &str,
        epoch: u64,
        range: BatchRange,
        envelopes: Arc<Vec<Received>>,
        skipped: &[u64],
    ) -> Result<Appended, HubError> {
        let last = sql(range.last)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error)?;
        let Some((own, segments)) = lock_epoch(&tx, edge_id, epoch).await? else { return Ok(Appended::NoEpoch) };
        let before = own.stored_through;
        if range.first != before.saturating_add(1) {
            let last_event = event_at_or_below(&tx, edge_id, &segments, before).await?;
            return Ok(Appended::OutOfOrder(HubPosition { stored_through: before, last_event }));
        }
        let previous = match (range.prev_event_id, range.first.checked_sub(1).filter(|s| *s > 0)) {
            (Some(_), Some(seq)) => event_at_or_below(&tx, edge_id, &segments, seq).await?,
            _ => None,
        };
        if let (Some(prev), Some(held)) = (range.prev_event_id, previous)
            && held.seq == range.first - 1
            && held.event_id != prev
        {
            let last_event = event_at_or_below(&tx, edge_id, &segments, before).await?;
            let position = HubPosition { stored_through: before, last_event };
            return Ok(Appended::ChainBroken { position, seq: held.seq, held: held.event_id });
        }
        let started = Instant::now();
        let count = envelopes.len() as i64;
        let last_envelope = envelopes.last().map(|e| (e.head.seq, e.head.event_id));
        copy_events(&tx, edge_id, epoch, envelopes).await?;
        let copy_seconds = started.elapsed().as_secs_f64();
        if !skipped.is_empty() {
            let seqs = skipped.iter().map(|s| sql(*s)).collect::<Result<Vec<i64>, _>>()?;
            tx.execute(
                "INSERT INTO hub_skipped (edge_id, epoch, seq) SELECT $1, $2, unnest($3::bigint[])",
                &[&edge_id, &sql(epoch)?, &seqs],
            )
            .await
            .map_err(db_error)?;
        }
        let update = tx
            .prepare_cached(
                "UPDATE hub_streams SET stored_through = $3, events = events + $4, updated_at = now()
                 WHERE edge_id = $1 AND epoch = $2",
            )
            .await
            .map_err(db_error)?;
        tx.execute(&update, &[&edge_id, &sql(epoch)?, &last, &count]).await.map_err(db_error)?;
        tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL]).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        self.copy_seconds.observe(copy_seconds);
        let last_event = match last_envelope {
            Some((seq, event_id)) => Some(crate::sync::wire::EventRef { seq, event_id }),
            None => event_at_or_below(&client, edge_id, &segments, range.last).await?,
        };
        Ok(Appended::Stored(HubPosition { stored_through: range.last, last_event }))
    }

    /// Stores one skipped event sent again, in the stream of the lineage that holds its seq.
    pub async fn redeliver(&self, edge_id: &str, epoch: u64, envelope: &Received) -> Result<Redelivered, HubError> {
        let seq = envelope.head.seq;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error)?;
        let Some((own, segments)) = lock_epoch(&tx, edge_id, epoch).await? else {
            return Ok(Redelivered::NoEpoch);
        };
        let stored_through = own.stored_through;
        let owner = segments.iter().find(|s| s.after < seq && seq <= s.through).filter(|_| seq <= stored_through);
        let outcome = match owner {
            Some(owner) => {
                let removed = tx
                    .execute(
                        "DELETE FROM hub_skipped WHERE edge_id = $1 AND epoch = $2 AND seq = $3",
                        &[&edge_id, &sql(owner.epoch)?, &sql(seq)?],
                    )
                    .await
                    .map_err(db_error)?;
                if removed == 1 {
                    copy_events(&tx, edge_id, owner.epoch, Arc::new(vec![envelope.clone()])).await?;
                    tx.execute(
                        "UPDATE hub_streams SET events = events + 1, updated_at = now() WHERE edge_id = $1 AND epoch = $2",
                        &[&edge_id, &sql(owner.epoch)?],
                    )
                    .await
                    .map_err(db_error)?;
                    tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL]).await.map_err(db_error)?;
                    Some(true)
                } else {
                    let held = tx
                        .query_opt(
                            "SELECT 1 FROM hub_events WHERE edge_id = $1 AND epoch = $2 AND seq = $3",
                            &[&edge_id, &sql(owner.epoch)?, &sql(seq)?],
                        )
                        .await
                        .map_err(db_error)?;
                    held.map(|_| false)
                }
            }
            None => None,
        };
        let last_event = event_at_or_below(&tx, edge_id, &segments, stored_through).await?;
        let position = HubPosition { stored_through, last_event };
        // Only a stored event commits (an unknown edge's epoch-0 row made by the lock goes too).
        match outcome {
            Some(true) => tx.commit().await.map_err(db_error)?,
            _ => tx.rollback().await.map_err(db_error)?,
        }
        Ok(match outcome {
            Some(true) => Redelivered::Stored(position),
            Some(false) => Redelivered::AlreadyStored(position),
            None => Redelivered::NotSkipped(position),
        })
    }

    /// A new epoch forking from `request.parent` after `request.fork_at`, or the one an
    /// identical earlier request made; one transaction, under the parent's row lock.
    pub async fn fork(&self, edge_id: &str, request: &ForkRequest) -> Result<ForkOutcome, HubError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error)?;
        let Some((parent, segments)) = lock_epoch(&tx, edge_id, request.parent).await? else {
            return Ok(ForkOutcome::NoParent);
        };
        let rows = stream_rows(&tx, edge_id).await?;
        let same = rows.iter().find(|r| {
            r.epoch > 0
                && r.parent == Some(request.parent)
                && r.fork_at == request.fork_at
                && r.fork_event_id == request.fork_event_id
        });
        let held = event_at_or_below(&tx, edge_id, &segments, request.fork_at).await?;
        let outcome = if let Some(row) = same {
            ForkOutcome::Existing(Forked {
                epoch: row.epoch,
                parent: request.parent,
                fork_at: request.fork_at,
                stored_through: row.stored_through,
            })
        } else if request.fork_at > parent.stored_through {
            ForkOutcome::BeyondParent { stored_through: parent.stored_through }
        } else if held.filter(|e| e.seq == request.fork_at).is_some_and(|e| request.fork_event_id != Some(e.event_id)) {
            ForkOutcome::EventDiffers { held }
        } else {
            let epoch = rows.iter().map(|r| r.epoch).max().unwrap_or(0) + 1;
            tx.execute(
                "INSERT INTO hub_streams (edge_id, epoch, parent, fork_at, fork_event_id, stored_through)
                 VALUES ($1, $2, $3, $4, $5, $4)",
                &[&edge_id, &sql(epoch)?, &sql(request.parent)?, &sql(request.fork_at)?, &request.fork_event_id],
            )
            .await
            .map_err(db_error)?;
            ForkOutcome::Created(Forked {
                epoch,
                parent: request.parent,
                fork_at: request.fork_at,
                stored_through: request.fork_at,
            })
        };
        match outcome {
            // Epoch 0's row may have been created for a new edge: keep it with the new epoch.
            ForkOutcome::Created(_) => tx.commit().await.map_err(db_error)?,
            _ => tx.rollback().await.map_err(db_error)?,
        }
        Ok(outcome)
    }
}
