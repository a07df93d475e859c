use std::sync::Arc;

use super::*;
use crate::domain::test_support::options;
use crate::sync::dead_letters;
use crate::telemetry::Metrics;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_actions_follow_the_status_rules() {
    use DeadLetterAction::{Retry as RetryIt, Skip};
    use DeadLetterStatus::*;
    let dir = tempfile::tempdir().unwrap();
    let log = crate::domain::test_support::open(&options(dir.path()), Arc::new(Metrics::new())).unwrap();
    let h = log.handle();
    assert_eq!(dead_letters::act(&h, 9, RetryIt).await.unwrap(), Err(Refusal::NotFound));
    dead_letters::park(&h, 9, "X".into(), "first".into()).await.unwrap();
    assert_eq!(dead_letters::act(&h, 9, RetryIt).await.unwrap().unwrap().status, Retry);
    assert_eq!(dead_letters::act(&h, 9, RetryIt).await.unwrap(), Err(Refusal::WrongState(Retry)));
    let again = dead_letters::park(&h, 9, "X".into(), "second".into()).await.unwrap();
    assert_eq!((again.status, again.attempts, again.reason.as_str()), (Parked, 2, "second"));
    assert_eq!(dead_letters::act(&h, 9, Skip).await.unwrap().unwrap().status, Skipped);
    assert_eq!(dead_letters::act(&h, 9, Skip).await.unwrap(), Err(Refusal::WrongState(Skipped)));
    let still = dead_letters::park(&h, 9, "X".into(), "third".into()).await.unwrap();
    assert_eq!(still.status, Skipped, "a skipped letter stays skipped");
    dead_letters::act(&h, 9, RetryIt).await.unwrap().unwrap();
    assert_eq!(dead_letters::delivered(&h, 9).await.unwrap().unwrap().status, Delivered);
    assert_eq!(dead_letters::act(&h, 9, Skip).await.unwrap(), Err(Refusal::WrongState(Delivered)));
    assert_eq!(dead_letters::delivered(&h, 10).await.unwrap(), None);
    let counts = dead_letters::counts(&log.reader()).unwrap();
    assert_eq!((counts.delivered, counts.open()), (1, 0));
    log.close().await.unwrap();
}
