//! Where the audit records stand on the hub: `meta["audit_hub_cursor"]`, every record of the
//! trail up to this id is held by the hub (absent: 0). Written through the log writer only after
//! the hub's `200` for a page, so it is never ahead of the hub; audit retention never removes a
//! record past it while the sync is on.

use crate::log::{AppendError, Applier, LogHandle, LogReader, ReadError, positions};

const CURSOR_KEY: &str = "audit_hub_cursor";

/// Records that the hub holds every audit record up to `id`; returns once durable.
pub async fn set_cursor<A: Applier>(log: &LogHandle<A>, id: u64) -> Result<(), AppendError> {
    positions::set(log, CURSOR_KEY, id).await
}

/// The cursor (0: the hub holds no record yet).
pub fn cursor(reader: &LogReader) -> Result<u64, ReadError> {
    positions::read(reader, CURSOR_KEY)
}
