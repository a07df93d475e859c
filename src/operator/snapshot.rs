//! Online snapshots for `zenedge backup`, and the instance files a log refers to.
//!
//! redb has no online backup API, and the running daemon holds the database's file lock, so
//! the daemon makes the copy itself: [`snapshot`] opens **one** read transaction and copies
//! every table of the file's schema ([`LogReader::tables`]: the engine does not need to know
//! what each one is) into a fresh database file. Readers never block the
//! writer, so ingest goes on meanwhile; the copy is exactly the log, projections, sync
//! cursor and dead letters as of one commit. The read transaction is held only while the
//! tables are copied (it pins the pages of that commit, so the live file may grow a little
//! meanwhile); instance files are listed afterwards from the copy, not from the live file.
//!
//! Tables are copied through the schema's table list (redb opens a table only with its key and
//! value types, which each layer declares with its tables); afterwards the copy's table list
//! must equal the file's: a table no layer declared fails the snapshot rather than being left
//! out of a backup silently.
//!
//! Instance files are immutable once an `InstanceStored` names them (written, fsync'ed and
//! renamed before the commit), so copying the files the snapshot's events name, after the
//! snapshot, is consistent with it. Retention deletes files only after an
//! `InstanceFileDeleted` commit, and never while a backup is streamed; files the snapshot
//! records as deleted are left out. [`instance_files`] lists them; [`check_file`] checks one
//! against its event (size of the file, SHA-256 of the data set after the File Meta
//! Information, as [`crate::dicom::spool`] recorded it).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use redb::{Database, MultimapTableHandle, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableHandle};
use sha2::{Digest, Sha256};

use crate::events::{Envelope, Event};
use crate::log::{DATA_KEYS, EVENTS, LogReader, META, TableSpec, VALUE_DICTIONARIES};
use crate::projections::tables::DELETED_FILES;

/// Directory of the daemon's database copies while a backup streams, under the state
/// directory; emptied at start-up ([`sweep`]).
pub const BACKUP_DIR: &str = ".backup";

/// Removes the copies a crash or a kill left under `state_dir`; returns how many.
pub fn sweep(state_dir: &Path) -> io::Result<usize> {
    let dir = state_dir.join(BACKUP_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Why a snapshot or a file listing failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("database: {0}")]
    Storage(#[from] redb::Error),
    #[error("table {0:?} is unknown to this binary: refusing a backup that would leave it out")]
    UnknownTable(String),
    #[error("event {seq} is unreadable: {reason}")]
    Event { seq: u64, reason: String },
    #[error("cannot create {path}: {source}")]
    File { path: String, source: io::Error },
}

fn storage<E: Into<redb::Error>>(e: E) -> SnapshotError {
    SnapshotError::Storage(e.into())
}

/// What a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// The last sequence number in the copy (0 for an empty log).
    pub last_seq: u64,
    pub events: u64,
    pub tables: usize,
}

/// An instance file an `InstanceStored` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceFile {
    pub seq: u64,
    /// Relative to the state directory.
    pub path: String,
    pub size: u64,
    /// Hex SHA-256 of the data set bytes.
    pub sha256: String,
}

/// Copies the database of `reader` as of one commit into a new file at `dest` (which must not
/// exist), made durable before this returns.
pub fn snapshot(reader: &LogReader, dest: &Path) -> Result<SnapshotSummary, SnapshotError> {
    let file_err = |source| SnapshotError::File { path: dest.display().to_string(), source };
    File::create_new(dest).map_err(file_err)?;
    let copy = Database::builder().set_cache_size(16 << 20).create(dest).map_err(storage)?;
    let txn = reader.begin_read().map_err(|e| match e {
        crate::log::ReadError::Storage(e) => SnapshotError::Storage(e),
        other => SnapshotError::Storage(redb::StorageError::Corrupted(other.to_string()).into()),
    })?;
    if let Some(table) = txn.list_multimap_tables().map_err(storage)?.next() {
        return Err(SnapshotError::UnknownTable(table.name().to_owned()));
    }
    let mut tables = 0;
    for spec in
        [TableSpec::of(&EVENTS), TableSpec::of(&META), TableSpec::of(&VALUE_DICTIONARIES), TableSpec::of(&DATA_KEYS)]
            .iter()
            .chain(reader.tables())
    {
        tables += usize::from(spec.copy(&txn, &copy)?);
    }
    let names = |tables: &mut dyn Iterator<Item = redb::UntypedTableHandle>| {
        tables.map(|t| t.name().to_owned()).collect::<std::collections::BTreeSet<_>>()
    };
    let source = names(&mut txn.list_tables().map_err(storage)?);
    let copied = names(&mut copy.begin_read().map_err(storage)?.list_tables().map_err(storage)?);
    if let Some(missed) = source.difference(&copied).next() {
        return Err(SnapshotError::UnknownTable(missed.clone()));
    }
    let events = txn.open_table(EVENTS).map_err(storage)?;
    let last_seq = events.last().map_err(storage)?.map(|(k, _)| k.value()).unwrap_or(0);
    let event_count = events.len().map_err(storage)?;
    drop(events);
    drop(txn);
    // One durable commit makes every page of the copy durable.
    let done = copy.begin_write().map_err(storage)?;
    done.commit().map_err(storage)?;
    drop(copy);
    File::open(dest).and_then(|f| f.sync_all()).map_err(file_err)?;
    Ok(SnapshotSummary { last_seq, events: event_count, tables })
}

/// The instance files named by `InstanceStored` events among the `limit` events after
/// `after` (except those an `InstanceFileDeleted` names: retention removed them, so they
/// are expected to be absent), and the `after` of the next page (`None` once the end of the
/// log was reached).
pub fn instance_files(
    db: &impl ReadableDatabase,
    after: u64,
    limit: usize,
) -> Result<(Vec<InstanceFile>, Option<u64>), SnapshotError> {
    let txn = db.begin_read().map_err(storage)?;
    let events = txn.open_table(EVENTS).map_err(storage)?;
    // A copy made before retention existed has no such table: nothing was deleted.
    let deleted = match txn.open_table(DELETED_FILES) {
        Ok(table) => Some(table),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(storage(e)),
    };
    let mut out = Vec::new();
    let (mut last, mut rows) = (None, 0);
    for row in events.range(after.saturating_add(1)..).map_err(storage)?.take(limit) {
        let (k, v) = row.map_err(storage)?;
        let seq = k.value();
        (last, rows) = (Some(seq), rows + 1);
        let envelope =
            Envelope::from_bytes(v.value()).map_err(|e| SnapshotError::Event { seq, reason: e.to_string() })?;
        if let Event::InstanceStored(i) = envelope.event {
            if let Some(deleted) = &deleted {
                let key = (envelope.tenant_id.as_str(), envelope.hospital_id.as_str(), i.file_path.as_str());
                if deleted.get(key).map_err(storage)?.is_some() {
                    // Retention deleted it (after the hub stored it): expected to be absent.
                    continue;
                }
            }
            out.push(InstanceFile { seq, path: i.file_path, size: i.size, sha256: i.sha256 });
        }
    }
    Ok((out, last.filter(|_| rows == limit)))
}

/// What is wrong with an instance file, `None` when it matches its event.
pub fn check_file(state_dir: &Path, file: &InstanceFile) -> Option<String> {
    let path = state_dir.join(&file.path);
    let problem = match std::fs::metadata(&path) {
        Err(e) => Some(format!("missing ({e})")),
        Ok(m) if m.len() != file.size => Some(format!("{} bytes, the event says {}", m.len(), file.size)),
        Ok(_) => match dataset_sha256(&path) {
            Err(e) => Some(format!("unreadable: {e}")),
            Ok(hash) if hash != file.sha256 => Some(format!("data set SHA-256 {hash}, the event says {}", file.sha256)),
            Ok(_) => None,
        },
    };
    problem.map(|p| format!("{} (event {}): {p}", file.path, file.seq))
}

/// Hex SHA-256 of a Part 10 file's data set: everything after the preamble, `DICM` and the
/// File Meta Information group (0002), which is explicit VR little endian (PS3.10 7.1).
pub fn dataset_sha256(path: &Path) -> io::Result<String> {
    let mut reader = BufReader::with_capacity(64 * 1024, File::open(path)?);
    let mut head = [0u8; 132];
    reader.read_exact(&mut head)?;
    if &head[128..] != b"DICM" {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "no DICM prefix"));
    }
    let mut hash = Sha256::new();
    loop {
        let mut tag = [0u8; 8];
        let n = read_up_to(&mut reader, &mut tag)?;
        if n < 8 || u16::from_le_bytes([tag[0], tag[1]]) != 0x0002 {
            // The first data set element (or the end): it belongs to the data set.
            hash.update(&tag[..n]);
            break;
        }
        let vr = &tag[4..6];
        let len = if matches!(
            vr,
            b"OB" | b"OW" | b"OF" | b"SQ" | b"UT" | b"UN" | b"UC" | b"UR" | b"OD" | b"OL" | b"OV" | b"SV" | b"UV"
        ) {
            let mut long = [0u8; 4];
            reader.read_exact(&mut long)?;
            u64::from(u32::from_le_bytes(long))
        } else {
            u64::from(u16::from_le_bytes([tag[6], tag[7]]))
        };
        io::copy(&mut (&mut reader).take(len), &mut io::sink())?;
    }
    io::copy(&mut reader, &mut HashWriter(&mut hash))?;
    Ok(crate::ids::hex(&hash.finalize()))
}

/// Reads until `buf` is full or the end of the file; returns how much was read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
