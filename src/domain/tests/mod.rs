//! The domain's decisions (matching, order changes, merges, patient cases), taken through its
//! requests to the writer and read back from the events they recorded: [`matching`] pairs,
//! [`changes`] to orders and their accession numbers, patient [`cases`] and merges, and the
//! [`arrival_order`] property.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::domain::test_support::{self, Order, Study, TestClock, hl7, merge, options};
use crate::domain::{CompletionOutcome, Hl7Outcome};
use crate::events::{Event, NewEvent};
use crate::log::{Log, LogOptions};
use crate::projections::{Projections, views};

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
    crate::domain::hl7::store(&log.handle(), event).await.unwrap()
}

/// Replays the log of the closed database in `dir` and compares with its projections.
fn assert_replay_equals_projections(dir: &std::path::Path) {
    let site = crate::domain::test_support::site();
    let db = crate::projections::rebuild::open(&dir.join("zenedge.redb"), &site, 1 << 20).unwrap();
    let differences = crate::projections::rebuild::verify(&db, &site, |_, _| {}).unwrap();
    assert!(differences.is_empty(), "projections differ from a replay: {differences:?}");
}

fn waiting_query(clock: &TestClock) -> views::WaitingQuery {
    views::WaitingQuery { now: clock.now(), older_than: None, after: None, limit: 100 }
}

mod arrival_order;
mod cases;
mod changes;
mod matching;
mod worklist;
