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
mod tests {
    use super::*;
    use crate::config::{DiskReserve, Site};
    use crate::domain::InstanceOutcome;
    use crate::events::NewEvent;
    use crate::events::{Event, InstanceStored};
    use crate::log::{Aggregate, Log, LogOptions};
    use crate::projections::Projections;

    const STABLE: Duration = Duration::from_secs(60);
    const WINDOW: Duration = Duration::from_secs(24 * 3600);
    const STUDY: &str = "1.2.826.0.1.3680043.10.999.1";

    fn open(dir: &std::path::Path) -> Log<Projections> {
        let options = LogOptions {
            path: dir.join("zenedge.redb"),
            site: Site { tenant_id: "t".into(), hospital_id: "h".into(), edge_id: "e".into() },
            disk_reserve: DiskReserve::Bytes(0),
            queue_depth: 64,
            max_batch: 64,
            cache_size: 4 << 20,
            clock: Arc::new(jiff::Timestamp::now),
        };
        crate::domain::test_support::open(&options, Arc::new(Metrics::new())).unwrap()
    }

    /// Awaits `f` while keeping the runtime busy, so paused time cannot jump ahead while the
    /// log writer (a real thread) works.
    async fn busy<F: std::future::Future>(f: F) -> F::Output {
        tokio::pin!(f);
        loop {
            tokio::select! {
                biased;
                out = &mut f => return out,
                () = tokio::task::yield_now() => {}
            }
        }
    }

    async fn store(log: &Log<Projections>, n: u32) -> u64 {
        busy(store_now(log, n)).await
    }

    async fn store_now(log: &Log<Projections>, n: u32) -> u64 {
        let event = InstanceStored {
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            sop_instance_uid: format!("{STUDY}.1.{n}"),
            study_instance_uid: STUDY.into(),
            series_instance_uid: format!("{STUDY}.1"),
            transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            patient_id: Some("P1".into()),
            patient_name: None,
            other_patient_ids: vec![],
            issuer_of_patient_id: None,
            accession_number: Some("A1".into()),
            modality: Some("CT".into()),
            study_date: None,
            study_time: None,
            study_description: None,
            series_number: None,
            instance_number: None,
            specific_character_set: None,
            charset_fallback: false,
            file_path: format!("instances/x/{n}.dcm"),
            size: 1,
            sha256: format!("{n:064x}"),
            calling_ae: "CT01".into(),
            called_ae: "ZENEDGE".into(),
            peer: "test".into(),
            replaces_seq: None,
        };
        let new = NewEvent::now(
            Aggregate { kind: "instance".into(), id: n.to_string() },
            Event::InstanceStored(Box::new(event)),
        );
        match crate::domain::record_instance(&log.handle(), new).await.unwrap() {
            InstanceOutcome::Stored { seq, .. } => seq,
            other => panic!("{other:?}"),
        }
    }

    /// `StudyCompleted` events so far, as (revision, instance_count).
    fn completions(log: &Log<Projections>) -> Vec<(u32, u32)> {
        let page = crate::events::after(&log.reader(), 0, 1000).unwrap();
        page.items
            .iter()
            .filter_map(|e| match &e.event {
                Event::StudyCompleted(c) => Some((c.revision, c.instance_count)),
                _ => None,
            })
            .collect()
    }

    /// Lets the completion task and the log writer (a real thread) run until `expected`
    /// completions are in the log. Yielding keeps the runtime busy, so paused time does not
    /// jump meanwhile; the bound is real time.
    async fn settle(log: &Log<Projections>, expected: usize) {
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        while completions(log).len() < expected && std::time::Instant::now() < give_up {
            tokio::task::yield_now().await;
        }
    }

    fn start(log: &Log<Projections>) -> (Stability, CancellationToken) {
        let (stability, rx) = channel();
        let token = CancellationToken::new();
        let metrics = Arc::new(Metrics::new());
        tokio::spawn(run(rx, log.handle(), log.reader(), STABLE, WINDOW, metrics, token.clone()));
        (stability, token)
    }

    #[tokio::test(start_paused = true)]
    async fn a_study_completes_only_after_the_quiet_time_and_a_late_instance_makes_it_wait_again() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let (stability, token) = start(&log);
        let seq = store(&log, 1).await;
        stability.instance_stored(STUDY.into(), seq);
        tokio::time::sleep(Duration::from_secs(30)).await;
        let seq = store(&log, 2).await;
        stability.instance_stored(STUDY.into(), seq);
        tokio::time::sleep(Duration::from_secs(45)).await;
        assert!(completions(&log).is_empty(), "75 s after the first instance but 45 s after the last: not stable");
        tokio::time::sleep(Duration::from_secs(16)).await;
        settle(&log, 1).await;
        assert_eq!(completions(&log), [(1, 2)]);
        let seq = store(&log, 3).await;
        stability.instance_stored(STUDY.into(), seq);
        tokio::time::sleep(STABLE + Duration::from_secs(1)).await;
        settle(&log, 2).await;
        assert_eq!(completions(&log), [(1, 2), (2, 3)], "a late instance completes the study again, revision 2");
        token.cancel();
        log.close().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn pending_studies_are_rearmed_from_the_log_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        store(&log, 1).await;
        log.close().await.unwrap();
        // A new process: nothing told the task about the instance; the log did.
        let log = open(dir.path());
        let (_stability, token) = start(&log);
        tokio::time::sleep(STABLE + Duration::from_secs(1)).await;
        settle(&log, 1).await;
        assert_eq!(completions(&log), [(1, 1)]);
        token.cancel();
        log.close().await.unwrap();
    }
}
