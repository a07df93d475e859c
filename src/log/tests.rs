//! The engine's contract for its file: schema versions and their migrations, the site a file
//! belongs to, refusals in an admin's words. (Group commit, gapless sequence numbers and the
//! refusal after a failed commit are tested through a real request, in `domain::hl7`.)

use super::*;
use crate::config::Site;

fn site() -> Site {
    Site { tenant_id: "t".into(), hospital_id: "h".into(), edge_id: "e".into() }
}

/// A layout with no tables besides the engine's own.
fn schema() -> Schema {
    Schema { version: 4, migrations: &[], tables: Vec::new() }
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
