//! Where the sync stands, as rows of the log's `meta` table (decimal or RFC 3339 text):
//!
//! * `sync_cursor`: every event up to and including it is stored on the hub. Absent means 0.
//!   It is written only after the hub said so (`200`, or a `409` that named the hub's own
//!   position).
//! * `sync_epoch`: the epoch of the edge's stream on the hub the worker sends to (absent: 0,
//!   the stream every edge starts with). `zenedge sync fork` moves it up by one when the log
//!   and the hub's copy stopped being the same history.
//! * `sync_fork_at`: the last sequence number the current epoch shares with the one before
//!   (absent: 0).
//! * `sync_restored`: when `zenedge restore` put this log in place. While it is there the
//!   worker checks the hub's position and event id before it sends anything; the worker
//!   removes it once the hub has been found to hold the same history (or a fork made a new
//!   epoch).
//!
//! None of it is a projection: it records what the hub answered, which the log cannot tell
//! again, so `zenedge rebuild` and `verify` neither drop nor digest it. Every write goes
//! through the log writer (its own small transaction, committed durably before the caller
//! hears back); the fork writes the epoch, the fork point and the cursor (= the fork point) in
//! one transaction, so a crash leaves the old epoch or the new one whole.

use redb::ReadableTable;

use crate::log::{AppendError, Applier, LogHandle, LogReader, META, ReadError, Storage, Txn};

/// The `meta` key of the sync cursor.
const CURSOR_KEY: &str = "sync_cursor";
/// The `meta` key of the current epoch.
const EPOCH_KEY: &str = "sync_epoch";
/// The `meta` key of the current epoch's fork point.
const FORK_AT_KEY: &str = "sync_fork_at";
/// The `meta` key of the restore mark.
const RESTORED_KEY: &str = "sync_restored";

/// The epoch of the edge's stream the worker sends to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncEpoch {
    pub epoch: u64,
    /// The last sequence number this epoch shares with the one before it.
    pub fork_at: u64,
}

type Applied<O> = Result<Result<O, AppendError>, redb::Error>;

/// Records that the hub holds every event up to `seq`; returns once durable.
pub async fn set_cursor<A: Applier>(log: &LogHandle<A>, seq: u64) -> Result<(), AppendError> {
    log.request(seq, apply_cursor::<A>).await
}

/// Starts `epoch`, forked after `fork_at`: the cursor goes to `fork_at` and the restore mark
/// goes; returns once durable.
pub async fn start_epoch<A: Applier>(log: &LogHandle<A>, epoch: SyncEpoch) -> Result<(), AppendError> {
    log.request(epoch, apply_epoch::<A>).await
}

/// The hub was found to hold this log's history: the restore mark goes.
pub async fn clear_restore_mark<A: Applier>(log: &LogHandle<A>) -> Result<(), AppendError> {
    log.request((), apply_clear_mark::<A>).await
}

fn apply_cursor<A: Applier>(t: &mut Txn<'_, '_, A>, seq: u64) -> Applied<()> {
    let mut meta = t.txn().open_table(META)?;
    meta.insert(CURSOR_KEY, seq.to_string().as_str())?;
    t.dirty = true;
    Ok(Ok(()))
}

fn apply_epoch<A: Applier>(t: &mut Txn<'_, '_, A>, epoch: SyncEpoch) -> Applied<()> {
    let mut meta = t.txn().open_table(META)?;
    meta.insert(EPOCH_KEY, epoch.epoch.to_string().as_str())?;
    meta.insert(FORK_AT_KEY, epoch.fork_at.to_string().as_str())?;
    meta.insert(CURSOR_KEY, epoch.fork_at.to_string().as_str())?;
    meta.remove(RESTORED_KEY)?;
    t.dirty = true;
    Ok(Ok(()))
}

fn apply_clear_mark<A: Applier>(t: &mut Txn<'_, '_, A>, (): ()) -> Applied<()> {
    let mut meta = t.txn().open_table(META)?;
    if meta.remove(RESTORED_KEY)?.is_some() {
        t.dirty = true;
    }
    Ok(Ok(()))
}

/// Marks the log in `db` as restored at `at` (`zenedge restore`, the daemon stopped).
pub fn mark_restored(db: &redb::Database, at: jiff::Timestamp) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(META)?.insert(RESTORED_KEY, at.to_string().as_str())?;
    txn.commit()?;
    Ok(())
}

/// The sync cursor: the hub holds every event up to it (0: nothing yet).
pub fn cursor(reader: &LogReader) -> Result<u64, ReadError> {
    let txn = reader.begin_read()?;
    cursor_in(&txn.open_table(META).storage()?)
}

/// The cursor as `meta` holds it, in a read or the writer's transaction (0 when absent).
pub fn cursor_in(meta: &impl ReadableTable<&'static str, &'static str>) -> Result<u64, ReadError> {
    number(meta, CURSOR_KEY)
}

/// The epoch the worker sends to (0 and 0 until a fork).
pub fn epoch(reader: &LogReader) -> Result<SyncEpoch, ReadError> {
    let txn = reader.begin_read()?;
    let meta = txn.open_table(META).storage()?;
    Ok(SyncEpoch { epoch: number(&meta, EPOCH_KEY)?, fork_at: number(&meta, FORK_AT_KEY)? })
}

/// When `zenedge restore` put this log in place, while the hub has not been checked since.
pub fn restored_at(reader: &LogReader) -> Result<Option<String>, ReadError> {
    let txn = reader.begin_read()?;
    let meta = txn.open_table(META).storage()?;
    Ok(meta.get(RESTORED_KEY).storage()?.map(|v| v.value().to_owned()))
}

fn number(meta: &impl ReadableTable<&'static str, &'static str>, key: &'static str) -> Result<u64, ReadError> {
    let Some(value) = meta.get(key).storage()? else { return Ok(0) };
    value
        .value()
        .parse()
        .map_err(|_| ReadError::Row { table: "meta", reason: format!("{key} {:?} is not a number", value.value()) })
}

#[cfg(test)]
#[path = "cursor_tests.rs"]
mod tests;
