//! Same bytes on disk, same answers: a database written by an earlier build (`tests/golden/`,
//! every event type) opens as it is, each of its events reads back as the JSON the API gave
//! then, replaying it gives the projections that build wrote, and writing its events again
//! produces the same envelopes byte for byte.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use redb::{ReadableDatabase, ReadableTable};
use zenedge::config::{DiskReserve, Site};
use zenedge::events::{Envelope, NewEvent};
use zenedge::log::LogOptions;
use zenedge::projections::rebuild;
use zenedge::telemetry::Metrics;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn site() -> Site {
    Site { tenant_id: "t1".into(), hospital_id: "h1".into(), edge_id: "e1".into() }
}

/// The golden database, unpacked into `dir` as `zenedge.redb`.
fn unpack(dir: &Path) -> PathBuf {
    let mut bytes = Vec::new();
    let file = std::fs::File::open(golden().join("zenedge.redb.gz")).unwrap();
    flate2::read::GzDecoder::new(file).read_to_end(&mut bytes).unwrap();
    let path = dir.join("zenedge.redb");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Every stored envelope of the database at `path`, as bytes, in order.
fn stored(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let db = redb::ReadOnlyDatabase::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let events = txn.open_table(redb::TableDefinition::<u64, &[u8]>::new("events")).unwrap();
    events.iter().unwrap().map(|row| row.map(|(k, v)| (k.value(), v.value().to_vec())).unwrap()).collect()
}

#[test]
fn a_database_written_before_opens_and_reads_back_as_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let path = unpack(dir.path());
    let envelopes = stored(&path);
    let expected = std::fs::read_to_string(golden().join("events.jsonl")).unwrap();
    assert_eq!(envelopes.len(), expected.lines().count());
    for ((seq, bytes), line) in envelopes.iter().zip(expected.lines()) {
        let envelope = Envelope::from_bytes(bytes).unwrap_or_else(|e| panic!("event {seq}: {e}"));
        assert_eq!(serde_json::to_string(&envelope.json_view()).unwrap(), line, "event {seq}");
    }
    let db = rebuild::open(&path, &site(), 4 << 20).unwrap();
    // Schema 7 dropped the ACK copy from the duplicate index, and schemas 9 and 10 added the
    // worklist and its name index:
    // those tables alone differ until the projections are rebuilt at the upgrade (the daemon
    // does it when it opens the file).
    let differ: Vec<_> = rebuild::verify(&db, &site(), |_, _| {}).unwrap().into_iter().map(|(a, _)| a.table).collect();
    assert_eq!(
        differ,
        [
            "hl7_dedupe",
            "worklist",
            "worklist_by_date",
            "worklist_by_patient",
            "worklist_by_accession",
            "worklist_by_name"
        ],
        "replay gives the projections it wrote, but for the duplicate index and the worklist it did not have"
    );
    rebuild::rebuild(&db, &site(), |_, _| {}).unwrap();
    assert_eq!(rebuild::verify(&db, &site(), |_, _| {}).unwrap(), [], "rebuilt at the upgrade");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_written_again_are_the_same_bytes() {
    let golden_dir = tempfile::tempdir().unwrap();
    let envelopes = stored(&unpack(golden_dir.path()));
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(Mutex::new(jiff::Timestamp::UNIX_EPOCH));
    let clock = now.clone();
    let options = LogOptions {
        path: dir.path().join("zenedge.redb"),
        site: site(),
        disk_reserve: DiskReserve::Bytes(0),
        queue_depth: 16,
        max_batch: 16,
        cache_size: 4 << 20,
        clock: Arc::new(move || *clock.lock().unwrap()),
        master_key: None,
        seal: false,
    };
    let log = zenedge::projections::open_log(&options, zenedge::projections::schema(), Arc::new(Metrics::new()), None)
        .unwrap();
    for (seq, bytes) in &envelopes {
        let e = Envelope::from_bytes(bytes).unwrap();
        *now.lock().unwrap() = e.recorded_at;
        let again = NewEvent {
            event_id: e.event_id,
            occurred_at: e.occurred_at,
            aggregate: e.aggregate,
            correlation_id: e.correlation_id,
            causation_id: e.causation_id,
            event: e.event,
        };
        assert_eq!(log.handle().append(vec![again]).await.unwrap(), [*seq]);
    }
    let written = log.reader().raw_after(0, envelopes.len() + 1).unwrap();
    for ((seq, golden), (_, again)) in envelopes.iter().zip(&written) {
        let at = golden.iter().zip(again).position(|(a, b)| a != b).unwrap_or(golden.len().min(again.len()));
        assert!(
            golden == again,
            "event {seq} is written differently from byte {at} on: {:?} (then) against {:?} (now)",
            String::from_utf8_lossy(&golden[at.saturating_sub(16)..(at + 48).min(golden.len())]),
            String::from_utf8_lossy(&again[at.saturating_sub(16)..(at + 48).min(again.len())])
        );
    }
    assert_eq!(written.len(), envelopes.len());
    log.close().await.unwrap();
}
