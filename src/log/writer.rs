//! The single writer: one thread owns the write side of the database and commits requests
//! in groups.
//!
//! Callers (tokio tasks) send a [`Command`] over a bounded channel and await a oneshot
//! reply. The thread blocks for the first request, takes every other request already
//! waiting (up to `max_batch`), applies them all in one write transaction, commits once
//! with `Durability::Immediate`, and only then answers each of them. Durable throughput so
//! grows with concurrency instead of being capped at one fsync per message.
//!
//! A failed commit is never retried: after an fsync error the page cache may claim data is
//! on disk that is not. The writer answers every request of the batch and every request
//! still queued with [`AppendError::Unavailable`], refuses new ones, raises the failure
//! token, and returns the error so the process exits and is restarted on a clean reopen.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use jiff::Timestamp;
use redb::{Database, ReadableTable};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::envelope::{EnvelopeRef, NewEvent};
use super::reserve::DiskGuard;
use super::store::{DedupeKey, EVENTS, HL7_DEDUPE};
use crate::config::Site;
use crate::domain::Event;
use crate::telemetry::Metrics;

/// Why an append was not done. Every variant means: nothing was stored, answer negatively.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("free disk space {free} bytes is below the reserve of {reserve} bytes")]
    DiskReserve { free: u64, reserve: u64 },
    #[error("the event log is not accepting writes (shutting down or failed)")]
    Unavailable,
    #[error("event could not be encoded: {0}")]
    Encode(String),
}

impl AppendError {
    /// Short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AppendError::DiskReserve { .. } => "disk_reserve",
            AppendError::Unavailable => "unavailable",
            AppendError::Encode(_) => "encode",
        }
    }
}

/// The commit failed: the process must restart on a clean reopen.
#[derive(Debug, thiserror::Error)]
#[error("event log commit failed, no further writes are accepted: {0}")]
pub struct WriterFailure(pub String);

/// An HL7 message to store unless the same sender already sent the same content under the
/// same control id.
#[derive(Debug)]
pub struct Hl7Append {
    /// Decoded MSH-3, MSH-4, MSH-10: the sender's identity for its control ids.
    pub sending_application: String,
    pub sending_facility: String,
    pub control_id: String,
    /// SHA-256 of the raw message: "the same content".
    pub content_sha256: [u8; 32],
    /// The acknowledgement that will be sent if this commits; kept so a re-send a year later
    /// gets the byte-identical answer. Empty when no acknowledgement is sent.
    pub ack: Vec<u8>,
    /// Must be an [`Event::Hl7MessageReceived`]; the writer fills in the conflict fields.
    pub event: NewEvent,
}

/// What became of an [`Hl7Append`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hl7Outcome {
    /// Stored at `seq`; `conflicts_with` is the first message stored under this sender and
    /// control id with other content, if any.
    Stored { seq: u64, conflicts_with: Option<u64> },
    /// Already stored at `seq` with the same content: answer with `ack`, nothing appended.
    Duplicate { seq: u64, ack: Vec<u8> },
}

/// The value of an `hl7_dedupe` row.
#[derive(Debug, Serialize, Deserialize)]
struct DedupeEntry {
    seq: u64,
    #[serde(with = "serde_bytes")]
    ack: Vec<u8>,
}

/// A request to the writer.
#[derive(Debug)]
pub(crate) enum Command {
    Append(Vec<NewEvent>, oneshot::Sender<Result<Vec<u64>, AppendError>>),
    Hl7(Box<Hl7Append>, oneshot::Sender<Result<Hl7Outcome, AppendError>>),
    /// Finish the current batch, refuse what is still queued, exit.
    Stop,
}

/// Shared facts about the writer, read by `/readyz` and the metrics.
#[derive(Debug)]
pub struct WriterState {
    /// Raised when a commit failed; the process must exit.
    pub failed: CancellationToken,
    /// Last committed sequence number.
    pub last_seq: AtomicU64,
    /// The writer has stopped taking requests (stopped or failed).
    pub closed: AtomicBool,
}

/// Cheap, cloneable access to the writer for callers.
#[derive(Debug, Clone)]
pub struct LogHandle {
    tx: mpsc::Sender<Command>,
    pub state: Arc<WriterState>,
}

impl LogHandle {
    /// Appends events; returns their sequence numbers once they are durable.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<u64>, AppendError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Append(events, reply)).await?;
        rx.await.unwrap_or(Err(AppendError::Unavailable))
    }

    /// Stores an HL7 message unless it is a re-send; replies once durable.
    pub async fn append_hl7(&self, request: Hl7Append) -> Result<Hl7Outcome, AppendError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Hl7(Box::new(request), reply)).await?;
        rx.await.unwrap_or(Err(AppendError::Unavailable))
    }

    /// Requests waiting in the queue for the writer.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    async fn send(&self, command: Command) -> Result<(), AppendError> {
        if self.state.closed.load(Ordering::Acquire) {
            return Err(AppendError::Unavailable);
        }
        self.tx.send(command).await.map_err(|_| AppendError::Unavailable)
    }

    pub(crate) async fn stop(&self) {
        let _ = self.tx.send(Command::Stop).await;
    }
}

/// Everything the writer thread owns.
pub(crate) struct Writer {
    pub db: Arc<Database>,
    pub site: Site,
    pub guard: DiskGuard,
    pub max_batch: usize,
    pub metrics: Arc<Metrics>,
    pub state: Arc<WriterState>,
    pub next_seq: u64,
}

/// One request's answer, held until the commit returns.
enum Pending {
    Append(oneshot::Sender<Result<Vec<u64>, AppendError>>, Result<Vec<u64>, AppendError>),
    Hl7(oneshot::Sender<Result<Hl7Outcome, AppendError>>, Result<Hl7Outcome, AppendError>),
}

impl Pending {
    fn send(self) {
        // A caller that went away (connection closed) does not need its answer.
        match self {
            Pending::Append(tx, r) => drop(tx.send(r)),
            Pending::Hl7(tx, r) => drop(tx.send(r)),
        }
    }

    fn fail(self) {
        match self {
            Pending::Append(tx, _) => drop(tx.send(Err(AppendError::Unavailable))),
            Pending::Hl7(tx, _) => drop(tx.send(Err(AppendError::Unavailable))),
        }
    }
}

pub(crate) fn channel(depth: usize, last_seq: u64) -> (LogHandle, mpsc::Receiver<Command>) {
    let (tx, rx) = mpsc::channel(depth);
    let state = Arc::new(WriterState {
        failed: CancellationToken::new(),
        last_seq: AtomicU64::new(last_seq),
        closed: AtomicBool::new(false),
    });
    (LogHandle { tx, state }, rx)
}

impl Writer {
    /// The thread's body: batches until stopped, all handles dropped, or a commit fails.
    pub fn run(mut self, mut rx: mpsc::Receiver<Command>) -> Result<(), WriterFailure> {
        let _panic_guard = FailOnPanic(self.state.clone());
        let mut batch = Vec::with_capacity(self.max_batch);
        let mut stop = false;
        while !stop {
            let Some(first) = rx.blocking_recv() else { break };
            batch.push(first);
            while batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            stop = batch.iter().any(|c| matches!(c, Command::Stop));
            if let Err(failure) = self.commit_batch(&mut batch) {
                tracing::error!(error = %failure.0, "event log commit failed; refusing all writes, exiting for a clean reopen");
                self.close(&mut rx);
                self.state.failed.cancel();
                return Err(failure);
            }
        }
        self.close(&mut rx);
        Ok(())
    }

    /// Refuses everything still queued and marks the writer closed.
    fn close(&self, rx: &mut mpsc::Receiver<Command>) {
        self.state.closed.store(true, Ordering::Release);
        rx.close();
        while let Ok(command) = rx.try_recv() {
            match command {
                Command::Append(_, tx) => drop(tx.send(Err(AppendError::Unavailable))),
                Command::Hl7(_, tx) => drop(tx.send(Err(AppendError::Unavailable))),
                Command::Stop => {}
            }
        }
    }

    /// Applies and commits one batch, then answers it. On error nobody gets a success.
    fn commit_batch(&mut self, batch: &mut Vec<Command>) -> Result<(), WriterFailure> {
        let started = Instant::now();
        let requests = batch.iter().filter(|c| !matches!(c, Command::Stop)).count();
        let reserve = self.reserve_check();
        let first_seq = self.next_seq;
        let (answers, outcome) = match self.db.begin_write() {
            Ok(txn) => {
                let (answers, applied) = self.apply(&txn, batch.drain(..), reserve);
                let outcome = applied.and_then(|dirty| {
                    if dirty { txn.commit().map_err(Into::into) } else { txn.abort().map_err(Into::into) }
                });
                (answers, outcome)
            }
            Err(e) => {
                let answers = batch.drain(..).filter_map(|c| Self::refuse(c, AppendError::Unavailable)).collect();
                (answers, Err(e.into()))
            }
        };
        if let Err(e) = outcome {
            self.next_seq = first_seq;
            answers.into_iter().for_each(Pending::fail);
            return Err(WriterFailure(e.to_string()));
        }
        self.state.last_seq.store(self.next_seq - 1, Ordering::Release);
        self.metrics.log_last_seq.set((self.next_seq - 1) as i64);
        if requests > 0 {
            self.metrics.log_commit_batch_size.observe(requests as f64);
            self.metrics.log_commit_seconds.observe(started.elapsed().as_secs_f64());
        }
        answers.into_iter().for_each(Pending::send);
        Ok(())
    }

    /// `Err` with the reserve error when new data must be refused.
    fn reserve_check(&self) -> Result<(), AppendError> {
        match self.guard.space() {
            Ok(space) if !space.below_reserve() => Ok(()),
            Ok(space) => Err(AppendError::DiskReserve { free: space.free, reserve: space.reserve }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot measure free disk space; refusing new data");
                Err(AppendError::DiskReserve { free: 0, reserve: 0 })
            }
        }
    }

    fn refuse(command: Command, error: AppendError) -> Option<Pending> {
        match command {
            Command::Append(_, tx) => Some(Pending::Append(tx, Err(error))),
            Command::Hl7(_, tx) => Some(Pending::Hl7(tx, Err(error))),
            Command::Stop => None,
        }
    }

    /// Applies each request in `txn`. Per-request refusals become answers; a storage error
    /// ends the batch (it is fatal). Returns whether anything was written.
    fn apply(
        &mut self,
        txn: &redb::WriteTransaction,
        commands: impl Iterator<Item = Command>,
        reserve: Result<(), AppendError>,
    ) -> (Vec<Pending>, Result<bool, redb::Error>) {
        let mut answers = Vec::new();
        let mut dirty = false;
        let recorded_at = Timestamp::now();
        let result = (|| {
            let mut events = txn.open_table(EVENTS)?;
            let mut dedupe = txn.open_table(HL7_DEDUPE)?;
            let mut tables = Tables { events: &mut events, dedupe: &mut dedupe, recorded_at };
            for command in commands {
                let answer = match command {
                    Command::Append(new, tx) => {
                        let r = match &reserve {
                            Err(e) => Err(e.clone()),
                            Ok(()) => self.append_all(&mut tables, &new)?,
                        };
                        dirty |= r.is_ok();
                        Pending::Append(tx, r)
                    }
                    Command::Hl7(request, tx) => {
                        let r = self.append_hl7(&mut tables, *request, &reserve)?;
                        dirty |= matches!(r, Ok(Hl7Outcome::Stored { .. }));
                        Pending::Hl7(tx, r)
                    }
                    Command::Stop => continue,
                };
                answers.push(answer);
            }
            Ok(dirty)
        })();
        for a in &answers {
            match a {
                Pending::Append(_, Err(e)) | Pending::Hl7(_, Err(e)) => self.metrics.append_refused(e.reason()),
                _ => {}
            }
        }
        (answers, result)
    }

    fn append_all(
        &mut self,
        t: &mut Tables<'_, '_>,
        events: &[NewEvent],
    ) -> Result<Result<Vec<u64>, AppendError>, redb::Error> {
        let first = self.next_seq;
        let mut encoded = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            match encode(&self.site, e, first + i as u64, t.recorded_at) {
                Ok(bytes) => encoded.push(bytes),
                Err(err) => return Ok(Err(err)),
            }
        }
        let mut seqs = Vec::with_capacity(events.len());
        for bytes in encoded {
            seqs.push(self.insert(t, &bytes)?);
        }
        Ok(Ok(seqs))
    }

    fn append_hl7(
        &mut self,
        t: &mut Tables<'_, '_>,
        mut request: Hl7Append,
        reserve: &Result<(), AppendError>,
    ) -> Result<Result<Hl7Outcome, AppendError>, redb::Error> {
        let Writer { site, next_seq, metrics, .. } = self;
        let lo = (
            site.tenant_id.as_str(),
            site.hospital_id.as_str(),
            request.sending_application.as_str(),
            request.sending_facility.as_str(),
            request.control_id.as_str(),
            [0u8; 32],
        );
        let hi = (lo.0, lo.1, lo.2, lo.3, lo.4, [0xffu8; 32]);
        let mut conflicts_with = None;
        for row in t.dedupe.range(lo..=hi)? {
            let (key, value) = row?;
            let entry: DedupeEntry = match rmp_serde::from_slice(value.value()) {
                Ok(entry) => entry,
                Err(e) => return Err(redb::StorageError::Corrupted(format!("hl7_dedupe entry: {e}")).into()),
            };
            if key.value().5 == request.content_sha256 {
                metrics.hl7_duplicates.inc();
                return Ok(Ok(Hl7Outcome::Duplicate { seq: entry.seq, ack: entry.ack }));
            }
            conflicts_with = Some(conflicts_with.map_or(entry.seq, |s: u64| s.min(entry.seq)));
        }
        if let Err(e) = reserve {
            return Ok(Err(e.clone()));
        }
        let Event::Hl7MessageReceived(message) = &mut request.event.event;
        message.control_id_conflict = conflicts_with.is_some();
        message.conflicts_with_seq = conflicts_with;
        let seq = *next_seq;
        let bytes = match encode(site, &request.event, seq, t.recorded_at) {
            Ok(bytes) => bytes,
            Err(e) => return Ok(Err(e)),
        };
        let entry = rmp_serde::to_vec_named(&DedupeEntry { seq, ack: request.ack })
            .map_err(|e| redb::StorageError::Corrupted(format!("hl7_dedupe entry: {e}")))?;
        insert(next_seq, t, &bytes)?;
        let key = (lo.0, lo.1, lo.2, lo.3, lo.4, request.content_sha256);
        t.dedupe.insert(key, entry.as_slice())?;
        if conflicts_with.is_some() {
            metrics.hl7_control_id_conflicts.inc();
        }
        Ok(Ok(Hl7Outcome::Stored { seq, conflicts_with }))
    }

    /// Inserts at the next sequence number (gapless: a failed batch is fatal).
    fn insert(&mut self, t: &mut Tables<'_, '_>, bytes: &[u8]) -> Result<u64, redb::Error> {
        insert(&mut self.next_seq, t, bytes)
    }
}

/// Inserts at `*next_seq` and advances it.
fn insert(next_seq: &mut u64, t: &mut Tables<'_, '_>, bytes: &[u8]) -> Result<u64, redb::Error> {
    let seq = *next_seq;
    t.events.insert(seq, bytes)?;
    *next_seq += 1;
    Ok(seq)
}

/// Serializes the envelope of `e` at `seq`.
fn encode(site: &Site, e: &NewEvent, seq: u64, recorded_at: Timestamp) -> Result<Vec<u8>, AppendError> {
    {
        EnvelopeRef {
            seq,
            event_id: e.event_id,
            event_type: e.event.event_type(),
            event_version: e.event.event_version(),
            occurred_at: e.occurred_at,
            recorded_at,
            tenant_id: &site.tenant_id,
            hospital_id: &site.hospital_id,
            edge_id: &site.edge_id,
            aggregate: &e.aggregate,
            correlation_id: e.correlation_id,
            causation_id: e.causation_id,
            data: &e.event,
        }
        .encode(e.event.size_hint())
        .map_err(|err| AppendError::Encode(err.to_string()))
    }
}

/// The tables one batch writes.
struct Tables<'a, 't> {
    events: &'a mut redb::Table<'t, u64, &'static [u8]>,
    dedupe: &'a mut redb::Table<'t, DedupeKey, &'static [u8]>,
    recorded_at: Timestamp,
}

/// Marks the writer failed if its thread unwinds, so the daemon exits instead of waiting on
/// a writer that is gone.
struct FailOnPanic(Arc<WriterState>);

impl Drop for FailOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.closed.store(true, Ordering::Release);
            self.0.failed.cancel();
        }
    }
}
