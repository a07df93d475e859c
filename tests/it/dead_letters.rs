//! `zenedge dead-letters`: an operator lists, retries (one, or every parked one after a hub
//! fix) and skips the events the hub refused, from the command line, against the running
//! daemon; a daemon that is not running, an unknown seq and a missing operator token are
//! said plainly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use zenedge::hub::{self, HubOptions, HubStore};

use crate::support::hl7msg::{ack_code, orm};
use crate::support::{TestDaemon, eventually};

const TOKEN: &str = "operator-token-0123456789";

/// A CLI config for the daemon's site and API address, with or without the operator token.
fn cli_config(dir: &Path, name: &str, http: std::net::SocketAddr, token: bool) -> PathBuf {
    crate::support::config::write_for_daemon(&dir.join(name), &dir.join("state"), http, token.then_some(TOKEN))
}

async fn zenedge(args: &[&str], config: &Path) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zenedge"));
    command.arg("dead-letters").args(args).arg("--config").arg(config);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn letter(daemon: &TestDaemon) -> Value {
    daemon.get("/api/v1/dead-letters").await.json()["items"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_retried_and_skipped_from_the_command_line() {
    // A hub that refuses events over 8 KiB.
    let hub_dir = tempfile::tempdir().unwrap();
    let store = HubStore::open(hub_dir.path()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub_addr = listener.local_addr().unwrap();
    let stop_hub = CancellationToken::new();
    let options = HubOptions { max_event_bytes: 8 << 10, ..HubOptions::default() };
    tokio::spawn(hub::serve(listener, store, options, None, stop_hub.clone()));
    let sync = format!(
        "[sync]\nhub_url = \"http://{hub_addr}\"\nallow_plain_http = true\nretry_base = \"10ms\"\nretry_cap = \"100ms\"\n\
         linger = \"5ms\"\n[http]\noperator_token = \"{TOKEN}\"\n"
    );
    let daemon = TestDaemon::start_with(&sync).await;
    let mut client = daemon.client().await;
    assert_eq!(ack_code(&client.send(&orm("DL-1", "ACC-DL-1")).await), "AA");
    let mut big = String::from_utf8(orm("DL-BIG", "ACC-DL-BIG")).unwrap();
    big.push_str(&format!("NTE|1||{}\r", "x".repeat(20_000)));
    assert_eq!(ack_code(&client.send(big.as_bytes()).await), "AA");
    assert_eq!(ack_code(&client.send(&orm("DL-3", "ACC-DL-3")).await), "AA");
    eventually("the big event parked", Duration::from_secs(30), || async {
        letter(&daemon).await["status"] == "parked"
    })
    .await;
    let seq = letter(&daemon).await["seq"].as_u64().unwrap();
    let work = tempfile::tempdir().unwrap();
    let with_token = cli_config(work.path(), "operator.toml", daemon.http, true);
    let without = cli_config(work.path(), "reader.toml", daemon.http, false);
    // Root or the service user on the box: the daemon's state directory, no token configured.
    let local =
        crate::support::config::write_for_daemon(&work.path().join("local.toml"), daemon.dir.path(), daemon.http, None);

    let (code, _, err) = zenedge(&["list"], &without).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("401") && err.contains("local token"), "{err}");
    let (code, out, _) = zenedge(&["list"], &local).await;
    assert_eq!(code, Some(0));
    let line = out.lines().find(|l| l.starts_with(&seq.to_string())).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("parked") && line.contains("HL7MessageReceived") && line.contains("422"), "{line}");
    let (code, out, _) = zenedge(&["list", "--json"], &local).await;
    assert_eq!(code, Some(0));
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!((listed.len(), listed[0]["seq"].as_u64()), (1, Some(seq)));

    let (code, _, err) = zenedge(&["retry", &seq.to_string()], &without).await;
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("operator action") && err.contains("http.operator_token"), "{err}");
    let (code, _, err) = zenedge(&["retry", "9999"], &with_token).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("no dead letter with seq 9999"), "{err}");

    // The hub still refuses it: retried, parked again with one more attempt.
    let (code, out, err) = zenedge(&["retry", "--all"], &with_token).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&format!("dead letter {seq}: queued for redelivery")), "{out}");
    eventually("parked again", Duration::from_secs(30), || async {
        let l = letter(&daemon).await;
        l["status"] == "parked" && l["attempts"] == 2
    })
    .await;
    let (code, out, _) = zenedge(&["skip", &seq.to_string()], &with_token).await;
    assert_eq!(code, Some(0));
    assert!(out.contains(&format!("dead letter {seq}: skipped")), "{out}");
    let (code, out, _) = zenedge(&["retry", "--all"], &with_token).await;
    assert_eq!(code, Some(0));
    assert!(out.contains("no parked dead letters"), "{out}");
    let (code, _, err) = zenedge(&["skip", &seq.to_string()], &with_token).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("already skipped"), "{err}");

    daemon.stop().await.unwrap();
    stop_hub.cancel();
    let (code, _, err) = zenedge(&["list"], &without).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("does not answer") && err.contains("http.listen"), "{err}");
}
