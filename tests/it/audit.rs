//! The audit trail (IHE ATNA): every message and instance received has its record committed
//! with it, before the answer; the daemon's start and stop are recorded; reading the trail is
//! recorded too, as is a backup (DICOM Instances Accessed) and a certificate about to expire
//! (Security Alert); and `kill -9` after an answer loses no record. Each record is served with
//! its DICOM PS3.15 A.5 message.

use std::time::Duration;

use crate::support::certs::Leaf;
use crate::support::dataset::Instance;
use crate::support::hl7msg::{ack_code, orm};
use crate::support::http::{audit_trail, audited, security_alerts};
use crate::support::process::{spawn, write_config};
use crate::support::scu::store_all;
use crate::support::tls::EdgeTls;
use crate::support::{MllpClient, TestDaemon};

/// The participant of `record` in `role` (a PS3.16 code).
fn participant<'a>(record: &'a serde_json::Value, role: &str) -> &'a serde_json::Value {
    record["record"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["role"]["code"] == role)
        .unwrap_or_else(|| panic!("no participant in role {role}: {record}"))
}

/// The ids of the objects of `record` of `type_code` (1 person, 2 system object).
fn object_ids(record: &serde_json::Value, type_code: u64) -> Vec<String> {
    let objects = record["record"]["objects"].as_array().unwrap();
    objects.iter().filter(|o| o["type_code"] == type_code).map(|o| o["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_order_has_its_order_record_with_the_sender_and_the_patient_ids() {
    let d = TestDaemon::start().await;
    assert_eq!(ack_code(&d.client().await.send(&orm("AUD-ORM-1", "ACC-AUD-1")).await), "AA");
    let trail = audit_trail(d.http).await;
    let start = audited(&trail, "110100");
    assert_eq!(start.len(), 1, "the start: {trail:?}");
    assert_eq!(start[0]["record"]["event_types"][0]["code"], "110120");
    let orders = audited(&trail, "110109");
    assert_eq!(orders.len(), 1, "one Order Record: {trail:?}");
    let order = orders[0];
    let sender = participant(order, "110153");
    assert_eq!(sender["user_id"], "RIS");
    assert_eq!(sender["network_access_point"], "127.0.0.1");
    assert_eq!(sender["requestor"], true);
    assert_eq!(participant(order, "110152")["user_id"], "e1");
    assert_eq!(object_ids(order, 1), ["PAT-ACC-AUD-1^^^HOSP", "INS-77^^^INSURER"], "the patient's ids: {order}");
    assert!(object_ids(order, 2).contains(&"AUD-ORM-1".to_owned()), "the control id: {order}");
    let xml = order["xml"].as_str().unwrap();
    for element in
        ["<EventIdentification", "<ActiveParticipant", "<AuditSourceIdentification", "<ParticipantObjectIdentification"]
    {
        assert!(xml.contains(element), "{element} in {xml}");
    }
    assert!(xml.contains("AuditSourceID=\"e1\"") && xml.contains("csd-code=\"110109\""), "{xml}");
    let again = audit_trail(d.http).await;
    assert_eq!(audited(&again, "110101").len(), 2, "each read of the trail is recorded: {again:?}");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_recorded_once_per_association_and_study_with_the_calling_ae() {
    let d = TestDaemon::start().await;
    store_all(d.dicom, vec![Instance::ct(71, 1, 1), Instance::ct(71, 1, 2), Instance::ct(72, 1, 1)]).await;
    store_all(d.dicom, vec![Instance::ct(71, 1, 3)]).await;
    let trail = audit_trail(d.http).await;
    let transfers = audited(&trail, "110104");
    assert_eq!(transfers.len(), 3, "study 71 on two associations, study 72 on one: {transfers:?}");
    let studies: Vec<Vec<String>> = transfers.iter().map(|r| object_ids(r, 2)).collect();
    let root = "1.2.826.0.1.3680043.10.999";
    assert_eq!(studies, [[format!("{root}.71")], [format!("{root}.72")], [format!("{root}.71")]]);
    for r in &transfers {
        let source = participant(r, "110153");
        assert_eq!(source["user_id"], "CT01", "the calling AE: {r}");
        assert_eq!(source["alternative_user_id"], "AETITLES=CT01");
        assert_eq!(participant(r, "110152")["user_id"], "ZENEDGE");
        assert!(source.get("user_name").is_none(), "no certificate on a plain association: {r}");
    }
    assert_eq!(object_ids(transfers[1], 1), ["PAT-72"]);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_is_recorded_and_the_trail_survives_the_restart() {
    let d = TestDaemon::start().await;
    assert_eq!(ack_code(&d.client().await.send(&orm("AUD-RESTART-1", "ACC-R")).await), "AA");
    let d = d.restart().await;
    let trail = audit_trail(d.http).await;
    let activity: Vec<&str> =
        audited(&trail, "110100").iter().map(|r| r["record"]["event_types"][0]["code"].as_str().unwrap()).collect();
    assert_eq!(activity, ["110120", "110121", "110120"], "start, stop, start: {trail:?}");
    assert_eq!(audited(&trail, "110109").len(), 1);
    let ids: Vec<u64> = trail.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>(), "ids are gapless");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_answered_messages_loses_none_of_their_audit_records() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zenedge.toml");
    write_config(&config, &dir.path().join("state"));
    let mut daemon = tokio::task::spawn_blocking({
        let config = config.clone();
        move || spawn(&config)
    })
    .await
    .unwrap();
    let mut acked = Vec::new();
    let mut client = MllpClient::connect(daemon.mllp).await;
    for n in 0..20 {
        let id = format!("AUD-KILL-{n}");
        assert_eq!(ack_code(&client.send(&orm(&id, &format!("ACC-K{n}"))).await), "AA");
        acked.push(id);
    }
    daemon.kill();
    let mut daemon = tokio::task::spawn_blocking(move || spawn(&config)).await.unwrap();
    let trail = tokio::time::timeout(Duration::from_secs(30), audit_trail(daemon.http)).await.unwrap();
    let recorded: Vec<String> = audited(&trail, "110109").iter().flat_map(|r| object_ids(r, 2)).collect();
    for id in &acked {
        assert!(recorded.contains(id), "{id} was acknowledged before the kill; its record must be there");
    }
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_with_patient_data_is_recorded_with_the_address_the_path_and_the_patient_ids() {
    let d = TestDaemon::start().await;
    assert_eq!(ack_code(&d.client().await.send(&orm("AUD-READ-1", "ACC-READ")).await), "AA");
    assert_eq!(d.get("/api/v1/events?limit=5").await.status, 200);
    for path in ["/readyz", "/healthz", "/metrics", "/api/v1/status"] {
        assert_eq!(d.get(path).await.status, 200, "{path}");
    }
    let trail = audit_trail(d.http).await;
    let reads = audited(&trail, "110112");
    assert_eq!(reads.len(), 1, "one read with patient data, nothing for health and status: {trail:?}");
    let read = reads[0];
    let client = &read["record"]["participants"][0];
    assert_eq!(client["requestor"], true);
    assert_eq!(client["user_id"], "test-client", "the authenticated client is named: {read}");
    assert_eq!(client["network_access_point"], "127.0.0.1");
    assert_eq!(object_ids(read, 1), ["PAT-ACC-READ", "INS-77"], "{read}");
    assert_eq!(object_ids(read, 2), ["/api/v1/events?limit=5"]);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_older_than_the_retention_are_removed_but_the_newest_stays() {
    let d = TestDaemon::start_with("[audit]\nretention = \"1s\"\n").await;
    assert_eq!(ack_code(&d.client().await.send(&orm("AUD-OLD-1", "ACC-OLD")).await), "AA");
    assert_eq!(audited(&audit_trail(d.http).await, "110109").len(), 1);
    let trail = crate::support::eventually("the order's record pruned", Duration::from_secs(30), || async {
        let trail = audit_trail(d.http).await;
        if audited(&trail, "110109").is_empty() { Ok(trail) } else { Err(format!("{} records", trail.len())) }
    })
    .await;
    assert!(!trail.is_empty(), "the newest record stays");
    let ids: Vec<u64> = trail.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert!(ids[0] > 2, "ids go on after a prune: {ids:?}");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_is_recorded_as_dicom_instances_accessed_naming_the_client_before_it_streams() {
    let d = TestDaemon::start().await;
    assert_eq!(ack_code(&d.client().await.send(&orm("AUD-BACKUP-1", "ACC-BACKUP")).await), "AA");
    let work = tempfile::tempdir().unwrap();
    let (http, to) = (d.http, work.path().join("backup"));
    let token = crate::support::access::TOKEN;
    tokio::task::spawn_blocking(move || zenedge::operator::backup::backup((http, token), &to)).await.unwrap().unwrap();
    let trail = audit_trail(d.http).await;
    let accessed = audited(&trail, "110103");
    assert_eq!(accessed.len(), 1, "one record per backup: {trail:?}");
    let record = &accessed[0]["record"];
    assert_eq!(record["action"], "Read");
    let client = &record["participants"][0];
    assert_eq!((client["user_id"].as_str(), client["requestor"].as_bool()), (Some("test-client"), Some(true)));
    assert_eq!(client["network_access_point"], "127.0.0.1");
    let object = &record["objects"][0];
    assert_eq!(object["id"], "/api/v1/backup");
    let details = object["details"].as_array().unwrap();
    assert!(details.iter().any(|d| d[0] == "last_seq" && d[1] == "1"), "{object}");
    assert!(accessed[0]["xml"].as_str().unwrap().contains("110103"));
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_certificate_that_expires_within_30_days_is_a_security_alert_in_the_trail_at_start() {
    let leaf = Leaf { stem: "short-lived".into(), expires_in_days: Some(10), ..Leaf::server() };
    let tls = EdgeTls::with_server(leaf);
    let d = TestDaemon::start_with(&tls.section("")).await;
    let alerts = crate::support::eventually("the expiry alert", Duration::from_secs(30), || async {
        let alerts = security_alerts(d.http, "certificate_expiring").await;
        if alerts.is_empty() { Err("none yet".to_owned()) } else { Ok(alerts) }
    })
    .await;
    assert_eq!(alerts.len(), 1, "one per check: {alerts:?}");
    let record = &alerts[0]["record"];
    assert_eq!(record["outcome"], "MinorFailure");
    assert_eq!(record["event_types"][0]["code"], "110129", "Security Configuration: {record}");
    let why = record["outcome_description"].as_str().unwrap();
    assert!(why.contains("tls.cert") && why.contains("expires on"), "{why}");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_answered_reads_loses_none_of_their_audit_records() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zenedge.toml");
    write_config(&config, &dir.path().join("state"));
    let mut daemon = tokio::task::spawn_blocking({
        let config = config.clone();
        move || spawn(&config)
    })
    .await
    .unwrap();
    let mut client = MllpClient::connect(daemon.mllp).await;
    assert_eq!(ack_code(&client.send(&orm("AUD-KILL-READ", "ACC-KR")).await), "AA");
    // Reads answered concurrently (their records share journal syncs), then a kill at once.
    let reads: Vec<String> = (1..=40).map(|n| format!("/api/v1/events?after=0&limit={n}")).collect();
    let answered =
        futures_util::future::join_all(reads.iter().map(|path| crate::support::http::get(daemon.http, path))).await;
    assert!(answered.iter().all(|r| r.status == 200), "every read answered");
    daemon.kill();
    let mut daemon = tokio::task::spawn_blocking(move || spawn(&config)).await.unwrap();
    let trail = tokio::time::timeout(Duration::from_secs(30), audit_trail(daemon.http)).await.unwrap();
    let recorded: Vec<String> = audited(&trail, "110112").iter().flat_map(|r| object_ids(r, 2)).collect();
    for path in &reads {
        assert_eq!(
            recorded.iter().filter(|p| *p == path).count(),
            1,
            "{path} was answered; its record once: {recorded:?}"
        );
    }
    daemon.kill();
}
