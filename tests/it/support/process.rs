//! The real `zenedge` binary as a child process (for `kill -9` and memory tests).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct RealDaemon {
    pub child: Child,
    pub mllp: SocketAddr,
    pub dicom: SocketAddr,
    pub http: SocketAddr,
}

/// A config for the real binary: every listener on port 0, state under `state`, the API
/// client `test-client` ([`super::access`]).
pub fn write_config(path: &Path, state: &Path) {
    write_config_with(path, state, &[]);
}

/// [`write_config`] with `extra` lines (`("mllp", "max_message_bytes = \"1MiB\"")`) added to
/// the `mllp`, `dicom` or `http` section.
pub fn write_config_with(path: &Path, state: &Path, extra: &[(&str, &str)]) {
    let lines = |section: &str| -> String {
        extra.iter().filter(|(s, _)| *s == section).map(|(_, line)| format!("{line}\n")).collect()
    };
    std::fs::write(
        path,
        format!(
            "[site]\ntenant_id = \"t\"\nhospital_id = \"h\"\nedge_id = \"e\"\n\
             [store]\nstate_dir = {:?}\ndisk_reserve = \"0\"\n\
             [mllp]\nlisten = \"127.0.0.1:0\"\n{}[dicom]\nlisten = \"127.0.0.1:0\"\n{}[http]\nlisten = \"127.0.0.1:0\"\n{}{}{}",
            state.display().to_string(),
            lines("mllp"),
            lines("dicom"),
            lines("http"),
            super::access::HTTP_KEYS,
            super::access::client_toml(),
        ),
    )
    .unwrap();
}

/// Runs `command` (the binary, or a wrapper that runs it) as `serve --config config`, its
/// log at info on a piped stderr.
pub fn serve(mut command: Command, config: &Path) -> Child {
    command
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start zenedge")
}

/// Starts the binary and waits for its "ready" line, which carries the bound addresses.
pub fn spawn(config: &Path) -> RealDaemon {
    let mut child = serve(Command::new(env!("CARGO_BIN_EXE_zenedge")), config);
    let ready = ChildLines::new(child.stderr.take().unwrap()).wait_for("zenedge is ready", Duration::from_secs(60));
    let field = |name: &str| -> SocketAddr {
        let start = ready.find(&format!("{name}=")).expect("address in ready line") + name.len() + 1;
        ready[start..].split_whitespace().next().unwrap().parse().unwrap()
    };
    RealDaemon { mllp: field("mllp"), dicom: field("dicom"), http: field("http"), child }
}

/// A daemon left running by a failing test would go on using the machine: kill it.
impl Drop for RealDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RealDaemon {
    /// `kill -9` and reap.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().unwrap();
    }

    /// Peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap()
    }
}

/// A child's stderr, read line by line on a thread that drains it to the end (so the child
/// never blocks on a full pipe, also once nobody waits for its lines any more).
pub struct ChildLines {
    lines: mpsc::Receiver<String>,
    /// The lines passed over while waiting (for failure messages).
    pub seen: Vec<String>,
}

impl ChildLines {
    pub fn new(stderr: ChildStderr) -> ChildLines {
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        ChildLines { lines, seen: Vec::new() }
    }

    /// The next line holding `needle`; fails the test, with what the child printed, after
    /// `limit` or when its output ends first.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => self.seen.push(line),
                Err(e) => panic!("no line with {needle:?} in the child's output ({e}): {:#?}", self.seen),
            }
        }
    }
}
