//! The forwarder's cursor, a row of the log's `meta` table: every audit record up to it was
//! handed to the collector. Written through the log writer, like the sync's cursor.

use crate::log::{AppendError, Applier, LogHandle, LogReader, META, ReadError, Storage, Txn};

const CURSOR_KEY: &str = "audit_syslog_cursor";

/// Records that every audit record up to `id` was forwarded; returns once durable.
pub async fn set_cursor<A: Applier>(log: &LogHandle<A>, id: u64) -> Result<(), AppendError> {
    log.request(id, apply::<A>).await
}

fn apply<A: Applier>(t: &mut Txn<'_, '_, A>, id: u64) -> Result<Result<(), AppendError>, redb::Error> {
    t.txn().open_table(META)?.insert(CURSOR_KEY, id.to_string().as_str())?;
    t.dirty = true;
    Ok(Ok(()))
}

/// The cursor (0: nothing forwarded yet).
pub fn cursor(reader: &LogReader) -> Result<u64, ReadError> {
    let txn = reader.begin_read()?;
    let meta = txn.open_table(META).storage()?;
    let Some(value) = meta.get(CURSOR_KEY).storage()? else { return Ok(0) };
    value.value().parse().map_err(|e| ReadError::Row { table: "meta", reason: format!("{CURSOR_KEY}: {e}") })
}
