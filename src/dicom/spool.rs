//! Instances on disk: received data is spooled to a temporary file as it arrives, then the
//! finished file is made durable and moved into place before the log hears of it.
//!
//! Layout under the state directory:
//!
//! * `instances/.spool/<uuid>.part` — an instance being received. Swept at start-up: after a
//!   crash nothing there is referenced by the log.
//! * `instances/<study UID>/<series UID>/<SOP instance UID>.<16 hex of the dataset's
//!   SHA-256>.dcm` — a stored instance. UIDs become path components only after
//!   [`is_valid_uid`](crate::ids::is_valid_uid) (digits and dots, at most 64 characters),
//!   so a UID cannot walk out of the directory. The hash in the name keeps both files when
//!   the same SOP instance arrives again with other bytes.
//!
//! The file is a Part 10 file: 128-byte preamble, `DICM`, File Meta Information built from
//! the command set and the negotiated transfer syntax, then the dataset bytes exactly as
//! received. Finishing it: read its identifiers, rename it into place (creating any missing
//! directory, fsync'ed through its parent). Under shared flushes (the default) the file and
//! its name are then made durable by its batch's `syncfs` ([`super::flush`]); flushing each
//! on its own, the file is fsync'ed before the rename and the directory after. Only then
//! may an `InstanceStored` name it. The recorded SHA-256 is that of the data set bytes (the
//! file after its File Meta Information): what identifies "the same instance" for a re-send.
//!
//! Creating a file is the slowest step here (measured on the target's ext4: ~0.6 ms for
//! `open(O_CREAT)`, against ~0.2 ms for the fdatasync of a small instance), so a thread keeps
//! a few empty spool files created ahead of need ([`Prepared`]); receiving an instance takes
//! one instead of creating it on the critical path.
//!
//! A directory is used only once its own name is durable: whoever finds it missing creates
//! it and fsyncs its parent, and a directory found already there (made by another
//! association a moment ago, or before a restart, with no fsync yet) has its parent fsync'ed
//! once per process before a file is renamed into it. The same holds for a file found
//! already in place: its directory is fsync'ed (or its batch flushed) before the log may name
//! it. Under shared flushes a file found in place may also be one a power loss cut short
//! after its rename and before its batch's flush (no event names it): it is kept only if it
//! ends with exactly the data set received now, else the new copy is renamed over it.
//!
//! Every create, append, sync, rename, directory creation and removal is announced to the
//! [`StorageHook`](crate::storage_hook) seam when one is installed (tests: the power-loss
//! simulation records them).
//!
//! Blocking file I/O: everything here runs on tokio's blocking pool (`spawn_blocking`) or on
//! the preparing thread, never on a runtime worker.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use dicom_object::meta::FileMetaTableBuilder;
use sha2::{Digest, Sha256};

use super::negotiate::{IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME};
use crate::config::FlushMode;
use crate::dicom_scan::{self as scan, InstanceAttributes, ScanError, ScanLimits};
use crate::storage_hook::{Hook, StorageOp, announce};

/// Empty spool files created ahead of need.
const PREPARED_FILES: usize = 8;

/// Where instances live, relative to the state directory, and the spool files prepared for
/// them.
#[derive(Debug, Clone)]
pub struct Layout {
    pub state_dir: PathBuf,
    prepared: Arc<Prepared>,
    /// Directories whose names this process made durable (created, or found and their
    /// parent fsync'ed).
    durable_dirs: Arc<Mutex<HashSet<PathBuf>>>,
    hook: Hook,
    /// Between intake and retention's unlink (see [`super::gate`]).
    gate: Arc<super::InstanceGate>,
    /// Instance files are made durable by the batch's `syncfs` ([`super::flush`]), not each
    /// on its own.
    shared_flush: bool,
}

/// A thread that keeps [`PREPARED_FILES`] empty spool files ready, started once the spool
/// was swept; it ends when the layout is dropped (its next hand-over fails).
#[derive(Debug, Default)]
struct Prepared {
    files: Mutex<Option<mpsc::Receiver<(File, PathBuf)>>>,
}

impl Layout {
    pub fn new(state_dir: PathBuf) -> Layout {
        Layout::with_hook(state_dir, None)
    }

    /// As [`Layout::new`], with every file operation announced to `hook` (tests).
    pub fn with_hook(state_dir: PathBuf, hook: Hook) -> Layout {
        Layout {
            state_dir,
            prepared: Arc::default(),
            durable_dirs: Arc::default(),
            hook,
            gate: Arc::default(),
            shared_flush: true,
        }
    }

    /// The same layout, its instance files flushed as `mode` says.
    pub fn with_flush(mut self, mode: FlushMode) -> Layout {
        self.shared_flush = mode == FlushMode::Shared;
        self
    }

    /// Whether instance files wait for their batch's `syncfs` instead of being fsync'ed
    /// each on its own.
    pub fn shared_flush(&self) -> bool {
        self.shared_flush
    }

    /// The storage hook (the flusher announces its `syncfs` to it).
    pub(super) fn hook(&self) -> &Hook {
        &self.hook
    }

    /// Starts preparing spool files (after the sweep: it would remove them).
    fn start_preparing(&self) {
        let (tx, rx) = mpsc::sync_channel(PREPARED_FILES);
        let (spool, hook) = (self.spool(), self.hook.clone());
        let started = std::thread::Builder::new().name("spool-prep".into()).spawn(move || {
            loop {
                match create_temp(&spool, &hook) {
                    Ok(file) => {
                        if tx.send(file).is_err() {
                            return;
                        }
                    }
                    // The receiver creates its own meanwhile; retry after a pause, not in a spin.
                    Err(_) => std::thread::park_timeout(std::time::Duration::from_millis(200)),
                }
            }
        });
        match started {
            Ok(_) => *self.prepared.files.lock().unwrap_or_else(|e| e.into_inner()) = Some(rx),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the spool preparing thread; creating spool files on demand")
            }
        }
    }

    /// An empty spool file: a prepared one, or a new one.
    fn take_temp(&self) -> io::Result<(File, PathBuf)> {
        let ready = self.prepared.files.lock().ok().and_then(|rx| rx.as_ref().and_then(|rx| rx.try_recv().ok()));
        match ready {
            Some(prepared) => Ok(prepared),
            None => create_temp(&self.spool(), &self.hook),
        }
    }

    /// The gate intake and retention share (see [`super::gate`]).
    pub fn gate(&self) -> Arc<super::InstanceGate> {
        self.gate.clone()
    }

    pub fn instances(&self) -> PathBuf {
        self.state_dir.join("instances")
    }

    pub fn spool(&self) -> PathBuf {
        self.instances().join(".spool")
    }

    /// Creates the directories and removes what a crash left in the spool. Returns how
    /// many partly received instances were removed: the files with data in them (the empty
    /// ones were only prepared, [`PREPARED_FILES`] and one more on any stop).
    pub fn prepare(&self) -> io::Result<usize> {
        self.create_dirs_durably(&self.spool())?;
        let mut removed = 0;
        for entry in fs::read_dir(self.spool())? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                let partial = entry.metadata()?.len() > 0;
                self.remove(&entry.path())?;
                removed += usize::from(partial);
            }
        }
        self.start_preparing();
        Ok(removed)
    }

    /// Makes `dir` and its missing ancestors exist with durable names: each one created has
    /// its parent fsync'ed, and so has each one found already there the first time this
    /// process uses it (its creator may not have fsync'ed the parent yet).
    fn create_dirs_durably(&self, dir: &Path) -> io::Result<()> {
        // The state directory's own name was made durable with the database file.
        if dir == self.state_dir || self.durable_dirs.lock().unwrap_or_else(|e| e.into_inner()).contains(dir) {
            return Ok(());
        }
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if dir.starts_with(&self.state_dir) {
            self.create_dirs_durably(parent)?;
        }
        if announce(&self.hook, StorageOp::CreateDir { path: dir })? {
            match fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
                Err(e) => return Err(e),
            }
        }
        self.fsync_dir(parent)?;
        self.durable_dirs.lock().unwrap_or_else(|e| e.into_inner()).insert(dir.to_owned());
        Ok(())
    }

    fn fsync_dir(&self, dir: &Path) -> io::Result<()> {
        if announce(&self.hook, StorageOp::DirSync { path: dir })? {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    pub(super) fn remove(&self, path: &Path) -> io::Result<()> {
        if announce(&self.hook, StorageOp::Remove { path })? {
            fs::remove_file(path)?;
        }
        Ok(())
    }
}

/// What the File Meta Information says (PS3.10 7.1).
#[derive(Debug, Clone)]
pub struct MetaFields {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub transfer_syntax_uid: String,
    pub source_ae: String,
}

/// An instance being received.
#[derive(Debug)]
pub struct Spool {
    file: File,
    temp: PathBuf,
    hook: Hook,
    meta_len: u64,
    dataset_hash: Sha256,
    dataset_len: u64,
}

/// A finished, durable, renamed instance file.
#[derive(Debug, Clone)]
pub struct Stored {
    pub attributes: InstanceAttributes,
    /// Relative to the state directory.
    pub file_path: String,
    pub size: u64,
    /// SHA-256 of the data set bytes (the file after its File Meta Information).
    pub sha256: [u8; 32],
    /// This C-STORE renamed the file into place (else it found the same data set there).
    pub renamed: bool,
}

/// Why an instance could not be stored; each maps to a C-STORE failure status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data could not be read as a dataset (0xC000).
    #[error("cannot understand the data set: {0}")]
    Unreadable(#[from] ScanError),
    /// The dataset's SOP Class or Instance UID differs from the command (0xA900).
    #[error("{0} in the data set differs from the C-STORE request")]
    Mismatch(&'static str),
    /// Writing failed: disk full or broken (0xA700).
    #[error("cannot write the instance: {0}")]
    Io(#[from] io::Error),
}

/// Creates an empty spool file under `spool`.
fn create_temp(spool: &Path, hook: &Hook) -> io::Result<(File, PathBuf)> {
    let path = spool.join(format!("{}.part", uuid::Uuid::new_v4()));
    announce(hook, StorageOp::FileCreate { path: &path })?;
    Ok((File::create_new(&path)?, path))
}

impl Spool {
    /// Takes a spool file and writes the preamble and File Meta Information.
    pub fn create(layout: &Layout, meta: &MetaFields) -> io::Result<Spool> {
        let mut head = vec![0u8; 128];
        head.extend_from_slice(b"DICM");
        FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(meta.sop_class_uid.as_str())
            .media_storage_sop_instance_uid(meta.sop_instance_uid.as_str())
            .transfer_syntax(meta.transfer_syntax_uid.as_str())
            .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
            .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
            .source_application_entity_title(meta.source_ae.as_str())
            .build()
            .and_then(|table| table.write(&mut head))
            .map_err(io::Error::other)?;
        let (mut file, temp) = layout.take_temp()?;
        let hook = layout.hook.clone();
        let written =
            announce(&hook, StorageOp::FileAppend { path: &temp, data: &head }).and_then(|_| file.write_all(&head));
        if let Err(e) = written {
            let _ = layout.remove(&temp);
            return Err(e);
        }
        Ok(Spool { file, temp, hook, meta_len: head.len() as u64, dataset_hash: Sha256::new(), dataset_len: 0 })
    }

    /// Appends dataset bytes.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        announce(&self.hook, StorageOp::FileAppend { path: &self.temp, data })?;
        self.file.write_all(data)?;
        self.dataset_hash.update(data);
        self.dataset_len += data.len() as u64;
        Ok(())
    }

    /// Makes the file durable, checks it against the command, and moves it into place.
    pub fn finish(mut self, layout: &Layout, meta: &MetaFields) -> Result<Stored, StoreError> {
        let result = self.finish_inner(layout, meta);
        if result.is_err() {
            let _ = layout.remove(&self.temp);
        }
        result
    }

    fn finish_inner(&mut self, layout: &Layout, meta: &MetaFields) -> Result<Stored, StoreError> {
        if !layout.shared_flush && announce(&self.hook, StorageOp::FileSync { path: &self.temp })? {
            self.file.sync_data()?;
        }
        self.file.seek(SeekFrom::Start(self.meta_len))?;
        let reader = BufReader::with_capacity(16 * 1024, (&self.file).take(self.dataset_len));
        let attributes = scan::scan(reader, &meta.transfer_syntax_uid, &ScanLimits::default())?;
        if attributes.sop_class_uid != meta.sop_class_uid {
            return Err(StoreError::Mismatch("SOP Class UID"));
        }
        if attributes.sop_instance_uid != meta.sop_instance_uid {
            return Err(StoreError::Mismatch("SOP Instance UID"));
        }
        let sha256: [u8; 32] = self.dataset_hash.clone().finalize().into();
        let relative = Path::new("instances")
            .join(&attributes.study_instance_uid)
            .join(&attributes.series_instance_uid)
            .join(format!("{}.{}.dcm", attributes.sop_instance_uid, &crate::ids::hex(&sha256)[..16]));
        let target = layout.state_dir.join(&relative);
        let dir = target.parent().expect("a file under instances/ has a parent");
        layout.create_dirs_durably(dir)?;
        let kept = match fs::metadata(&target) {
            // The same data set is already there (its hash is in the name): a re-send, which
            // the log will answer as such, or a file a crash left between rename and commit.
            Ok(found) if self.keeps(layout, &target, &sha256)? => Some(found.len()),
            Ok(_) | Err(_) => None,
        };
        let (size, renamed) = match kept {
            Some(size) => {
                // Keep the file that is there, and make its name durable: another association
                // may have renamed it a moment ago and not yet fsync'ed the directory, or the
                // fsync after its own rename failed. (Shared flushes: the batch's syncfs does.)
                layout.remove(&self.temp)?;
                if !layout.shared_flush {
                    layout.fsync_dir(dir)?;
                }
                (size, false)
            }
            None => {
                if announce(&self.hook, StorageOp::Rename { from: &self.temp, to: &target })? {
                    fs::rename(&self.temp, &target)?;
                }
                if !layout.shared_flush {
                    layout.fsync_dir(dir)?;
                }
                (self.meta_len + self.dataset_len, true)
            }
        };
        let file_path = relative.to_string_lossy().into_owned();
        Ok(Stored { attributes, file_path, size, sha256, renamed })
    }

    /// Whether the file found at `target` is kept instead of replaced by this one. Flushed
    /// each on its own, a file is renamed into place only once durable: kept. Under shared
    /// flushes it may be one a power loss cut short before its batch's flush (renamed, never
    /// recorded): kept only if it ends with exactly the data set received now.
    fn keeps(&self, layout: &Layout, target: &Path, sha256: &[u8; 32]) -> io::Result<bool> {
        if !layout.shared_flush {
            return Ok(true);
        }
        let mut found = File::open(target)?;
        let len = found.metadata()?.len();
        if len < self.dataset_len {
            return Ok(false);
        }
        found.seek(SeekFrom::Start(len - self.dataset_len))?;
        let mut hash = Sha256::new();
        io::copy(&mut BufReader::with_capacity(64 * 1024, found), &mut hash)?;
        Ok(<[u8; 32]>::from(hash.finalize()) == *sha256)
    }

    /// Drops a partly received instance.
    pub fn discard(self) {
        if announce(&self.hook, StorageOp::Remove { path: &self.temp }).unwrap_or(true) {
            let _ = fs::remove_file(&self.temp);
        }
    }

    /// Dataset bytes received so far.
    pub fn dataset_len(&self) -> u64 {
        self.dataset_len
    }
}

#[cfg(test)]
#[path = "spool_tests.rs"]
mod tests;
