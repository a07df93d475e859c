//! The systemd notification protocol, spoken by the real binary to a socket of the test's
//! own (as systemd's `NOTIFY_SOCKET`): `READY=1` once the log is open and every listener is
//! bound, `WATCHDOG=1` pings at half `WATCHDOG_USEC`, `STOPPING=1` on SIGTERM.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::MllpClient;
use crate::support::hl7msg::{ack_code, orm};
use crate::support::process::write_config;

/// Every notification received within `limit`, until one contains `until`.
fn receive_until(socket: &UnixDatagram, until: &str, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        socket
            .set_read_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))))
            .unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = text.contains(until);
                got.push(text);
                if done {
                    return got;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
            Err(e) => panic!("notify socket: {e}"),
        }
    }
    panic!("no {until:?} within {limit:?}; got {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_after_the_listeners_watchdog_pings_and_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zenedge.toml");
    write_config(&config, &dir.path().join("state"));
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zenedge"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let ready = receive_until(&socket, "READY=1", Duration::from_secs(20));
    assert!(!ready.iter().any(|m| m.contains("WATCHDOG=1")), "READY comes first: {ready:?}");
    // READY is sent once the listeners are bound: the address in the ready line takes an
    // order at once, and it is stored (the log is open).
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines.find_map(|l| l.ok().filter(|l| l.contains("zenedge is ready"))).unwrap();
    std::thread::spawn(move || for _ in lines {});
    let start = line.find("mllp=").unwrap() + 5;
    let mllp = line[start..].split_whitespace().next().unwrap().parse().unwrap();
    let mut client = MllpClient::connect(mllp).await;
    assert_eq!(ack_code(&client.send(&orm("SD-1", "ACC-SD-1")).await), "AA");
    // Pings at half the watchdog interval: several within a few intervals.
    for _ in 0..3 {
        receive_until(&socket, "WATCHDOG=1", Duration::from_secs(10));
    }
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    receive_until(&socket, "STOPPING=1", Duration::from_secs(10));
    assert!(child.wait().unwrap().success());
}
