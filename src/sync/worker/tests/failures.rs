//! Failures: backoff, the circuit breaker, and a shutdown that ends every wait.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_then_a_probe_closes_it_or_opens_it_again() {
    let mut config = config(4);
    config.breaker_failures = 2;
    let mut edge = Edge::new(config);
    edge.hub.with(|s| s.script.extend((0..3).map(|_| failure(FailureKind::Connect))));
    edge.append(1..=4).await;
    edge.start();
    eventually("stored", || edge.cursor() == 4).await;
    use crate::sync::BreakerState::*;
    let states: Vec<_> = edge.hub.seen().iter().map(|s| s.breaker).collect();
    // Two failures open it; the first probe fails (open again); the second probe succeeds.
    assert_eq!(states, vec![Closed, Closed, HalfOpen, HalfOpen]);
    let status = edge.shared.status();
    assert_eq!((status.breaker, status.consecutive_failures), (Closed, 0));
    assert!(edge.metrics.encode().contains("zenedge_sync_breaker_state 0"));
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_breaker_closes_the_hub_s_position_is_read_before_the_next_batch() {
    let mut config = config(4);
    config.breaker_failures = 2;
    let mut edge = Edge::new(config);
    edge.hub.with(|s| s.script.extend((0..2).map(|_| failure(FailureKind::Connect))));
    edge.append(1..=4).await;
    edge.start();
    eventually("stored", || edge.cursor() == 4).await;
    edge.append(5..=6).await;
    eventually("the next batch stored", || edge.cursor() == 6).await;
    let seen = edge.hub.seen();
    use crate::sync::BreakerState::*;
    assert_eq!(seen.iter().map(|s| s.breaker).collect::<Vec<_>>(), vec![Closed, Closed, HalfOpen, Closed]);
    // The probe closed the breaker; a hub back from an outage may have been restored from an
    // older copy, so the edge asked where it is before it sent 5..=6.
    assert_eq!(seen[3].positions, seen[2].positions + 1, "{:?}", edge.hub.with(|s| s.positions.clone()));
    edge.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_a_long_backoff_and_an_open_breaker() {
    for breaker_failures in [1000, 1] {
        let mut config = config(4);
        config.retry_base = Duration::from_secs(3600);
        config.retry_cap = Duration::from_secs(3600);
        config.breaker_open = Duration::from_secs(3600);
        config.breaker_failures = breaker_failures;
        let mut edge = Edge::new(config);
        edge.hub.with(|s| s.script.extend((0..10).map(|_| failure(FailureKind::Http5xx))));
        edge.append(1..=1).await;
        edge.start();
        let shared = edge.shared.clone();
        eventually("a failure", || shared.status().consecutive_failures == 1).await;
        assert!(edge.stop_worker().await, "the worker stopped within the grace period");
        assert_eq!(edge.hub.seen().len(), 1);
        edge.close().await;
    }
}
