//! Reading the log: any number of readers, each a short redb read transaction.
//!
//! Readers never block the writer (redb serves them from the last committed snapshot).
//! Calls here are synchronous and short; async callers run them on the blocking pool. The
//! engine reads envelopes as stored bytes; the layers above read their own tables through
//! [`LogReader::begin_read`] and decode what they stored.

use std::sync::Arc;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable};

use super::envelope::head_event_id;
use super::schema::TableSpec;
use super::store::EVENTS;
use crate::config::Site;

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("database read failed: {0}")]
    Storage(#[from] redb::Error),
    #[error("event {seq} is unreadable: {source}")]
    Decode { seq: u64, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("{table} row is unreadable: {reason}")]
    Row { table: &'static str, reason: String },
}

/// Converts redb's per-operation errors (which all convert into `redb::Error`).
pub trait Storage<T> {
    fn storage(self) -> Result<T, ReadError>;
}

impl<T, E: Into<redb::Error>> Storage<T> for Result<T, E> {
    fn storage(self) -> Result<T, ReadError> {
        self.map_err(|e| ReadError::Storage(e.into()))
    }
}

/// A msgpack row of `table` (plain, or compressed as [`super::txn::encode_row`] stores it), or
/// the read error naming the table.
pub fn decode_row<T: serde::de::DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T, ReadError> {
    let plain = super::value::plain(bytes).map_err(|e| ReadError::Row { table, reason: e.to_string() })?;
    rmp_serde::from_slice(&plain).map_err(|e| ReadError::Row { table, reason: e.to_string() })
}

/// The envelope (msgpack, as written and synced) of the stored value of event `seq`.
pub fn plain_envelope(seq: u64, stored: &[u8]) -> Result<Vec<u8>, ReadError> {
    match super::value::decode(seq, stored) {
        Ok(plain) => Ok(plain.into_owned()),
        Err(e) => Err(ReadError::Decode { seq, source: Box::new(e.fault) }),
    }
}

/// Read access to the event log.
#[derive(Debug, Clone)]
pub struct LogReader {
    pub(super) db: Arc<Database>,
    pub(super) site: Site,
    tables: Arc<[TableSpec]>,
}

impl LogReader {
    /// A reader of `db`, whose schema declares `tables` (besides the engine's own).
    pub fn new(db: Arc<Database>, site: Site, tables: Vec<TableSpec>) -> LogReader {
        LogReader { db, site, tables: tables.into() }
    }

    /// A read transaction: one committed snapshot of the whole file.
    pub fn begin_read(&self) -> Result<ReadTransaction, ReadError> {
        self.db.begin_read().storage()
    }

    /// The database itself, for tests that look at (or tamper with) the file under a running log.
    #[cfg(test)]
    pub(crate) fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// The site the file belongs to.
    pub fn site(&self) -> &Site {
        &self.site
    }

    /// Every table the file's schema declares besides `events` and `meta` (what a copy of the
    /// database must hold).
    pub fn tables(&self) -> &[TableSpec] {
        &self.tables
    }

    /// The last committed sequence number (0 for an empty log).
    pub fn latest_seq(&self) -> Result<u64, ReadError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(EVENTS).storage()?;
        Ok(table.last().storage()?.map(|(k, _)| k.value()).unwrap_or(0))
    }

    /// One envelope as it was written (and as it travels to the hub), decompressed.
    pub fn raw_event(&self, seq: u64) -> Result<Option<Vec<u8>>, ReadError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(EVENTS).storage()?;
        let Some(stored) = table.get(seq).storage()? else { return Ok(None) };
        Ok(Some(plain_envelope(seq, stored.value())?))
    }

    /// Up to `limit` envelopes (msgpack, as synced, decompressed) with `seq > after`.
    pub fn raw_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, ReadError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(EVENTS).storage()?;
        let mut out = Vec::with_capacity(limit.min(1024));
        if after == u64::MAX {
            return Ok(out);
        }
        for row in table.range(after + 1..).storage()?.take(limit) {
            let (k, v) = row.storage()?;
            out.push((k.value(), plain_envelope(k.value(), v.value())?));
        }
        Ok(out)
    }

    /// The `event_id` of event `seq`, `None` when the log has no such event.
    pub fn event_id(&self, seq: u64) -> Result<Option<uuid::Uuid>, ReadError> {
        let txn = self.begin_read()?;
        let events = txn.open_table(EVENTS).storage()?;
        let Some(bytes) = events.get(seq).storage()? else { return Ok(None) };
        head_event_id(bytes.value()).map(Some).map_err(|reason| ReadError::Row { table: "events", reason })
    }
}
