//! The hub's database: `hub.redb` in the state directory.
//!
//! Tables (keys are fixed types, values opaque bytes, so a later redb major leaves them alone):
//!
//! | table | key → value | holds |
//! | --- | --- | --- |
//! | `hub_meta` | `&str → u64` | `schema_version` |
//! | `edges` | `stream → (stored_through, events stored)` | one row per stream that ever wrote |
//! | `events` | `(stream, seq) → bytes` | each envelope exactly as the edge sent it |
//! | `skipped` | `(stream, seq) → ()` | sequence numbers the edge parked as dead letters |
//! | `epochs` | `(edge_id, epoch) → msgpack` | epochs above 0: parent, fork point, creation time |
//! | `audit` | `(edge_id, id) → bytes` | each edge's audit records as it sent them ([`super::audit_redb`]) |
//!
//! A *stream* is one epoch of an edge's events: epoch 0 under the edge id itself (the layout
//! of schema 1, which this binary opens unchanged), epoch `n` under `"{edge_id}#{n}"` (see
//! [`super::epochs`]).
//!
//! What commits together: one accepted batch is one write transaction with
//! `Durability::Immediate` — its envelopes, its skipped sequence numbers and the stream's new
//! `stored_through` — and the caller answers `200` only after [`RedbStore`]'s method returned.
//! A crash before the commit leaves the previous state whole; the edge sends the batch again.
//! A new epoch (its `epochs` row and its `edges` row at `stored_through = fork_at`) is one
//! transaction too.
//!
//! Deduplication: the position check (`first == stored_through + 1`), the chain check (the
//! event held at `first - 1` is the batch's predecessor) and the inserts happen in the same
//! write transaction, and redb runs one writer at a time, so two deliveries of the same batch
//! (two connections, a retry racing its original) store it once: the second sees the first's
//! `stored_through` and is answered `409`.
//!
//! Versions: schema 1 had no `epochs` table; opening it creates the table (2). A newer schema
//! is refused. The `audit` table is created by its first write and is no new schema: an older
//! hub opens the file and leaves the table alone.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::HubError;
use super::epochs::{self, EPOCHS, EpochRow, Segment, storage, stream_key};
pub use super::outcome::{Appended, BatchRange, ForkOutcome, HistoryItem, HubPosition, Redelivered};
use crate::sync::wire::{EpochSummary, EventRef, ForkRequest, Forked, Position, Received};

/// `schema_version → u64`.
const META: TableDefinition<&str, u64> = TableDefinition::new("hub_meta");
/// `stream → (stored_through, number of events stored)`.
const EDGES: TableDefinition<&str, (u64, u64)> = TableDefinition::new("edges");
/// `(stream, seq) → envelope bytes as received`.
const EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("events");
/// `(stream, seq)`: skipped (dead-lettered) sequence numbers not redelivered yet.
const SKIPPED: TableDefinition<(&str, u64), ()> = TableDefinition::new("skipped");

/// The layout this binary writes.
pub const SCHEMA_VERSION: u64 = 2;

/// The database file's name inside the state directory.
pub const FILE_NAME: &str = "hub.redb";

/// The hub's store. Cheap to clone (the database is shared); every method blocks on disk
/// I/O, so async callers run them on the blocking pool.
#[derive(Debug, Clone)]
pub struct RedbStore {
    pub(super) db: Arc<Database>,
}

/// redb's page cache. Its default (1 GiB) let a catch-up of 1M events grow the hub to
/// 1.3 GB resident; batches are appended and read back rarely, so a small cache costs
/// little (see `BENCHMARKS.md`).
const CACHE_BYTES: usize = 64 << 20;

impl RedbStore {
    /// Opens `state_dir/hub.redb`, creating the directory and the file if needed, and
    /// bringing an older layout to this one.
    pub fn open(state_dir: &Path) -> Result<RedbStore, HubError> {
        let path = state_dir.join(FILE_NAME);
        let open_err = |source: redb::Error| HubError::Open { path: path.clone(), source: Box::new(source) };
        let created = create_durably(state_dir, &path)?;
        let db = Database::builder().set_cache_size(CACHE_BYTES).create(&path).map_err(|e| open_err(e.into()))?;
        let txn = db.begin_write().map_err(|e| open_err(e.into()))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| open_err(e.into()))?;
            let found = meta.get("schema_version").map_err(|e| open_err(e.into()))?.map(|v| v.value());
            match found {
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(HubError::NewerSchema { path, found: v, known: SCHEMA_VERSION });
                }
                // Schema 1 lacked only the `epochs` table, created below.
                Some(v) if v == SCHEMA_VERSION => {}
                _ => {
                    meta.insert("schema_version", SCHEMA_VERSION).map_err(|e| open_err(e.into()))?;
                }
            }
            txn.open_table(EDGES).map_err(|e| open_err(e.into()))?;
            txn.open_table(EVENTS).map_err(|e| open_err(e.into()))?;
            txn.open_table(SKIPPED).map_err(|e| open_err(e.into()))?;
            txn.open_table(EPOCHS).map_err(|e| open_err(e.into()))?;
        }
        txn.commit().map_err(|e| open_err(e.into()))?;
        if created {
            tracing::info!(path = %path.display(), "created the hub database");
        }
        Ok(RedbStore { db: Arc::new(db) })
    }

    /// The last sequence number stored (or skipped) for `edge_id` in epoch 0; 0 for an
    /// unknown edge.
    pub fn stored_through(&self, edge_id: &str) -> Result<u64, HubError> {
        self.stored_through_in(edge_id, 0).map(Option::unwrap_or_default)
    }

    /// The last sequence number stored (or skipped) in `epoch`; `None` for an epoch the hub
    /// does not have (epoch 0 always exists, at 0 for an unknown edge).
    pub fn stored_through_in(&self, edge_id: &str, epoch: u64) -> Result<Option<u64>, HubError> {
        let txn = self.db.begin_read().map_err(storage)?;
        if epoch > 0 && epochs::row(&txn.open_table(EPOCHS).map_err(storage)?, edge_id, epoch)?.is_none() {
            return Ok(None);
        }
        let edges = txn.open_table(EDGES).map_err(storage)?;
        Ok(Some(edges.get(stream_key(edge_id, epoch).as_ref()).map_err(storage)?.map_or(0, |v| v.value().0)))
    }

    /// Up to `limit` stored envelopes of `edge_id`'s epoch 0 with `seq > after`, ascending, as
    /// received.
    pub fn events(&self, edge_id: &str, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, HubError> {
        let items = self.history(edge_id, 0, after, limit)?.map(|(items, _)| items).unwrap_or_default();
        Ok(items.into_iter().map(|(seq, _, bytes)| (seq, bytes)).collect())
    }

    /// Up to `limit` events of the history of `epoch` with `seq > after`, ascending, and the
    /// epoch's `stored_through`; `None` for an epoch the hub does not have.
    pub fn history(
        &self,
        edge_id: &str,
        epoch: u64,
        after: u64,
        limit: usize,
    ) -> Result<Option<(Vec<HistoryItem>, u64)>, HubError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let Some(segments) = epochs::lineage(&txn.open_table(EPOCHS).map_err(storage)?, edge_id, epoch)? else {
            return Ok(None);
        };
        let events = txn.open_table(EVENTS).map_err(storage)?;
        let mut out = Vec::with_capacity(limit.min(1024));
        for segment in &segments {
            let from = after.max(segment.after);
            if out.len() >= limit || from >= segment.through {
                continue;
            }
            let stream = segment.stream.as_str();
            for entry in events.range((stream, from + 1)..=(stream, segment.through)).map_err(storage)? {
                if out.len() >= limit {
                    break;
                }
                let (key, value) = entry.map_err(storage)?;
                out.push((key.value().1, segment.epoch, value.value().to_vec()));
            }
        }
        let edges = txn.open_table(EDGES).map_err(storage)?;
        let stored_through =
            edges.get(stream_key(edge_id, epoch).as_ref()).map_err(storage)?.map_or(0, |v| v.value().0);
        Ok(Some((out, stored_through)))
    }

    /// The skipped sequence numbers of `edge_id`'s epoch 0 not redelivered yet, ascending.
    pub fn skipped(&self, edge_id: &str) -> Result<Vec<u64>, HubError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let skipped = txn.open_table(SKIPPED).map_err(storage)?;
        skipped_in(&skipped, edge_id)
    }

    /// Where the hub is in `epoch` of `edge_id`, read in one transaction, with the last event
    /// at or below `at` when asked; `None` for an epoch the hub does not have, and for epoch 0
    /// of an edge it never heard from (no stream, no epoch). On epoch 0 it lists every epoch
    /// of the edge.
    pub fn position(&self, edge_id: &str, epoch: u64, at: Option<u64>) -> Result<Option<Position>, HubError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let epochs_table = txn.open_table(EPOCHS).map_err(storage)?;
        let Some(segments) = epochs::lineage(&epochs_table, edge_id, epoch)? else { return Ok(None) };
        let edges = txn.open_table(EDGES).map_err(storage)?;
        let events = txn.open_table(EVENTS).map_err(storage)?;
        let stream = stream_key(edge_id, epoch);
        let row = edges.get(stream.as_ref()).map_err(storage)?.map(|v| v.value());
        if epoch == 0 && row.is_none() && epochs::rows(&epochs_table, edge_id)?.is_empty() {
            return Ok(None);
        }
        let (stored_through, count) = row.unwrap_or((0, 0));
        let own = segments.last().expect("a lineage ends with the epoch asked for");
        let mut position = Position {
            edge_id: edge_id.to_owned(),
            epoch,
            stored_through,
            events: count,
            skipped: skipped_in(&txn.open_table(SKIPPED).map_err(storage)?, &stream)?,
            last_event: Some(epochs::event_at_or_below(&events, &segments, stored_through)?),
            event_at: match at {
                Some(at) => Some(epochs::event_at_or_below(&events, &segments, at)?),
                None => None,
            },
            parent: (epoch > 0).then(|| segments[segments.len() - 2].epoch),
            fork_at: own.after,
            epochs: Vec::new(),
        };
        if epoch == 0 {
            position.epochs.push(EpochSummary { epoch: 0, parent: None, fork_at: 0, stored_through, events: count });
            for (n, row) in epochs::rows(&epochs_table, edge_id)? {
                let (through, count) = edges
                    .get(stream_key(edge_id, n).as_ref())
                    .map_err(storage)?
                    .map_or((row.fork_at, 0), |v| v.value());
                position.epochs.push(EpochSummary {
                    epoch: n,
                    parent: Some(row.parent),
                    fork_at: row.fork_at,
                    stored_through: through,
                    events: count,
                });
            }
        }
        Ok(Some(position))
    }

    /// Where the hub is in `epoch` (`stored_through` and `last_event` only, for the check of
    /// a batch's position); `None` for an epoch the hub does not have.
    pub fn head(&self, edge_id: &str, epoch: u64) -> Result<Option<HubPosition>, HubError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let Some(segments) = epochs::lineage(&txn.open_table(EPOCHS).map_err(storage)?, edge_id, epoch)? else {
            return Ok(None);
        };
        let edges = txn.open_table(EDGES).map_err(storage)?;
        let stored_through =
            edges.get(stream_key(edge_id, epoch).as_ref()).map_err(storage)?.map_or(0, |v| v.value().0);
        let last_event =
            epochs::event_at_or_below(&txn.open_table(EVENTS).map_err(storage)?, &segments, stored_through)?;
        Ok(Some(HubPosition { stored_through, last_event }))
    }

    /// Stores the batch `range` of `edge_id`'s `epoch` (its `envelopes` and `skipped` sequence
    /// numbers, already checked with [`crate::sync::wire::check_batch`]) if and only if
    /// `first == stored_through + 1` and the event held at `first - 1` is the batch's
    /// predecessor, in one durable transaction.
    pub(crate) fn append(
        &self,
        edge_id: &str,
        epoch: u64,
        range: BatchRange,
        envelopes: &[Received],
        skipped: &[u64],
    ) -> Result<Appended, HubError> {
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::Immediate).map_err(storage)?;
        let stream = stream_key(edge_id, epoch);
        let outcome = {
            let Some(segments) = epochs::lineage(&txn.open_table(EPOCHS).map_err(storage)?, edge_id, epoch)? else {
                return Ok(Appended::NoEpoch);
            };
            let mut edges = txn.open_table(EDGES).map_err(storage)?;
            let mut events = txn.open_table(EVENTS).map_err(storage)?;
            let (stored_through, count) = edges.get(stream.as_ref()).map_err(storage)?.map_or((0, 0), |v| v.value());
            let position = HubPosition {
                stored_through,
                last_event: epochs::event_at_or_below(&events, &segments, stored_through)?,
            };
            if range.first != stored_through.saturating_add(1) {
                Appended::OutOfOrder(position)
            } else if let Some(broken) = chain_broken(&events, &segments, range, position)? {
                broken
            } else {
                for e in envelopes {
                    events.insert((stream.as_ref(), e.head.seq), e.bytes.as_slice()).map_err(storage)?;
                }
                let mut skipped_table = txn.open_table(SKIPPED).map_err(storage)?;
                for &seq in skipped {
                    skipped_table.insert((stream.as_ref(), seq), ()).map_err(storage)?;
                }
                edges.insert(stream.as_ref(), (range.last, count + envelopes.len() as u64)).map_err(storage)?;
                let last_event = epochs::event_at_or_below(&events, &segments, range.last)?;
                Appended::Stored(HubPosition { stored_through: range.last, last_event })
            }
        };
        match outcome {
            Appended::Stored(_) => txn.commit().map_err(storage)?,
            _ => txn.abort().map_err(storage)?,
        }
        Ok(outcome)
    }

    /// Stores one skipped event sent again (`envelope`, checked to belong to `edge_id`):
    /// only a sequence number recorded as skipped in the history of `epoch` is stored (in the
    /// epoch's stream that holds that number), in one durable transaction.
    pub(crate) fn redeliver(&self, edge_id: &str, epoch: u64, envelope: &Received) -> Result<Redelivered, HubError> {
        let seq = envelope.head.seq;
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::Immediate).map_err(storage)?;
        let outcome = {
            let Some(segments) = epochs::lineage(&txn.open_table(EPOCHS).map_err(storage)?, edge_id, epoch)? else {
                return Ok(Redelivered::NoEpoch);
            };
            let mut edges = txn.open_table(EDGES).map_err(storage)?;
            let mut skipped = txn.open_table(SKIPPED).map_err(storage)?;
            let mut events = txn.open_table(EVENTS).map_err(storage)?;
            let stored_through =
                edges.get(stream_key(edge_id, epoch).as_ref()).map_err(storage)?.map_or(0, |v| v.value().0);
            let position = |events: &redb::Table<(&'static str, u64), &'static [u8]>| -> Result<HubPosition, HubError> {
                Ok(HubPosition {
                    stored_through,
                    last_event: epochs::event_at_or_below(events, &segments, stored_through)?,
                })
            };
            match epochs::owner(&segments, seq).filter(|_| seq <= stored_through) {
                Some(owner) if skipped.remove((owner.stream.as_str(), seq)).map_err(storage)?.is_some() => {
                    events.insert((owner.stream.as_str(), seq), envelope.bytes.as_slice()).map_err(storage)?;
                    let (through, count) =
                        edges.get(owner.stream.as_str()).map_err(storage)?.map_or((0, 0), |v| v.value());
                    edges.insert(owner.stream.as_str(), (through, count + 1)).map_err(storage)?;
                    Redelivered::Stored(position(&events)?)
                }
                Some(owner) if events.get((owner.stream.as_str(), seq)).map_err(storage)?.is_some() => {
                    Redelivered::AlreadyStored(position(&events)?)
                }
                _ => Redelivered::NotSkipped(position(&events)?),
            }
        };
        match outcome {
            Redelivered::Stored(_) => txn.commit().map_err(storage)?,
            _ => txn.abort().map_err(storage)?,
        }
        Ok(outcome)
    }

    /// Starts a new epoch of `edge_id` forking from `request.parent` after `request.fork_at`,
    /// or answers the epoch an identical earlier request made; in one durable transaction.
    pub(crate) fn fork(&self, edge_id: &str, request: &ForkRequest) -> Result<ForkOutcome, HubError> {
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::Immediate).map_err(storage)?;
        let outcome = {
            let mut epochs_table = txn.open_table(EPOCHS).map_err(storage)?;
            let Some(segments) = epochs::lineage(&epochs_table, edge_id, request.parent)? else {
                return Ok(ForkOutcome::NoParent);
            };
            let mut edges = txn.open_table(EDGES).map_err(storage)?;
            let events = txn.open_table(EVENTS).map_err(storage)?;
            let existing = epochs::rows(&epochs_table, edge_id)?;
            let same = |row: &EpochRow| {
                row.parent == request.parent
                    && row.fork_at == request.fork_at
                    && row.fork_event_id == request.fork_event_id
            };
            let parent_through =
                edges.get(stream_key(edge_id, request.parent).as_ref()).map_err(storage)?.map_or(0, |v| v.value().0);
            let held = epochs::event_at_or_below(&events, &segments, request.fork_at)?;
            if let Some((epoch, _)) = existing.iter().find(|(_, row)| same(row)) {
                let through =
                    edges.get(stream_key(edge_id, *epoch).as_ref()).map_err(storage)?.map_or(0, |v| v.value().0);
                ForkOutcome::Existing(Forked {
                    epoch: *epoch,
                    parent: request.parent,
                    fork_at: request.fork_at,
                    stored_through: through,
                })
            } else if request.fork_at > parent_through {
                ForkOutcome::BeyondParent { stored_through: parent_through }
            } else if !fork_point_matches(held, request) {
                ForkOutcome::EventDiffers { held }
            } else {
                let epoch = existing.last().map_or(0, |(n, _)| *n) + 1;
                let row = EpochRow {
                    parent: request.parent,
                    fork_at: request.fork_at,
                    fork_event_id: request.fork_event_id,
                    created_at: jiff::Timestamp::now(),
                };
                let bytes =
                    rmp_serde::to_vec_named(&row).map_err(|e| storage(redb::StorageError::Corrupted(e.to_string())))?;
                epochs_table.insert((edge_id, epoch), bytes.as_slice()).map_err(storage)?;
                edges.insert(stream_key(edge_id, epoch).as_ref(), (request.fork_at, 0)).map_err(storage)?;
                ForkOutcome::Created(Forked {
                    epoch,
                    parent: request.parent,
                    fork_at: request.fork_at,
                    stored_through: request.fork_at,
                })
            }
        };
        match outcome {
            ForkOutcome::Created(_) => txn.commit().map_err(storage)?,
            _ => txn.abort().map_err(storage)?,
        }
        Ok(outcome)
    }
}

/// The chain check of a batch that starts right after `position`: `Some` when the hub holds
/// an event at `first - 1` that is not the batch's predecessor.
fn chain_broken(
    events: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    segments: &[Segment],
    range: BatchRange,
    position: HubPosition,
) -> Result<Option<Appended>, HubError> {
    let (Some(prev), Some(seq)) = (range.prev_event_id, range.first.checked_sub(1).filter(|s| *s > 0)) else {
        return Ok(None);
    };
    Ok(match epochs::event_at_or_below(events, segments, seq)? {
        Some(held) if held.seq == seq && held.event_id != prev => {
            Some(Appended::ChainBroken { position, seq, held: held.event_id })
        }
        _ => None,
    })
}

/// The parent's event at the fork point is the one the edge named (or the parent stores none
/// there: skipped, or the fork is at 0).
fn fork_point_matches(held: Option<EventRef>, request: &ForkRequest) -> bool {
    match held.filter(|e| e.seq == request.fork_at) {
        Some(e) => request.fork_event_id == Some(e.event_id),
        None => true,
    }
}

fn skipped_in(table: &impl ReadableTable<(&'static str, u64), ()>, edge_id: &str) -> Result<Vec<u64>, HubError> {
    let mut out = Vec::new();
    for row in table.range((edge_id, 0)..=(edge_id, u64::MAX)).map_err(storage)? {
        out.push(row.map_err(storage)?.0.value().1);
    }
    Ok(out)
}

/// Creates the state directory and a complete, empty database with durable names (see
/// [`crate::log::store::create_database_durably`]). Returns whether the file was created.
fn create_durably(state_dir: &Path, path: &Path) -> Result<bool, HubError> {
    crate::log::store::create_database_durably(path, None)
        .map_err(|source| HubError::StateDir { path: state_dir.to_owned(), source })
}

/// The database path for `state_dir`.
pub fn database_path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
