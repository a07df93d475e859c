//! Retention in the daemon: a file whose deletion was committed but not yet unlinked (a
//! crash in between) is removed at the next start; the study shows it as deleted; a backup
//! expects it to be absent. The sweep's decisions are tested in `zenedge::log` with an
//! injected clock.

use std::process::Command;
use std::sync::Arc;

use zenedge::config::Config;
use zenedge::events::{CommittedInstance, Event, ForwardStatus, InstanceForwarded, InstancesCommitted, NewEvent};
use zenedge::log::{Aggregate, LogOptions};
use zenedge::telemetry::Metrics;

use crate::support::TestDaemon;
use crate::support::dataset::Instance;
use crate::support::scu::store_all;

/// The required destination [`record_first_deletion`] confirms with.
const ARCHIVE: &str = "central-pacs";

/// Opens the log of a stopped daemon, records that the archive confirmed the first stored
/// instance (its store's answer, then a Storage Commitment), and has the writer record the
/// deletion of that instance's file, as retention does just before it unlinks the file, but
/// leaves the file in place (a crash before the unlink). Returns the file's path relative to
/// the state directory.
pub async fn record_first_deletion(config: &Config) -> String {
    let log = zenedge::projections::open_log(
        &LogOptions::from_config(config),
        zenedge::projections::schema(),
        Arc::new(Metrics::new()),
        None,
    )
    .unwrap();
    let events = zenedge::events::after(&log.reader(), 0, 100_000).unwrap().items;
    let (seq, stored) = events
        .iter()
        .find_map(|e| match &e.event {
            Event::InstanceStored(i) => Some((e.seq, i.clone())),
            _ => None,
        })
        .expect("an instance was stored");
    let forwarded = InstanceForwarded {
        destination: ARCHIVE.into(),
        sop_instance_uid: stored.sop_instance_uid.clone(),
        study_instance_uid: stored.study_instance_uid.clone(),
        instance_seq: seq,
        status: ForwardStatus::Stored,
        peer_status: Some(0),
        answer: None,
        confirmed: false,
        commitment_transaction_uid: None,
    };
    let reference = CommittedInstance {
        sop_instance_uid: stored.sop_instance_uid.clone(),
        instance_seq: seq,
        failure_reason: None,
    };
    let committed = InstancesCommitted {
        destination: ARCHIVE.into(),
        transaction_uid: "2.25.42".into(),
        study_instance_uid: stored.study_instance_uid.clone(),
        committed: vec![reference],
        failed: Vec::new(),
    };
    let aggregate = Aggregate { kind: "instance".into(), id: stored.sop_instance_uid.clone() };
    log.handle()
        .append(vec![
            NewEvent::now(aggregate.clone(), Event::InstanceForwarded(Box::new(forwarded))),
            NewEvent::now(aggregate, Event::InstancesCommitted(Box::new(committed))),
        ])
        .await
        .unwrap();
    let required = vec![ARCHIVE.to_owned()];
    let page = zenedge::retention::expired_files(&log.reader(), 0, jiff::Timestamp::MAX, 100_000, &required).unwrap();
    let first = page.files[..1].to_vec();
    assert_eq!(first[0].instance_seq, seq);
    let recorded =
        zenedge::retention::delete_files(&log.handle(), first.clone(), "90d".into(), required).await.unwrap();
    assert_eq!(recorded, first);
    log.close().await.unwrap();
    first[0].file_path.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_recorded_deleted_before_a_crash_is_removed_at_start_and_shown_deleted() {
    let token = "0123456789abcdef-operator";
    let extra = format!("[http]\noperator_token = \"{token}\"\n");
    let d = TestDaemon::start_with(&extra).await;
    store_all(d.dicom, (1..=2).map(|n| Instance::ct(40, 1, n)).collect()).await;
    let study = Instance::ct(40, 1, 1).study;
    let config = crate::support::daemon::test_config(d.dir.path(), "");
    let dir = d.dir.clone();
    d.stop().await.unwrap();
    let deleted = record_first_deletion(&config).await;
    assert!(dir.path().join(&deleted).exists(), "the crash left the file");

    let d = TestDaemon::start_in(dir.clone(), &extra).await;
    assert_eq!(d.get("/healthz").await.status, 200);
    assert!(!dir.path().join(&deleted).exists(), "removed at start");
    let view = d.get(&format!("/api/v1/studies/{study}")).await.json();
    let instances: Vec<_> = view["series"][0]["instances"].as_array().unwrap().clone();
    assert_eq!(instances.len(), 2);
    for i in &instances {
        let path = i["file_path"].as_str().unwrap();
        assert_eq!(i["deleted"], path == deleted, "{i}");
        assert_eq!(dir.path().join(path).exists(), path != deleted);
    }
    let types: Vec<_> = d.events().await.iter().map(|e| e["event_type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(types.iter().filter(|t| *t == "InstanceFileDeleted").count(), 1);

    // A backup expects the deleted file to be absent, and its copy restores and verifies.
    let work = tempfile::tempdir().unwrap();
    let write_config = |name: &str, state: &std::path::Path, http: std::net::SocketAddr| {
        crate::support::config::write_for_daemon(&work.path().join(name), state, http, Some(token))
    };
    let run = |args: Vec<std::ffi::OsString>| {
        tokio::task::spawn_blocking(move || Command::new(env!("CARGO_BIN_EXE_zenedge")).args(args).output().unwrap())
    };
    let to = work.path().join("backup");
    let live = write_config("live.toml", dir.path(), d.http);
    let out =
        run(vec!["backup".into(), "--config".into(), live.into(), "--to".into(), to.clone().into()]).await.unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    d.stop().await.unwrap();
    let restored = tempfile::tempdir().unwrap();
    let restored_config = write_config("restored.toml", restored.path(), "127.0.0.1:0".parse().unwrap());
    let out =
        run(vec!["restore".into(), "--from".into(), to.into(), "--config".into(), restored_config.clone().into()])
            .await
            .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(vec!["verify".into(), "--config".into(), restored_config.into()]).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(!restored.path().join(&deleted).exists());
}
