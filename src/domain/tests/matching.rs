//! Orders meet studies: every pair, once, whatever the order and the time between them.

use super::*;

#[tokio::test]
async fn an_order_meets_a_study_that_completes_later() {
    let (_dir, _clock, log) = start();
    send(&log, Order::new("C1", "PL1", "ACC1", &["P1"]).event()).await;
    assert!(History::read(&log).matches.is_empty(), "no study yet");
    Study::new("1.2.1", "ACC1", "P1").arrive(&log, 2).await;
    let h = History::read(&log);
    assert_eq!(h.matches, [pair("1.2.1", "PL1")]);
    assert_eq!(h.message_matched, 1);
    let case = h.case_of("1.2.1").expect("the study opened a case");
    assert_eq!(h.created["PL1"].as_ref(), Some(case), "the order joins the study's case");
    assert_eq!(h.classes[case], "O", "the order's patient class classifies the case");
}

#[tokio::test]
async fn a_completed_study_meets_an_order_that_arrives_later() {
    let (_dir, _clock, log) = start();
    Study::new("1.2.1", "ACC1", "P1").arrive(&log, 1).await;
    assert!(History::read(&log).matches.is_empty());
    send(&log, Order::new("C1", "PL1", "ACC1", &["P1"]).event()).await;
    let h = History::read(&log);
    assert_eq!(h.matches, [pair("1.2.1", "PL1")]);
    assert_eq!(h.created["PL1"].as_ref(), h.case_of("1.2.1"));
}

#[tokio::test]
async fn accessions_must_be_equal_and_a_study_without_one_waits_for_nothing() {
    let (_dir, _clock, log) = start();
    send(&log, Order::new("C1", "PL1", "ACC1", &["P1"]).event()).await;
    Study::new("1.2.1", "ACC2", "P1").arrive(&log, 1).await;
    Study::new("1.2.2", "", "P1").arrive(&log, 1).await;
    let h = History::read(&log);
    assert!(h.matches.is_empty(), "{h:?}");
    assert_eq!(h.partition().len(), 1, "both studies still form the patient's case");
}

#[tokio::test]
async fn a_pair_six_months_apart_matches_like_one_six_seconds_apart() {
    let (_dir, clock, log) = start();
    send(&log, Order::new("C1", "PL1", "ACC1", &["P1"]).event()).await;
    clock.advance(183 * DAY);
    Study::new("1.2.1", "ACC1", "P1").arrive(&log, 1).await;
    send(&log, Order::new("C2", "PL2", "ACC2", &["P2"]).event()).await;
    clock.advance(Duration::from_secs(6));
    Study::new("1.2.2", "ACC2", "P2").arrive(&log, 1).await;
    assert_eq!(History::read(&log).pairs(), [pair("1.2.1", "PL1"), pair("1.2.2", "PL2")].into());
}

#[tokio::test]
async fn every_pair_of_one_order_with_several_studies_and_of_one_study_with_several_orders() {
    let (_dir, _clock, log) = start();
    // Order first, then two studies of its accession; study first, then two orders.
    send(&log, Order::new("C1", "PL1", "ACC1", &["P1"]).event()).await;
    Study::new("1.2.1", "ACC1", "P1").arrive(&log, 1).await;
    Study::new("1.2.2", "ACC1", "P1").arrive(&log, 1).await;
    Study::new("1.2.3", "ACC2", "P1").arrive(&log, 1).await;
    send(&log, Order::new("C2", "PL2", "ACC2", &["P1"]).event()).await;
    send(&log, Order::new("C3", "PL3", "ACC2", &["P1"]).event()).await;
    // And the mixed case: a matched study still meets a later order of its accession.
    Study::new("1.2.4", "ACC1", "P1").arrive(&log, 1).await;
    send(&log, Order::new("C4", "PL4", "ACC1", &["P1"]).event()).await;
    let h = History::read(&log);
    let expected: BTreeSet<_> = [
        pair("1.2.1", "PL1"),
        pair("1.2.2", "PL1"),
        pair("1.2.4", "PL1"),
        pair("1.2.3", "PL2"),
        pair("1.2.3", "PL3"),
        pair("1.2.1", "PL4"),
        pair("1.2.2", "PL4"),
        pair("1.2.4", "PL4"),
    ]
    .into();
    assert_eq!(h.pairs(), expected);
    assert_eq!(h.matches.len(), expected.len(), "each pair once: {:?}", h.matches);
    assert_eq!(h.message_matched, expected.len());
}

#[tokio::test]
async fn a_pair_is_recorded_once_across_re_sent_messages_re_completions_and_restarts() {
    let (dir, clock, log) = start();
    let order = Order::new("C1", "PL1", "ACC1", &["P1"]);
    send(&log, order.event()).await;
    let study = Study::new("1.2.1", "ACC1", "P1");
    study.arrive(&log, 1).await;
    assert!(matches!(send(&log, order.event()).await, Hl7Outcome::Duplicate { .. }), "the same message again");
    log.close().await.unwrap();

    let log = open(dir.path(), &clock);
    assert!(matches!(send(&log, order.event()).await, Hl7Outcome::Duplicate { .. }), "and after a restart");
    // The sender re-sends the order under a new control id: a known placer number is the same order.
    send(&log, Order { control_id: "C1-again", ..Order::new("C1", "PL1", "ACC1", &["P1"]) }.event()).await;
    // More instances after completion complete the study again (revision 2).
    crate::domain::record_instance(&log.handle(), study.instance(2)).await.unwrap();
    assert!(matches!(study.complete(&log).await, CompletionOutcome::Completed { revision: 2, .. }));
    let h = History::read(&log);
    assert_eq!(h.matches, [pair("1.2.1", "PL1")]);
    assert_eq!(h.cases.len(), 1, "a re-completion does not open another case");
}

#[tokio::test]
async fn a_study_completed_again_keeps_waiting_since_its_first_completion() {
    let (_dir, clock, log) = start();
    let study = Study::new("1.2.1", "ACC1", "P1");
    study.arrive(&log, 1).await;
    let first = clock.now();
    clock.advance(Duration::from_secs(3600));
    crate::domain::record_instance(&log.handle(), study.instance(2)).await.unwrap();
    assert!(matches!(study.complete(&log).await, CompletionOutcome::Completed { revision: 2, .. }));
    let waiting = views::unmatched_studies(&log.reader(), &waiting_query(&clock)).unwrap().items;
    assert_eq!(
        waiting.iter().map(|w| (w.study_instance_uid.as_str(), w.waiting_since)).collect::<Vec<_>>(),
        [("1.2.1", first)]
    );
    assert_eq!(waiting[0].age_seconds, 3600);
}

#[tokio::test]
async fn a_projection_behind_the_log_is_rebuilt_when_the_log_opens() {
    let (dir, clock, log) = start();
    send(&log, Order::new("C1", "PL1", "ACC1", &["P1"]).event()).await;
    Study::new("1.2.1", "ACC1", "P1").arrive(&log, 1).await;
    let head = log.reader().latest_seq().unwrap();
    log.close().await.unwrap();
    let path = dir.path().join("zenedge.redb");
    let db = crate::projections::rebuild::open(&path, &crate::domain::test_support::site(), 1 << 20).unwrap();
    assert!(crate::projections::rebuild::behind(&db, head).unwrap().is_empty(), "every checkpoint at the head");
    let before = crate::projections::rebuild::digest(&db).unwrap();
    // As after an upgrade that added the matching projections: empty, checkpoint absent.
    let txn = db.begin_write().unwrap();
    txn.delete_table(crate::projections::tables::MATCHES).unwrap();
    txn.open_table(crate::projections::tables::MATCHES).unwrap();
    txn.open_table(crate::projections::tables::CHECKPOINTS).unwrap().remove("matches").unwrap();
    txn.commit().unwrap();
    assert_eq!(crate::projections::rebuild::behind(&db, head).unwrap(), [("matches", 0)]);
    drop(db);

    let log = open(dir.path(), &clock);
    log.close().await.unwrap();
    let db = crate::projections::rebuild::open(&path, &crate::domain::test_support::site(), 1 << 20).unwrap();
    assert_eq!(crate::projections::rebuild::digest(&db).unwrap(), before);
    assert!(crate::projections::rebuild::behind(&db, head).unwrap().is_empty());
}
