//! Retention in the daemon: a file whose deletion was committed but not yet unlinked (a
//! crash in between) is removed at the next start; the study shows it as deleted; a backup
//! expects it to be absent. The sweep's decisions are tested in `zenedge::log` with an
//! injected clock.

use std::process::Command;
use std::sync::Arc;

use zenedge::config::Config;
use zenedge::log::LogOptions;
use zenedge::telemetry::Metrics;

use crate::support::TestDaemon;
use crate::support::dataset::Instance;
use crate::support::scu::store_all;

/// Opens the log of a stopped daemon, records that the hub has every event, and has the
/// writer record the deletion of the first stored instance file, as retention does just
/// before it unlinks the file, but leaves the file in place (a crash before the unlink).
/// Returns the file's path relative to the state directory.
pub async fn record_first_deletion(config: &Config) -> String {
    let log = zenedge::projections::open_log(
        &LogOptions::from_config(config),
        zenedge::projections::schema(),
        Arc::new(Metrics::new()),
        None,
    )
    .unwrap();
    let head = log.reader().latest_seq().unwrap();
    zenedge::sync::cursor::set_cursor(&log.handle(), head).await.unwrap();
    let page = zenedge::retention::expired_files(&log.reader(), 0, jiff::Timestamp::MAX, 100_000, u64::MAX).unwrap();
    let first = page.files[..1].to_vec();
    let recorded =
        zenedge::retention::delete_files(&log.handle(), first.clone(), "90d".into(), u64::MAX).await.unwrap();
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
