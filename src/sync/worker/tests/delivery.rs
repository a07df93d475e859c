//! Delivery: in order, within the limits, the cursor moving only on the hub's word and
//! realigning on the same history.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_go_in_order_in_batches_within_the_event_limit() {
    let mut edge = Edge::new(config(4));
    edge.append(1..=10).await;
    edge.start();
    eventually("all stored", || edge.cursor() == 10).await;
    assert_eq!(edge.hub.ranges(), vec![(1, 4), (5, 8), (9, 10)]);
    assert!(edge.hub.with(|s| s.stored.values().all(|n| *n == 1) && s.stored.len() == 10));
    let seen = edge.hub.seen();
    assert_eq!(seen[0].body, vec![1, 2, 3, 4]);
    assert!(seen.iter().all(|s| s.skipped.is_empty() && !s.redelivery));
    edge.append(11..=12).await;
    eventually("new events follow", || edge.cursor() == 12).await;
    assert_eq!(edge.hub.ranges().last(), Some(&(11, 12)));
    assert_eq!(edge.shared.status().events_sent, 12);
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_stay_within_the_byte_limit() {
    let mut edge = Edge::new(config(100));
    edge.append(1..=9).await;
    let size = edge.log.reader().raw_event(1).unwrap().unwrap().len();
    edge.config.batch_max_bytes = size * 3 + size / 2;
    edge.start();
    eventually("all stored", || edge.cursor() == 9).await;
    assert_eq!(edge.hub.ranges(), vec![(1, 3), (4, 6), (7, 9)]);
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_is_not_full_lingers_for_more_events() {
    let mut config = config(6);
    config.linger = Duration::from_secs(3600);
    let mut edge = Edge::new(config);
    edge.append(1..=2).await;
    edge.start();
    // Two events wait; the batch is sent only once it is full, not after a timer.
    edge.append(3..=4).await;
    edge.append(5..=6).await;
    eventually("one full batch", || edge.cursor() == 6).await;
    assert_eq!(edge.hub.ranges(), vec![(1, 6)]);
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_moves_only_after_the_hub_stored_the_batch() {
    let mut edge = Edge::new(config(4));
    edge.hub.with(|s| s.script.extend([failure(FailureKind::Http5xx), failure(FailureKind::Timeout)]));
    edge.append(1..=6).await;
    edge.start();
    eventually("all stored", || edge.cursor() == 6).await;
    let seen = edge.hub.seen();
    assert_eq!(edge.hub.ranges(), vec![(1, 4), (1, 4), (1, 4), (5, 6)]);
    assert!(seen[..3].iter().all(|s| s.edge_cursor == 0), "failures leave the cursor");
    // The write of cursor 4 may overlap the next request; it is never ahead of the hub.
    assert!(seen.iter().all(|s| s.edge_cursor <= s.hub_stored_through));
    assert!([0, 4].contains(&seen[3].edge_cursor));
    assert!(edge.metrics.encode().contains("zenedge_sync_failures_total{kind=\"http_5xx\"} 1"));
    let status = edge.shared.status();
    assert!(status.last_error.as_deref().is_some_and(|e| e.starts_with("timeout")), "{status:?}");
    assert!(status.last_error_at.is_some() && status.last_error_cleared_at >= status.last_error_at, "{status:?}");
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_write_that_fails_does_not_move_the_cursor() {
    let mut edge = Edge::new(config(4));
    edge.append(1..=4).await;
    let faults = edge.faults.clone();
    *edge.hub.hook.lock().unwrap() = Some(Box::new(move |_| faults.fail_syncs()));
    edge.start();
    let shared = edge.shared.clone();
    eventually("the failed write is reported", || {
        shared.status().last_error.is_some_and(|e| e.contains("cannot record the sync cursor 4"))
    })
    .await;
    assert_eq!(edge.shared.status().cursor, 0, "the worker's cursor did not move");
    assert_eq!(edge.hub.with(|s| s.stored_through), 4, "while the hub has the batch");
    let (dir, hub) = edge.close().await;
    *hub.hook.lock().unwrap() = None;
    // After a failed fsync the page cache may or may not hold the write: either way the
    // restarted worker ends where the hub is, without storing anything twice.
    let mut edge = Edge::open(dir, hub, config(4));
    edge.start();
    edge.append(5..=5).await;
    eventually("in step with the hub", || edge.cursor() == 5).await;
    assert!(edge.hub.with(|s| s.stored.values().all(|n| *n == 1)));
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_found_ahead_on_the_same_history_at_start_moves_the_cursor_forward_before_sending() {
    let mut edge = Edge::new(config(4));
    edge.append(1..=10).await;
    edge.hub.hold_edge_events(&edge.log.reader(), 1..=6);
    edge.start();
    eventually("all stored", || edge.cursor() == 10).await;
    assert_eq!(edge.hub.ranges(), vec![(7, 10)], "nothing the hub holds is sent again");
    assert_eq!(edge.hub.with(|s| s.positions.first().copied()), Some((0, None)), "the position came first");
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_answered_409_on_the_same_history_and_the_cursor_realigns_forward() {
    let mut edge = Edge::new(config(4));
    edge.hub.with(|s| s.lose_answers = 1);
    edge.append(1..=10).await;
    edge.start();
    eventually("all stored", || edge.cursor() == 10).await;
    let ranges = edge.hub.ranges();
    assert_eq!(ranges[..2], [(1, 4), (1, 4)], "the batch whose answer was lost goes again");
    assert_eq!(edge.hub.seen()[1].answer, Outcome::Conflict(edge.hub.with(|s| Reported::new(4, s.event_at(0, 4)))));
    assert_eq!(ranges[2..], [(5, 8), (9, 10)]);
    assert!(edge.hub.with(|s| s.stored.values().all(|n| *n == 1)), "nothing stored twice");
    assert_eq!(edge.shared.hub_confirmed(), 10);
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_restored_behind_the_cursor_realigns_it_backward() {
    let mut edge = Edge::new(config(4));
    edge.append(1..=10).await;
    cursor::set_cursor(&edge.log.handle(), 8).await.unwrap();
    edge.hub.hold_edge_events(&edge.log.reader(), 1..=3);
    edge.start();
    eventually("all stored", || edge.hub.with(|s| s.stored_through) == 10).await;
    assert_eq!(edge.hub.ranges(), vec![(4, 7), (8, 10)], "the position at start sends the cursor back first");
    eventually("cursor at the end", || edge.cursor() == 10).await;
    assert!(edge.shared.status().diverged.is_none(), "no false alarm");
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_beyond_the_end_of_the_log_is_a_failure_that_leaves_the_cursor() {
    let mut edge = Edge::new(config(4));
    edge.hub.with(|s| s.stored_through = 50);
    edge.append(1..=10).await;
    edge.start();
    let metrics = edge.metrics.clone();
    eventually("hub_ahead counted twice", || metrics.encode().contains("kind=\"hub_ahead\"} 2")).await;
    assert_eq!(edge.cursor(), 0);
    assert!(edge.hub.seen().is_empty(), "nothing is sent while the hub is ahead");
    let error = edge.shared.status().last_error.unwrap();
    assert!(error.starts_with("hub_ahead: the hub says it holds events up to 50"), "{error}");
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_asks_the_hub_again_and_refills_a_hub_restored_from_an_older_copy() {
    let mut config = config(4);
    config.position_check_interval = Duration::from_millis(20);
    let mut edge = Edge::new(config);
    edge.append(1..=10).await;
    edge.start();
    eventually("all stored", || edge.cursor() == 10).await;
    let asked = edge.hub.with(|s| s.positions.len());
    eventually("the idle worker asks again", || edge.hub.with(|s| s.positions.len()) > asked).await;
    // The hub is restored from an older copy: it holds 1..=6. No event is appended.
    edge.hub.with(|s| {
        s.stored_through = 6;
        s.ids.retain(|seq, _| *seq <= 6);
        s.stored.retain(|seq, _| *seq <= 6);
    });
    eventually("the hub refilled", || edge.hub.with(|s| s.stored_through) == 10).await;
    assert_eq!(edge.hub.ranges().last(), Some(&(7, 10)));
    assert!(edge.hub.with(|s| s.stored.len() == 10 && s.stored.values().all(|n| *n == 1)));
    assert!(edge.shared.status().diverged.is_none());
    edge.close().await;
}
