//! The worker's waits: backoff, the breaker's open period, new events, a fuller batch. Every
//! wait ends at once on shutdown.

use std::time::{Duration, Instant};

use super::Worker;

impl Worker {
    pub(super) fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Sleeps `duration`. Returns false on shutdown.
    pub(super) fn sleep(&self, duration: Duration) -> bool {
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
    pub(super) fn wait_for_breaker(&mut self) -> bool {
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

    /// Waits until events arrive after the cursor or an operator queues a redelivery. After
    /// `position_check_interval` of that, the hub's position is asked again before anything
    /// else (a hub restored from an older backup is refilled without waiting for an event).
    /// Returns false on shutdown.
    pub(super) fn wait_for_work(&mut self) -> bool {
        let cursor = self.cursor;
        let shutdown = self.shutdown.clone();
        let shared = self.shared.clone();
        let mut committed = self.committed.clone();
        let since = *self.idle_since.get_or_insert_with(Instant::now);
        let interval = self.config.position_check_interval.saturating_sub(since.elapsed());
        let audit_poll = self.audit.poll();
        let woken = self.block_on(async move {
            tokio::select! {
                _ = shutdown.cancelled() => Woken::Stop,
                changed = committed.wait_for(|&last| last > cursor) => {
                    if changed.is_ok() { Woken::Work } else { Woken::WriterGone }
                }
                _ = shared.woken() => Woken::Work,
                _ = tokio::time::sleep(interval) => Woken::CheckHub,
                _ = tokio::time::sleep(audit_poll) => Woken::Audit,
            }
        });
        if !matches!(woken, Woken::Audit) {
            self.idle_since = None;
        }
        match woken {
            Woken::Stop => false,
            Woken::Work | Woken::Audit => true,
            Woken::CheckHub => {
                tracing::debug!(cursor, "idle: asking the hub where it stands");
                self.checked = false;
                true
            }
            // The writer is gone: the daemon is stopping.
            Woken::WriterGone => {
                self.block_on(self.shutdown.cancelled());
                false
            }
        }
    }

    /// Fewer than a full batch waiting: waits up to `linger` for more. Returns false on
    /// shutdown.
    pub(super) fn linger(&mut self) -> bool {
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

/// What ended an idle wait.
enum Woken {
    Stop,
    /// New events, or an operator's request.
    Work,
    /// `position_check_interval` passed with nothing to do.
    CheckHub,
    /// Time to look at the audit trail again.
    Audit,
    WriterGone,
}
