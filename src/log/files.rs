//! Durable names on the file system: a file created with every name leading to it fsync'ed,
//! a directory fsync'ed so the names in it survive a power loss, and the check that a path an
//! event names stays inside the state directory.

use std::fs::{self, File};
use std::path::{Component, Path};

/// Creates the empty file `path` (and its directory) unless it exists, with the file and
/// every name created for it fsync'ed; `true` when it was created.
pub fn create_durably(path: &Path) -> std::io::Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.exists() {
        fs::create_dir_all(dir)?;
        if let Some(grandparent) = dir.parent() {
            fsync_dir(if grandparent.as_os_str().is_empty() { Path::new(".") } else { grandparent })?;
        }
    }
    if path.exists() {
        return Ok(false);
    }
    File::create_new(path).and_then(|f| f.sync_all())?;
    fsync_dir(dir)?;
    Ok(true)
}

/// Fsyncs a directory, so the names created in it are durable.
pub fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A relative path that stays below its base (no `..`, no root, not empty): only such paths
/// named by events are read, copied or removed.
pub fn is_relative_inside(path: &str) -> bool {
    let path = Path::new(path);
    path.components().all(|c| matches!(c, Component::Normal(_))) && path.components().next().is_some()
}
