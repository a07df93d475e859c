//! What the daemon writes to its log stream (journald in production).

use std::net::SocketAddr;

use crate::support::MllpClient;
use crate::support::hl7msg::{ack_code, orm};
use crate::support::process::write_config;

/// The real binary on a config in a temp dir (`extra` TOML appended), its log stream
/// written to a file the test reads.
struct Logged {
    _dir: tempfile::TempDir,
    log: std::path::PathBuf,
    child: std::process::Child,
}

impl Logged {
    fn start(extra: &str) -> Logged {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("zenedge.toml");
        write_config(&config, &dir.path().join("state"));
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(extra);
        std::fs::write(&config, text).unwrap();
        let log = dir.path().join("stderr.log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_zenedge"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Logged { _dir: dir, log, child }
    }

    /// The log so far, once it contains `what` (fails after 20 s).
    async fn wait_for(&self, what: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.contains(what) {
                return text;
            }
            assert!(std::time::Instant::now() < deadline, "no {what:?} in: {text}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, a clean exit, and the whole log.
    fn stop(mut self) -> String {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        assert!(self.child.wait().unwrap().success());
        std::fs::read_to_string(&self.log).unwrap()
    }
}

/// Logs at INFO and above carry no patient data: a day's kinds of traffic (orders, a
/// re-send, a reused control id, a malformed message) leave no patient id, name, birth date
/// or clinical text in what the real binary writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_logs_carry_no_patient_data() {
    let daemon = Logged::start("");
    let text = daemon.wait_for("zenedge is ready").await;
    let ready = text.lines().find(|l| l.contains("zenedge is ready")).unwrap();
    let start = ready.find("mllp=").unwrap() + 5;
    let mllp: SocketAddr = ready[start..].split_whitespace().next().unwrap().parse().unwrap();
    let mut c = MllpClient::connect(mllp).await;
    assert_eq!(ack_code(&c.send(&orm("LOG-1", "ACC-LOG-1")).await), "AA");
    assert_eq!(ack_code(&c.send(&orm("LOG-1", "ACC-LOG-1")).await), "AA");
    assert_eq!(ack_code(&c.send(&crate::support::hl7msg::orm_other_content("LOG-1")).await), "AA");
    let broken = String::from_utf8(orm("LOG-2", "ACC-LOG-2")).unwrap().replace("MSH|^~\\&|", "MSH|");
    let _ = c.send(broken.as_bytes()).await;
    drop(c);
    let text = daemon.stop();
    assert!(text.contains("re-sent HL7 message"), "the traffic was logged at all: {text}");
    for secret in ["PAT-ACC-LOG", "INS-77", "Doe", "Jane", "19700101", "Headache", "House"] {
        assert!(!text.contains(secret), "{secret:?} in the logs:\n{text}");
    }
}

/// Retention configured without a hub: one WARN at start says nothing will be deleted (no
/// hub confirms what it holds), and it is true: no sweep runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_without_sync_warns_once_and_does_not_sweep() {
    let daemon = Logged::start("[retention]\ndicom_max_age = \"1d\"\n");
    daemon.wait_for("no file will be deleted").await;
    daemon.wait_for("zenedge is ready").await;
    let text = daemon.stop();
    let warnings: Vec<_> = text.lines().filter(|l| l.contains("WARN") && l.contains("sync is off")).collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(!text.contains("retention sweep done"), "{text}");
}
