//! Durability: what was acknowledged survives restarts, shutdown and storage failure; what
//! cannot be stored is refused (AR), never acknowledged.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::support::hl7msg::{ack_code, msa, orm};
use crate::support::{MllpClient, TestDaemon};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_the_same_state_dir_keeps_events_and_continues_the_sequence() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    for i in 0..5 {
        assert_eq!(ack_code(&c.send(&orm(&format!("R-{i}"), "A")).await), "AA");
    }
    drop(c);
    let d = d.restart().await;
    assert_eq!(ack_code(&d.client().await.send(&orm("R-5", "A")).await), "AA");
    let events = d.events().await;
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(events[5]["data"]["control_id"], "R-5");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_disk_reserve_messages_are_refused_with_ar_and_not_stored() {
    let d = TestDaemon::start_with("[store]\ndisk_reserve = \"100%\"\n").await;
    let mut c = d.client().await;
    let ack = c.send(&orm("FULL-1", "A")).await;
    assert_eq!(ack_code(&ack), "AR");
    assert_eq!(msa(&ack)[2], "FULL-1");
    assert!(String::from_utf8_lossy(&ack).contains("ERR|"), "AR carries an ERR segment");
    let text = String::from_utf8_lossy(&ack);
    assert!(text.contains("below its disk reserve") && !text.contains("disk is full"), "{text}");
    assert_eq!(d.get("/api/v1/status").await.json()["last_seq"], 0, "nothing stored");
    let ready = d.get("/readyz").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["checks"]["disk_reserve"]["ok"], false);
    let metrics = d.get("/metrics").await.body;
    assert!(metrics.contains("zenedge_log_appends_refused_total{reason=\"disk_reserve\"} 1"), "{metrics}");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_is_answered_ar_and_stops_the_daemon_with_an_error() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    assert_eq!(ack_code(&c.send(&orm("OK-1", "A")).await), "AA");
    d.faults.fail_syncs();
    let ack = c.send(&orm("FAIL-1", "A")).await;
    assert_eq!(ack_code(&ack), "AR", "{}", String::from_utf8_lossy(&ack));
    let dir = d.dir.clone();
    let result = d.stopped().await;
    assert!(matches!(result, Err(zenedge::app::RunError::Writer(_))), "{result:?}");
    // After a clean reopen the acknowledged message is there. The refused one may or may not
    // have reached the disk (the fsync failed, not necessarily the write); the sender's
    // re-send settles it either way: acknowledged, and stored exactly once.
    let d = TestDaemon::start_in(dir, "").await;
    assert_eq!(ack_code(&d.client().await.send(&orm("FAIL-1", "A")).await), "AA");
    let ids: Vec<String> =
        d.events().await.iter().map(|e| e["data"]["control_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["OK-1", "FAIL-1"]);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_loses_nothing_acknowledged() {
    const SENDERS: usize = 8;
    let d = TestDaemon::start().await;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let enough = Arc::new(Notify::new());
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let (addr, acked, enough) = (d.mllp, acked.clone(), enough.clone());
        senders.push(tokio::spawn(async move {
            let mut c = MllpClient::connect(addr).await;
            let mut refused = 0;
            for i in 0.. {
                let id = format!("S{s}-{i}");
                if !c.try_write(&crate::support::mllp::frame(&orm(&id, "A"))).await {
                    break;
                }
                let Some(ack) = c.read_ack().await else { break };
                match ack_code(&ack).as_str() {
                    "AA" => {
                        let mut a = acked.lock().unwrap();
                        a.push(id);
                        if a.len() == 200 {
                            enough.notify_one();
                        }
                    }
                    "AR" => refused += 1,
                    other => panic!("unexpected {other}"),
                }
            }
            refused
        }));
    }
    enough.notified().await;
    let dir = d.dir.clone();
    d.stop().await.expect("clean shutdown");
    for s in senders {
        s.await.expect("every sender ends: answered or disconnected");
    }
    let d = TestDaemon::start_in(dir, "").await;
    let stored: Vec<String> =
        d.events().await.iter().map(|e| e["data"]["control_id"].as_str().unwrap().to_owned()).collect();
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "no message stored twice");
    for id in acked.lock().unwrap().iter() {
        assert!(unique.contains(id), "{id} was acknowledged but is not in the log");
    }
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_dir_of_another_site_is_refused() {
    let d = TestDaemon::start().await;
    let dir = d.dir.clone();
    d.stop().await.unwrap();
    let other = TestDaemon::start_in(dir, "[site]\nedge_id = \"e2\"\n").await;
    let err = other.stopped().await.unwrap_err().to_string();
    assert!(err.contains("edge_id") && err.contains("e1") && err.contains("e2"), "{err}");
}
