//! The hub's store on PostgreSQL: the same contract as the redb store ([`super::store`]),
//! for a hub whose operators run PostgreSQL (replicas, backups, their own tooling) and for
//! several hub processes behind one load balancer.
//!
//! # Tables (schema in `migrations/`, applied by [`migrate`])
//!
//! | table | key | holds |
//! | --- | --- | --- |
//! | `hub_streams` | `(edge_id, epoch)` | `stored_through`, events stored, and for an epoch above 0 its `parent`, `fork_at`, `fork_event_id` |
//! | `hub_events` | `(edge_id, epoch, seq)` | the envelope as sent (`bytea`), event id and type, tenant, hospital, `occurred_at`, `recorded_at`, aggregate, patient ids (GIN index), accession (index), and the feed's `(tx, feed_id)` |
//! | `hub_skipped` | `(edge_id, epoch, seq)` | sequence numbers parked as dead letters, until redelivered |
//! | `hub_audit` | `(edge_id, id)` | each edge's audit records as sent (`bytea`), `recorded_at` ([`audit`]) |
//! | `hub_schema_version` | `version` | one row per applied migration |
//!
//! An edge's epoch-0 row appears with its first stored batch: an edge without one is
//! unknown (`404` on its position).
//!
//! # What commits together
//!
//! One batch is one transaction (READ COMMITTED): `SELECT … FOR UPDATE` of its stream's row
//! (created first, for epoch 0 of a new edge, with `INSERT … ON CONFLICT DO NOTHING`), the
//! position check (`first == stored_through + 1`, else `409`, nothing written), the chain
//! check (the event held at `first - 1` in the epoch's history), a binary `COPY` of the
//! envelopes, the skipped numbers, the new `stored_through`, and `pg_notify`; the `200` is
//! sent only after `COMMIT` returned (with the server's default `synchronous_commit = on`,
//! the commit is durable then). Two hub processes receiving the same batch at once serialize
//! on the row lock: the second sees the first's `stored_through` and answers `409`. The
//! primary key `(edge_id, epoch, seq)` would refuse a second copy even if the lock were
//! bypassed. A hub killed during the COPY leaves an open transaction that PostgreSQL rolls
//! back when the connection drops: nothing of the batch is stored, the edge sends it again.
//! Redelivery and a fork are one transaction each, under the same lock.
//!
//! # Failures
//!
//! A database that cannot be reached, shuts down or restarts, or a pool with no free
//! connection within `connect_timeout`, is [`HubError::Unavailable`]: the routes answer `503`
//! and the edge backs off; pooled connections broken by a restart are replaced on their next
//! use. Other database errors are `500`, logged.

mod audit;
mod columns;
mod connect;
mod copy;
mod feed;
mod migrate;
mod read;
mod write;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use columns::{Columns, columns};
pub use connect::{PgSettings, PgTlsMode, check as check_settings, describe};
pub use feed::{Feed, FeedCursor, FeedItem};
pub use migrate::{Migrated, SCHEMA_VERSION};

use super::HubError;

/// The PostgreSQL store. Cheap to clone: the pool and the notification listener are shared.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: Pool,
    /// Counts the feed's notifications (and reconnections of the listener); long polls wait
    /// for it to move.
    notified: watch::Receiver<u64>,
    /// Stops the listener when the last clone of the store is dropped.
    _listener: Arc<ListenerGuard>,
    /// Where the database is (no credentials), for logs and `zenedge hub check`.
    target: String,
    /// Seconds each batch's COPY took (`zenedge_hub_copy_seconds`).
    copy_seconds: Histogram,
}

#[derive(Debug)]
struct ListenerGuard(CancellationToken);

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Edge ids, epochs and sequence numbers in one row of `hub_streams`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StreamRow {
    pub epoch: u64,
    pub parent: Option<u64>,
    pub fork_at: u64,
    pub fork_event_id: Option<uuid::Uuid>,
    pub stored_through: u64,
    pub events: u64,
}

/// A piece of an epoch's history: the seqs `after + 1 ..= through` of `epoch`'s rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Segment {
    pub epoch: u64,
    pub after: u64,
    pub through: u64,
}

impl PgStore {
    /// Connects, applies the migrations the database lacks (see [`migrate`]), and starts the
    /// feed's listener.
    pub async fn open(settings: &PgSettings) -> Result<PgStore, HubError> {
        let (store, migrated) = PgStore::connect(settings, true).await?;
        if let Some(m) = migrated
            && m.from != m.to
        {
            tracing::info!(database = %store.target, from = m.from, to = m.to, "the hub's database schema is up to date");
        }
        Ok(store)
    }

    /// Connects; with `migrate`, brings the schema up to date, else only checks that it is
    /// not newer than this binary.
    pub async fn connect(settings: &PgSettings, migrate: bool) -> Result<(PgStore, Option<Migrated>), HubError> {
        let resolved = connect::resolve(settings)?;
        let target = connect::describe(&resolved.config);
        let pool = connect::pool(&resolved, settings)?;
        let mut client = pool.get().await.map_err(|e| open_error(e, &resolved))?;
        let migrated = if migrate {
            Some(migrate::migrate(&mut client).await?)
        } else {
            migrate::check_not_newer(migrate::version(&client).await?)?;
            None
        };
        drop(client);
        let guard = CancellationToken::new();
        let (tx, notified) = watch::channel(0);
        tokio::spawn(feed::listen(resolved, tx, guard.clone()));
        tracing::info!(database = %target, pool_size = settings.pool_size, "hub store: PostgreSQL");
        let copy_seconds = Histogram::new(super::metrics::seconds_buckets());
        Ok((PgStore { pool, notified, _listener: Arc::new(ListenerGuard(guard)), target, copy_seconds }, migrated))
    }

    /// Applies the migrations and answers what was done (`zenedge hub migrate`).
    pub async fn migrate_only(settings: &PgSettings) -> Result<(String, Migrated), HubError> {
        let resolved = connect::resolve(settings)?;
        let pool = connect::pool(&resolved, settings)?;
        let mut client = pool.get().await.map_err(|e| open_error(e, &resolved))?;
        let migrated = migrate::migrate(&mut client).await?;
        Ok((connect::describe(&resolved.config), migrated))
    }

    /// The schema version the database holds (`zenedge hub check`).
    pub async fn schema_version(&self) -> Result<i32, HubError> {
        let client = self.client().await?;
        migrate::version(&client).await
    }

    /// Where the database is (no credentials).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The histogram of COPY times, for the hub's `/metrics`.
    pub fn copy_histogram(&self) -> Histogram {
        self.copy_seconds.clone()
    }

    /// Connections open, idle and waited for in the pool.
    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, HubError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// How many notifications the listener has seen: what [`PgStore::wait_for_events`]
    /// waits to move past.
    pub fn notifications(&self) -> u64 {
        *self.notified.borrow()
    }

    /// Waits until the listener saw a notification after `seen`, or `timeout`.
    pub async fn wait_for_events(&self, seen: u64, timeout: Duration) {
        let mut notified = self.notified.clone();
        let _ = tokio::time::timeout(timeout, notified.wait_for(|n| *n != seen)).await;
    }
}

/// A pool that cannot hand out a connection: the database is unreachable or every
/// connection is busy for `connect_timeout`.
fn pool_error(e: deadpool_postgres::PoolError) -> HubError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_error(e),
        other => HubError::Unavailable(format!("no database connection: {other}")),
    }
}

/// The first connection failed: a TLS refusal is the configuration's fault (see
/// [`connect::tls_refusal`]), anything else as [`pool_error`].
fn open_error(e: deadpool_postgres::PoolError, resolved: &connect::Resolved) -> HubError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => connect::tls_refusal(&e, resolved).unwrap_or_else(|| db_error(e)),
        other => pool_error(other),
    }
}

/// A database error: [`HubError::Unavailable`] when trying again later may succeed (the
/// connection is gone, the server is shutting down or starting, out of resources, a
/// serialization failure), else [`HubError::Postgres`].
pub(super) fn db_error(e: tokio_postgres::Error) -> HubError {
    let text = describe_error(&e);
    let retry = e.is_closed()
        || match e.code() {
            Some(code) => {
                let code = code.code();
                ["08", "57P", "53"].iter().any(|class| code.starts_with(class)) || code == "40001" || code == "40P01"
            }
            // No SQLSTATE: an I/O or protocol failure of the connection.
            None => e.as_db_error().is_none(),
        };
    if retry { HubError::Unavailable(text) } else { HubError::Postgres(text) }
}

/// An error's text: the server's message and SQLSTATE (never its detail, which may quote
/// values), or the client's own description with its causes (`error connecting to server:
/// Connection refused`).
pub(super) fn describe_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                let more = c.to_string();
                if !text.ends_with(&more) {
                    text = format!("{text}: {more}");
                }
                cause = c.source();
            }
            text
        }
    }
}

/// A sequence number or epoch as a `bigint`.
pub(super) fn sql(n: u64) -> Result<i64, HubError> {
    i64::try_from(n).map_err(|_| HubError::SeqRange(n))
}

/// A `bigint` column that holds a sequence number, epoch or count (never negative: the
/// schema checks it).
pub(super) fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The history of `epoch`, root first, from the rows of every stream of the edge; `None`
/// when the edge has no such epoch (epoch 0 always exists, empty for an unknown edge).
pub(super) fn lineage(rows: &[StreamRow], epoch: u64) -> Result<Option<Vec<Segment>>, HubError> {
    let mut segments = Vec::new();
    let (mut current, mut through) = (epoch, u64::MAX);
    loop {
        if current == 0 {
            segments.push(Segment { epoch: 0, after: 0, through });
            segments.reverse();
            return Ok(Some(segments));
        }
        let Some(row) = rows.iter().find(|r| r.epoch == current) else { return Ok(None) };
        let parent = row.parent.filter(|p| *p < current).ok_or_else(|| {
            HubError::Postgres(format!("epoch {current} names no earlier parent epoch: the hub_streams row is damaged"))
        })?;
        segments.push(Segment { epoch: current, after: row.fork_at, through });
        through = row.fork_at;
        current = parent;
    }
}

#[cfg(test)]
mod tests;
