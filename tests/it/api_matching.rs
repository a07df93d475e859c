//! The read API for matching: orders, studies, patient cases and matches as the log holds
//! them, what still waits for a match (oldest first), searches, and the live event stream.
//!
//! `orm(control, acc)` orders accession `acc` for patient `PAT-<acc>`; `Instance::ct(n, ..)`
//! is a CT study with accession `ACC-<n>` for patient `PAT-<n>`: they match by accession.

use std::time::Duration;

use serde_json::Value;

use crate::support::dataset::Instance;
use crate::support::hl7msg::{ack_code, orm, orm_corrected};
use crate::support::scu::store_all;
use crate::support::sse;
use crate::support::{TestDaemon, eventually};

/// Studies complete 100 ms after their last instance.
const QUICK: &str = "[dicom]\nstable_after = \"100ms\"\n";

/// Stores `count` instances of study `study` (one series) over one association.
async fn store_study(d: &TestDaemon, study: u32, count: u32) -> String {
    store_instances(d, study, 1..=count).await
}

/// Stores instances `numbers` of study `study` (one series) over one association.
async fn store_instances(d: &TestDaemon, study: u32, numbers: std::ops::RangeInclusive<u32>) -> String {
    store_all(d.dicom, numbers.map(|n| Instance::ct(study, 1, n)).collect()).await;
    Instance::ct(study, 1, 1).study
}

/// Polls `path` until `ready` holds for its JSON; fails after 20 s with the last answer.
async fn wait_for(d: &TestDaemon, path: &str, ready: impl Fn(&Value) -> bool) -> Value {
    eventually(&format!("{path} to get ready"), Duration::from_secs(20), || async {
        let r = d.get(path).await;
        if r.status == 200 && ready(&r.json()) { Ok(r.json()) } else { Err(format!("{} {}", r.status, r.body)) }
    })
    .await
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().unwrap_or_else(|| panic!("no items: {page}"))
}

fn field<'a>(page: &'a Value, name: &str) -> Vec<&'a str> {
    items(page).iter().map(|i| i[name].as_str().unwrap()).collect()
}

/// The id of the one order with accession `acc`.
async fn order_id(d: &TestDaemon, acc: &str) -> String {
    let found = d.get(&format!("/api/v1/orders?accession={acc}")).await.json();
    assert_eq!(items(&found).len(), 1, "{found}");
    found["items"][0]["order_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_and_its_study_are_matched_in_every_view() {
    let d = TestDaemon::start_with(QUICK).await;
    d.client().await.send(&orm("MT-1", "ACC-1")).await;
    let id = order_id(&d, "ACC-1").await;
    let order = d.get(&format!("/api/v1/orders/{id}")).await.json();
    assert_eq!(order["accession_number"], "ACC-1");
    assert_eq!(order["patient_id"], "PAT-ACC-1");
    assert_eq!(order["procedure"]["code"], "CTHEAD");
    assert_eq!(order["modality"], "CT");
    assert_eq!(order["cancelled"], false);
    assert!(order["waiting_since"].is_string(), "{order}");
    assert_eq!(order["studies"], serde_json::json!([]));
    let waiting = d.get("/api/v1/unmatched/orders").await.json();
    assert_eq!(field(&waiting, "order_id"), [id.as_str()]);
    let w = &waiting["items"][0];
    assert_eq!((&w["accession_number"], &w["waiting_since"]), (&order["accession_number"], &order["waiting_since"]));
    assert!(w["age_seconds"].as_i64().is_some_and(|a| a >= 0), "{w}");
    assert_eq!(
        (&w["patient_id"], &w["patient_name"], &w["modality"]),
        (&order["patient_id"], &order["patient_name"], &order["modality"])
    );
    assert_eq!(w["procedure"]["code"], "CTHEAD");

    let uid = store_study(&d, 1, 2).await;
    let order = wait_for(&d, &format!("/api/v1/orders/{id}"), |o| !o["studies"].as_array().unwrap().is_empty()).await;
    assert_eq!(order["studies"][0]["study_instance_uid"], uid.as_str());
    assert!(order["waiting_since"].is_null(), "{order}");
    let match_seq = order["studies"][0]["match_seq"].as_u64().unwrap();
    let matched = d.get(&format!("/api/v1/events/{match_seq}")).await.json();
    assert_eq!(matched["event_type"], "StudyMatched");
    assert_eq!(
        (&matched["data"]["order_id"], &matched["data"]["study_instance_uid"]),
        (&order["order_id"], &order["studies"][0]["study_instance_uid"])
    );
    let case_id = order["patient_case_id"].as_str().expect("the order is in the study's case").to_owned();

    let study = d.get(&format!("/api/v1/studies/{uid}")).await.json();
    assert_eq!(study["case_id"], case_id.as_str());
    assert_eq!(study["orders"], serde_json::json!([id]));
    assert_eq!(study["instance_count"], 2);
    assert_eq!(study["series"][0]["instances"].as_array().unwrap().len(), 2);

    let case = d.get(&format!("/api/v1/cases/{case_id}")).await.json();
    assert_eq!(case["case_id"], case_id.as_str());
    // The study's DICOM id, then the order's PID-3 repetitions.
    assert_eq!(case["patient_ids"], serde_json::json!(["PAT-1", "PAT-ACC-1", "INS-77"]));
    assert_eq!(case["modality"], "CT");
    assert_eq!(case["patient_class"], "O", "the order's patient class classifies the case");
    assert_eq!(case["studies"].as_array().unwrap().len(), 1, "{case}");
    let case_study = &case["studies"][0];
    assert_eq!(case_study["accession_number"], "ACC-1");
    assert_eq!(case_study["orders"][0]["order_id"], id.as_str());
    assert_eq!(case_study["orders"][0]["match_seq"], match_seq);
    assert_eq!(case_study["orders"][0]["procedure"]["code"], "CTHEAD");

    let all = d.get("/api/v1/matches?after=0").await.json();
    assert_eq!(
        all,
        serde_json::json!({"items": [{
            "seq": match_seq, "study_instance_uid": uid, "order_id": id, "accession_number": "ACC-1",
        }], "next": null})
    );
    assert_eq!(d.get("/api/v1/matches?accession=ACC-1").await.json(), all);
    assert!(items(&d.get(&format!("/api/v1/matches?after={match_seq}")).await.json()).is_empty());
    assert!(items(&d.get("/api/v1/matches?accession=ACC-2").await.json()).is_empty());
    assert!(items(&d.get("/api/v1/unmatched/orders").await.json()).is_empty());
    assert!(items(&d.get("/api/v1/unmatched/studies").await.json()).is_empty());
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_waits_is_listed_oldest_first_paged_and_leaves_once_matched() {
    let d = TestDaemon::start_with(QUICK).await;
    // Study 3 completes before study 2: oldest first is not accession order.
    let third = store_study(&d, 3, 1).await;
    wait_for(&d, "/api/v1/unmatched/studies", |p| items(p).len() == 1).await;
    let second = store_study(&d, 2, 1).await;
    let all = wait_for(&d, "/api/v1/unmatched/studies", |p| items(p).len() == 2).await;
    assert_eq!(field(&all, "study_instance_uid"), [third.as_str(), second.as_str()]);
    assert!(all["next"].is_null());
    let first = &all["items"][0];
    assert_eq!(first["accession_number"], "ACC-3");
    assert_eq!(first["patient_id"], "PAT-3");
    assert_eq!(first["patient_name"], "Doe^Jane");
    assert_eq!(first["modalities"], serde_json::json!(["CT"]));
    assert_eq!(first["study_date"], "20261123");
    assert!(first["age_seconds"].as_i64().is_some_and(|a| a >= 0), "{first}");

    let page = d.get("/api/v1/unmatched/studies?limit=1").await.json();
    assert_eq!(field(&page, "study_instance_uid"), [third.as_str()]);
    let next = page["next"].as_str().expect("a cursor").to_owned();
    let page = d.get(&format!("/api/v1/unmatched/studies?limit=1&after={next}")).await.json();
    assert_eq!(field(&page, "study_instance_uid"), [second.as_str()]);
    assert!(page["next"].is_null(), "{page}");
    assert!(items(&d.get("/api/v1/unmatched/studies?older_than=1h").await.json()).is_empty());
    assert_eq!(items(&d.get("/api/v1/unmatched/studies?older_than=0s").await.json()).len(), 2);

    // An order for study 2 matches it at once: its ACK follows the commit that matched.
    let mut c = d.client().await;
    c.send(&orm("W-1", "ACC-2")).await;
    let left = d.get("/api/v1/unmatched/studies").await.json();
    assert_eq!(field(&left, "study_instance_uid"), [third.as_str()]);
    assert!(items(&d.get("/api/v1/unmatched/orders").await.json()).is_empty());

    // Orders too wait oldest first, whatever their accessions.
    c.send(&orm("W-2", "ACC-9")).await;
    c.send(&orm("W-3", "ACC-8")).await;
    let waiting = d.get("/api/v1/unmatched/orders").await.json();
    assert_eq!(field(&waiting, "accession_number"), ["ACC-9", "ACC-8"]);
    let page = d.get("/api/v1/unmatched/orders?limit=1").await.json();
    assert_eq!(field(&page, "accession_number"), ["ACC-9"]);
    let next = page["next"].as_str().unwrap().to_owned();
    let page = d.get(&format!("/api/v1/unmatched/orders?limit=1&after={next}")).await.json();
    assert_eq!(field(&page, "accession_number"), ["ACC-8"]);
    assert!(page["next"].is_null());
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_studies_and_cases_are_found_by_accession_and_patient_id() {
    let d = TestDaemon::start_with(QUICK).await;
    let mut c = d.client().await;
    c.send(&orm("S-1", "ACC-4")).await;
    c.send(&orm("S-2", "ACC-6")).await;
    let id = order_id(&d, "ACC-4").await;
    let uid = store_study(&d, 4, 1).await;
    wait_for(&d, &format!("/api/v1/orders/{id}"), |o| !o["studies"].as_array().unwrap().is_empty()).await;

    let by_patient = d.get("/api/v1/orders?patient_id=PAT-ACC-4").await.json();
    assert_eq!(field(&by_patient, "order_id"), [id.as_str()]);
    assert_eq!(by_patient["truncated"], false);
    // Every order carries the second identifier INS-77: found by it too, oldest first.
    let by_other_id = d.get("/api/v1/orders?patient_id=INS-77").await.json();
    assert_eq!(field(&by_other_id, "accession_number"), ["ACC-4", "ACC-6"]);
    assert!(items(&d.get("/api/v1/orders?accession=ACC-5").await.json()).is_empty());

    let studies = d.get("/api/v1/studies?accession=ACC-4").await.json();
    assert_eq!(field(&studies, "study_instance_uid"), [uid.as_str()]);
    let hit = &studies["items"][0];
    assert_eq!(hit["orders"], serde_json::json!([id]));
    assert!(hit["case_id"].is_string(), "{hit}");
    assert!(hit.get("series").is_none(), "a search gives summaries: {hit}");
    assert_eq!(d.get("/api/v1/studies?patient_id=PAT-4").await.json(), studies);
    assert!(items(&d.get("/api/v1/studies?patient_id=PAT-ACC-4").await.json()).is_empty());

    let cases = d.get("/api/v1/cases?patient_id=PAT-4").await.json();
    assert_eq!(field(&cases, "case_id"), [hit["case_id"].as_str().unwrap()]);
    assert_eq!(cases["items"][0]["studies"][0]["orders"][0]["order_id"], id.as_str());
    assert!(items(&d.get("/api/v1/cases?patient_id=PAT-5").await.json()).is_empty());
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_are_found_by_a_patient_id_that_a_merge_retired() {
    let d = TestDaemon::start_with(QUICK).await;
    let merge = "MSH|^~\\&|HIS|HOSP|ZENEDGE|EDGE|20261123101500||ADT^A40^ADT_A39|MRG-1|P|2.5.1\r\
                 EVN|A40|20261123101500\r\
                 PID|1||PAT-NEW^^^HOSP^MR||Doe^Jane\r\
                 MRG|PAT-5^^^HOSP^MR\r";
    d.client().await.send(merge.as_bytes()).await;
    // Study 5 names the retired id: its case is opened under the surviving one.
    let uid = store_study(&d, 5, 1).await;
    let cases = wait_for(&d, "/api/v1/cases?patient_id=PAT-NEW", |p| !items(p).is_empty()).await;
    assert_eq!(cases["items"][0]["patient_ids"], serde_json::json!(["PAT-NEW"]));
    assert_eq!(cases["items"][0]["studies"][0]["study_instance_uid"], uid.as_str());
    assert_eq!(d.get("/api/v1/cases?patient_id=PAT-5").await.json(), cases, "the retired id resolves");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_get_400_and_unknown_ids_404_with_a_message() {
    let d = TestDaemon::start().await;
    let unknown = "01900000-0000-7000-8000-000000000000";
    let (bad_order, unknown_order, unknown_case) = (
        format!("/api/v1/orders/{unknown}:x"),
        format!("/api/v1/orders/{unknown}:0"),
        format!("/api/v1/cases/{unknown}"),
    );
    for (path, status, needle) in [
        ("/api/v1/orders", 400, "exactly one"),
        ("/api/v1/orders?accession=A&patient_id=B", 400, "exactly one"),
        ("/api/v1/orders?accession=", 400, "accession"),
        ("/api/v1/orders?accession=A&colour=red", 400, "colour"),
        ("/api/v1/orders/not-an-order", 400, "order id"),
        (bad_order.as_str(), 400, "order id"),
        (unknown_order.as_str(), 404, unknown),
        ("/api/v1/studies?accession=A&patient_id=B", 400, "exactly one"),
        ("/api/v1/studies?limit=3", 400, "limit"),
        ("/api/v1/studies/1.2.x", 400, "UID"),
        ("/api/v1/studies/1.2.3", 404, "1.2.3"),
        ("/api/v1/cases", 400, "patient_id"),
        ("/api/v1/cases?accession=A", 400, "accession"),
        ("/api/v1/cases/not-a-case", 400, "case id"),
        (unknown_case.as_str(), 404, unknown),
        ("/api/v1/matches?limit=0", 400, "limit"),
        ("/api/v1/matches?after=-1", 400, "after"),
        ("/api/v1/matches?study=1.2", 400, "study"),
        ("/api/v1/unmatched/orders?after=yesterday", 400, "after"),
        ("/api/v1/unmatched/orders?older_than=soon", 400, "older_than"),
        ("/api/v1/unmatched/studies?limit=1001", 400, "limit"),
        ("/api/v1/unmatched/elsewhere", 404, "/api/v1/unmatched/elsewhere"),
        ("/api/v1/events/stream?after=last", 400, "after"),
    ] {
        let r = d.get(path).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        let message = r.json()["error"].as_str().unwrap().to_owned();
        assert!(message.contains(needle), "{path}: {message}");
    }
    let r = sse::open(d.http, "/api/v1/events/stream", &[("Last-Event-ID", "x")]).await;
    assert_eq!(r.status, 400, "{}", r.headers);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_catches_up_goes_live_and_resumes_after_last_event_id() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    c.send(&orm("E-1", "ACC-E1")).await;
    c.send(&orm("E-2", "ACC-E2")).await;

    let mut stream = sse::open(d.http, "/api/v1/events/stream?after=0", &[]).await;
    assert_eq!(stream.status, 200, "{}", stream.headers);
    assert!(stream.headers.to_ascii_lowercase().contains("content-type: text/event-stream"), "{}", stream.headers);
    for seq in 1..=2 {
        let event = stream.next_event().await;
        assert_eq!(event.id.as_deref(), Some(seq.to_string().as_str()));
        assert_eq!(event.event.as_deref(), Some("HL7MessageReceived"));
        assert_eq!(event.json(), d.get(&format!("/api/v1/events/{seq}")).await.json(), "the list's JSON");
    }
    // Committed after the stream caught up: delivered on the open connection.
    c.send(&orm("E-3", "ACC-E3")).await;
    let live = stream.next_event().await;
    assert_eq!(live.id.as_deref(), Some("3"));
    assert_eq!(live.json()["data"]["control_id"], "E-3");
    drop(stream);

    // A reconnecting EventSource sends its first URL again with Last-Event-ID: the header wins.
    let mut resumed = sse::open(d.http, "/api/v1/events/stream?after=0", &[("Last-Event-ID", "2")]).await;
    assert_eq!(resumed.next_event().await.id.as_deref(), Some("3"));
    // Without either, the stream starts at the end of the log.
    let mut fresh = sse::open(d.http, "/api/v1/events/stream", &[]).await;
    c.send(&orm("E-4", "ACC-E4")).await;
    assert_eq!(fresh.next_event().await.id.as_deref(), Some("4"));
    assert_eq!(resumed.next_event().await.id.as_deref(), Some("4"));
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_event_streams_end_at_shutdown_instead_of_holding_it_up() {
    let d = TestDaemon::start_with("[daemon]\nshutdown_grace = \"60s\"\n").await;
    d.client().await.send(&orm("X-1", "ACC-X")).await;
    let mut stream = sse::open(d.http, "/api/v1/events/stream?after=0", &[]).await;
    assert_eq!(stream.next_event().await.id.as_deref(), Some("1"));
    let stopping = tokio::spawn(d.stop());
    let end = tokio::time::timeout(Duration::from_secs(20), stream.next()).await;
    assert_eq!(end.expect("the stream ends well before the grace period"), None);
    tokio::time::timeout(Duration::from_secs(20), stopping)
        .await
        .expect("shutdown is not held up by the stream")
        .unwrap()
        .unwrap();
}

/// The one event of type `kind` in the log.
async fn only_event(d: &TestDaemon, kind: &str) -> Value {
    let events: Vec<Value> = d.events().await.into_iter().filter(|e| e["event_type"] == kind).collect();
    assert_eq!(events.len(), 1, "{kind}: {events:?}");
    events.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accession_corrected_by_the_ris_moves_the_order_to_the_study_with_the_new_one() {
    let d = TestDaemon::start_with(QUICK).await;
    let mut c = d.client().await;
    c.send(&orm("AC-1", "ACC-11")).await;
    let id = order_id(&d, "ACC-11").await;
    let old_study = store_study(&d, 11, 1).await;
    wait_for(&d, &format!("/api/v1/orders/{id}"), |o| !o["studies"].as_array().unwrap().is_empty()).await;
    let new_study = store_study(&d, 12, 1).await;
    wait_for(&d, "/api/v1/unmatched/studies", |p| field(p, "study_instance_uid") == [new_study.as_str()]).await;

    // The RIS sends the order again under its placer number with OBR-18 corrected. The ACK
    // follows the commit that holds the decisions, so every view shows them at once.
    assert_eq!(ack_code(&c.send(&orm_corrected("AC-2", "ACC-11", "ACC-12")).await), "AA");
    assert_eq!(order_id(&d, "ACC-12").await, id, "the same order, under its new accession");
    assert!(items(&d.get("/api/v1/orders?accession=ACC-11").await.json()).is_empty());
    let order = d.get(&format!("/api/v1/orders/{id}")).await.json();
    assert_eq!(order["accession_number"], "ACC-12");
    assert_eq!(order["studies"].as_array().unwrap().len(), 1, "{order}");
    assert_eq!(order["studies"][0]["study_instance_uid"], new_study.as_str());
    let matches = d.get("/api/v1/matches?after=0").await.json();
    assert_eq!(field(&matches, "study_instance_uid"), [new_study.as_str()]);

    // The pair made under the old accession is undone, by an event, and the old study waits
    // again, since its first completion.
    let unmatched = only_event(&d, "StudyUnmatched").await;
    let data = &unmatched["data"];
    assert_eq!(
        (&data["study_instance_uid"], &data["order_id"], &data["accession_number"], &data["new_accession_number"]),
        (&old_study.as_str().into(), &id.as_str().into(), &"ACC-11".into(), &"ACC-12".into())
    );
    assert_eq!(data["reason"], "accession_changed");
    let updated = only_event(&d, "HL7MessageUpdated").await;
    let changes = updated["data"]["changes"].as_array().unwrap();
    assert!(changes.iter().any(|c| c["field"] == "accession_number" && c["new"] == "ACC-12"), "{updated}");
    let waiting = d.get("/api/v1/unmatched/studies").await.json();
    assert_eq!(field(&waiting, "study_instance_uid"), [old_study.as_str()]);
    let first_completion = d
        .events()
        .await
        .into_iter()
        .find(|e| e["event_type"] == "StudyCompleted" && e["data"]["study_instance_uid"] == old_study.as_str())
        .expect("the old study's completion");
    // Projections keep microseconds; the envelope has the nanoseconds.
    let micros = |v: &Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap().as_microsecond();
    assert_eq!(micros(&waiting["items"][0]["waiting_since"]), micros(&first_completion["recorded_at"]));
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_is_found_by_any_patient_id_of_the_orders_matched_with_its_studies() {
    let d = TestDaemon::start_with(QUICK).await;
    // PID-3 of the order: PAT-ACC-13 ~ INS-77; the study's DICOM Patient ID: PAT-13.
    d.client().await.send(&orm("CI-1", "ACC-13")).await;
    let uid = store_study(&d, 13, 1).await;
    let cases = wait_for(&d, "/api/v1/cases?patient_id=PAT-13", |p| {
        items(p).first().is_some_and(|c| c["studies"][0]["orders"].as_array().is_some_and(|o| !o.is_empty()))
    })
    .await;
    assert_eq!(cases["items"][0]["studies"][0]["study_instance_uid"], uid.as_str());
    for id in ["PAT-ACC-13", "INS-77"] {
        assert_eq!(d.get(&format!("/api/v1/cases?patient_id={id}")).await.json(), cases, "{id}");
    }
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_study_completed_again_still_waits_since_its_first_completion() {
    let d = TestDaemon::start_with(QUICK).await;
    let uid = store_study(&d, 14, 1).await;
    let first = wait_for(&d, "/api/v1/unmatched/studies", |p| items(p).len() == 1).await;
    // A late instance: the study completes again (revision 2), still without an order.
    store_instances(&d, 14, 2..=2).await;
    wait_for(&d, &format!("/api/v1/studies/{uid}"), |s| s["revision"] == 2 && s["pending"] == false).await;
    let again = d.get("/api/v1/unmatched/studies").await.json();
    assert_eq!(field(&again, "study_instance_uid"), [uid.as_str()]);
    assert_eq!(again["items"][0]["waiting_since"], first["items"][0]["waiting_since"]);
    d.stop().await.unwrap();
}
