//! Opening the database: file creation with a durable directory entry, the schema version
//! and its migrations, the tables the schema declares, and the site identity check.

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use redb::backends::FileBackend;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle};

use super::faults::{FaultInjector, GuardedBackend};
use super::files::{create_durably, fsync_dir};
use super::schema::{Migration, Schema};
use crate::config::Site;
use crate::storage_hook::StorageOp;

/// `seq -> msgpack envelope`: the log itself.
pub const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// `key -> value` facts about the file: `schema_version`, `tenant_id`, `hospital_id`, `edge_id`
/// (and rows the layers above keep there, such as the sync cursor).
pub const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
/// `id -> dictionary bytes`: every dictionary a value of this file may name.
pub const VALUE_DICTIONARIES: TableDefinition<u32, &[u8]> = TableDefinition::new("value_dictionaries");
/// The `meta` key (in [`META`]) naming the dictionary new values are written with.
pub const CURRENT_DICTIONARY: &str = "value_dictionary";
/// The `meta` key of the database's random salt of patient key ids (hex, [`super::keys`]).
pub const META_KEY_SALT: &str = "data_key_salt";
/// The `meta` key of the fingerprint of the master key the data keys are wrapped under.
pub const META_MASTER_KEY: &str = "master_key_fingerprint";

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
    #[error(
        "{path}: compression dictionary {id} is damaged or missing, so the events written with it \
         cannot be read. Stop here: restore the latest backup (zenedge restore --from DIR --config \
         FILE --force) and keep this file for analysis"
    )]
    CorruptDictionary { path: PathBuf, id: u32 },
    /// The master key file cannot be used (a configuration problem).
    #[error(transparent)]
    MasterKey(#[from] super::master_key::MasterKeyError),
}

impl OpenError {
    /// The configuration (or a file it names) is at fault, not the database.
    pub fn is_config(&self) -> bool {
        matches!(self, OpenError::MasterKey(_))
    }
}

/// Opens (creating if needed) the database at `path` for `site`, migrating older layouts to
/// `schema`.
///
/// `faults` lets tests make the file's fsyncs fail.
pub fn open(
    path: &Path,
    site: &Site,
    cache_size: usize,
    schema: &Schema,
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
    prepare(&db, path, site, created, schema)?;
    dictionaries(&db, path)?;
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
pub fn create_database_durably(path: &Path, faults: Option<&FaultInjector>) -> std::io::Result<bool> {
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

/// Records or checks the schema version and site identity in one transaction, committed
/// only when it changes something: a daemon restarted on a full disk (after a commit that hit
/// `ENOSPC`) must come up and refuse data, not fail to start because its opening wrote a row
/// that was already there.
pub(crate) fn prepare(
    db: &Database,
    path: &Path,
    site: &Site,
    created: bool,
    schema: &Schema,
) -> Result<(), OpenError> {
    let (migrations, target): (&[Migration], u64) = (schema.migrations, schema.version);
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
        changed |= !existing.contains(EVENTS.name());
        txn.open_table(EVENTS).map_err(|e| db_err(e.into()))?;
        changed |= !existing.contains(VALUE_DICTIONARIES.name());
        txn.open_table(VALUE_DICTIONARIES).map_err(|e| db_err(e.into()))?;
        for table in schema.tables.iter().filter(|t| t.at_open) {
            changed |= !existing.contains(table.name);
            table.create(&txn).map_err(|e| db_err(e.into()))?;
        }
    }
    if changed { txn.commit().map_err(|e| db_err(e.into())) } else { txn.abort().map_err(|e| db_err(e.into())) }
}

/// Registers the file's value dictionaries ([`load_dictionaries`]); the one new values
/// use. A damaged dictionary refuses the file: the events that need it could not be read.
pub(crate) fn dictionaries(db: &Database, path: &Path) -> Result<Option<&'static super::value::Dictionary>, OpenError> {
    match load_dictionaries(db) {
        Ok(Ok(current)) => Ok(current),
        Ok(Err(id)) => Err(OpenError::CorruptDictionary { path: path.to_owned(), id }),
        Err(e) => Err(OpenError::Database { path: path.to_owned(), source: Box::new(e) }),
    }
}

/// Registers every dictionary of `db`; returns the one new values use. A row whose bytes do
/// not hash to its id, or a current id with no row, is `Err` with the id.
pub(crate) fn load_dictionaries(
    db: &redb::Database,
) -> Result<Result<Option<&'static super::value::Dictionary>, u32>, redb::Error> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(VALUE_DICTIONARIES) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Ok(None)),
        Err(e) => return Err(e.into()),
    };
    for row in table.iter()? {
        let (id, bytes) = row?;
        if super::value::id_of(bytes.value()) != id.value() {
            return Ok(Err(id.value()));
        }
        super::value::register(bytes.value());
    }
    let meta = txn.open_table(META)?;
    let Some(current) = meta.get(CURRENT_DICTIONARY)? else { return Ok(Ok(None)) };
    let id = current.value().parse::<u32>().unwrap_or(0);
    Ok(super::value::lookup(id).filter(|_| table.get(id).ok().flatten().is_some()).map(Some).ok_or(id))
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

/// The master key fingerprint and the key-id salt `db` records (each `None` until the first
/// open with a master key), without writing.
pub(crate) fn key_record(db: &Database) -> Result<(Option<String>, Option<[u8; 16]>), redb::Error> {
    let txn = db.begin_read()?;
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok((None, None)),
        Err(e) => return Err(e.into()),
    };
    let fingerprint = meta.get(META_MASTER_KEY)?.map(|v| v.value().to_owned());
    let salt = meta.get(META_KEY_SALT)?.and_then(|v| super::keys::parse_salt(v.value()));
    Ok((fingerprint, salt))
}

/// Records `fingerprint` and a new key-id salt, and creates `data_keys`; returns the salt.
pub(crate) fn record_key(db: &Database, fingerprint: &str) -> Result<[u8; 16], redb::Error> {
    let salt = super::keys::new_salt()?;
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(META_MASTER_KEY, fingerprint)?;
        meta.insert(META_KEY_SALT, super::master_key::hex(&salt).as_str())?;
        txn.open_table(super::keys::DATA_KEYS)?;
    }
    txn.commit()?;
    Ok(salt)
}
