//! The sync loop, on its own thread: read the next batch after the cursor, send it, act on
//! the hub's answer. See the module docs of [`crate::sync`] for the guarantees.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::breaker::{self, Breaker};
use super::client::{Batch, Failure, FailureKind, Outcome, Transport};
use super::state::SyncShared;
use super::wire;
use crate::config::SyncConfig;
use crate::log::{DeadLetterStatus, LogHandle, LogReader, RawBatch};
use crate::telemetry::Metrics;

/// gzip level of batch bodies: msgpack of text compresses well already at 1, and level 1
/// is several times faster than the default.
const GZIP_LEVEL: u32 = 1;

/// Everything the worker needs; [`super::spawn`] runs it on a thread.
pub struct WorkerParts {
    pub config: SyncConfig,
    pub transport: Box<dyn Transport>,
    pub log: LogHandle,
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

/// Reads the batch after `after` and compresses it.
fn prepare(reader: &LogReader, after: u64, limit: usize, max_bytes: usize) -> Result<Prepared, crate::log::ReadError> {
    let raw = reader.sync_batch(after, limit, max_bytes)?;
    let batch = Batch {
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
enum Step {
    /// The hub answered per the contract (stored, realigned, refused): go on at once.
    Progress,
    /// Nothing to send: wait for new events.
    Idle,
    /// Shutdown.
    Stop,
}

/// Why a step did not make progress.
enum StepError {
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
    log: LogHandle,
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
        }
    }

    /// Runs until shutdown.
    pub(super) fn run(mut self) {
        while !self.shutdown.is_cancelled() {
            match self.reader.sync_cursor() {
                Ok(cursor) => {
                    self.persisted = cursor;
                    self.set_cursor(cursor);
                    break;
                }
                Err(e) => {
                    if !self.local_failure(format!("cannot read the sync cursor: {e}")) {
                        return;
                    }
                }
            }
        }
        tracing::info!(cursor = self.cursor, hub = self.shared.hub_url.as_deref().unwrap_or(""), "sync started");
        while !self.shutdown.is_cancelled() {
            if !self.wait_for_breaker() {
                break;
            }
            if self.shared.take_retry_request() {
                self.retry_hint = true;
            }
            let step = match self.redelivery_due() {
                Ok(Some(seq)) => self.redeliver(seq),
                Ok(None) => self.deliver_next(),
                Err(e) => Err(e),
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
                    true
                }
                Ok(Step::Idle) => self.wait_for_work(),
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
                prepare(&self.reader, self.cursor, limit, self.config.batch_max_bytes)
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
            std::thread::Builder::new()
                .name("zenedge-sync-read".into())
                .spawn(move || prepare(&reader, after, limit, max_bytes))
                .ok()
        });
        let Some(outcome) = self.send(batch) else { return Ok(Step::Stop) };
        let next = read_ahead.flatten().and_then(|h| h.join().ok()).and_then(Result::ok);
        self.settle()?;
        match outcome {
            Outcome::Stored(at) if at == batch.last => {
                self.advance_overlapped(at)?;
                self.metrics.sync_batches.inc();
                self.metrics.sync_events.inc_by(batch.events as u64);
                self.shared.update(|s| {
                    s.batches_sent += 1;
                    s.events_sent += batch.events as u64;
                });
                self.prepared = next;
                Ok(Step::Progress)
            }
            Outcome::Stored(at) => Err(Failure::new(
                FailureKind::Protocol,
                format!("hub answered 200 for events {}..={} with stored_through {at}", batch.first, batch.last),
            )
            .into()),
            Outcome::Conflict(at) => self.realign(at),
            Outcome::Refused(reason) => self.narrow(&prepared.raw, reason),
            Outcome::Failure(failure) => {
                // The same batch goes again after the backoff.
                self.prepared = Some(prepared);
                Err(failure.into())
            }
        }
    }

    /// The hub refused `raw`: halve the batch, or park its only event.
    fn narrow(&mut self, raw: &RawBatch, reason: String) -> Result<Step, StepError> {
        let range = raw.range_len();
        if range > 1 {
            let end = self.bisect.map_or(raw.last, |b| b.end.max(raw.last));
            let limit = (range / 2).max(1);
            tracing::warn!(
                first = raw.first,
                last = raw.last,
                reason = %reason,
                next_batch = limit,
                "hub refused a batch; narrowing it down to the refused event"
            );
            self.bisect = Some(Bisect { end, limit });
            return Ok(Step::Progress);
        }
        let Some(bytes) = raw.envelopes().next() else {
            return Err(Failure::new(
                FailureKind::Protocol,
                format!("hub refused a batch holding only skipped event {}: {reason}", raw.first),
            )
            .into());
        };
        let seq = raw.first;
        let event_type = event_type(bytes);
        let letter = self.block_on(self.log.park_dead_letter(seq, event_type.clone(), reason.clone()));
        letter.map_err(|e| StepError::Local(format!("cannot park event {seq} as a dead letter: {e}")))?;
        tracing::error!(
            seq,
            event_type = %event_type,
            reason = %reason,
            "the hub refused this event: parked as a dead letter, sync goes on without it; \
             retry or skip it with POST /api/v1/dead-letters/{seq}/retry or /skip"
        );
        // The refused range held this event; the rest of it may go at full size again.
        self.bisect = None;
        self.refresh_dead_letter_gauge();
        Ok(Step::Progress)
    }

    /// `409`: the hub stored through `at`. Realign to it if this log has that much.
    fn realign(&mut self, at: u64) -> Result<Step, StepError> {
        let last = *self.committed.borrow();
        if at > last {
            return Err(Failure::new(
                FailureKind::HubAhead,
                format!(
                    "the hub says it holds events up to {at} for this edge, but this log ends at {last}: \
                     the hub holds events this log does not have (a restored or replaced edge database?)"
                ),
            )
            .into());
        }
        if at == self.cursor {
            return Err(Failure::new(
                FailureKind::Protocol,
                format!("hub answered 409 with stored_through {at}, which is where this edge already is"),
            )
            .into());
        }
        tracing::warn!(
            from = self.cursor,
            to = at,
            "the hub is elsewhere in this edge's log; realigning the cursor to it"
        );
        self.advance(at)?;
        Ok(Step::Progress)
    }

    /// The first dead letter waiting for redelivery that the hub has counted as skipped
    /// (at or below the cursor).
    fn redelivery_due(&mut self) -> Result<Option<u64>, StepError> {
        if !self.retry_hint {
            return Ok(None);
        }
        let letters =
            self.reader.dead_letters().map_err(|e| StepError::Local(format!("cannot read dead letters: {e}")))?;
        let mut waiting = letters.iter().filter(|(_, l)| l.status == DeadLetterStatus::Retry).peekable();
        if waiting.peek().is_none() {
            self.retry_hint = false;
            return Ok(None);
        }
        Ok(waiting.map(|(seq, _)| *seq).find(|seq| *seq <= self.cursor))
    }

    /// Sends dead letter `seq` once more, on its own.
    fn redeliver(&mut self, seq: u64) -> Result<Step, StepError> {
        let bytes = self
            .reader
            .raw_event(seq)
            .map_err(|e| StepError::Local(format!("cannot read event {seq}: {e}")))?
            .ok_or_else(|| StepError::Local(format!("dead letter {seq} is not in the log")))?;
        let batch = Batch {
            first: seq,
            last: seq,
            skipped: Vec::new(),
            redelivery: true,
            events: 1,
            body: wire::encode_batch(std::iter::once(bytes.as_slice()), GZIP_LEVEL),
        };
        let Some(outcome) = self.send(&batch) else { return Ok(Step::Stop) };
        self.settle()?;
        match outcome {
            Outcome::Stored(_) => {
                self.block_on(self.log.dead_letter_delivered(seq))
                    .map_err(|e| StepError::Local(format!("cannot record dead letter {seq} as delivered: {e}")))?;
                tracing::info!(seq, "dead letter redelivered: the hub stored it");
            }
            Outcome::Refused(reason) => {
                let letter = self
                    .block_on(self.log.park_dead_letter(seq, event_type(&bytes), reason.clone()))
                    .map_err(|e| StepError::Local(format!("cannot park event {seq} again: {e}")))?;
                tracing::error!(seq, attempts = letter.attempts, reason = %reason, "the hub refused the redelivered event again; parked");
            }
            Outcome::Conflict(at) => return self.realign(at),
            Outcome::Failure(failure) => return Err(failure.into()),
        }
        self.refresh_dead_letter_gauge();
        Ok(Step::Progress)
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
        if let Err(e) = self.block_on(self.log.set_sync_cursor(at)) {
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
        self.pending_write = Some((at, self.runtime.spawn(async move { log.set_sync_cursor(at).await })));
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
        }
        self.publish_breaker();
        self.shared.update(|s| s.last_success_at = Some(Timestamp::now()));
    }

    /// Records a failure and waits before the next try. Returns false on shutdown.
    fn failed(&mut self, failure: Failure) -> bool {
        self.metrics.sync_failure(failure.kind.as_str());
        let opened = self.breaker.on_failure(Instant::now());
        let failures = self.breaker.failures();
        self.shared.update(|s| s.last_error = Some(failure.to_string()));
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
        self.shared.update(|s| s.last_error = Some(message));
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

    fn refresh_dead_letter_gauge(&self) {
        if let Ok(counts) = self.reader.dead_letter_counts() {
            self.metrics.sync_dead_letters.set(counts.open() as i64);
        }
    }

    // ---- waiting (every wait ends early on shutdown) ----

    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Sleeps `duration`. Returns false on shutdown.
    fn sleep(&self, duration: Duration) -> bool {
        let shutdown = self.shutdown.clone();
        self.block_on(async move {
            tokio::select! {
                _ = shutdown.cancelled() => false,
                _ = tokio::time::sleep(duration) => true,
            }
        })
    }

    /// While the breaker is open, waits for the end of the open period, then half-opens
    /// it. Returns false on shutdown.
    fn wait_for_breaker(&mut self) -> bool {
        let Some(until) = self.breaker.open_until() else { return true };
        if !self.sleep(until.saturating_duration_since(Instant::now())) {
            return false;
        }
        if self.breaker.half_open() {
            tracing::info!("circuit breaker half-open: sending one probe batch");
            self.publish_breaker();
        }
        true
    }

    /// Waits until events arrive after the cursor or an operator queues a redelivery.
    /// Returns false on shutdown.
    fn wait_for_work(&mut self) -> bool {
        let cursor = self.cursor;
        let shutdown = self.shutdown.clone();
        let shared = self.shared.clone();
        let mut committed = self.committed.clone();
        let woken = self.block_on(async move {
            tokio::select! {
                _ = shutdown.cancelled() => None,
                changed = committed.wait_for(|&last| last > cursor) => Some(changed.is_ok()),
                _ = shared.woken() => Some(true),
            }
        });
        match woken {
            None => false,
            Some(true) => true,
            // The writer is gone: the daemon is stopping.
            Some(false) => {
                self.block_on(self.shutdown.cancelled());
                false
            }
        }
    }

    /// Fewer than a full batch waiting: waits up to `linger` for more. Returns false on
    /// shutdown.
    fn linger(&mut self) -> bool {
        let full = self.config.batch_max_events as u64;
        let cursor = self.cursor;
        let waiting = self.committed.borrow().saturating_sub(cursor);
        if waiting == 0 || waiting >= full || self.config.linger.is_zero() {
            return true;
        }
        let shutdown = self.shutdown.clone();
        let mut committed = self.committed.clone();
        let linger = self.config.linger;
        self.block_on(async move {
            tokio::select! {
                _ = shutdown.cancelled() => false,
                _ = tokio::time::timeout(linger, committed.wait_for(|&last| last.saturating_sub(cursor) >= full)) => true,
            }
        })
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

/// `event_type` of a stored envelope (for a dead letter).
fn event_type(bytes: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Head {
        event_type: String,
    }
    rmp_serde::from_slice::<Head>(bytes).map(|h| h.event_type).unwrap_or_else(|_| "unknown".into())
}
