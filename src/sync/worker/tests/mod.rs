//! The worker against a fake hub that follows the contract of [`crate::sync::wire`] (and can be
//! told to fail, refuse events, lose answers, or hold another history): order, cursor,
//! realignment on the same history and a stop on another one, the fork, bisect and dead
//! letters, backoff and breaker, shutdown, restart.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use crate::config::{DiskReserve, HubEndpoint, Site, SyncConfig};
use crate::events::NewEvent;
use crate::log::{FaultInjector, Log, LogOptions};
use crate::projections::Projections;
use crate::sync::client::{Batch, Failure, FailureKind, Outcome, Reported, Transport};
use crate::sync::cursor::{self, SyncEpoch};
use crate::sync::dead_letters::{self, DeadLetterAction, DeadLetterStatus};
use crate::sync::state::SyncShared;
use crate::sync::wire::{EventRef, ForkRequest, Forked, Position};
use crate::sync::{SyncWorker, WorkerParts, wire};
use crate::telemetry::Metrics;

/// One request as the fake hub saw it.
#[derive(Debug, Clone)]
struct Seen {
    epoch: u64,
    first: u64,
    last: u64,
    skipped: Vec<u64>,
    redelivery: bool,
    /// Sequence numbers in the body.
    body: Vec<u64>,
    /// What it answered.
    answer: Outcome,
    /// The edge's persisted cursor and breaker state when the request arrived.
    edge_cursor: u64,
    /// What the hub held when the request arrived.
    hub_stored_through: u64,
    breaker: crate::sync::BreakerState,
    /// Position requests (`GET`) the hub had answered before this request.
    positions: usize,
}

/// An epoch above 0 on the fake hub.
#[derive(Debug, Clone, Default)]
struct FakeEpoch {
    parent: u64,
    fork_at: u64,
    stored_through: u64,
    ids: BTreeMap<u64, Uuid>,
}

#[derive(Default)]
struct HubState {
    /// Epoch 0: where it is, how often each event was stored (at-least-once shows here as
    /// counts above 1), the event id it holds at each seq, the skipped numbers.
    stored_through: u64,
    stored: BTreeMap<u64, u32>,
    ids: BTreeMap<u64, Uuid>,
    skipped: BTreeSet<u64>,
    /// Epochs above 0.
    epochs: BTreeMap<u64, FakeEpoch>,
    /// Events refused with 422.
    poison: BTreeSet<u64>,
    /// Answers given instead of the contract's, first come first used.
    script: VecDeque<Outcome>,
    /// Batches stored whose answer is then lost (a timeout instead), first come first used.
    lose_answers: usize,
    /// Answers to fork requests given instead of the contract's.
    fork_script: VecDeque<Failure>,
    seen: Vec<Seen>,
    /// `GET` position requests.
    positions: Vec<(u64, Option<u64>)>,
}

impl HubState {
    /// The last event stored at or below `at` in `epoch`'s history.
    fn event_at(&self, epoch: u64, at: u64) -> Option<EventRef> {
        let pick = |ids: &BTreeMap<u64, Uuid>, after: u64, at: u64| {
            let found = (at > after).then(|| ids.range(after + 1..=at).next_back()).flatten();
            found.map(|(seq, id)| EventRef { seq: *seq, event_id: *id })
        };
        match self.epochs.get(&epoch) {
            None => pick(&self.ids, 0, at),
            Some(e) => pick(&e.ids, e.fork_at, at).or_else(|| self.event_at(e.parent, at.min(e.fork_at))),
        }
    }

    fn through(&self, epoch: u64) -> u64 {
        self.epochs.get(&epoch).map_or(self.stored_through, |e| e.stored_through)
    }

    fn reported(&self, epoch: u64) -> Reported {
        let through = self.through(epoch);
        Reported::new(through, self.event_at(epoch, through))
    }
}

/// The edge as the hub peeks at it: its log and its status.
type EdgeView = Arc<Mutex<Option<(crate::log::LogReader, Arc<SyncShared>)>>>;
/// Called before answering a request.
type Hook = Arc<Mutex<Option<Box<dyn FnMut(&Seen) + Send>>>>;

/// A hub in memory; clones share it.
#[derive(Clone)]
struct FakeHub {
    state: Arc<Mutex<HubState>>,
    /// The edge's log and status, read when a request arrives.
    edge: EdgeView,
    /// Called before answering (e.g. to make the edge's next commit fail).
    hook: Hook,
}

impl FakeHub {
    fn new() -> FakeHub {
        FakeHub { state: Arc::default(), edge: Arc::default(), hook: Arc::default() }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HubState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    fn seen(&self) -> Vec<Seen> {
        self.with(|s| s.seen.clone())
    }

    fn ranges(&self) -> Vec<(u64, u64)> {
        self.seen().iter().map(|s| (s.first, s.last)).collect()
    }

    fn answer(&self, batch: &Batch) -> (Outcome, Vec<u64>) {
        let received = match wire::decode_batch(&batch.body, 64 << 20) {
            Ok(r) => r,
            Err(e) => return (Outcome::Refused(format!("400: {e}")), vec![]),
        };
        let body: Vec<u64> = received.iter().map(|r| r.head.seq).collect();
        if let Err(refusal) = wire::check_batch("e1", batch.first, batch.last, &received, &batch.skipped) {
            return (Outcome::Refused(format!("400: {}", refusal.error)), body);
        }
        let mut s = self.state.lock().unwrap();
        if let Some(scripted) = s.script.pop_front() {
            return (scripted, body);
        }
        if let Some(p) = body.iter().find(|seq| s.poison.contains(seq)) {
            return (Outcome::Refused(format!("422: event {p} is not acceptable")), body);
        }
        if batch.epoch > 0 {
            return (self.answer_in_epoch(&mut s, batch, &received), body);
        }
        if batch.redelivery {
            let seq = batch.first;
            if s.stored.contains_key(&seq) || (seq <= s.stored_through && s.skipped.remove(&seq)) {
                *s.stored.entry(seq).or_default() += 1;
                s.ids.insert(seq, received[0].head.event_id);
                return (Outcome::Stored(s.reported(0)), body);
            }
            return (Outcome::Conflict(s.reported(0)), body);
        }
        let chain_broken = |s: &HubState| {
            let prev = s.event_at(0, batch.first - 1).filter(|e| e.seq == batch.first - 1);
            matches!((prev, batch.prev_event_id), (Some(held), Some(sent)) if held.event_id != sent)
        };
        if batch.first != s.stored_through + 1 || chain_broken(&s) {
            return (Outcome::Conflict(s.reported(0)), body);
        }
        for r in &received {
            *s.stored.entry(r.head.seq).or_default() += 1;
            s.ids.insert(r.head.seq, r.head.event_id);
        }
        s.skipped.extend(batch.skipped.iter().copied());
        s.stored_through = batch.last;
        if s.lose_answers > 0 {
            s.lose_answers -= 1;
            return (failure(FailureKind::Timeout), body);
        }
        (Outcome::Stored(s.reported(0)), body)
    }

    /// A batch for an epoch above 0 (no poison, no redelivery in these tests).
    fn answer_in_epoch(&self, s: &mut HubState, batch: &Batch, received: &[wire::Received]) -> Outcome {
        let Some(epoch) = s.epochs.get(&batch.epoch).cloned() else {
            return failure(FailureKind::Http4xx);
        };
        let prev = s.event_at(batch.epoch, batch.first - 1).filter(|e| e.seq == batch.first - 1);
        let broken = matches!((prev, batch.prev_event_id), (Some(held), Some(sent)) if held.event_id != sent);
        if batch.first != epoch.stored_through + 1 || broken {
            return Outcome::Conflict(s.reported(batch.epoch));
        }
        let stream = s.epochs.get_mut(&batch.epoch).expect("checked");
        for r in received {
            stream.ids.insert(r.head.seq, r.head.event_id);
        }
        stream.stored_through = batch.last;
        Outcome::Stored(s.reported(batch.epoch))
    }

    /// The hub holds the edge's own events `range` in epoch 0, as if it had stored them.
    fn hold_edge_events(&self, reader: &crate::log::LogReader, range: std::ops::RangeInclusive<u64>) {
        self.with(|s| {
            for seq in range {
                s.ids.insert(seq, reader.event_id(seq).unwrap().unwrap());
                *s.stored.entry(seq).or_default() += 1;
                s.stored_through = s.stored_through.max(seq);
            }
        });
    }

    /// The hub holds other events (another history) under `range` in epoch 0.
    fn hold_other_events(&self, range: std::ops::RangeInclusive<u64>) {
        self.with(|s| {
            for seq in range {
                s.ids.insert(seq, Uuid::from_u128(0xdead_0000 + u128::from(seq)));
                s.stored_through = s.stored_through.max(seq);
            }
        });
    }
}

impl Transport for FakeHub {
    fn send(&mut self, batch: &Batch) -> Outcome {
        let (edge_cursor, breaker) = match &*self.edge.lock().unwrap() {
            Some((reader, shared)) => (cursor::cursor(reader).unwrap_or(u64::MAX), shared.status().breaker),
            None => (0, crate::sync::BreakerState::Closed),
        };
        let hub_stored_through = self.with(|s| s.through(batch.epoch));
        let (answer, body) = self.answer(batch);
        let seen = Seen {
            epoch: batch.epoch,
            first: batch.first,
            last: batch.last,
            skipped: batch.skipped.clone(),
            redelivery: batch.redelivery,
            body,
            answer: answer.clone(),
            edge_cursor,
            hub_stored_through,
            breaker,
            positions: self.with(|s| s.positions.len()),
        };
        if let Some(hook) = &mut *self.hook.lock().unwrap() {
            hook(&seen);
        }
        self.with(|s| s.seen.push(seen));
        answer
    }

    fn position(&mut self, epoch: u64, at: Option<u64>) -> Result<Position, Failure> {
        self.with(|s| {
            s.positions.push((epoch, at));
            if epoch > 0 && !s.epochs.contains_key(&epoch) {
                return Err(Failure::new(FailureKind::Http4xx, "no such epoch"));
            }
            let reported = s.reported(epoch);
            Ok(Position {
                edge_id: "e1".into(),
                epoch,
                stored_through: reported.stored_through,
                events: 0,
                skipped: Vec::new(),
                last_event: reported.last_event,
                event_at: at.map(|at| s.event_at(epoch, at)),
                parent: s.epochs.get(&epoch).map(|e| e.parent),
                fork_at: s.epochs.get(&epoch).map_or(0, |e| e.fork_at),
                epochs: Vec::new(),
            })
        })
    }

    fn fork(&mut self, request: &ForkRequest) -> Result<Forked, Failure> {
        self.with(|s| {
            if let Some(failure) = s.fork_script.pop_front() {
                return Err(failure);
            }
            let held = s.event_at(request.parent, request.fork_at).filter(|e| e.seq == request.fork_at);
            if request.fork_at > s.through(request.parent)
                || held.is_some_and(|e| Some(e.event_id) != request.fork_event_id)
            {
                return Err(Failure::new(FailureKind::Protocol, "the hub refused the new epoch"));
            }
            let epoch = s.epochs.keys().next_back().copied().unwrap_or(0) + 1;
            let row = FakeEpoch {
                parent: request.parent,
                fork_at: request.fork_at,
                stored_through: request.fork_at,
                ids: BTreeMap::new(),
            };
            s.epochs.insert(epoch, row);
            Ok(Forked { epoch, parent: request.parent, fork_at: request.fork_at, stored_through: request.fork_at })
        })
    }
}

fn failure(kind: FailureKind) -> Outcome {
    Outcome::Failure(Failure::new(kind, "scripted"))
}

fn config(batch_max_events: usize) -> SyncConfig {
    SyncConfig {
        hub: Some(HubEndpoint { url: "http://hub.test".into(), ca_file: None, client_cert: None, client_key: None }),
        batch_max_events,
        batch_max_bytes: 1 << 20,
        linger: Duration::ZERO,
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        retry_base: Duration::from_millis(1),
        retry_cap: Duration::from_millis(4),
        breaker_failures: 100,
        breaker_open: Duration::from_millis(5),
        position_check_interval: Duration::from_secs(3600),
    }
}

fn options(dir: &std::path::Path) -> LogOptions {
    LogOptions {
        path: dir.join("zenedge.redb"),
        site: Site { tenant_id: "t1".into(), hospital_id: "h1".into(), edge_id: "e1".into() },
        disk_reserve: DiskReserve::Bytes(0),
        queue_depth: 1024,
        max_batch: 1024,
        cache_size: 4 << 20,
        clock: Arc::new(jiff::Timestamp::now),
        master_key: None,
        seal: false,
    }
}

/// An `HL7MessageReceived` with control id `C{i}`.
fn event(i: u64) -> NewEvent {
    let raw = format!("MSH|^~\\&|RIS|H|ZE|E|20261123||ADT^A08|C{i}|P|2.5\rPID|1||P{i}\r").into_bytes();
    let received = crate::hl7::read(&raw, &crate::hl7::ReadOptions::default()).unwrap();
    crate::domain::received_event(&raw, &received, "test", b"ACK".to_vec())
}

/// A log, a fake hub and a worker between them.
struct Edge {
    dir: Arc<tempfile::TempDir>,
    log: Log<Projections>,
    faults: FaultInjector,
    hub: FakeHub,
    shared: Arc<SyncShared>,
    metrics: Arc<Metrics>,
    worker: Option<SyncWorker>,
    config: SyncConfig,
}

impl Edge {
    fn open(dir: Arc<tempfile::TempDir>, hub: FakeHub, config: SyncConfig) -> Edge {
        let faults = FaultInjector::default();
        let metrics = Arc::new(Metrics::new());
        let schema = crate::projections::schema().with(crate::sync::tables());
        let log =
            crate::projections::open_log(&options(dir.path()), schema, metrics.clone(), Some(faults.clone())).unwrap();
        let cursor = cursor::cursor(&log.reader()).unwrap();
        let shared = Arc::new(SyncShared::new(Some("http://hub.test".into()), cursor));
        *hub.edge.lock().unwrap() = Some((log.reader(), shared.clone()));
        Edge { dir, log, faults, hub, shared, metrics, worker: None, config }
    }

    fn new(config: SyncConfig) -> Edge {
        Edge::open(Arc::new(tempfile::tempdir().unwrap()), FakeHub::new(), config)
    }

    fn start(&mut self) {
        let parts = WorkerParts {
            config: self.config.clone(),
            transport: Box::new(self.hub.clone()),
            log: self.log.handle(),
            reader: self.log.reader(),
            metrics: self.metrics.clone(),
            shared: self.shared.clone(),
        };
        self.worker = Some(crate::sync::spawn(parts, tokio_util::sync::CancellationToken::new()).unwrap());
    }

    async fn append(&self, range: std::ops::RangeInclusive<u64>) {
        self.log.handle().append(range.map(event).collect()).await.unwrap();
    }

    /// Stops the worker; true if its thread finished within the grace period.
    async fn stop_worker(&mut self) -> bool {
        let worker = self.worker.take().expect("started");
        worker.stop(crate::sync::STOP_GRACE).await
    }

    async fn close(mut self) -> (Arc<tempfile::TempDir>, FakeHub) {
        if self.worker.is_some() {
            assert!(self.stop_worker().await, "the worker stops");
        }
        // The hub's reader holds the database open.
        *self.hub.edge.lock().unwrap() = None;
        let _ = self.log.close().await;
        (self.dir, self.hub)
    }

    fn cursor(&self) -> u64 {
        cursor::cursor(&self.log.reader()).unwrap()
    }

    fn letter(&self, seq: u64) -> Option<dead_letters::DeadLetter> {
        dead_letters::get(&self.log.reader(), seq).unwrap()
    }
}

/// Waits until `condition` holds, failing the test after a generous deadline.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

mod delivery;
mod failures;
mod history;
mod refusals;
