//! The single writer: one thread owns the write side of the database and commits requests
//! in groups.
//!
//! Callers (tokio tasks) send a request over a bounded channel and await a oneshot
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

use redb::Database;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::envelope::NewEvent;
use super::reserve::DiskGuard;
use super::txn::{AppendError, Applier, ApplyFn, Clock, Job, Request, Txn};
use crate::config::Site;
use crate::telemetry::Metrics;

/// The commit failed: the process must restart on a clean reopen.
#[derive(Debug, thiserror::Error)]
#[error("event log commit failed, no further writes are accepted: {0}")]
pub struct WriterFailure(pub String);

/// A request to the writer.
pub(crate) enum Command<A: Applier> {
    /// Apply this in the next batch's transaction; answer it after the commit.
    Request(Box<dyn Request<A>>),
    /// Finish the current batch, refuse what is still queued, exit.
    Stop,
}

impl<A: Applier> std::fmt::Debug for Command<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Request(_) => "Request",
            Command::Stop => "Stop",
        })
    }
}

/// Shared facts about the writer, read by `/readyz` and the metrics.
#[derive(Debug)]
pub struct WriterState {
    /// Raised when a commit failed; the process must exit.
    pub failed: CancellationToken,
    /// Last committed sequence number.
    pub last_seq: AtomicU64,
    /// The same, for readers that wait for new events (the event stream): changes right
    /// after `last_seq`, once the commit returned.
    pub committed: watch::Sender<u64>,
    /// The writer has stopped taking requests (stopped or failed).
    pub closed: AtomicBool,
}

/// Cheap, cloneable access to the writer for callers, whose requests run with the applier
/// `A` the log was started with.
pub struct LogHandle<A: Applier> {
    tx: mpsc::Sender<Command<A>>,
    pub state: Arc<WriterState>,
}

impl<A: Applier> Clone for LogHandle<A> {
    fn clone(&self) -> Self {
        LogHandle { tx: self.tx.clone(), state: self.state.clone() }
    }
}

impl<A: Applier> std::fmt::Debug for LogHandle<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHandle").field("state", &self.state).finish_non_exhaustive()
    }
}

impl<A: Applier> LogHandle<A> {
    /// Appends events; returns their sequence numbers once they are durable.
    pub async fn append(&self, events: Vec<NewEvent<A::Event>>) -> Result<Vec<u64>, AppendError> {
        self.request(events, super::txn::apply_events::<A>).await
    }

    /// Has the writer apply `input` with `apply` in its next transaction; returns the
    /// outcome once that transaction is durable (or the refusal).
    pub async fn request<Q, O>(&self, input: Q, apply: ApplyFn<Q, O, A>) -> Result<O, AppendError>
    where
        Q: Send + 'static,
        O: Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Request(Box::new(Job { input: Some(input), apply, outcome: None, reply }))).await?;
        rx.await.unwrap_or(Err(AppendError::Unavailable))
    }

    /// Requests waiting in the queue for the writer.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    async fn send(&self, command: Command<A>) -> Result<(), AppendError> {
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
pub(crate) struct Writer<A: Applier> {
    pub db: Arc<Database>,
    pub site: Site,
    pub guard: DiskGuard,
    pub max_batch: usize,
    pub metrics: Arc<Metrics>,
    pub state: Arc<WriterState>,
    pub next_seq: u64,
    pub clock: Clock,
    /// The dictionary values are compressed with when the writer starts.
    pub dictionary: Option<&'static super::value::Dictionary>,
    /// Seals the values of events that carry patient data; `None`: sealing off.
    pub keyring: Option<Arc<super::keys::Keyring>>,
    /// What the layer above does with every appended event and at the end of every batch.
    pub applier: A,
}

pub(crate) fn channel<A: Applier>(depth: usize, last_seq: u64) -> (LogHandle<A>, mpsc::Receiver<Command<A>>) {
    let (tx, rx) = mpsc::channel(depth);
    let state = Arc::new(WriterState {
        failed: CancellationToken::new(),
        last_seq: AtomicU64::new(last_seq),
        committed: watch::Sender::new(last_seq),
        closed: AtomicBool::new(false),
    });
    (LogHandle { tx, state }, rx)
}

impl<A: Applier> Writer<A> {
    /// The thread's body: batches until stopped, all handles dropped, or a commit fails.
    pub fn run(mut self, mut rx: mpsc::Receiver<Command<A>>) -> Result<(), WriterFailure> {
        let _panic_guard = FailOnPanic(self.state.clone());
        super::value::use_dictionary(self.dictionary);
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
    fn close(&self, rx: &mut mpsc::Receiver<Command<A>>) {
        self.state.closed.store(true, Ordering::Release);
        rx.close();
        while let Ok(command) = rx.try_recv() {
            if let Command::Request(request) = command {
                request.fail();
            }
        }
    }

    /// Applies and commits one batch, then answers it. On error nobody gets a success.
    fn commit_batch(&mut self, batch: &mut Vec<Command<A>>) -> Result<(), WriterFailure> {
        let started = Instant::now();
        let mut requests: Vec<Box<dyn Request<A>>> = batch
            .drain(..)
            .filter_map(|c| match c {
                Command::Request(r) => Some(r),
                Command::Stop => None,
            })
            .collect();
        let reserve = self.reserve_check();
        let first_seq = self.next_seq;
        let outcome =
            match self.db.begin_write() {
                Ok(txn) => {
                    let applied = self.apply(&txn, &mut requests, reserve);
                    applied.and_then(|dirty| {
                        if dirty { txn.commit().map_err(Into::into) } else { txn.abort().map_err(Into::into) }
                    })
                }
                Err(e) => Err(e.into()),
            };
        if let Err(e) = outcome {
            self.next_seq = first_seq;
            requests.into_iter().for_each(|r| r.fail());
            return Err(WriterFailure(e.to_string()));
        }
        self.state.last_seq.store(self.next_seq - 1, Ordering::Release);
        self.state.committed.send_if_modified(|seq| std::mem::replace(seq, self.next_seq - 1) != self.next_seq - 1);
        self.metrics.log_last_seq.set((self.next_seq - 1) as i64);
        if !requests.is_empty() {
            self.metrics.log_commit_batch_size.observe(requests.len() as f64);
            self.metrics.log_commit_seconds.observe(started.elapsed().as_secs_f64());
        }
        for request in requests {
            if let Some(e) = request.refusal() {
                self.metrics.append_refused(e.reason());
            }
            request.answer();
        }
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

    /// Applies each request in `txn`. Per-request refusals become answers; a storage error
    /// ends the batch (it is fatal). Returns whether anything was written.
    fn apply(
        &mut self,
        txn: &redb::WriteTransaction,
        requests: &mut [Box<dyn Request<A>>],
        reserve: Result<(), AppendError>,
    ) -> Result<bool, redb::Error> {
        let now = (self.clock)();
        let keyring = self.keyring.as_deref();
        let mut t =
            Txn::new(txn, &self.site, &self.metrics, reserve, &mut self.next_seq, now, &self.applier).sealing(keyring);
        for request in requests.iter_mut() {
            request.apply(&mut t)?;
        }
        if t.dirty {
            t.finish()?;
        }
        Ok(t.dirty)
    }
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
