//! Invariant 1 under `kill -9`: the real binary is killed at random moments while several
//! connections send; after each restart every control id that got `AA` must be in the log
//! exactly once. Messages in flight at the kill are re-sent after the restart, as a real
//! sender would, which also exercises duplicate detection across crashes.
//!
//! `CRASH_CYCLES` (default 50) and `CRASH_SEED` reproduce or lengthen a run.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::support::MllpClient;
use crate::support::hl7msg::{ack_code, msa, orm};
use crate::support::process::{spawn, write_config};

const SENDERS: usize = 4;

/// What the senders learned: acknowledged ids, and ids whose fate is unknown (in flight
/// at the kill).
#[derive(Default)]
struct Ledger {
    acked: HashSet<String>,
    /// Per sender: the message sent but not answered when the daemon died; re-sent first.
    in_flight: HashMap<usize, String>,
    next: HashMap<usize, usize>,
}

async fn send_until_killed(addr: SocketAddr, sender: usize, ledger: Arc<Mutex<Ledger>>, progress: Arc<Notify>) {
    let mut c = MllpClient::connect(addr).await;
    loop {
        let id = {
            let mut l = ledger.lock().unwrap();
            match l.in_flight.get(&sender) {
                Some(id) => id.clone(),
                None => {
                    let n = l.next.entry(sender).or_default();
                    *n += 1;
                    let id = format!("K{sender}-{n}");
                    l.in_flight.insert(sender, id.clone());
                    id
                }
            }
        };
        if !c.try_write(&crate::support::mllp::frame(&orm(&id, "A"))).await {
            return;
        }
        let Some(ack) = c.read_ack().await else { return };
        assert_eq!(msa(&ack)[2], id);
        assert_eq!(ack_code(&ack), "AA");
        let mut l = ledger.lock().unwrap();
        l.in_flight.remove(&sender);
        l.acked.insert(id);
        progress.notify_one();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_no_acknowledged_message() {
    let cycles: usize = std::env::var("CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let seed: u64 = std::env::var("CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    println!("crash test: {cycles} cycles, CRASH_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zenedge.toml");
    write_config(&config, &dir.path().join("state"));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    for cycle in 0..cycles {
        let mut daemon = tokio::task::spawn_blocking({
            let config = config.clone();
            move || spawn(&config)
        })
        .await
        .unwrap();
        let progress = Arc::new(Notify::new());
        let senders: Vec<_> = (0..SENDERS)
            .map(|s| tokio::spawn(send_until_killed(daemon.mllp, s, ledger.clone(), progress.clone())))
            .collect();
        // A random moment: after a random number of acknowledgements, plus a random number
        // of scheduler turns so the kill also lands between commit and ACK.
        for _ in 0..rng.usize(1..40) {
            progress.notified().await;
        }
        for _ in 0..rng.usize(0..50) {
            tokio::task::yield_now().await;
        }
        daemon.kill();
        for s in senders {
            s.await.unwrap();
        }
        println!("cycle {cycle}: {} acknowledged so far", ledger.lock().unwrap().acked.len());
    }
    let mut daemon = tokio::task::spawn_blocking(move || spawn(&config)).await.unwrap();
    let mut stored: HashMap<String, usize> = HashMap::new();
    for e in crate::support::http::all_events(daemon.http).await {
        *stored.entry(e["data"]["control_id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    daemon.kill();
    let ledger = ledger.lock().unwrap();
    assert!(ledger.acked.len() >= cycles, "the test must acknowledge messages in every cycle");
    for id in &ledger.acked {
        assert_eq!(stored.get(id), Some(&1), "{id} was acknowledged; it must be stored exactly once");
    }
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
}
