//! Operator tools. `zenedge backup` copies a running daemon's log and instance files while it
//! keeps acknowledging messages; the copy is consistent (one snapshot of the log, the files
//! its events name) and, restored with `zenedge restore`, passes `zenedge verify` and serves
//! the same events. `zenedge events` exports and tails the log as JSON lines.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::support::TestDaemon;
use crate::support::access::client_toml_for;
use crate::support::dataset::Instance;
use crate::support::hl7msg::{ack_code, orm};
use crate::support::scu::store_all;

const TOKEN: &str = "0123456789abcdef-operator";

fn zenedge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zenedge"))
}

/// A config file for the test daemon's site, state in `state`, the API at `http` with the
/// operator token.
fn config_file(dir: &Path, name: &str, state: &Path, http: std::net::SocketAddr) -> PathBuf {
    crate::support::config::write_for_daemon(&dir.join(name), state, http, Some(TOKEN))
}

async fn with_token() -> TestDaemon {
    TestDaemon::start_with(&format!("[http]\noperator_token = \"{TOKEN}\"\n")).await
}

async fn run(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_while_ingesting_restores_to_a_copy_that_verifies_and_serves_the_same_events() {
    let d = with_token().await;
    let mut c = d.client().await;
    for i in 0..5 {
        assert_eq!(ack_code(&c.send(&orm(&format!("B-{i}"), &format!("ACC-{i}"))).await), "AA");
    }
    let mut replaced = Instance::ct(30, 1, 1);
    replaced.pixel_bytes = 2048;
    let mut instances: Vec<Instance> = (1..=3).map(|n| Instance::ct(30, 1, n)).collect();
    instances.push(replaced);
    store_all(d.dicom, instances).await;
    // Intake goes on during the backup: messages and instances.
    let stop = Arc::new(AtomicBool::new(false));
    let ingest = {
        let (stop, mllp, dicom) = (stop.clone(), d.mllp, d.dicom);
        tokio::spawn(async move {
            let mut c = crate::support::MllpClient::connect(mllp).await;
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                assert_eq!(ack_code(&c.send(&orm(&format!("LIVE-{n}"), "ACC-LIVE")).await), "AA");
                if n % 5 == 0 {
                    store_all(dicom, vec![Instance::ct(31, 1, n + 1)]).await;
                }
                n += 1;
            }
            n
        })
    };
    let work = tempfile::tempdir().unwrap();
    let to = work.path().join("backup");
    let config = config_file(work.path(), "live.toml", d.dir.path(), d.http);
    let mut command = zenedge();
    command.args(["backup", "--config"]).arg(&config).arg("--to").arg(&to);
    let out = run(command).await;
    stop.store(true, Ordering::Release);
    let sent_during = ingest.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("instance files"), "{stdout}");
    assert!(to.join("zenedge.redb").is_file() && !to.join("zenedge.redb.part").exists());
    assert!(sent_during > 0);
    let live = d.events().await;
    let live_dir = d.dir.clone();
    d.stop().await.unwrap();

    // Restore into a new state directory, then verify it with the daemon stopped.
    let restored = Arc::new(tempfile::tempdir().unwrap());
    crate::support::daemon::copy_master_key(live_dir.path(), restored.path());
    let restored_config = config_file(work.path(), "restored.toml", restored.path(), "127.0.0.1:0".parse().unwrap());
    let mut command = zenedge();
    command.args(["restore", "--from"]).arg(&to).arg("--config").arg(&restored_config);
    let out = run(command).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut command = zenedge();
    command.args(["verify", "--config"]).arg(&restored_config);
    let out = run(command).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("projections match the log"));

    // The restored daemon serves a prefix of the live log, and every file is there.
    let r = TestDaemon::start_in(restored.clone(), "").await;
    let copy = r.events().await;
    assert!(!copy.is_empty() && copy.len() <= live.len());
    assert_eq!(copy[..], live[..copy.len()], "the copy is the log up to one commit");
    let stored: Vec<_> = copy.iter().filter(|e| e["event_type"] == "InstanceStored").collect();
    assert!(stored.len() >= 4, "the instances stored before the backup are in it");
    for e in stored {
        let file = zenedge::operator::snapshot::InstanceFile {
            seq: e["seq"].as_u64().unwrap(),
            path: e["data"]["file_path"].as_str().unwrap().to_owned(),
            size: e["data"]["size"].as_u64().unwrap(),
            sha256: e["data"]["sha256"].as_str().unwrap().to_owned(),
        };
        assert_eq!(zenedge::operator::snapshot::check_file(restored.path(), &file), None);
    }
    r.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_is_for_operators_only() {
    let reader = "reader-token-0123456789";
    let d = TestDaemon::start_with(&format!(
        "[http]\noperator_token = \"{TOKEN}\"\n{}",
        client_toml_for("viewer", reader, &["read"])
    ))
    .await;
    let response = crate::support::http::get_as(d.http, "/api/v1/backup", None).await;
    assert_eq!(response.status, 401, "anonymous: {}", response.body);
    let response = crate::support::http::get_as(d.http, "/api/v1/backup", Some(reader)).await;
    assert_eq!(response.status, 403, "a client without the operator scope: {}", response.body);
    let work = tempfile::tempdir().unwrap();
    let (http, to) = (d.http, work.path().join("b"));
    let err =
        tokio::task::spawn_blocking(move || zenedge::operator::backup::backup((http, "0123456789abcdef-wrong"), &to))
            .await
            .unwrap()
            .unwrap_err();
    assert!(err.contains("401"), "{err}");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_refuses_a_directory_that_is_not_empty() {
    let d = with_token().await;
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("something"), "x").unwrap();
    let (http, to) = (d.http, work.path().to_owned());
    let err = tokio::task::spawn_blocking(move || zenedge::operator::backup::backup((http, TOKEN), &to))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.contains("is not empty"), "{err}");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_used_state_directory_a_running_daemon_and_another_site_and_force_writes_over_it() {
    let d = with_token().await;
    d.client().await.send(&orm("R-1", "ACC-1")).await;
    let work = tempfile::tempdir().unwrap();
    let (http, to) = (d.http, work.path().join("b"));
    let backup_dir = to.clone();
    let summary = tokio::task::spawn_blocking(move || zenedge::operator::backup::backup((http, TOKEN), &backup_dir))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((summary.events, summary.problem_count), (1, 0));
    let running = crate::support::daemon::test_config(d.dir.path(), "");
    let err = zenedge::operator::restore::restore(&to, &running, false).unwrap_err();
    assert!(err.contains("is not empty") && err.contains("--force"), "{err}");
    let err = zenedge::operator::restore::restore(&to, &running, true).unwrap_err();
    assert!(err.contains("stop the daemon"), "{err}");
    let other = tempfile::tempdir().unwrap();
    let mut elsewhere = crate::support::daemon::test_config(other.path(), "");
    elsewhere.site.edge_id = "e2".into();
    let err = zenedge::operator::restore::restore(&to, &elsewhere, false).unwrap_err();
    assert!(err.contains("the backup belongs to edge_id \"e1\" but the config says \"e2\""), "{err}");
    assert!(!other.path().join("zenedge.redb").exists(), "nothing was written");
    let dir = d.dir.clone();
    d.client().await.send(&orm("R-2", "ACC-2")).await;
    d.stop().await.unwrap();
    let restored = zenedge::operator::restore::restore(&to, &running, true).unwrap();
    assert_eq!((restored.events, restored.last_seq, restored.problem_count), (1, 1, 0), "back to the backup");
    let d = TestDaemon::start_in(dir, "").await;
    assert_eq!(d.events().await.len(), 1);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_left_by_an_interrupted_backup_are_removed_at_start() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    std::fs::create_dir(dir.path().join(".backup")).unwrap();
    std::fs::write(dir.path().join(".backup/left.redb"), "x").unwrap();
    let d = TestDaemon::start_in(dir.clone(), "").await;
    assert_eq!(d.get("/healthz").await.status, 200);
    assert!(!dir.path().join(".backup/left.redb").exists());
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_prints_the_log_as_json_lines_and_exits_0_at_its_end() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    for i in 0..3 {
        c.send(&orm(&format!("E-{i}"), "ACC-E")).await;
    }
    let work = tempfile::tempdir().unwrap();
    let config = config_file(work.path(), "edge.toml", d.dir.path(), d.http);
    let mut command = zenedge();
    command.args(["events", "--config"]).arg(&config);
    let out = run(command).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines, d.events().await);
    let mut command = zenedge();
    command.args(["events", "--after", "2", "--config"]).arg(&config);
    let out = run(command).await;
    let seqs: Vec<u64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [3]);
    d.stop().await.unwrap();
}

#[test]
fn events_pages_through_the_whole_log() {
    // The paging loop follows `next` until it is null.
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let pages = [r#"{"items":[{"seq":1},{"seq":2}],"next":2}"#, r#"{"items":[{"seq":3}],"next":null}"#];
    let answered = std::thread::spawn(move || {
        let mut paths = Vec::new();
        for page in pages {
            let (mut stream, _) = server.accept().unwrap();
            let mut request = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            while reader.read_line(&mut request).unwrap() > 2 && !request.ends_with("\r\n\r\n") {}
            paths.push(request.lines().next().unwrap().to_owned());
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
            std::io::Write::write_all(&mut stream, response.as_bytes()).unwrap();
        }
        paths
    });
    let mut out = Vec::new();
    let last = zenedge::operator::events::export(addr, 0, &mut out).unwrap();
    assert_eq!(last, 3);
    assert_eq!(String::from_utf8(out).unwrap(), "{\"seq\":1}\n{\"seq\":2}\n{\"seq\":3}\n");
    let paths = answered.join().unwrap();
    assert!(paths[0].contains("after=0&limit=1000") && paths[1].contains("after=2&limit=1000"), "{paths:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_prints_each_event_as_it_is_committed() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    c.send(&orm("F-0", "ACC-F")).await;
    let work = tempfile::tempdir().unwrap();
    let config = config_file(work.path(), "edge.toml", d.dir.path(), d.http);
    let mut child = zenedge()
        .args(["events", "--follow", "--after", "0", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let first: serde_json::Value = serde_json::from_str(&rx.recv().await.unwrap()).unwrap();
    assert_eq!(first["seq"], 1);
    c.send(&orm("F-1", "ACC-F")).await;
    let second: serde_json::Value = serde_json::from_str(&rx.recv().await.unwrap()).unwrap();
    assert_eq!((second["seq"].as_u64(), second["event_type"].as_str()), (Some(2), Some("HL7MessageReceived")));
    assert_eq!(second, d.events().await[1]);
    child.kill().unwrap();
    child.wait().unwrap();
    d.stop().await.unwrap();
}

#[test]
fn events_without_a_running_daemon_says_so_and_exits_1() {
    let work = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = config_file(work.path(), "edge.toml", work.path(), format!("127.0.0.1:{port}").parse().unwrap());
    for follow in [false, true] {
        let mut command = zenedge();
        command.args(["events", "--config"]).arg(&config);
        if follow {
            command.arg("--follow");
        }
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("does not answer at 127.0.0.1:{port}")), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_reports_an_instance_file_that_is_missing_or_different() {
    let d = with_token().await;
    store_all(d.dicom, vec![Instance::ct(40, 1, 1), Instance::ct(40, 1, 2)]).await;
    let files: Vec<String> = d
        .events()
        .await
        .iter()
        .filter(|e| e["event_type"] == "InstanceStored")
        .map(|e| e["data"]["file_path"].as_str().unwrap().to_owned())
        .collect();
    std::fs::remove_file(d.dir.path().join(&files[0])).unwrap();
    let work = tempfile::tempdir().unwrap();
    let (http, to) = (d.http, work.path().join("b"));
    let summary = tokio::task::spawn_blocking(move || zenedge::operator::backup::backup((http, TOKEN), &to))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((summary.files, summary.problem_count), (1, 1));
    assert!(summary.problems[0].starts_with(&format!("{} (event 1): missing", files[0])), "{:?}", summary.problems);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_that_would_eat_into_the_disk_reserve_is_refused_with_507() {
    let d =
        TestDaemon::start_with(&format!("[store]\ndisk_reserve = \"100%\"\n[http]\noperator_token = \"{TOKEN}\"\n"))
            .await;
    let work = tempfile::tempdir().unwrap();
    let (http, to) = (d.http, work.path().join("b"));
    let err = tokio::task::spawn_blocking(move || zenedge::operator::backup::backup((http, TOKEN), &to))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.contains("507") && err.contains("disk reserve"), "{err}");
    assert_eq!(std::fs::read_dir(d.dir.path().join(".backup")).map(|d| d.count()).unwrap_or(0), 0);
    d.stop().await.unwrap();
}

/// Every file below `dir`, relative, sorted (directories named with a trailing `/`).
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let entry = entry.unwrap();
            let name = entry.path().strip_prefix(dir).unwrap().display().to_string();
            if entry.file_type().unwrap().is_dir() {
                out.push(format!("{name}/"));
                pending.push(entry.path());
            } else {
                out.push(name);
            }
        }
    }
    out.sort();
    out
}

/// A failed restore leaves nothing startable: a backup with a truncated instance file (as a
/// broken copy or disk would leave it) is refused, an empty state directory stays empty, and
/// a used one keeps what it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_that_fails_its_checks_leaves_nothing_to_start_on() {
    let d = with_token().await;
    assert_eq!(ack_code(&d.client().await.send(&orm("T-1", "ACC-T")).await), "AA");
    store_all(d.dicom, vec![Instance::ct(50, 1, 1), Instance::ct(50, 1, 2)]).await;
    let work = tempfile::tempdir().unwrap();
    let (http, to) = (d.http, work.path().join("backup"));
    let backup_dir = to.clone();
    let summary = tokio::task::spawn_blocking(move || zenedge::operator::backup::backup((http, TOKEN), &backup_dir))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary.problem_count, 0);
    let live_events = d.events().await;
    let live = d.dir.clone();
    let live_tree = tree(live.path());
    d.stop().await.unwrap();
    let truncated = live_events
        .iter()
        .find(|e| e["event_type"] == "InstanceStored")
        .map(|e| e["data"]["file_path"].as_str().unwrap().to_owned())
        .unwrap();
    std::fs::OpenOptions::new().write(true).open(to.join(&truncated)).unwrap().set_len(1000).unwrap();

    // Into an empty state directory: refused, and it stays empty.
    let empty = tempfile::tempdir().unwrap();
    crate::support::daemon::copy_master_key(live.path(), empty.path());
    let config = config_file(work.path(), "restored.toml", empty.path(), "127.0.0.1:0".parse().unwrap());
    let mut command = zenedge();
    command.args(["restore", "--from"]).arg(&to).arg("--config").arg(&config);
    let out = run(command).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&truncated) && stderr.contains("1000 bytes"), "{stderr}");
    assert!(stderr.contains("nothing was put in place"), "{stderr}");
    assert_eq!(tree(empty.path()), ["master.key"], "no database, no instance files, no side directory");
    let mut command = zenedge();
    command.args(["verify", "--config"]).arg(&config);
    let out = run(command).await;
    assert!(!out.status.success(), "verify has nothing to start on: {}", String::from_utf8_lossy(&out.stdout));

    // Over the used one with --force: it keeps what it had.
    let running = crate::support::daemon::test_config(live.path(), "");
    zenedge::operator::restore::restore(&to, &running, true).map(|s| assert_eq!(s.problem_count, 1)).unwrap();
    assert_eq!(tree(live.path()), live_tree, "nothing moved in");
    let d = TestDaemon::start_in(live, "").await;
    assert_eq!(d.events().await, live_events);
    d.stop().await.unwrap();
}

/// A restored log is marked: the sync checks the hub before it sends anything (and retention
/// deletes nothing) until the hub was found to hold the same history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_log_is_marked_as_restored() {
    let d = with_token().await;
    d.client().await.send(&orm("M-1", "ACC-M")).await;
    let work = tempfile::tempdir().unwrap();
    let (http, to) = (d.http, work.path().join("b"));
    let backup_dir = to.clone();
    tokio::task::spawn_blocking(move || zenedge::operator::backup::backup((http, TOKEN), &backup_dir))
        .await
        .unwrap()
        .unwrap();
    let live_dir = d.dir.clone();
    d.stop().await.unwrap();
    let restored = Arc::new(tempfile::tempdir().unwrap());
    crate::support::daemon::copy_master_key(live_dir.path(), restored.path());
    let config = crate::support::daemon::test_config(restored.path(), "");
    zenedge::operator::restore::restore(&to, &config, false).unwrap();
    let options = zenedge::log::LogOptions::from_config(&config);
    let log = zenedge::projections::open_log(
        &options,
        zenedge::projections::schema(),
        Arc::new(zenedge::telemetry::Metrics::new()),
        None,
    )
    .unwrap();
    assert!(zenedge::sync::cursor::restored_at(&log.reader()).unwrap().is_some());
    log.close().await.unwrap();
    let r = TestDaemon::start_in(restored, "").await;
    let status = r.get("/api/v1/status").await.json();
    assert!(status["sync"]["restored_at"].is_string(), "the status says so: {status}");
    r.stop().await.unwrap();
}
