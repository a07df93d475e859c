//! `insert-ceiling`: how many b-tree inserts and point reads redb does per second in one
//! write transaction, with the key shapes of the projections (tuples of strings). Replay
//! applies a handful of these per event, so this bounds how fast `zenedge rebuild` can go.

use std::time::Instant;

use redb::ReadableTable;

use crate::{BoxError, InsertArgs};

/// Shaped like `dicom_instances`: (tenant, hospital, SOP Instance UID) → a ~200-byte row.
const ROWS: redb::TableDefinition<(&str, &str, &str), &[u8]> = redb::TableDefinition::new("rows");
/// Shaped like `study_instances`: (tenant, hospital, study, series, SOP Instance UID) → seq.
const INDEX: redb::TableDefinition<(&str, &str, &str, &str, &str), u64> = redb::TableDefinition::new("index");

pub fn run_insert_command(args: &InsertArgs) -> Result<std::process::ExitCode, BoxError> {
    std::fs::create_dir_all(&args.dir)?;
    let path = args.dir.join("insert-ceiling.redb");
    let _ = std::fs::remove_file(&path);
    let db = redb::Builder::new().set_cache_size(args.cache_mib << 20).create(&path)?;
    let value = vec![7u8; 200];
    // UIDs as a modality makes them: 20 instances per study, in arrival order.
    let uids: Vec<String> =
        (0..args.rows).map(|i| format!("1.2.826.0.1.3680043.10.997.{}.1.{}", i / 20, i % 20)).collect();
    let timed = |label: &str, f: &dyn Fn(&redb::WriteTransaction) -> Result<(), redb::Error>| {
        let started = Instant::now();
        let txn = db.begin_write()?;
        f(&txn)?;
        txn.commit()?;
        let rate = args.rows as f64 / started.elapsed().as_secs_f64();
        println!("{label:<40} {rate:>10.0} /s");
        Ok::<(), BoxError>(())
    };
    timed("insert (str, str, str) -> 200 B", &|txn| {
        let mut t = txn.open_table(ROWS)?;
        for uid in &uids {
            t.insert(("bench", "bench", uid.as_str()), value.as_slice())?;
        }
        Ok(())
    })?;
    timed("insert (str, str, str, str, str) -> u64", &|txn| {
        let mut t = txn.open_table(INDEX)?;
        for uid in &uids {
            t.insert(("bench", "bench", uid.as_str(), "1", uid.as_str()), 1)?;
        }
        Ok(())
    })?;
    timed("get (str, str, str)", &|txn| {
        let t = txn.open_table(ROWS)?;
        for uid in &uids {
            std::hint::black_box(t.get(("bench", "bench", uid.as_str()))?);
        }
        Ok(())
    })?;
    drop(db);
    std::fs::remove_file(&path)?;
    Ok(std::process::ExitCode::SUCCESS)
}
