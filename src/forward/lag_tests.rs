use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::domain::test_support::{Study, TestClock, hl7, open, options};
use crate::telemetry::Metrics;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_counts_the_instances_after_the_cursor_their_bytes_and_the_oldest_events_age() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at(Timestamp::from_second(1_800_000_000).unwrap());
    let log = open(&crate::log::LogOptions { clock: clock.clock(), ..options(dir.path()) }, Arc::new(Metrics::new()))
        .unwrap();
    let (h, reader) = (log.handle(), log.reader());
    let study = Study::new("1.2.3", "ACC-1", "PAT-1");
    h.append(vec![study.instance(1), study.instance(2)]).await.unwrap();
    clock.advance(Duration::from_secs(5));
    h.append(vec![hl7("MSH|^~\\&|RIS|H|EDGE|H|20261123||ORM^O01|L-1|P|2.5\rPID|1||PAT-1\r"), study.instance(3)])
        .await
        .unwrap();
    let mut lag = Lag::new(0);
    let later = |by: u64| clock.now().checked_add(jiff::SignedDuration::from_secs(by as i64)).unwrap();
    let b = lag.behind(&reader, 0, 4, later(10)).unwrap();
    assert_eq!((b.instances, b.bytes, b.seconds), (3, 3, 15.0), "all three, aged from the first");
    let b = lag.behind(&reader, 2, 4, later(10)).unwrap();
    assert_eq!((b.instances, b.bytes, b.seconds), (1, 1, 10.0), "two sent; the oldest left is the message");
    let b = lag.behind(&reader, 4, 4, later(10)).unwrap();
    assert_eq!(b, Behind::default(), "caught up");

    h.append(vec![study.instance(4)]).await.unwrap();
    let b = lag.behind(&reader, 4, 5, later(1)).unwrap();
    assert_eq!((b.instances, b.bytes, b.seconds), (1, 1, 1.0), "what arrived since is counted on");
    let mut fresh = Lag::new(4);
    assert_eq!(fresh.behind(&reader, 4, 5, later(1)).unwrap(), b, "a worker started at the cursor counts the same");
    log.close().await.unwrap();
}
