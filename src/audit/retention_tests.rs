use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use super::*;
use crate::audit::{kinds, page, record};
use crate::log::LogOptions;
use crate::telemetry::Metrics;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_records_go_but_never_past_the_syslog_cursor_nor_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let start = Timestamp::from_second(1_800_000_000).unwrap();
    let now = Arc::new(AtomicI64::new(start.as_second()));
    let clock = now.clone();
    let options = LogOptions {
        clock: Arc::new(move || Timestamp::from_second(clock.load(Ordering::SeqCst)).unwrap()),
        ..LogOptions::for_tests(dir.path())
    };
    let schema = crate::projections::schema().with(crate::audit::tables());
    let log = crate::projections::open_log(&options, schema, Arc::new(Metrics::new()), None).unwrap();
    let activity = || kinds::application_activity("e1", true, start);
    for _ in 0..3 {
        record(&log.handle(), vec![activity()]).await.unwrap();
    }
    now.fetch_add(100 * 86_400, Ordering::SeqCst);
    record(&log.handle(), vec![activity()]).await.unwrap();
    let before = start.checked_add(jiff::SignedDuration::from_secs(10 * 86_400)).unwrap();
    assert_eq!(prune(&log.handle(), before, 2).await.unwrap(), 2, "up to the cursor");
    let ids = |log: &crate::log::Log<_>| page(&log.reader(), 0, 10).unwrap().iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(&log), [3, 4]);
    let later = before.checked_add(jiff::SignedDuration::from_secs(200 * 86_400)).unwrap();
    assert_eq!(prune(&log.handle(), later, u64::MAX).await.unwrap(), 1, "all old ones but the newest");
    assert_eq!(ids(&log), [4]);
    record(&log.handle(), vec![activity()]).await.unwrap();
    assert_eq!(ids(&log), [4, 5], "ids go on");
    log.close().await.unwrap();
}

#[test]
fn retention_stops_at_the_lowest_cursor_of_the_places_the_trail_goes_to() {
    assert_eq!(bound(None, None), u64::MAX, "a trail that goes nowhere is bounded by age alone");
    assert_eq!(bound(Some(7), None), 7);
    assert_eq!(bound(None, Some(3)), 3, "records the hub has not stored stay");
    assert_eq!(bound(Some(7), Some(3)), 3);
    assert_eq!(bound(Some(2), Some(9)), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_stored_compressed_and_read_and_synced_as_plain_msgpack() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions::for_tests(dir.path());
    let schema = crate::projections::schema().with(crate::audit::tables());
    let log = crate::projections::open_log(&options, schema, Arc::new(Metrics::new()), None).unwrap();
    record(&log.handle(), vec![kinds::application_activity("e1", true, Timestamp::now())]).await.unwrap();
    let stored = {
        let txn = log.reader().begin_read().unwrap();
        let table = txn.open_table(AUDIT_TRAIL).unwrap();
        redb::ReadableTable::get(&table, 1).unwrap().unwrap().value().to_vec()
    };
    assert!(crate::log::value::is_compressed(&stored), "{} bytes stored", stored.len());
    let raw = crate::audit::page_raw(&log.reader(), 0, 10, 1 << 20).unwrap();
    let synced: crate::audit::StoredRecord = rmp_serde::from_slice(&raw[0].1).unwrap();
    assert_eq!(synced.id, 1, "the hub gets the msgpack record, not the stored form");
    assert_eq!(page(&log.reader(), 0, 10).unwrap()[0].id, 1);
    assert_eq!(prune(&log.handle(), Timestamp::MAX, u64::MAX).await.unwrap(), 0, "the newest stays");
    log.close().await.unwrap();
}
