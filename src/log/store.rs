//! Opening the database: file creation with a durable directory entry, the schema version
//! and its migrations, and the site identity check.

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use redb::backends::FileBackend;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle};

use super::faults::{FaultInjector, GuardedBackend};
use crate::storage_hook::StorageOp;

use crate::config::Site;

/// `seq -> msgpack envelope`: the log itself.
pub(crate) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// `key -> value` facts about the file: `schema_version`, `tenant_id`, `hospital_id`, `edge_id`.
pub(crate) const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
/// `(tenant, hospital, MSH-3, MSH-4, MSH-10, sha256 of the message without its final segment
/// terminators) -> msgpack DedupeEntry`.
pub(crate) const HL7_DEDUPE: TableDefinition<DedupeKey, &[u8]> = TableDefinition::new("hl7_dedupe");

/// `(tenant, hospital, MSH-3, MSH-4, MSH-10, sha256)`.
pub(crate) type DedupeKey = (&'static str, &'static str, &'static str, &'static str, &'static str, [u8; 32]);

/// `(tenant, hospital, SOP Instance UID) -> msgpack InstanceRow`: the latest stored version of
/// each instance (duplicate detection, file lookup).
pub(crate) const DICOM_INSTANCES: TableDefinition<InstanceKey, &[u8]> = TableDefinition::new("dicom_instances");
pub(crate) type InstanceKey = (&'static str, &'static str, &'static str);

/// `(tenant, hospital, study UID, series UID, SOP Instance UID) -> seq` of the instance's
/// latest `InstanceStored`: the study's contents in order.
pub(crate) const STUDY_INSTANCES: TableDefinition<StudyInstanceKey, u64> = TableDefinition::new("study_instances");
pub(crate) type StudyInstanceKey = (&'static str, &'static str, &'static str, &'static str, &'static str);

/// `(tenant, hospital, study UID) -> msgpack StudyRow`: what a `StudyCompleted` reports.
pub(crate) const STUDIES: TableDefinition<StudyKey, &[u8]> = TableDefinition::new("studies");
pub(crate) type StudyKey = (&'static str, &'static str, &'static str);

/// `(tenant, hospital, study UID) -> recorded_at (µs since the epoch) of its last instance`:
/// studies with instances not yet covered by a `StudyCompleted` (the completion timers are
/// rebuilt from it at start-up).
pub(crate) const STUDIES_PENDING: TableDefinition<StudyKey, i64> = TableDefinition::new("studies_pending");

/// `InstanceFileDeleted`: (tenant, hospital, file path) → seq of the deletion event. The
/// files retention removed (or is about to, after a crash between commit and unlink).
pub(crate) const DELETED_FILES: TableDefinition<InstanceKey, u64> = TableDefinition::new("deleted_files");

/// Calls `$m!(TABLE)` for every projection table, in a fixed order (the digest's).
macro_rules! projection_tables {
    ($m:ident) => {
        $m!(HL7_DEDUPE);
        $m!(DICOM_INSTANCES);
        $m!(STUDY_INSTANCES);
        $m!(STUDIES);
        $m!(STUDIES_PENDING);
        $m!(HL7_MESSAGES);
        $m!(ORDERS);
        $m!(ORDERS_BY_PLACER);
        $m!(ORDERS_BY_ACCESSION);
        $m!(ORDERS_BY_PATIENT);
        $m!(UNMATCHED_ORDERS);
        $m!(STUDIES_BY_ACCESSION);
        $m!(STUDIES_BY_PATIENT);
        $m!(UNMATCHED_STUDIES);
        $m!(MATCHES);
        $m!(MATCHES_BY_ORDER);
        $m!(CASES);
        $m!(CASES_BY_PATIENT);
        $m!(STUDY_CASES);
        $m!(PATIENT_ALIASES);
        $m!(DELETED_FILES);
    };
}
pub(crate) use projection_tables;

/// Key shapes of the matching projections.
pub(crate) type Key3 = (&'static str, &'static str, &'static str);
pub(crate) type Key4 = (&'static str, &'static str, &'static str, &'static str);

/// `(tenant, hospital, HL7 message id) -> seq` of its `HL7MessageReceived`.
pub(crate) const HL7_MESSAGES: TableDefinition<Key3, u64> = TableDefinition::new("hl7_messages");
/// `(tenant, hospital, order id) -> msgpack OrderRow`: every order an HL7 message brought.
pub(crate) const ORDERS: TableDefinition<Key3, &[u8]> = TableDefinition::new("orders");
/// `(tenant, hospital, sending application, placer order number) -> order id`: how a later
/// XO/CA finds its order.
pub(crate) const ORDERS_BY_PLACER: TableDefinition<Key4, &str> = TableDefinition::new("orders_by_placer");
/// `(tenant, hospital, accession, order id)`: orders by accession (search).
pub(crate) const ORDERS_BY_ACCESSION: TableDefinition<Key4, ()> = TableDefinition::new("orders_by_accession");
/// `(tenant, hospital, patient id, order id)`: orders by any of the patient's ids.
pub(crate) const ORDERS_BY_PATIENT: TableDefinition<Key4, ()> = TableDefinition::new("orders_by_patient");
/// `(tenant, hospital, accession, order id) -> received at (µs)`: orders waiting for a study.
pub(crate) const UNMATCHED_ORDERS: TableDefinition<Key4, i64> = TableDefinition::new("unmatched_orders");
/// `(tenant, hospital, accession, study UID)`: completed studies by accession (search).
pub(crate) const STUDIES_BY_ACCESSION: TableDefinition<Key4, ()> = TableDefinition::new("studies_by_accession");
/// `(tenant, hospital, patient id, study UID)`: completed studies by any of the patient's ids.
pub(crate) const STUDIES_BY_PATIENT: TableDefinition<Key4, ()> = TableDefinition::new("studies_by_patient");
/// `(tenant, hospital, accession, study UID) -> completed at (µs)`: completed studies waiting
/// for an order.
pub(crate) const UNMATCHED_STUDIES: TableDefinition<Key4, i64> = TableDefinition::new("unmatched_studies");
/// `(tenant, hospital, study UID, order id) -> seq of StudyMatched`: every pair, once, until a
/// `StudyUnmatched` undoes it.
pub(crate) const MATCHES: TableDefinition<Key4, u64> = TableDefinition::new("matches");
/// `(tenant, hospital, order id, study UID) -> seq of StudyMatched`: the same, by order.
pub(crate) const MATCHES_BY_ORDER: TableDefinition<Key4, u64> = TableDefinition::new("matches_by_order");
/// `(tenant, hospital, case id) -> msgpack CaseRow`.
pub(crate) const CASES: TableDefinition<Key3, &[u8]> = TableDefinition::new("cases");
/// `(tenant, hospital, patient id, case id) -> created at (µs)`: cases by any patient id.
pub(crate) const CASES_BY_PATIENT: TableDefinition<Key4, i64> = TableDefinition::new("cases_by_patient");
/// `(tenant, hospital, study UID) -> case id`.
pub(crate) const STUDY_CASES: TableDefinition<Key3, &str> = TableDefinition::new("study_cases");
/// `(tenant, hospital, prior patient id) -> surviving patient id` (ADT^A40).
pub(crate) const PATIENT_ALIASES: TableDefinition<Key3, &str> = TableDefinition::new("patient_aliases");

/// `projection table name -> seq`: the last event each projection has applied. The writer
/// sets every checkpoint to the batch's last seq in the batch's transaction; rebuild sets
/// them after each chunk. A checkpoint behind the log's head (a projection added by an
/// upgrade, a rebuild that was interrupted) makes the daemon rebuild at start-up.
pub(crate) const CHECKPOINTS: TableDefinition<&str, u64> = TableDefinition::new("projection_checkpoints");

/// The on-disk layout this binary writes. Bump it with every change to tables or key
/// encodings and add the step to [`MIGRATIONS`].
pub const SCHEMA_VERSION: u64 = 4;

/// One migration step: turns a file at `from` into one at `from + 1`, inside the
/// transaction that also records the new version (so a crash leaves one or the other).
pub(crate) struct Migration {
    pub from: u64,
    pub apply: fn(&redb::WriteTransaction) -> Result<(), redb::Error>,
}

/// Migrations in order.
///
/// * 1 → 2: the matching and patient-case projections and their checkpoints. The tables are
///   created empty by [`prepare`]; their checkpoints (absent, so 0) are behind the log, so
///   the daemon fills them by rebuilding at start-up.
/// * 2 → 3: `studies` rows list their series. Projections changed shape: the checkpoints
///   are dropped, so the daemon rebuilds every projection at start-up.
/// * 3 → 4: `hl7_dedupe` keys hash the message without its final segment terminators, and
///   the matching projections follow accession changes, keep a study's first waiting time and
///   find cases by their orders' patient ids: rebuilt at start-up, as for 2 → 3.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration { from: 1, apply: |_| Ok(()) },
    Migration { from: 2, apply: rebuild_projections },
    Migration { from: 3, apply: rebuild_projections },
];

/// A migration for projection changes: every checkpoint goes, so the log rebuilds them all
/// when it opens.
fn rebuild_projections(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
    txn.delete_table(CHECKPOINTS)?;
    Ok(())
}

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create state directory {path}: {source}")]
    StateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot open database {path}: {source}")]
    Database { path: PathBuf, source: Box<redb::Error> },
    #[error(
        "{path} is in use by another zenedge process (the daemon, or a rebuild, verify or restore): stop the \
         daemon first (systemctl stop zenedge), or point store.state_dir elsewhere"
    )]
    InUse { path: PathBuf },
    #[error(
        "{path} was written by a newer zenedge (schema {found}; this binary knows up to {known}). \
         Install the newer zenedge again, or restore a backup made by this version."
    )]
    NewerSchema { path: PathBuf, found: u64, known: u64 },
    #[error("{path} has no migration from schema {from}; it cannot be upgraded by this binary")]
    NoMigration { path: PathBuf, from: u64 },
    #[error(
        "{path} belongs to {key} {found:?} but the config says {expected:?}: refusing to mix two \
         sites' data (point store.state_dir elsewhere, or correct [site])"
    )]
    WrongSite { path: PathBuf, key: &'static str, found: String, expected: String },
}

/// Opens (creating if needed) the database at `path` for `site`, migrating older layouts.
///
/// `faults` lets tests make the file's fsyncs fail.
pub(crate) fn open(
    path: &Path,
    site: &Site,
    cache_size: usize,
    faults: Option<FaultInjector>,
) -> Result<Database, OpenError> {
    let db_err = |e: redb::Error| OpenError::Database { path: path.to_owned(), source: Box::new(e) };
    let created = create_database_durably(path, faults.as_ref())
        .map_err(|source| OpenError::StateDir { path: path.parent().unwrap_or(Path::new(".")).to_owned(), source })?;
    let file = fs::OpenOptions::new().read(true).write(true).open(path).map_err(|e| db_err(e.into()))?;
    let inner = FileBackend::new(file).map_err(|e| db_err(e.into()))?;
    let db = redb::Builder::new()
        .set_cache_size(cache_size)
        .create_with_backend(GuardedBackend::new(inner, faults))
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse { path: path.to_owned() },
            e => db_err(e.into()),
        })?;
    prepare(&db, path, site, created, MIGRATIONS, SCHEMA_VERSION)?;
    Ok(db)
}

/// Makes sure a complete, empty redb database is at `path` (and its directory exists), every
/// name durable; `true` when it was created now.
///
/// redb initialises a new file in several writes with fsyncs between, the magic number last:
/// a power loss in the middle leaves a file redb refuses to open ever after ("not a redb
/// database"), and the daemon could not start without an operator. So the database is made
/// under a side name (`<name>.new`, removed and made again if a crash left one), fsync'ed,
/// renamed into place and its directory fsync'ed: `path` is either absent or whole. The
/// storage hook sees the creation, and [`StorageOp::DbCreated`] once the name is durable.
pub(crate) fn create_database_durably(path: &Path, faults: Option<&FaultInjector>) -> std::io::Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if path.exists() {
        return Ok(false);
    }
    let mut side = path.as_os_str().to_owned();
    side.push(".new");
    let side = PathBuf::from(side);
    match fs::remove_file(&side) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    create_durably(&side)?;
    {
        let file = fs::OpenOptions::new().read(true).write(true).open(&side)?;
        let backend = GuardedBackend::new(FileBackend::new(file).map_err(std::io::Error::other)?, faults.cloned());
        redb::Builder::new().create_with_backend(backend).map_err(std::io::Error::other)?;
    }
    File::open(&side)?.sync_all()?;
    fs::rename(&side, path)?;
    fsync_dir(dir)?;
    if let Some(hook) = faults.and_then(FaultInjector::hook) {
        hook.before(StorageOp::DbCreated)?;
    }
    Ok(true)
}

/// Creates the empty file `path` (and its directory) unless it exists, with the file and
/// every name created for it fsync'ed; `true` when it was created.
pub(crate) fn create_durably(path: &Path) -> std::io::Result<bool> {
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
pub(crate) fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Records or checks the schema version and site identity in one transaction, committed
/// only when it changes something: a daemon restarted on a full disk (after a commit that hit
/// `ENOSPC`) must come up and refuse data, not fail to start because its opening wrote a row
/// that was already there.
pub(crate) fn prepare(
    db: &Database,
    path: &Path,
    site: &Site,
    created: bool,
    migrations: &[Migration],
    target: u64,
) -> Result<(), OpenError> {
    let db_err = |e: redb::Error| OpenError::Database { path: path.to_owned(), source: Box::new(e) };
    let txn = db.begin_write().map_err(|e| db_err(e.into()))?;
    let existing: HashSet<String> =
        txn.list_tables().map_err(|e| db_err(e.into()))?.map(|t| t.name().to_owned()).collect();
    let mut changed = false;
    {
        let mut meta = txn.open_table(META).map_err(|e| db_err(e.into()))?;
        changed |= !existing.contains(META.name());
        let found = meta.get("schema_version").map_err(|e| db_err(e.into()))?.map(|v| v.value().to_owned());
        let mut version = match &found {
            None if created || is_empty(&txn).map_err(db_err)? => target,
            None => 0,
            Some(v) => v.parse::<u64>().unwrap_or(u64::MAX),
        };
        if version > target {
            return Err(OpenError::NewerSchema { path: path.to_owned(), found: version, known: target });
        }
        while version < target {
            let step = migrations
                .iter()
                .find(|m| m.from == version)
                .ok_or(OpenError::NoMigration { path: path.to_owned(), from: version })?;
            (step.apply)(&txn).map_err(db_err)?;
            version += 1;
        }
        if found.as_deref() != Some(version.to_string().as_str()) {
            meta.insert("schema_version", version.to_string().as_str()).map_err(|e| db_err(e.into()))?;
            changed = true;
        }
        for (key, expected) in
            [("tenant_id", &site.tenant_id), ("hospital_id", &site.hospital_id), ("edge_id", &site.edge_id)]
        {
            let found = meta.get(key).map_err(|e| db_err(e.into()))?.map(|v| v.value().to_owned());
            match found {
                Some(found) if &found != expected => {
                    return Err(OpenError::WrongSite { path: path.to_owned(), key, found, expected: expected.clone() });
                }
                Some(_) => {}
                None => {
                    meta.insert(key, expected.as_str()).map_err(|e| db_err(e.into()))?;
                    changed = true;
                }
            }
        }
        macro_rules! create {
            ($def:ident) => {
                changed |= !existing.contains($def.name());
                txn.open_table($def).map_err(|e| db_err(e.into()))?;
            };
        }
        create!(EVENTS);
        projection_tables!(create);
        create!(CHECKPOINTS);
    }
    if changed { txn.commit().map_err(|e| db_err(e.into())) } else { txn.abort().map_err(|e| db_err(e.into())) }
}

/// A file with no events table has never held data (e.g. a crash right after creation).
fn is_empty(txn: &redb::WriteTransaction) -> Result<bool, redb::Error> {
    let events = txn.open_table(EVENTS)?;
    Ok(events.len()? == 0)
}

/// Last sequence number in the log (0 when empty).
pub(crate) fn last_seq(db: &Database) -> Result<u64, redb::Error> {
    let txn = db.begin_read()?;
    let table = txn.open_table(EVENTS)?;
    Ok(table.last()?.map(|(k, _)| k.value()).unwrap_or(0))
}
