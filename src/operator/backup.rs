//! `zenedge backup --to DIR`: an online, consistent copy of the daemon's state.
//!
//! The daemon makes the copy (it holds the database's lock): `GET /api/v1/backup` with scope
//! `operator` answers a tar of a database snapshot and the instance files its events
//! name (see `src/api/backup.rs`). This side writes them under DIR, which must be new or
//! empty: every file to a `.part` name, fsync'ed, renamed; the directories fsync'ed at the
//! end. Then it checks the copy on its own: every `InstanceStored` of the copied log must
//! have its file, with the recorded size and data set SHA-256 (except a file an
//! `InstanceFileDeleted` names: retention removed it, so it is expected to be absent). The database is renamed to
//! `DIR/zenedge.redb` last, so a directory without it is not a finished backup.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::snapshot::{self, check_file, instance_files};
use crate::log::{EVENTS, is_relative_inside};

/// The database's name in a backup (as in the state directory).
pub const DATABASE: &str = "zenedge.redb";
/// Problems listed in full; more are counted.
const MAX_LISTED: usize = 20;

/// What a backup holds, and what is wrong with it.
#[derive(Debug, Clone, Default)]
pub struct BackupSummary {
    pub events: u64,
    pub last_seq: u64,
    /// Instance files written.
    pub files: u64,
    /// Bytes written, database included.
    pub bytes: u64,
    pub seconds: f64,
    /// Instance files missing or different from their events (at most [`MAX_LISTED`]).
    pub problems: Vec<String>,
    /// How many problems there were in all.
    pub problem_count: u64,
}

/// `zenedge backup`: exit 0 for a complete, checked copy; 1 otherwise; 78 for a bad config.
pub fn run_command(config: &Path, to: &Path) -> ExitCode {
    let config = match crate::cli::load_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let daemon = super::Daemon::of(&config);
    if let Err(code) = daemon.require_token("backup", "a backup") {
        return code;
    }
    match backup(daemon, to) {
        Ok(summary) => {
            println!(
                "backup in {}: {} events (last seq {}), {} instance files, {} in {:.1} s",
                to.display(),
                summary.events,
                summary.last_seq,
                summary.files,
                bytesize::ByteSize(summary.bytes),
                summary.seconds
            );
            if summary.problem_count == 0 {
                return ExitCode::SUCCESS;
            }
            for problem in &summary.problems {
                eprintln!("zenedge backup: {problem}");
            }
            eprintln!(
                "zenedge backup: {} instance files are missing or differ from their events; the copy is incomplete",
                summary.problem_count
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("zenedge backup: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Takes a backup from the daemon at `addr` into `to` (new or empty).
/// `addr` carries the operator's token (`(address, token)`, or [`super::Daemon::of`]).
pub fn backup(addr: impl Into<super::Daemon>, to: &Path) -> Result<BackupSummary, String> {
    let started = Instant::now();
    prepare_target(to)?;
    let daemon: super::Daemon = addr.into();
    let url = daemon.url("/api/v1/backup");
    let response = daemon.authorized(daemon.agent(None).get(&url)).call().map_err(|e| daemon.unreachable(&e))?;
    let status = response.status().as_u16();
    let announced: Option<u64> =
        response.headers().get("x-zenedge-last-seq").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let mut body = response.into_body();
    if status != 200 {
        let text = body.with_config().limit(1 << 20).read_to_string().unwrap_or_default();
        return Err(super::error_text(&daemon, status, &text));
    }
    let (files, bytes) = extract(body.into_reader(), to).map_err(|e| format!("the backup stream broke off: {e}"))?;
    let mut summary = check(to, daemon.master_key.as_deref())?;
    if announced.is_some_and(|seq| seq != summary.last_seq) {
        return Err(format!("the copy ends at seq {} but the daemon announced {announced:?}", summary.last_seq));
    }
    let partial = to.join(format!("{DATABASE}.part"));
    fs::rename(&partial, to.join(DATABASE)).and_then(|()| super::fsync_dir(to)).map_err(|e| e.to_string())?;
    summary.files = files;
    summary.bytes = bytes;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Creates `to` if needed; refuses one that holds anything.
fn prepare_target(to: &Path) -> Result<(), String> {
    fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let mut entries = fs::read_dir(to).map_err(|e| format!("cannot read {}: {e}", to.display()))?;
    if entries.next().is_some() {
        return Err(format!("{} is not empty: back up into a new directory", to.display()));
    }
    Ok(())
}

/// Writes the tar's files under `to` (the database as `zenedge.redb.part`); returns the
/// instance files and bytes written.
fn extract(stream: impl Read, to: &Path) -> io::Result<(u64, u64)> {
    let mut archive = tar::Archive::new(stream);
    let mut dirs = BTreeSet::from([to.to_path_buf()]);
    let (mut files, mut bytes) = (0, 0);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let expected = name == DATABASE || name.starts_with("instances/");
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_gnu_sparse()) || !expected || !is_relative_inside(&name) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("unexpected entry {name:?}")));
        }
        let target = if name == DATABASE { to.join(format!("{DATABASE}.part")) } else { to.join(&name) };
        let parent = target.parent().expect("below `to`").to_path_buf();
        if !parent.is_dir() {
            fs::create_dir_all(&parent)?;
            dirs.extend(parent.ancestors().take_while(|d| d.starts_with(to)).map(PathBuf::from));
        }
        bytes += write_durably(&mut entry, &target)?;
        files += u64::from(name != DATABASE);
        dirs.insert(parent);
    }
    for dir in &dirs {
        super::fsync_dir(dir)?;
    }
    Ok((files, bytes))
}

/// Copies `from` into `target` through a `.part` name, fsync'ed before the rename (the
/// directory is fsync'ed by the caller).
pub fn write_durably(from: &mut impl Read, target: &Path) -> io::Result<u64> {
    let mut temp = target.as_os_str().to_owned();
    temp.push(".part");
    let mut file = File::create(&temp)?;
    let n = io::copy(from, &mut file)?;
    file.sync_all()?;
    fs::rename(&temp, target)?;
    Ok(n)
}

/// Checks the copy in `to`: its log's head, and each instance file against its event (its
/// sealed values read with the master key `master_key`: the events of instances are sealed).
fn check(to: &Path, master_key: Option<&Path>) -> Result<BackupSummary, String> {
    let path = to.join(format!("{DATABASE}.part"));
    let db = std::sync::Arc::new(
        redb::Database::open(&path).map_err(|e| format!("the copied database is unreadable: {e}"))?,
    );
    if let Some(file) = master_key {
        let file = crate::log::MasterKeyFile { path: file.to_owned(), create: false };
        crate::log::open_keys(&db, &path, &file).map_err(|e| format!("the copy cannot be checked: {e}"))?;
    }
    let mut summary = check_instances(&*db, to).map_err(|e| format!("the copied log is unreadable: {e}"))?;
    let (events, last_seq) = head(&*db).map_err(|e| format!("the copied log is unreadable: {e}"))?;
    (summary.events, summary.last_seq) = (events, last_seq);
    Ok(summary)
}

/// How many events the log holds and its last seq.
pub fn head(db: &impl ReadableDatabase) -> Result<(u64, u64), redb::Error> {
    let txn = db.begin_read()?;
    let events = txn.open_table(EVENTS)?;
    Ok((events.len()?, events.last()?.map(|(k, _)| k.value()).unwrap_or(0)))
}

/// Each instance file named by the log in `db`, checked under `state_dir`.
pub fn check_instances(db: &impl ReadableDatabase, state_dir: &Path) -> Result<BackupSummary, snapshot::SnapshotError> {
    let mut summary = BackupSummary::default();
    let mut after = 0;
    loop {
        let (page, next) = instance_files(db, after, 4096)?;
        for file in page {
            if let Some(problem) = check_file(state_dir, &file) {
                summary.problem_count += 1;
                if summary.problems.len() < MAX_LISTED {
                    summary.problems.push(problem);
                }
            }
        }
        match next {
            Some(n) => after = n,
            None => return Ok(summary),
        }
    }
}
