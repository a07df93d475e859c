//! Reading the log: any number of readers, each a short redb read transaction.
//!
//! Readers never block the writer (redb serves them from the last committed snapshot).
//! Calls here are synchronous and short; async callers run them on the blocking pool.

use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable};

use super::envelope::{DecodeError, Envelope};
use super::store::EVENTS;

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("database read failed: {0}")]
    Storage(#[from] redb::Error),
    #[error("event {seq} is unreadable: {source}")]
    Decode { seq: u64, source: DecodeError },
}

/// Converts redb's per-operation errors (which all convert into `redb::Error`).
trait Storage<T> {
    fn storage(self) -> Result<T, ReadError>;
}

impl<T, E: Into<redb::Error>> Storage<T> for Result<T, E> {
    fn storage(self) -> Result<T, ReadError> {
        self.map_err(|e| ReadError::Storage(e.into()))
    }
}

/// A page of events and where the next page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Envelope>,
    /// The `after` for the next page, `None` when this page reached the end of the log.
    pub next: Option<u64>,
}

/// Read access to the event log.
#[derive(Debug, Clone)]
pub struct LogReader {
    db: Arc<Database>,
}

impl LogReader {
    pub(crate) fn new(db: Arc<Database>) -> LogReader {
        LogReader { db }
    }

    /// The last committed sequence number (0 for an empty log).
    pub fn latest_seq(&self) -> Result<u64, ReadError> {
        let txn = self.db.begin_read().storage()?;
        let table = txn.open_table(EVENTS).storage()?;
        Ok(table.last().storage()?.map(|(k, _)| k.value()).unwrap_or(0))
    }

    /// One event by sequence number.
    pub fn get(&self, seq: u64) -> Result<Option<Envelope>, ReadError> {
        let txn = self.db.begin_read().storage()?;
        let table = txn.open_table(EVENTS).storage()?;
        let Some(bytes) = table.get(seq).storage()? else { return Ok(None) };
        Envelope::from_bytes(bytes.value()).map(Some).map_err(|source| ReadError::Decode { seq, source })
    }

    /// Up to `limit` events with `seq > after`, in order.
    pub fn after(&self, after: u64, limit: usize) -> Result<Page, ReadError> {
        let raw = self.raw_after(after, limit)?;
        let full = raw.len() == limit;
        let items = raw
            .into_iter()
            .map(|(seq, bytes)| Envelope::from_bytes(&bytes).map_err(|source| ReadError::Decode { seq, source }))
            .collect::<Result<Vec<_>, _>>()?;
        let next = if full { items.last().map(|e| e.seq) } else { None };
        Ok(Page { items, next })
    }

    /// Up to `limit` stored envelopes (msgpack, as synced) with `seq > after`.
    pub fn raw_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, ReadError> {
        let txn = self.db.begin_read().storage()?;
        let table = txn.open_table(EVENTS).storage()?;
        let mut out = Vec::with_capacity(limit.min(1024));
        if after == u64::MAX {
            return Ok(out);
        }
        for row in table.range(after + 1..).storage()?.take(limit) {
            let (k, v) = row.storage()?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }
}
