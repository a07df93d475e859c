//! Refused events: bisect, park, name as skipped, redeliver on an operator's retry, keep
//! across a restart.

use super::*;

/// Eight events, `poison` refused by the hub: exactly it is parked, every other event is
/// stored once, and later batches name it as skipped.
async fn bisect_isolates(poison: u64, events: u64) {
    let mut edge = Edge::new(config(8));
    edge.hub.with(|s| s.poison.insert(poison));
    edge.append(1..=events).await;
    edge.start();
    eventually("all but the poison stored", || edge.cursor() == events).await;
    let letter = edge.letter(poison).expect("parked");
    assert_eq!(letter.status, DeadLetterStatus::Parked);
    assert_eq!(letter.attempts, 1);
    assert_eq!(letter.event_type, "HL7MessageReceived");
    assert!(letter.reason.contains(&format!("event {poison} is not acceptable")), "{}", letter.reason);
    assert_eq!(dead_letters::all(&edge.log.reader()).unwrap().len(), 1, "only the poison is parked");
    let stored = edge.hub.with(|s| s.stored.clone());
    let expected: BTreeMap<u64, u32> = (1..=events).filter(|s| *s != poison).map(|s| (s, 1)).collect();
    assert_eq!(stored, expected, "every other event stored exactly once");
    assert!(edge.hub.with(|s| s.skipped.contains(&poison)));
    edge.append(events + 1..=events + 2).await;
    eventually("later events stored", || edge.cursor() == events + 2).await;
    let seen = edge.hub.seen();
    let with_skip = seen.iter().find(|s| s.skipped == vec![poison]).expect("a batch names the poison as skipped");
    assert!(matches!(with_skip.answer, Outcome::Stored(_)));
    assert!(
        seen.iter().filter(|s| matches!(s.answer, Outcome::Refused(_))).all(|s| s.first <= poison && poison <= s.last)
    );
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bisect_parks_a_poison_event_in_the_middle() {
    bisect_isolates(5, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bisect_parks_a_poison_event_at_the_start() {
    bisect_isolates(1, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bisect_parks_a_poison_event_at_the_end() {
    bisect_isolates(8, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_alone_is_parked_at_once() {
    bisect_isolates(1, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bisect_keeps_batches_short_until_the_refused_range_is_passed() {
    let mut edge = Edge::new(config(8));
    edge.hub.with(|s| s.poison.insert(7));
    edge.append(1..=8).await;
    edge.start();
    eventually("all stored", || edge.cursor() == 8).await;
    let ranges = edge.hub.ranges();
    // 1..8 refused; halves of 4: 1..4 stored, 5..8 refused; halves of 2: 5..6 stored, 7..8
    // refused; singles: 7 refused and parked; then the rest at full size again.
    assert_eq!(ranges, vec![(1, 8), (1, 4), (5, 8), (5, 6), (7, 8), (7, 7), (7, 8)]);
    assert_eq!(edge.hub.seen().last().unwrap().skipped, vec![7]);
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_dead_letter_is_redelivered_alone() {
    let mut edge = Edge::new(config(8));
    edge.hub.with(|s| s.poison.insert(2));
    edge.append(1..=3).await;
    edge.start();
    eventually("parked and passed", || edge.cursor() == 3 && edge.letter(2).is_some()).await;
    // Still refused: parked again with one more attempt.
    dead_letters::act(&edge.log.handle(), 2, DeadLetterAction::Retry).await.unwrap().unwrap();
    edge.shared.request_retry();
    eventually("parked again", || edge.letter(2).unwrap().attempts == 2).await;
    assert_eq!(edge.letter(2).unwrap().status, DeadLetterStatus::Parked);
    // The hub was fixed: the redelivery is stored.
    edge.hub.with(|s| s.poison.clear());
    dead_letters::act(&edge.log.handle(), 2, DeadLetterAction::Retry).await.unwrap().unwrap();
    edge.shared.request_retry();
    eventually("delivered", || edge.letter(2).unwrap().status == DeadLetterStatus::Delivered).await;
    let redeliveries: Vec<_> = edge.hub.seen().into_iter().filter(|s| s.redelivery).collect();
    assert_eq!(redeliveries.len(), 2);
    assert!(redeliveries.iter().all(|s| (s.first, s.last, s.body.clone()) == (2, 2, vec![2])));
    assert_eq!(edge.hub.with(|s| s.stored.get(&2).copied()), Some(1));
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_the_persisted_cursor_with_its_dead_letters() {
    let mut edge = Edge::new(config(4));
    edge.hub.with(|s| s.poison.insert(3));
    edge.append(1..=6).await;
    edge.start();
    eventually("stored", || edge.cursor() == 6).await;
    let (dir, hub) = edge.close().await;
    let before = hub.seen().len();
    let mut edge = Edge::open(dir, hub, config(4));
    assert_eq!(edge.cursor(), 6);
    assert_eq!(edge.letter(3).unwrap().status, DeadLetterStatus::Parked);
    edge.append(7..=8).await;
    edge.start();
    eventually("stored", || edge.cursor() == 8).await;
    let after = &edge.hub.seen()[before..];
    assert_eq!(after.iter().map(|s| (s.first, s.last)).collect::<Vec<_>>(), vec![(7, 8)]);
    assert!(edge.hub.with(|s| s.stored.values().all(|n| *n == 1)), "nothing sent twice");
    edge.close().await;
}
