//! The hub's database: `hub.redb` in the state directory.
//!
//! Tables (keys are fixed types, values opaque bytes, so a later redb major leaves them alone):
//!
//! | table | key → value | holds |
//! | --- | --- | --- |
//! | `hub_meta` | `&str → u64` | `schema_version` |
//! | `edges` | `edge_id → (stored_through, events stored)` | one row per edge that ever wrote |
//! | `events` | `(edge_id, seq) → bytes` | each envelope exactly as the edge sent it |
//! | `skipped` | `(edge_id, seq) → ()` | sequence numbers the edge parked as dead letters |
//!
//! What commits together: one accepted batch is one write transaction with
//! `Durability::Immediate` — its envelopes, its skipped sequence numbers and the edge's new
//! `stored_through` — and the caller answers `200` only after [`HubStore`]'s method returned.
//! A crash before the commit leaves the previous state whole; the edge sends the batch again.
//!
//! Deduplication: the position check (`first == stored_through + 1`) and the inserts happen
//! in the same write transaction, and redb runs one writer at a time, so two deliveries of
//! the same batch (two connections, a retry racing its original) store it once: the second
//! sees the first's `stored_through` and is answered `409`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::HubError;
use crate::sync::wire::Received;

/// `schema_version → u64`.
const META: TableDefinition<&str, u64> = TableDefinition::new("hub_meta");
/// `edge_id → (stored_through, number of events stored)`.
const EDGES: TableDefinition<&str, (u64, u64)> = TableDefinition::new("edges");
/// `(edge_id, seq) → envelope bytes as received`.
const EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("events");
/// `(edge_id, seq)`: skipped (dead-lettered) sequence numbers not redelivered yet.
const SKIPPED: TableDefinition<(&str, u64), ()> = TableDefinition::new("skipped");

/// The layout this binary writes.
pub const SCHEMA_VERSION: u64 = 1;

/// The database file's name inside the state directory.
pub const FILE_NAME: &str = "hub.redb";

/// The hub's store. Cheap to clone (the database is shared); every method blocks on disk
/// I/O, so async callers run them on the blocking pool.
#[derive(Debug, Clone)]
pub struct HubStore {
    db: Arc<Database>,
}

/// What the hub holds for one edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeSummary {
    /// Every sequence number up to this one is stored or skipped.
    pub stored_through: u64,
    /// Envelopes stored.
    pub events: u64,
    /// Skipped sequence numbers not redelivered yet, ascending.
    pub skipped: Vec<u64>,
}

/// The result of [`HubStore::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The batch is durable; the edge's stream now ends at `stored_through`.
    Stored { stored_through: u64 },
    /// The batch does not start right after `stored_through`: nothing was stored.
    OutOfOrder { stored_through: u64 },
}

/// The result of [`HubStore::redeliver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redelivered {
    /// The skipped event is now stored.
    Stored { stored_through: u64 },
    /// The event was stored already: nothing changed.
    AlreadyStored { stored_through: u64 },
    /// The sequence number was never skipped (or lies beyond `stored_through`).
    NotSkipped { stored_through: u64 },
}

/// redb's page cache. Its default (1 GiB) let a catch-up of 1M events grow the hub to
/// 1.3 GB resident; batches are appended and read back rarely, so a small cache costs
/// little (see `BENCHMARKS.md`).
const CACHE_BYTES: usize = 64 << 20;

impl HubStore {
    /// Opens `state_dir/hub.redb`, creating the directory and the file if needed.
    pub fn open(state_dir: &Path) -> Result<HubStore, HubError> {
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
                Some(_) => {}
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION).map_err(|e| open_err(e.into()))?;
                }
            }
            txn.open_table(EDGES).map_err(|e| open_err(e.into()))?;
            txn.open_table(EVENTS).map_err(|e| open_err(e.into()))?;
            txn.open_table(SKIPPED).map_err(|e| open_err(e.into()))?;
        }
        txn.commit().map_err(|e| open_err(e.into()))?;
        if created {
            tracing::info!(path = %path.display(), "created the hub database");
        }
        Ok(HubStore { db: Arc::new(db) })
    }

    /// The last sequence number stored (or skipped) for `edge_id`; 0 for an unknown edge.
    pub fn stored_through(&self, edge_id: &str) -> Result<u64, HubError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let edges = txn.open_table(EDGES).map_err(storage)?;
        Ok(edges.get(edge_id).map_err(storage)?.map_or(0, |v| v.value().0))
    }

    /// Up to `limit` stored envelopes of `edge_id` with `seq > after`, ascending, as received.
    pub fn events(&self, edge_id: &str, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, HubError> {
        let Some(from) = after.checked_add(1) else { return Ok(Vec::new()) };
        let txn = self.db.begin_read().map_err(storage)?;
        let events = txn.open_table(EVENTS).map_err(storage)?;
        let mut out = Vec::with_capacity(limit.min(1024));
        for row in events.range((edge_id, from)..=(edge_id, u64::MAX)).map_err(storage)?.take(limit) {
            let (key, value) = row.map_err(storage)?;
            out.push((key.value().1, value.value().to_vec()));
        }
        Ok(out)
    }

    /// The skipped sequence numbers of `edge_id` not redelivered yet, ascending.
    pub fn skipped(&self, edge_id: &str) -> Result<Vec<u64>, HubError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let skipped = txn.open_table(SKIPPED).map_err(storage)?;
        skipped_in(&skipped, edge_id)
    }

    /// Everything the hub holds for `edge_id`, read in one transaction.
    pub fn summary(&self, edge_id: &str) -> Result<EdgeSummary, HubError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let edges = txn.open_table(EDGES).map_err(storage)?;
        let (stored_through, events) = edges.get(edge_id).map_err(storage)?.map_or((0, 0), |v| v.value());
        let skipped = skipped_in(&txn.open_table(SKIPPED).map_err(storage)?, edge_id)?;
        Ok(EdgeSummary { stored_through, events, skipped })
    }

    /// Stores the batch `first..=last` of `edge_id` (its `envelopes` and `skipped` sequence
    /// numbers, already checked with [`crate::sync::wire::check_batch`]) if and only if
    /// `first == stored_through + 1`, in one durable transaction.
    pub(crate) fn append(
        &self,
        edge_id: &str,
        first: u64,
        last: u64,
        envelopes: &[Received],
        skipped: &[u64],
    ) -> Result<Appended, HubError> {
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::Immediate).map_err(storage)?;
        {
            let mut edges = txn.open_table(EDGES).map_err(storage)?;
            let (stored_through, count) = edges.get(edge_id).map_err(storage)?.map_or((0, 0), |v| v.value());
            if first != stored_through.saturating_add(1) {
                drop(edges);
                txn.abort().map_err(storage)?;
                return Ok(Appended::OutOfOrder { stored_through });
            }
            let mut events = txn.open_table(EVENTS).map_err(storage)?;
            for e in envelopes {
                events.insert((edge_id, e.head.seq), e.bytes.as_slice()).map_err(storage)?;
            }
            let mut skipped_table = txn.open_table(SKIPPED).map_err(storage)?;
            for &seq in skipped {
                skipped_table.insert((edge_id, seq), ()).map_err(storage)?;
            }
            edges.insert(edge_id, (last, count + envelopes.len() as u64)).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        Ok(Appended::Stored { stored_through: last })
    }

    /// Stores one skipped event sent again (`envelope`, checked to belong to `edge_id`):
    /// only a sequence number recorded as skipped is stored, in one durable transaction.
    pub(crate) fn redeliver(&self, edge_id: &str, envelope: &Received) -> Result<Redelivered, HubError> {
        let seq = envelope.head.seq;
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::Immediate).map_err(storage)?;
        let outcome = {
            let mut edges = txn.open_table(EDGES).map_err(storage)?;
            let (stored_through, count) = edges.get(edge_id).map_err(storage)?.map_or((0, 0), |v| v.value());
            let mut skipped = txn.open_table(SKIPPED).map_err(storage)?;
            let mut events = txn.open_table(EVENTS).map_err(storage)?;
            if skipped.remove((edge_id, seq)).map_err(storage)?.is_some() {
                events.insert((edge_id, seq), envelope.bytes.as_slice()).map_err(storage)?;
                edges.insert(edge_id, (stored_through, count + 1)).map_err(storage)?;
                Redelivered::Stored { stored_through }
            } else if events.get((edge_id, seq)).map_err(storage)?.is_some() {
                Redelivered::AlreadyStored { stored_through }
            } else {
                Redelivered::NotSkipped { stored_through }
            }
        };
        match outcome {
            Redelivered::Stored { .. } => txn.commit().map_err(storage)?,
            _ => txn.abort().map_err(storage)?,
        }
        Ok(outcome)
    }
}

fn skipped_in(table: &impl ReadableTable<(&'static str, u64), ()>, edge_id: &str) -> Result<Vec<u64>, HubError> {
    let mut out = Vec::new();
    for row in table.range((edge_id, 0)..=(edge_id, u64::MAX)).map_err(storage)? {
        out.push(row.map_err(storage)?.0.value().1);
    }
    Ok(out)
}

fn storage(e: impl Into<redb::Error>) -> HubError {
    HubError::Storage(Box::new(e.into()))
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
mod tests {
    use super::*;
    use crate::sync::wire::{self, EnvelopeHead};

    fn received(seq: u64, edge: &str) -> Received {
        let head = EnvelopeHead { seq, event_id: uuid::Uuid::nil(), event_type: "Test".into(), edge_id: edge.into() };
        Received { head, bytes: vec![seq as u8; 10] }
    }

    #[test]
    fn a_batch_is_stored_only_right_after_stored_through() {
        let dir = tempfile::tempdir().unwrap();
        let store = HubStore::open(dir.path()).unwrap();
        let batch: Vec<_> = (1..=3).map(|s| received(s, "e")).collect();
        assert_eq!(store.append("e", 2, 4, &batch, &[]).unwrap(), Appended::OutOfOrder { stored_through: 0 });
        assert_eq!(store.append("e", 1, 3, &batch, &[]).unwrap(), Appended::Stored { stored_through: 3 });
        assert_eq!(store.append("e", 1, 3, &batch, &[]).unwrap(), Appended::OutOfOrder { stored_through: 3 });
        assert_eq!(store.events("e", 0, 10).unwrap().len(), 3);
        assert_eq!(store.events("e", 1, 1).unwrap(), vec![(2, vec![2; 10])]);
        assert_eq!(store.events("e", u64::MAX, 10).unwrap(), vec![]);
        assert_eq!(store.stored_through("other").unwrap(), 0);
        assert!(store.events("other", 0, 10).unwrap().is_empty());
    }

    #[test]
    fn skipped_sequence_numbers_are_recorded_until_redelivered() {
        let dir = tempfile::tempdir().unwrap();
        let store = HubStore::open(dir.path()).unwrap();
        let batch = [received(1, "e"), received(3, "e")];
        wire::check_batch("e", 1, 4, &batch, &[2, 4]).unwrap();
        store.append("e", 1, 4, &batch, &[2, 4]).unwrap();
        assert_eq!(store.skipped("e").unwrap(), vec![2, 4]);
        assert_eq!(store.redeliver("e", &received(2, "e")).unwrap(), Redelivered::Stored { stored_through: 4 });
        assert_eq!(store.redeliver("e", &received(2, "e")).unwrap(), Redelivered::AlreadyStored { stored_through: 4 });
        assert_eq!(store.redeliver("e", &received(5, "e")).unwrap(), Redelivered::NotSkipped { stored_through: 4 });
        assert_eq!(store.summary("e").unwrap(), EdgeSummary { stored_through: 4, events: 3, skipped: vec![4] });
    }

    #[test]
    fn a_database_from_a_newer_hub_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(HubStore::open(dir.path()).unwrap());
        {
            let db = Database::create(database_path(dir.path())).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META).unwrap().insert("schema_version", SCHEMA_VERSION + 1).unwrap();
            txn.commit().unwrap();
        }
        let err = HubStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, HubError::NewerSchema { .. }), "{err}");
    }
}
