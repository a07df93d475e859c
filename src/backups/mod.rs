//! Scheduled backups (`[backup]`, off while `backup.dir` is empty): the daemon takes the same
//! online, consistent backup as `zenedge backup` on a schedule, into a dated directory of
//! `backup.dir`, and keeps `backup.keep` of them.
//!
//! # Contract
//! * **What a backup is**: `DIR/zenedge-<start, UTC>` holding `zenedge.redb` (the database as
//!   of one commit, [`crate::operator::snapshot`]) and every instance file its events name,
//!   under their paths in the state directory: what `zenedge restore --from` takes. Written as
//!   `DIR/.zenedge-<start>.part`, each file checked against its event (size, data set SHA-256),
//!   and only then renamed ([`take`]): a directory under the final name is complete and
//!   checked. A `.part` directory a crash left is removed at the next start ([`prune`]).
//! * **When** ([`schedule::next_run`]): `daily HH:MM` in the box's time zone, or `every D`
//!   after the start of the previous attempt. At start-up, a newest backup older than the
//!   period (a day; D), or none, means one was missed while the daemon was down: it is taken
//!   at once. A failed attempt waits for the next scheduled time (or a restart).
//! * **Alongside the rest**: one backup, retention sweep or `GET /api/v1/backup` at a time (the
//!   shared permit); intake goes on meanwhile (the copy is one read transaction). A backup on
//!   the state directory's file system must leave the disk reserve free, else it fails.
//! * **Audit**: each backup is recorded (DICOM Instances Accessed, as the manual backup, by
//!   the requester `scheduled-backup`) once the database is copied and before any instance
//!   file is; a backup whose record cannot be written is abandoned.
//! * **Pruning**: after each successful backup, complete backups started more than
//!   `backup.keep` ago are removed, never the newest one; nothing else in the directory is
//!   touched.
//! * **Reporting** ([`BackupShared`]): the last success and the last failure (time, reason)
//!   and the next run, on `/readyz` (`checks.backup`; `degraded` while the last attempt
//!   failed) and `/api/v1/status`, and as `zenedge_backup_*` metrics. A failure is an ERROR
//!   log line; the daemon goes on.

pub mod prune;
pub mod schedule;
pub mod take;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::audit::kinds::{Requester, instances_accessed};
use crate::config::BackupConfig;
use crate::log::{DiskGuard, LogHandle, LogReader};
use crate::projections::Projections;
use crate::telemetry::Metrics;

/// The requester the audit records of scheduled backups name.
pub const REQUESTER: &str = "scheduled-backup";
/// The longest wait between two looks at the clock (a wall clock set forward or back moves the
/// next daily backup with it).
const LOOK_EVERY: Duration = Duration::from_secs(60);

/// The scheduled backups at a glance.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BackupReport {
    pub enabled: bool,
    pub dir: Option<String>,
    pub schedule: String,
    pub keep: String,
    /// A backup is being taken now.
    pub running: bool,
    pub next_at: Option<Timestamp>,
    pub last_success: Option<Success>,
    pub last_failure: Option<Failure>,
    /// The last attempt failed (no success since).
    pub failing: bool,
}

/// The newest complete backup. Its figures are unknown (`null`) for one found in the
/// directory at start-up.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Success {
    pub at: Timestamp,
    pub name: String,
    pub last_seq: Option<u64>,
    pub events: Option<u64>,
    pub files: Option<u64>,
    pub bytes: Option<u64>,
    pub seconds: Option<f64>,
}

/// The last failed attempt.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Failure {
    pub at: Timestamp,
    pub reason: String,
}

/// The live state of the scheduled backups, shared with the API.
#[derive(Debug)]
pub struct BackupShared {
    report: Mutex<BackupReport>,
}

impl BackupShared {
    pub fn new(config: &BackupConfig) -> BackupShared {
        let report = BackupReport {
            enabled: config.dir.is_some(),
            dir: config.dir.as_ref().map(|d| d.display().to_string()),
            schedule: config.schedule.to_string(),
            keep: humantime::format_duration(config.keep).to_string(),
            running: false,
            next_at: None,
            last_success: None,
            last_failure: None,
            failing: false,
        };
        BackupShared { report: Mutex::new(report) }
    }

    pub fn report(&self) -> BackupReport {
        self.report.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, change: impl FnOnce(&mut BackupReport)) {
        let mut report = self.report.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut report);
        report.failing = match (&report.last_failure, &report.last_success) {
            (Some(failure), Some(success)) => failure.at > success.at,
            (failure, _) => failure.is_some(),
        };
    }
}

/// What the scheduler needs of the daemon.
#[derive(Debug)]
pub struct Scheduler {
    pub config: BackupConfig,
    pub state_dir: PathBuf,
    pub edge_id: String,
    pub reader: LogReader,
    /// The audit records are written through the log writer.
    pub log: LogHandle<Projections>,
    pub disk: DiskGuard,
    pub metrics: Arc<Metrics>,
    pub shared: Arc<BackupShared>,
    /// One backup or retention sweep at a time.
    pub exclusive: Arc<Semaphore>,
}

impl Scheduler {
    /// Takes backups on schedule until `stopping`; does nothing without `backup.dir`.
    pub async fn run(self, stopping: CancellationToken) {
        let Some(dir) = self.config.dir.clone() else { return };
        self.metrics.backup_enabled.set(1);
        self.look_at_dir(&dir).await;
        let tz = jiff::tz::TimeZone::system();
        let mut last_attempt = None;
        loop {
            let now = Timestamp::now();
            let last_success = self.shared.report().last_success.map(|s| s.at);
            let next = schedule::next_run(self.config.schedule, last_success, last_attempt, now, &tz);
            self.shared.update(|r| r.next_at = Some(next));
            if next > now {
                let wait = Duration::try_from(next.duration_since(now)).unwrap_or_default().min(LOOK_EVERY);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = stopping.cancelled() => return,
                }
            }
            let permit = tokio::select! {
                permit = self.exclusive.clone().acquire_owned() => permit,
                _ = stopping.cancelled() => return,
            };
            let at = Timestamp::now();
            last_attempt = Some(at);
            self.shared.update(|r| r.running = true);
            let outcome = self.take(&dir, at, &stopping).await;
            drop(permit);
            match outcome {
                Ok(taken) => self.succeeded(&dir, at, taken).await,
                Err(_) if stopping.is_cancelled() => return,
                Err(reason) => self.failed(&dir, at, reason),
            }
        }
    }

    /// Removes what a crash left half-written; the newest complete backup is the last success.
    async fn look_at_dir(&self, dir: &Path) {
        let d = dir.to_path_buf();
        let (swept, found) = tokio::task::spawn_blocking(move || (prune::sweep_partial(&d), prune::list(&d)))
            .await
            .expect("looking at the backup directory does not panic");
        match swept {
            Ok(0) => {}
            Ok(n) => tracing::info!(dir = %dir.display(), n, "removed backups a crash left half-written"),
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot sweep half-written backups"),
        }
        match found {
            Ok(found) => {
                if let Some(newest) = found.last() {
                    self.metrics.backup_last_success.set(newest.at.as_second());
                    let success = Success {
                        at: newest.at,
                        name: newest.name.clone(),
                        last_seq: None,
                        events: None,
                        files: None,
                        bytes: None,
                        seconds: None,
                    };
                    self.shared.update(|r| r.last_success = Some(success));
                }
            }
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot list the backups"),
        }
    }

    /// One backup: database copy, audit record, files, check, rename.
    async fn take(&self, dir: &Path, at: Timestamp, stopping: &CancellationToken) -> Result<take::Taken, String> {
        let (reader, disk, d) = (self.reader.clone(), self.disk.clone(), dir.to_path_buf());
        let state_dir = self.state_dir.clone();
        let (started, room) = tokio::task::spawn_blocking(move || {
            let reserve = disk.space().map(|s| s.reserve).unwrap_or(0);
            let room = take::Room { state_dir, reserve };
            take::start(&reader, &d, at, &room).map(|started| (started, room))
        })
        .await
        .map_err(|e| format!("the backup task failed: {e}"))??;
        let details = vec![
            ("last_seq".to_owned(), started.summary.last_seq.to_string()),
            ("events".to_owned(), started.summary.events.to_string()),
        ];
        let record = instances_accessed(
            &self.edge_id,
            &Requester { client: Some(REQUESTER.into()), source: None },
            &dir.join(&started.name).display().to_string(),
            "scheduled backup: a copy of the database and of every instance file",
            details,
            at,
        );
        if let Err(e) = crate::audit::record(&self.log, vec![record]).await {
            tokio::task::spawn_blocking(move || take::abandon(started)).await.ok();
            return Err(format!("its audit record could not be written: {e}"));
        }
        let (d, stopping) = (dir.to_path_buf(), stopping.clone());
        tokio::task::spawn_blocking(move || take::finish(started, &d, &room, &stopping))
            .await
            .map_err(|e| format!("the backup task failed: {e}"))?
    }

    async fn succeeded(&self, dir: &Path, at: Timestamp, taken: take::Taken) {
        tracing::info!(
            dir = %dir.display(),
            name = %taken.name,
            last_seq = taken.last_seq,
            events = taken.events,
            files = taken.files,
            bytes = taken.bytes,
            seconds = taken.seconds,
            "scheduled backup complete and checked"
        );
        self.metrics.backup_last_success.set(at.as_second());
        self.metrics.backup_duration.set(taken.seconds);
        self.metrics.backup_size.set(i64::try_from(taken.bytes).unwrap_or(i64::MAX));
        let success = Success {
            at,
            name: taken.name,
            last_seq: Some(taken.last_seq),
            events: Some(taken.events),
            files: Some(taken.files),
            bytes: Some(taken.bytes),
            seconds: Some(taken.seconds),
        };
        self.shared.update(|r| {
            r.running = false;
            r.last_success = Some(success);
        });
        let (d, keep) = (dir.to_path_buf(), self.config.keep);
        let pruned = tokio::task::spawn_blocking(move || prune::prune(&d, keep, Timestamp::now()))
            .await
            .expect("pruning does not panic");
        match pruned {
            Ok(removed) => {
                for name in removed {
                    tracing::info!(dir = %dir.display(), name, "backup older than backup.keep removed");
                }
            }
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot remove old backups"),
        }
    }

    fn failed(&self, dir: &Path, at: Timestamp, reason: String) {
        tracing::error!(dir = %dir.display(), reason = %reason, "scheduled backup failed");
        self.metrics.backup_failures.inc();
        self.metrics.backup_last_failure.set(at.as_second());
        self.shared.update(|r| {
            r.running = false;
            r.last_failure = Some(Failure { at, reason });
        });
    }
}
