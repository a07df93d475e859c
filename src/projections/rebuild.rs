//! Projections from the log alone: catching up at start, `zenedge rebuild` and `zenedge verify`.
//!
//! * **catch-up** ([`catch_up`]): when the log is opened, before its writer applies anything
//!   new, any projection whose checkpoint is behind the log's head (an upgrade added or
//!   reshaped one, a rebuild was interrupted) is rebuilt. The composition root calls it
//!   between opening the file and starting the writer ([`open_log`] does the same for tools
//!   and tests).
//! * **rebuild** drops every projection table and replays the log through
//!   [`super::apply`], in write transactions of [`CHUNK`] events, committed durably. A digest
//!   of the projections is printed before and after: equal digests mean the projections were
//!   what the log says.
//! * **verify** replays the log into an in-memory database and compares it with the
//!   projections on disk, table by table, without changing anything.
//!
//! Both open the database themselves, so the daemon must be stopped (redb refuses a second
//! writer and the error says so).

use std::path::Path;

use redb::backends::InMemoryBackend;
use redb::{Database, ReadableDatabase, ReadableTable, TableHandle};
use sha2::{Digest, Sha256};

use std::sync::Arc;

use super::tables::*;
use super::{Projections, Tables};
use crate::config::Site;
use crate::events::{DecodeError, Envelope};
use crate::log::{EVENTS, FaultInjector, Log, LogOptions, Meta, OpenError, Schema, Store};
use crate::telemetry::Metrics;

/// Events replayed per write transaction.
pub const CHUNK: u64 = 1 << 16;

/// Why a rebuild or verify failed.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("database: {0}")]
    Storage(#[from] redb::Error),
    #[error("event {seq} cannot be replayed: {source}")]
    Event { seq: u64, source: DecodeError },
}

fn storage<E: Into<redb::Error>>(e: E) -> RebuildError {
    RebuildError::Storage(e.into())
}

/// One projection table's name and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDigest {
    pub table: &'static str,
    pub rows: u64,
    pub sha256: String,
}

/// Digests of every projection table, in a fixed order: SHA-256 over each row's stored key
/// and value bytes.
pub fn digest(db: &Database) -> Result<Vec<TableDigest>, RebuildError> {
    let txn = db.begin_read().map_err(storage)?;
    let mut out = Vec::new();
    macro_rules! table {
        ($def:expr) => {
            out.push(table_digest(&txn, $def, $def.name())?);
        };
    }
    projection_tables!(table);
    Ok(out)
}

fn table_digest<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    def: redb::TableDefinition<K, V>,
    name: &'static str,
) -> Result<TableDigest, RebuildError> {
    let table = txn.open_table(def).map_err(storage)?;
    let (mut hash, mut rows) = (Sha256::new(), 0u64);
    for row in table.iter().map_err(storage)? {
        let (k, v) = row.map_err(storage)?;
        let (k, v) = (k.value(), v.value());
        let (k, v) = (K::as_bytes(&k), V::as_bytes(&v));
        // Rows are compared as written, not as stored: a row compressed with another
        // dictionary (or none, as a replay writes it) is the same row.
        let v: &[u8] = v.as_ref();
        let v = if V::type_name() == <&[u8] as redb::Value>::type_name() {
            crate::log::value::plain(v).map_err(|e| storage(crate::log::corrupt(name, e)))?
        } else {
            std::borrow::Cow::Borrowed(v)
        };
        // Lengths first, so that rows cannot run into each other.
        hash.update((k.as_ref().len() as u64).to_le_bytes());
        hash.update(k.as_ref());
        hash.update((v.len() as u64).to_le_bytes());
        hash.update(&v);
        rows += 1;
    }
    Ok(TableDigest { table: name, rows, sha256: crate::ids::hex(&hash.finalize()) })
}

/// One digest of everything, for printing.
pub fn overall(digests: &[TableDigest]) -> String {
    let mut hash = Sha256::new();
    for d in digests {
        hash.update(d.table.as_bytes());
        hash.update(d.sha256.as_bytes());
    }
    crate::ids::hex(&hash.finalize())
}

/// Drops every projection and replays the log; `progress(done, total)` after each chunk.
pub fn rebuild(db: &Database, site: &Site, mut progress: impl FnMut(u64, u64)) -> Result<(), RebuildError> {
    let txn = db.begin_write().map_err(storage)?;
    macro_rules! drop_table {
        ($def:ident) => {
            txn.delete_table($def).map_err(storage)?;
        };
    }
    projection_tables!(drop_table);
    drop_table!(CHECKPOINTS);
    create_tables(&txn)?;
    txn.commit().map_err(storage)?;
    replay(db, db, site, &mut progress)
}

/// Creates every projection table (empty), so that reading one never fails.
fn create_tables(txn: &redb::WriteTransaction) -> Result<(), RebuildError> {
    macro_rules! create {
        ($def:ident) => {
            txn.open_table($def).map_err(storage)?;
        };
    }
    projection_tables!(create);
    create!(CHECKPOINTS);
    Ok(())
}

/// Projections whose checkpoint is not the log's last seq `head`, with their checkpoint
/// (0 when they never applied anything).
pub fn behind(db: &Database, head: u64) -> Result<Vec<(&'static str, u64)>, RebuildError> {
    let txn = db.begin_read().map_err(storage)?;
    let checkpoints = match txn.open_table(CHECKPOINTS) {
        Ok(table) => Some(table),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(storage(e)),
    };
    let mut out = Vec::new();
    for name in super::table_names() {
        let at = match &checkpoints {
            Some(table) => table.get(name).map_err(storage)?.map(|v| v.value()).unwrap_or(0),
            None => 0,
        };
        if at != head {
            out.push((name, at));
        }
    }
    Ok(out)
}

/// Replays every event of `source` into the projections of `target`.
///
/// A second thread reads and decodes the log ahead of the one applying it (decoding is
/// about a third of the work), handing over batches of [`BATCH`] events through a bounded
/// channel; the batches never straddle a chunk, so each chunk's transaction holds exactly
/// its events.
fn replay(
    source: &Database,
    target: &Database,
    site: &Site,
    progress: &mut impl FnMut(u64, u64),
) -> Result<(), RebuildError> {
    let last = {
        let txn = source.begin_read().map_err(storage)?;
        let events = txn.open_table(EVENTS).map_err(storage)?;
        events.last().map_err(storage)?.map(|(k, _)| k.value()).unwrap_or(0)
    };
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        scope.spawn(move || decode_batches(source, last, &tx));
        let mut next = 1;
        while next <= last {
            let end = (next + CHUNK - 1).min(last);
            let txn = target.begin_write().map_err(storage)?;
            {
                let mut tables = Tables::new(&txn);
                while next <= end {
                    // The decoder only stops early after sending its error.
                    let batch: Vec<Envelope> = rx
                        .recv()
                        .map_err(|_| storage(redb::StorageError::Corrupted("the log reader stopped".into())))??;
                    for envelope in &batch {
                        let meta = Meta {
                            site,
                            seq: envelope.seq,
                            event_id: envelope.event_id,
                            recorded_at: envelope.recorded_at,
                        };
                        super::apply(&mut tables, &meta, &envelope.event).map_err(storage)?;
                    }
                    if batch.first().map(|e| e.seq) != Some(next) {
                        let gap = format!("the log has no event {next} (sequence numbers are gapless)");
                        return Err(storage(redb::StorageError::Corrupted(gap)));
                    }
                    next += batch.len() as u64;
                }
                super::finish(&mut tables, site, end).map_err(storage)?;
            }
            txn.commit().map_err(storage)?;
            progress(end, last);
        }
        Ok(())
    })
}

/// Events per batch handed from the decoding thread to the applying one; divides [`CHUNK`].
const BATCH: u64 = 4096;

/// Reads and decodes events `1..=last` in batches; stops at the first error (sent on) or
/// when the receiver went away.
fn decode_batches(db: &Database, last: u64, tx: &std::sync::mpsc::SyncSender<Result<Vec<Envelope>, RebuildError>>) {
    let read = || -> Result<_, RebuildError> {
        let txn = db.begin_read().map_err(storage)?;
        txn.open_table(EVENTS).map_err(storage)
    };
    let events = match read() {
        Ok(events) => events,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    let mut from = 1;
    while from <= last {
        let to = (from + BATCH - 1).min(last);
        let batch = decode_range(&events, from, to);
        let failed = batch.is_err();
        if tx.send(batch).is_err() || failed {
            return;
        }
        from = to + 1;
    }
}

fn decode_range(events: &redb::ReadOnlyTable<u64, &[u8]>, from: u64, to: u64) -> Result<Vec<Envelope>, RebuildError> {
    let mut out = Vec::with_capacity((to - from + 1) as usize);
    for row in events.range(from..=to).map_err(storage)? {
        let (k, v) = row.map_err(storage)?;
        let seq = k.value();
        let envelope = Envelope::from_bytes(v.value()).map_err(|source| RebuildError::Event { seq, source })?;
        out.push(envelope);
    }
    Ok(out)
}

/// Replays the log into memory and compares with the projections on disk. Returns the
/// tables that differ (empty: the projections are exactly what the log says).
pub fn verify(
    db: &Database,
    site: &Site,
    mut progress: impl FnMut(u64, u64),
) -> Result<Vec<(TableDigest, TableDigest)>, RebuildError> {
    let scratch = redb::Builder::new().create_with_backend(InMemoryBackend::new()).map_err(storage)?;
    let txn = scratch.begin_write().map_err(storage)?;
    create_tables(&txn)?;
    txn.commit().map_err(storage)?;
    replay(db, &scratch, site, &mut progress)?;
    let expected = digest(&scratch)?;
    let actual = digest(db)?;
    Ok(expected.into_iter().zip(actual).filter(|(e, a)| e != a).map(|(e, a)| (a, e)).collect())
}

/// Opens the database of a stopped daemon for rebuild or verify, with the same schema and
/// site checks as the daemon.
pub fn open(path: &Path, site: &Site, cache_size: usize) -> Result<Database, String> {
    if !path.exists() {
        return Err(format!("{} does not exist", path.display()));
    }
    crate::log::store::open(path, site, cache_size, &super::schema(), None).map_err(|e| {
        let text = e.to_string();
        if text.contains("already open") {
            format!("{} is in use: stop the daemon first (systemctl stop zenedge)", path.display())
        } else {
            text
        }
    })
}

/// [`open`] with the master key of `options` (never created here): sealed values read as the
/// daemon reads them.
pub fn open_keyed(options: &LogOptions) -> Result<Arc<Database>, String> {
    let db = Arc::new(open(&options.path, &options.site, options.cache_size)?);
    crate::log::open_keyring(&db, options).map_err(|e| e.to_string())?;
    Ok(db)
}

/// Rebuilds the projections when any checkpoint is behind the log (an upgrade added a
/// projection, a rebuild was interrupted), before the writer applies anything new to them.
pub fn catch_up(store: &Store) -> Result<(), OpenError> {
    let db_err = |e: redb::Error| OpenError::Database { path: store.path().to_owned(), source: Box::new(e) };
    let flatten = |e: RebuildError| match e {
        RebuildError::Storage(e) => db_err(e),
        other => db_err(redb::StorageError::Corrupted(other.to_string()).into()),
    };
    let head = store.last_seq();
    let behind = behind(store.database(), head).map_err(flatten)?;
    if behind.is_empty() {
        return Ok(());
    }
    tracing::warn!(head, ?behind, "projections are behind the log; rebuilding them from the log");
    let started = std::time::Instant::now();
    rebuild(store.database(), store.site(), |done, total| tracing::info!(done, total, "rebuilding projections"))
        .map_err(flatten)?;
    tracing::info!(events = head, seconds = started.elapsed().as_secs_f64(), "projections rebuilt");
    Ok(())
}

/// Opens the log as the daemon does, for tools and tests: the file with `schema` (the
/// projections' own, or with other layers' tables added), the projections caught up, then the
/// writer applying them.
pub fn open_log(
    options: &LogOptions,
    schema: Schema,
    metrics: Arc<Metrics>,
    faults: Option<FaultInjector>,
) -> Result<Log<Projections>, OpenError> {
    let store = Store::open(options, schema, faults)?;
    catch_up(&store)?;
    store.start(Projections, metrics)
}
