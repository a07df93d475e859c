//! Invariant 2: projections are derived from the events alone. `zenedge rebuild` drops them
//! and replays the log to an identical result; `zenedge verify` finds any difference.

use std::process::Command;
use std::time::Duration;

use crate::support::dataset::Instance;
use crate::support::hl7msg::{a40, orm, orm_change, orm_corrected};
use crate::support::scu::store_all;
use crate::support::{TestDaemon, eventually};
use zenedge::projections::rebuild;

/// A log with every event type: HL7 messages (one re-sent, one conflicting, one change and
/// one cancel, a merge), instances (one replaced), completed studies matched with orders,
/// consolidated into a case and classified, an accession corrected twice (a match, then an
/// unmatch), an instance file deleted by retention.
async fn workload() -> (std::sync::Arc<tempfile::TempDir>, zenedge::config::Config) {
    let d = TestDaemon::start_with("[dicom]\nstable_after = \"100ms\"\n").await;
    let mut c = d.client().await;
    for i in 0..5 {
        c.send(&orm(&format!("RB-{i}"), &format!("ACC-{i}"))).await;
    }
    c.send(&orm("RB-0", "ACC-0")).await;
    c.send(&orm("RB-1", "OTHER")).await;
    c.send(&orm_change("RB-CA", "ACC-2", "CA", "CA", "O")).await;
    c.send(&orm("RB-20", "ACC-20")).await;
    c.send(&a40("RB-A40", "PAT-20", "PAT-OLD")).await;
    let mut replaced = Instance::ct(20, 1, 1);
    replaced.pixel_bytes = 2048;
    let mut instances: Vec<Instance> = (1..=3).map(|n| Instance::ct(20, 1, n)).collect();
    instances.push(replaced);
    // The same patient under its prior id, and a study no order asked for.
    let mut same_patient = Instance::ct(21, 1, 1);
    same_patient.patient_id = "PAT-OLD".into();
    instances.extend([same_patient, Instance::ct(22, 1, 1)]);
    store_all(d.dicom, instances).await;
    let completed =
        |events: &[serde_json::Value]| events.iter().filter(|e| e["event_type"] == "StudyCompleted").count();
    eventually("three studies completed", Duration::from_secs(30), || async { completed(&d.events().await) >= 3 })
        .await;
    // A change of the matched order: OrderUpdated, and the new class reclassifies its case.
    c.send(&orm_change("RB-XO", "ACC-20", "XO", "IP", "I")).await;
    // An order for the study that had none, cancelled once matched: OrderCancelled.
    c.send(&orm("RB-22", "ACC-22")).await;
    c.send(&orm_change("RB-22-CA", "ACC-22", "CA", "CA", "O")).await;
    // The RIS corrects an accession: the order of ACC-3 meets study 21, then moves on to
    // ACC-4, which undoes that pair (StudyUnmatched).
    c.send(&orm_corrected("RB-FIX-1", "ACC-3", "ACC-21")).await;
    c.send(&orm_corrected("RB-FIX-2", "ACC-3", "ACC-4")).await;
    let config = crate::support::daemon::test_config(d.dir.path(), "");
    let dir = d.dir.clone();
    d.stop().await.unwrap();
    // Retention records the deletion of a synced instance file: InstanceFileDeleted.
    crate::retention::record_first_deletion(&config).await;
    let d = TestDaemon::start_in(dir.clone(), "").await;
    let events = d.events().await;
    let missing: Vec<_> =
        zenedge::events::EVENT_TYPES.iter().filter(|kind| !events.iter().any(|e| e["event_type"] == **kind)).collect();
    assert!(missing.is_empty(), "event types missing from the workload: {missing:?}");
    d.stop().await.unwrap();
    (dir, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_reproduces_the_projections_and_verify_finds_a_tampered_one() {
    let (_dir, config) = workload().await;
    let db = rebuild::open(&config.database_path(), &config.site, 4 << 20).unwrap();
    let before = rebuild::digest(&db).unwrap();
    // Pending studies and commitment requests are empty once everything completed and was
    // answered; every other table holds rows.
    let transient = ["studies_pending", "forward_commitments"];
    assert!(before.iter().filter(|d| !transient.contains(&d.table)).all(|d| d.rows > 0), "{before:?}");
    assert!(rebuild::verify(&db, &config.site, |_, _| {}).unwrap().is_empty());
    let mut last = (0, 0);
    rebuild::rebuild(&db, &config.site, |done, total| last = (done, total)).unwrap();
    assert_eq!(last.0, last.1, "the progress callback saw the whole log");
    assert_eq!(rebuild::digest(&db).unwrap(), before, "rebuilt projections are identical");

    // Tamper with a projection: verify notices, rebuild repairs.
    let txn = db.begin_write().unwrap();
    txn.open_table(redb::TableDefinition::<(&str, &str, &str), i64>::new("studies_pending"))
        .unwrap()
        .insert(("t1", "h1", "1.2.3.4"), 0)
        .unwrap();
    txn.commit().unwrap();
    let differences = rebuild::verify(&db, &config.site, |_, _| {}).unwrap();
    assert_eq!(differences.iter().map(|(a, _)| a.table).collect::<Vec<_>>(), ["studies_pending"]);
    rebuild::rebuild(&db, &config.site, |_, _| {}).unwrap();
    assert_eq!(rebuild::digest(&db).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rebuild_and_verify_commands_print_digests_and_refuse_a_running_daemon() {
    let (dir, _) = workload().await;
    let config_file = crate::support::config::write(&dir.path().join("zenedge.toml"), dir.path(), "");
    let run = |command: &str| {
        Command::new(env!("CARGO_BIN_EXE_zenedge")).args([command, "--config"]).arg(&config_file).output().unwrap()
    };
    let out = run("verify");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("projections match the log"));
    let out = run("rebuild");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let digest = |label: &str| text.lines().find_map(|l| l.strip_prefix(label)).map(|d| d.trim().to_owned());
    assert_eq!(digest("projections before:"), digest("projections after:"), "{text}");

    let running = TestDaemon::start_in(dir.clone(), "").await;
    assert_eq!(running.get("/healthz").await.status, 200, "the daemon has its database open");
    let out = run("verify");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stop the daemon"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_an_event_value_that_does_not_decompress_with_its_seq() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    for i in 0..3 {
        c.send(&orm(&format!("CV-{i}"), &format!("ACC-{i}"))).await;
    }
    let dir = d.dir.clone();
    d.stop().await.unwrap();
    let config = crate::support::daemon::test_config(dir.path(), "");
    let seq = {
        let db = redb::Database::open(config.database_path()).unwrap();
        let txn = db.begin_write().unwrap();
        let seq = {
            let mut events = txn.open_table(redb::TableDefinition::<u64, &[u8]>::new("events")).unwrap();
            let seq = redb::ReadableTable::last(&events).unwrap().unwrap().0.value();
            // The compressed form's header naming a dictionary the file does not hold.
            events.insert(seq, [0xc1, 1, 7, 0x28, 0xb5, 0x2f, 0xfd].as_slice()).unwrap();
            seq
        };
        txn.commit().unwrap();
        seq
    };
    let config_file = crate::support::config::write(&dir.path().join("zenedge.toml"), dir.path(), "");
    let out =
        Command::new(env!("CARGO_BIN_EXE_zenedge")).args(["verify", "--config"]).arg(&config_file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("event {seq} ")) && stderr.contains("dictionary 7"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dictionary_trained_on_the_sites_messages_compresses_new_values_and_every_reader_reads_them() {
    let d = TestDaemon::start_with("[store]\nvalue_dictionary_after = 100\n").await;
    let mut c = d.client().await;
    for i in 0..150 {
        c.send(&orm(&format!("DI-{i}"), &format!("ACC-{i}"))).await;
    }
    let adopted = "zenedge_log_value_dictionaries_adopted_total 1";
    eventually("a compression dictionary adopted", Duration::from_secs(60), || async {
        d.get("/metrics").await.body.contains(adopted)
    })
    .await;
    for i in 150..200 {
        c.send(&orm(&format!("DI-{i}"), &format!("ACC-{i}"))).await;
    }
    let before = d.events().await;
    let controls: std::collections::BTreeSet<String> =
        before.iter().filter_map(|e| e["data"]["control_id"].as_str().map(str::to_owned)).collect();
    let sent: std::collections::BTreeSet<String> = (0..200).map(|i| format!("DI-{i}")).collect();
    assert_eq!(controls, sent, "every message reads back, before and after the dictionary");
    let dir = d.dir.clone();
    let d = d.restart().await;
    assert_eq!(d.events().await, before, "the same envelopes after a restart");
    d.stop().await.unwrap();

    let config_file = crate::support::config::write(&dir.path().join("zenedge.toml"), dir.path(), "");
    let run = |command: &str| {
        Command::new(env!("CARGO_BIN_EXE_zenedge")).args([command, "--config"]).arg(&config_file).output().unwrap()
    };
    let out = run("verify");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run("disk-usage");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = |table: &str| {
        text.lines().find(|l| l.split_whitespace().next() == Some(table)).and_then(|l| l.split_whitespace().nth(1))
    };
    assert_eq!(rows("value_dictionaries"), Some("1"), "{text}");
    assert!(rows("events").is_some_and(|n| n.parse::<u64>().unwrap() >= 200), "{text}");
}
