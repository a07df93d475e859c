//! The writer's decisions (matching, order changes, merges, patient cases), read back from
//! the events they recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::test_support::{self, Order, Study, TestClock, hl7, merge, options};
use super::*;
use crate::events::Event;
use crate::events::NewEvent;
use crate::projections::Projections;
use crate::projections::views;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn open(dir: &std::path::Path, clock: &TestClock) -> Log<Projections> {
    let options = LogOptions { clock: clock.clock(), ..options(dir) };
    test_support::open(&options, Arc::new(crate::telemetry::Metrics::new())).unwrap()
}

fn start() -> (tempfile::TempDir, TestClock, Log<Projections>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2026-05-01T08:00:00Z".parse().unwrap());
    let log = open(dir.path(), &clock);
    (dir, clock, log)
}

/// The decisions as the log records them, with orders named by their placer numbers.
#[derive(Debug, Default, PartialEq, Eq)]
struct History {
    /// `(study, placer)` for every `StudyMatched`, in log order.
    matches: Vec<(String, String)>,
    /// Placer numbers of orders an `OrderCancelled` or a cancelling `HL7MessageUpdated` hit.
    cancelled: BTreeSet<String>,
    /// `(placer, field, new value)` of every `OrderUpdated`.
    order_updates: Vec<(String, String, Option<String>)>,
    /// `(placer, field, new value)` of every `HL7MessageUpdated`.
    message_updates: Vec<(String, String, Option<String>)>,
    /// `OrderCreated`: placer → patient case.
    created: BTreeMap<String, Option<String>>,
    /// `HL7MessageMatched` count.
    message_matched: usize,
    /// `(study, placer, reason)` for every `StudyUnmatched`, in log order.
    unmatched: Vec<(String, String, String)>,
    /// `(study, placer)` of the pairs that hold: matched and not unmatched since.
    holding: BTreeSet<(String, String)>,
    /// Case id → its studies, in the order they joined.
    cases: BTreeMap<String, Vec<String>>,
    /// Case id → its latest class.
    classes: BTreeMap<String, String>,
    merges: usize,
}

impl History {
    fn read(log: &Log<Projections>) -> History {
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let page = crate::events::after(&log.reader(), after, 1000).unwrap();
            events.extend(page.items);
            match page.next {
                Some(next) => after = next,
                None => break,
            }
        }
        let mut placers = BTreeMap::new();
        for e in &events {
            if let Event::Hl7MessageReceived(m) = &e.event {
                for (i, o) in m.summary.orders.iter().enumerate() {
                    placers.insert(format!("{}:{i}", e.event_id), o.placer_order_number.clone().unwrap_or_default());
                }
            }
        }
        let placer = |order_id: &str| placers[order_id].clone();
        let mut h = History::default();
        for e in &events {
            match &e.event {
                Event::StudyMatched(m) => {
                    h.matches.push((m.study_instance_uid.clone(), placer(&m.order_id)));
                    h.holding.insert((m.study_instance_uid.clone(), placer(&m.order_id)));
                }
                Event::Hl7MessageMatched(_) => h.message_matched += 1,
                Event::StudyUnmatched(u) => {
                    h.unmatched.push((u.study_instance_uid.clone(), placer(&u.order_id), u.reason.clone()));
                    h.holding.remove(&(u.study_instance_uid.clone(), placer(&u.order_id)));
                }
                Event::OrderCreated(c) => {
                    h.created.insert(placer(&c.order_id), c.patient_case_id.clone());
                }
                Event::OrderCancelled(c) => {
                    h.cancelled.insert(placer(&c.order_id));
                }
                Event::Hl7MessageUpdated(u) => {
                    if u.cancelled {
                        h.cancelled.insert(placer(&u.order_id));
                    }
                    for c in &u.changes {
                        h.message_updates.push((placer(&u.order_id), c.field.clone(), c.new.clone()));
                    }
                }
                Event::OrderUpdated(u) => {
                    for c in &u.changes {
                        h.order_updates.push((placer(&u.order_id), c.field.clone(), c.new.clone()));
                    }
                }
                Event::PatientCaseCreated(c) => {
                    h.cases.insert(c.case_id.clone(), vec![c.study_instance_uid.clone()]);
                }
                Event::PatientCaseConsolidated(c) => h
                    .cases
                    .get_mut(&c.case_id)
                    .expect("consolidated into a known case")
                    .push(c.study_instance_uid.clone()),
                Event::PatientCaseClassified(c) => {
                    h.classes.insert(c.case_id.clone(), c.new_class.clone());
                }
                Event::PatientsMerged(_) => h.merges += 1,
                _ => {}
            }
        }
        h
    }

    fn pairs(&self) -> BTreeSet<(String, String)> {
        self.matches.iter().cloned().collect()
    }

    /// The case holding `study`.
    fn case_of(&self, study: &str) -> Option<&String> {
        self.cases.iter().find(|(_, studies)| studies.iter().any(|s| s == study)).map(|(id, _)| id)
    }

    /// The studies of each case, as a set of sets (case ids are random).
    fn partition(&self) -> BTreeSet<BTreeSet<String>> {
        self.cases.values().map(|s| s.iter().cloned().collect()).collect()
    }
}

fn pair(study: &str, placer: &str) -> (String, String) {
    (study.to_owned(), placer.to_owned())
}

async fn send(log: &Log<Projections>, event: NewEvent) -> Hl7Outcome {
    log.handle().append_hl7(event).await.unwrap()
}

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
    log.handle().append_instance(study.instance(2)).await.unwrap();
    assert!(matches!(study.complete(&log).await, CompletionOutcome::Completed { revision: 2, .. }));
    let h = History::read(&log);
    assert_eq!(h.matches, [pair("1.2.1", "PL1")]);
    assert_eq!(h.cases.len(), 1, "a re-completion does not open another case");
}

#[tokio::test]
async fn order_changes_update_the_order_and_once_matched_append_order_updated() {
    let (_dir, _clock, log) = start();
    send(&log, Order::new("C1", "PL1", "ACC1", &["P1"]).event()).await;
    let xo = |id, status, info, class| Order {
        control: "XO",
        status,
        clinical_info: info,
        class,
        ..Order::new(id, "PL1", "ACC1", &["P1"])
    };
    send(&log, xo("C2", "IP", "Headache", "O").event()).await;
    let h = History::read(&log);
    assert_eq!(h.message_updates, [("PL1".into(), "order_status".into(), Some("IP".into()))]);
    assert!(h.order_updates.is_empty(), "not matched yet: only the HL7 message changed");

    Study::new("1.2.1", "ACC1", "P1").arrive(&log, 1).await;
    send(&log, xo("C3", "CM", "Headache, nausea", "I").event()).await;
    let h = History::read(&log);
    assert_eq!(
        h.order_updates,
        [
            ("PL1".into(), "order_status".into(), Some("CM".into())),
            ("PL1".into(), "clinical_info".into(), Some("Headache, nausea".into())),
            ("PL1".into(), "patient_class".into(), Some("I".into())),
        ]
    );
    let case = h.case_of("1.2.1").unwrap();
    assert_eq!(h.classes[case], "I", "the new patient class reclassifies the case");
    // The same values again change nothing.
    send(&log, xo("C4", "CM", "Headache, nausea", "I").event()).await;
    assert_eq!(History::read(&log).order_updates.len(), 3);
}

#[tokio::test]
async fn a_cancelled_order_stops_waiting_and_a_matched_one_is_cancelled_by_event() {
    let (_dir, _clock, log) = start();
    let cancel = |id, placer, acc| Order { control: "CA", status: "CA", ..Order::new(id, placer, acc, &["P1"]) };
    send(&log, Order::new("C1", "PL1", "ACC1", &["P1"]).event()).await;
    send(&log, cancel("C2", "PL1", "ACC1").event()).await;
    Study::new("1.2.1", "ACC1", "P1").arrive(&log, 1).await;
    let h = History::read(&log);
    assert!(h.matches.is_empty(), "a cancelled order matches nothing");
    assert_eq!(h.cancelled, ["PL1".to_owned()].into());

    send(&log, Order::new("C3", "PL2", "ACC2", &["P1"]).event()).await;
    Study::new("1.2.2", "ACC2", "P1").arrive(&log, 1).await;
    send(&log, cancel("C4", "PL2", "ACC2").event()).await;
    let kinds: Vec<_> =
        crate::events::after(&log.reader(), 0, 1000).unwrap().items.iter().map(|e| e.event.event_type()).collect();
    assert_eq!(kinds.last(), Some(&"OrderCancelled"), "{kinds:?}");
    // A study of a cancelled order's accession completing later is not paired with it.
    Study::new("1.2.3", "ACC2", "P1").arrive(&log, 1).await;
    assert_eq!(History::read(&log).matches, [pair("1.2.2", "PL2")]);
}

/// A report feed's ORU^R01: an ORC before the first OBR only; each group's placer number in
/// OBR-2 (`placers`), its accession in OBR-3 and its procedure in OBR-4.
fn multi_group_report(control_id: &str, placers: [&str; 2]) -> String {
    format!(
        "MSH|^~\\&|RADRPT|HOSP|ZENEDGE|EDGE|20261123120000||ORU^R01|{control_id}|P|2.4\r\
         PID|1||P1^^^HOSP^MR||Doe^Jane\r\
         ORC|RE|{p0}|ACC-71||CM\r\
         OBR|1|{p0}|ACC-71|CTCHEST^CT Chest^L|||20261123110000|||||||||||||||||CT|F\r\
         OBX|1|TX|GDT^Report||Chest normal||||||F\r\
         OBR|2|{p1}|ACC-72|CTABD^CT Abdomen^L|||20261123111500|||||||||||||||||MR|F\r\
         OBX|1|TX|GDT^Report||Abdomen normal||||||F\r",
        p0 = placers[0],
        p1 = placers[1],
    )
}

#[tokio::test]
async fn each_order_group_is_its_own_order_and_a_re_sent_message_changes_none_of_them() {
    for placers in [["PL-71", "PL-72"], ["PL-7", "PL-7"]] {
        let (_dir, _clock, log) = start();
        send(&log, hl7(&multi_group_report("R1", placers))).await;
        // The same report again under a new control id (as after a correction elsewhere).
        send(&log, hl7(&multi_group_report("R2", placers))).await;
        Study::new("1.2.71", "ACC-71", "P1").arrive(&log, 1).await;
        Study { modality: "MR".into(), ..Study::new("1.2.72", "ACC-72", "P1") }.arrive(&log, 1).await;
        let h = History::read(&log);
        assert_eq!(h.message_updates, [], "{placers:?}: a re-send changes nothing");
        assert_eq!(h.matches.len(), 2, "{placers:?}: {:?}", h.matches);
        let events = crate::events::after(&log.reader(), 0, 1000).unwrap().items;
        let created: BTreeSet<_> = events
            .iter()
            .filter_map(|e| match &e.event {
                Event::OrderCreated(c) => Some((c.study_instance_uid.clone(), c.order_id.clone(), c.modality.clone())),
                _ => None,
            })
            .collect();
        let orders: BTreeSet<_> = created.iter().map(|(_, order, _)| order.clone()).collect();
        assert_eq!(orders.len(), 2, "{placers:?}: one order per group: {created:?}");
        let modalities: BTreeSet<_> = created.iter().map(|(study, _, m)| (study.clone(), m.clone())).collect();
        let expected = [("1.2.71".to_owned(), Some("CT".to_owned())), ("1.2.72".to_owned(), Some("MR".to_owned()))];
        assert_eq!(modalities, expected.into(), "{placers:?}: each study met its own group");
    }
}

/// Replays the log of the closed database in `dir` and compares with its projections.
fn assert_replay_equals_projections(dir: &std::path::Path) {
    let site = super::test_support::site();
    let db = crate::projections::rebuild::open(&dir.join("zenedge.redb"), &site, 1 << 20).unwrap();
    let differences = crate::projections::rebuild::verify(&db, &site, |_, _| {}).unwrap();
    assert!(differences.is_empty(), "projections differ from a replay: {differences:?}");
}

fn waiting_query(clock: &TestClock) -> views::WaitingQuery {
    views::WaitingQuery { now: clock.now(), older_than: None, after: None, limit: 100 }
}

#[tokio::test]
async fn a_corrected_accession_undoes_the_old_pair_and_meets_the_studies_of_the_new_one() {
    let (dir, clock, log) = start();
    send(&log, Order::new("C1", "PL1", "ACC-OLD", &["P1"]).event()).await;
    Study::new("1.2.1", "ACC-OLD", "P1").arrive(&log, 1).await;
    let old_study_completed = clock.now();
    clock.advance(Duration::from_secs(60));
    Study::new("1.2.2", "ACC-NEW", "P1").arrive(&log, 1).await;
    clock.advance(Duration::from_secs(60));
    // The RIS corrects OBR-18 by sending the order again under its placer number.
    send(&log, Order::new("C2", "PL1", "ACC-NEW", &["P1"]).event()).await;
    let h = History::read(&log);
    assert_eq!(h.matches, [pair("1.2.1", "PL1"), pair("1.2.2", "PL1")]);
    assert_eq!(h.unmatched, [("1.2.1".into(), "PL1".into(), "accession_changed".into())]);
    assert_eq!(h.message_updates, [("PL1".into(), "accession_number".into(), Some("ACC-NEW".into()))]);
    assert_eq!(h.order_updates, h.message_updates, "the order was matched: OrderUpdated says so too");

    let reader = log.reader();
    let found = |acc: &str| {
        let hits = views::search_orders(&reader, &views::Search::Accession(acc.into())).unwrap().items;
        hits.into_iter().map(|o| (o.accession_number, o.studies.len())).collect::<Vec<_>>()
    };
    assert_eq!(found("ACC-NEW"), [("ACC-NEW".to_owned(), 1)]);
    assert_eq!(found("ACC-OLD"), []);
    let order_id =
        views::search_orders(&reader, &views::Search::Accession("ACC-NEW".into())).unwrap().items[0].order_id.clone();
    let order = views::order(&reader, &order_id).unwrap().unwrap();
    assert_eq!(order.studies.iter().map(|s| s.study_instance_uid.as_str()).collect::<Vec<_>>(), ["1.2.2"]);
    let matches = views::matches(&reader, &views::MatchQuery { after: 0, limit: 10, accession: None }).unwrap().items;
    assert_eq!(matches.iter().map(|m| m.study_instance_uid.as_str()).collect::<Vec<_>>(), ["1.2.2"]);
    let waiting = views::unmatched_studies(&reader, &waiting_query(&clock)).unwrap().items;
    assert_eq!(waiting.iter().map(|w| w.study_instance_uid.as_str()).collect::<Vec<_>>(), ["1.2.1"]);
    assert_eq!(waiting[0].waiting_since, old_study_completed, "it waits again since its first completion");
    assert!(views::unmatched_orders(&reader, &waiting_query(&clock)).unwrap().items.is_empty());

    // An XO to an accession no study has yet: the order waits under it, since its receipt.
    send(&log, Order { control: "XO", ..Order::new("C3", "PL1", "ACC-LATER", &["P1"]) }.event()).await;
    assert_eq!(found("ACC-LATER"), [("ACC-LATER".to_owned(), 0)]);
    let waiting = views::unmatched_orders(&reader, &waiting_query(&clock)).unwrap().items;
    assert_eq!(waiting.iter().map(|w| w.accession_number.as_str()).collect::<Vec<_>>(), ["ACC-LATER"]);
    assert_eq!(Some(waiting[0].waiting_since), Some(order.received_at));
    Study::new("1.2.3", "ACC-LATER", "P1").arrive(&log, 1).await;
    let h = History::read(&log);
    assert_eq!(h.matches.last(), Some(&pair("1.2.3", "PL1")));
    assert_eq!(h.unmatched.len(), 2, "{:?}", h.unmatched);
    drop(reader);
    log.close().await.unwrap();
    assert_replay_equals_projections(dir.path());
}

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
async fn a_study_completed_again_keeps_waiting_since_its_first_completion() {
    let (_dir, clock, log) = start();
    let study = Study::new("1.2.1", "ACC1", "P1");
    study.arrive(&log, 1).await;
    let first = clock.now();
    clock.advance(Duration::from_secs(3600));
    log.handle().append_instance(study.instance(2)).await.unwrap();
    assert!(matches!(study.complete(&log).await, CompletionOutcome::Completed { revision: 2, .. }));
    let waiting = views::unmatched_studies(&log.reader(), &waiting_query(&clock)).unwrap().items;
    assert_eq!(
        waiting.iter().map(|w| (w.study_instance_uid.as_str(), w.waiting_since)).collect::<Vec<_>>(),
        [("1.2.1", first)]
    );
    assert_eq!(waiting[0].age_seconds, 3600);
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
        log.handle().append_instance(s.instance(1)).await.unwrap();
    }
    let pending = views::pending_studies(&log.reader()).unwrap();
    let mut tasks = Vec::new();
    for p in pending {
        let handle = log.handle();
        tasks.push(tokio::spawn(async move {
            handle.complete_study(p.study_instance_uid, p.last_instance_seq, test_support::DAY).await
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap().unwrap(), CompletionOutcome::Completed { .. }));
    }
    let h = History::read(&log);
    assert_eq!(h.cases.len(), 1, "{:?}", h.cases);
    assert_eq!(h.cases.values().next().unwrap().len(), studies.len());
}

#[tokio::test]
async fn a_projection_behind_the_log_is_rebuilt_when_the_log_opens() {
    let (dir, clock, log) = start();
    send(&log, Order::new("C1", "PL1", "ACC1", &["P1"]).event()).await;
    Study::new("1.2.1", "ACC1", "P1").arrive(&log, 1).await;
    let head = log.reader().latest_seq().unwrap();
    log.close().await.unwrap();
    let path = dir.path().join("zenedge.redb");
    let db = crate::projections::rebuild::open(&path, &super::test_support::site(), 1 << 20).unwrap();
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
    let db = crate::projections::rebuild::open(&path, &super::test_support::site(), 1 << 20).unwrap();
    assert_eq!(crate::projections::rebuild::digest(&db).unwrap(), before);
    assert!(crate::projections::rebuild::behind(&db, head).unwrap().is_empty());
}

/// Property: for a generated workload (orders with accession corrections, changes, cancels
/// and re-sends, studies with re-completions and duplicate instances, merges, restarts),
/// every arrival order ends with the same pairs holding, cancels and cases, never records a
/// pair twice, and leaves projections that a replay of the log reproduces exactly.
mod arrival_order {
    use proptest::prelude::*;

    use super::*;

    /// One order's messages, in the order its sender sends them.
    #[derive(Debug, Clone)]
    struct OrderSpec {
        patient: usize,
        accession: usize,
        change: bool,
        cancel: bool,
        resend: bool,
        /// The RIS corrects the accession (a new `NW` with the same placer number) to another
        /// accession of the same patient (`ACC0` and `ACC3` are both patient 0's); later
        /// messages carry the corrected one.
        correct: bool,
    }

    #[derive(Debug, Clone)]
    struct StudySpec {
        patient: usize,
        /// `None`: no accession number.
        accession: Option<usize>,
        mr: bool,
        /// Listed under the patient's prior id (merged patients only).
        prior_id: bool,
        insurance_id: bool,
        again: bool,
    }

    #[derive(Debug, Clone)]
    struct Workload {
        orders: Vec<OrderSpec>,
        studies: Vec<StudySpec>,
        /// Patients merged from a prior id before anything else arrives.
        merged: Vec<usize>,
        restarts: usize,
    }

    const PATIENTS: usize = 3;
    const ACCESSIONS: usize = 4;

    fn workload() -> impl Strategy<Value = Workload> {
        // An accession number belongs to one patient.
        let order = (
            0..ACCESSIONS,
            any::<bool>(),
            prop::bool::weighted(0.25),
            prop::bool::weighted(0.3),
            prop::bool::weighted(0.5),
        )
            .prop_map(|(accession, change, cancel, resend, correct)| OrderSpec {
                patient: accession % PATIENTS,
                accession,
                change,
                cancel,
                resend,
                correct: correct && accession % PATIENTS == 0,
            });
        let study = (
            0..PATIENTS,
            prop::option::weighted(0.9, 0..ACCESSIONS),
            prop::bool::weighted(0.3),
            any::<bool>(),
            any::<bool>(),
            prop::bool::weighted(0.3),
        )
            .prop_map(|(patient, accession, mr, prior_id, insurance_id, again)| StudySpec {
                patient: accession.map_or(patient, |a| a % PATIENTS),
                accession,
                mr,
                prior_id,
                insurance_id,
                again,
            });
        (
            prop::collection::vec(order, 1..6),
            prop::collection::vec(study, 1..6),
            prop::collection::btree_set(0..PATIENTS, 0..2),
            0..3usize,
        )
            .prop_map(|(orders, studies, merged, restarts)| Workload {
                orders,
                studies,
                merged: merged.into_iter().collect(),
                restarts,
            })
    }

    /// One step of the arrival sequence.
    #[derive(Debug, Clone)]
    enum Step {
        Hl7(String),
        /// Study index, instance number, then completion.
        Study(usize, u32),
        Restart,
    }

    fn patient_id(p: usize) -> String {
        format!("P{p}")
    }

    fn class(p: usize) -> &'static str {
        ["O", "I", "E"][p % 3]
    }

    fn study(w: &Workload, i: usize) -> Study {
        let s = &w.studies[i];
        let id = if s.prior_id && w.merged.contains(&s.patient) {
            format!("OLD{}", s.patient)
        } else {
            patient_id(s.patient)
        };
        Study {
            modality: if s.mr { "MR".into() } else { "CT".into() },
            other_ids: if s.insurance_id { vec![format!("INS{}", s.patient)] } else { vec![] },
            ..Study::new(&format!("1.2.{i}"), &s.accession.map(|a| format!("ACC{a}")).unwrap_or_default(), &id)
        }
    }

    /// Each sender's messages stay in order (one MLLP connection per sender, one
    /// association per study); the chains interleave as `seed` says.
    fn arrival(w: &Workload, seed: u64) -> Vec<Step> {
        let mut chains: Vec<Vec<Step>> = Vec::new();
        for (i, o) in w.orders.iter().enumerate() {
            let (placer, acc, pid) = (format!("PL{i}"), format!("ACC{}", o.accession), patient_id(o.patient));
            let (ids, control_id) = ([pid.as_str()], format!("N{i}"));
            let nw = Order { class: class(o.patient), ..Order::new(&control_id, &placer, &acc, &ids) };
            let mut chain = vec![Step::Hl7(nw.raw())];
            if o.resend {
                chain.push(Step::Hl7(nw.raw()));
            }
            let (corrected, id) = (format!("ACC{}", ACCESSIONS - 1 - o.accession), format!("R{i}"));
            let nw = if o.correct {
                let nw = Order { control_id: &id, accession: &corrected, ..nw };
                chain.push(Step::Hl7(nw.raw()));
                nw
            } else {
                nw
            };
            if o.change {
                let id = format!("X{i}");
                chain.push(Step::Hl7(
                    Order { control_id: &id, control: "XO", status: "IP", clinical_info: "Worse", ..nw }.raw(),
                ));
            }
            if o.cancel {
                let id = format!("K{i}");
                chain.push(Step::Hl7(Order { control_id: &id, control: "CA", status: "CA", ..nw }.raw()));
            }
            chains.push(chain);
        }
        for (i, s) in w.studies.iter().enumerate() {
            let mut chain = vec![Step::Study(i, 1)];
            if s.again {
                // A duplicate of the first instance, then a new one: a second completion.
                chain.push(Step::Study(i, 1));
                chain.push(Step::Study(i, 2));
            }
            chains.push(chain);
        }
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut steps: Vec<Step> = w.merged.iter().map(|p| Step::Hl7(raw_merge(*p))).collect();
        let mut cursors = vec![0; chains.len()];
        while let Some(c) = {
            let open: Vec<usize> = (0..chains.len()).filter(|&c| cursors[c] < chains[c].len()).collect();
            (!open.is_empty()).then(|| open[rng.usize(..open.len())])
        } {
            steps.push(chains[c][cursors[c]].clone());
            cursors[c] += 1;
        }
        for _ in 0..w.restarts {
            let at = rng.usize(..=steps.len());
            steps.insert(at, Step::Restart);
        }
        steps
    }

    fn raw_merge(p: usize) -> String {
        let Event::Hl7MessageReceived(m) = merge(&format!("M{p}"), &patient_id(p), &format!("OLD{p}")).event else {
            unreachable!()
        };
        String::from_utf8(m.raw).unwrap()
    }

    /// What must not depend on arrival order.
    #[derive(Debug, PartialEq, Eq)]
    struct Outcome {
        /// Pairs that hold (matched, not undone by an accession correction) whose order is
        /// still live.
        live_pairs: BTreeSet<(String, String)>,
        cancelled: BTreeSet<String>,
        cases: BTreeSet<BTreeSet<String>>,
        classes: BTreeSet<(BTreeSet<String>, String)>,
    }

    async fn run(w: &Workload, seed: u64) -> Outcome {
        let dir = tempfile::tempdir().unwrap();
        let clock = TestClock::at("2026-05-01T08:00:00Z".parse().unwrap());
        let mut log = open(dir.path(), &clock);
        for step in arrival(w, seed) {
            match step {
                Step::Hl7(raw) => {
                    send(&log, super::super::test_support::hl7(&raw)).await;
                }
                Step::Study(i, n) => {
                    let s = study(w, i);
                    log.handle().append_instance(s.instance(n)).await.unwrap();
                    s.complete(&log).await;
                }
                Step::Restart => {
                    log.close().await.unwrap();
                    log = open(dir.path(), &clock);
                }
            }
            clock.advance(Duration::from_secs(1));
        }
        let h = History::read(&log);
        assert_eq!(h.matches.len(), h.pairs().len(), "a pair recorded twice: {:?}", h.matches);
        log.close().await.unwrap();

        let db = crate::projections::rebuild::open(
            &dir.path().join("zenedge.redb"),
            &super::super::test_support::site(),
            1 << 20,
        )
        .unwrap();
        let differences =
            crate::projections::rebuild::verify(&db, &super::super::test_support::site(), |_, _| {}).unwrap();
        assert!(differences.is_empty(), "projections differ from a replay: {differences:?}");

        let cases: BTreeMap<&String, BTreeSet<String>> =
            h.cases.iter().map(|(id, s)| (id, s.iter().cloned().collect())).collect();
        let live_pairs: BTreeSet<_> =
            h.holding.iter().filter(|(_, placer)| !h.cancelled.contains(placer)).cloned().collect();
        // A case is classified by its orders; one matched only with orders cancelled later
        // may keep the class they brought, so only cases with a live order are compared.
        let live_case = |studies: &BTreeSet<String>| live_pairs.iter().any(|(s, _)| studies.contains(s));
        Outcome {
            cancelled: h.cancelled.clone(),
            cases: cases.values().cloned().collect(),
            classes: h
                .classes
                .iter()
                .filter(|(id, _)| live_case(&cases[id]))
                .map(|(id, class)| (cases[id].clone(), class.clone()))
                .collect(),
            live_pairs,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn every_arrival_order_records_the_same_pairs_and_cases(w in workload(), a in any::<u64>(), b in any::<u64>()) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (first, second) = runtime.block_on(async { (run(&w, a).await, run(&w, b).await) });
            prop_assert_eq!(first, second);
        }
    }
}
