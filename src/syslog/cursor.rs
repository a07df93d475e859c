//! The forwarder's cursor, a row of the log's `meta` table: every audit record up to it was
//! handed to the collector. Written through the log writer, like the sync's cursor.

use crate::log::{AppendError, Applier, LogHandle, LogReader, ReadError, positions};

const CURSOR_KEY: &str = "audit_syslog_cursor";

/// Records that every audit record up to `id` was forwarded; returns once durable.
pub async fn set_cursor<A: Applier>(log: &LogHandle<A>, id: u64) -> Result<(), AppendError> {
    positions::set(log, CURSOR_KEY, id).await
}

/// The cursor (0: nothing forwarded yet).
pub fn cursor(reader: &LogReader) -> Result<u64, ReadError> {
    positions::read(reader, CURSOR_KEY)
}
