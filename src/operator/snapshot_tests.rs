use std::sync::Arc;

use super::*;
use crate::domain::test_support::{Order, Study, options, site};
use crate::telemetry::Metrics;

/// The log as the daemon opens it: the sync's dead letters are a table of its schema too.
fn open(dir: &std::path::Path) -> crate::log::Log<crate::projections::Projections> {
    let schema = crate::projections::schema().with(crate::sync::tables()).with(crate::audit::tables());
    crate::projections::open_log(&options(dir), schema, Arc::new(Metrics::new()), None).unwrap()
}

/// Every row of every table, as bytes, by table name.
fn dump(db: &impl ReadableDatabase) -> Vec<(String, u64)> {
    let txn = db.begin_read().unwrap();
    let mut tables: Vec<_> = txn
        .list_tables()
        .unwrap()
        .map(|t| {
            let rows = txn.open_untyped_table(t.clone()).unwrap().len().unwrap();
            (t.name().to_owned(), rows)
        })
        .collect();
    tables.sort();
    tables
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_copies_every_table_row_for_row() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.handle().append(vec![Order::new("C1", "P1", "ACC1", &["PID1"]).event()]).await.unwrap();
    Study::new("1.2.3", "ACC1", "PID1").arrive(&log, 2).await;
    crate::sync::dead_letters::park(&log.handle(), 2, "InstanceStored".into(), "422".into()).await.unwrap();
    let copy_path = dir.path().join("copy.redb");
    let summary = snapshot(&log.reader(), &copy_path).unwrap();
    let head = log.reader().latest_seq().unwrap();
    assert_eq!((summary.last_seq, summary.events), (head, head));
    let copy = Database::open(&copy_path).unwrap();
    assert_eq!(dump(&copy), dump(log.reader().database().as_ref()));
    assert!(dump(&copy).iter().any(|(name, rows)| name == "sync_dead_letters" && *rows == 1));
    assert_eq!(
        crate::projections::rebuild::digest(&copy).unwrap(),
        crate::projections::rebuild::digest(log.reader().database().as_ref()).unwrap()
    );
    let copy = Arc::new(copy);
    let copied = LogReader::new(copy.clone(), site(), log.reader().tables().to_vec());
    assert_eq!(copied.raw_after(0, 1000).unwrap(), log.reader().raw_after(0, 1000).unwrap());
    let (files, next) = instance_files(copy.as_ref(), 0, 1000).unwrap();
    assert_eq!(
        files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ["instances/1.2.3/1.dcm", "instances/1.2.3/2.dcm"]
    );
    assert_eq!(next, None, "one page held the whole log");
    let (first, next) = instance_files(copy.as_ref(), 0, 2).unwrap();
    assert_eq!((first.len(), next), (1, Some(2)), "seq 1 is the order, seq 2 the first instance");
    drop(copied);
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_refuses_a_table_it_does_not_know() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let db = log.reader().database().clone();
    let txn = db.begin_write().unwrap();
    txn.open_table(redb::TableDefinition::<u64, u64>::new("added_later")).unwrap();
    txn.commit().unwrap();
    let err = snapshot(&log.reader(), &dir.path().join("copy.redb")).unwrap_err();
    assert!(matches!(&err, SnapshotError::UnknownTable(name) if name == "added_later"), "{err}");
    drop(db);
    log.close().await.unwrap();
}

/// A Part 10 file: preamble, `DICM`, a meta group with a short and a long VR, then `dataset`.
fn part10(dataset: &[u8]) -> Vec<u8> {
    let mut meta = Vec::new();
    meta.extend_from_slice(&[0x02, 0x00, 0x01, 0x00, b'O', b'B', 0, 0, 2, 0, 0, 0, 0, 1]);
    meta.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I', 4, 0, b'1', b'.', b'2', 0]);
    let mut file = vec![0u8; 128];
    file.extend_from_slice(b"DICM");
    file.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
    file.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    file.extend_from_slice(&meta);
    file.extend_from_slice(dataset);
    file
}

#[test]
fn file_checks_hash_the_data_set_after_the_file_meta_information() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = b"\x08\x00\x16\x00UI\x04\x001.2\x00 pixel data";
    let bytes = part10(dataset);
    std::fs::create_dir(dir.path().join("instances")).unwrap();
    std::fs::write(dir.path().join("instances/a.dcm"), &bytes).unwrap();
    let sha256 = crate::ids::hex(&Sha256::digest(dataset));
    let good = InstanceFile { seq: 7, path: "instances/a.dcm".into(), size: bytes.len() as u64, sha256 };
    assert_eq!(check_file(dir.path(), &good), None);
    let wrong_size = InstanceFile { size: 3, ..good.clone() };
    assert!(check_file(dir.path(), &wrong_size).unwrap().contains("the event says 3"));
    let wrong_hash = InstanceFile { sha256: "00".repeat(32), ..good.clone() };
    assert!(check_file(dir.path(), &wrong_hash).unwrap().contains("data set SHA-256"));
    let missing = InstanceFile { path: "instances/b.dcm".into(), ..good };
    assert!(check_file(dir.path(), &missing).unwrap().starts_with("instances/b.dcm (event 7): missing"));
}
