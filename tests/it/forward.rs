//! Forwarding to a real archive (Orthanc): every instance stored at the edge arrives there
//! with the same data set bytes, each answer is an `InstanceForwarded` event, and with
//! `confirm = "store"` the answer confirms the instance for retention. With the archive away
//! intake goes on and the lag grows; once it is back everything arrives. Skipped (with the
//! reason printed) when Orthanc is not installed.

use std::time::Duration;

use crate::support::dataset::{Instance, dataset, dataset_bytes};
use crate::support::orthanc::Orthanc;
use crate::support::scu::{self, CT_IMAGE_STORAGE, DEFLATED, store_all};
use crate::support::{TestDaemon, eventually};

fn destination(o: &Orthanc) -> String {
    format!(
        "[[forward.destinations]]\nname = \"central\"\nhost = \"127.0.0.1\"\nport = {port}\ncalled_ae = \"{aet}\"\n\
         confirm = \"store\"\nassociations = 2\nretry_base = \"50ms\"\nretry_cap = \"300ms\"\n\
         breaker_failures = 3\nbreaker_open = \"300ms\"\ntimeout = \"5s\"\n",
        port = o.dicom,
        aet = o.aet,
    )
}

fn forwarded(events: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    events.iter().filter(|e| e["event_type"] == "InstanceForwarded").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_instances_arrive_at_the_archive_byte_equal_and_are_confirmed() {
    let Some(orthanc) = Orthanc::start().await else { return };
    let d = TestDaemon::start_with(&destination(&orthanc)).await;
    let instances: Vec<Instance> =
        (1..=3).flat_map(|study| (1..=2).map(move |n| Instance::ct(60 + study, 1, n))).collect();
    store_all(d.dicom, instances.clone()).await;
    eventually("six forwarded", Duration::from_secs(60), || async { forwarded(&d.events().await).len() >= 6 }).await;
    let events = d.events().await;
    for f in forwarded(&events) {
        assert_eq!(
            (f["data"]["status"].as_str(), f["data"]["confirmed"].as_bool()),
            (Some("stored"), Some(true)),
            "{f}"
        );
        assert_eq!(f["data"]["destination"], "central");
    }
    assert_eq!(orthanc.instance_count().await, 6);
    for stored in events.iter().filter(|e| e["event_type"] == "InstanceStored") {
        let sop = stored["data"]["sop_instance_uid"].as_str().unwrap();
        let ours = dataset_bytes(&d.dir.path().join(stored["data"]["file_path"].as_str().unwrap()));
        let id = orthanc.instance_id(sop).await.unwrap_or_else(|| panic!("{sop} is not in the archive"));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), orthanc.get(&format!("/instances/{id}/file")).await).unwrap();
        assert_eq!(dataset_bytes(file.path()), ours, "{sop}: the archive holds the data set as stored");
    }
    let study = &instances[0].study;
    let view = d.get(&format!("/api/v1/studies/{study}")).await.json();
    for i in view["series"][0]["instances"].as_array().unwrap() {
        assert_eq!(i["forwarded"][0]["destination"], "central", "{i}");
        assert_eq!(i["forwarded"][0]["confirmed"], true, "{i}");
    }
    let ready = d.get("/readyz").await.json();
    assert_eq!(ready["checks"]["forward"][0]["name"], "central", "{ready}");
    assert_eq!(ready["checks"]["forward"][0]["stored_total"], 6, "{ready}");
    let metrics = d.get("/metrics").await.body;
    assert!(
        metrics.contains("zenedge_forward_instances_total{destination=\"central\",status=\"stored\"} 6"),
        "{metrics}"
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_archive_away_intake_goes_on_and_everything_arrives_once_it_is_back() {
    let Some(mut orthanc) = Orthanc::start().await else { return };
    let d = TestDaemon::start_with(&destination(&orthanc)).await;
    store_all(d.dicom, vec![Instance::ct(71, 1, 1)]).await;
    eventually("the first forwarded", Duration::from_secs(60), || async { forwarded(&d.events().await).len() == 1 })
        .await;

    orthanc.stop();
    store_all(d.dicom, (1..=3).map(|n| Instance::ct(72, 1, n)).collect()).await;
    let ready =
        eventually("failed rounds and the lag show, and the edge stays ready", Duration::from_secs(60), || async {
            let ready = d.get("/readyz").await;
            let body = ready.json();
            let f = &body["checks"]["forward"][0];
            let shown = f["failures_total"].as_u64() >= Some(1)
                && f["lag_events"].as_u64() >= Some(3)
                && f["lag_instances"] == 3
                && f["lag_seconds"].as_f64() > Some(0.0);
            (ready.status == 200 && shown).then_some(body)
        })
        .await;
    assert!(ready["checks"]["forward"][0]["last_error"].is_string(), "{ready}");
    let stored: u64 = d
        .events()
        .await
        .iter()
        .filter(|e| e["event_type"] == "InstanceStored")
        .skip(1)
        .map(|e| e["data"]["size"].as_u64().unwrap())
        .sum();
    assert_eq!(ready["checks"]["forward"][0]["lag_bytes"], stored, "the three files' bytes: {ready}");
    let metrics = d.get("/metrics").await.body;
    for line in [
        "zenedge_forward_lag_instances{destination=\"central\"} 3",
        &format!("zenedge_forward_lag_bytes{{destination=\"central\"}} {stored}"),
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }
    assert_eq!(forwarded(&d.events().await).len(), 1, "nothing recorded while the archive is away");

    orthanc.resume().await;
    eventually("everything forwarded", Duration::from_secs(60), || async { forwarded(&d.events().await).len() == 4 })
        .await;
    assert_eq!(orthanc.instance_count().await, 4);
    eventually("no lag left", Duration::from_secs(60), || async {
        let status = d.get("/api/v1/status").await.json();
        let f = &status["forward"][0];
        f["lag_instances"] == 0 && f["lag_bytes"] == 0 && f["lag_seconds"] == 0.0
    })
    .await;
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_in_a_syntax_the_archive_refuses_is_recorded_refused_and_the_rest_flows() {
    let Some(orthanc) = Orthanc::start_with(serde_json::json!({"DeflatedTransferSyntaxAccepted": false})).await else {
        return;
    };
    let d = TestDaemon::start_with(&destination(&orthanc)).await;
    let deflated = Instance::ct(81, 1, 1);
    let (addr, sop, data) = (d.dicom, deflated.sop.clone(), dataset(&deflated, DEFLATED));
    let answer = tokio::task::spawn_blocking(move || {
        scu::connect_ct(addr, DEFLATED).store(CT_IMAGE_STORAGE, &sop, &data, 16_000)
    })
    .await
    .unwrap();
    assert_eq!(answer.status, 0, "the edge takes it as sent");
    store_all(d.dicom, vec![Instance::ct(82, 1, 1)]).await;
    eventually("both answered", Duration::from_secs(60), || async { forwarded(&d.events().await).len() == 2 }).await;
    let events = d.events().await;
    let answers: Vec<_> = forwarded(&events)
        .iter()
        .map(|f| {
            (
                f["data"]["sop_instance_uid"].as_str().unwrap().to_owned(),
                f["data"]["status"].clone(),
                f["data"]["confirmed"].clone(),
            )
        })
        .collect();
    assert_eq!(answers[0], (deflated.sop.clone(), "refused".into(), false.into()), "not transcoded: refused");
    assert_eq!(answers[1], (Instance::ct(82, 1, 1).sop, "stored".into(), true.into()), "the next one flows");
    let reason = forwarded(&events)[0]["data"]["answer"].as_str().unwrap().to_owned();
    assert!(reason.contains("1.2.840.10008.1.2.1.99"), "{reason}");
    assert_eq!(orthanc.instance_count().await, 1);
    let ready = d.get("/readyz").await.json();
    assert_eq!(ready["checks"]["forward"][0]["refused_total"], 1, "{ready}");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_a_file_only_after_the_archive_confirmed_it() {
    let Some(mut orthanc) = Orthanc::start().await else { return };
    let extra = format!("{}[retention]\ndicom_max_age = \"1s\"\ninterval = \"100ms\"\n", destination(&orthanc));
    let d = TestDaemon::start_with(&extra).await;
    let file_of = |events: &[serde_json::Value], sop: &str| {
        events
            .iter()
            .find(|e| e["event_type"] == "InstanceStored" && e["data"]["sop_instance_uid"] == sop)
            .map(|e| e["data"]["file_path"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let deleted = |events: &[serde_json::Value], path: &str| {
        events.iter().any(|e| e["event_type"] == "InstanceFileDeleted" && e["data"]["file_path"] == path)
    };
    let first = Instance::ct(91, 1, 1);
    store_all(d.dicom, vec![first.clone()]).await;
    let first_path = file_of(&d.events().await, &first.sop);
    eventually("the confirmed file deleted", Duration::from_secs(60), || async {
        deleted(&d.events().await, &first_path)
    })
    .await;
    assert!(!d.dir.path().join(&first_path).exists());
    assert!(orthanc.instance_id(&first.sop).await.is_some(), "the archive holds what the edge deleted");

    // The archive away: the next file grows older than the maximum age, unconfirmed, while
    // sweeps run every 100 ms; it stays.
    orthanc.stop();
    let second = Instance::ct(92, 1, 1);
    store_all(d.dicom, vec![second.clone()]).await;
    let second_path = file_of(&d.events().await, &second.sop);
    let stored_at = std::time::Instant::now();
    eventually("older than the maximum age, with failed rounds", Duration::from_secs(60), || async {
        let ready = d.get("/readyz").await.json();
        stored_at.elapsed() > Duration::from_secs(2)
            && ready["checks"]["forward"][0]["failures_total"].as_u64() >= Some(1)
    })
    .await;
    assert!(d.dir.path().join(&second_path).exists(), "an unconfirmed file is never deleted");
    assert!(!deleted(&d.events().await, &second_path));

    orthanc.resume().await;
    eventually("confirmed, then deleted", Duration::from_secs(60), || async {
        deleted(&d.events().await, &second_path)
    })
    .await;
    let id = orthanc.instance_id(&second.sop).await.expect("the archive holds it");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), orthanc.get(&format!("/instances/{id}/file")).await).unwrap();
    assert_eq!(dataset_bytes(file.path()).1, dataset(&second, scu::EXPLICIT_LE), "sent whole before it went");
    d.stop().await.unwrap();
}
