//! A patient's data export (`zenedge export`, `GET /api/v1/patients/{id}/export`): exactly
//! that patient's events (and those of the ids merged into it), the HL7 messages byte-equal to
//! what the sender sent, the DICOM files byte-equal to what the edge stored, a manifest whose
//! digests hold; scopes `read` and `export`; recorded in the audit trail as an Export.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::support::access::client_toml_for;
use crate::support::dataset::Instance;
use crate::support::hl7msg::{a40, ack_code, orm, orm_change};
use crate::support::http::{audit_trail, audited, get_as};
use crate::support::scu::store_all;
use crate::support::{TestDaemon, eventually};

/// The archive's entries: name → bytes.
fn entries(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.insert(name, bytes);
    }
    out
}

fn instance(study: u32, n: u32, patient: &str, accession: &str) -> Instance {
    Instance { patient_id: patient.into(), accession: accession.into(), ..Instance::ct(study, 1, n) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_export_holds_exactly_the_patients_events_messages_and_files_as_received() {
    let d = TestDaemon::start_with("[dicom]\nstable_after = \"100ms\"\n").await;
    let mut c = d.client().await;
    // PAT-EXP1 (accession EXP1), its earlier id PAT-EXP0 merged into it, and someone else.
    let sent: Vec<(&str, Vec<u8>)> = vec![
        ("E0", orm("E0", "EXP0")),
        ("O1", orm("O1", "OTH1")),
        ("E1", orm("E1", "EXP1")),
        ("E2", orm_change("E2", "EXP1", "XO", "IP", "I")),
        ("E3", a40("E3", "PAT-EXP1", "PAT-EXP0")),
    ];
    for (_, message) in &sent {
        assert_eq!(ack_code(&c.send(message).await), "AA");
    }
    store_all(d.dicom, vec![instance(71, 1, "PAT-EXP1", "EXP1"), instance(71, 2, "PAT-EXP1", "EXP1")]).await;
    store_all(d.dicom, vec![instance(72, 1, "PAT-OTH1", "OTH1")]).await;
    // Both studies complete and match their orders before the export.
    let all = eventually("both studies matched", Duration::from_secs(30), || async {
        let events = d.events().await;
        let matched = events.iter().filter(|e| e["event_type"] == "StudyMatched").count();
        (matched == 2).then_some(events)
    })
    .await;

    let work = tempfile::tempdir().unwrap();
    let to = work.path().join("pat.tar");
    let config = crate::support::config::write_for_daemon(&work.path().join("c.toml"), d.dir.path(), d.http, None);
    let mut command = Command::new(env!("CARGO_BIN_EXE_zenedge"));
    command.args(["export", "--patient", "PAT-EXP1", "--config"]).arg(&config).arg("--to").arg(&to);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("2 DICOM files"), "{stdout}");
    let archive = entries(&to);

    // The events: every one naming the patient's ids or what its events brought, nothing of
    // the other patient, nothing twice.
    let exported: BTreeSet<u64> =
        archive.keys().filter_map(|k| k.strip_prefix("events/")?.strip_suffix(".json")?.parse().ok()).collect();
    // The other patient's: naming its id or accession, or its case (a classification names
    // only the case).
    let other_case = all
        .iter()
        .find(|e| e["event_type"] == "PatientCaseCreated" && e.to_string().contains("PAT-OTH1"))
        .map(|e| e["data"]["case_id"].as_str().unwrap().to_owned())
        .expect("the other patient's case");
    let of_other = |e: &serde_json::Value| {
        let text = e.to_string();
        text.contains("OTH1") || text.contains(&other_case)
    };
    let mine: Vec<&serde_json::Value> = all.iter().filter(|e| !of_other(e)).collect();
    let expected: BTreeSet<u64> = mine.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(exported, expected, "the patient's events, and only those");
    let types: BTreeSet<&str> = mine.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    for kind in ["HL7MessageReceived", "InstanceStored", "StudyCompleted", "StudyMatched", "PatientsMerged"] {
        assert!(types.contains(kind), "{kind} is among the exported events: {types:?}");
    }
    for seq in &exported {
        let json: serde_json::Value = serde_json::from_slice(&archive[&format!("events/{seq:020}.json")]).unwrap();
        let live = all.iter().find(|e| e["seq"] == *seq).unwrap();
        assert_eq!(&json, live, "event {seq} as the read API shows it");
    }

    // The HL7 messages byte for byte as sent: E0 (the merged id's), E1, E2, E3; not O1.
    let hl7: Vec<&Vec<u8>> = archive.iter().filter(|(k, _)| k.starts_with("hl7/")).map(|(_, v)| v).collect::<Vec<_>>();
    let expected_hl7: Vec<&Vec<u8>> = sent.iter().filter(|(id, _)| *id != "O1").map(|(_, m)| m).collect();
    assert_eq!(hl7, expected_hl7);

    // The DICOM files as the edge stored them (whose data set digest the event recorded).
    for event in mine.iter().filter(|e| e["event_type"] == "InstanceStored") {
        let seq = event["seq"].as_u64().unwrap();
        let exported = &archive[&format!("dicom/{seq:020}.dcm")];
        let stored = std::fs::read(d.dir.path().join(event["data"]["file_path"].as_str().unwrap())).unwrap();
        assert_eq!(exported, &stored, "instance {seq}");
    }
    assert_eq!(archive.keys().filter(|k| k.starts_with("dicom/")).count(), 2);

    // The manifest: last, the ids, and a digest of every other entry.
    assert_eq!(archive.keys().last().map(String::as_str), Some("manifest.json"));
    let manifest: serde_json::Value = serde_json::from_slice(&archive["manifest.json"]).unwrap();
    assert_eq!(manifest["patient_ids"], serde_json::json!(["PAT-EXP1", "PAT-EXP0"]));
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), archive.len() - 1);
    for file in files {
        let bytes = &archive[file["path"].as_str().unwrap()];
        assert_eq!(file["sha256"].as_str().unwrap(), zenedge::ids::hex(&Sha256::digest(bytes)));
    }

    // Recorded: an Export naming the patient and the id merged into it.
    let trail = audit_trail(d.http).await;
    let exports = audited(&trail, "110106");
    assert_eq!(exports.len(), 1, "{exports:?}");
    let ids: Vec<&str> = exports[0]["record"]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type_code"] == 1)
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["PAT-EXP1", "PAT-EXP0"]);
}

#[tokio::test]
async fn an_export_needs_read_and_export_and_names_an_unknown_patient() {
    let clients = [
        client_toml_for("reader", "zt_reader-token-0123456789", &["read"]),
        client_toml_for("exporter", "zt_exporter-token-0123456789", &["export"]),
    ]
    .concat();
    let d = TestDaemon::start_with(&clients).await;
    let mut c = d.client().await;
    assert_eq!(ack_code(&c.send(&orm("S1", "SCOPE1")).await), "AA");
    let path = "/api/v1/patients/PAT-SCOPE1/export";
    assert_eq!(get_as(d.http, path, None).await.status, 401);
    for token in ["zt_reader-token-0123456789", "zt_exporter-token-0123456789"] {
        let answer = get_as(d.http, path, Some(token)).await;
        assert_eq!(answer.status, 403, "{}", answer.body);
        assert!(answer.json()["error"].as_str().unwrap().contains("export"), "{}", answer.body);
    }
    let unknown = get_as(d.http, "/api/v1/patients/NOBODY/export", Some(crate::support::access::TOKEN)).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert!(unknown.json()["error"].as_str().unwrap().contains("NOBODY"));
    let ok = get_as(d.http, path, Some(crate::support::access::TOKEN)).await;
    assert_eq!(ok.status, 200);
    assert!(ok.headers.to_ascii_lowercase().contains("application/x-tar"), "{}", ok.headers);
    // Nothing exported without its record: exactly the one successful export is audited.
    assert_eq!(audited(&audit_trail(d.http).await, "110106").len(), 1);
}

#[test]
fn the_command_refuses_to_overwrite_a_file() {
    let work = tempfile::tempdir().unwrap();
    let to = work.path().join("there.tar");
    std::fs::write(&to, b"keep me").unwrap();
    let addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let error = zenedge::operator::export::export((addr, "token"), "P1", &to).unwrap_err();
    assert!(error.contains("exists"), "{error}");
    assert_eq!(std::fs::read(&to).unwrap(), b"keep me");
}
