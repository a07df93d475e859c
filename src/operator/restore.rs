//! `zenedge restore --from DIR --config FILE [--force]`: puts a backup made by
//! `zenedge backup` in place, with the daemon stopped.
//!
//! Checks first, changes after, and nothing startable unless every check passed:
//!
//! 1. DIR must hold `zenedge.redb` of the config's site (tenant, hospital, edge); the state
//!    directory must be empty or missing (but for the master key file, when it is kept there)
//!    unless `--force`, and its database must not be open (a running daemon holds its lock).
//!    The config's master key file must be the one the backup's data keys were made under.
//! 2. Everything is written into a side directory, `<state_dir>/.restore-<pid>`: the instance
//!    files, then the database, each through a `.part` name, fsync'ed and renamed, the
//!    directories fsync'ed. The side directory is inside the state directory rather than
//!    beside it because the daemon's user owns the state directory but usually not its parent
//!    (`/var/lib`), and the state directory may be a mount point; it is on the same file
//!    system either way, so the moves below are renames.
//! 3. The copy is opened as the daemon would (schema and site checks), marked as restored
//!    (`meta["sync_restored"]`: the sync checks the hub's history before it sends
//!    anything), and every instance file is checked against
//!    its event (size, SHA-256 of the data set).
//! 4. Only if all of that passed is it moved into place: the `instances` tree (one rename
//!    when the state directory has none, else file by file), then `zenedge.redb` last, the
//!    state directory fsync'ed. Any failure before that removes the side directory: the state
//!    directory is left as it was, and after a failed restore into an empty one it holds no
//!    database for `zenedge verify` or the daemon to start on. A crash during the moves
//!    leaves no database either (run the restore again with `--force`); a side directory left
//!    by a crash is removed by the next restore.
//!
//! With `--force`, files of the state directory that the backup does not hold are left
//! where they are.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use redb::ReadableDatabase;

use super::backup::{BackupSummary, DATABASE, check_instances, head, write_durably};
use crate::config::{Config, Site};
use crate::log::store::META;

/// The prefix of the side directories under the state directory.
const SIDE_PREFIX: &str = ".restore-";

/// `zenedge restore`: exit 0 when the copy is in place and checked, 1 otherwise.
pub fn run_command(from: &Path, config: &Path, force: bool) -> ExitCode {
    let config = match crate::cli::load_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match restore(from, &config, force) {
        Ok(summary) if summary.problem_count == 0 => {
            println!(
                "restored {} events (last seq {}) and {} instance files into {}; `zenedge verify` checks the projections",
                summary.events,
                summary.last_seq,
                summary.files,
                config.store.state_dir.display()
            );
            ExitCode::SUCCESS
        }
        Ok(summary) => {
            for problem in &summary.problems {
                eprintln!("zenedge restore: {problem}");
            }
            eprintln!(
                "zenedge restore: {} instance files are missing or differ from their events: nothing was put in place",
                summary.problem_count
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("zenedge restore: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Restores the backup in `from` into the state directory of `config`. With problems in the
/// summary, nothing was put in place.
pub fn restore(from: &Path, config: &Config, force: bool) -> Result<BackupSummary, String> {
    let source = from.join(DATABASE);
    if !source.is_file() {
        return Err(format!("{} holds no {DATABASE}: not a finished `zenedge backup`", from.display()));
    }
    check_site(&source, &config.site)?;
    let state_dir = &config.store.state_dir;
    check_target(state_dir, &config.database_path(), &config.store.master_key_file, force)?;
    create_dir_durably(state_dir).map_err(|e| format!("cannot create {}: {e}", state_dir.display()))?;
    sweep_sides(state_dir).map_err(|e| format!("cannot remove what an interrupted restore left: {e}"))?;
    let side =
        Side::create(state_dir).map_err(|e| format!("cannot create a directory in {}: {e}", state_dir.display()))?;
    let summary = fill(from, &source, side.path(), config)?;
    if summary.problem_count > 0 {
        return Ok(summary);
    }
    side.move_into(state_dir).map_err(|e| format!("cannot move the checked copy into {}: {e}", state_dir.display()))?;
    Ok(summary)
}

/// Copies the backup into `side`, opens it as the daemon would, marks it restored and checks
/// every instance file.
fn fill(from: &Path, source: &Path, side: &Path, config: &Config) -> Result<BackupSummary, String> {
    let files = copy_tree(&from.join("instances"), &side.join("instances"))
        .map_err(|e| format!("cannot copy the instance files: {e}"))?;
    let copy = side.join(DATABASE);
    let mut db_file = fs::File::open(source).map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    write_durably(&mut db_file, &copy)
        .and_then(|_| super::fsync_dir(side))
        .map_err(|e| format!("cannot write {}: {e}", copy.display()))?;
    // Opened with the master key: the backup's sealed values are read as the daemon reads them.
    let options = crate::log::LogOptions { path: copy.clone(), ..crate::log::LogOptions::from_config(config) };
    let db = crate::projections::rebuild::open_keyed(&options)?;
    crate::sync::cursor::mark_restored(&db, jiff::Timestamp::now())
        .map_err(|e| format!("cannot mark the copy as restored: {e}"))?;
    let mut summary = check_instances(&*db, side).map_err(|e| e.to_string())?;
    (summary.events, summary.last_seq) = head(&*db).map_err(|e| e.to_string())?;
    summary.files = files;
    Ok(summary)
}

/// The side directory; removed when dropped unless it was moved into place.
struct Side {
    path: PathBuf,
    /// Emptied by a successful move (then only the directory itself is removed).
    moved: bool,
}

impl Side {
    fn create(state_dir: &Path) -> io::Result<Side> {
        let path = state_dir.join(format!("{SIDE_PREFIX}{}", std::process::id()));
        fs::create_dir(&path)?;
        super::fsync_dir(state_dir)?;
        Ok(Side { path, moved: false })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the instance files, then the database, into `state_dir`.
    fn move_into(mut self, state_dir: &Path) -> io::Result<()> {
        let instances = self.path.join("instances");
        if instances.is_dir() {
            move_tree(&instances, &state_dir.join("instances"))?;
        }
        fs::rename(self.path.join(DATABASE), state_dir.join(DATABASE))?;
        super::fsync_dir(state_dir)?;
        self.moved = true;
        Ok(())
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        let removed = fs::remove_dir_all(&self.path);
        if let (Err(e), false) = (&removed, self.moved) {
            eprintln!("zenedge restore: cannot remove {}: {e}", self.path.display());
        }
        if let Some(parent) = self.path.parent() {
            let _ = super::fsync_dir(parent);
        }
    }
}

/// Moves the tree `from` to `to`: one rename when `to` does not exist, else each file into
/// the existing tree (replacing a file of the same name), directories fsync'ed.
fn move_tree(from: &Path, to: &Path) -> io::Result<()> {
    if !to.exists() {
        fs::rename(from, to)?;
        return super::fsync_dir(to.parent().unwrap_or(Path::new(".")));
    }
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            move_tree(&entry.path(), &target)?;
        } else {
            fs::rename(entry.path(), &target)?;
        }
    }
    super::fsync_dir(to)
}

/// Removes side directories an interrupted restore left in `state_dir`.
fn sweep_sides(state_dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(state_dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(SIDE_PREFIX) && entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

/// Creates `dir` (and its parents) with the new names durable.
fn create_dir_durably(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => super::fsync_dir(parent),
        _ => Ok(()),
    }
}

/// The backup must belong to the config's site.
fn check_site(source: &Path, site: &Site) -> Result<(), String> {
    let unreadable = |e: &dyn std::fmt::Display| format!("{} is unreadable: {e}", source.display());
    let db = redb::ReadOnlyDatabase::open(source).map_err(|e| unreadable(&e))?;
    let txn = db.begin_read().map_err(|e| unreadable(&e))?;
    let meta = txn.open_table(META).map_err(|e| unreadable(&e))?;
    for (key, expected) in
        [("tenant_id", &site.tenant_id), ("hospital_id", &site.hospital_id), ("edge_id", &site.edge_id)]
    {
        let found = meta.get(key).map_err(|e| unreadable(&e))?.map(|v| v.value().to_owned());
        if found.as_deref() != Some(expected.as_str()) {
            return Err(match found {
                Some(found) => format!(
                    "the backup belongs to {key} {found:?} but the config says {expected:?}: refusing to mix two sites' data"
                ),
                None => format!("the backup records no {key} (is it a zenedge backup?); the config says {expected:?}"),
            });
        }
    }
    Ok(())
}

/// The state directory must be empty (or `--force`) and its database closed. The master key
/// file, when it is kept there, does not count: the backup needs it.
fn check_target(state_dir: &Path, database: &Path, master_key: &Path, force: bool) -> Result<(), String> {
    // What an interrupted restore left is swept, not counted.
    let occupied = fs::read_dir(state_dir)
        .map(|d| {
            d.flatten().any(|e| !e.file_name().to_string_lossy().starts_with(SIDE_PREFIX) && e.path() != master_key)
        })
        .unwrap_or(false);
    if occupied && !force {
        return Err(format!(
            "{} is not empty: restore into an empty state directory, or pass --force to write over it",
            state_dir.display()
        ));
    }
    if database.exists() && matches!(redb::Database::open(database), Err(redb::DatabaseError::DatabaseAlreadyOpen)) {
        return Err(format!("{} is in use: stop the daemon first (systemctl stop zenedge)", database.display()));
    }
    Ok(())
}

/// Copies every file below `from` to the same place below `to`; returns how many.
fn copy_tree(from: &Path, to: &Path) -> io::Result<u64> {
    if !from.is_dir() {
        return Ok(0);
    }
    let mut copied = 0;
    let mut pending: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let target_dir = to.join(&relative);
        fs::create_dir_all(&target_dir)?;
        for entry in fs::read_dir(from.join(&relative))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(relative.join(entry.file_name()));
            } else if kind.is_file() {
                write_durably(&mut fs::File::open(entry.path())?, &target_dir.join(entry.file_name()))?;
                copied += 1;
            }
        }
        super::fsync_dir(&target_dir)?;
        if let Some(parent) = target_dir.parent() {
            super::fsync_dir(parent)?;
        }
    }
    Ok(copied)
}
