//! The gate between intake and retention's unlink of an instance file.
//!
//! A file's path is a function of its SOP Instance UID and data set (the spool's layout), so
//! the same data set sent again after retention *recorded* its deletion lands on the same
//! path. Retention commits `InstanceFileDeleted` first and unlinks after; intake puts the file
//! in place (or finds it still there) first and records `InstanceStored` after, which takes
//! the path off the deleted files. Without a gate these interleave badly: retention records
//! the deletion, intake finds the file still in place and records it stored again (and
//! answers Success), then retention unlinks the file the new event names: an acknowledged
//! instance lost.
//!
//! The gate is one reader-writer lock per shard of SOP Instance UIDs:
//!
//! * intake holds its shard's lock *shared* ([`InstanceGate::intake`]) from before it puts the
//!   file in place until its `InstanceStored` is committed (or refused);
//! * retention holds it *exclusive* ([`InstanceGate::removal`]) while it reads again, from a
//!   fresh read transaction, whether the deletion still stands, and while it unlinks the file
//!   and fsyncs its directory.
//!
//! Whichever comes first, the outcome is sound. Intake first: its commit is visible to
//! retention's re-check, which finds the path stored again and keeps the file. Retention
//! first: the file is gone before intake looks, so intake renames its own copy into place
//! and records it. Crash points: the gate is in memory, but both sides' durable order holds on
//! its own. A crash after retention's commit and before its unlink leaves a file whose
//! deletion is recorded; retention's start-up sweep (`unlink_deleted`) removes it at the next start,
//! before any listener accepts (nothing of a re-send was acknowledged before the crash unless
//! its `InstanceStored` committed, which takes the path off the deleted files, and then the
//! start-up sweep keeps it). A crash after intake's rename and before its commit leaves a
//! file the log does not name as stored again: the sender was not answered and sends again.
//!
//! Intakes never wait for each other (shared locks); retention waits for the intakes of its
//! shard in flight, and holds up new ones of that shard for one unlink and fsync.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// Shards: intakes of other UIDs go on while retention removes one file.
const SHARDS: usize = 64;

/// See the module doc. Clones of a [`Layout`](super::Layout) share one.
#[derive(Debug)]
pub struct InstanceGate {
    shards: Vec<Arc<RwLock<()>>>,
}

impl Default for InstanceGate {
    fn default() -> Self {
        InstanceGate { shards: (0..SHARDS).map(|_| Arc::new(RwLock::new(()))).collect() }
    }
}

impl InstanceGate {
    fn shard(&self, sop_instance_uid: &str) -> Arc<RwLock<()>> {
        let mut hasher = DefaultHasher::new();
        sop_instance_uid.hash(&mut hasher);
        self.shards[(hasher.finish() % SHARDS as u64) as usize].clone()
    }

    /// Held by intake from putting the instance's file in place until its event is committed.
    pub async fn intake(&self, sop_instance_uid: &str) -> OwnedRwLockReadGuard<()> {
        self.shard(sop_instance_uid).read_owned().await
    }

    /// Held by retention while it re-checks a recorded deletion and unlinks the file.
    pub async fn removal(&self, sop_instance_uid: &str) -> OwnedRwLockWriteGuard<()> {
        self.shard(sop_instance_uid).write_owned().await
    }
}
