//! `[backup]`: the daemon's scheduled online backups (off while `dir` is empty).
//!
//! `schedule` is `"daily HH:MM"` (local time of the box; `"HH:MM"` alone means the same) or
//! `"every DURATION"` (`"every 6h"`: that long after the start of the previous backup).
//! `keep` is how long a backup is kept (the newest complete one is never removed).

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::check::Checker;
use super::units;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawBackup {
    /// Empty: no scheduled backups.
    pub dir: String,
    pub schedule: String,
    pub keep: String,
}

impl Default for RawBackup {
    fn default() -> Self {
        Self { dir: String::new(), schedule: "daily 02:00".into(), keep: "30d".into() }
    }
}

/// Scheduled backups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupConfig {
    /// Where the dated backup directories go; `None`: scheduled backups are off.
    pub dir: Option<PathBuf>,
    pub schedule: Schedule,
    /// Backups older than this are removed (never the newest complete one).
    pub keep: Duration,
}

/// Off, as the default config has it.
impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            dir: None,
            schedule: Schedule::Daily { hour: 2, minute: 0 },
            keep: Duration::from_secs(30 * 86400),
        }
    }
}

/// When backups are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every day at this local time.
    Daily { hour: i8, minute: i8 },
    /// This long after the start of the previous backup.
    Every(Duration),
}

impl Schedule {
    /// The longest a backup may be due for: one taken less than this ago is recent enough
    /// that a start-up does not take another.
    pub fn period(&self) -> Duration {
        match *self {
            Schedule::Daily { .. } => Duration::from_secs(24 * 3600),
            Schedule::Every(d) => d,
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Daily { hour, minute } => write!(f, "daily {hour:02}:{minute:02}"),
            Schedule::Every(d) => write!(f, "every {}", humantime::format_duration(*d)),
        }
    }
}

/// `"daily HH:MM"`, `"HH:MM"` or `"every DURATION"`.
pub(super) fn schedule(text: &str) -> Result<Schedule, String> {
    let how = || format!("{text:?} is not a schedule; write \"daily 02:00\" (local time) or \"every 6h\"");
    let t = text.trim();
    if let Some(every) = t.strip_prefix("every ") {
        return units::positive_duration(every).map(Schedule::Every).map_err(|e| format!("{}: {e}", how()));
    }
    let clock = t.strip_prefix("daily ").unwrap_or(t).trim();
    let (hour, minute) = clock.split_once(':').ok_or_else(how)?;
    let two_digits = |s: &str, max: i8| {
        (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<i8>().ok())
            .flatten()
            .filter(|v| *v <= max)
    };
    match (two_digits(hour, 23), two_digits(minute, 59)) {
        (Some(hour), Some(minute)) => Ok(Schedule::Daily { hour, minute }),
        _ => Err(how()),
    }
}

/// `[backup]` checked: the schedule, `keep`, and a directory outside the state directory.
pub(super) fn backup_config(c: &mut Checker, raw: &RawBackup, state_dir: &Path) -> BackupConfig {
    let dir = raw.dir.trim();
    let dir = if dir.is_empty() { None } else { c.check("backup.dir", outside(Path::new(dir), state_dir)) };
    BackupConfig {
        dir,
        schedule: c.check("backup.schedule", schedule(&raw.schedule)).unwrap_or(Schedule::Daily { hour: 2, minute: 0 }),
        keep: c.check("backup.keep", units::positive_duration(&raw.keep)).unwrap_or_default(),
    }
}

/// `dir`, unless it is the state directory or inside it (a backup there dies with the disk
/// it is meant to outlive, and fills the disk the reserve protects).
fn outside(dir: &Path, state_dir: &Path) -> Result<PathBuf, String> {
    let (d, s) = (lexical(dir), lexical(state_dir));
    if d.starts_with(&s) {
        return Err(format!(
            "{} is inside the state directory {}: put backups on another disk or at least outside it",
            dir.display(),
            state_dir.display()
        ));
    }
    Ok(dir.to_path_buf())
}

/// `path` absolute (against the working directory) with `.` and `..` resolved by name.
fn lexical(path: &Path) -> PathBuf {
    let absolute = std::env::current_dir().map(|cwd| cwd.join(path)).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// What is allowed but costly: a schedule much more often than hourly.
pub(super) fn warnings(backup: &BackupConfig) -> Vec<String> {
    match backup.schedule {
        Schedule::Every(d) if backup.dir.is_some() && d < Duration::from_secs(3600) => {
            vec![format!("backup.schedule: {} copies the database and every instance file that often", backup.schedule)]
        }
        _ => Vec::new(),
    }
}
