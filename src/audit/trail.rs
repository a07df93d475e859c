//! The trail in the database: the `audit_trail` table, its writes inside the log writer's
//! transaction, and the reads that page through it.
//!
//! Rows are stored like event values ([`crate::log::value`]): msgpack, zstd-compressed with
//! the log's current dictionary when that makes them smaller. Every read returns the plain
//! msgpack (the sync sends that to the hub, unchanged by the compression); rows written plain
//! before read as they are.

use redb::{ReadableTable, TableDefinition, TableError};

use super::record::{AuditRecord, StoredRecord};
use crate::log::value;
use crate::log::{AppendError, Applier, LogHandle, LogReader, ReadError, Storage, TableSpec, Txn, decode_row};

/// `id -> msgpack StoredRecord`, ids gapless from 1 in commit order.
pub const AUDIT_TRAIL: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_trail");

/// The table for the file's schema (created by its first write).
pub fn table_spec() -> TableSpec {
    TableSpec::of(&AUDIT_TRAIL).on_first_write()
}

/// Appends `records` in the writer's transaction `t`, with the next ids; they commit with
/// whatever else the batch holds. The caller checks the disk reserve (`t.reserve`) first, as
/// for any data: below it a commit may meet a full disk, which stops the writer.
pub fn append<A: Applier>(t: &mut Txn<'_, '_, A>, records: Vec<AuditRecord>) -> Result<(), redb::Error> {
    if records.is_empty() {
        return Ok(());
    }
    let mut table = t.txn().open_table(AUDIT_TRAIL)?;
    let first = table.last()?.map_or(1, |(k, _)| k.value() + 1);
    let count = records.len() as u64;
    for (id, record) in (first..).zip(records) {
        let row = StoredRecord { id, recorded_at: t.recorded_at, record };
        let bytes = rmp_serde::to_vec_named(&row).map_err(|e| crate::log::corrupt("audit_trail", e))?;
        table.insert(id, value::encode(bytes).as_slice())?;
    }
    t.metrics.audit_records.inc_by(count);
    t.dirty = true;
    Ok(())
}

/// Has the writer append `records` in its next batch; returns once they are durable. Below
/// the disk reserve they are refused ([`AppendError::DiskReserve`]) like any new data.
pub async fn record<A: Applier>(log: &LogHandle<A>, records: Vec<AuditRecord>) -> Result<(), AppendError> {
    log.request(records, apply::<A>).await
}

fn apply<A: Applier>(
    t: &mut Txn<'_, '_, A>,
    records: Vec<AuditRecord>,
) -> Result<Result<(), AppendError>, redb::Error> {
    if let Err(e) = &t.reserve {
        return Ok(Err(e.clone()));
    }
    append(t, records)?;
    Ok(Ok(()))
}

/// The msgpack of a stored row; one that does not decompress is unreadable.
pub(crate) fn plain(stored: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, ReadError> {
    value::plain(stored).map_err(|e| ReadError::Row { table: "audit_trail", reason: e.to_string() })
}

/// The id of the newest record (0 when the trail is empty).
pub fn last_id(reader: &LogReader) -> Result<u64, ReadError> {
    let txn = reader.begin_read()?;
    let table = match txn.open_table(AUDIT_TRAIL) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(ReadError::Storage(e.into())),
    };
    Ok(table.last().storage()?.map_or(0, |(k, _)| k.value()))
}

/// Up to `limit` records with `id > after`, oldest first.
pub fn page(reader: &LogReader, after: u64, limit: usize) -> Result<Vec<StoredRecord>, ReadError> {
    let txn = reader.begin_read()?;
    let table = match txn.open_table(AUDIT_TRAIL) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(ReadError::Storage(e.into())),
    };
    let mut out = Vec::with_capacity(limit.min(1024));
    if after == u64::MAX {
        return Ok(out);
    }
    for row in table.range(after + 1..).storage()?.take(limit) {
        let (_, stored) = row.storage()?;
        out.push(decode_row("audit_trail", &plain(stored.value())?)?);
    }
    Ok(out)
}

/// Up to `limit` records with `id > after` as stored (msgpack bytes), oldest first, stopping
/// before `max_bytes` is passed (one record at least): what the sync sends to the hub.
pub fn page_raw(
    reader: &LogReader,
    after: u64,
    limit: usize,
    max_bytes: usize,
) -> Result<Vec<(u64, Vec<u8>)>, ReadError> {
    let txn = reader.begin_read()?;
    let table = match txn.open_table(AUDIT_TRAIL) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(ReadError::Storage(e.into())),
    };
    let (mut out, mut bytes) = (Vec::new(), 0);
    if after == u64::MAX {
        return Ok(out);
    }
    for row in table.range(after + 1..).storage()?.take(limit) {
        let (key, stored) = row.storage()?;
        let row = plain(stored.value())?;
        bytes += row.len();
        if bytes > max_bytes && !out.is_empty() {
            break;
        }
        out.push((key.value(), row.into_owned()));
    }
    Ok(out)
}
