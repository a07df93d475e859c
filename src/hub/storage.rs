//! The store behind the routes: redb in a state directory ([`super::store`]) or PostgreSQL
//! ([`super::pg`]). Both keep the contract of [`super`] with the same guarantees (one durable
//! transaction per batch that checks the position and the chain before it stores anything;
//! epochs; skipped numbers and their redelivery), and answer in the types of
//! [`super::outcome`], so the routes never ask which store they talk to.
//!
//! Every method is async: the redb store's work runs on the blocking pool (it blocks on
//! disk I/O), PostgreSQL's on the pool's connections.

use std::path::Path;
use std::sync::Arc;

use super::HubError;
use super::outcome::{Appended, BatchRange, ForkOutcome, HistoryItem, HubPosition, Redelivered};
use super::pg::{Feed, FeedCursor, PgStore};
use super::store::RedbStore;
use crate::sync::wire::{ForkRequest, Position, Received};
use crate::sync::wire_audit::ReceivedRecord;

/// The hub's store. Cheap to clone.
#[derive(Debug, Clone)]
pub enum HubStore {
    /// `hub.redb` in a state directory: one machine, small sites and tests.
    Redb(RedbStore),
    /// A PostgreSQL database, shared by any number of hub processes.
    Postgres(PgStore),
}

/// Runs `work` on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, HubError> + Send + 'static,
) -> Result<T, HubError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| HubError::Task(e.to_string()))?
}

impl HubStore {
    /// Opens (or creates) the redb store in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<HubStore, HubError> {
        RedbStore::open(state_dir).map(HubStore::Redb)
    }

    /// Which store this is, for logs and `zenedge hub check`.
    pub fn kind(&self) -> &'static str {
        match self {
            HubStore::Redb(_) => "redb",
            HubStore::Postgres(_) => "postgres",
        }
    }

    /// `stored_through` and `last_event` of `epoch` (the check before a batch); `None` for an
    /// epoch the hub does not have.
    pub async fn head(&self, edge_id: &str, epoch: u64) -> Result<Option<HubPosition>, HubError> {
        match self {
            HubStore::Redb(s) => {
                let (s, edge_id) = (s.clone(), edge_id.to_owned());
                blocking(move || s.head(&edge_id, epoch)).await
            }
            HubStore::Postgres(s) => s.head(edge_id, epoch).await,
        }
    }

    /// Stores a checked batch iff it starts right after `stored_through` and its predecessor
    /// is the event held at `first - 1`, in one durable transaction.
    pub async fn append(
        &self,
        edge_id: &str,
        epoch: u64,
        range: BatchRange,
        envelopes: Arc<Vec<Received>>,
        skipped: Arc<Vec<u64>>,
    ) -> Result<Appended, HubError> {
        match self {
            HubStore::Redb(s) => {
                let (s, edge_id) = (s.clone(), edge_id.to_owned());
                blocking(move || s.append(&edge_id, epoch, range, &envelopes, &skipped)).await
            }
            HubStore::Postgres(s) => s.append(edge_id, epoch, range, envelopes, &skipped).await,
        }
    }

    /// Stores one skipped event sent again.
    pub async fn redeliver(&self, edge_id: &str, epoch: u64, envelope: Received) -> Result<Redelivered, HubError> {
        match self {
            HubStore::Redb(s) => {
                let (s, edge_id) = (s.clone(), edge_id.to_owned());
                blocking(move || s.redeliver(&edge_id, epoch, &envelope)).await
            }
            HubStore::Postgres(s) => s.redeliver(edge_id, epoch, &envelope).await,
        }
    }

    /// A new epoch, or the one an identical request made.
    pub async fn fork(&self, edge_id: &str, request: &ForkRequest) -> Result<ForkOutcome, HubError> {
        match self {
            HubStore::Redb(s) => {
                let (s, edge_id, request) = (s.clone(), edge_id.to_owned(), request.clone());
                blocking(move || s.fork(&edge_id, &request)).await
            }
            HubStore::Postgres(s) => s.fork(edge_id, request).await,
        }
    }

    /// Where the hub is in `epoch`; `None` for an epoch it does not have, and for epoch 0 of
    /// an edge it never heard from.
    pub async fn position(&self, edge_id: &str, epoch: u64, at: Option<u64>) -> Result<Option<Position>, HubError> {
        match self {
            HubStore::Redb(s) => {
                let (s, edge_id) = (s.clone(), edge_id.to_owned());
                blocking(move || s.position(&edge_id, epoch, at)).await
            }
            HubStore::Postgres(s) => s.position(edge_id, epoch, at).await,
        }
    }

    /// Up to `limit` events of `epoch`'s history after `after`, and the epoch's
    /// `stored_through`; `None` for an epoch the hub does not have.
    pub async fn history(
        &self,
        edge_id: &str,
        epoch: u64,
        after: u64,
        limit: usize,
    ) -> Result<Option<(Vec<HistoryItem>, u64)>, HubError> {
        match self {
            HubStore::Redb(s) => {
                let (s, edge_id) = (s.clone(), edge_id.to_owned());
                blocking(move || s.history(&edge_id, epoch, after, limit)).await
            }
            HubStore::Postgres(s) => s.history(edge_id, epoch, after, limit).await,
        }
    }

    /// Stores the audit records of `edge_id` the hub does not hold yet, durably; returns how
    /// many were new.
    pub async fn store_audit(&self, edge_id: &str, records: Arc<Vec<ReceivedRecord>>) -> Result<u64, HubError> {
        match self {
            HubStore::Redb(s) => {
                let (s, edge_id) = (s.clone(), edge_id.to_owned());
                blocking(move || s.store_audit(&edge_id, &records)).await
            }
            HubStore::Postgres(s) => s.store_audit(edge_id, &records).await,
        }
    }

    /// Up to `limit` audit records of `edge_id` with `id > after`, ascending, as sent.
    pub async fn audit_page(&self, edge_id: &str, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, HubError> {
        match self {
            HubStore::Redb(s) => {
                let (s, edge_id) = (s.clone(), edge_id.to_owned());
                blocking(move || s.audit_page(&edge_id, after, limit)).await
            }
            HubStore::Postgres(s) => s.audit_page(edge_id, after, limit).await,
        }
    }

    /// `stored_through` of epoch 0 (0 for an unknown edge).
    pub async fn stored_through(&self, edge_id: &str) -> Result<u64, HubError> {
        Ok(self.head(edge_id, 0).await?.map_or(0, |p| p.stored_through))
    }

    /// Up to `limit` stored envelopes of epoch 0 with `seq > after`, as received.
    pub async fn events(&self, edge_id: &str, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, HubError> {
        let items = self.history(edge_id, 0, after, limit).await?.map(|(items, _)| items).unwrap_or_default();
        Ok(items.into_iter().map(|(seq, _, bytes)| (seq, bytes)).collect())
    }

    /// Skipped sequence numbers of epoch 0 not redelivered yet.
    pub async fn skipped(&self, edge_id: &str) -> Result<Vec<u64>, HubError> {
        Ok(self.position(edge_id, 0, None).await?.map(|p| p.skipped).unwrap_or_default())
    }

    /// The cross-edge feed: up to `limit` events committed after `after`, in an order that
    /// never skips one committed late. PostgreSQL only.
    pub async fn feed(&self, after: FeedCursor, limit: usize) -> Result<Feed, HubError> {
        match self {
            HubStore::Redb(_) => Err(HubError::Unsupported("the cross-edge feed needs the PostgreSQL store")),
            HubStore::Postgres(s) => s.feed(after, limit).await,
        }
    }

    /// A counter that moves when new events may have been committed (PostgreSQL's
    /// notifications); see [`HubStore::wait_for_events`].
    pub fn notifications(&self) -> u64 {
        match self {
            HubStore::Redb(_) => 0,
            HubStore::Postgres(s) => s.notifications(),
        }
    }

    /// Waits until [`HubStore::notifications`] moved past `seen`, or `timeout`.
    pub async fn wait_for_events(&self, seen: u64, timeout: std::time::Duration) {
        match self {
            HubStore::Redb(_) => tokio::time::sleep(timeout).await,
            HubStore::Postgres(s) => s.wait_for_events(seen, timeout).await,
        }
    }
}
