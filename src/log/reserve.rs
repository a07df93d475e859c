//! The disk reserve: free space the log keeps in hand on the state directory's filesystem.
//!
//! Checked by the writer before every batch (one `statvfs`, about a microsecond) and by
//! `/readyz`. Below the reserve, requests that would add data are refused, so callers
//! answer negatively while there is still room to commit what was already accepted.
//!
//! `/readyz` also asks whether files can be written there at all ([`DiskGuard::writable`]):
//! a file system the kernel turned read-only after a disk error still reports its free
//! space, and on recent kernels (ext4's `emergency_ro`) not even the read-only flag.

use std::path::PathBuf;

use crate::config::DiskReserve;

/// A size as people read it (`72.0 GiB`), for logs and messages.
pub fn human(bytes: u64) -> String {
    bytesize::ByteSize(bytes).to_string()
}

/// Free and required space at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub free: u64,
    pub total: u64,
    pub reserve: u64,
}

impl Space {
    pub fn below_reserve(&self) -> bool {
        self.free < self.reserve
    }
}

/// Measures free space under `dir` against the configured reserve.
#[derive(Debug, Clone)]
pub struct DiskGuard {
    dir: PathBuf,
    reserve: DiskReserve,
}

impl DiskGuard {
    pub fn new(dir: PathBuf, reserve: DiskReserve) -> DiskGuard {
        DiskGuard { dir, reserve }
    }

    /// Current free space, or an error when the filesystem cannot be queried (treated by
    /// callers as "below reserve": we do not accept data we cannot vouch for).
    pub fn space(&self) -> std::io::Result<Space> {
        let st = rustix::fs::statvfs(&self.dir)?;
        let total = st.f_blocks.saturating_mul(st.f_frsize);
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        Ok(Space { free, total, reserve: self.reserve.bytes_for(total) })
    }

    /// `Ok` when a file can be created in the directory now: the file system is not mounted
    /// read-only and creating an unnamed file (`O_TMPFILE`, nothing is left behind and
    /// nothing is synced) works. A file system without `O_TMPFILE` is judged by the mount
    /// flag alone. The error is the kernel's (`Read-only file system`, `Input/output error`).
    pub fn writable(&self) -> std::io::Result<()> {
        use rustix::fs::{Mode, OFlags, StatVfsMountFlags};
        use rustix::io::Errno;
        if rustix::fs::statvfs(&self.dir)?.f_flag.contains(StatVfsMountFlags::RDONLY) {
            return Err(Errno::ROFS.into());
        }
        match rustix::fs::open(&self.dir, OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC, Mode::RUSR | Mode::WUSR) {
            Ok(_unnamed) => Ok(()),
            Err(e) if e == Errno::OPNOTSUPP || e == Errno::ISDIR || e == Errno::INVAL => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
#[path = "reserve_tests.rs"]
mod tests;
