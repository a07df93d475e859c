//! Shared flushes: instances completed at about the same time, on any association, are made
//! durable by one flush of the file system and recorded by one commit.
//!
//! Each association hands its finished instance (file written and renamed into place, no
//! fsync of its own) to the flusher and waits for the answer. The flusher takes every
//! instance waiting (up to [`MAX_BATCH`]), calls `syncfs` once on the state directory's file
//! system, then appends all their `InstanceStored` events in one request to the log's writer
//! (one transaction, one commit), and only then answers each association, which sends
//! `Success`. While one batch is flushed and committed the next one gathers, so the number
//! of flushes per instance falls as associations are added instead of staying at three.
//!
//! With `dicom.flush = "each"` (or a kernel older than 5.8, see below) the spool fsyncs each
//! file and its directory itself ([`super::spool`]); the flusher then only groups the
//! commits.
//!
//! # Crash safety
//!
//! The durability statement is the one of every C-STORE: `Success` only after the file's
//! data, its directory entry and its `InstanceStored` event are all durable. The steps, and
//! what a power loss at each point leaves:
//!
//! 1. The data set is written to `instances/.spool/<uuid>.part`. Lost, or partly there; the
//!    spool is swept at start-up. The sender had no answer and sends again.
//! 2. The spool file is renamed to its final name (`instances/<study>/<series>/<sop>.<hash>
//!    .dcm`), without an fsync. The rename may reach the disk before the data does (ext4
//!    with delayed allocation, XFS: another program's fsync can commit the journal holding
//!    the rename), so after a power loss the name may hold a short or empty file. No event
//!    names it and the sender had no answer. A re-send finds the name taken and keeps that
//!    file only if it ends with exactly the data set received ([`super::spool`]); else it
//!    renames its own copy over it.
//! 3. `syncfs` returns: the file system's dirty data (every file of the batch) has been
//!    written and waited on, and its journal (ext4) or log (XFS) committed, which holds the
//!    renames and the directories created, with a cache flush of the device. A power loss
//!    now leaves whole files no event names yet; a re-send finds them whole and keeps them.
//! 4. The batch's events are committed (the log's own fsync). A power loss now leaves
//!    everything; the senders, unanswered, send again and are answered as duplicates.
//! 5. `Success` to each association of the batch.
//!
//! Why `syncfs` covers the renamed files and their directories: it is `sync_filesystem()` on
//! the file system of the descriptor: `sync_inodes_sb` writes back and waits for the data of
//! every dirty inode of that file system (the batch's files among them, whatever their
//! directory), then `->sync_fs(wait)` forces the journal (ext4: a jbd2 commit, or a device
//! cache flush when there is nothing to commit; XFS: a synchronous log force), which is
//! where renames, created directories and inode sizes live. An fsync of each directory is
//! therefore not needed on ext4 or XFS (file systems with an ordered metadata journal). It
//! also flushes what other programs wrote to the same file system: a state directory on a
//! busy shared file system is better served by `"each"`.
//!
//! Errors: since Linux 5.8 `syncfs` reports writeback errors of the file system (recorded
//! per super block, reported once to each open descriptor that has not seen them); before,
//! it returned success even when writeback had failed. On an older kernel the daemon
//! therefore flushes each file on its own (with a warning at start).
//!
//! When the flush fails, nothing of the batch is acknowledged: every instance of it is
//! answered `0xA700` (senders retry later), the files this process renamed into place for
//! them are removed, and no event is written. The error belongs to the file system, not to
//! one file: which data did not reach the disk is unknown and the page cache may claim
//! otherwise. So, as after a failed commit of the log, the flusher refuses everything from
//! then on and raises [`Flusher::failed`]: the daemon stops, for systemd to start it again on
//! a clean start. When the commit fails, the log's writer answers every request of it
//! unavailable (`0xA700` here) and stops the daemon itself.
//!
//! Retention: an association holds its instance's [`super::InstanceGate`] from before the
//! file is put in place until the flusher answered, as before; the flusher changes nothing
//! there.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Layout;
use crate::config::FlushMode;
use crate::domain::{self, InstanceOutcome};
use crate::events::NewEvent;
use crate::log::{AppendError, LogHandle};
use crate::projections::Projections;
use crate::storage_hook::{StorageOp, announce};
use crate::telemetry::Metrics;

/// Most instances in one batch (one per association waiting: at most `max_associations`).
pub const MAX_BATCH: usize = 256;

/// The oldest kernel whose `syncfs` reports writeback errors.
const SYNCFS_REPORTS_ERRORS: (u32, u32) = (5, 8);

/// Why an instance handed to the flusher was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum Unrecorded {
    /// The flush failed (this batch's or an earlier one's): `0xA700`.
    #[error("the instance files could not be flushed")]
    Flush,
    /// The log refused or failed the commit.
    #[error(transparent)]
    Append(#[from] AppendError),
}

/// An instance whose file is in place, waiting for its batch.
struct Entry {
    event: NewEvent,
    /// The association's first instance of this study: its audit record goes with it.
    audit: bool,
    /// The file, when this C-STORE renamed it into place (removed if the flush fails).
    renamed: Option<PathBuf>,
    reply: oneshot::Sender<Result<InstanceOutcome, Unrecorded>>,
}

/// The sending side, shared by every association (see the module doc).
#[derive(Debug, Clone)]
pub struct Flusher {
    tx: mpsc::Sender<Entry>,
    /// Raised when a flush failed: the daemon must stop and start again.
    pub failed: CancellationToken,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("renamed", &self.renamed).finish_non_exhaustive()
    }
}

/// What the flusher task owns.
struct Task {
    layout: Layout,
    log: LogHandle<Projections>,
    metrics: Arc<Metrics>,
    failed: CancellationToken,
    /// Open on `instances/` for as long as the daemon runs: `syncfs` reports on it every
    /// writeback error of the file system since the previous call.
    dir: File,
}

impl Flusher {
    /// Starts the flusher task for `layout` (already prepared); it ends once every
    /// [`Flusher`] clone is dropped.
    pub fn start(layout: Layout, log: LogHandle<Projections>, metrics: Arc<Metrics>) -> io::Result<Flusher> {
        let dir = File::open(layout.instances())?;
        let (tx, rx) = mpsc::channel(MAX_BATCH);
        let failed = CancellationToken::new();
        let task = Task { layout, log, metrics, failed: failed.clone(), dir };
        tokio::spawn(task.run(rx));
        Ok(Flusher { tx, failed })
    }

    /// Records `event` (its file in place, `renamed` by this C-STORE or found there) once it
    /// and its batch are durable.
    pub async fn record(
        &self,
        event: NewEvent,
        audit: bool,
        renamed: Option<PathBuf>,
    ) -> Result<InstanceOutcome, Unrecorded> {
        let (reply, answer) = oneshot::channel();
        let entry = Entry { event, audit, renamed, reply };
        // The task is gone only when the daemon stops: the file stays, unnamed, and a
        // re-send checks it before keeping it.
        self.tx.send(entry).await.map_err(|_| Unrecorded::Flush)?;
        answer.await.unwrap_or(Err(Unrecorded::Flush))
    }
}

impl Task {
    async fn run(self, mut rx: mpsc::Receiver<Entry>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let entries = std::mem::take(&mut batch);
            if self.failed.is_cancelled() {
                self.refuse(entries).await;
                continue;
            }
            if let Err(e) = self.flush(&entries).await {
                tracing::error!(error = %e, instances = entries.len(), "cannot flush DICOM instance files; refusing this batch and all further ones, stopping for a clean start");
                self.failed.cancel();
                self.refuse(entries).await;
                continue;
            }
            self.metrics.dicom_flush_batch.observe(entries.len() as f64);
            self.commit(entries).await;
        }
    }

    /// Makes the files of `entries` durable: one `syncfs` (shared flushes; with `"each"` the
    /// spool has fsync'ed each file and directory already).
    async fn flush(&self, entries: &[Entry]) -> io::Result<()> {
        if !self.layout.shared_flush() {
            let flushes: u64 = entries.iter().map(|e| if e.renamed.is_some() { 2 } else { 1 }).sum();
            self.metrics.dicom_flushes.inc_by(flushes);
            return Ok(());
        }
        self.metrics.dicom_flushes.inc();
        let (dir, hook, path) = (self.dir.try_clone()?, self.layout.hook().clone(), self.layout.instances());
        tokio::task::spawn_blocking(move || {
            if announce(&hook, StorageOp::FsSync { path: &path })? {
                rustix::fs::syncfs(&dir)?;
            }
            Ok(())
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
    }

    /// Appends the batch's events in one request and answers each entry.
    async fn commit(&self, entries: Vec<Entry>) {
        let (items, replies): (Vec<_>, Vec<_>) = entries.into_iter().map(|e| ((e.event, e.audit), e.reply)).unzip();
        match domain::receive_instances(&self.log, items).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome.map_err(Unrecorded::from));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone().into()));
                }
            }
        }
    }

    /// Answers `entries` with [`Unrecorded::Flush`] after removing the files they renamed
    /// into place (no event names them, and their data may not be on the disk).
    async fn refuse(&self, entries: Vec<Entry>) {
        let layout = self.layout.clone();
        let (files, replies): (Vec<_>, Vec<_>) = entries.into_iter().map(|e| (e.renamed, e.reply)).unzip();
        let removed = tokio::task::spawn_blocking(move || {
            for file in files.into_iter().flatten() {
                if let Err(e) = layout.remove(&file) {
                    tracing::warn!(error = %e, "cannot remove an instance file whose flush failed; it is removed at the next start");
                }
            }
        })
        .await;
        if let Err(e) = removed {
            tracing::warn!(error = %e, "removing instance files whose flush failed did not finish");
        }
        for reply in replies {
            let _ = reply.send(Err(Unrecorded::Flush));
        }
    }
}

/// `mode`, unless the kernel's `syncfs` cannot report writeback errors (Linux before 5.8):
/// then each file is flushed on its own.
pub fn effective(mode: FlushMode) -> FlushMode {
    if mode == FlushMode::Each {
        return mode;
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    match kernel_version(&release) {
        Some(version) if version >= SYNCFS_REPORTS_ERRORS => FlushMode::Shared,
        _ => {
            tracing::warn!(
                kernel = release.trim(),
                "syncfs reports write errors only since Linux 5.8: flushing each DICOM instance file on its own (dicom.flush = \"each\")"
            );
            FlushMode::Each
        }
    }
}

/// `(major, minor)` of a kernel release such as `6.1.0-18-amd64`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[cfg(test)]
#[path = "flush_tests.rs"]
mod tests;
