//! Invariant 2: projections are derived from the events alone. `zenedge rebuild` drops them
//! and replays the log to an identical result; `zenedge verify` finds any difference.

use std::process::Command;

use crate::support::TestDaemon;
use crate::support::dataset::{Instance, dataset};
use crate::support::hl7msg::orm;
use crate::support::scu::{self, CT_IMAGE_STORAGE, EXPLICIT_LE};
use zenedge::projections::rebuild;

/// A log with every event type: HL7 messages (one re-sent, one conflicting), instances
/// (one replaced), a completed study.
async fn workload() -> (std::sync::Arc<tempfile::TempDir>, zenedge::config::Config) {
    let d = TestDaemon::start_with("[dicom]\nstable_after = \"100ms\"\n").await;
    let mut c = d.client().await;
    for i in 0..5 {
        c.send(&orm(&format!("RB-{i}"), &format!("ACC-{i}"))).await;
    }
    c.send(&orm("RB-0", "ACC-0")).await;
    c.send(&orm("RB-1", "OTHER")).await;
    let addr = d.dicom;
    tokio::task::spawn_blocking(move || {
        let mut scu = scu::connect_ct(addr, EXPLICIT_LE);
        for n in 1..=3 {
            let i = Instance::ct(20, 1, n);
            assert_eq!(scu.store(CT_IMAGE_STORAGE, &i.sop, &dataset(&i, EXPLICIT_LE), 16_000).status, 0);
        }
        let mut replaced = Instance::ct(20, 1, 1);
        replaced.pixel_bytes = 2048;
        assert_eq!(scu.store(CT_IMAGE_STORAGE, &replaced.sop, &dataset(&replaced, EXPLICIT_LE), 16_000).status, 0);
        scu.release();
    })
    .await
    .unwrap();
    while !d.events().await.iter().any(|e| e["event_type"] == "StudyCompleted") {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let config = crate::support::daemon::test_config(d.dir.path(), "");
    let dir = d.dir.clone();
    d.stop().await.unwrap();
    (dir, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_reproduces_the_projections_and_verify_finds_a_tampered_one() {
    let (_dir, config) = workload().await;
    let db = rebuild::open(&config.database_path(), &config.site, 4 << 20).unwrap();
    let before = rebuild::digest(&db).unwrap();
    assert!(before.iter().filter(|d| d.table != "studies_pending").all(|d| d.rows > 0), "{before:?}");
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
    let config_file = dir.path().join("zenedge.toml");
    std::fs::write(
        &config_file,
        format!(
            "[site]\ntenant_id = \"t1\"\nhospital_id = \"h1\"\nedge_id = \"e1\"\n[store]\nstate_dir = {:?}\ndisk_reserve = \"0\"\n",
            dir.path().display().to_string()
        ),
    )
    .unwrap();
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
