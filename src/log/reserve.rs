//! The disk reserve: free space the log keeps in hand on the state directory's filesystem.
//!
//! Checked by the writer before every batch (one `statvfs`, about a microsecond) and by
//! `/readyz`. Below the reserve, requests that would add data are refused, so callers
//! answer negatively while there is still room to commit what was already accepted.

use std::path::PathBuf;

use crate::config::DiskReserve;

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_percentage_reserve_is_always_breached() {
        let dir = tempfile::tempdir().unwrap();
        let space = DiskGuard::new(dir.path().into(), DiskReserve::Percent(100.0)).space().unwrap();
        assert!(space.below_reserve(), "{space:?}");
    }

    #[test]
    fn a_zero_reserve_is_never_breached() {
        let dir = tempfile::tempdir().unwrap();
        let space = DiskGuard::new(dir.path().into(), DiskReserve::Bytes(0)).space().unwrap();
        assert!(!space.below_reserve(), "{space:?}");
    }
}
