use std::sync::Arc;
use std::time::Duration;

use super::expired::{Expired, delete_files};
use super::*;
use crate::domain::test_support::{Study, TestClock, options};
use crate::events::{
    CommittedInstance, Event, ForwardStatus, InstanceFileDeleted, InstanceForwarded, InstancesCommitted, NewEvent,
};
use crate::log::{Aggregate, Log, LogOptions};
use crate::projections::Projections;
use crate::telemetry::Metrics;

const DAY: Duration = Duration::from_secs(24 * 3600);
/// The required destination of most tests.
const PACS: &str = "central-pacs";

struct Edge {
    dir: tempfile::TempDir,
    clock: TestClock,
    log: Log<Projections>,
    metrics: Arc<Metrics>,
    exclusive: Arc<tokio::sync::Semaphore>,
    required: Vec<String>,
}

fn start() -> Edge {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2026-01-05T08:00:00Z".parse().unwrap());
    let metrics = Arc::new(Metrics::new());
    let log = open(dir.path(), &clock, &metrics);
    let required = vec![PACS.to_owned()];
    Edge { dir, clock, log, metrics, exclusive: Arc::new(tokio::sync::Semaphore::new(1)), required }
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
            layout: crate::dicom::Layout::new(self.dir.path().to_path_buf()),
            max_age: 90 * DAY,
            max_age_text: "90d".into(),
            log: self.log.handle(),
            reader: self.log.reader(),
            metrics: self.metrics.clone(),
            clock: self.clock.clock(),
            exclusive: self.exclusive.clone(),
            required: self.required.clone(),
            before_unlink: None,
        }
    }

    /// `destination` answered the store of instance `n` of `study` (at `seq`); with
    /// `confirmed`, that answer is its confirmation.
    async fn forwarded(
        &self,
        destination: &str,
        study: &Study,
        n: u32,
        seq: u64,
        status: ForwardStatus,
        confirmed: bool,
    ) {
        let event = NewEvent::now(
            Aggregate { kind: "instance".into(), id: format!("{}.{n}", study.uid) },
            Event::InstanceForwarded(Box::new(InstanceForwarded {
                destination: destination.into(),
                sop_instance_uid: format!("{}.{n}", study.uid),
                study_instance_uid: study.uid.clone(),
                instance_seq: seq,
                status,
                peer_status: Some(if status == ForwardStatus::Stored { 0 } else { 0xA700 }),
                answer: None,
                confirmed,
                commitment_transaction_uid: None,
            })),
        );
        self.log.handle().append(vec![event]).await.unwrap();
    }

    /// `PACS` confirmed holding instance `n` of `study` (at `seq`).
    async fn confirmed(&self, study: &Study, n: u32, seq: u64) {
        self.forwarded(PACS, study, n, seq, ForwardStatus::Stored, true).await;
    }

    /// Instance `n` of `study` stored, confirmed by `PACS`, then 91 days passed (past the
    /// 90-day retention): the file retention may delete.
    async fn stored_confirmed_and_old(&self, study: &Study, n: u32) -> (u64, String) {
        let (seq, path) = self.store(study, n).await;
        self.confirmed(study, n, seq).await;
        self.clock.advance(91 * DAY);
        (seq, path)
    }

    /// `destination` answered a commitment request: `committed` and `failed` as (n, seq).
    async fn committed(&self, destination: &str, study: &Study, committed: &[(u32, u64)], failed: &[(u32, u64)]) {
        let refs = |list: &[(u32, u64)], reason: Option<u16>| -> Vec<CommittedInstance> {
            list.iter()
                .map(|&(n, seq)| CommittedInstance {
                    sop_instance_uid: format!("{}.{n}", study.uid),
                    instance_seq: seq,
                    failure_reason: reason,
                })
                .collect()
        };
        let event = NewEvent::now(
            Aggregate { kind: "study".into(), id: study.uid.clone() },
            Event::InstancesCommitted(Box::new(InstancesCommitted {
                destination: destination.into(),
                transaction_uid: "2.25.1".into(),
                study_instance_uid: study.uid.clone(),
                committed: refs(committed, None),
                failed: refs(failed, Some(0x0110)),
            })),
        );
        self.log.handle().append(vec![event]).await.unwrap();
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
async fn an_old_confirmed_file_is_recorded_deleted_then_removed() {
    let edge = start();
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    let (seq, path) = edge.stored_confirmed_and_old(&study, 1).await;
    let mut examined = 0;
    let counts = edge.retention().sweep(&mut examined).await.unwrap();
    assert_eq!((counts.deleted, counts.unlink_failed), (1, 0));
    assert_eq!(examined, seq + 1, "the confirmation was read too");
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
async fn retention_never_deletes_a_file_the_archive_has_not_confirmed() {
    let edge = start();
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    let (s1, p1) = edge.store(&study, 1).await;
    let (s2, p2) = edge.store(&study, 2).await;
    let (s3, p3) = edge.store(&study, 3).await;
    let (s4, p4) = edge.store(&study, 4).await;
    let (s5, p5) = edge.store(&study, 5).await;
    // 1 never sent; 2 stored, waiting for its commitment; 3 refused; 4 confirmed by a
    // destination that is not required; 5 confirmed, then named failed by a commitment.
    edge.forwarded(PACS, &study, 2, s2, ForwardStatus::Stored, false).await;
    edge.forwarded(PACS, &study, 3, s3, ForwardStatus::Refused, false).await;
    edge.forwarded("research", &study, 4, s4, ForwardStatus::Stored, true).await;
    edge.confirmed(&study, 5, s5).await;
    edge.committed(PACS, &study, &[], &[(5, s5)]).await;
    edge.clock.advance(3650 * DAY);
    let mut examined = 0;
    let counts = edge.retention().sweep(&mut examined).await.unwrap();
    assert_eq!(counts.deleted, 0);
    assert!([&p1, &p2, &p3, &p4, &p5].iter().all(|p| edge.exists(p)), "nothing unconfirmed is removed");
    assert!(edge.deletions().is_empty());
    assert_eq!(examined, s1 - 1, "the first old file still waits: the next sweep looks at it again");

    // The commitment arrives for 2 and 5: they go, the others stay.
    edge.committed(PACS, &study, &[(2, s2), (5, s5)], &[]).await;
    let counts = edge.retention().sweep(&mut examined).await.unwrap();
    assert_eq!(counts.deleted, 2);
    assert!(!edge.exists(&p2) && !edge.exists(&p5));
    assert!(edge.exists(&p1) && edge.exists(&p3) && edge.exists(&p4));
    assert_eq!(examined, s1 - 1, "1 still waits");

    // The study shows, per instance, where it went and what was confirmed.
    let view = crate::projections::views::study(&edge.log.reader(), "1.2.3").unwrap().unwrap();
    let shown: Vec<Vec<(String, Option<&str>, bool)>> = view.series[0]
        .instances
        .iter()
        .map(|i| i.forwarded.iter().map(|f| (f.destination.clone(), f.status, f.confirmed)).collect())
        .collect();
    let pacs = |status, confirmed| vec![(PACS.to_owned(), Some(status), confirmed)];
    assert_eq!(
        shown,
        [
            vec![],
            pacs("stored", true),
            pacs("refused", false),
            vec![("research".to_owned(), Some("stored"), true)],
            pacs("stored", true)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_required_destination_must_confirm() {
    let mut edge = start();
    edge.required = vec![PACS.into(), "second-site".into()];
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    let (seq, path) = edge.stored_confirmed_and_old(&study, 1).await;
    let mut examined = 0;
    assert_eq!(edge.retention().sweep(&mut examined).await.unwrap().deleted, 0);
    assert!(edge.exists(&path), "one of two confirmed");
    edge.committed("second-site", &study, &[(1, seq)], &[]).await;
    assert_eq!(edge.retention().sweep(&mut examined).await.unwrap().deleted, 1);
    assert!(!edge.exists(&path));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_young_file_is_kept_until_it_is_old() {
    let edge = start();
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    let (old_seq, old_path) = edge.store(&study, 1).await;
    edge.confirmed(&study, 1, old_seq).await;
    edge.clock.advance(30 * DAY);
    let (young_seq, young_path) = edge.store(&study, 2).await;
    edge.confirmed(&study, 2, young_seq).await;
    edge.clock.advance(61 * DAY);
    let mut examined = 0;
    assert_eq!(edge.retention().sweep(&mut examined).await.unwrap().deleted, 1);
    assert!(!edge.exists(&old_path));
    assert!(edge.exists(&young_path), "30 days younger: 61 days old");
    assert_eq!(examined, old_seq + 1, "the scan stops at the first file to keep");
    edge.clock.advance(30 * DAY);
    assert_eq!(edge.retention().sweep(&mut examined).await.unwrap().deleted, 1);
    assert!(!edge.exists(&young_path));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_required_destination_nothing_is_deleted() {
    let mut edge = start();
    edge.required = Vec::new();
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    let (seq, path) = edge.store(&study, 1).await;
    edge.forwarded("optional", &study, 1, seq, ForwardStatus::Stored, true).await;
    edge.clock.advance(1000 * DAY);
    let mut examined = 0;
    assert_eq!(edge.retention().sweep(&mut examined).await.unwrap().deleted, 0);
    assert!(edge.exists(&path));
    assert!(edge.deletions().is_empty());
    let files = vec![Expired {
        instance_seq: seq,
        sop_instance_uid: "1.2.3.1".into(),
        study_instance_uid: "1.2.3".into(),
        file_path: path.clone(),
    }];
    let recorded = delete_files(&edge.log.handle(), files, "90d".into(), Vec::new()).await.unwrap();
    assert!(recorded.is_empty(), "the writer deletes nothing without a required destination");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_required_destination_the_sweep_task_ends_at_once() {
    let mut edge = start();
    edge.required = Vec::new();
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    let (_, path) = edge.store(&study, 1).await;
    edge.clock.advance(1000 * DAY);
    let stop = tokio_util::sync::CancellationToken::new();
    let task = crate::retention::run(edge.retention(), Duration::from_millis(1), stop.clone());
    let returned = tokio::time::timeout(Duration::from_secs(30), task).await;
    stop.cancel();
    assert!(returned.is_ok(), "without a required destination the sweep task ends at once");
    assert!(edge.exists(&path));
    assert!(edge.deletions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_file_is_deleted_while_a_backup_is_streamed() {
    let edge = start();
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    let (_, path) = edge.stored_confirmed_and_old(&study, 1).await;
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
async fn the_writer_rechecks_confirmations_and_earlier_deletions() {
    let edge = start();
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    let (seq1, path1) = edge.store(&study, 1).await;
    let (seq2, path2) = edge.store(&study, 2).await;
    edge.confirmed(&study, 1, seq1).await;
    let expired = |seq, path: &str, n| Expired {
        instance_seq: seq,
        sop_instance_uid: format!("1.2.3.{n}"),
        study_instance_uid: "1.2.3".into(),
        file_path: path.into(),
    };
    let files = vec![expired(seq1, &path1, 1), expired(seq2, &path2, 2)];
    let recorded = delete_files(&edge.log.handle(), files.clone(), "90d".into(), edge.required.clone()).await.unwrap();
    assert_eq!(recorded, [files[0].clone()], "seq {seq2} is not confirmed");
    let recorded =
        delete_files(&edge.log.handle(), files[..1].to_vec(), "90d".into(), edge.required.clone()).await.unwrap();
    assert!(recorded.is_empty(), "already deleted");
    assert_eq!(edge.deletions().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_instance_whose_file_was_deleted_is_stored_again() {
    let edge = start();
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    let (seq, path) = edge.stored_confirmed_and_old(&study, 1).await;
    let mut examined = 0;
    assert_eq!(edge.retention().sweep(&mut examined).await.unwrap().deleted, 1);
    assert!(!edge.exists(&path));

    // The modality sends the same data set again: the spool puts the file back in place.
    std::fs::write(edge.dir.path().join(&path), b"DICM").unwrap();
    let outcome = crate::domain::dicom::record_instance(&edge.log.handle(), study.instance(1)).await.unwrap();
    let crate::domain::dicom::InstanceOutcome::Stored { seq: again, replaces } = outcome else {
        panic!("stored again, not a duplicate: {outcome:?}")
    };
    assert_eq!(replaces, Some(seq));
    let view = crate::projections::views::study(&edge.log.reader(), "1.2.3").unwrap().unwrap();
    let instance = &view.series[0].instances[0];
    assert_eq!((instance.seq, instance.deleted), (again, false), "the file is there again");

    // The old version's confirmation does not cover the file now: it waits for its own.
    edge.clock.advance(91 * DAY);
    let mut examined = 0;
    assert_eq!(edge.retention().sweep(&mut examined).await.unwrap().deleted, 0);
    assert!(edge.exists(&path));
    edge.confirmed(&study, 1, again).await;
    assert_eq!(edge.retention().sweep(&mut examined).await.unwrap().deleted, 1);
    assert!(!edge.exists(&path));
    assert_eq!(edge.deletions().len(), 2);

    // And again after that deletion.
    let again = crate::domain::dicom::record_instance(&edge.log.handle(), study.instance(1)).await.unwrap();
    assert!(matches!(again, crate::domain::dicom::InstanceOutcome::Stored { .. }), "{again:?}");
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
    assert_eq!(
        crate::retention::unlink_deleted(&log.reader(), &crate::dicom::Layout::new(dir.path().to_path_buf())).unwrap(),
        1
    );
    assert!(!dir.path().join(&path).exists());
    assert!(dir.path().join(&kept).exists());
    assert_eq!(
        crate::retention::unlink_deleted(&log.reader(), &crate::dicom::Layout::new(dir.path().to_path_buf())).unwrap(),
        0,
        "idempotent"
    );
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_stored_again_between_its_deletion_and_the_unlink_is_kept() {
    use crate::domain::dicom::{InstanceOutcome, record_instance};
    let edge = start();
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    let (seq, path) = edge.stored_confirmed_and_old(&study, 1).await;
    let mut retention = edge.retention();
    let outcome = Arc::new(std::sync::Mutex::new(None));
    let (gate, log, resent, seen) = (retention.layout.gate(), edge.log.handle(), study.instance(1), outcome.clone());
    // Right after the deletion is committed, the modality sends the same data set again: intake
    // finds the file still in place and records it stored again, as the association does.
    retention.before_unlink = Some(Arc::new(move |file: &Expired| {
        let (gate, log, resent, seen) = (gate.clone(), log.clone(), resent.clone(), seen.clone());
        let uid = file.sop_instance_uid.clone();
        Box::pin(async move {
            let _pass = gate.intake(&uid).await;
            *seen.lock().unwrap() = Some(record_instance(&log, resent).await.unwrap());
        })
    }));
    let counts = retention.sweep(&mut 0).await.unwrap();
    let outcome = outcome.lock().unwrap().take();
    assert!(matches!(outcome, Some(InstanceOutcome::Stored { replaces: Some(r), .. }) if r == seq), "{outcome:?}");
    assert_eq!((counts.deleted, counts.stored_again), (0, 1), "{counts:?}");
    assert!(edge.exists(&path), "the file the new InstanceStored names is kept");
    assert_eq!(
        crate::retention::unlink_deleted(&edge.log.reader(), &crate::dicom::Layout::new(edge.dir.path().to_path_buf()))
            .unwrap(),
        0
    );
    assert!(edge.exists(&path), "and the start-up sweep keeps it too");
}
