//! The storage engine: the durable, append-only log everything else is derived from.
//!
//! The engine stores envelopes and knows nothing of what they carry: the layer above gives it
//! the payload type, the tables it keeps beside the log and what to do with each appended event
//! ([`Applier`], [`Schema`]), and every write request ([`ApplyFn`]). It imports no projection,
//! decision, sync, API or listener code; `tests/it/layers.rs` checks that.
//!
//! # Contract
//!
//! * **File.** One redb database, `zenedge.redb` in the state directory. A new database is
//!   made under a side name, fsync'ed and renamed into place, and the state directory
//!   fsync'ed, so the name itself is durable and a power loss during the first start never
//!   leaves a file redb refuses ([`store`]).
//! * **Tables.** `events`: `u64 seq → msgpack envelope` (see [`envelope`]), stored compressed
//!   behind a header naming the format and dictionary ([`value`]; values written before
//!   schema 6 stay plain and are read in place), sequence numbers gapless from 1. `meta`:
//!   `schema_version` and the site identity (`tenant_id`, `hospital_id`, `edge_id`) the file
//!   belongs to, checked at every open, and rows the layers
//!   above keep there (the sync's cursor). Every other table is declared by the layer that owns
//!   it in the [`Schema`] the file is opened with (`crate::projections::schema`, `crate::sync::tables`):
//!   created when the file is opened or by its first write, and copied by backups
//!   ([`LogReader::tables`]). Keys are fixed types (integers, tuples of strings and byte
//!   arrays); values are opaque msgpack, so a change of redb's value encoding cannot touch them.
//! * **Envelopes.** The engine writes each envelope once, by field name, with the payload's own
//!   encoding in `data` ([`Payload`]); it reads raw envelopes and event ids, and the layer
//!   above decodes payloads ([`crate::events::Envelope`]).
//! * **Writes.** Only the writer thread ([`writer`]) writes. Callers send it typed requests (a
//!   function and its input, defined by the feature that owns it); each batch of requests is
//!   one write transaction in which every appended event is also handed to the applier, and
//!   the batch ends with the applier's `finish`, then one commit with
//!   `Durability::Immediate`: when `commit()` returns, the events, their sequence numbers and
//!   everything the requests and the applier wrote are on disk together or not at all.
//!   Callers are answered only after that, so an acknowledgement always follows a durable
//!   commit.
//! * **Opening.** [`Store::open`] opens the file (migrations, site, the schema's tables) and
//!   starts nothing; the layer above brings its tables level with the log then
//!   ([`crate::projections::catch_up`]), and only [`Store::start`] starts the writer.
//! * **Crash.** `kill -9` or power loss at any instant leaves the last committed batch
//!   (redb keeps two commit slots and checksums every page; an interrupted commit is
//!   discarded and repaired on open). Nothing acknowledged can be lost; something committed
//!   but not yet acknowledged may be re-sent by its sender and is then answered as a
//!   duplicate.
//! * **Failure.** A failed commit is never retried, because the page cache may lie after an
//!   fsync error: every pending request is refused, the writer stops, and the daemon exits
//!   non-zero to be restarted by systemd on a clean reopen. The same for every error of the
//!   commit (`EIO` from `pwrite` or `fdatasync`, `ENOSPC`, `EROFS`): redb does not take
//!   writes after a failed commit until it is reopened. Tests inject such faults through
//!   [`FaultInjector`].
//! * **Full disk.** Below the disk reserve ([`DiskGuard`]) a request that would add data is
//!   told so ([`Txn::reserve`]) and refuses (a re-sent duplicate is still answered): callers
//!   answer negatively instead of accepting data that could be lost. A disk that fills between
//!   the check and the commit fails the commit (above). Opening writes nothing unless the file
//!   needs it (a new file, a migration, a table the schema adds), so the restarted daemon
//!   comes up on the full disk and refuses until space returns.
//! * **Backups.** redb has no online backup; a copy is taken from one read transaction table
//!   by table (through the schema's list, [`TableSpec::copy`]) without stopping the writer
//!   (`crate::operator::snapshot`).
//! * **Versions.** `meta.schema_version` is the file layout, declared with its migrations in
//!   the [`Schema`]. A newer binary migrates an older file in one transaction; an older binary
//!   refuses a newer file with a clear message. Each event carries `event_version`; old
//!   payloads are upcast on read by the layer that decodes them.

pub mod dictionary;
pub mod envelope;
mod faults;
mod files;
pub mod keys;
pub mod master_key;
pub mod positions;
mod reader;
mod reserve;
mod schema;
#[cfg(test)]
mod sealing_tests;
pub(crate) mod store;
#[cfg(test)]
mod tests;
mod txn;
pub mod value;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;

pub use envelope::{Aggregate, DecodeError, NewEvent, Payload, StoredEnvelope, head_event_id};
pub use faults::FaultInjector;
pub use files::{create_durably, fsync_dir, is_relative_inside};
pub use keys::{DATA_KEYS, Keyring, Subject};
pub use master_key::{MasterKey, MasterKeyError};
pub use reader::{LogReader, ReadError, Storage, decode_row, plain_envelope};
pub use reserve::{DiskGuard, Space, human};
pub use schema::{COPY_CHUNK, Migration, Schema, TableSpec};
pub use store::{EVENTS, META, OpenError, VALUE_DICTIONARIES, create_database_durably};
pub use txn::{AppendError, Applier, ApplyFn, Clock, Meta, Txn, corrupt, encode_row, read_row};
pub use value::{CorruptValue, ValueFault};
pub use writer::{LogHandle, WriterFailure, WriterState};

use crate::config::{Config, DiskReserve, Site};
use crate::telemetry::Metrics;

/// What the log needs from the configuration.
#[derive(Clone)]
pub struct LogOptions {
    pub path: PathBuf,
    pub site: Site,
    pub disk_reserve: DiskReserve,
    pub queue_depth: usize,
    pub max_batch: usize,
    pub cache_size: usize,
    /// The time recorded on every event of a batch.
    pub clock: Clock,
    /// The master key file the data keys are wrapped under ([`keys`]); `None`: no keys (sealed
    /// values cannot be read, none are written).
    pub master_key: Option<MasterKeyFile>,
    /// Seal new values that carry patient data (needs `master_key`).
    pub seal: bool,
}

/// Where the master key is, and whether opening may create it.
#[derive(Debug, Clone)]
pub struct MasterKeyFile {
    pub path: PathBuf,
    /// Create the file when it is absent and the database holds no data key yet (`serve`);
    /// the tools only read it.
    pub create: bool,
}

impl std::fmt::Debug for LogOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogOptions")
            .field("path", &self.path)
            .field("site", &self.site)
            .field("disk_reserve", &self.disk_reserve)
            .field("queue_depth", &self.queue_depth)
            .field("max_batch", &self.max_batch)
            .field("cache_size", &self.cache_size)
            .field("master_key", &self.master_key)
            .field("seal", &self.seal)
            .finish_non_exhaustive()
    }
}

impl LogOptions {
    /// Options for a test's log in `dir`: site t/h/e, no disk reserve, a small cache, the
    /// real clock.
    #[cfg(test)]
    pub(crate) fn for_tests(dir: &std::path::Path) -> LogOptions {
        LogOptions {
            path: dir.join("zenedge.redb"),
            site: Site { tenant_id: "t".into(), hospital_id: "h".into(), edge_id: "e".into() },
            disk_reserve: DiskReserve::Bytes(0),
            queue_depth: 64,
            max_batch: 64,
            cache_size: 4 << 20,
            clock: Arc::new(jiff::Timestamp::now),
            master_key: None,
            seal: false,
        }
    }

    /// The daemon's options: `serve` creates the master key file on first start.
    pub fn serving(mut self) -> LogOptions {
        if let Some(file) = &mut self.master_key {
            file.create = true;
        }
        self
    }

    /// The same options with sealing on, under the master key file `path` (created if absent).
    pub fn sealed_with(self, path: PathBuf) -> LogOptions {
        LogOptions { master_key: Some(MasterKeyFile { path, create: true }), seal: true, ..self }
    }

    pub fn from_config(config: &Config) -> LogOptions {
        LogOptions {
            path: config.database_path(),
            site: config.site.clone(),
            disk_reserve: config.store.disk_reserve,
            queue_depth: config.store.queue_depth,
            max_batch: config.store.max_batch,
            cache_size: config.store.cache_size,
            clock: Arc::new(jiff::Timestamp::now),
            master_key: Some(MasterKeyFile { path: config.store.master_key_file.clone(), create: false }),
            seal: config.store.seal,
        }
    }
}

/// The database, opened and checked (schema version migrated, site identity, the schema's
/// tables there), with no writer yet: the layer above brings its tables level with the log
/// here ([`crate::projections::catch_up`]) before [`Store::start`] hands the writer its
/// applier.
#[derive(Debug)]
pub struct Store {
    db: Arc<redb::Database>,
    options: LogOptions,
    tables: Vec<TableSpec>,
    last_seq: u64,
    /// The dictionary new values are written with ([`dictionary`]).
    dictionary: Option<&'static value::Dictionary>,
    /// The file's data keys, when opened with a master key.
    keyring: Option<Arc<Keyring>>,
}

impl Store {
    /// Opens (creating if needed) the database of `options` with the layout `schema`.
    /// `faults` injects storage faults (tests).
    pub fn open(options: &LogOptions, schema: Schema, faults: Option<FaultInjector>) -> Result<Store, OpenError> {
        let db = store::open(&options.path, &options.site, options.cache_size, &schema, faults)?;
        let last_seq = store::last_seq(&db)
            .map_err(|e| OpenError::Database { path: options.path.clone(), source: Box::new(e) })?;
        let dictionary = store::dictionaries(&db, &options.path)?;
        let db = Arc::new(db);
        let keyring = open_keyring(&db, options)?;
        Ok(Store { db, options: options.clone(), tables: schema.tables, last_seq, dictionary, keyring })
    }

    /// The open database (for work before the writer starts, such as a catch-up).
    pub fn database(&self) -> &redb::Database {
        &self.db
    }

    pub fn site(&self) -> &Site {
        &self.options.site
    }

    pub fn path(&self) -> &std::path::Path {
        &self.options.path
    }

    /// The last sequence number in the log (0 when empty).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Starts the writer thread, which applies every event it appends with `applier`.
    pub fn start<A: Applier>(self, applier: A, metrics: Arc<Metrics>) -> Result<Log<A>, OpenError> {
        let Store { db, options, tables, last_seq, dictionary, keyring } = self;
        let keyring = keyring.filter(|_| options.seal);
        metrics.log_last_seq.set(last_seq as i64);
        let dir = options.path.parent().map(PathBuf::from).unwrap_or_else(|| ".".into());
        let guard = DiskGuard::new(dir, options.disk_reserve);
        let (handle, rx) = writer::channel(options.queue_depth, last_seq);
        let writer = writer::Writer {
            db: db.clone(),
            site: options.site.clone(),
            guard: guard.clone(),
            max_batch: options.max_batch,
            metrics,
            state: handle.state.clone(),
            next_seq: last_seq + 1,
            clock: options.clock.clone(),
            dictionary,
            keyring,
            applier,
        };
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| OpenError::Database { path: options.path.clone(), source: Box::new(e.into()) })?;
        Ok(Log { handle, reader: LogReader::new(db, options.site.clone(), tables), guard, thread })
    }
}

/// The keyring of `db` under the master key of `options` (creating the key file when allowed,
/// absent, and the database holds no data key yet); `None` without a master key.
pub fn open_keyring(db: &Arc<redb::Database>, options: &LogOptions) -> Result<Option<Arc<Keyring>>, OpenError> {
    match &options.master_key {
        Some(file) => open_keys(db, &options.path, file),
        None => Ok(None),
    }
}

/// The keyring of `db` (the file at `path`) under the master key `file` ([`open_keyring`]).
pub fn open_keys(
    db: &Arc<redb::Database>,
    path: &std::path::Path,
    file: &MasterKeyFile,
) -> Result<Option<Arc<Keyring>>, OpenError> {
    let db_err = |e: redb::Error| OpenError::Database { path: path.to_owned(), source: Box::new(e) };
    let (recorded, salt) = store::key_record(db).map_err(db_err)?;
    let master = if std::fs::symlink_metadata(&file.path).is_ok() {
        MasterKey::load(&file.path)?
    } else if recorded.is_some() {
        return Err(MasterKeyError::Missing { path: file.path.clone() }.into());
    } else if file.create {
        let master = MasterKey::generate();
        master.create(&file.path)?;
        tracing::warn!(
            path = %file.path.display(),
            "created a new master key for patient data at rest; in production it belongs off the data disk \
             (see store.master_key_file), and without it nothing sealed can be read"
        );
        master
    } else {
        return Ok(None);
    };
    let fingerprint = master.fingerprint();
    if let Some(expected) = recorded.as_ref().filter(|r| **r != fingerprint) {
        let (path, found, expected) = (file.path.clone(), fingerprint, expected.clone());
        return Err(MasterKeyError::WrongKey { path, found, expected }.into());
    }
    let salt = match (recorded, salt) {
        (Some(_), Some(salt)) => salt,
        _ => store::record_key(db, &fingerprint).map_err(db_err)?,
    };
    Ok(Some(keys::register(db, &master, salt)))
}

/// The open log: the writer thread, a handle to send it requests, and a reader.
pub struct Log<A: Applier> {
    handle: LogHandle<A>,
    reader: LogReader,
    guard: DiskGuard,
    thread: std::thread::JoinHandle<Result<(), WriterFailure>>,
}

impl<A: Applier> std::fmt::Debug for Log<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("reader", &self.reader).finish_non_exhaustive()
    }
}

impl<A: Applier> Log<A> {
    pub fn handle(&self) -> LogHandle<A> {
        self.handle.clone()
    }

    pub fn reader(&self) -> LogReader {
        self.reader.clone()
    }

    pub fn disk_guard(&self) -> DiskGuard {
        self.guard.clone()
    }

    /// Stops the writer after the requests it has already taken, refuses the rest, waits
    /// for the thread and closes the database. Returns the writer's failure, if it failed.
    pub async fn close(self) -> Result<(), WriterFailure> {
        self.handle.stop().await;
        let Log { handle, reader, thread, .. } = self;
        drop(handle);
        let joined = tokio::task::spawn_blocking(move || thread.join()).await;
        drop(reader);
        match joined {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(WriterFailure("the writer thread panicked".into())),
            Err(e) => Err(WriterFailure(format!("cannot join the writer thread: {e}"))),
        }
    }
}
