//! Scheduled backups (`[backup]`): the daemon takes them on schedule while it takes data, each
//! complete and checked under its dated name, restorable to a copy that verifies; backups older
//! than `keep` go (never the newest) and half-written ones a crash left are swept; a backup that
//! fails is on `/readyz` and in the metrics, and the daemon goes on taking data. Nothing here
//! sleeps: `every 1s` schedules fire during the test, and every wait polls with a deadline.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::support::dataset::Instance;
use crate::support::hl7msg::{ack_code, orm};
use crate::support::http::{audit_trail, audited};
use crate::support::scu::store_all;
use crate::support::{TestDaemon, eventually};

/// The complete backups in `dir` (dated directories holding the database), sorted.
fn complete_backups(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("zenedge-") && dir.join(n).join("zenedge.redb").is_file())
        .collect();
    names.sort();
    names
}

fn backup_section(dir: &Path, schedule: &str, keep: &str) -> String {
    format!("[backup]\ndir = {:?}\nschedule = {schedule:?}\nkeep = {keep:?}\n", dir.display().to_string())
}

async fn run(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

fn zenedge(args: &[&str], config: &Path, extra: &[&Path]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zenedge"));
    command.args(args);
    for path in extra {
        command.arg(path);
    }
    command.arg("--config").arg(config);
    command
}

/// A metric's value on `/metrics` (a sample without labels).
async fn metric(d: &TestDaemon, name: &str) -> Option<f64> {
    let body = d.get("/metrics").await.body;
    body.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_fire_on_schedule_during_intake_and_one_restores_to_a_copy_that_verifies() {
    let work = tempfile::tempdir().unwrap();
    let backups = work.path().join("backups");
    let d = TestDaemon::start_with(&backup_section(&backups, "every 1s", "1h")).await;
    let mut c = d.client().await;
    assert_eq!(ack_code(&c.send(&orm("SCHED-1", "ACC-SCHED-1")).await), "AA");
    store_all(d.dicom, vec![Instance::ct(50, 1, 1), Instance::ct(50, 1, 2)]).await;
    let seq = d.get("/readyz").await.json()["last_seq"].as_u64().unwrap();

    // The first backup is the one missed before the start (there was none); a later one, fired
    // by the schedule, holds the message and the instances.
    let success = eventually("a scheduled backup holding the traffic", Duration::from_secs(60), || async {
        let status = d.get("/api/v1/status").await.json();
        let success = &status["backup"]["last_success"];
        let names = complete_backups(&backups);
        match success["last_seq"].as_u64() {
            Some(last) if last >= seq && names.len() >= 2 => Ok(success.clone()),
            _ => Err(format!("{names:?}, {}", status["backup"])),
        }
    })
    .await;
    assert!(success["files"].as_u64().unwrap() >= 2, "{success}");
    let name = success["name"].as_str().unwrap().to_owned();
    let ready = d.get("/readyz").await.json();
    assert_eq!(ready["checks"]["backup"]["enabled"], true);
    assert_eq!(ready["checks"]["backup"]["failing"], false, "{ready}");
    assert!(!ready["checks"]["backup"]["last_success"].is_null());
    assert!(metric(&d, "zenedge_backup_last_success_timestamp_seconds").await.unwrap() > 0.0);
    assert_eq!(metric(&d, "zenedge_backup_enabled").await, Some(1.0));
    assert_eq!(metric(&d, "zenedge_backup_failures_total").await, Some(0.0));
    // Audited like the manual backup, by the scheduler, naming the backup's directory.
    let trail = audit_trail(d.http).await;
    let accessed = audited(&trail, "110103");
    let path = backups.join(&name).display().to_string();
    let record = accessed.iter().find(|r| r["record"]["objects"][0]["id"] == path.as_str()).expect("its record");
    assert_eq!(record["record"]["participants"][0]["user_id"], "scheduled-backup");
    let live = d.events().await;
    let live_dir = d.dir.clone();
    d.stop().await.unwrap();

    // Restored into a new state directory, it verifies and serves the log up to its last seq.
    let restored = Arc::new(tempfile::tempdir().unwrap());
    crate::support::daemon::copy_master_key(live_dir.path(), restored.path());
    let config = crate::support::config::write(&work.path().join("restored.toml"), restored.path(), "");
    let out = run(zenedge(&["restore", "--from"], &config, &[&backups.join(&name)])).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(zenedge(&["verify"], &config, &[])).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("projections match the log"));
    let r = TestDaemon::start_in(restored.clone(), "").await;
    let copy = r.events().await;
    let last = success["last_seq"].as_u64().unwrap() as usize;
    assert_eq!(copy.len(), last, "the backup holds the log up to its last seq");
    assert_eq!(copy[..], live[..last]);
    r.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_older_than_keep_are_pruned_but_not_the_newest_and_half_written_ones_are_swept() {
    let work = tempfile::tempdir().unwrap();
    let backups = work.path().join("backups");
    let old = |name: &str| -> PathBuf {
        let dir = backups.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("zenedge.redb"), b"an old backup").unwrap();
        dir
    };
    old("zenedge-20200101T000000Z");
    old("zenedge-20200102T000000Z");
    std::fs::create_dir_all(backups.join(".zenedge-20200103T000000Z.part/instances")).unwrap();
    std::fs::create_dir_all(backups.join("not-a-backup")).unwrap();
    // Daily: the newest backup (2020) is more than a day old, so one is taken at start.
    let d = TestDaemon::start_with(&backup_section(&backups, "daily 02:00", "30d")).await;
    let left = eventually("a new backup, the old ones pruned", Duration::from_secs(60), || async {
        let names = complete_backups(&backups);
        let status = d.get("/api/v1/status").await.json();
        let pruned = names.len() == 1 && !names[0].starts_with("zenedge-2020");
        if pruned && !status["backup"]["last_success"]["last_seq"].is_null() {
            Ok(names)
        } else {
            Err(format!("{names:?} {}", status["backup"]))
        }
    })
    .await;
    assert!(!backups.join(".zenedge-20200103T000000Z.part").exists(), "the half-written backup is swept");
    assert!(backups.join("not-a-backup").is_dir(), "nothing else is touched");
    let status = d.get("/api/v1/status").await.json();
    assert_eq!(status["backup"]["last_success"]["name"], left[0].as_str());
    assert!(status["backup"]["next_at"].is_string(), "the next daily backup is scheduled: {status}");
    d.stop().await.unwrap();

    // Restarted, the daemon finds its backup: recent, so none is taken at start.
    let d = TestDaemon::start_with(&backup_section(&backups, "daily 02:00", "30d")).await;
    let status = eventually("the newest backup found at start", Duration::from_secs(30), || async {
        let status = d.get("/api/v1/status").await.json();
        if status["backup"]["next_at"].is_string() { Ok(status) } else { Err(status.to_string()) }
    })
    .await;
    assert_eq!(status["backup"]["last_success"]["name"], left[0].as_str(), "{status}");
    assert_eq!(complete_backups(&backups), left);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backup_is_on_readyz_and_in_the_metrics_and_intake_goes_on() {
    let work = tempfile::tempdir().unwrap();
    // A directory that cannot be created (its parent is a file), even for root.
    let file = work.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let d = TestDaemon::start_with(&backup_section(&file.join("backups"), "every 1s", "1h")).await;
    let ready = eventually("two failed backups on /readyz", Duration::from_secs(30), || async {
        let response = d.get("/readyz").await;
        let failures = metric(&d, "zenedge_backup_failures_total").await.unwrap_or(0.0);
        if failures >= 2.0 { Ok(response) } else { Err(response.body) }
    })
    .await;
    assert_eq!(ready.status, 200, "a failed backup does not make the edge unready: {}", ready.body);
    let body = ready.json();
    let backup = &body["checks"]["backup"];
    assert_eq!(backup["failing"], true, "{body}");
    assert_eq!(body["degraded"], true);
    assert!(backup["last_success"].is_null());
    let reason = backup["last_failure"]["reason"].as_str().unwrap();
    assert!(reason.contains("cannot create") && reason.contains("a-file"), "{reason}");
    assert!(backup["last_failure"]["at"].is_string());
    assert!(metric(&d, "zenedge_backup_last_failure_timestamp_seconds").await.unwrap() > 0.0);
    assert_eq!(metric(&d, "zenedge_backup_last_success_timestamp_seconds").await, Some(0.0));
    let mut c = d.client().await;
    assert_eq!(ack_code(&c.send(&orm("AFTER-FAIL-1", "ACC-AF-1")).await), "AA");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_backup_is_an_error_line_naming_the_directory_and_the_reason() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let daemon = crate::support::logged::Logged::start(&backup_section(&file.join("backups"), "every 1h", "1d"));
    let log = daemon.wait_for("scheduled backup failed").await;
    let line = log.lines().find(|l| l.contains("scheduled backup failed")).unwrap();
    assert!(line.contains("ERROR") && line.contains("a-file") && line.contains("cannot create"), "{line}");
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_whose_instance_file_is_missing_fails_and_leaves_nothing_behind() {
    let work = tempfile::tempdir().unwrap();
    let backups = work.path().join("backups");
    let d = TestDaemon::start().await;
    store_all(d.dicom, vec![Instance::ct(51, 1, 1)]).await;
    let events = d.events().await;
    let stored = events.iter().find(|e| e["event_type"] == "InstanceStored").expect("stored");
    let file = d.dir.path().join(stored["data"]["file_path"].as_str().unwrap());
    let dir = d.dir.clone();
    d.stop().await.unwrap();
    std::fs::remove_file(&file).unwrap();

    let d = TestDaemon::start_in(dir, &backup_section(&backups, "every 1h", "1d")).await;
    let failure = eventually("the failed backup", Duration::from_secs(30), || async {
        let status = d.get("/api/v1/status").await.json();
        let failure = status["backup"]["last_failure"].clone();
        if failure.is_null() { Err(status["backup"].to_string()) } else { Ok(failure) }
    })
    .await;
    let reason = failure["reason"].as_str().unwrap();
    assert!(reason.contains("1 instance files are missing or differ from their events"), "{reason}");
    let left: Vec<_> = std::fs::read_dir(&backups).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "neither a backup nor its .part directory: {left:?}");
    d.stop().await.unwrap();
}
