//! The engine's contract, with a payload and an applier of the test's own (the engine knows
//! no other): what the writer hands the layer above, the envelope it stores, schema versions
//! and their migrations, the site a file belongs to, refusals in an admin's words. (Group
//! commit, gapless sequence numbers and the refusal after a failed commit are tested through a
//! real request, in `domain::hl7`.)

use std::sync::{Arc, Mutex};

use super::*;
use crate::config::Site;
use crate::telemetry::Metrics;

fn site() -> Site {
    Site { tenant_id: "t".into(), hospital_id: "h".into(), edge_id: "e".into() }
}

/// A layout with no tables besides the engine's own.
fn schema() -> Schema {
    Schema { version: 4, migrations: &[], tables: Vec::new() }
}

/// A payload the engine has never heard of.
#[derive(Debug, serde::Serialize)]
struct Note {
    text: String,
}

impl Payload for Note {
    fn event_type(&self) -> &'static str {
        "Note"
    }
    fn event_version(&self) -> u32 {
        7
    }
    fn size_hint(&self) -> usize {
        self.text.len()
    }
}

/// Records what the writer hands it: each applied event (seq, text) and each batch's end.
#[derive(Debug, Clone, Default)]
struct Recorder {
    applied: Arc<Mutex<Vec<(u64, String)>>>,
    finished: Arc<Mutex<Vec<u64>>>,
}

impl Applier for Recorder {
    type Event = Note;
    type Tables<'t> = ();

    fn tables(&self, _txn: &redb::WriteTransaction) {}

    fn apply(&self, (): &mut (), meta: &Meta<'_>, event: &Note) -> Result<(), redb::Error> {
        self.applied.lock().unwrap().push((meta.seq, event.text.clone()));
        Ok(())
    }

    fn finish(&self, (): &mut (), _site: &Site, last_seq: u64) -> Result<(), redb::Error> {
        self.finished.lock().unwrap().push(last_seq);
        Ok(())
    }
}

fn note(text: &str) -> NewEvent<Note> {
    NewEvent::now(Aggregate { kind: "note".into(), id: text.into() }, Note { text: text.into() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_applies_every_event_with_the_layer_above_and_ends_each_batch_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions { queue_depth: 16, max_batch: 16, ..LogOptions::for_tests(dir.path()) };
    let recorder = Recorder::default();
    let log = Store::open(&options, schema(), None).unwrap().start(recorder.clone(), Arc::new(Metrics::new())).unwrap();
    assert_eq!(log.handle().append(vec![note("a"), note("b"), note("c")]).await.unwrap(), [1, 2, 3]);
    assert_eq!(log.handle().append(vec![note("d")]).await.unwrap(), [4]);
    let applied = recorder.applied.lock().unwrap().clone();
    assert_eq!(applied, [(1, "a".into()), (2, "b".into()), (3, "c".into()), (4, "d".into())]);
    assert_eq!(*recorder.finished.lock().unwrap(), [3, 4], "each batch ends at its last seq");
    let stored = StoredEnvelope::from_bytes(&log.reader().raw_event(2).unwrap().unwrap()).unwrap();
    assert_eq!((stored.seq, stored.event_type.as_str(), stored.event_version), (2, "Note", 7));
    assert_eq!((stored.tenant_id.as_str(), stored.edge_id.as_str(), stored.aggregate.id.as_str()), ("t", "e", "b"));
    assert_eq!(stored.data, rmpv::Value::Map(vec![("text".into(), "b".into())]), "the payload as it encodes itself");
    log.close().await.unwrap();
}

#[test]
fn an_older_binary_refuses_a_newer_file_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zenedge.redb");
    {
        let db = store::open(&path, &site(), 4 << 20, &schema(), None).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(store::META).unwrap().insert("schema_version", "999").unwrap();
        txn.commit().unwrap();
    }
    let err = store::open(&path, &site(), 4 << 20, &schema(), None).unwrap_err();
    assert!(matches!(err, OpenError::NewerSchema { found: 999, .. }), "{err}");
    assert!(err.to_string().contains("newer zenedge"), "{err}");
}

#[test]
fn a_newer_binary_migrates_step_by_step_in_one_transaction() {
    use redb::{ReadableDatabase, TableDefinition};
    const ADDED: TableDefinition<&str, u64> = TableDefinition::new("added_by_migration");
    fn one_to_two(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
        txn.open_table(ADDED)?.insert("step", 2)?;
        Ok(())
    }
    fn two_to_three(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
        let mut t = txn.open_table(ADDED)?;
        let v = redb::ReadableTable::get(&t, "step")?.map(|g| g.value()).unwrap_or(0);
        t.insert("step", v + 1)?;
        Ok(())
    }
    static MIGRATIONS: [super::Migration; 2] =
        [super::Migration { from: 1, apply: one_to_two }, super::Migration { from: 2, apply: two_to_three }];
    let layout = |version, migrations| super::Schema { version, migrations, tables: Vec::new() };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zenedge.redb");
    let db = store::open(&path, &site(), 4 << 20, &schema(), None).unwrap();
    // A file written by schema 1.
    let txn = db.begin_write().unwrap();
    txn.open_table(store::META).unwrap().insert("schema_version", "1").unwrap();
    txn.commit().unwrap();
    store::prepare(&db, &path, &site(), false, &layout(3, &MIGRATIONS)).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(store::META).unwrap();
    assert_eq!(redb::ReadableTable::get(&meta, "schema_version").unwrap().unwrap().value(), "3");
    let added = txn.open_table(ADDED).unwrap();
    assert_eq!(redb::ReadableTable::get(&added, "step").unwrap().unwrap().value(), 3);
    drop((meta, added, txn));
    let err = store::prepare(&db, &path, &site(), false, &layout(4, &MIGRATIONS[..0])).unwrap_err();
    assert!(matches!(err, OpenError::NoMigration { from: 3, .. }), "{err}");
}

#[test]
fn the_database_remembers_its_site() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zenedge.redb");
    drop(store::open(&path, &site(), 4 << 20, &schema(), None).unwrap());
    let other = Site { hospital_id: "h2".into(), ..site() };
    let err = store::open(&path, &other, 4 << 20, &schema(), None).unwrap_err();
    assert!(matches!(err, OpenError::WrongSite { key: "hospital_id", .. }), "{err}");
}

#[test]
fn a_disk_reserve_refusal_reads_in_human_sizes() {
    let e = AppendError::DiskReserve { free: 72 << 30, reserve: 100 << 30 };
    assert_eq!(e.to_string(), "free disk space 72.0 GiB is below the reserve of 100.0 GiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_stored_compressed_and_read_back_as_the_envelope_written() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions { queue_depth: 16, max_batch: 16, ..LogOptions::for_tests(dir.path()) };
    let log =
        Store::open(&options, schema(), None).unwrap().start(Recorder::default(), Arc::new(Metrics::new())).unwrap();
    let text = "OBR|1|PL1|FI1|CTHEAD^CT Head^L|||20261123100000\r".repeat(20);
    log.handle().append(vec![note(&text), note("x")]).await.unwrap();
    let txn = log.reader().begin_read().unwrap();
    let events = txn.open_table(EVENTS).unwrap();
    let stored = redb::ReadableTable::get(&events, 1).unwrap().unwrap().value().to_vec();
    assert!(value::is_compressed(&stored), "a large event is stored compressed");
    let plain = log.reader().raw_event(1).unwrap().unwrap();
    assert!(stored.len() * 4 < plain.len(), "{} bytes stored for {}", stored.len(), plain.len());
    let envelope = StoredEnvelope::from_bytes(&plain).unwrap();
    assert_eq!(envelope.data, rmpv::Value::Map(vec![("text".into(), text.as_str().into())]));
    assert_eq!(StoredEnvelope::from_bytes(&stored).unwrap().event_id, envelope.event_id, "either form decodes");
    assert_eq!(head_event_id(&stored).unwrap(), envelope.event_id);
    assert_eq!(log.reader().event_id(1).unwrap(), Some(envelope.event_id));
    let pages = log.reader().raw_after(0, 10).unwrap();
    assert_eq!(pages[0].1, plain, "pages hold the envelopes as written");
    drop((events, txn));
    log.close().await.unwrap();
}
