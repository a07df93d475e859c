//! The real binary with its log stream written to a file the test reads: for what it logs,
//! and for signals (SIGHUP, SIGTERM) sent to a real process.

use std::net::SocketAddr;

use super::eventually;
use super::process::write_config;

/// The real binary on a config in a temp dir (`extra` TOML appended), its log stream
/// written to a file the test reads.
pub struct Logged {
    _dir: tempfile::TempDir,
    log: std::path::PathBuf,
    child: std::process::Child,
}

impl Logged {
    pub fn start(extra: &str) -> Logged {
        Logged::start_edited(|text| text + extra)
    }

    /// Starts on the test config as `edit` rewrites it.
    pub fn start_edited(edit: impl FnOnce(String) -> String) -> Logged {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("zenedge.toml");
        write_config(&config, &dir.path().join("state"));
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, edit(text)).unwrap();
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
    pub async fn wait_for(&self, what: &str) -> String {
        eventually(&format!("{what:?} in the log"), std::time::Duration::from_secs(20), || async {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.contains(what) { Ok(text) } else { Err(text) }
        })
        .await
    }

    /// Sends `signal` (`HUP`, `TERM`…) to the daemon.
    pub fn signal(&self, signal: &str) {
        let status =
            std::process::Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal}");
    }

    /// The log so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, a clean exit, and the whole log.
    pub fn stop(mut self) -> String {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        assert!(self.child.wait().unwrap().success());
        std::fs::read_to_string(&self.log).unwrap()
    }
}

/// An address from the "zenedge is ready" line (`mllp=`, `dicom=`, `http=`).
pub fn ready_address(log: &str, name: &str) -> SocketAddr {
    let ready = log.lines().find(|l| l.contains("zenedge is ready")).expect("the ready line");
    let start = ready.find(&format!("{name}=")).expect("address in the ready line") + name.len() + 1;
    ready[start..].split_whitespace().next().unwrap().parse().unwrap()
}

/// A daemon left running by a failing test would go on using the machine: kill it.
impl Drop for Logged {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
