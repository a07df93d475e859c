//! The audit journal: where the records of API reads become durable before their answer, in
//! far less than a commit of the database, and without queueing behind ingest.
//!
//! # Why
//!
//! A read answered only after its record is durable waited, through the log writer, for a redb
//! commit: several page writes and two fsyncs, shared with whatever ingest batch was being
//! applied. At 1,000 reads/s that queue was the read's p99 (see `BENCHMARKS.md`). The journal
//! is an append-only file of its own: one `write` and one `fdatasync` per group of records
//! (every record waiting when the previous group's sync returned), on its own thread.
//!
//! # Contract
//!
//! * **Durable before the answer.** [`Journal::record`] returns once its records' frames are
//!   written and `fdatasync` returned. A read is answered only then (503 if it fails).
//! * **Into the trail, in the background.** Each group, once durable, goes to the copier: one
//!   task that has the log writer append the records to `audit_trail` and record, in the same
//!   transaction, the journal position they reach (`meta["audit_journal_copied"]`). The trail's
//!   ids follow the copy order. `GET /api/v1/audit` waits for the copy of what is durable
//!   ([`Journal::settled`]), so the trail it serves holds every answered read.
//! * **Crash.** At start ([`Journal::open`]) every frame after the copied position is copied
//!   into the trail before anything else runs, then the files go. A torn last frame (a crash
//!   within a `write`) was never acknowledged: it is cut off. A record can be neither lost
//!   (it is in the journal until its copy committed) nor copied twice (the position commits
//!   with the copy; frames at or below it are skipped).
//! * **Bounded files.** A file is written full of zeros when it is created ([`preallocated`]:
//!   a group's sync then flushes data only), closed after [`SEGMENT_BYTES`] of frames and a new
//!   one started; a closed file is deleted once every frame in it was copied.
//! * **Below the disk reserve** records are refused like any new data (the read answers 503).
//!
//! # Files
//!
//! `audit-journal/<first position, 20 digits>.log` in the state directory: frames of
//! `[length: u32 LE][CRC-32: u32 LE][msgpack {pos, record}]`, `pos` counting from 1 across files,
//! then zeros to the end of the preallocated file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::record::AuditRecord;
use crate::log::{AppendError, Applier, DiskGuard, LogHandle, LogReader, ReadError, Txn};

/// The journal's directory inside the state directory.
pub const DIR: &str = "audit-journal";
/// A journal file is closed once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 8 << 20;
/// Requests waiting for the journal thread at most.
const QUEUE: usize = 4096;
/// The largest frame read back (a record naming 10,000 patients is far below).
const MAX_FRAME: u32 = 64 << 20;
/// The `meta` key of the copied position.
const COPIED_KEY: &str = "audit_journal_copied";

/// One frame's payload.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    pos: u64,
    record: AuditRecord,
}

/// A request to the journal thread.
struct Append {
    records: Vec<AuditRecord>,
    reply: oneshot::Sender<Result<(), AppendError>>,
}

/// Where reads put their records. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Journal {
    tx: mpsc::Sender<Append>,
    /// Every position up to here is durable in the journal.
    durable: Arc<AtomicU64>,
    /// Every position up to here is in the trail.
    copied: watch::Receiver<u64>,
}

impl std::fmt::Debug for Append {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Append").field("records", &self.records.len()).finish()
    }
}

impl Journal {
    /// Copies what an earlier run left in `state_dir`'s journal into the trail, then starts the
    /// journal thread and the copier (stopped by `stopping`).
    pub async fn open<A: Applier>(
        state_dir: &Path,
        log: LogHandle<A>,
        reader: LogReader,
        disk: DiskGuard,
        stopping: CancellationToken,
    ) -> Result<Journal, JournalError> {
        let dir = state_dir.join(DIR);
        let copied = {
            let (dir, reader) = (dir.clone(), reader.clone());
            tokio::task::spawn_blocking(move || leftovers(&dir, &reader))
                .await
                .map_err(|e| JournalError::Io(e.to_string()))??
        };
        let (copied, left) = copied;
        let mut next = copied + 1;
        if let Some(last) = left.last().map(|e| e.pos) {
            next = last + 1;
            let count = left.len();
            copy(&log, left.into_iter().map(|e| e.record).collect(), last).await.map_err(JournalError::Copy)?;
            tracing::info!(records = count, "audit records left in the journal copied into the trail");
        }
        remove_all(&dir)?;
        std::fs::create_dir_all(&dir).map_err(|e| JournalError::Io(format!("{}: {e}", dir.display())))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let (copy_tx, copy_rx) = mpsc::unbounded_channel();
        let copied_pos = Arc::new(AtomicU64::new(next - 1));
        let durable = Arc::new(AtomicU64::new(next - 1));
        let (copied_tx, copied_rx) = watch::channel(next - 1);
        let thread = Writer {
            dir,
            disk,
            next,
            file: None,
            closed: Vec::new(),
            failed: false,
            copied: copied_pos.clone(),
            durable: durable.clone(),
            copy_tx,
        };
        std::thread::Builder::new()
            .name("zenedge-audit-journal".into())
            .spawn(move || thread.run(rx))
            .map_err(|e| JournalError::Io(e.to_string()))?;
        tokio::spawn(copier(log, copy_rx, copied_pos, copied_tx, stopping));
        Ok(Journal { tx, durable, copied: copied_rx })
    }

    /// Waits until every record durable in the journal now is in the trail (at most
    /// `limit`): the trail's readers then see every answered read.
    pub async fn settled(&self, limit: std::time::Duration) {
        let target = self.durable.load(Ordering::Acquire);
        let mut copied = self.copied.clone();
        let _ = tokio::time::timeout(limit, copied.wait_for(|c| *c >= target)).await;
    }

    /// Appends `records`; returns once they are durable in the journal.
    pub async fn record(&self, records: Vec<AuditRecord>) -> Result<(), AppendError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Append { records, reply }).await.map_err(|_| AppendError::Unavailable)?;
        rx.await.unwrap_or(Err(AppendError::Unavailable))
    }
}

/// Why the journal cannot start.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("audit journal: {0}")]
    Io(String),
    #[error("audit journal: cannot read the copied position: {0}")]
    Read(#[from] ReadError),
    #[error("audit journal: records left from the last run cannot be copied into the trail: {0}")]
    Copy(AppendError),
}

/// The journal thread's state.
struct Writer {
    dir: PathBuf,
    disk: DiskGuard,
    /// The position of the next record.
    next: u64,
    /// The file being appended to, its first position and its length.
    file: Option<(File, PathBuf, u64)>,
    /// Closed files and the last position in each, oldest first.
    closed: Vec<(PathBuf, u64)>,
    /// A write failed: the file may end in a torn frame, after which nothing may follow, so
    /// every further record is refused until a restart.
    failed: bool,
    /// Every position up to here is in the trail (the copier moves it).
    copied: Arc<AtomicU64>,
    /// Every position up to here is durable (this thread moves it).
    durable: Arc<AtomicU64>,
    copy_tx: mpsc::UnboundedSender<(Vec<AuditRecord>, u64)>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Append>) {
        let mut group = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            group.push(first);
            while let Ok(more) = rx.try_recv() {
                group.push(more);
            }
            let result = self.append(&mut group);
            for request in group.drain(..) {
                let _ = request.reply.send(result.clone());
            }
            self.forget_copied();
        }
    }

    /// Writes and syncs the frames of every record of `group`, then hands them to the copier.
    fn append(&mut self, group: &mut [Append]) -> Result<(), AppendError> {
        if self.failed {
            return Err(AppendError::Unavailable);
        }
        match self.disk.space() {
            Ok(space) if !space.below_reserve() => {}
            Ok(space) => return Err(AppendError::DiskReserve { free: space.free, reserve: space.reserve }),
            Err(_) => return Err(AppendError::DiskReserve { free: 0, reserve: 0 }),
        }
        let mut bytes = Vec::new();
        let mut records = Vec::new();
        let first = self.next;
        for request in group.iter_mut() {
            for record in std::mem::take(&mut request.records) {
                let entry = Entry { pos: self.next, record };
                let payload = rmp_serde::to_vec_named(&entry).map_err(|e| AppendError::Encode(e.to_string()))?;
                frame(&mut bytes, &payload);
                records.push(entry.record);
                self.next += 1;
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.write(first, &bytes) {
            tracing::error!(error = %e, "audit journal write failed: reads are refused until a restart");
            self.failed = true;
            return Err(AppendError::Unavailable);
        }
        self.durable.store(self.next - 1, Ordering::Release);
        let _ = self.copy_tx.send((records, self.next - 1));
        Ok(())
    }

    /// Writes `bytes` (frames from position `first`) after the current file's frames and syncs
    /// them, to a new file when the current one is full.
    fn write(&mut self, first: u64, bytes: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        if self.file.as_ref().is_some_and(|(_, _, len)| *len >= SEGMENT_BYTES) {
            let (_, path, _) = self.file.take().expect("checked");
            self.closed.push((path, first - 1));
        }
        if self.file.is_none() {
            let path = self.dir.join(format!("{first:020}.log"));
            let file = preallocated(&path)?;
            File::open(&self.dir)?.sync_all()?;
            self.file = Some((file, path, 0));
        }
        let (file, _, len) = self.file.as_mut().expect("opened");
        file.write_all_at(bytes, *len)?;
        file.sync_data()?;
        *len += bytes.len() as u64;
        Ok(())
    }

    /// Deletes the closed files whose every record is in the trail.
    fn forget_copied(&mut self) {
        let copied = self.copied.load(Ordering::Acquire);
        while let Some((path, last)) = self.closed.first() {
            if *last > copied {
                break;
            }
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(error = %e, file = %path.display(), "cannot delete a copied audit journal file");
            }
            self.closed.remove(0);
        }
    }
}

/// A new journal file of [`SEGMENT_BYTES`] zeros, written and synced: the frames then
/// overwrite blocks that are already allocated and written, so a group's `fdatasync` flushes
/// those data blocks only, with no change of the file's size or extents for the file system to
/// commit in its own journal first (on a loaded disk that commit was most of a read's wait).
/// Reading stops at the first zero header (no frame has an empty payload).
fn preallocated(path: &Path) -> std::io::Result<File> {
    let mut file = OpenOptions::new().create_new(true).read(true).write(true).open(path)?;
    let zeros = vec![0u8; 1 << 20];
    let mut left = SEGMENT_BYTES;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    Ok(file)
}

/// CRC-32 (IEEE) of `bytes`.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum()
}

/// `[length][CRC-32][payload]`.
fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The frames of `bytes` up to the first torn or damaged one.
fn frames(bytes: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 8 {
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if len == 0 || len > MAX_FRAME || rest.len() - 8 < len as usize {
            break;
        }
        let payload = &rest[8..8 + len as usize];
        if crc32(payload) != crc {
            break;
        }
        match rmp_serde::from_slice::<Entry>(payload) {
            Ok(entry) => out.push(entry),
            Err(_) => break,
        }
        rest = &rest[8 + len as usize..];
    }
    out
}

/// The copied position and every record of `dir`'s files after it, in order.
fn leftovers(dir: &Path, reader: &LogReader) -> Result<(u64, Vec<Entry>), JournalError> {
    let copied = copied(reader)?;
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(JournalError::Io(format!("{}: {e}", dir.display()))),
    };
    files.retain(|p| p.extension().is_some_and(|x| x == "log"));
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| JournalError::Io(format!("{}: {e}", path.display())))?;
        out.extend(frames(&bytes).into_iter().filter(|e| e.pos > copied));
    }
    Ok((copied, out))
}

fn remove_all(dir: &Path) -> Result<(), JournalError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(JournalError::Io(format!("{}: {e}", dir.display()))),
    }
}

/// The copied position (0: nothing copied yet).
pub fn copied(reader: &LogReader) -> Result<u64, ReadError> {
    crate::log::positions::read(reader, COPIED_KEY)
}

/// Appends `records` to the trail with the journal position they reach, in one transaction.
async fn copy<A: Applier>(log: &LogHandle<A>, records: Vec<AuditRecord>, upto: u64) -> Result<(), AppendError> {
    log.request((records, upto), apply_copy::<A>).await
}

fn apply_copy<A: Applier>(
    t: &mut Txn<'_, '_, A>,
    (records, upto): (Vec<AuditRecord>, u64),
) -> Result<Result<(), AppendError>, redb::Error> {
    super::trail::append(t, records)?;
    crate::log::positions::write(t, COPIED_KEY, upto)?;
    Ok(Ok(()))
}

/// Copies every durable group into the trail, in order, as many at once as are waiting;
/// retries a failed copy (the records stay in the journal meanwhile).
async fn copier<A: Applier>(
    log: LogHandle<A>,
    mut rx: mpsc::UnboundedReceiver<(Vec<AuditRecord>, u64)>,
    copied: Arc<AtomicU64>,
    published: watch::Sender<u64>,
    stopping: CancellationToken,
) {
    let mut pending: Vec<AuditRecord> = Vec::new();
    let mut upto = 0;
    loop {
        if pending.is_empty() {
            let Some((records, last)) = rx.recv().await else { return };
            pending.extend(records);
            upto = last;
        }
        while let Ok((records, last)) = rx.try_recv() {
            pending.extend(records);
            upto = last;
        }
        match copy(&log, pending.clone(), upto).await {
            Ok(()) => {
                pending.clear();
                copied.store(upto, Ordering::Release);
                published.send_replace(upto);
            }
            Err(e) => {
                // Nothing was copied; a restart copies them from the journal if this never succeeds.
                tracing::warn!(error = %e, "audit records not copied from the journal into the trail yet; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = stopping.cancelled() => return,
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
