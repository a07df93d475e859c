//! Positions kept in the `meta` table: a number stored as decimal text under a key (a
//! forwarder's cursor, a copied-up-to mark), absent meaning 0. Written only inside a writer
//! transaction, so a position commits with whatever it describes or not at all.

use super::reader::{LogReader, ReadError, Storage};
use super::store::META;
use super::txn::{AppendError, Applier, Txn};
use super::writer::LogHandle;

/// The position under `key` (0 when it was never written).
pub fn read(reader: &LogReader, key: &str) -> Result<u64, ReadError> {
    let txn = reader.begin_read()?;
    let meta = txn.open_table(META).storage()?;
    let Some(value) = meta.get(key).storage()? else { return Ok(0) };
    value
        .value()
        .parse()
        .map_err(|_| ReadError::Row { table: "meta", reason: format!("{key} {:?} is not a number", value.value()) })
}

/// Writes `value` under `key` in the writer's transaction `t`.
pub fn write<A: Applier>(t: &mut Txn<'_, '_, A>, key: &str, value: u64) -> Result<(), redb::Error> {
    t.txn().open_table(META)?.insert(key, value.to_string().as_str())?;
    t.dirty = true;
    Ok(())
}

/// Has the writer store `value` under `key` in its next batch; returns once durable.
pub async fn set<A: Applier>(log: &LogHandle<A>, key: &'static str, value: u64) -> Result<(), AppendError> {
    log.request((key, value), apply_set::<A>).await
}

fn apply_set<A: Applier>(
    t: &mut Txn<'_, '_, A>,
    (key, value): (&'static str, u64),
) -> Result<Result<(), AppendError>, redb::Error> {
    write(t, key, value)?;
    Ok(Ok(()))
}
