//! Which history of this edge the hub is being sent, and whether the log came from a backup.
//!
//! Rows of `meta` (decimal or RFC 3339 text, like the cursor):
//!
//! * `sync_epoch`: the epoch of the edge's stream on the hub the worker sends to (absent: 0,
//!   the stream every edge starts with). `zenedge sync fork` moves it up by one when the log
//!   and the hub's copy stopped being the same history.
//! * `sync_fork_at`: the last sequence number the current epoch shares with the one before
//!   (absent: 0).
//! * `sync_restored`: when `zenedge restore` put this log in place. While it is there the
//!   worker checks the hub's position and event id before it sends anything, and retention
//!   deletes nothing; the worker removes it once the hub has been found to hold the same
//!   history (or a fork made a new epoch).
//!
//! The fork writes the epoch, the fork point and the cursor (= the fork point) in one
//! transaction through the writer, so a crash leaves the old epoch or the new one whole.

use redb::{ReadableDatabase, ReadableTable};

use super::reader::{LogReader, ReadError, Storage};
use super::store::META;
use super::sync_state::CURSOR_KEY;
use super::txn::{Applier, Txn};
use super::writer::{AppendError, LogHandle};

/// The `meta` key of the current epoch.
pub(crate) const EPOCH_KEY: &str = "sync_epoch";
/// The `meta` key of the current epoch's fork point.
pub(crate) const FORK_AT_KEY: &str = "sync_fork_at";
/// The `meta` key of the restore mark.
pub(crate) const RESTORED_KEY: &str = "sync_restored";

/// The epoch of the edge's stream the worker sends to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncEpoch {
    pub epoch: u64,
    /// The last sequence number this epoch shares with the one before it.
    pub fork_at: u64,
}

type Applied<O> = Result<Result<O, AppendError>, redb::Error>;

impl<A: Applier> LogHandle<A> {
    /// Starts `epoch`, forked after `fork_at`: the cursor goes to `fork_at` and the restore
    /// mark goes; returns once durable.
    pub async fn start_epoch(&self, epoch: SyncEpoch) -> Result<(), AppendError> {
        self.request(epoch, apply_epoch::<A>).await
    }

    /// The hub was found to hold this log's history: the restore mark goes.
    pub async fn clear_restore_mark(&self) -> Result<(), AppendError> {
        self.request((), apply_clear_mark::<A>).await
    }
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

fn number(meta: &impl ReadableTable<&'static str, &'static str>, key: &'static str) -> Result<u64, ReadError> {
    let Some(value) = meta.get(key).storage()? else { return Ok(0) };
    value
        .value()
        .parse()
        .map_err(|_| ReadError::Row { table: "meta", reason: format!("{key} {:?} is not a number", value.value()) })
}

impl LogReader {
    /// The epoch the worker sends to (0 and 0 until a fork).
    pub fn sync_epoch(&self) -> Result<SyncEpoch, ReadError> {
        let txn = self.db.begin_read().storage()?;
        let meta = txn.open_table(META).storage()?;
        Ok(SyncEpoch { epoch: number(&meta, EPOCH_KEY)?, fork_at: number(&meta, FORK_AT_KEY)? })
    }

    /// When `zenedge restore` put this log in place, while the hub has not been checked since.
    pub fn restored_at(&self) -> Result<Option<String>, ReadError> {
        let txn = self.db.begin_read().storage()?;
        let meta = txn.open_table(META).storage()?;
        Ok(meta.get(RESTORED_KEY).storage()?.map(|v| v.value().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::Log;
    use super::super::test_support::{Order, options};
    use super::*;
    use crate::projections::Projections;
    use crate::telemetry::Metrics;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_epoch_moves_the_cursor_to_its_fork_point_and_clears_the_restore_mark() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path());
        let log = crate::log::test_support::open(&opts, Arc::new(Metrics::new())).unwrap();
        log.handle().append(vec![Order::new("C-1", "P-1", "ACC", &["PAT"]).event()]).await.unwrap();
        log.handle().set_sync_cursor(1).await.unwrap();
        assert_eq!(log.reader().sync_epoch().unwrap(), SyncEpoch::default());
        let id = log.reader().event_id(1).unwrap().unwrap();
        assert_eq!(Some(id), crate::events::get(&log.reader(), 1).unwrap().map(|e| e.event_id));
        assert_eq!(log.reader().event_id(2).unwrap(), None);
        log.close().await.unwrap();

        let db = crate::projections::rebuild::open(&opts.path, &opts.site, 1 << 20).unwrap();
        mark_restored(&db, "2026-11-23T10:00:00Z".parse().unwrap()).unwrap();
        drop(db);
        let log = crate::log::test_support::open(&opts, Arc::new(Metrics::new())).unwrap();
        assert_eq!(log.reader().restored_at().unwrap().as_deref(), Some("2026-11-23T10:00:00Z"));
        log.handle().clear_restore_mark().await.unwrap();
        assert_eq!(log.reader().restored_at().unwrap(), None);
        mark_restored_through(&log).await;
        log.handle().start_epoch(SyncEpoch { epoch: 1, fork_at: 0 }).await.unwrap();
        assert_eq!(log.reader().sync_epoch().unwrap(), SyncEpoch { epoch: 1, fork_at: 0 });
        assert_eq!(log.reader().sync_cursor().unwrap(), 0, "the cursor goes back to the fork point");
        assert_eq!(log.reader().restored_at().unwrap(), None);
        log.close().await.unwrap();
    }

    /// Sets the restore mark through the writer's own database (the daemon is not running in
    /// `zenedge restore`; here the log is open, so the mark goes in as a request would).
    async fn mark_restored_through(log: &Log<Projections>) {
        fn apply(t: &mut Txn<'_, '_, Projections>, (): ()) -> Applied<()> {
            t.txn().open_table(META)?.insert(RESTORED_KEY, "2026-11-23T10:00:00Z")?;
            t.dirty = true;
            Ok(Ok(()))
        }
        log.handle().request((), apply).await.unwrap();
        assert!(log.reader().restored_at().unwrap().is_some());
    }
}
