//! Storage fault injection: redb's file backend behind a thin wrapper whose `sync_data` can
//! be made to fail or to wait, and whose writes, length changes and syncs go through the
//! [`StorageHook`](crate::storage_hook) seam when one is installed. Production opens the log
//! with no injector (one `Option` check per operation); tests use it to prove that a failed
//! commit is never acknowledged, that requests arriving during a commit are grouped into the
//! next one, and (with a recording hook) that every acknowledged event survives a power loss
//! at any sync point.

use std::io;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

use crate::storage_hook::{self, Hook, StorageHook, StorageOp};

/// Handle to the faults of one open database (and, through [`FaultInjector::hook`], of the
/// instance files); clones share them.
#[derive(Debug, Clone, Default)]
pub struct FaultInjector {
    inner: Arc<Faults>,
    hook: Hook,
}

#[derive(Debug, Default)]
struct Faults {
    fail_sync: AtomicBool,
    hold: Mutex<Hold>,
    changed: Condvar,
}

/// fsyncs wait while `held`; `waiting` counts those that do.
#[derive(Debug, Default)]
struct Hold {
    held: bool,
    waiting: usize,
}

impl FaultInjector {
    /// An injector whose storage operations (database and instance files) are announced to
    /// `hook` first.
    pub fn with_hook(hook: Arc<dyn StorageHook>) -> FaultInjector {
        FaultInjector { inner: Arc::default(), hook: Some(hook) }
    }

    /// The storage hook, for the instance files.
    pub fn hook(&self) -> Hook {
        self.hook.clone()
    }

    /// From now on every fsync of the database fails with an I/O error.
    pub fn fail_syncs(&self) {
        self.inner.fail_sync.store(true, Ordering::SeqCst);
    }

    /// From now on fsyncs wait until [`FaultInjector::release_syncs`].
    pub fn hold_syncs(&self) {
        self.lock().held = true;
    }

    /// Blocks until an fsync is waiting on the hold (call from a blocking thread).
    pub fn wait_for_held_sync(&self) {
        let mut hold = self.lock();
        while hold.waiting == 0 {
            hold = self.inner.changed.wait(hold).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Lets held fsyncs (and all later ones) proceed.
    pub fn release_syncs(&self) {
        self.lock().held = false;
        self.inner.changed.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hold> {
        self.inner.hold.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn before_sync(&self) -> io::Result<()> {
        let mut hold = self.lock();
        while hold.held {
            hold.waiting += 1;
            self.inner.changed.notify_all();
            hold = self.inner.changed.wait(hold).unwrap_or_else(|e| e.into_inner());
            hold.waiting -= 1;
        }
        if self.inner.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected fsync failure"));
        }
        Ok(())
    }
}

/// redb's file backend, with an optional fault injector in front of `sync_data` and its hook
/// in front of `write`, `set_len` and `sync_data`. Every other call (reads, the file locks)
/// goes straight to the file backend.
#[derive(Debug)]
pub(crate) struct GuardedBackend {
    inner: FileBackend,
    faults: Option<FaultInjector>,
}

impl GuardedBackend {
    pub fn new(inner: FileBackend, faults: Option<FaultInjector>) -> GuardedBackend {
        GuardedBackend { inner, faults }
    }

    fn announce(&self, op: StorageOp<'_>) -> io::Result<bool> {
        match &self.faults {
            Some(faults) => storage_hook::announce(&faults.hook, op),
            None => Ok(true),
        }
    }
}

impl StorageBackend for GuardedBackend {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        if !self.announce(StorageOp::DbSetLen { len })? {
            return Ok(());
        }
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        if let Some(faults) = &self.faults {
            faults.before_sync()?;
        }
        if !self.announce(StorageOp::DbSync)? {
            return Ok(());
        }
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if !self.announce(StorageOp::DbWrite { offset, data })? {
            return Ok(());
        }
        self.inner.write(offset, data)
    }
    fn close(&self) -> io::Result<()> {
        self.inner.close()
    }
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }
    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }
    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }
    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }
    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
