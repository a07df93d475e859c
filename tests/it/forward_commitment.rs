//! Storage Commitment against a real archive (Orthanc, which answers an N-ACTION with an
//! N-EVENT-REPORT on an association of its own to the edge's SCP): with `confirm =
//! "commitment"` the stores are not confirmations; the archive's report is, recorded as
//! `InstancesCommitted`, and only then does the study's view show the instances confirmed.
//! Skipped (with the reason printed) when Orthanc is not installed.

use std::time::Duration;

use crate::support::dataset::Instance;
use crate::support::orthanc::Orthanc;
use crate::support::scu::store_all;
use crate::support::{TestDaemon, eventually};

fn destination(o: &Orthanc) -> String {
    format!(
        "[[forward.destinations]]\nname = \"central\"\nhost = \"127.0.0.1\"\nport = {port}\ncalled_ae = \"{aet}\"\n\
         confirm = \"commitment\"\ncommitment_timeout = \"3s\"\nretry_base = \"50ms\"\nretry_cap = \"300ms\"\n\
         timeout = \"5s\"\n",
        port = o.dicom,
        aet = o.aet,
    )
}

/// Orthanc knows the edge as a modality, so that it can send the report back.
fn knowing_the_edge(d: &TestDaemon) -> serde_json::Value {
    serde_json::json!({
        "DicomModalities": {
            "edge": { "AET": "ZENEDGE", "Host": "127.0.0.1", "Port": d.dicom.port(), "AllowStorageCommitment": true }
        }
    })
}

fn of_type<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["event_type"] == kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archives_commitment_report_confirms_what_it_stored() {
    let Some(mut orthanc) = Orthanc::start().await else { return };
    let d = TestDaemon::start_with(&destination(&orthanc)).await;
    orthanc.restart_with(knowing_the_edge(&d)).await;
    let instances: Vec<Instance> = (1..=3).map(|n| Instance::ct(81, 1, n)).collect();
    store_all(d.dicom, instances.clone()).await;
    // Each round's stored instances of a study form one transaction; the rounds may split
    // the three.
    let committed_seqs = |events: &[serde_json::Value]| -> Vec<u64> {
        let mut seqs: Vec<u64> = of_type(events, "InstancesCommitted")
            .iter()
            .flat_map(|c| {
                c["data"]["committed"].as_array().unwrap().iter().map(|i| i["instance_seq"].as_u64().unwrap())
            })
            .collect();
        seqs.sort_unstable();
        seqs
    };
    let events = eventually("the archive's reports recorded for all three", Duration::from_secs(60), || async {
        let events = d.events().await;
        (committed_seqs(&events).len() == 3).then_some(events)
    })
    .await;
    let stored: Vec<u64> = of_type(&events, "InstanceStored").iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(committed_seqs(&events), stored, "every stored instance committed, once");

    let forwarded = of_type(&events, "InstanceForwarded");
    assert_eq!(forwarded.len(), 3, "{forwarded:?}");
    for f in &forwarded {
        assert_eq!(f["data"]["status"], "stored", "{f}");
        assert_eq!(f["data"]["confirmed"], false, "the store alone is no confirmation: {f}");
        let transaction = f["data"]["commitment_transaction_uid"].as_str().expect("a transaction");
        let report = of_type(&events, "InstancesCommitted")
            .into_iter()
            .find(|c| c["data"]["transaction_uid"] == transaction)
            .unwrap_or_else(|| panic!("no report for {transaction}"));
        let c = &report["data"];
        assert_eq!(c["destination"], "central");
        assert_eq!(c["study_instance_uid"], instances[0].study.as_str());
        assert!(c["committed"].as_array().unwrap().iter().any(|i| i["instance_seq"] == f["data"]["instance_seq"]));
        assert!(c["failed"].as_array().is_none_or(Vec::is_empty), "{c}");
        assert!(report["seq"].as_u64() > f["seq"].as_u64(), "the report follows the request");
    }

    let view = d.get(&format!("/api/v1/studies/{}", instances[0].study)).await.json();
    for i in view["series"][0]["instances"].as_array().unwrap() {
        assert_eq!(i["forwarded"][0]["confirmed"], true, "{i}");
    }
    eventually("nothing pending any more", Duration::from_secs(30), || async {
        d.get("/readyz").await.json()["checks"]["forward"][0]["commitments_pending"] == 0
    })
    .await;
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_that_never_came_is_asked_for_again_and_then_recorded() {
    let Some(mut orthanc) = Orthanc::start().await else { return };
    // Orthanc does not know the edge yet: it cannot send the report back.
    let d = TestDaemon::start_with(&destination(&orthanc)).await;
    store_all(d.dicom, vec![Instance::ct(82, 1, 1)]).await;
    eventually("the request pending", Duration::from_secs(30), || async {
        d.get("/readyz").await.json()["checks"]["forward"][0]["commitments_pending"] == 1
    })
    .await;
    assert!(of_type(&d.events().await, "InstancesCommitted").is_empty());
    // Now it knows the edge; the request is asked again after commitment_timeout (3 s).
    orthanc.restart_with(knowing_the_edge(&d)).await;
    eventually("the report of the request asked again", Duration::from_secs(60), || async {
        of_type(&d.events().await, "InstancesCommitted").len() == 1
    })
    .await;
    eventually("nothing pending any more", Duration::from_secs(30), || async {
        d.get("/readyz").await.json()["checks"]["forward"][0]["commitments_pending"] == 0
    })
    .await;
    d.stop().await.unwrap();
}

#[tokio::test]
async fn a_report_for_no_pending_request_or_from_another_ae_is_refused_and_recorded_nowhere() {
    // The destination is away (nothing listens): its request stays pending.
    let away = "[[forward.destinations]]\nname = \"central\"\nhost = \"127.0.0.1\"\nport = 9\ncalled_ae = \"ARCHIVE\"\n\
                confirm = \"commitment\"\nretry_base = \"50ms\"\nretry_cap = \"100ms\"\n";
    let d = TestDaemon::start_with(away).await;
    let commitment = "1.2.840.10008.1.20.1";
    let report = |calling: &'static str, transaction: &'static str| {
        let addr = d.dicom;
        tokio::task::spawn_blocking(move || {
            let mut scu =
                crate::support::scu::connect(addr, calling, "ZENEDGE", &[(commitment, &["1.2.840.10008.1.2"])], 16_384)
                    .expect("the SCP takes Storage Commitment reports");
            let refs = [zenedge::dicom::commitment::Reference {
                sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
                sop_instance_uid: "1.2.3.4".into(),
            }];
            let answer = scu.event_report(1, &zenedge::dicom::commitment::action_data_set(transaction, &refs));
            scu.release();
            answer.status
        })
    };
    assert_eq!(report("ARCHIVE", "2.25.1").await.unwrap(), 0x0115, "no request with that transaction");
    assert!(of_type(&d.events().await, "InstancesCommitted").is_empty());
    d.stop().await.unwrap();
}
