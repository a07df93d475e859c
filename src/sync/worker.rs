//! The sync loop, on its own thread: check that the hub holds this log's history, read the
//! next batch after the cursor, send it, act on the hub's answer. See the module docs of
//! [`crate::sync`] for the guarantees; the history checks and the fork are in [`checks`], the
//! dead letters in [`letters`].

mod audit;
mod checks;
mod letters;
mod waits;

use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::batch::{self, RawBatch};
use super::breaker::{self, Breaker};
use super::client::{Batch, Failure, FailureKind, Outcome, Transport};
use super::cursor::{self, SyncEpoch};
use super::history::Divergence;
use super::state::SyncShared;
use super::wire;
use crate::config::SyncConfig;
use crate::log::{LogHandle, LogReader};
use crate::projections::Projections;
use crate::telemetry::Metrics;

/// gzip level of batch bodies: msgpack of text compresses well already at 1, and level 1
/// is several times faster than the default.
pub(super) const GZIP_LEVEL: u32 = 1;

/// Everything the worker needs; [`super::spawn`] runs it on a thread.
pub struct WorkerParts {
    pub config: SyncConfig,
    pub transport: Box<dyn Transport>,
    pub log: LogHandle<Projections>,
    pub reader: LogReader,
    pub metrics: Arc<Metrics>,
    pub shared: Arc<SyncShared>,
}

impl std::fmt::Debug for WorkerParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerParts").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A refused range being narrowed down to the event the hub refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bisect {
    /// The end of the refused range: batches stay at most `limit` long until the cursor
    /// passed it (or the refused event was parked).
    end: u64,
    limit: usize,
}

/// A batch read and compressed, ready to send while the cursor is still `after`.
struct Prepared {
    after: u64,
    /// The batch length limit it was read with.
    limit: usize,
    raw: RawBatch,
    batch: Batch,
}

/// Reads the batch after `after` and compresses it, for `epoch`.
fn prepare(
    reader: &LogReader,
    epoch: u64,
    after: u64,
    limit: usize,
    max_bytes: usize,
) -> Result<Prepared, crate::log::ReadError> {
    let raw = batch::read(reader, after, limit, max_bytes)?;
    let batch = Batch {
        epoch,
        prev_event_id: raw.prev_event_id,
        first: raw.first,
        last: raw.last,
        skipped: raw.skipped.clone(),
        redelivery: false,
        events: raw.seqs.len(),
        body: if raw.is_empty() { Vec::new() } else { wire::encode_batch(raw.envelopes(), GZIP_LEVEL) },
    };
    Ok(Prepared { after, limit, raw, batch })
}

/// What one step did.
pub(super) enum Step {
    /// The hub answered per the contract (stored, realigned, refused): go on at once.
    Progress,
    /// Nothing to send: wait for new events.
    Idle,
    /// Shutdown.
    Stop,
}

/// Why a step did not make progress.
pub(super) enum StepError {
    /// The hub could not be reached or did not follow the contract: back off.
    Hub(Failure),
    /// This edge's own log could not be read or written.
    Local(String),
}

impl From<Failure> for StepError {
    fn from(f: Failure) -> Self {
        StepError::Hub(f)
    }
}

pub(super) struct Worker {
    config: SyncConfig,
    transport: Box<dyn Transport>,
    log: LogHandle<Projections>,
    reader: LogReader,
    metrics: Arc<Metrics>,
    shared: Arc<SyncShared>,
    runtime: Handle,
    shutdown: CancellationToken,
    /// The writer's last committed sequence number: wakes the worker on new events.
    committed: watch::Receiver<u64>,
    rng: fastrand::Rng,
    /// Every event up to here is on the hub (moved on its `200` or `409`).
    cursor: u64,
    /// The cursor as last durably written; `cursor` goes back to it if a write fails.
    persisted: u64,
    /// The write of `cursor` in flight, overlapping the next exchange.
    pending_write: Option<(u64, tokio::task::JoinHandle<Result<(), crate::log::AppendError>>)>,
    breaker: Breaker,
    bisect: Option<Bisect>,
    /// The next batch, read ahead (valid while the cursor is its `after`: the dead letters it
    /// lists as skipped change only through this worker, which drops it when they do).
    prepared: Option<Prepared>,
    /// Some dead letter may be waiting for redelivery.
    retry_hint: bool,
    /// Consecutive failures to read or write the log itself.
    local_failures: u32,
    /// The epoch of the edge's stream on the hub it sends to.
    epoch: SyncEpoch,
    /// The hub's position was read and found to be on this log's history, in this process:
    /// batches go only after that.
    checked: bool,
    /// The hub holds another history: nothing is sent until an operator acts.
    diverged: Option<Divergence>,
    /// The audit pages' own cursor and backoff.
    audit: audit::AuditSync,
    /// Since when the worker has had nothing to send (the hub's position is asked after
    /// `position_check_interval` of it).
    idle_since: Option<Instant>,
}

impl Worker {
    pub(super) fn new(parts: WorkerParts, runtime: Handle, shutdown: CancellationToken) -> Worker {
        let WorkerParts { config, transport, log, reader, metrics, shared } = parts;
        let committed = log.state.committed.subscribe();
        let breaker = Breaker::new(config.breaker_failures, config.breaker_open);
        for kind in FailureKind::ALL {
            let _ = metrics.sync_failures.get_or_create(&crate::telemetry::KindLabels { kind: kind.as_str().into() });
        }
        Worker {
            config,
            transport,
            log,
            reader,
            metrics,
            shared,
            runtime,
            shutdown,
            committed,
            rng: fastrand::Rng::new(),
            cursor: 0,
            persisted: 0,
            pending_write: None,
            breaker,
            bisect: None,
            prepared: None,
            retry_hint: true,
            local_failures: 0,
            epoch: SyncEpoch::default(),
            checked: false,
            diverged: None,
            audit: audit::AuditSync::new(),
            idle_since: None,
        }
    }

    /// Reads the cursor, the epoch and the restore mark.
    fn load(&mut self) -> Result<(), crate::log::ReadError> {
        let cursor = cursor::cursor(&self.reader)?;
        let epoch = cursor::epoch(&self.reader)?;
        let restored_at = cursor::restored_at(&self.reader)?;
        self.persisted = cursor;
        self.set_cursor(cursor);
        self.epoch = epoch;
        self.shared.update(|s| {
            (s.epoch, s.fork_at) = (epoch.epoch, epoch.fork_at);
            s.restored_at = restored_at;
        });
        Ok(())
    }

    /// Runs until shutdown.
    pub(super) fn run(mut self) {
        while !self.shutdown.is_cancelled() {
            match self.load() {
                Ok(()) => break,
                Err(e) => {
                    if !self.local_failure(format!("cannot read the sync state: {e}")) {
                        return;
                    }
                }
            }
        }
        tracing::info!(
            cursor = self.cursor,
            epoch = self.epoch.epoch,
            hub = self.shared.hub_url.as_deref().unwrap_or(""),
            "sync started"
        );
        while !self.shutdown.is_cancelled() {
            if self.diverged.is_some() {
                if !self.halted() {
                    break;
                }
                continue;
            }
            if !self.wait_for_breaker() {
                break;
            }
            if self.shared.take_retry_request() {
                self.retry_hint = true;
            }
            if let Some(reply) = self.shared.take_fork_request() {
                let _ = reply.send(Err("the sync has not diverged from the hub: there is nothing to fork".into()));
            }
            let step = if !self.checked {
                self.first_contact()
            } else {
                match self.redelivery_due() {
                    Ok(Some(seq)) => self.redeliver(seq),
                    Ok(None) => self.deliver_next(),
                    Err(e) => Err(e),
                }
            };
            // After progress the cursor write overlaps the next exchange; before any wait
            // it must be done.
            let step = match step {
                Ok(Step::Progress) | Ok(Step::Stop) => step,
                other => self.settle().and(other),
            };
            let go_on = match step {
                Ok(Step::Progress) => {
                    self.succeeded();
                    self.audit_step(false);
                    true
                }
                Ok(Step::Idle) => self.audit_step(true) || self.wait_for_work(),
                Ok(Step::Stop) => false,
                Err(StepError::Hub(failure)) => self.failed(failure),
                Err(StepError::Local(message)) => self.local_failure(message),
            };
            if !go_on {
                break;
            }
        }
        if let Err(StepError::Local(message)) = self.settle() {
            tracing::error!(error = %message, "sync cannot use the event log");
        }
        tracing::info!(cursor = self.cursor, "sync stopped");
    }

    // ---- one step ----

    /// Sends the next batch after the cursor: the one read ahead while the previous batch
    /// was in flight, or one read now (lingering for a fuller one). While this one is in
    /// flight, the batch after it is read and compressed on a helper thread, so that the
    /// edge's work overlaps the hub's.
    fn deliver_next(&mut self) -> Result<Step, StepError> {
        let limit = self.bisect.map_or(self.config.batch_max_events, |b| b.limit);
        let prepared = match self.prepared.take() {
            Some(p) if p.after == self.cursor && p.limit == limit => p,
            _ => {
                if self.bisect.is_none() && !self.linger() {
                    return Ok(Step::Stop);
                }
                prepare(&self.reader, self.epoch.epoch, self.cursor, limit, self.config.batch_max_bytes)
                    .map_err(|e| StepError::Local(format!("cannot read the log: {e}")))?
            }
        };
        let (raw, batch) = (&prepared.raw, &prepared.batch);
        if raw.is_empty() {
            self.shared.update(|s| s.oldest_unsynced_at = None);
            return Ok(Step::Idle);
        }
        let oldest = raw.envelopes().next().and_then(recorded_at);
        self.shared.update(|s| s.oldest_unsynced_at = oldest.or(s.oldest_unsynced_at));
        let read_ahead = (self.bisect.is_none() && *self.committed.borrow() > batch.last).then(|| {
            let (reader, after, max_bytes) = (self.reader.clone(), batch.last, self.config.batch_max_bytes);
            let epoch = self.epoch.epoch;
            std::thread::Builder::new()
                .name("zenedge-sync-read".into())
                .spawn(move || prepare(&reader, epoch, after, limit, max_bytes))
                .ok()
        });
        let Some(outcome) = self.send(batch) else { return Ok(Step::Stop) };
        let next = read_ahead.flatten().and_then(|h| h.join().ok()).and_then(Result::ok);
        self.settle()?;
        match outcome {
            Outcome::Stored(reported) if reported.stored_through == batch.last => {
                if self.stored_elsewhere(&prepared.raw, reported)? {
                    return Ok(Step::Progress);
                }
                let at = reported.stored_through;
                self.advance_overlapped(at)?;
                self.confirmed_contact();
                self.metrics.sync_batches.inc();
                self.metrics.sync_events.inc_by(batch.events as u64);
                self.shared.update(|s| {
                    s.batches_sent += 1;
                    s.events_sent += batch.events as u64;
                });
                self.prepared = next;
                Ok(Step::Progress)
            }
            Outcome::Stored(reported) => Err(Failure::new(
                FailureKind::Protocol,
                format!(
                    "hub answered 200 for events {}..={} with stored_through {}",
                    batch.first, batch.last, reported.stored_through
                ),
            )
            .into()),
            Outcome::Conflict(reported) => self.on_conflict(reported),
            Outcome::Refused(reason) => self.narrow(&prepared.raw, reason),
            Outcome::Failure(failure) => {
                // The same batch goes again after the backoff.
                self.prepared = Some(prepared);
                Err(failure.into())
            }
        }
    }

    /// One exchange, timed. `None` when shutdown began meanwhile: what the hub answered is
    /// then not acted on (a lost `200` is answered `409` on the next start, and realigned).
    fn send(&mut self, batch: &Batch) -> Option<Outcome> {
        let started = Instant::now();
        let outcome = self.transport.send(batch);
        self.metrics.sync_batch_seconds.observe(started.elapsed().as_secs_f64());
        (!self.shutdown.is_cancelled()).then_some(outcome)
    }

    /// Persists the cursor at `at` (through the writer); only then moves it.
    fn advance(&mut self, at: u64) -> Result<(), StepError> {
        self.settle()?;
        if let Err(e) = self.block_on(cursor::set_cursor(&self.log, at)) {
            return Err(self.write_failed(at, e.to_string()));
        }
        self.persisted = at;
        self.moved_to(at);
        Ok(())
    }

    /// After a `200`: moves the cursor to `at` and persists it while the next batch is
    /// already on its way (the write and the next exchange overlap). The write is awaited
    /// right after that exchange, before any wait, and at shutdown ([`Worker::settle`]); if
    /// it failed, the cursor goes back to the last durable one.
    fn advance_overlapped(&mut self, at: u64) -> Result<(), StepError> {
        self.settle()?;
        let log = self.log.clone();
        self.pending_write = Some((at, self.runtime.spawn(async move { cursor::set_cursor(&log, at).await })));
        self.moved_to(at);
        Ok(())
    }

    /// Waits for the cursor write in flight, if any.
    fn settle(&mut self) -> Result<(), StepError> {
        let Some((at, write)) = self.pending_write.take() else { return Ok(()) };
        match self.block_on(write) {
            Ok(Ok(())) => {
                self.persisted = at;
                Ok(())
            }
            Ok(Err(e)) => Err(self.write_failed(at, e.to_string())),
            Err(e) => Err(self.write_failed(at, e.to_string())),
        }
    }

    /// The hub holds `at` but this edge could not record it: back to the durable cursor
    /// (the hub's `409` realigns it once the log takes writes again).
    fn write_failed(&mut self, at: u64, error: String) -> StepError {
        self.prepared = None;
        self.set_cursor(self.persisted);
        StepError::Local(format!("cannot record the sync cursor {at}: {error}"))
    }

    fn moved_to(&mut self, at: u64) {
        self.set_cursor(at);
        if self.bisect.is_some_and(|b| at >= b.end) {
            self.bisect = None;
        }
    }

    /// The hub confirmed, on this log's history, that it holds every event up to the cursor.
    fn confirmed_contact(&self) {
        let cursor = self.cursor;
        self.shared.update(|s| s.hub_confirmed = Some(cursor));
    }

    fn set_cursor(&mut self, at: u64) {
        self.cursor = at;
        self.metrics.sync_cursor.set(at as i64);
        let head = *self.committed.borrow();
        self.metrics.sync_lag_events.set(head.saturating_sub(at) as i64);
        self.shared.update(|s| {
            s.cursor = at;
            s.oldest_unsynced_at = None;
        });
    }

    // ---- outcomes ----

    fn succeeded(&mut self) {
        self.local_failures = 0;
        if let Some(previous) = self.breaker.on_success() {
            tracing::info!(was = previous.as_str(), "hub reachable again: circuit breaker closed");
            // The hub may be back from a restore: ask where it is before the next batch.
            self.checked = false;
        }
        self.publish_breaker();
        if self.diverged.is_none() {
            self.shared.clear_error();
        }
        self.shared.update(|s| s.last_success_at = Some(Timestamp::now()));
    }

    /// Records a failure and waits before the next try. Returns false on shutdown.
    fn failed(&mut self, failure: Failure) -> bool {
        self.metrics.sync_failure(failure.kind.as_str());
        let opened = self.breaker.on_failure(Instant::now());
        let failures = self.breaker.failures();
        self.shared.set_error(failure.to_string());
        if failure.kind == FailureKind::HubAhead {
            tracing::error!(kind = failure.kind.as_str(), failures, error = %failure.message, "sync failed");
        } else {
            tracing::warn!(kind = failure.kind.as_str(), failures, error = %failure.message, "sync failed");
        }
        self.publish_breaker();
        if opened {
            tracing::warn!(
                failures,
                open_for = ?self.config.breaker_open,
                "hub unreachable: circuit breaker open, no batches until a probe after the open period"
            );
            return true;
        }
        let wait = breaker::backoff(&mut self.rng, self.config.retry_base, self.config.retry_cap, failures);
        self.sleep(wait)
    }

    /// This edge's log failed: log, wait, try again. Returns false on shutdown.
    fn local_failure(&mut self, message: String) -> bool {
        self.local_failures = self.local_failures.saturating_add(1);
        tracing::error!(error = %message, "sync cannot use the event log");
        self.shared.set_error(message);
        let wait = breaker::backoff(&mut self.rng, self.config.retry_base, self.config.retry_cap, self.local_failures);
        self.sleep(wait)
    }

    fn publish_breaker(&self) {
        let (state, failures) = (self.breaker.state(), self.breaker.failures());
        self.metrics.sync_breaker_state.set(state.gauge());
        self.shared.update(|s| {
            s.breaker = state;
            s.consecutive_failures = failures;
        });
    }
}

/// `recorded_at` of a stored envelope, without decoding the rest of it.
fn recorded_at(bytes: &[u8]) -> Option<Timestamp> {
    #[derive(serde::Deserialize)]
    struct Head {
        recorded_at: Timestamp,
    }
    rmp_serde::from_slice::<Head>(bytes).ok().map(|h| h.recorded_at)
}

#[cfg(test)]
mod tests;
