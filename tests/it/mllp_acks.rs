//! Invariant 1 as the sender sees it: an `AA` means the message is in the log; the ACK's
//! fields follow HL7; a re-sent message is answered, not duplicated.

use crate::support::hl7msg::{ack_code, msa, msh, orm, orm_other_content};
use crate::support::{MllpClient, TestDaemon};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aa_is_sent_only_once_the_message_is_in_the_log() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    let ack = c.send(&orm("CTRL-1", "ACC-1")).await;
    assert_eq!(ack_code(&ack), "AA");
    let events = d.events().await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e["seq"], 1);
    assert_eq!(e["event_type"], "HL7MessageReceived");
    assert_eq!(e["event_version"], 1);
    assert_eq!(e["tenant_id"], "t1");
    assert_eq!(e["hospital_id"], "h1");
    assert_eq!(e["edge_id"], "e1");
    assert_eq!(e["data"]["control_id"], "CTRL-1");
    assert_eq!(e["data"]["message_type"], "ORM^O01");
    assert!(e["data"]["raw_text"].as_str().unwrap().starts_with("MSH|^~\\&|RIS|HOSP|"));
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_swaps_sender_and_receiver_and_echoes_the_control_id() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    let first = c.send(&orm("CTRL-A", "ACC-A")).await;
    let second = c.send(&orm("CTRL-B", "ACC-B")).await;
    assert_eq!(msh(&first, 2), "^~\\&");
    assert_eq!((msh(&first, 3), msh(&first, 4)), ("ZENEDGE".into(), "EDGE".into()));
    assert_eq!((msh(&first, 5), msh(&first, 6)), ("RIS".into(), "HOSP".into()));
    assert_eq!(msh(&first, 9), "ACK^O01^ACK");
    assert_eq!((msh(&first, 11), msh(&first, 12)), ("P".into(), "2.5.1".into()));
    assert_eq!(msa(&first)[2], "CTRL-A");
    assert_eq!(msa(&second)[2], "CTRL-B");
    let (id1, id2) = (msh(&first, 10), msh(&second, 10));
    assert!(!id1.is_empty() && id1 != "CTRL-A" && id1 != id2, "fresh MSH-10 per ACK: {id1} {id2}");
    assert_eq!(msh(&first, 7).len(), 19, "MSH-7 is YYYYMMDDHHMMSS+0000: {}", msh(&first, 7));
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resent_message_with_known_control_id_is_acked_identically_without_new_event() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    let first = c.send(&orm("DUP-1", "ACC-1")).await;
    let again = c.send(&orm("DUP-1", "ACC-1")).await;
    assert_eq!(first, again, "byte-identical ACK for a re-send");
    assert_eq!(d.events().await.len(), 1);
    let metrics = d.get("/metrics").await.body;
    assert!(metrics.contains("zenedge_hl7_duplicates_total 1"), "{metrics}");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resent_message_is_recognised_after_a_restart() {
    let d = TestDaemon::start().await;
    let first = d.client().await.send(&orm("DUP-R", "ACC-R")).await;
    let d = d.restart().await;
    let again = d.client().await.send(&orm("DUP-R", "ACC-R")).await;
    assert_eq!(first, again);
    assert_eq!(d.events().await.len(), 1);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_control_id_with_other_content_is_stored_and_flagged() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    assert_eq!(ack_code(&c.send(&orm("REUSE-1", "ACC-1")).await), "AA");
    assert_eq!(ack_code(&c.send(&orm_other_content("REUSE-1")).await), "AA");
    let events = d.events().await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["data"]["control_id_conflict"], false);
    assert_eq!(events[1]["data"]["control_id_conflict"], true);
    assert_eq!(events[1]["data"]["conflicts_with_seq"], 1);
    let metrics = d.get("/metrics").await.body;
    assert!(metrics.contains("zenedge_hl7_control_id_conflicts_total 1"), "{metrics}");
    // Each content keeps its own acknowledgement.
    let again = c.send(&orm_other_content("REUSE-1")).await;
    assert_eq!(ack_code(&again), "AA");
    assert_eq!(d.events().await.len(), 2);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_control_id_from_another_sender_is_not_a_duplicate() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    c.send(&orm("SAME-1", "ACC-1")).await;
    let other_sender = String::from_utf8(orm("SAME-1", "ACC-1")).unwrap().replacen("|RIS|HOSP|", "|LIS|HOSP|", 1);
    c.send(other_sender.as_bytes()).await;
    assert_eq!(d.events().await.len(), 2);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_connections_get_every_message_stored_once_with_gapless_seqs() {
    const CONNECTIONS: usize = 40;
    const PER_CONNECTION: usize = 15;
    let d = TestDaemon::start().await;
    let mut tasks = Vec::new();
    for conn in 0..CONNECTIONS {
        let addr = d.mllp;
        tasks.push(tokio::spawn(async move {
            let mut c = MllpClient::connect(addr).await;
            for i in 0..PER_CONNECTION {
                let ack = c.send(&orm(&format!("C{conn}-{i}"), &format!("A{conn}-{i}"))).await;
                assert_eq!(ack_code(&ack), "AA");
                assert_eq!(msa(&ack)[2], format!("C{conn}-{i}"));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let events = d.events().await;
    assert_eq!(events.len(), CONNECTIONS * PER_CONNECTION);
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=(CONNECTIONS * PER_CONNECTION) as u64).collect::<Vec<_>>());
    let mut ids: Vec<&str> = events.iter().map(|e| e["data"]["control_id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), CONNECTIONS * PER_CONNECTION);
    let metrics = d.get("/metrics").await.body;
    assert!(metrics.contains("zenedge_log_commit_batch_size_count"), "{metrics}");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enhanced_mode_answers_commit_acks_as_msh15_asks() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    let with_msh15 = |id: &str, mode: &str| {
        let m = String::from_utf8(orm(id, id)).unwrap();
        m.replacen("|P|2.5.1\r", &format!("|P|2.5.1|||{mode}|NE\r"), 1).into_bytes()
    };
    let ack = c.send(&with_msh15("ENH-AL", "AL")).await;
    assert_eq!(ack_code(&ack), "CA");
    assert_eq!(msa(&ack)[2], "ENH-AL");
    // NE: no accept ack at all; the next message's CA is the next frame we read.
    c.write(&crate::support::mllp::frame(&with_msh15("ENH-NE", "NE"))).await;
    let ack = c.send(&with_msh15("ENH-AL2", "AL")).await;
    assert_eq!(msa(&ack)[2], "ENH-AL2");
    assert_eq!(d.events().await.len(), 3, "the NE message is stored even though unanswered");
    let metrics = d.get("/metrics").await.body;
    assert!(metrics.contains("zenedge_hl7_messages_total{message_type=\"ORM^O01\",ack=\"CA\"} 3"), "{metrics}");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accession_is_read_where_the_site_config_says() {
    let default = TestDaemon::start().await;
    default.client().await.send(&orm("ACC-CFG", "ACC-77")).await;
    let order = &default.events().await[0]["data"]["summary"]["orders"][0];
    assert_eq!(
        (order["accession_number"].as_str(), order["accession_source"].as_str()),
        (Some("ACC-77"), Some("OBR-18"))
    );
    default.stop().await.unwrap();
    let filler = TestDaemon::start_with("[mllp]\naccession_from = [\"ORC-3\"]\n").await;
    filler.client().await.send(&orm("ACC-CFG", "ACC-77")).await;
    let order = &filler.events().await[0]["data"]["summary"]["orders"][0];
    assert_eq!(
        (order["accession_number"].as_str(), order["accession_source"].as_str()),
        (Some("FIL-ACC-77"), Some("ORC-3"))
    );
    filler.stop().await.unwrap();
}
