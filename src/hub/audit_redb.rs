//! The redb store's audit records: `audit`, `(edge_id, id) → bytes as sent`. A page is one
//! write transaction (`Durability::Immediate`) that inserts the records the table lacks, so a
//! page sent twice stores nothing the second time.

use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition, TableError};

use super::HubError;
use super::epochs::storage;
use super::store::RedbStore;
use crate::sync::wire_audit::ReceivedRecord;

/// `(edge_id, id) → a stored audit record as the edge sent it`.
const AUDIT: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("audit");

impl RedbStore {
    /// Stores the records of `edge_id` the hub does not hold yet; returns how many were new.
    pub fn store_audit(&self, edge_id: &str, records: &[ReceivedRecord]) -> Result<u64, HubError> {
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::Immediate).map_err(storage)?;
        let mut stored = 0;
        {
            let mut table = txn.open_table(AUDIT).map_err(storage)?;
            for record in records {
                if table.get((edge_id, record.head.id)).map_err(storage)?.is_none() {
                    table.insert((edge_id, record.head.id), record.bytes.as_slice()).map_err(storage)?;
                    stored += 1;
                }
            }
        }
        txn.commit().map_err(storage)?;
        Ok(stored)
    }

    /// Up to `limit` records of `edge_id` with `id > after`, ascending, as sent.
    pub fn audit_page(&self, edge_id: &str, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, HubError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = match txn.open_table(AUDIT) {
            Ok(table) => table,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        if after == u64::MAX {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for entry in table.range((edge_id, after + 1)..=(edge_id, u64::MAX)).map_err(storage)?.take(limit) {
            let (key, value) = entry.map_err(storage)?;
            out.push((key.value().1, value.value().to_vec()));
        }
        Ok(out)
    }
}
