//! What the sync worker shares with the HTTP API: its live status (for `/readyz`,
//! `/api/v1/status` and the metrics), a way to wake it when an operator queued a redelivery
//! or asked for a fork, and the cursor the hub confirmed in this process. The durable state (cursor, epoch, dead letters) is in redb, see
//! [`super::cursor`] and [`super::dead_letters`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::oneshot;

use super::breaker::BreakerState;
use super::dead_letters::DeadLetterCounts;
use super::history::Divergence;
use crate::telemetry::Metrics;

/// What a fork did: the new epoch, where it forks, and how many events it will carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ForkDone {
    pub epoch: u64,
    pub parent: u64,
    pub fork_at: u64,
    /// Events of this log after the fork point, to be delivered to the new epoch.
    pub to_deliver: u64,
}

/// The answer to an operator's fork request.
pub type ForkReply = oneshot::Sender<Result<ForkDone, String>>;

/// The worker's status, updated as it goes.
#[derive(Debug, Clone, Serialize)]
pub struct SyncStatus {
    /// Every event up to here is stored on the hub.
    pub cursor: u64,
    pub breaker: BreakerState,
    pub consecutive_failures: u32,
    /// The epoch of the edge's stream on the hub being sent to (0 until a fork).
    pub epoch: u64,
    /// The last sequence number the epoch shares with the one before (0 for epoch 0).
    pub fork_at: u64,
    /// When `zenedge restore` put the log in place, until the hub was found to hold the same
    /// history.
    pub restored_at: Option<String>,
    /// The hub holds another history: the sync stopped until an operator acts.
    pub diverged: Option<Divergence>,
    /// The last failure, `kind: message`.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<Timestamp>,
    /// When the hub answered per the contract again after it (`None` while it still fails).
    pub last_error_cleared_at: Option<Timestamp>,
    /// The cursor as the hub confirmed it in this process, on this log's history (`None`
    /// until the first exchange that did).
    pub hub_confirmed: Option<u64>,
    /// When the hub last answered per the contract.
    pub last_success_at: Option<Timestamp>,
    /// Batches the hub stored since start.
    pub batches_sent: u64,
    /// Events in those batches.
    pub events_sent: u64,
    /// `recorded_at` of the first event after the cursor, when the worker has read it.
    #[serde(skip)]
    pub oldest_unsynced_at: Option<Timestamp>,
}

/// Shared between the worker thread and the API.
#[derive(Debug)]
pub struct SyncShared {
    /// Sync is configured (a hub URL is set).
    pub enabled: bool,
    pub hub_url: Option<String>,
    status: Mutex<SyncStatus>,
    /// An operator queued a dead letter for redelivery since the worker last looked.
    retry_requested: AtomicBool,
    /// An operator asked for a fork; the worker answers through it.
    fork_requested: Mutex<Option<ForkReply>>,
    wake: tokio::sync::Notify,
}

/// Sync as `/readyz` and `/api/v1/status` report it.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub enabled: bool,
    pub hub_url: Option<String>,
    pub cursor: u64,
    /// Events in the log the hub does not have yet (`null` with sync off).
    pub lag_events: Option<u64>,
    /// Age of the oldest of them, in seconds (0 when there are none).
    pub lag_seconds: Option<f64>,
    pub breaker: BreakerState,
    pub consecutive_failures: u32,
    pub epoch: u64,
    pub fork_at: u64,
    pub restored_at: Option<String>,
    /// Set while the sync is stopped because the hub holds another history.
    pub diverged: Option<Divergence>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
    pub last_error_cleared_at: Option<Timestamp>,
    pub last_success_at: Option<Timestamp>,
    pub batches_sent: u64,
    pub events_sent: u64,
    /// Dead letters that need an operator (parked or waiting for redelivery).
    pub dead_letters: u64,
    pub dead_letters_by_status: DeadLetterCounts,
}

impl SyncShared {
    /// The state at start: `cursor` as persisted.
    pub fn new(hub_url: Option<String>, cursor: u64) -> SyncShared {
        SyncShared {
            enabled: hub_url.is_some(),
            hub_url,
            status: Mutex::new(SyncStatus {
                cursor,
                breaker: BreakerState::Closed,
                consecutive_failures: 0,
                epoch: 0,
                fork_at: 0,
                restored_at: None,
                diverged: None,
                last_error: None,
                last_error_at: None,
                last_error_cleared_at: None,
                hub_confirmed: None,
                last_success_at: None,
                batches_sent: 0,
                events_sent: 0,
                oldest_unsynced_at: None,
            }),
            retry_requested: AtomicBool::new(false),
            fork_requested: Mutex::new(None),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Records a failure (`kind: message`) and when it happened.
    pub(crate) fn set_error(&self, error: String) {
        self.update(|s| {
            s.last_error = Some(error);
            s.last_error_at = Some(Timestamp::now());
            s.last_error_cleared_at = None;
        });
    }

    /// The hub answered per the contract: the last error, if any, is over.
    pub(crate) fn clear_error(&self) {
        self.update(|s| {
            if s.last_error.is_some() && s.last_error_cleared_at.is_none() {
                s.last_error_cleared_at = Some(Timestamp::now());
            }
        });
    }

    /// The cursor up to which the hub confirmed, in this process, that it holds this log's
    /// events: 0 until it did (with sync off, always). Retention deletes nothing above it.
    pub fn hub_confirmed(&self) -> u64 {
        self.lock().hub_confirmed.unwrap_or(0)
    }

    /// An operator asks for a fork; the answer comes through the receiver. Refused while the
    /// sync has not diverged, or while another fork request waits.
    pub fn request_fork(&self) -> Result<oneshot::Receiver<Result<ForkDone, String>>, String> {
        if !self.enabled {
            return Err("sync is off (no sync.hub_url): there is nothing to fork".into());
        }
        if self.status().diverged.is_none() {
            return Err("the sync has not diverged from the hub: there is nothing to fork".into());
        }
        let mut slot = self.fork_requested.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|reply| !reply.is_closed()) {
            return Err("a fork is already under way".into());
        }
        let (reply, answer) = oneshot::channel();
        *slot = Some(reply);
        drop(slot);
        self.wake.notify_one();
        Ok(answer)
    }

    /// Takes the fork request, if any.
    pub(crate) fn take_fork_request(&self) -> Option<ForkReply> {
        self.fork_requested.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub fn status(&self) -> SyncStatus {
        self.lock().clone()
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut SyncStatus)) {
        f(&mut self.lock());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SyncStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An operator queued a redelivery: the worker looks at the dead letters again.
    pub fn request_retry(&self) {
        self.retry_requested.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Takes the retry request flag.
    pub(crate) fn take_retry_request(&self) -> bool {
        self.retry_requested.swap(false, Ordering::AcqRel)
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }

    /// The report for `last_seq` (the log's head) and the dead letters `counts`, at `now`.
    pub fn report(&self, last_seq: u64, counts: DeadLetterCounts, now: Timestamp) -> SyncReport {
        let s = self.status();
        let lag_events = last_seq.saturating_sub(s.cursor);
        let lag_seconds = match (lag_events, s.oldest_unsynced_at) {
            (0, _) => 0.0,
            (_, Some(at)) => (now.as_microsecond() - at.as_microsecond()).max(0) as f64 / 1e6,
            (_, None) => 0.0,
        };
        SyncReport {
            enabled: self.enabled,
            hub_url: self.hub_url.clone(),
            cursor: s.cursor,
            lag_events: self.enabled.then_some(lag_events),
            lag_seconds: self.enabled.then_some(lag_seconds),
            breaker: s.breaker,
            consecutive_failures: s.consecutive_failures,
            epoch: s.epoch,
            fork_at: s.fork_at,
            restored_at: s.restored_at,
            diverged: s.diverged,
            last_error: s.last_error,
            last_error_at: s.last_error_at,
            last_error_cleared_at: s.last_error_cleared_at,
            last_success_at: s.last_success_at,
            batches_sent: s.batches_sent,
            events_sent: s.events_sent,
            dead_letters: counts.open(),
            dead_letters_by_status: counts,
        }
    }

    /// Sets the gauges that depend on the log's head and the dead letters (at scrape time,
    /// so that they are current even while the worker waits).
    pub fn refresh_metrics(&self, metrics: &Metrics, report: &SyncReport) {
        metrics.sync_cursor.set(report.cursor as i64);
        metrics.sync_lag_events.set(report.lag_events.unwrap_or(0) as i64);
        metrics.sync_lag_seconds.set(report.lag_seconds.unwrap_or(0.0));
        metrics.sync_breaker_state.set(report.breaker.gauge());
        metrics.sync_dead_letters.set(report.dead_letters as i64);
    }
}
