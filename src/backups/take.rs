//! Taking one backup into the backup directory (blocking I/O, on the blocking pool).
//!
//! [`start`] copies the database as of one commit ([`snapshot`]) into
//! `DIR/.zenedge-<time>.part/zenedge.redb.part`; the caller records the audit record then;
//! [`finish`] copies every instance file the copy's events name (each to a `.part` name,
//! fsync'ed, renamed; the directories fsync'ed), checks each against its event as `zenedge
//! backup` does ([`check_instances`]: size and data set SHA-256; files retention deleted are
//! expected absent), renames the database into place and the directory to its final name.
//! Anything short of that removes the `.part` directory: a backup either is complete and
//! checked under its final name, or is not there.
//!
//! Room: before each copy, the free space of the backup directory's file system must hold it;
//! when that is the state directory's file system too, with the disk reserve left over (a
//! backup must not make the edge refuse data).

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::prune::{name_for, part_name};
use crate::log::{LogReader, fsync_dir, is_relative_inside};
use crate::operator::backup::{DATABASE, check_instances, head, write_durably};
use crate::operator::snapshot::{self, SnapshotSummary, instance_files};

/// Events read per page while listing the instance files.
const PAGE: usize = 4096;

/// A backup whose database is copied, not yet its files.
#[derive(Debug)]
pub struct Started {
    /// The final directory's name.
    pub name: String,
    /// What the database copy holds.
    pub summary: SnapshotSummary,
    /// Where it is written until complete.
    part: PathBuf,
    started: Instant,
}

/// A complete, checked backup.
#[derive(Debug, Clone)]
pub struct Taken {
    pub name: String,
    pub last_seq: u64,
    pub events: u64,
    /// Instance files copied.
    pub files: u64,
    /// Bytes copied, database included.
    pub bytes: u64,
    pub seconds: f64,
}

/// Where the state lives, for the room check.
#[derive(Debug, Clone)]
pub struct Room {
    pub state_dir: PathBuf,
    /// The disk reserve of the state directory's file system, in bytes.
    pub reserve: u64,
}

/// Copies the database of `reader` into a new `.part` directory in `dir` for a backup started
/// at `at`.
pub fn start(reader: &LogReader, dir: &Path, at: Timestamp, room: &Room) -> Result<Started, String> {
    let started = Instant::now();
    let name = name_for(at);
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if dir.join(&name).exists() {
        return Err(format!("{} exists already", dir.join(&name).display()));
    }
    let part = dir.join(part_name(&name));
    if part.exists() {
        fs::remove_dir_all(&part).map_err(|e| format!("cannot remove {}: {e}", part.display()))?;
    }
    fs::create_dir(&part).map_err(|e| format!("cannot create {}: {e}", part.display()))?;
    let database = room.state_dir.join(DATABASE);
    let size = fs::metadata(&database).map(|m| m.len()).unwrap_or(0);
    let copied = check_room(dir, room, size)
        .and_then(|()| snapshot::snapshot(reader, &part.join(format!("{DATABASE}.part"))).map_err(|e| e.to_string()));
    match copied {
        Ok(summary) => Ok(Started { name, summary, part, started }),
        Err(e) => {
            let _ = fs::remove_dir_all(&part);
            Err(e)
        }
    }
}

/// Removes a started backup that will not be finished.
pub fn abandon(started: Started) {
    let _ = fs::remove_dir_all(&started.part);
}

/// Copies the instance files, checks them, and puts the backup in place under its name in
/// `dir`. Gives up (removing what it wrote) when `stopping` is cancelled.
pub fn finish(started: Started, dir: &Path, room: &Room, stopping: &CancellationToken) -> Result<Taken, String> {
    let part = started.part.clone();
    let result = copy_and_check(&started, dir, room, stopping);
    if result.is_err() {
        let _ = fs::remove_dir_all(&part);
    }
    result
}

fn copy_and_check(started: &Started, dir: &Path, room: &Room, stopping: &CancellationToken) -> Result<Taken, String> {
    let part = &started.part;
    let database = part.join(format!("{DATABASE}.part"));
    let db = redb::ReadOnlyDatabase::open(&database).map_err(|e| format!("the copied database is unreadable: {e}"))?;
    let mut total = 0;
    each_file(&db, |file| {
        total += file.size;
        Ok(())
    })?;
    check_room(dir, room, total)?;
    let mut bytes = fs::metadata(&database).map(|m| m.len()).unwrap_or(0);
    let mut files = 0;
    let mut dirs = std::collections::BTreeSet::from([part.clone()]);
    each_file(&db, |file| {
        if stopping.is_cancelled() {
            return Err("the daemon is stopping".to_owned());
        }
        if !is_relative_inside(&file.path) {
            return Err(format!("event {} names a path outside the state directory", file.seq));
        }
        let target = part.join(&file.path);
        let parent = target.parent().expect("below the backup").to_path_buf();
        fs::create_dir_all(&parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        let from = room.state_dir.join(&file.path);
        match File::open(&from) {
            // Left out: the check below names it (unless retention deleted it, as it may).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("cannot read {}: {e}", from.display())),
            Ok(mut source) => {
                bytes += write_durably(&mut source, &target)
                    .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
            }
        }
        files += 1;
        dirs.extend(parent.ancestors().take_while(|d| d.starts_with(part)).map(Path::to_path_buf));
        Ok(())
    })?;
    for d in &dirs {
        fsync_dir(d).map_err(|e| format!("cannot flush {}: {e}", d.display()))?;
    }
    let checked = check_instances(&db, part).map_err(|e| format!("the copied log is unreadable: {e}"))?;
    if checked.problem_count > 0 {
        return Err(format!(
            "{} instance files are missing or differ from their events: {}",
            checked.problem_count,
            checked.problems.join("; ")
        ));
    }
    let (events, last_seq) = head(&db).map_err(|e| format!("the copied log is unreadable: {e}"))?;
    drop(db);
    let complete = dir.join(&started.name);
    fs::rename(&database, part.join(DATABASE))
        .and_then(|()| fsync_dir(part))
        .and_then(|()| fs::rename(part, &complete))
        .and_then(|()| fsync_dir(dir))
        .map_err(|e| format!("cannot put the backup in place at {}: {e}", complete.display()))?;
    let seconds = started.started.elapsed().as_secs_f64();
    Ok(Taken { name: started.name.clone(), last_seq, events, files, bytes, seconds })
}

/// `f` of every instance file the log in `db` names, page by page, up to its first error.
fn each_file(
    db: &redb::ReadOnlyDatabase,
    mut f: impl FnMut(&snapshot::InstanceFile) -> Result<(), String>,
) -> Result<(), String> {
    let mut after = 0;
    loop {
        let (page, next) = instance_files(db, after, PAGE).map_err(|e| format!("the copied log is unreadable: {e}"))?;
        page.iter().try_for_each(&mut f)?;
        match next {
            Some(n) => after = n,
            None => return Ok(()),
        }
    }
}

/// Whether `need` more bytes fit in `dir`'s file system (with the disk reserve left when it
/// is the state directory's).
fn check_room(dir: &Path, room: &Room, need: u64) -> Result<(), String> {
    let stat = rustix::fs::statvfs(dir).map_err(|e| format!("cannot read the free space of {}: {e}", dir.display()))?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    let device = |p: &Path| fs::metadata(p).map(|m| m.dev()).ok();
    let shared = device(dir).is_some() && device(dir) == device(&room.state_dir);
    let keep = if shared { room.reserve } else { 0 };
    if free.saturating_sub(need) < keep || free < need {
        let after = if shared { " and keep the state directory's disk reserve" } else { "" };
        return Err(format!("{} has {free} bytes free: not enough for {need} bytes{after}", dir.display()));
    }
    Ok(())
}

#[cfg(test)]
#[path = "take_tests.rs"]
mod tests;
