//! A restored edge never forks the hub's history silently (invariant 5: every event reaches
//! the hub, none overwritten or skipped). The real binaries: `zenedge hub` and the edge, a
//! backup restored into a new state directory. When the restored log took new events while
//! the hub already held others under those numbers, the sync stops at `hub_diverged` naming
//! the first differing seq, intake goes on, and `zenedge sync fork` makes the hub keep both
//! histories, byte for byte. A restore the hub is level with, or behind, raises no alarm.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use zenedge::events::Envelope;
use zenedge::events::Event;

use crate::support::hl7msg::{ack_code, orm};
use crate::support::http::get;
use crate::support::hubs::{Backing, Store};
use crate::support::process::{ChildLines, RealDaemon, spawn};
use crate::support::{MllpClient, eventually};

const EDGE: &str = "edge-5";
const TOKEN: &str = "0123456789abcdef-operator";
const WAIT: Duration = Duration::from_secs(30);

fn zenedge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zenedge"))
}

/// `zenedge hub` as a child process on 127.0.0.1:0.
struct HubProcess {
    child: Child,
    addr: SocketAddr,
    backing: Backing,
}

impl HubProcess {
    fn start(backing: Backing) -> HubProcess {
        let mut child = zenedge()
            .args(["hub", "--listen", "127.0.0.1:0"])
            .args(backing.args())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = ChildLines::new(child.stderr.take().unwrap());
        let listening = lines.wait_for("hub is listening", Duration::from_secs(30));
        let start = listening.find("address=").expect("the address in the start line") + "address=".len();
        let addr = listening[start..].split_whitespace().next().unwrap().parse().unwrap();
        HubProcess { child, addr, backing }
    }

    async fn get(&self, path: &str) -> Value {
        let response = get(self.addr, path).await;
        assert_eq!(response.status, 200, "{path}: {}", response.body);
        response.json()
    }

    async fn stored_through(&self, epoch: u64) -> u64 {
        let path = if epoch == 0 { format!("/v1/edges/{EDGE}") } else { format!("/v1/edges/{EDGE}/epochs/{epoch}") };
        self.get(&path).await["stored_through"].as_u64().unwrap()
    }

    /// The control ids of the history of `epoch`, read back over HTTP, with the epoch whose
    /// stream holds each.
    async fn control_ids(&self, epoch: u64) -> Vec<(String, u64)> {
        let path = match epoch {
            0 => format!("/v1/edges/{EDGE}/events?limit=1000"),
            n => format!("/v1/edges/{EDGE}/epochs/{n}/events?limit=1000"),
        };
        let page = self.get(&path).await;
        assert!(page["next"].is_null(), "one page holds it all");
        let items = page["items"].as_array().unwrap();
        items
            .iter()
            .map(|i| (i["event"]["data"]["control_id"].as_str().unwrap().to_owned(), i["epoch"].as_u64().unwrap()))
            .collect()
    }

    /// SIGTERM and a clean exit; the hub's storage.
    fn stop(mut self) -> Backing {
        terminate(&mut self.child);
        self.backing.clone()
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn terminate(child: &mut Child) {
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success(), "a clean exit after SIGTERM");
}

/// An edge config for `state`, syncing to `hub` over plain HTTP, its API at `http`.
fn edge_config(path: &Path, state: &Path, hub: SocketAddr, http: &str) -> PathBuf {
    std::fs::write(
        path,
        format!(
            "[site]\ntenant_id = \"t1\"\nhospital_id = \"h1\"\nedge_id = \"{EDGE}\"\n\
             [store]\nstate_dir = {state:?}\ndisk_reserve = \"0\"\nmaster_key_file = {key:?}\n\
             [mllp]\nlisten = \"127.0.0.1:0\"\n[dicom]\nlisten = \"127.0.0.1:0\"\n\
             [http]\nlisten = \"{http}\"\noperator_token = \"{TOKEN}\"\n\
             [sync]\nhub_url = \"http://{hub}\"\nallow_plain_http = true\nretry_base = \"10ms\"\nretry_cap = \"100ms\"\n\
             breaker_failures = 3\nbreaker_open = \"100ms\"\ntimeout = \"2s\"\nconnect_timeout = \"2s\"\nlinger = \"5ms\"\n{client}",
            state = state.display().to_string(),
            // One box's key, beside the configs: the restored edge needs the key of its backup.
            key = path.parent().unwrap().join("master.key").display().to_string(),
            client = crate::support::access::client_toml(),
        ),
    )
    .unwrap();
    path.to_owned()
}

/// A running edge and a config file its command-line tools reach it with.
struct Edge {
    daemon: RealDaemon,
    cli: PathBuf,
}

fn start_edge(work: &Path, name: &str, state: &Path, hub: SocketAddr) -> Edge {
    let daemon = spawn(&edge_config(&work.join(format!("{name}.toml")), state, hub, "127.0.0.1:0"));
    let cli = edge_config(&work.join(format!("{name}-cli.toml")), state, hub, &daemon.http.to_string());
    Edge { daemon, cli }
}

impl Edge {
    /// Sends `prefix-n` for each `n`, each acknowledged `AA`; returns (control id, bytes).
    async fn send(&self, prefix: &str, range: std::ops::RangeInclusive<u32>) -> Vec<(String, Vec<u8>)> {
        let mut client = MllpClient::connect(self.daemon.mllp).await;
        let mut sent = Vec::new();
        for n in range {
            let control = format!("{prefix}-{n}");
            let message = orm(&control, &format!("ACC-{control}"));
            assert_eq!(ack_code(&client.send(&message).await), "AA", "intake of {control}");
            sent.push((control, message));
        }
        sent
    }

    async fn status(&self) -> Value {
        get(self.daemon.http, "/api/v1/status").await.json()
    }

    async fn wait_cursor(&self, at: u64) {
        eventually(&format!("the cursor at {at}"), WAIT, || async { self.status().await["sync"]["cursor"] == at })
            .await;
    }

    /// Runs `zenedge <args> --config <cli>`.
    async fn command(&self, args: &[&str]) -> std::process::Output {
        let mut command = zenedge();
        command.args(args).arg("--config").arg(&self.cli);
        tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
    }

    fn stop(mut self) {
        terminate(&mut self.daemon.child);
    }
}

async fn run(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

/// `zenedge restore --from backup` into a config for `state`.
async fn restore(work: &Path, backup: &Path, state: &Path, hub: SocketAddr) {
    let config = edge_config(&work.join("restore.toml"), state, hub, "127.0.0.1:0");
    let mut command = zenedge();
    command.args(["restore", "--from"]).arg(backup).arg("--config").arg(config);
    let out = run(command).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The HL7 bytes of each control id in the history of `epoch` as the hub stored it.
async fn stored_messages(backing: &Backing, epoch: u64) -> BTreeMap<String, Vec<u8>> {
    let store = backing.open().await;
    let (items, _) = store.history(EDGE, epoch, 0, usize::MAX).await.unwrap().expect("the epoch exists");
    items
        .iter()
        .map(|(_, _, bytes)| match Envelope::from_bytes(bytes).unwrap().event {
            Event::Hl7MessageReceived(m) => (m.control_id.clone(), m.raw.clone()),
            other => panic!("an HL7 message, not {other:?}"),
        })
        .collect()
}

/// Runs `body` on the redb store and, where PostgreSQL is installed, on PostgreSQL.
macro_rules! on_both_stores_blocking {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;

            #[test]
            fn redb() {
                $body(Store::Redb);
            }

            #[test]
            fn postgres() {
                match crate::support::postgres::shared() {
                    Ok(_) => $body(Store::Postgres),
                    Err(reason) => crate::support::postgres::skip(module_path!(), &reason),
                }
            }
        }
    };
}

on_both_stores_blocking!(
    a_restored_edge_that_took_new_data_stops_at_hub_diverged_and_a_fork_keeps_both_histories,
    fork_body
);

fn fork_body(store: Store) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let work = tempfile::tempdir().unwrap();
        let hub = HubProcess::start(store.backing().unwrap());

        // The first life: 5 messages synced, a backup, 10 more synced (the hub holds 15).
        let first = start_edge(work.path(), "first", &work.path().join("first"), hub.addr);
        let mut history_a = first.send("A", 1..=5).await;
        first.wait_cursor(5).await;
        let backup = work.path().join("backup");
        let out = first.command(&["backup", "--to", backup.to_str().unwrap()]).await;
        assert!(out.status.success(), "{}", text(&out));
        history_a.extend(first.send("A", 6..=15).await);
        first.wait_cursor(15).await;
        first.stop();
        assert_eq!(hub.stored_through(0).await, 15);

        // The backup restored into a new state directory; 20 new messages.
        let second_state = work.path().join("second");
        restore(work.path(), &backup, &second_state, hub.addr).await;
        let second = start_edge(work.path(), "second", &second_state, hub.addr);
        let mut history_b: Vec<_> = history_a[..5].to_vec();
        history_b.extend(second.send("B", 1..=10).await);
        eventually("the sync to stop at hub_diverged", WAIT, || async {
            !second.status().await["sync"]["diverged"].is_null()
        })
        .await;
        // Intake goes on while the sync is stopped.
        history_b.extend(second.send("B", 11..=20).await);
        let status = second.status().await;
        let diverged = &status["sync"]["diverged"];
        assert_eq!((diverged["first_differing_seq"].as_u64(), diverged["fork_at"].as_u64()), (Some(6), Some(5)));
        assert!(status["sync"]["last_error"].as_str().unwrap().starts_with("hub_diverged:"), "{status}");
        assert_eq!(status["last_seq"], 25);
        let ready = get(second.daemon.http, "/readyz").await;
        assert_eq!(ready.status, 200, "intake is fine: still ready");
        let ready = ready.json();
        assert_eq!(ready["degraded"], true);
        assert_eq!(ready["checks"]["sync"]["diverged"]["first_differing_seq"], 6);
        let out = second.command(&["status"]).await;
        let summary = text(&out);
        assert!(summary.contains("STOPPED (hub_diverged)") && summary.contains("from seq 6"), "{summary}");
        assert_eq!(hub.stored_through(0).await, 15, "nothing realigned, nothing sent");
        assert_eq!(hub.control_ids(0).await.len(), 15);

        // The operator keeps both histories.
        let out = second.command(&["sync", "fork"]).await;
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("epoch 1") && text(&out).contains("after seq 5"), "{}", text(&out));
        eventually("the new epoch to hold the restored history", WAIT, || async { hub.stored_through(1).await == 25 })
            .await;
        let status = second.status().await;
        assert!(status["sync"]["diverged"].is_null(), "{status}");
        assert_eq!(status["sync"]["epoch"], 1);
        assert!(!status["sync"]["last_error_cleared_at"].is_null(), "{status}");
        let edge = hub.get(&format!("/v1/edges/{EDGE}")).await;
        let epochs: Vec<_> =
            edge["epochs"].as_array().unwrap().iter().map(|e| (e["epoch"].clone(), e["fork_at"].clone())).collect();
        assert_eq!(epochs, [(0.into(), 0.into()), (1.into(), 5.into())]);
        let ids = |history: &[(String, Vec<u8>)]| history.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>();
        let read_a = hub.control_ids(0).await;
        assert_eq!(read_a.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>(), ids(&history_a));
        let read_b = hub.control_ids(1).await;
        assert_eq!(read_b.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>(), ids(&history_b));
        assert!(read_b[..5].iter().all(|(_, e)| *e == 0) && read_b[5..].iter().all(|(_, e)| *e == 1));
        second.stop();

        // Byte for byte: every acknowledged message of both histories, none overwritten.
        let hub_data = hub.stop();
        assert_eq!(stored_messages(&hub_data, 0).await, history_a.into_iter().collect::<BTreeMap<_, _>>());
        assert_eq!(stored_messages(&hub_data, 1).await, history_b.into_iter().collect::<BTreeMap<_, _>>());
    });
}

on_both_stores_blocking!(a_restore_the_hub_is_level_with_or_behind_raises_no_alarm_and_sync_goes_on, level_body);

fn level_body(store: Store) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let work = tempfile::tempdir().unwrap();
        let hub = HubProcess::start(store.backing().unwrap());
        let first = start_edge(work.path(), "first", &work.path().join("first"), hub.addr);
        let mut sent = first.send("A", 1..=5).await;
        first.wait_cursor(5).await;
        let backup = work.path().join("backup");
        let out = first.command(&["backup", "--to", backup.to_str().unwrap()]).await;
        assert!(out.status.success(), "{}", text(&out));
        first.stop();

        // Level: the hub holds exactly the backup's history.
        let level_state = work.path().join("level");
        restore(work.path(), &backup, &level_state, hub.addr).await;
        let level = start_edge(work.path(), "level", &level_state, hub.addr);
        sent.extend(level.send("B", 1..=3).await);
        level.wait_cursor(8).await;
        let status = level.status().await;
        assert!(status["sync"]["diverged"].is_null() && status["sync"]["restored_at"].is_null(), "{status}");
        let held: Vec<_> = hub.control_ids(0).await.into_iter().map(|(c, _)| c).collect();
        assert_eq!(held, sent.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>());
        level.stop();
        let old_hub = hub.stop();

        // Behind: a hub that lost what it held (restored from an empty copy).
        let fresh = HubProcess::start(store.backing().unwrap());
        let behind_state = work.path().join("behind");
        restore(work.path(), &backup, &behind_state, fresh.addr).await;
        let behind = start_edge(work.path(), "behind", &behind_state, fresh.addr);
        let mut resent = sent[..5].to_vec();
        resent.extend(behind.send("C", 1..=2).await);
        behind.wait_cursor(7).await;
        let status = behind.status().await;
        assert!(status["sync"]["diverged"].is_null() && status["sync"]["restored_at"].is_null(), "{status}");
        assert_eq!(status["sync"]["epoch"], 0, "no fork needed");
        behind.stop();
        let fresh_data = fresh.stop();
        assert_eq!(
            stored_messages(&fresh_data, 0).await,
            resent.into_iter().collect::<BTreeMap<_, _>>(),
            "refilled from the edge"
        );
        assert_eq!(stored_messages(&old_hub, 0).await.len(), 8);
    });
}
