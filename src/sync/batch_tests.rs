use std::sync::Arc;

use crate::domain::test_support::{Order, options};
use crate::events::NewEvent;
use crate::log::Log;
use crate::projections::Projections;
use crate::sync::{batch, dead_letters};
use crate::telemetry::Metrics;

fn open(dir: &std::path::Path) -> Log<Projections> {
    crate::domain::test_support::open(&options(dir), Arc::new(Metrics::new())).unwrap()
}

fn orders(n: usize) -> Vec<NewEvent> {
    (0..n).map(|i| Order::new(&format!("C-{i}"), &format!("P-{i}"), "ACC", &["PAT"]).event()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_respect_both_limits_and_list_dead_letters_as_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.handle().append(orders(10)).await.unwrap();
    let reader = log.reader();
    let size = reader.raw_event(1).unwrap().unwrap().len();
    let all = batch::read(&reader, 0, 100, 1 << 20).unwrap();
    assert_eq!((all.first, all.last, all.seqs.len()), (1, 10, 10));
    assert_eq!(all.envelopes().next().unwrap(), reader.raw_event(1).unwrap().unwrap().as_slice());
    let by_count = batch::read(&reader, 2, 3, 1 << 20).unwrap();
    assert_eq!(by_count.seqs, vec![3, 4, 5]);
    assert_eq!(by_count.prev_event_id, reader.event_id(2).unwrap(), "the chain names the event before");
    assert_eq!(all.prev_event_id, None, "nothing comes before the first event");
    let by_bytes = batch::read(&reader, 0, 100, size * 2 + size / 2).unwrap();
    assert_eq!(by_bytes.seqs, vec![1, 2], "a third event would pass the byte limit");
    let alone = batch::read(&reader, 0, 100, 10).unwrap();
    assert_eq!(alone.seqs, vec![1], "an event larger than the limit goes alone");
    dead_letters::park(&log.handle(), 4, "X".into(), "r".into()).await.unwrap();
    dead_letters::park(&log.handle(), 6, "X".into(), "r".into()).await.unwrap();
    let with_skips = batch::read(&reader, 2, 5, 1 << 20).unwrap();
    assert_eq!((with_skips.first, with_skips.last), (3, 7));
    assert_eq!((&with_skips.seqs, &with_skips.skipped), (&vec![3, 5, 7], &vec![4, 6]));
    assert_eq!(with_skips.envelopes().len(), 3);
    let only_skipped = batch::read(&reader, 3, 1, 1 << 20).unwrap();
    assert_eq!((only_skipped.first, only_skipped.last, only_skipped.seqs.len()), (4, 4, 0));
    assert!(batch::read(&reader, 10, 100, 1 << 20).unwrap().is_empty());
    log.close().await.unwrap();
}
