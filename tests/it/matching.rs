//! Matching and patient cases through the real listeners, under concurrency: decisions are
//! taken by the single writer, so racing inputs cannot pair twice or open two cases.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::dataset::Instance;
use crate::support::hl7msg::{ack_code, orm};
use crate::support::scu::store_all;
use crate::support::{TestDaemon, eventually};

const FAST: &str = "[dicom]\nstable_after = \"50ms\"\n";

fn count(events: &[serde_json::Value], kind: &str) -> usize {
    events.iter().filter(|e| e["event_type"] == kind).count()
}

/// Polls the log until `done` holds for its events (fails after 60 s).
async fn until(d: &TestDaemon, done: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
    eventually("the events the test expects", Duration::from_secs(60), || async {
        let events = d.events().await;
        done(&events).then_some(events)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_on_many_connections_racing_completing_studies_pair_exactly_once() {
    const STUDIES: u32 = 24;
    const CONNECTIONS: u32 = 6;
    let d = TestDaemon::start_with(FAST).await;
    let dicom = d.dicom;
    // Half the studies go first, the orders race the other half.
    let early: Vec<Instance> = (0..STUDIES / 2).map(|s| Instance::ct(100 + s, 1, 1)).collect();
    store_all(dicom, early).await;
    let mut senders = Vec::new();
    for c in 0..CONNECTIONS {
        let mut client = d.client().await;
        senders.push(tokio::spawn(async move {
            for s in (c..STUDIES).step_by(CONNECTIONS as usize) {
                let ack = client.send(&orm(&format!("RACE-{s}"), &format!("ACC-{}", 100 + s))).await;
                assert_eq!(ack_code(&ack), "AA");
            }
        }));
    }
    let late = tokio::spawn(async move {
        let mut associations = Vec::new();
        for half in 0..2 {
            let instances: Vec<Instance> =
                (STUDIES / 2..STUDIES).filter(|s| s % 2 == half).map(|s| Instance::ct(100 + s, 1, 1)).collect();
            associations.push(tokio::spawn(store_all(dicom, instances)));
        }
        for a in associations {
            a.await.unwrap();
        }
    });
    for s in senders {
        s.await.unwrap();
    }
    late.await.unwrap();

    let events =
        until(&d, |e| count(e, "StudyMatched") >= STUDIES as usize && count(e, "StudyCompleted") >= STUDIES as usize)
            .await;
    let mut pairs: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in events.iter().filter(|e| e["event_type"] == "StudyMatched") {
        let key = (
            e["data"]["study_instance_uid"].as_str().unwrap().to_owned(),
            e["data"]["accession_number"].as_str().unwrap().to_owned(),
        );
        *pairs.entry(key).or_default() += 1;
    }
    assert_eq!(pairs.len(), STUDIES as usize, "{pairs:?}");
    assert!(pairs.values().all(|n| *n == 1), "a pair recorded twice: {pairs:?}");
    for kind in ["HL7MessageMatched", "OrderCreated"] {
        assert_eq!(count(&events, kind), STUDIES as usize, "{kind}");
    }
    // Re-sent orders after a restart pair nothing again.
    let d = d.restart().await;
    let mut client = d.client().await;
    for s in 0..STUDIES {
        client.send(&orm(&format!("RACE-{s}"), &format!("ACC-{}", 100 + s))).await;
    }
    assert_eq!(count(&d.events().await, "StudyMatched"), STUDIES as usize);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn studies_of_one_patient_arriving_at_once_on_many_associations_make_one_case() {
    const STUDIES: u32 = 12;
    let d = TestDaemon::start_with(FAST).await;
    let dicom = d.dicom;
    let mut associations = Vec::new();
    for s in 0..STUDIES {
        let mut i = Instance::ct(200 + s, 1, 1);
        i.patient_id = "PAT-ONE".into();
        associations.push(tokio::spawn(store_all(dicom, vec![i])));
    }
    for a in associations {
        a.await.unwrap();
    }
    let events = until(&d, |e| count(e, "StudyCompleted") >= STUDIES as usize).await;
    assert_eq!(count(&events, "PatientCaseCreated"), 1);
    assert_eq!(count(&events, "PatientCaseConsolidated"), STUDIES as usize - 1);
    d.stop().await.unwrap();
}
