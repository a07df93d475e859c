use super::*;
use crate::domain::InstanceOutcome;
use crate::events::NewEvent;
use crate::events::{Event, InstanceStored};
use crate::log::{Aggregate, Log, LogOptions};
use crate::projections::Projections;

const STABLE: Duration = Duration::from_secs(60);
const WINDOW: Duration = Duration::from_secs(24 * 3600);
const STUDY: &str = "1.2.826.0.1.3680043.10.999.1";

fn open(dir: &std::path::Path) -> Log<Projections> {
    let options = LogOptions::for_tests(dir);
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
        peer_identity: None,
        replaces_seq: None,
    };
    let new =
        NewEvent::now(Aggregate { kind: "instance".into(), id: n.to_string() }, Event::InstanceStored(Box::new(event)));
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
