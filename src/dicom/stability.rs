//! Study completion by stability: a study is complete when no instance has arrived for
//! `[dicom] stable_after` (Orthanc's "StableAge").
//!
//! One task keeps a deadline per study: every stored instance pushes its study's deadline
//! to now + `stable_after`. When a deadline passes, the task asks the log writer to append
//! `StudyCompleted` — and the writer does so only if the study's last instance is still the
//! one the timer saw, so an instance that raced the timer makes the study wait again
//! instead of completing it early. The decision is recorded as an event and never re-made
//! on replay (invariant 3).
//!
//! Timers survive restarts: pending studies are kept in the log's `studies_pending`
//! projection with the time of their last instance, and re-armed from it at start-up with
//! whatever remains of their quiet time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::domain::CompletionOutcome;
use crate::log::{AppendError, LogHandle, LogReader};
use crate::projections::Projections;
use crate::telemetry::Metrics;

/// After a refused completion (disk reserve, writer unavailable), try again after this.
const RETRY: Duration = Duration::from_secs(10);

/// Tells the completion task about stored instances.
#[derive(Debug, Clone)]
pub struct Stability {
    tx: mpsc::UnboundedSender<(String, u64)>,
}

impl Stability {
    /// `seq` of an `InstanceStored` in `study` was committed.
    pub fn instance_stored(&self, study: String, seq: u64) {
        // Only fails once the task has stopped (shutdown): the log still holds the study
        // as pending, and the next start re-arms it.
        let _ = self.tx.send((study, seq));
    }
}

/// The completion task and its handle.
pub fn channel() -> (Stability, mpsc::UnboundedReceiver<(String, u64)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Stability { tx }, rx)
}

/// Deadlines by study, with the last instance each deadline was set for.
#[derive(Default)]
struct Timers {
    by_study: HashMap<String, (Instant, u64)>,
    queue: BinaryHeap<Reverse<(Instant, String)>>,
}

impl Timers {
    fn arm(&mut self, study: String, deadline: Instant, seq: u64) {
        self.by_study.insert(study.clone(), (deadline, seq));
        self.queue.push(Reverse((deadline, study)));
    }

    /// The next study whose live deadline is due at `next`; stale queue entries are skipped.
    fn next(&mut self) -> Option<Instant> {
        while let Some(Reverse((deadline, study))) = self.queue.peek() {
            if self.by_study.get(study).is_some_and(|(d, _)| d == deadline) {
                return Some(*deadline);
            }
            self.queue.pop();
        }
        None
    }

    fn pop_due(&mut self) -> Option<(String, u64)> {
        let Reverse((_, study)) = self.queue.pop()?;
        let (_, seq) = self.by_study.remove(&study)?;
        Some((study, seq))
    }
}

/// Runs until `shutdown`: arms timers from the log, then from notifications. A first
/// completion joins a patient case created within `consolidation_window`, or opens one.
pub async fn run(
    mut rx: mpsc::UnboundedReceiver<(String, u64)>,
    log: LogHandle<Projections>,
    reader: LogReader,
    stable_after: Duration,
    consolidation_window: Duration,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut timers = Timers::default();
    match tokio::task::spawn_blocking(move || crate::projections::views::pending_studies(&reader)).await {
        Ok(Ok(pending)) => {
            let now_us = jiff::Timestamp::now().as_microsecond();
            for p in pending {
                let quiet = Duration::from_micros(now_us.saturating_sub(p.last_instance_at_us).max(0) as u64);
                let deadline = Instant::now() + stable_after.saturating_sub(quiet);
                timers.arm(p.study_instance_uid, deadline, p.last_instance_seq);
            }
            tracing::info!(pending = timers.by_study.len(), "study completion timers re-armed from the log");
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read pending studies; they complete when they next receive an instance")
        }
        Err(e) => tracing::error!(error = %e, "cannot read pending studies"),
    }
    loop {
        metrics.dicom_studies_pending.set(timers.by_study.len() as i64);
        let next = timers.next();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            notice = rx.recv() => match notice {
                Some((study, seq)) => timers.arm(study, Instant::now() + stable_after, seq),
                None => return,
            },
            _ = sleep_until(next) => {
                if let Some((study, seq)) = timers.pop_due() {
                    let durations = (stable_after, consolidation_window);
                    complete(&log, &mut timers, study, seq, durations, &metrics).await;
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn complete(
    log: &LogHandle<Projections>,
    timers: &mut Timers,
    study: String,
    seq: u64,
    (stable_after, consolidation_window): (Duration, Duration),
    metrics: &Metrics,
) {
    match crate::domain::complete_study(log, study.clone(), seq, consolidation_window).await {
        Ok(CompletionOutcome::Completed { seq, revision }) => {
            metrics.dicom_studies_completed.inc();
            tracing::info!(seq, revision, "study completed");
        }
        Ok(CompletionOutcome::NotStable { last_instance_seq }) => {
            // A newer instance committed; its notification re-arms the timer (or did).
            if !timers.by_study.contains_key(&study) {
                timers.arm(study, Instant::now() + stable_after, last_instance_seq);
            }
        }
        Ok(CompletionOutcome::NotPending) => {}
        Err(AppendError::Unavailable) => {}
        Err(e) => {
            tracing::warn!(error = %e, "study completion refused; retrying");
            timers.arm(study, Instant::now() + RETRY, seq);
        }
    }
}

#[cfg(test)]
#[path = "stability_tests.rs"]
mod tests;
