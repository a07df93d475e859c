//! Instance files no event names, removed at start-up.
//!
//! A file is renamed into `instances/` before its `InstanceStored` is committed ([`super::flush`]).
//! A crash between the two, or a batch whose flush failed and whose files could not be
//! removed, leaves a file there that the log does not name: after a power loss it may even be
//! cut short (its rename reached the disk, its data did not). The sender was never answered
//! `Success` and sends again; the file is only in the way, and would stay for ever.
//!
//! [`sweep`] runs at start-up, after the spool's own sweep and before the listeners accept,
//! so no batch that could still commit such a file is in flight. It looks at every file of the
//! layout's shape (`instances/<study>/<series>/<SOP instance>.<16 hex>.dcm`) and removes it
//! unless an `InstanceStored` names it ([`crate::projections::views::names_file`]: the
//! instance's latest version or any version it replaced). A file an event names is never
//! touched (files whose deletion retention recorded are retention's:
//! [`crate::retention::unlink_deleted`]); nothing else under `instances/` is touched either.
//!
//! Removals are not fsync'ed: one lost to a crash is made again at the next start.

use std::fs;
use std::io;
use std::path::Path;

use super::Layout;
use crate::log::LogReader;
use crate::projections::views::names_file;

/// What [`sweep`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Instance files looked at.
    pub examined: u64,
    /// Of them, removed: no event names them.
    pub removed: u64,
}

/// Removes the instance files under `layout` that no event in `reader`'s log names.
pub fn sweep(layout: &Layout, reader: &LogReader) -> Result<Swept, String> {
    let mut swept = Swept::default();
    for study in subdirectories(&layout.instances()).map_err(|e| e.to_string())? {
        for series in subdirectories(&study).map_err(|e| e.to_string())? {
            for entry in fs::read_dir(&series).map_err(|e| e.to_string())? {
                let entry = entry.map_err(|e| e.to_string())?;
                if !entry.file_type().map_err(|e| e.to_string())?.is_file() {
                    continue;
                }
                let name = entry.file_name();
                let Some(sop) = name.to_str().and_then(sop_of) else { continue };
                let relative = entry.path().strip_prefix(&layout.state_dir).map(Path::to_path_buf);
                let Some(file_path) = relative.ok().and_then(|p| p.to_str().map(str::to_owned)) else { continue };
                swept.examined += 1;
                if names_file(reader, sop, &file_path).map_err(|e| e.to_string())? {
                    continue;
                }
                layout.remove(&entry.path()).map_err(|e| format!("cannot remove {file_path}: {e}"))?;
                tracing::info!(file = %file_path, "removed an instance file no event names");
                swept.removed += 1;
            }
        }
    }
    Ok(swept)
}

/// The directories in `dir` but the spool.
fn subdirectories(dir: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() && entry.file_name() != ".spool" {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// The SOP Instance UID of an instance file's name (`<UID>.<16 hex>.dcm`), `None` for a
/// name of another shape.
fn sop_of(name: &str) -> Option<&str> {
    let (sop, hash) = name.strip_suffix(".dcm")?.rsplit_once('.')?;
    let hex = hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && crate::ids::is_valid_uid(sop)).then_some(sop)
}

#[cfg(test)]
#[path = "orphans_tests.rs"]
mod tests;
