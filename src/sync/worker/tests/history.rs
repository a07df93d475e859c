//! Another history on the hub: a stop at `hub_diverged`, the fork, and a restored log the hub
//! holds or lacks.

use super::*;

/// The trial's edge: the hub holds 1..=15 of one history; this log holds the same 1..=5 (a
/// backup), then 20 events of its own from 6 on, and its cursor is the backup's, 5.
async fn restored_edge() -> Edge {
    let edge = Edge::new(config(8));
    edge.append(1..=25).await;
    cursor::set_cursor(&edge.log.handle(), 5).await.unwrap();
    edge.hub.hold_edge_events(&edge.log.reader(), 1..=5);
    edge.hub.hold_other_events(6..=15);
    edge
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_log_that_went_on_stops_at_hub_diverged_naming_the_first_differing_seq() {
    let mut edge = restored_edge().await;
    edge.start();
    let shared = edge.shared.clone();
    eventually("the divergence", || shared.status().diverged.is_some()).await;
    let d = edge.shared.status().diverged.unwrap();
    assert_eq!((d.first_differing_seq, d.fork_at, d.hub_stored_through, d.epoch), (6, 5, 15, 0));
    assert!(edge.hub.seen().is_empty(), "nothing was sent, nothing realigned");
    assert_eq!(edge.cursor(), 5, "nothing skipped");
    let status = edge.shared.status();
    assert!(status.last_error.as_deref().is_some_and(|e| e.starts_with("hub_diverged:") && e.contains("from seq 6")));
    assert!(edge.metrics.encode().contains("zenedge_sync_failures_total{kind=\"hub_diverged\"} 1"));
    // No retry loop: new events and a retry request do not make it send or ask again.
    let asked = edge.hub.with(|s| s.positions.len());
    edge.append(26..=27).await;
    edge.shared.request_retry();
    edge.hub.with(|s| s.fork_script.push_back(Failure::new(FailureKind::Connect, "scripted")));
    let refused = edge.shared.request_fork().unwrap().await.unwrap();
    assert!(refused.unwrap_err().contains("connect"), "the fork's failure is the answer");
    assert_eq!(edge.hub.with(|s| s.positions.len()), asked, "the stopped worker asked nothing more");
    assert!(edge.hub.seen().is_empty());
    assert!(edge.shared.status().diverged.is_some(), "a failed fork leaves the sync stopped");
    assert_eq!(edge.shared.hub_confirmed(), 5, "what retention may rely on stops at the fork point");
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_sends_the_divergent_events_to_a_new_epoch_and_leaves_the_hub_s_history_alone() {
    let mut edge = restored_edge().await;
    edge.start();
    let shared = edge.shared.clone();
    eventually("the divergence", || shared.status().diverged.is_some()).await;
    let before = edge.hub.with(|s| s.ids.clone());
    let done = edge.shared.request_fork().unwrap().await.unwrap().unwrap();
    assert_eq!((done.epoch, done.parent, done.fork_at, done.to_deliver), (1, 0, 5, 20));
    eventually("the new epoch holds the rest of this log", || edge.hub.with(|s| s.through(1)) == 25).await;
    eventually("cursor at the end", || edge.cursor() == 25).await;
    let reader = edge.log.reader();
    let epoch = edge.hub.with(|s| s.epochs[&1].clone());
    assert_eq!((epoch.parent, epoch.fork_at), (0, 5));
    let expected: BTreeMap<u64, Uuid> = (6..=25).map(|seq| (seq, reader.event_id(seq).unwrap().unwrap())).collect();
    assert_eq!(epoch.ids, expected, "every event of this log after the fork point, once");
    assert_eq!(edge.hub.with(|s| s.ids.clone()), before, "epoch 0 keeps its history untouched");
    assert!(edge.hub.seen().iter().all(|s| s.epoch == 1 && s.first > 5));
    assert_eq!(cursor::epoch(&reader).unwrap(), SyncEpoch { epoch: 1, fork_at: 5 });
    drop(reader);
    let status = edge.shared.status();
    assert!(status.diverged.is_none() && status.epoch == 1 && status.last_error_cleared_at.is_some(), "{status:?}");
    assert!(edge.shared.request_fork().is_err(), "nothing to fork any more");
    // A restart goes on in the new epoch.
    let (dir, hub) = edge.close().await;
    let mut edge = Edge::open(dir, hub, config(8));
    edge.append(26..=26).await;
    edge.start();
    eventually("the new event in the new epoch", || edge.hub.with(|s| s.through(1)) == 26).await;
    assert_eq!(edge.hub.with(|s| s.through(0)), 15);
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_409_from_another_history_stops_the_sync_instead_of_realigning() {
    let mut edge = Edge::new(config(4));
    edge.append(1..=12).await;
    // At start the hub holds nothing; then it answers from another history that shares 1..=3.
    edge.hub.with(|s| {
        for seq in 4..=12 {
            s.ids.insert(seq, Uuid::from_u128(0xbeef_0000 + u128::from(seq)));
        }
    });
    let reader = edge.log.reader();
    edge.hub.with(|s| {
        for seq in 1..=3 {
            s.ids.insert(seq, reader.event_id(seq).unwrap().unwrap());
        }
        let other = EventRef { seq: 12, event_id: s.ids[&12] };
        s.script.push_back(Outcome::Conflict(Reported::new(12, Some(other))));
    });
    edge.start();
    let shared = edge.shared.clone();
    eventually("the divergence", || shared.status().diverged.is_some()).await;
    assert_eq!(edge.shared.status().diverged.unwrap().first_differing_seq, 4);
    assert_eq!(edge.cursor(), 0, "not realigned to 12");
    assert_eq!(edge.hub.ranges(), vec![(1, 4)]);
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_naming_another_event_stops_the_sync() {
    let mut edge = Edge::new(config(4));
    edge.append(1..=8).await;
    edge.hub.with(|s| {
        s.ids.insert(4, Uuid::from_u128(0xbeef));
        let other = EventRef { seq: 4, event_id: Uuid::from_u128(0xbeef) };
        s.script.push_back(Outcome::Stored(Reported::new(4, Some(other))));
    });
    edge.start();
    let shared = edge.shared.clone();
    eventually("the divergence", || shared.status().diverged.is_some()).await;
    assert_eq!(edge.shared.status().diverged.unwrap().first_differing_seq, 4);
    assert_eq!(edge.cursor(), 0, "the cursor did not follow");
    assert_eq!(edge.hub.ranges(), vec![(1, 4)]);
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_log_the_hub_holds_or_lacks_goes_on_and_loses_its_restore_mark() {
    for hub_holds in [0, 3, 5] {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let edge = Edge::open(dir.clone(), FakeHub::new(), config(4));
        edge.append(1..=5).await;
        cursor::set_cursor(&edge.log.handle(), 5).await.unwrap();
        edge.hub.hold_edge_events(&edge.log.reader(), 1..=hub_holds);
        let (dir, hub) = edge.close().await;
        let opts = options(dir.path());
        let db = crate::projections::rebuild::open(&opts.path, &opts.site, 1 << 20).unwrap();
        cursor::mark_restored(&db, jiff::Timestamp::now()).unwrap();
        drop(db);
        let mut edge = Edge::open(dir, hub, config(4));
        edge.append(6..=8).await;
        edge.start();
        eventually("all stored", || edge.cursor() == 8).await;
        assert_eq!(edge.hub.with(|s| s.stored_through), 8, "hub held {hub_holds}");
        assert!(edge.shared.status().diverged.is_none(), "no false alarm: hub held {hub_holds}");
        assert_eq!(cursor::restored_at(&edge.log.reader()).unwrap(), None, "the mark is cleared once checked");
        assert!(edge.hub.with(|s| s.stored.values().all(|n| *n == 1)));
        edge.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_log_keeps_its_mark_while_the_hub_cannot_be_checked() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let edge = Edge::open(dir.clone(), FakeHub::new(), config(4));
    edge.append(1..=3).await;
    let (dir, hub) = edge.close().await;
    let opts = options(dir.path());
    let db = crate::projections::rebuild::open(&opts.path, &opts.site, 1 << 20).unwrap();
    cursor::mark_restored(&db, jiff::Timestamp::now()).unwrap();
    drop(db);
    // A hub that holds more of the same history: hub_ahead, nothing sent, the mark stays.
    let mut edge = Edge::open(dir, hub, config(4));
    edge.hub.hold_edge_events(&edge.log.reader(), 1..=3);
    edge.hub.with(|s| s.stored_through = 9);
    edge.start();
    let metrics = edge.metrics.clone();
    eventually("hub_ahead", || metrics.encode().contains("kind=\"hub_ahead\"} 2")).await;
    assert!(edge.hub.seen().is_empty());
    assert!(cursor::restored_at(&edge.log.reader()).unwrap().is_some());
    assert_eq!(edge.shared.hub_confirmed(), 0, "nothing confirmed for retention");
    edge.close().await;
}
