//! HL7 intake through the log: duplicates recognised (in one batch, across a schema upgrade,
//! without the final CR), refusals below the reserve; and the log's own contract as this
//! request sees it: group commit, gapless sequence numbers, every request refused after a
//! failed commit, events read back page by page.

use std::sync::Arc;

use super::*;
use crate::config::DiskReserve;
use crate::domain::test_support::{options, site};
use crate::hl7;
use crate::log::{AppendError, FaultInjector, Log, LogOptions, store};
use crate::projections::Projections;
use crate::telemetry::Metrics;

/// An `HL7MessageReceived` for control id `id` whose content differs by `variant`.
fn hl7_append(id: &str, variant: &str) -> NewEvent {
    let raw = format!("MSH|^~\\&|RIS|H|ZE|E|20261123||ADT^A08|{id}|P|2.5\rPID|1||{variant}\r").into_bytes();
    let received = hl7::read(&raw, &hl7::ReadOptions::default()).unwrap();
    received_event(&raw, &received, "test", format!("ACK-{id}-{variant}").into_bytes())
}

/// Opens a log whose fsyncs the test controls.
fn open_with_faults(dir: &std::path::Path, metrics: Arc<Metrics>) -> (Log<Projections>, FaultInjector) {
    let faults = FaultInjector::default();
    let schema = crate::projections::schema();
    let log = crate::projections::open_log(&options(dir), schema, metrics, Some(faults.clone())).unwrap();
    (log, faults)
}

type Pending = tokio::task::JoinHandle<Result<Hl7Outcome, AppendError>>;

/// Sends one append and returns once its commit is stuck in the (held) fsync: requests
/// sent from now on queue for the next commit.
async fn stall_writer(log: &Log<Projections>, faults: &FaultInjector) -> Pending {
    faults.hold_syncs();
    let blocker = send(log, "STALL-0");
    let f = faults.clone();
    tokio::task::spawn_blocking(move || f.wait_for_held_sync()).await.unwrap();
    blocker
}

/// Sends an append for `id` and waits until it is in the writer's queue.
async fn send_queued(log: &Log<Projections>, id: &str) -> Pending {
    let before = log.handle().queued();
    let pending = send(log, id);
    while log.handle().queued() <= before {
        tokio::task::yield_now().await;
    }
    pending
}

fn send(log: &Log<Projections>, id: &str) -> Pending {
    let (handle, request) = (log.handle(), hl7_append(id, "a"));
    tokio::spawn(async move { store(&handle, request).await })
}

fn metric(metrics: &Metrics, name: &str) -> String {
    let text = metrics.encode();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_owned))
        .unwrap_or_else(|| panic!("{name} not in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_waiting_during_a_commit_share_the_next_commit() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let (log, faults) = open_with_faults(dir.path(), metrics.clone());
    let first = stall_writer(&log, &faults).await;
    // The first commit is inside its fsync: these 50 queue up behind it.
    let mut rest = Vec::new();
    for i in 1..=50 {
        rest.push(send_queued(&log, &format!("G-{i}")).await);
    }
    faults.release_syncs();
    assert!(matches!(first.await.unwrap(), Ok(Hl7Outcome::Stored { seq: 1, .. })));
    let mut seqs = Vec::new();
    for r in rest {
        match r.await.unwrap() {
            Ok(Hl7Outcome::Stored { seq, .. }) => seqs.push(seq),
            other => panic!("{other:?}"),
        }
    }
    seqs.sort();
    assert_eq!(seqs, (2..=51).collect::<Vec<u64>>(), "gapless from 1");
    assert_eq!(metric(&metrics, "zenedge_log_commit_batch_size_count"), "2", "two commits for 51 requests");
    assert_eq!(metric(&metrics, "zenedge_log_commit_batch_size_sum"), "51.0");
    assert_eq!(log.reader().latest_seq().unwrap(), 51);
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_in_the_same_batch_is_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let (log, faults) = open_with_faults(dir.path(), Arc::new(Metrics::new()));
    let blocker = stall_writer(&log, &faults).await;
    let one = send_queued(&log, "D-1").await;
    let two = send_queued(&log, "D-1").await;
    faults.release_syncs();
    blocker.await.unwrap().unwrap();
    assert_eq!(one.await.unwrap(), Ok(Hl7Outcome::Stored { seq: 2, conflicts_with: None }));
    assert_eq!(two.await.unwrap(), Ok(Hl7Outcome::Duplicate { seq: 2, ack: b"ACK-D-1-a".to_vec() }));
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_differs_only_by_its_final_segment_terminators_is_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::domain::test_support::open(&options(dir.path()), Arc::new(Metrics::new())).unwrap();
    let body = "MSH|^~\\&|RIS|H|ZE|E|20261123||ADT^A08|T-1|P|2.5\rPID|1||X";
    let event = |raw: &str, ack: &str| {
        let received = hl7::read(raw.as_bytes(), &hl7::ReadOptions::default()).unwrap();
        received_event(raw.as_bytes(), &received, "test", ack.as_bytes().to_vec())
    };
    let first = store(&log.handle(), event(&format!("{body}\r"), "ACK-FIRST")).await.unwrap();
    assert_eq!(first, Hl7Outcome::Stored { seq: 1, conflicts_with: None });
    for copy in [body.to_owned(), format!("{body}\r\n"), format!("{body}\r\r\n\n")] {
        let again = store(&log.handle(), event(&copy, "ACK-OTHER")).await.unwrap();
        assert_eq!(again, Hl7Outcome::Duplicate { seq: 1, ack: b"ACK-FIRST".to_vec() }, "{copy:?}");
    }
    // Other content under the same control id is still another message.
    let other = store(&log.handle(), event(&format!("{body}Y\r"), "A")).await.unwrap();
    assert_eq!(other, Hl7Outcome::Stored { seq: 2, conflicts_with: Some(1) });
    let stored = crate::events::after(&log.reader(), 0, 10).unwrap().items;
    let crate::events::Event::Hl7MessageReceived(m) = &stored[0].event else { panic!("{stored:?}") };
    assert_eq!(m.raw, format!("{body}\r").into_bytes(), "the bytes of the first copy are kept");
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ack_is_stored_once_in_the_event_and_a_re_send_is_answered_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::domain::test_support::open(&options(dir.path()), Arc::new(Metrics::new())).unwrap();
    store(&log.handle(), hl7_append("ONCE-1", "a")).await.unwrap();
    {
        let txn = log.reader().begin_read().unwrap();
        let index = txn.open_table(crate::projections::tables::HL7_DEDUPE).unwrap();
        let (_, row) = index.first().unwrap().unwrap();
        let row: rmpv::Value = rmp_serde::from_slice(row.value()).unwrap();
        assert_eq!(row, rmpv::Value::Map(vec![("seq".into(), 1.into())]), "the index row holds no ACK");
    }
    let again = store(&log.handle(), hl7_append("ONCE-1", "a")).await.unwrap();
    assert_eq!(again, Hl7Outcome::Duplicate { seq: 1, ack: b"ACK-ONCE-1-a".to_vec() });
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_3_file_is_reindexed_so_a_re_send_without_the_final_cr_is_a_duplicate() {
    use redb::ReadableTable;
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zenedge.redb");
    let raw = "MSH|^~\\&|RIS|H|ZE|E|20261123||ADT^A08|U-1|P|2.5\rPID|1||X\r";
    let received = hl7::read(raw.as_bytes(), &hl7::ReadOptions::default()).unwrap();
    // As a schema-3 binary wrote it: no normalized digest in the event, the dedupe row keyed
    // by the digest of the bytes as received.
    let mut old = received_event(raw.as_bytes(), &received, "test", b"ACK-OLD".to_vec());
    if let crate::events::Event::Hl7MessageReceived(m) = &mut old.event {
        m.normalized_sha256 = None;
    }
    let log = crate::domain::test_support::open(&options(dir.path()), Arc::new(Metrics::new())).unwrap();
    store(&log.handle(), old).await.unwrap();
    log.close().await.unwrap();
    {
        let db = store::open(&path, &site(), 4 << 20, &crate::projections::schema(), None).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(crate::log::META).unwrap().insert("schema_version", "3").unwrap();
        {
            let mut dedupe = txn.open_table(crate::projections::tables::HL7_DEDUPE).unwrap();
            let rows: Vec<_> = dedupe
                .iter()
                .unwrap()
                .map(|r| r.map(|(k, v)| (k.value().0.to_owned(), k.value().1.to_owned(), v.value().to_vec())).unwrap())
                .collect();
            assert_eq!(rows.len(), 1);
            dedupe.retain(|_, _| false).unwrap();
            let (tenant, hospital, value) = &rows[0];
            let raw_digest: [u8; 32] = sha2::Sha256::digest(raw.as_bytes()).into();
            dedupe
                .insert((tenant.as_str(), hospital.as_str(), "RIS", "H", "U-1", raw_digest), value.as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let log = crate::domain::test_support::open(&options(dir.path()), Arc::new(Metrics::new())).unwrap();
    let stripped = raw.trim_end_matches('\r');
    let received = hl7::read(stripped.as_bytes(), &hl7::ReadOptions::default()).unwrap();
    let again = store(&log.handle(), received_event(stripped.as_bytes(), &received, "test", b"NEW".to_vec())).await;
    assert_eq!(again.unwrap(), Hl7Outcome::Duplicate { seq: 1, ack: b"ACK-OLD".to_vec() });
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failed_commit_every_request_is_refused_and_the_failure_is_signalled() {
    let dir = tempfile::tempdir().unwrap();
    let (log, faults) = open_with_faults(dir.path(), Arc::new(Metrics::new()));
    let handle = log.handle();
    store(&handle, hl7_append("F-1", "a")).await.unwrap();
    faults.fail_syncs();
    assert_eq!(store(&handle, hl7_append("F-2", "a")).await, Err(AppendError::Unavailable));
    handle.state.failed.cancelled().await;
    assert_eq!(store(&handle, hl7_append("F-3", "a")).await, Err(AppendError::Unavailable));
    assert!(log.close().await.is_err(), "close reports the writer's failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_reserve_new_data_is_refused_but_a_duplicate_is_still_answered() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::domain::test_support::open(&options(dir.path()), Arc::new(Metrics::new())).unwrap();
    let stored = store(&log.handle(), hl7_append("R-1", "a")).await.unwrap();
    log.close().await.unwrap();
    let full = LogOptions { disk_reserve: DiskReserve::Percent(100.0), ..options(dir.path()) };
    let log = crate::domain::test_support::open(&full, Arc::new(Metrics::new())).unwrap();
    let again = store(&log.handle(), hl7_append("R-1", "a")).await.unwrap();
    assert_eq!(stored, Hl7Outcome::Stored { seq: 1, conflicts_with: None });
    assert!(matches!(again, Hl7Outcome::Duplicate { seq: 1, .. }));
    let refused = store(&log.handle(), hl7_append("R-2", "a")).await;
    assert!(matches!(refused, Err(AppendError::DiskReserve { .. })), "{refused:?}");
    assert_eq!(log.reader().latest_seq().unwrap(), 1);
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_read_back_with_their_envelope_and_page_by_page() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::domain::test_support::open(&options(dir.path()), Arc::new(Metrics::new())).unwrap();
    for i in 0..5 {
        store(&log.handle(), hl7_append(&format!("E-{i}"), "a")).await.unwrap();
    }
    let reader = log.reader();
    let page = crate::events::after(&reader, 0, 3).unwrap();
    assert_eq!(page.items.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(page.next, Some(3));
    let last = crate::events::after(&reader, 3, 3).unwrap();
    assert_eq!(last.items.len(), 2);
    assert_eq!(last.next, None);
    let e = crate::events::get(&reader, 4).unwrap().unwrap();
    assert_eq!((e.tenant_id.as_str(), e.hospital_id.as_str(), e.edge_id.as_str()), ("t", "h", "e"));
    assert_eq!(e.event_type(), "HL7MessageReceived");
    assert!(crate::events::get(&reader, 6).unwrap().is_none());
    log.close().await.unwrap();
}

#[tokio::test]
async fn a_stored_message_and_its_resend_each_commit_a_patient_record_naming_the_sender_and_the_patient() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::domain::test_support::open(&options(dir.path()), Arc::new(Metrics::new())).unwrap();
    let stored = store(&log.handle(), hl7_append("AUD-1", "PAT-7")).await.unwrap();
    assert!(matches!(stored, Hl7Outcome::Stored { .. }), "{stored:?}");
    let resent = store(&log.handle(), hl7_append("AUD-1", "PAT-7")).await.unwrap();
    assert!(matches!(resent, Hl7Outcome::Duplicate { .. }), "{resent:?}");
    let trail = crate::audit::page(&log.reader(), 0, 10).unwrap();
    assert_eq!(trail.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2]);
    for r in &trail {
        assert_eq!(r.record.event.code, "110110", "ADT is a Patient Record: {r:?}");
        let sender = &r.record.participants[0];
        assert_eq!((sender.user_id.as_str(), sender.alternative_user_id.as_deref()), ("RIS", Some("H")));
        assert!(sender.requestor);
        let ids: Vec<&str> = r.record.objects.iter().filter(|o| o.type_code == 1).map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["PAT-7"]);
        assert!(r.record.objects.iter().any(|o| o.id == "AUD-1"), "the message control id");
    }
    log.close().await.unwrap();
}
