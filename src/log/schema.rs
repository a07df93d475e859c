//! The file's layout as the layers above the engine declare it: the schema version this binary
//! writes, the migrations from older versions, and every table besides the engine's own
//! (`events`, `meta`).
//!
//! The engine never names those tables: it creates the ones declared [`TableSpec::of`] when it
//! opens the file, and hands the whole list to whoever copies the database
//! ([`crate::log::LogReader::tables`]), so a backup copies every table without knowing what
//! each one is for, and refuses a file holding a table nobody declared.

use redb::{
    Database, Durability, Key, ReadTransaction, ReadableTable, TableDefinition, TableError, TableHandle, Value,
    WriteTransaction,
};

/// One migration step: turns a file at `from` into one at `from + 1`, inside the
/// transaction that also records the new version (so a crash leaves one or the other).
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub from: u64,
    pub apply: fn(&WriteTransaction) -> Result<(), redb::Error>,
}

/// The layout a binary writes.
#[derive(Debug, Clone)]
pub struct Schema {
    /// Bumped with every change to a table or a key encoding, with its step in `migrations`.
    pub version: u64,
    /// Steps in order, from the oldest version this binary upgrades.
    pub migrations: &'static [Migration],
    /// Every table the file may hold besides `events` and `meta`.
    pub tables: Vec<TableSpec>,
}

impl Schema {
    /// The same layout with `tables` declared too.
    pub fn with(mut self, tables: impl IntoIterator<Item = TableSpec>) -> Schema {
        self.tables.extend(tables);
        self
    }
}

/// A table as the engine handles it without knowing its key and value types: its name, and
/// how to create it and copy it (functions made for its types by [`TableSpec::of`]).
#[derive(Clone, Copy)]
pub struct TableSpec {
    pub name: &'static str,
    /// Created (empty) when the file is opened; otherwise by its first write.
    pub at_open: bool,
    create: fn(&WriteTransaction, &str) -> Result<(), TableError>,
    copy: fn(&ReadTransaction, &Database, &str) -> Result<bool, redb::Error>,
}

impl std::fmt::Debug for TableSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableSpec").field("name", &self.name).field("at_open", &self.at_open).finish_non_exhaustive()
    }
}

impl TableSpec {
    /// The table of `def` (a constant: `TableSpec::of(&EVENTS)`), created when the file is
    /// opened.
    pub fn of<K: Key + 'static, V: Value + 'static>(def: &'static TableDefinition<'static, K, V>) -> TableSpec {
        TableSpec { name: def.name(), at_open: true, create: create::<K, V>, copy: copy::<K, V> }
    }

    /// The same table, created by its first write rather than when the file is opened (so a
    /// file that never used it is not written to at open).
    pub fn on_first_write(self) -> TableSpec {
        TableSpec { at_open: false, ..self }
    }

    /// Creates the table (empty) unless it exists.
    pub fn create(&self, txn: &WriteTransaction) -> Result<(), TableError> {
        (self.create)(txn, self.name)
    }

    /// Copies every row from `src` into `dst` in transactions of [`COPY_CHUNK`] rows; `false`
    /// when `src` has no such table.
    pub fn copy(&self, src: &ReadTransaction, dst: &Database) -> Result<bool, redb::Error> {
        (self.copy)(src, dst, self.name)
    }
}

fn create<K: Key + 'static, V: Value + 'static>(txn: &WriteTransaction, name: &str) -> Result<(), TableError> {
    txn.open_table(TableDefinition::<K, V>::new(name)).map(drop)
}

/// Rows per write transaction of a copy (its pages are flushed at each commit).
pub const COPY_CHUNK: usize = 1 << 16;

fn copy<K: Key + 'static, V: Value + 'static>(
    src: &ReadTransaction,
    dst: &Database,
    name: &str,
) -> Result<bool, redb::Error> {
    let def = TableDefinition::<K, V>::new(name);
    let from = match src.open_table(def) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let mut rows = from.iter()?;
    loop {
        let mut txn = dst.begin_write()?;
        // The copy is a scratch file nobody is answered about: its chunks need no fsync each,
        // the caller's one durable commit at the end makes every page durable.
        txn.set_durability(Durability::None).map_err(|e| redb::StorageError::Corrupted(e.to_string()))?;
        let mut copied = 0;
        {
            let mut to = txn.open_table(def)?;
            for row in rows.by_ref().take(COPY_CHUNK) {
                let (k, v) = row?;
                to.insert(k.value(), v.value())?;
                copied += 1;
            }
        }
        txn.commit()?;
        if copied < COPY_CHUNK {
            return Ok(true);
        }
    }
}
