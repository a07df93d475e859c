use std::sync::Arc;
use std::time::Duration;

use super::expired::{Expired, delete_files};
use super::*;
use crate::domain::test_support::{Study, TestClock, options};
use crate::events::{Event, InstanceFileDeleted, NewEvent};
use crate::log::{Aggregate, Log, LogOptions};
use crate::projections::Projections;
use crate::telemetry::Metrics;

const DAY: Duration = Duration::from_secs(24 * 3600);

struct Edge {
    dir: tempfile::TempDir,
    clock: TestClock,
    log: Log<Projections>,
    metrics: Arc<Metrics>,
    exclusive: Arc<tokio::sync::Semaphore>,
    hub: Arc<crate::sync::SyncShared>,
}

fn start() -> Edge {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2026-01-05T08:00:00Z".parse().unwrap());
    let metrics = Arc::new(Metrics::new());
    let log = open(dir.path(), &clock, &metrics);
    let hub = Arc::new(crate::sync::SyncShared::new(Some("http://hub.test".into()), 0));
    Edge { dir, clock, log, metrics, exclusive: Arc::new(tokio::sync::Semaphore::new(1)), hub }
}

fn open(dir: &std::path::Path, clock: &TestClock, metrics: &Arc<Metrics>) -> Log<Projections> {
    let options = LogOptions { clock: clock.clock(), ..options(dir) };
    crate::domain::test_support::open(&options, metrics.clone()).unwrap()
}

impl Edge {
    /// Stores instance `n` of `study` with its file; returns its seq and file path.
    async fn store(&self, study: &Study, n: u32) -> (u64, String) {
        let event = study.instance(n);
        let Event::InstanceStored(i) = &event.event else { unreachable!() };
        let path = i.file_path.clone();
        let file = self.dir.path().join(&path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"DICM").unwrap();
        let seq = self.log.handle().append(vec![event]).await.unwrap()[0];
        (seq, path)
    }

    fn retention(&self) -> Retention {
        Retention {
            state_dir: self.dir.path().to_path_buf(),
            max_age: 90 * DAY,
            max_age_text: "90d".into(),
            log: self.log.handle(),
            reader: self.log.reader(),
            metrics: self.metrics.clone(),
            clock: self.clock.clock(),
            exclusive: self.exclusive.clone(),
            hub: self.hub.clone(),
        }
    }

    /// The hub stored every event up to `seq`, and said so in this process.
    async fn synced_through(&self, seq: u64) {
        crate::sync::cursor::set_cursor(&self.log.handle(), seq).await.unwrap();
        self.hub.update(|s| s.hub_confirmed = Some(seq));
    }

    fn exists(&self, path: &str) -> bool {
        self.dir.path().join(path).exists()
    }

    fn deletions(&self) -> Vec<InstanceFileDeleted> {
        let page = crate::events::after(&self.log.reader(), 0, 10_000).unwrap();
        page.items
            .into_iter()
            .filter_map(|e| match e.event {
                Event::InstanceFileDeleted(d) => Some(*d),
                _ => None,
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_synced_file_is_recorded_deleted_then_removed() {
    let edge = start();
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    let (seq, path) = edge.store(&study, 1).await;
    edge.synced_through(seq).await;
    edge.clock.advance(91 * DAY);
    let mut examined = 0;
    let counts = edge.retention().sweep(&mut examined).await.unwrap();
    assert_eq!((counts.deleted, counts.unlink_failed), (1, 0));
    assert_eq!(examined, seq);
    assert!(!edge.exists(&path), "the file is gone");
    let deletions = edge.deletions();
    assert_eq!(deletions.len(), 1);
    let d = &deletions[0];
    assert_eq!((d.file_path.as_str(), d.instance_seq, d.reason.as_str()), (path.as_str(), seq, "retention"));
    assert_eq!(
        (d.sop_instance_uid.as_str(), d.study_instance_uid.as_str(), d.max_age.as_str()),
        ("1.2.3.1", "1.2.3", "90d")
    );
    assert_eq!(edge.metrics.retention_deleted.get(), 1);
    assert!(edge.metrics.encode().contains("zenedge_retention_deleted_total 1"));
    let view = crate::projections::views::study(&edge.log.reader(), "1.2.3").unwrap().unwrap();
    assert!(view.series[0].instances[0].deleted, "the study shows the instance as deleted");
    assert_eq!(view.summary.instance_count, 1, "the instance stays in the study");

    // The next sweep has nothing left to do and appends nothing.
    let counts = edge.retention().sweep(&mut examined).await.unwrap();
    assert_eq!(counts.deleted, 0);
    assert_eq!(edge.deletions().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_file_the_hub_does_not_have_is_kept() {
    let edge = start();
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    let (synced, synced_path) = edge.store(&study, 1).await;
    let (_, unsynced_path) = edge.store(&study, 2).await;
    edge.synced_through(synced).await;
    edge.clock.advance(365 * DAY);
    let mut examined = 0;
    let counts = edge.retention().sweep(&mut examined).await.unwrap();
    assert_eq!(counts.deleted, 1);
    assert!(!edge.exists(&synced_path));
    assert!(edge.exists(&unsynced_path), "nothing unsynced is removed");
    assert_eq!(examined, synced, "the scan stops at the cursor");
    let view = crate::projections::views::study(&edge.log.reader(), "1.2.3").unwrap().unwrap();
    assert_eq!(view.series[0].instances.iter().map(|i| i.deleted).collect::<Vec<_>>(), [true, false]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_young_file_is_kept_until_it_is_old() {
    let edge = start();
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    let (old_seq, old_path) = edge.store(&study, 1).await;
    edge.clock.advance(30 * DAY);
    let (young_seq, young_path) = edge.store(&study, 2).await;
    edge.synced_through(young_seq).await;
    edge.clock.advance(61 * DAY);
    let mut examined = 0;
    assert_eq!(edge.retention().sweep(&mut examined).await.unwrap().deleted, 1);
    assert!(!edge.exists(&old_path));
    assert!(edge.exists(&young_path), "30 days younger: 61 days old");
    assert_eq!(examined, old_seq, "the scan stops at the first file to keep");
    edge.clock.advance(30 * DAY);
    assert_eq!(edge.retention().sweep(&mut examined).await.unwrap().deleted, 1);
    assert!(!edge.exists(&young_path));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sync_off_nothing_is_deleted() {
    // Without a hub the cursor never moves from 0.
    let edge = start();
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    let (_, path) = edge.store(&study, 1).await;
    edge.clock.advance(1000 * DAY);
    let mut examined = 0;
    assert_eq!(edge.retention().sweep(&mut examined).await.unwrap(), crate::retention::SweepCounts::default());
    assert!(edge.exists(&path));
    assert!(edge.deletions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_cursor_the_hub_has_not_confirmed_in_this_process_deletes_nothing() {
    // A restored log carries its backup's cursor; until the hub was checked it counts for
    // nothing, and then only as far as the hub confirmed.
    let edge = start();
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    let (first, first_path) = edge.store(&study, 1).await;
    let (second, second_path) = edge.store(&study, 2).await;
    crate::sync::cursor::set_cursor(&edge.log.handle(), second).await.unwrap();
    edge.clock.advance(1000 * DAY);
    let mut examined = 0;
    assert_eq!(edge.retention().sweep(&mut examined).await.unwrap().deleted, 0);
    assert!(edge.exists(&first_path) && edge.exists(&second_path) && edge.deletions().is_empty());
    edge.hub.update(|s| s.hub_confirmed = Some(first));
    assert_eq!(edge.retention().sweep(&mut examined).await.unwrap().deleted, 1);
    assert!(!edge.exists(&first_path) && edge.exists(&second_path), "only what the hub confirmed");
    let late = Expired {
        instance_seq: second,
        sop_instance_uid: "1.2.3.2".into(),
        study_instance_uid: "1.2.3".into(),
        file_path: second_path.clone(),
    };
    let recorded = delete_files(&edge.log.handle(), vec![late], "90d".into(), first).await.unwrap();
    assert!(recorded.is_empty(), "the writer checks the confirmed bound too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sync_off_the_sweep_does_not_run_even_on_a_carried_over_cursor() {
    let mut edge = start();
    edge.hub = Arc::new(crate::sync::SyncShared::new(None, 0));
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    let (seq, path) = edge.store(&study, 1).await;
    crate::sync::cursor::set_cursor(&edge.log.handle(), seq).await.unwrap();
    edge.clock.advance(1000 * DAY);
    let stop = tokio_util::sync::CancellationToken::new();
    let task = crate::retention::run(edge.retention(), Duration::from_millis(1), stop.clone());
    let returned = tokio::time::timeout(Duration::from_secs(30), task).await;
    stop.cancel();
    assert!(returned.is_ok(), "with sync off the sweep task ends at once");
    assert!(edge.exists(&path));
    assert!(edge.deletions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_file_is_deleted_while_a_backup_is_streamed() {
    let edge = start();
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    let (seq, path) = edge.store(&study, 1).await;
    edge.synced_through(seq).await;
    edge.clock.advance(91 * DAY);
    let backup = edge.exclusive.clone().try_acquire_owned().unwrap();
    let mut examined = 0;
    let counts = edge.retention().sweep(&mut examined).await.unwrap();
    assert!(counts.deferred);
    assert_eq!((counts.deleted, examined), (0, 0));
    assert!(edge.exists(&path) && edge.deletions().is_empty());
    drop(backup);
    assert_eq!(edge.retention().sweep(&mut examined).await.unwrap().deleted, 1);
    assert!(!edge.exists(&path));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_rechecks_the_cursor_and_earlier_deletions() {
    let edge = start();
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    let (seq1, path1) = edge.store(&study, 1).await;
    let (seq2, path2) = edge.store(&study, 2).await;
    edge.synced_through(seq1).await;
    let expired = |seq, path: &str, n| Expired {
        instance_seq: seq,
        sop_instance_uid: format!("1.2.3.{n}"),
        study_instance_uid: "1.2.3".into(),
        file_path: path.into(),
    };
    let files = vec![expired(seq1, &path1, 1), expired(seq2, &path2, 2)];
    let recorded = delete_files(&edge.log.handle(), files.clone(), "90d".into(), u64::MAX).await.unwrap();
    assert_eq!(recorded, [files[0].clone()], "seq {seq2} is past the cursor");
    let recorded = delete_files(&edge.log.handle(), files[..1].to_vec(), "90d".into(), u64::MAX).await.unwrap();
    assert!(recorded.is_empty(), "already deleted");
    assert_eq!(edge.deletions().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_recorded_deleted_before_a_crash_is_removed_at_start() {
    let edge = start();
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    let (seq, path) = edge.store(&study, 1).await;
    let (_, kept) = edge.store(&study, 2).await;
    // The deletion committed, then the process died before the unlink.
    let deleted = NewEvent::now(
        Aggregate { kind: "instance".into(), id: "1.2.3.1".into() },
        Event::InstanceFileDeleted(Box::new(InstanceFileDeleted {
            sop_instance_uid: "1.2.3.1".into(),
            study_instance_uid: "1.2.3".into(),
            file_path: path.clone(),
            instance_seq: seq,
            reason: "retention".into(),
            max_age: "90d".into(),
        })),
    );
    edge.log.handle().append(vec![deleted]).await.unwrap();
    let Edge { dir, clock, log, metrics, .. } = edge;
    log.close().await.unwrap();
    assert!(dir.path().join(&path).exists());
    let log = open(dir.path(), &clock, &metrics);
    assert_eq!(crate::retention::unlink_deleted(&log.reader(), dir.path()).unwrap(), 1);
    assert!(!dir.path().join(&path).exists());
    assert!(dir.path().join(&kept).exists());
    assert_eq!(crate::retention::unlink_deleted(&log.reader(), dir.path()).unwrap(), 0, "idempotent");
    log.close().await.unwrap();
}
