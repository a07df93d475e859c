//! The `[tls]` identity in use, replaced as a whole by a reload.

use std::sync::{Arc, RwLock};

use jiff::Timestamp;

use super::{CertError, ServerTls};
use crate::config::TlsFiles;

/// The identity in use and the files it came from. Cloned handles share it.
#[derive(Debug, Clone)]
pub struct TlsSwitch {
    files: TlsFiles,
    current: Arc<RwLock<Arc<ServerTls>>>,
}

impl TlsSwitch {
    /// `tls`, loaded from `files` (by [`ServerTls::load`]), in use.
    pub fn new(files: TlsFiles, tls: ServerTls) -> TlsSwitch {
        TlsSwitch { files, current: Arc::new(RwLock::new(Arc::new(tls))) }
    }

    /// The identity for a connection accepted now.
    pub fn current(&self) -> Arc<ServerTls> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Reads and checks the files again at `now` (blocking I/O) and puts the result in use
    /// only if every file is usable; otherwise the identity in use stays and the problems
    /// are returned.
    pub fn reload(&self, now: Timestamp) -> Result<Arc<ServerTls>, Vec<CertError>> {
        let fresh = Arc::new(ServerTls::load(&self.files, now)?);
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh.clone();
        Ok(fresh)
    }
}
