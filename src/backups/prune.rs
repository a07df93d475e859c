//! The backups in the directory: their names, which are complete, which are old enough to go,
//! and what a crash left half-written.
//!
//! A backup is `DIR/zenedge-<start time in UTC, 20261207T020000Z>`, complete once it holds
//! `zenedge.redb` (renamed into place last, after every file was checked). While it is taken
//! it is `DIR/.zenedge-<time>.part`; one of those found at start-up is what a crash or a kill
//! left, and is removed. Nothing else in the directory is touched.

use std::io;
use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::operator::backup::DATABASE;

/// The start of a backup directory's name; the rest is its start time.
const PREFIX: &str = "zenedge-";
/// The format of that time (UTC).
const TIME: &str = "%Y%m%dT%H%M%SZ";
/// The same without the zone letter, as it is read back.
const LOCAL_TIME: &str = "%Y%m%dT%H%M%S";

/// A complete backup in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its directory's name.
    pub name: String,
    /// When it was started.
    pub at: Timestamp,
}

/// The directory name of a backup started at `at`.
pub fn name_for(at: Timestamp) -> String {
    format!("{PREFIX}{}", at.to_zoned(TimeZone::UTC).strftime(TIME))
}

/// The name of the directory a backup is written to until it is complete.
pub fn part_name(name: &str) -> String {
    format!(".{name}.part")
}

/// The start time in a backup's directory name, if it is one.
pub fn parse_name(name: &str) -> Option<Timestamp> {
    let time = name.strip_prefix(PREFIX)?.strip_suffix('Z')?;
    let civil = jiff::fmt::strtime::parse(LOCAL_TIME, time).ok()?.to_datetime().ok()?;
    civil.to_zoned(TimeZone::UTC).ok().map(|t| t.timestamp())
}

/// The complete backups in `dir`, oldest first (none when `dir` does not exist yet).
pub fn list(dir: &Path) -> io::Result<Vec<Found>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(at) = parse_name(&name)
            && entry.path().join(DATABASE).is_file()
        {
            found.push(Found { name, at });
        }
    }
    found.sort_by_key(|f| f.at);
    Ok(found)
}

/// Which of `backups` (oldest first) are older than `keep` at `now`: never the newest.
pub fn expired(backups: &[Found], keep: Duration, now: Timestamp) -> &[Found] {
    let Some((_newest, older)) = backups.split_last() else { return &[] };
    let keep = jiff::SignedDuration::try_from(keep).unwrap_or(jiff::SignedDuration::MAX);
    let cutoff = now.checked_sub(keep).unwrap_or(Timestamp::MIN);
    let n = older.iter().take_while(|b| b.at < cutoff).count();
    &older[..n]
}

/// Removes the backups of `dir` older than `keep`, except the newest; returns their names.
pub fn prune(dir: &Path, keep: Duration, now: Timestamp) -> io::Result<Vec<String>> {
    let backups = list(dir)?;
    let mut removed = Vec::new();
    for old in expired(&backups, keep, now) {
        std::fs::remove_dir_all(dir.join(&old.name))?;
        removed.push(old.name.clone());
    }
    if !removed.is_empty() {
        crate::log::fsync_dir(dir)?;
    }
    Ok(removed)
}

/// Removes the half-written backups a crash left in `dir`; returns how many.
pub fn sweep_partial(dir: &Path) -> io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let partial =
            name.strip_prefix('.').and_then(|n| n.strip_suffix(".part")).is_some_and(|n| parse_name(n).is_some());
        if partial && entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
#[path = "prune_tests.rs"]
mod tests;
