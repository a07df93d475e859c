//! Property: for a generated workload (orders with accession corrections, changes, cancels
//! and re-sends, studies with re-completions and duplicate instances, merges, restarts),
//! every arrival order ends with the same pairs holding, cancels and cases, never records a
//! pair twice, and leaves projections that a replay of the log reproduces exactly.

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
    let id =
        if s.prior_id && w.merged.contains(&s.patient) { format!("OLD{}", s.patient) } else { patient_id(s.patient) };
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
                send(&log, crate::domain::test_support::hl7(&raw)).await;
            }
            Step::Study(i, n) => {
                let s = study(w, i);
                crate::domain::record_instance(&log.handle(), s.instance(n)).await.unwrap();
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
        &crate::domain::test_support::site(),
        1 << 20,
    )
    .unwrap();
    let differences =
        crate::projections::rebuild::verify(&db, &crate::domain::test_support::site(), |_, _| {}).unwrap();
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
