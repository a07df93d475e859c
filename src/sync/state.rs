//! What the sync worker shares with the HTTP API: its live status (for `/readyz`,
//! `/api/v1/status` and the metrics) and a way to wake it when an operator queued a
//! redelivery. The durable state (cursor, dead letters) is in redb, see
//! [`crate::log::DeadLetter`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use jiff::Timestamp;
use serde::Serialize;

use super::breaker::BreakerState;
use crate::log::DeadLetterCounts;
use crate::telemetry::Metrics;

/// The worker's status, updated as it goes.
#[derive(Debug, Clone, Serialize)]
pub struct SyncStatus {
    /// Every event up to here is stored on the hub.
    pub cursor: u64,
    pub breaker: BreakerState,
    pub consecutive_failures: u32,
    /// The last failure, `kind: message`.
    pub last_error: Option<String>,
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
    pub last_error: Option<String>,
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
                last_error: None,
                last_success_at: None,
                batches_sent: 0,
                events_sent: 0,
                oldest_unsynced_at: None,
            }),
            retry_requested: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        }
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
            last_error: s.last_error,
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
