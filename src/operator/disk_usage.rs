//! `zenedge disk-usage`: what each table of a stopped daemon's database holds on disk, so an
//! admin (and the storage benchmark) can see where the bytes go: rows, the bytes of keys and
//! values, the b-tree's own bytes, fragmentation and pages, table by table, then the file's
//! totals. It opens the database read-only through the same path as `verify` (the daemon must
//! be stopped: redb refuses a second process).

use std::path::Path;
use std::process::ExitCode;

use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};

/// One table's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableUsage {
    pub table: String,
    pub rows: u64,
    /// Keys and values as inserted.
    pub stored_bytes: u64,
    /// Branch pages' keys and other b-tree metadata.
    pub metadata_bytes: u64,
    /// Unused space inside the table's pages.
    pub fragmented_bytes: u64,
    pub leaf_pages: u64,
    pub branch_pages: u64,
}

impl TableUsage {
    /// Everything the table occupies in the file.
    pub fn total_bytes(&self) -> u64 {
        self.stored_bytes + self.metadata_bytes + self.fragmented_bytes
    }
}

/// Every table of `db`, largest first.
pub fn tables(db: &redb::Database) -> Result<Vec<TableUsage>, redb::Error> {
    let txn = db.begin_read()?;
    let mut usage = Vec::new();
    for handle in txn.list_tables()? {
        let table = txn.open_untyped_table(handle)?;
        let stats = table.stats()?;
        usage.push(TableUsage {
            table: table.name().to_owned(),
            rows: table.len()?,
            stored_bytes: stats.stored_bytes(),
            metadata_bytes: stats.metadata_bytes(),
            fragmented_bytes: stats.fragmented_bytes(),
            leaf_pages: stats.leaf_pages(),
            branch_pages: stats.branch_pages(),
        });
    }
    usage.sort_by(|a, b| b.total_bytes().cmp(&a.total_bytes()).then_with(|| a.table.cmp(&b.table)));
    Ok(usage)
}

/// `zenedge disk-usage`: exit 0 after printing the table, 1 when the database cannot be
/// read, 78 for a bad config.
pub fn run_command(config: &Path) -> ExitCode {
    super::rebuild::with_database(config, |db, config| {
        let usage = match tables(db) {
            Ok(usage) => usage,
            Err(e) => {
                eprintln!("zenedge: {e}");
                return ExitCode::FAILURE;
            }
        };
        print!("{}", render(&usage));
        let path = config.database_path();
        match std::fs::metadata(&path) {
            Ok(meta) => {
                use std::os::unix::fs::MetadataExt;
                println!(
                    "{}: file length {} bytes, {} bytes allocated on disk",
                    path.display(),
                    meta.len(),
                    meta.blocks() * 512
                );
            }
            Err(e) => eprintln!("zenedge: {}: {e}", path.display()),
        }
        ExitCode::SUCCESS
    })
}

/// The table as text: one line per table, then the sum.
pub fn render(usage: &[TableUsage]) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "{:<26} {:>10} {:>14} {:>12} {:>12} {:>14} {:>8}\n",
        "table", "rows", "stored bytes", "b-tree", "fragmented", "total", "pages"
    );
    let line = |out: &mut String, name: &str, u: (u64, u64, u64, u64, u64, u64)| {
        let _ = writeln!(out, "{name:<26} {:>10} {:>14} {:>12} {:>12} {:>14} {:>8}", u.0, u.1, u.2, u.3, u.4, u.5);
    };
    let mut sum = (0, 0, 0, 0, 0, 0);
    for t in usage {
        let row = (
            t.rows,
            t.stored_bytes,
            t.metadata_bytes,
            t.fragmented_bytes,
            t.total_bytes(),
            t.leaf_pages + t.branch_pages,
        );
        line(&mut out, &t.table, row);
        sum = (sum.0 + row.0, sum.1 + row.1, sum.2 + row.2, sum.3 + row.3, sum.4 + row.4, sum.5 + row.5);
    }
    line(&mut out, "(all tables)", sum);
    out
}

#[cfg(test)]
#[path = "disk_usage_tests.rs"]
mod tests;
