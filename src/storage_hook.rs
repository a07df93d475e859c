//! A seam in front of every write zenedge makes durable: the log's database file (redb's
//! storage backend, [`crate::log`]) and the DICOM instance files ([`crate::dicom::spool`]).
//!
//! Production installs no hook: each operation costs one `Option` check. Tests install one
//! to record every write, sync, rename and directory entry in order (and then simulate a
//! power loss at any point of the recording, offline), to fail an operation, or to leave a
//! sync out (to show that the simulation notices a missing fsync).
//!
//! Paths are those the daemon uses (under its state directory). The hook runs on the thread
//! doing the I/O, before the operation; it must not block for long.

use std::fmt::Debug;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// One storage operation, announced before it happens.
#[derive(Debug, Clone, Copy)]
pub enum StorageOp<'a> {
    /// The database file: `data` written at `offset`.
    DbWrite { offset: u64, data: &'a [u8] },
    /// The database file's length set.
    DbSetLen { len: u64 },
    /// The database file's data fsync'ed (`fdatasync`).
    DbSync,
    /// A new database, written and fsync'ed under a side name, renamed into place and its
    /// directory fsync'ed: the writes so far are the database file from now on (before,
    /// there was none).
    DbCreated,
    /// A new, empty file (an instance's spool file).
    FileCreate { path: &'a Path },
    /// `data` appended to a file.
    FileAppend { path: &'a Path, data: &'a [u8] },
    /// A file's data fsync'ed.
    FileSync { path: &'a Path },
    /// A file renamed (both names in directories that exist).
    Rename { from: &'a Path, to: &'a Path },
    /// A directory created.
    CreateDir { path: &'a Path },
    /// A directory fsync'ed: its entries (created, renamed, removed names) made durable.
    DirSync { path: &'a Path },
    /// A file removed.
    Remove { path: &'a Path },
    /// The whole file system holding `path` flushed (`syncfs`): every pending write of it
    /// (file data, names created, renamed or removed, the database file's writes) made
    /// durable.
    FsSync { path: &'a Path },
}

/// What the daemon does with an operation the hook has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Carry it out.
    Proceed,
    /// Pretend it succeeded without doing it (tests only: a sync left out).
    Skip,
}

/// Sees each storage operation before it happens; an error fails the operation with it.
pub trait StorageHook: Send + Sync + Debug {
    fn before(&self, op: StorageOp<'_>) -> io::Result<Verdict>;
}

/// The hook of one daemon, if any; clones share it.
pub type Hook = Option<Arc<dyn StorageHook>>;

/// Announces `op` to `hook`: `Ok(true)` when the caller should carry it out.
pub fn announce(hook: &Hook, op: StorageOp<'_>) -> io::Result<bool> {
    match hook {
        None => Ok(true),
        Some(hook) => Ok(hook.before(op)? == Verdict::Proceed),
    }
}
