//! Patient cases: which studies share one, by which ids, within which window; merges.

use super::*;

#[tokio::test]
async fn an_orders_patient_ids_find_its_case_and_bring_later_studies_into_it() {
    let (dir, _clock, log) = start();
    send(&log, merge("M1", "MRN-NEW", "MRN-OLD")).await;
    send(&log, Order::new("C1", "PL1", "ACC1", &["P1", "INS-9", "MRN-OLD"]).event()).await;
    Study::new("1.2.1", "ACC1", "P1").arrive(&log, 1).await;
    let reader = log.reader();
    let case = views::search_cases(&reader, "P1").unwrap().items[0].clone();
    assert_eq!(case.patient_ids, ["P1", "INS-9", "MRN-NEW"], "the order's ids, resolved through the merge");
    for id in ["INS-9", "MRN-NEW", "MRN-OLD"] {
        let found: Vec<_> = views::search_cases(&reader, id).unwrap().items.into_iter().map(|c| c.case_id).collect();
        assert_eq!(found, std::slice::from_ref(&case.case_id), "{id}");
    }
    // A modality that knows the patient only by the insurance id joins the case.
    Study::new("1.2.2", "ACC2", "INS-9").arrive(&log, 1).await;
    assert_eq!(History::read(&log).partition().len(), 1);
    drop(reader);
    log.close().await.unwrap();
    assert_replay_equals_projections(dir.path());
}

#[tokio::test]
async fn studies_of_one_patient_and_modality_within_the_window_share_a_case() {
    let (_dir, clock, log) = start();
    Study::new("1.2.1", "A1", "P1").arrive(&log, 1).await;
    clock.advance(Duration::from_secs(23 * 3600));
    Study::new("1.2.2", "A2", "P1").arrive(&log, 1).await;
    Study { modality: "MR".into(), ..Study::new("1.2.3", "A3", "P1") }.arrive(&log, 1).await;
    Study::new("1.2.4", "A4", "P2").arrive(&log, 1).await;
    clock.advance(Duration::from_secs(2 * 3600));
    // 25 h after the first case opened: a new case.
    Study::new("1.2.5", "A5", "P1").arrive(&log, 1).await;
    let expected: BTreeSet<BTreeSet<String>> = [vec!["1.2.1", "1.2.2"], vec!["1.2.3"], vec!["1.2.4"], vec!["1.2.5"]]
        .into_iter()
        .map(|s| s.into_iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(History::read(&log).partition(), expected);
}

#[tokio::test]
async fn the_consolidation_window_is_configured_per_hospital() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2026-05-01T08:00:00Z".parse().unwrap());
    let options = LogOptions { clock: clock.clock(), ..options(dir.path()) };
    let log = test_support::open(&options, Arc::new(crate::telemetry::Metrics::new())).unwrap();
    let window = Duration::from_secs(3600);
    Study::new("1.2.1", "A1", "P1").arrive_within(&log, 1, window).await;
    clock.advance(Duration::from_secs(2 * 3600));
    Study::new("1.2.2", "A2", "P1").arrive_within(&log, 1, window).await;
    assert_eq!(History::read(&log).partition().len(), 2, "two hours exceed a one-hour window");
}

#[tokio::test]
async fn other_patient_ids_find_the_case() {
    let (_dir, _clock, log) = start();
    Study { other_ids: vec!["INS-9".into()], ..Study::new("1.2.1", "A1", "P1") }.arrive(&log, 1).await;
    // Another system knows the patient by the insurance id only.
    Study::new("1.2.2", "A2", "INS-9").arrive(&log, 1).await;
    assert_eq!(History::read(&log).partition().len(), 1);
}

#[tokio::test]
async fn a_merge_makes_the_prior_id_and_the_surviving_id_one_patient_for_later_studies() {
    let (_dir, _clock, log) = start();
    Study::new("1.2.1", "A1", "OLD-1").arrive(&log, 1).await;
    Study::new("1.2.2", "A2", "NEW-1").arrive(&log, 1).await;
    assert_eq!(History::read(&log).partition().len(), 2, "two patients as far as anyone knows");
    send(&log, merge("M1", "NEW-1", "OLD-1")).await;
    assert_eq!(History::read(&log).merges, 1);
    // Cases that exist stay as they are; later studies of either id join the most recent case.
    Study::new("1.2.3", "A3", "OLD-1").arrive(&log, 1).await;
    Study::new("1.2.4", "A4", "NEW-1").arrive(&log, 1).await;
    let h = History::read(&log);
    assert_eq!(h.case_of("1.2.3"), h.case_of("1.2.2"));
    assert_eq!(h.case_of("1.2.4"), h.case_of("1.2.2"));

    // A merge into a patient whose cases were all opened under the prior id.
    let (_dir2, _clock2, log2) = start();
    Study::new("1.3.1", "B1", "OLD-2").arrive(&log2, 1).await;
    send(&log2, merge("M2", "NEW-2", "OLD-2")).await;
    Study::new("1.3.2", "B2", "NEW-2").arrive(&log2, 1).await;
    assert_eq!(History::read(&log2).partition().len(), 1, "the surviving id finds the prior id's case");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_studies_of_one_patient_completing_at_once_make_one_case() {
    let (_dir, _clock, log) = start();
    let log = Arc::new(log);
    let studies: Vec<Study> = (0..24).map(|i| Study::new(&format!("1.2.{i}"), &format!("A{i}"), "P1")).collect();
    for s in &studies {
        crate::domain::record_instance(&log.handle(), s.instance(1)).await.unwrap();
    }
    let pending = views::pending_studies(&log.reader()).unwrap();
    let mut tasks = Vec::new();
    for p in pending {
        let handle = log.handle();
        tasks.push(tokio::spawn(async move {
            crate::domain::complete_study(&handle, p.study_instance_uid, p.last_instance_seq, test_support::DAY).await
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap().unwrap(), CompletionOutcome::Completed { .. }));
    }
    let h = History::read(&log);
    assert_eq!(h.cases.len(), 1, "{:?}", h.cases);
    assert_eq!(h.cases.values().next().unwrap().len(), studies.len());
}
