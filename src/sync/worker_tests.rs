//! The worker against a fake hub that follows the contract of [`super::wire`] (and can be
//! told to fail, refuse events, lose answers, or hold another history): order, cursor,
//! realignment on the same history and a stop on another one, the fork, bisect and dead
//! letters, backoff and breaker, shutdown, restart.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use super::client::{Batch, Failure, FailureKind, Outcome, Reported, Transport};
use super::state::SyncShared;
use super::wire::{EventRef, ForkRequest, Forked, Position};
use super::{SyncWorker, WorkerParts, wire};
use crate::config::{DiskReserve, HubEndpoint, Site, SyncConfig};
use crate::log::{DeadLetterAction, DeadLetterStatus, FaultInjector, Log, LogOptions, NewEvent, Policy, SyncEpoch};
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
    breaker: super::BreakerState,
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
            Some((reader, shared)) => (reader.sync_cursor().unwrap_or(u64::MAX), shared.status().breaker),
            None => (0, super::BreakerState::Closed),
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
        policy: Policy::default(),
    }
}

/// An `HL7MessageReceived` with control id `C{i}`.
fn event(i: u64) -> NewEvent {
    let raw = format!("MSH|^~\\&|RIS|H|ZE|E|20261123||ADT^A08|C{i}|P|2.5\rPID|1||P{i}\r").into_bytes();
    let received = crate::hl7::read(&raw, &crate::hl7::ReadOptions::default()).unwrap();
    crate::log::received_event(&raw, &received, "test", b"ACK".to_vec())
}

/// A log, a fake hub and a worker between them.
struct Edge {
    dir: Arc<tempfile::TempDir>,
    log: Log,
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
        let log = Log::open_with_faults(&options(dir.path()), metrics.clone(), Some(faults.clone())).unwrap();
        let cursor = log.reader().sync_cursor().unwrap();
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
        self.worker = Some(super::spawn(parts, tokio_util::sync::CancellationToken::new()).unwrap());
    }

    async fn append(&self, range: std::ops::RangeInclusive<u64>) {
        self.log.handle().append(range.map(event).collect()).await.unwrap();
    }

    /// Stops the worker; true if its thread finished within the grace period.
    async fn stop_worker(&mut self) -> bool {
        let worker = self.worker.take().expect("started");
        worker.stop(super::STOP_GRACE).await
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
        self.log.reader().sync_cursor().unwrap()
    }

    fn letter(&self, seq: u64) -> Option<crate::log::DeadLetter> {
        self.log.reader().dead_letter(seq).unwrap()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_go_in_order_in_batches_within_the_event_limit() {
    let mut edge = Edge::new(config(4));
    edge.append(1..=10).await;
    edge.start();
    eventually("all stored", || edge.cursor() == 10).await;
    assert_eq!(edge.hub.ranges(), vec![(1, 4), (5, 8), (9, 10)]);
    assert!(edge.hub.with(|s| s.stored.values().all(|n| *n == 1) && s.stored.len() == 10));
    let seen = edge.hub.seen();
    assert_eq!(seen[0].body, vec![1, 2, 3, 4]);
    assert!(seen.iter().all(|s| s.skipped.is_empty() && !s.redelivery));
    edge.append(11..=12).await;
    eventually("new events follow", || edge.cursor() == 12).await;
    assert_eq!(edge.hub.ranges().last(), Some(&(11, 12)));
    assert_eq!(edge.shared.status().events_sent, 12);
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_stay_within_the_byte_limit() {
    let mut edge = Edge::new(config(100));
    edge.append(1..=9).await;
    let size = edge.log.reader().raw_event(1).unwrap().unwrap().len();
    edge.config.batch_max_bytes = size * 3 + size / 2;
    edge.start();
    eventually("all stored", || edge.cursor() == 9).await;
    assert_eq!(edge.hub.ranges(), vec![(1, 3), (4, 6), (7, 9)]);
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_is_not_full_lingers_for_more_events() {
    let mut config = config(6);
    config.linger = Duration::from_secs(3600);
    let mut edge = Edge::new(config);
    edge.append(1..=2).await;
    edge.start();
    // Two events wait; the batch is sent only once it is full, not after a timer.
    edge.append(3..=4).await;
    edge.append(5..=6).await;
    eventually("one full batch", || edge.cursor() == 6).await;
    assert_eq!(edge.hub.ranges(), vec![(1, 6)]);
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_moves_only_after_the_hub_stored_the_batch() {
    let mut edge = Edge::new(config(4));
    edge.hub.with(|s| s.script.extend([failure(FailureKind::Http5xx), failure(FailureKind::Timeout)]));
    edge.append(1..=6).await;
    edge.start();
    eventually("all stored", || edge.cursor() == 6).await;
    let seen = edge.hub.seen();
    assert_eq!(edge.hub.ranges(), vec![(1, 4), (1, 4), (1, 4), (5, 6)]);
    assert!(seen[..3].iter().all(|s| s.edge_cursor == 0), "failures leave the cursor");
    // The write of cursor 4 may overlap the next request; it is never ahead of the hub.
    assert!(seen.iter().all(|s| s.edge_cursor <= s.hub_stored_through));
    assert!([0, 4].contains(&seen[3].edge_cursor));
    assert!(edge.metrics.encode().contains("zenedge_sync_failures_total{kind=\"http_5xx\"} 1"));
    let status = edge.shared.status();
    assert!(status.last_error.as_deref().is_some_and(|e| e.starts_with("timeout")), "{status:?}");
    assert!(status.last_error_at.is_some() && status.last_error_cleared_at >= status.last_error_at, "{status:?}");
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_write_that_fails_does_not_move_the_cursor() {
    let mut edge = Edge::new(config(4));
    edge.append(1..=4).await;
    let faults = edge.faults.clone();
    *edge.hub.hook.lock().unwrap() = Some(Box::new(move |_| faults.fail_syncs()));
    edge.start();
    let shared = edge.shared.clone();
    eventually("the failed write is reported", || {
        shared.status().last_error.is_some_and(|e| e.contains("cannot record the sync cursor 4"))
    })
    .await;
    assert_eq!(edge.shared.status().cursor, 0, "the worker's cursor did not move");
    assert_eq!(edge.hub.with(|s| s.stored_through), 4, "while the hub has the batch");
    let (dir, hub) = edge.close().await;
    *hub.hook.lock().unwrap() = None;
    // After a failed fsync the page cache may or may not hold the write: either way the
    // restarted worker ends where the hub is, without storing anything twice.
    let mut edge = Edge::open(dir, hub, config(4));
    edge.start();
    edge.append(5..=5).await;
    eventually("in step with the hub", || edge.cursor() == 5).await;
    assert!(edge.hub.with(|s| s.stored.values().all(|n| *n == 1)));
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_found_ahead_on_the_same_history_at_start_moves_the_cursor_forward_before_sending() {
    let mut edge = Edge::new(config(4));
    edge.append(1..=10).await;
    edge.hub.hold_edge_events(&edge.log.reader(), 1..=6);
    edge.start();
    eventually("all stored", || edge.cursor() == 10).await;
    assert_eq!(edge.hub.ranges(), vec![(7, 10)], "nothing the hub holds is sent again");
    assert_eq!(edge.hub.with(|s| s.positions.first().copied()), Some((0, None)), "the position came first");
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_answered_409_on_the_same_history_and_the_cursor_realigns_forward() {
    let mut edge = Edge::new(config(4));
    edge.hub.with(|s| s.lose_answers = 1);
    edge.append(1..=10).await;
    edge.start();
    eventually("all stored", || edge.cursor() == 10).await;
    let ranges = edge.hub.ranges();
    assert_eq!(ranges[..2], [(1, 4), (1, 4)], "the batch whose answer was lost goes again");
    assert_eq!(edge.hub.seen()[1].answer, Outcome::Conflict(edge.hub.with(|s| Reported::new(4, s.event_at(0, 4)))));
    assert_eq!(ranges[2..], [(5, 8), (9, 10)]);
    assert!(edge.hub.with(|s| s.stored.values().all(|n| *n == 1)), "nothing stored twice");
    assert_eq!(edge.shared.hub_confirmed(), 10);
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_restored_behind_the_cursor_realigns_it_backward() {
    let mut edge = Edge::new(config(4));
    edge.append(1..=10).await;
    edge.log.handle().set_sync_cursor(8).await.unwrap();
    edge.hub.hold_edge_events(&edge.log.reader(), 1..=3);
    edge.start();
    eventually("all stored", || edge.hub.with(|s| s.stored_through) == 10).await;
    assert_eq!(edge.hub.ranges(), vec![(4, 7), (8, 10)], "the position at start sends the cursor back first");
    eventually("cursor at the end", || edge.cursor() == 10).await;
    assert!(edge.shared.status().diverged.is_none(), "no false alarm");
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_beyond_the_end_of_the_log_is_a_failure_that_leaves_the_cursor() {
    let mut edge = Edge::new(config(4));
    edge.hub.with(|s| s.stored_through = 50);
    edge.append(1..=10).await;
    edge.start();
    let metrics = edge.metrics.clone();
    eventually("hub_ahead counted twice", || metrics.encode().contains("kind=\"hub_ahead\"} 2")).await;
    assert_eq!(edge.cursor(), 0);
    assert!(edge.hub.seen().is_empty(), "nothing is sent while the hub is ahead");
    let error = edge.shared.status().last_error.unwrap();
    assert!(error.starts_with("hub_ahead: the hub says it holds events up to 50"), "{error}");
    edge.close().await;
}

/// Eight events, `poison` refused by the hub: exactly it is parked, every other event is
/// stored once, and later batches name it as skipped.
async fn bisect_isolates(poison: u64, events: u64) {
    let mut edge = Edge::new(config(8));
    edge.hub.with(|s| s.poison.insert(poison));
    edge.append(1..=events).await;
    edge.start();
    eventually("all but the poison stored", || edge.cursor() == events).await;
    let letter = edge.letter(poison).expect("parked");
    assert_eq!(letter.status, DeadLetterStatus::Parked);
    assert_eq!(letter.attempts, 1);
    assert_eq!(letter.event_type, "HL7MessageReceived");
    assert!(letter.reason.contains(&format!("event {poison} is not acceptable")), "{}", letter.reason);
    assert_eq!(edge.log.reader().dead_letters().unwrap().len(), 1, "only the poison is parked");
    let stored = edge.hub.with(|s| s.stored.clone());
    let expected: BTreeMap<u64, u32> = (1..=events).filter(|s| *s != poison).map(|s| (s, 1)).collect();
    assert_eq!(stored, expected, "every other event stored exactly once");
    assert!(edge.hub.with(|s| s.skipped.contains(&poison)));
    edge.append(events + 1..=events + 2).await;
    eventually("later events stored", || edge.cursor() == events + 2).await;
    let seen = edge.hub.seen();
    let with_skip = seen.iter().find(|s| s.skipped == vec![poison]).expect("a batch names the poison as skipped");
    assert!(matches!(with_skip.answer, Outcome::Stored(_)));
    assert!(
        seen.iter().filter(|s| matches!(s.answer, Outcome::Refused(_))).all(|s| s.first <= poison && poison <= s.last)
    );
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bisect_parks_a_poison_event_in_the_middle() {
    bisect_isolates(5, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bisect_parks_a_poison_event_at_the_start() {
    bisect_isolates(1, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bisect_parks_a_poison_event_at_the_end() {
    bisect_isolates(8, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_alone_is_parked_at_once() {
    bisect_isolates(1, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bisect_keeps_batches_short_until_the_refused_range_is_passed() {
    let mut edge = Edge::new(config(8));
    edge.hub.with(|s| s.poison.insert(7));
    edge.append(1..=8).await;
    edge.start();
    eventually("all stored", || edge.cursor() == 8).await;
    let ranges = edge.hub.ranges();
    // 1..8 refused; halves of 4: 1..4 stored, 5..8 refused; halves of 2: 5..6 stored, 7..8
    // refused; singles: 7 refused and parked; then the rest at full size again.
    assert_eq!(ranges, vec![(1, 8), (1, 4), (5, 8), (5, 6), (7, 8), (7, 7), (7, 8)]);
    assert_eq!(edge.hub.seen().last().unwrap().skipped, vec![7]);
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_then_a_probe_closes_it_or_opens_it_again() {
    let mut config = config(4);
    config.breaker_failures = 2;
    let mut edge = Edge::new(config);
    edge.hub.with(|s| s.script.extend((0..3).map(|_| failure(FailureKind::Connect))));
    edge.append(1..=4).await;
    edge.start();
    eventually("stored", || edge.cursor() == 4).await;
    use super::BreakerState::*;
    let states: Vec<_> = edge.hub.seen().iter().map(|s| s.breaker).collect();
    // Two failures open it; the first probe fails (open again); the second probe succeeds.
    assert_eq!(states, vec![Closed, Closed, HalfOpen, HalfOpen]);
    let status = edge.shared.status();
    assert_eq!((status.breaker, status.consecutive_failures), (Closed, 0));
    assert!(edge.metrics.encode().contains("zenedge_sync_breaker_state 0"));
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_breaker_closes_the_hub_s_position_is_read_before_the_next_batch() {
    let mut config = config(4);
    config.breaker_failures = 2;
    let mut edge = Edge::new(config);
    edge.hub.with(|s| s.script.extend((0..2).map(|_| failure(FailureKind::Connect))));
    edge.append(1..=4).await;
    edge.start();
    eventually("stored", || edge.cursor() == 4).await;
    edge.append(5..=6).await;
    eventually("the next batch stored", || edge.cursor() == 6).await;
    let seen = edge.hub.seen();
    use super::BreakerState::*;
    assert_eq!(seen.iter().map(|s| s.breaker).collect::<Vec<_>>(), vec![Closed, Closed, HalfOpen, Closed]);
    // The probe closed the breaker; a hub back from an outage may have been restored from an
    // older copy, so the edge asked where it is before it sent 5..=6.
    assert_eq!(seen[3].positions, seen[2].positions + 1, "{:?}", edge.hub.with(|s| s.positions.clone()));
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_a_long_backoff_and_an_open_breaker() {
    for breaker_failures in [1000, 1] {
        let mut config = config(4);
        config.retry_base = Duration::from_secs(3600);
        config.retry_cap = Duration::from_secs(3600);
        config.breaker_open = Duration::from_secs(3600);
        config.breaker_failures = breaker_failures;
        let mut edge = Edge::new(config);
        edge.hub.with(|s| s.script.extend((0..10).map(|_| failure(FailureKind::Http5xx))));
        edge.append(1..=1).await;
        edge.start();
        let shared = edge.shared.clone();
        eventually("a failure", || shared.status().consecutive_failures == 1).await;
        assert!(edge.stop_worker().await, "the worker stopped within the grace period");
        assert_eq!(edge.hub.seen().len(), 1);
        edge.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_dead_letter_is_redelivered_alone() {
    let mut edge = Edge::new(config(8));
    edge.hub.with(|s| s.poison.insert(2));
    edge.append(1..=3).await;
    edge.start();
    eventually("parked and passed", || edge.cursor() == 3 && edge.letter(2).is_some()).await;
    // Still refused: parked again with one more attempt.
    edge.log.handle().dead_letter_action(2, DeadLetterAction::Retry).await.unwrap().unwrap();
    edge.shared.request_retry();
    eventually("parked again", || edge.letter(2).unwrap().attempts == 2).await;
    assert_eq!(edge.letter(2).unwrap().status, DeadLetterStatus::Parked);
    // The hub was fixed: the redelivery is stored.
    edge.hub.with(|s| s.poison.clear());
    edge.log.handle().dead_letter_action(2, DeadLetterAction::Retry).await.unwrap().unwrap();
    edge.shared.request_retry();
    eventually("delivered", || edge.letter(2).unwrap().status == DeadLetterStatus::Delivered).await;
    let redeliveries: Vec<_> = edge.hub.seen().into_iter().filter(|s| s.redelivery).collect();
    assert_eq!(redeliveries.len(), 2);
    assert!(redeliveries.iter().all(|s| (s.first, s.last, s.body.clone()) == (2, 2, vec![2])));
    assert_eq!(edge.hub.with(|s| s.stored.get(&2).copied()), Some(1));
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_the_persisted_cursor_with_its_dead_letters() {
    let mut edge = Edge::new(config(4));
    edge.hub.with(|s| s.poison.insert(3));
    edge.append(1..=6).await;
    edge.start();
    eventually("stored", || edge.cursor() == 6).await;
    let (dir, hub) = edge.close().await;
    let before = hub.seen().len();
    let mut edge = Edge::open(dir, hub, config(4));
    assert_eq!(edge.cursor(), 6);
    assert_eq!(edge.letter(3).unwrap().status, DeadLetterStatus::Parked);
    edge.append(7..=8).await;
    edge.start();
    eventually("stored", || edge.cursor() == 8).await;
    let after = &edge.hub.seen()[before..];
    assert_eq!(after.iter().map(|s| (s.first, s.last)).collect::<Vec<_>>(), vec![(7, 8)]);
    assert!(edge.hub.with(|s| s.stored.values().all(|n| *n == 1)), "nothing sent twice");
    edge.close().await;
}

/// The trial's edge: the hub holds 1..=15 of one history; this log holds the same 1..=5 (a
/// backup), then 20 events of its own from 6 on, and its cursor is the backup's, 5.
async fn restored_edge() -> Edge {
    let edge = Edge::new(config(8));
    edge.append(1..=25).await;
    edge.log.handle().set_sync_cursor(5).await.unwrap();
    edge.hub.hold_edge_events(&edge.log.reader(), 1..=5);
    edge.hub.hold_other_events(6..=15);
    edge
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_log_that_went_on_stops_at_hub_diverged_naming_the_first_differing_seq() {
    let mut edge = restored_edge().await;
    edge.start();
    let shared = edge.shared.clone();
    eventually("the divergence", || shared.status().diverged.is_some()).await;
    let d = edge.shared.status().diverged.unwrap();
    assert_eq!((d.first_differing_seq, d.fork_at, d.hub_stored_through, d.epoch), (6, 5, 15, 0));
    assert!(edge.hub.seen().is_empty(), "nothing was sent, nothing realigned");
    assert_eq!(edge.cursor(), 5, "nothing skipped");
    let status = edge.shared.status();
    assert!(status.last_error.as_deref().is_some_and(|e| e.starts_with("hub_diverged:") && e.contains("from seq 6")));
    assert!(edge.metrics.encode().contains("zenedge_sync_failures_total{kind=\"hub_diverged\"} 1"));
    // No retry loop: new events and a retry request do not make it send or ask again.
    let asked = edge.hub.with(|s| s.positions.len());
    edge.append(26..=27).await;
    edge.shared.request_retry();
    edge.hub.with(|s| s.fork_script.push_back(Failure::new(FailureKind::Connect, "scripted")));
    let refused = edge.shared.request_fork().unwrap().await.unwrap();
    assert!(refused.unwrap_err().contains("connect"), "the fork's failure is the answer");
    assert_eq!(edge.hub.with(|s| s.positions.len()), asked, "the stopped worker asked nothing more");
    assert!(edge.hub.seen().is_empty());
    assert!(edge.shared.status().diverged.is_some(), "a failed fork leaves the sync stopped");
    assert_eq!(edge.shared.hub_confirmed(), 5, "what retention may rely on stops at the fork point");
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_sends_the_divergent_events_to_a_new_epoch_and_leaves_the_hub_s_history_alone() {
    let mut edge = restored_edge().await;
    edge.start();
    let shared = edge.shared.clone();
    eventually("the divergence", || shared.status().diverged.is_some()).await;
    let before = edge.hub.with(|s| s.ids.clone());
    let done = edge.shared.request_fork().unwrap().await.unwrap().unwrap();
    assert_eq!((done.epoch, done.parent, done.fork_at, done.to_deliver), (1, 0, 5, 20));
    eventually("the new epoch holds the rest of this log", || edge.hub.with(|s| s.through(1)) == 25).await;
    eventually("cursor at the end", || edge.cursor() == 25).await;
    let reader = edge.log.reader();
    let epoch = edge.hub.with(|s| s.epochs[&1].clone());
    assert_eq!((epoch.parent, epoch.fork_at), (0, 5));
    let expected: BTreeMap<u64, Uuid> = (6..=25).map(|seq| (seq, reader.event_id(seq).unwrap().unwrap())).collect();
    assert_eq!(epoch.ids, expected, "every event of this log after the fork point, once");
    assert_eq!(edge.hub.with(|s| s.ids.clone()), before, "epoch 0 keeps its history untouched");
    assert!(edge.hub.seen().iter().all(|s| s.epoch == 1 && s.first > 5));
    assert_eq!(reader.sync_epoch().unwrap(), SyncEpoch { epoch: 1, fork_at: 5 });
    drop(reader);
    let status = edge.shared.status();
    assert!(status.diverged.is_none() && status.epoch == 1 && status.last_error_cleared_at.is_some(), "{status:?}");
    assert!(edge.shared.request_fork().is_err(), "nothing to fork any more");
    // A restart goes on in the new epoch.
    let (dir, hub) = edge.close().await;
    let mut edge = Edge::open(dir, hub, config(8));
    edge.append(26..=26).await;
    edge.start();
    eventually("the new event in the new epoch", || edge.hub.with(|s| s.through(1)) == 26).await;
    assert_eq!(edge.hub.with(|s| s.through(0)), 15);
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_409_from_another_history_stops_the_sync_instead_of_realigning() {
    let mut edge = Edge::new(config(4));
    edge.append(1..=12).await;
    // At start the hub holds nothing; then it answers from another history that shares 1..=3.
    edge.hub.with(|s| {
        for seq in 4..=12 {
            s.ids.insert(seq, Uuid::from_u128(0xbeef_0000 + u128::from(seq)));
        }
    });
    let reader = edge.log.reader();
    edge.hub.with(|s| {
        for seq in 1..=3 {
            s.ids.insert(seq, reader.event_id(seq).unwrap().unwrap());
        }
        let other = EventRef { seq: 12, event_id: s.ids[&12] };
        s.script.push_back(Outcome::Conflict(Reported::new(12, Some(other))));
    });
    edge.start();
    let shared = edge.shared.clone();
    eventually("the divergence", || shared.status().diverged.is_some()).await;
    assert_eq!(edge.shared.status().diverged.unwrap().first_differing_seq, 4);
    assert_eq!(edge.cursor(), 0, "not realigned to 12");
    assert_eq!(edge.hub.ranges(), vec![(1, 4)]);
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_naming_another_event_stops_the_sync() {
    let mut edge = Edge::new(config(4));
    edge.append(1..=8).await;
    edge.hub.with(|s| {
        s.ids.insert(4, Uuid::from_u128(0xbeef));
        let other = EventRef { seq: 4, event_id: Uuid::from_u128(0xbeef) };
        s.script.push_back(Outcome::Stored(Reported::new(4, Some(other))));
    });
    edge.start();
    let shared = edge.shared.clone();
    eventually("the divergence", || shared.status().diverged.is_some()).await;
    assert_eq!(edge.shared.status().diverged.unwrap().first_differing_seq, 4);
    assert_eq!(edge.cursor(), 0, "the cursor did not follow");
    assert_eq!(edge.hub.ranges(), vec![(1, 4)]);
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_log_the_hub_holds_or_lacks_goes_on_and_loses_its_restore_mark() {
    for hub_holds in [0, 3, 5] {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let edge = Edge::open(dir.clone(), FakeHub::new(), config(4));
        edge.append(1..=5).await;
        edge.log.handle().set_sync_cursor(5).await.unwrap();
        edge.hub.hold_edge_events(&edge.log.reader(), 1..=hub_holds);
        let (dir, hub) = edge.close().await;
        let opts = options(dir.path());
        let db = crate::projections::rebuild::open(&opts.path, &opts.site, 1 << 20).unwrap();
        crate::log::mark_restored(&db, jiff::Timestamp::now()).unwrap();
        drop(db);
        let mut edge = Edge::open(dir, hub, config(4));
        edge.append(6..=8).await;
        edge.start();
        eventually("all stored", || edge.cursor() == 8).await;
        assert_eq!(edge.hub.with(|s| s.stored_through), 8, "hub held {hub_holds}");
        assert!(edge.shared.status().diverged.is_none(), "no false alarm: hub held {hub_holds}");
        assert_eq!(edge.log.reader().restored_at().unwrap(), None, "the mark is cleared once checked");
        assert!(edge.hub.with(|s| s.stored.values().all(|n| *n == 1)));
        edge.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_log_keeps_its_mark_while_the_hub_cannot_be_checked() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let edge = Edge::open(dir.clone(), FakeHub::new(), config(4));
    edge.append(1..=3).await;
    let (dir, hub) = edge.close().await;
    let opts = options(dir.path());
    let db = crate::projections::rebuild::open(&opts.path, &opts.site, 1 << 20).unwrap();
    crate::log::mark_restored(&db, jiff::Timestamp::now()).unwrap();
    drop(db);
    // A hub that holds more of the same history: hub_ahead, nothing sent, the mark stays.
    let mut edge = Edge::open(dir, hub, config(4));
    edge.hub.hold_edge_events(&edge.log.reader(), 1..=3);
    edge.hub.with(|s| s.stored_through = 9);
    edge.start();
    let metrics = edge.metrics.clone();
    eventually("hub_ahead", || metrics.encode().contains("kind=\"hub_ahead\"} 2")).await;
    assert!(edge.hub.seen().is_empty());
    assert!(edge.log.reader().restored_at().unwrap().is_some());
    assert_eq!(edge.shared.hub_confirmed(), 0, "nothing confirmed for retention");
    edge.close().await;
}
