//! Retention: deletes DICOM instance files older than `retention.dicom_max_age`, and only
//! those every destination marked `required` (the central archive, see `[[forward.destinations]]`)
//! has confirmed holding: by Storage Commitment, or by its store's own success where it is
//! configured to trust that (`confirm = "store"`). The confirmations are events
//! (`InstanceForwarded`, `InstancesCommitted`) and the `forwards` projection holds them per
//! stored version of an instance; a file that exists nowhere else is never removed. With no
//! required destination nothing is deleted at all (the sweep does not run; the daemon says so
//! once at start, at WARN).
//!
//! Order, always: the writer commits an `InstanceFileDeleted` for the file (re-checking
//! every required destination's confirmation, and that no deletion names the file yet), then
//! the file is unlinked and its directory fsync'ed, both through the instance [`Layout`] (so a
//! storage hook sees them: the power-loss tests cover the step between the commit and the
//! unlink). A crash in between leaves a file whose
//! event says deleted; it is unlinked at the next start ([`unlink_deleted`], run by the daemon
//! whether retention is on or not). The same data set sent again after its file went is
//! stored again (a new `InstanceStored` for the same path, which is then no longer deleted,
//! and needs its own confirmations before it may go).
//!
//! The sweep keeps, in memory, the last event that needs no second look: each run starts
//! after it, so the log is scanned once per start, then only what arrived since, except that
//! an old file still waiting for a confirmation (the archive away, say) holds that mark back,
//! so every sweep reads again from that file on.
//!
//! Between that commit and the unlink the same data set may arrive again and be stored again
//! at the same path: the unlink then waits on the [`InstanceGate`](crate::dicom::InstanceGate) (shared with intake) and
//! first reads again whether the deletion still stands; a path stored again is kept. The
//! argument, with its crash points, is in [`crate::dicom::gate`].
//!
//! This module runs the sweep and unlinks files; [`expired`] reads which files may go and
//! holds the writer request that records their deletion.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

pub mod expired;

pub use expired::{Expired, ExpiredPage, delete_files, deleted_files, expired_files};

use crate::dicom::Layout;
use crate::log::{Clock, LogHandle, LogReader};
use crate::projections::Projections;
use crate::telemetry::Metrics;

/// Files deleted per writer request.
pub const BATCH: usize = 256;
/// Events examined per read.
const SCAN: usize = 4096;

/// What the sweep needs.
#[derive(Clone)]
pub struct Retention {
    /// Where the instance files are: unlinks go through it, announced to its storage hook,
    /// and it holds the gate shared with intake (no file is unlinked while an intake of its
    /// SOP instance is between putting the file in place and committing its event).
    pub layout: Layout,
    pub max_age: Duration,
    /// How the max age was written (recorded in each event).
    pub max_age_text: String,
    pub log: LogHandle<Projections>,
    pub reader: LogReader,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    /// Shared with the backups (one permit): a sweep runs only when no backup is being
    /// streamed, so a file the backup's snapshot still names is not unlinked under it.
    pub exclusive: Arc<tokio::sync::Semaphore>,
    /// The destinations (by name) that must all have confirmed an instance before its file
    /// may go; empty: nothing goes.
    pub required: Vec<String>,
    /// Test seam: awaited after a deletion is committed and before the gate is taken.
    pub before_unlink: Option<BeforeUnlink>,
}

/// See [`Retention::before_unlink`].
pub type BeforeUnlink =
    Arc<dyn Fn(&Expired) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync>;

impl std::fmt::Debug for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retention").field("max_age", &self.max_age_text).finish_non_exhaustive()
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepCounts {
    /// Events examined.
    pub examined: u64,
    /// Files recorded as deleted and unlinked.
    pub deleted: u64,
    /// Recorded as deleted, but the unlink failed (retried at the next start).
    pub unlink_failed: u64,
    /// Recorded as deleted, but stored again (the same data set re-sent) before the unlink:
    /// kept.
    pub stored_again: u64,
    /// A backup was running: nothing was done, the next sweep tries again.
    pub deferred: bool,
}

impl Retention {
    /// One sweep over the events after `*examined`; moves `*examined` forward.
    pub async fn sweep(&self, examined: &mut u64) -> Result<SweepCounts, String> {
        let age = SignedDuration::try_from(self.max_age).map_err(|e| e.to_string())?;
        let cutoff = (self.clock)().checked_sub(age).unwrap_or(Timestamp::MIN);
        let mut counts = SweepCounts::default();
        let Ok(_permit) = self.exclusive.clone().try_acquire_owned() else {
            counts.deferred = true;
            return Ok(counts);
        };
        let (mut position, mut waiting) = (*examined, false);
        loop {
            let (reader, after, required) = (self.reader.clone(), position, self.required.clone());
            let page = tokio::task::spawn_blocking(move || expired_files(&reader, after, cutoff, SCAN, &required))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            counts.examined += page.scanned - after;
            for chunk in page.files.chunks(BATCH) {
                let recorded =
                    delete_files(&self.log, chunk.to_vec(), self.max_age_text.clone(), self.required.clone())
                        .await
                        .map_err(|e| e.to_string())?;
                for file in recorded {
                    self.metrics.retention_deleted.inc();
                    if let Some(pause) = &self.before_unlink {
                        pause(&file).await;
                    }
                    let _gate = self.layout.gate().removal(&file.sop_instance_uid).await;
                    if !expired::is_deleted(&self.reader, &file.file_path).map_err(|e| e.to_string())? {
                        counts.stored_again += 1;
                        tracing::info!(
                            seq = file.instance_seq,
                            "an instance file recorded as deleted was stored again before its unlink; kept"
                        );
                        continue;
                    }
                    match self.layout.remove_instance_file(&file.file_path) {
                        Ok(()) => counts.deleted += 1,
                        Err(e) => {
                            counts.unlink_failed += 1;
                            tracing::warn!(seq = file.instance_seq, error = %e, "cannot remove an instance file recorded as deleted; retried at the next start");
                        }
                    }
                }
            }
            if !waiting {
                *examined = page.examined;
            }
            waiting |= page.examined < page.scanned;
            position = page.scanned;
            if page.done || page.scanned == after {
                return Ok(counts);
            }
        }
    }
}

/// Unlinks every file an `InstanceFileDeleted` names that is still there (a crash between
/// the event's commit and the unlink). Idempotent; returns how many were removed.
pub fn unlink_deleted(reader: &LogReader, layout: &Layout) -> Result<u64, String> {
    let mut removed = 0;
    for file in deleted_files(reader).map_err(|e| e.to_string())? {
        if layout.state_dir.join(&file).exists() {
            layout.remove_instance_file(&file).map_err(|e| format!("cannot remove a deleted instance file: {e}"))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The sweep task: sweeps at once, then every `interval`, until `stop`. (Deletions a crash
/// interrupted are finished by [`unlink_deleted`], which the daemon runs at every start.)
pub async fn run(retention: Retention, interval: Duration, stop: CancellationToken) {
    if retention.required.is_empty() {
        tracing::warn!(
            max_age = %retention.max_age_text,
            "retention is configured but no forwarding destination is required: no archive confirms what it holds, so no file will be deleted"
        );
        return;
    }
    let mut examined = 0;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match retention.sweep(&mut examined).await {
            Ok(c) => tracing::info!(
                examined = c.examined,
                deleted = c.deleted,
                unlink_failed = c.unlink_failed,
                deferred_for_backup = c.deferred,
                max_age = %retention.max_age_text,
                "retention sweep done"
            ),
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; retried at the next interval"),
        }
    }
}

#[cfg(test)]
mod tests;
