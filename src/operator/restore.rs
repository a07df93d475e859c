//! `zenedge restore --from DIR --config FILE [--force]`: puts a backup made by
//! `zenedge backup` in place, with the daemon stopped.
//!
//! Checks first, changes after: DIR must hold `zenedge.redb` of the config's site (tenant,
//! hospital, edge); the state directory must be empty or missing unless `--force`, and its
//! database must not be open (a running daemon holds its lock). Then the instance files are
//! copied, each through a `.part` name, fsync'ed and renamed, their directories fsync'ed;
//! the database last, the same way, so a restore interrupted before its end leaves no
//! database that names files not yet there. Finally the restored database is opened as the
//! daemon would (schema and site checks) and every instance file is checked against its
//! event. With `--force`, files of the state directory that the backup does not hold are
//! left where they are.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use redb::ReadableDatabase;

use super::backup::{BackupSummary, DATABASE, check_instances, head, write_durably};
use crate::config::{Config, Site};
use crate::log::store::META;

/// `zenedge restore`: exit 0 when the copy is in place and checked, 1 otherwise.
pub fn run_command(from: &Path, config: &Path, force: bool) -> ExitCode {
    let config = match super::load_config(config) {
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
                "zenedge restore: {} instance files are missing or differ from their events",
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

/// Restores the backup in `from` into the state directory of `config`.
pub fn restore(from: &Path, config: &Config, force: bool) -> Result<BackupSummary, String> {
    let source = from.join(DATABASE);
    if !source.is_file() {
        return Err(format!("{} holds no {DATABASE}: not a finished `zenedge backup`", from.display()));
    }
    check_site(&source, &config.site)?;
    let state_dir = &config.store.state_dir;
    let target = config.database_path();
    check_target(state_dir, &target, force)?;
    fs::create_dir_all(state_dir).map_err(|e| format!("cannot create {}: {e}", state_dir.display()))?;
    let files = copy_tree(&from.join("instances"), &state_dir.join("instances"))
        .map_err(|e| format!("cannot copy the instance files: {e}"))?;
    let mut db_file = fs::File::open(&source).map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    write_durably(&mut db_file, &target)
        .and_then(|_| super::fsync_dir(state_dir))
        .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    let db = crate::projections::rebuild::open(&target, &config.site, config.store.cache_size)?;
    let mut summary = check_instances(&db, state_dir).map_err(|e| e.to_string())?;
    (summary.events, summary.last_seq) = head(&db).map_err(|e| e.to_string())?;
    summary.files = files;
    Ok(summary)
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

/// The state directory must be empty (or `--force`) and its database closed.
fn check_target(state_dir: &Path, database: &Path, force: bool) -> Result<(), String> {
    let occupied = fs::read_dir(state_dir).map(|mut d| d.next().is_some()).unwrap_or(false);
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
