//! Where the audit records stand on the hub: `meta["audit_hub_cursor"]`, every record of the
//! trail up to this id is held by the hub (absent: 0). Written through the log writer only after
//! the hub's `200` for a page, so it is never ahead of the hub; audit retention never removes a
//! record past it while the sync is on.

use crate::log::{AppendError, Applier, LogHandle, LogReader, META, ReadError, Storage, Txn};

const CURSOR_KEY: &str = "audit_hub_cursor";

/// Records that the hub holds every audit record up to `id`; returns once durable.
pub async fn set_cursor<A: Applier>(log: &LogHandle<A>, id: u64) -> Result<(), AppendError> {
    log.request(id, apply::<A>).await
}

fn apply<A: Applier>(t: &mut Txn<'_, '_, A>, id: u64) -> Result<Result<(), AppendError>, redb::Error> {
    t.txn().open_table(META)?.insert(CURSOR_KEY, id.to_string().as_str())?;
    t.dirty = true;
    Ok(Ok(()))
}

/// The cursor (0: the hub holds no record yet).
pub fn cursor(reader: &LogReader) -> Result<u64, ReadError> {
    let txn = reader.begin_read()?;
    let meta = txn.open_table(META).storage()?;
    let Some(value) = meta.get(CURSOR_KEY).storage()? else { return Ok(0) };
    value.value().parse().map_err(|e| ReadError::Row { table: "meta", reason: format!("{CURSOR_KEY}: {e}") })
}
