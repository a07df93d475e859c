//! The schema as versioned migrations, embedded in the binary (`migrations/NNNN_name.sql`).
//!
//! [`migrate`] applies the ones the database lacks in one transaction, under a transaction-
//! scoped advisory lock, so two hubs starting at once against one database apply each
//! migration once (the second waits, then finds nothing to do). `hub_schema_version` holds
//! one row per applied migration. A database whose version is above what this binary knows
//! (a newer hub migrated it) is refused with a message that says so: an older binary never
//! writes into a layout it does not understand.

use deadpool_postgres::GenericClient;

use super::super::HubError;
use super::db_error;

/// The migrations in order: (version, name, SQL).
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "initial", include_str!("migrations/0001_initial.sql")),
    (2, "audit", include_str!("migrations/0002_audit.sql")),
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i32 = 2;

/// The advisory lock key of migrations: "zenedgeM" in ASCII.
const LOCK_KEY: i64 = 0x7a65_6e65_6467_654d;

/// What [`migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// The version found (0: an empty database).
    pub from: i32,
    pub to: i32,
}

/// The version recorded in the database (0 when it has no `hub_schema_version` table).
pub async fn version(client: &impl GenericClient) -> Result<i32, HubError> {
    let exists: bool =
        client.query_one("SELECT to_regclass('hub_schema_version') IS NOT NULL", &[]).await.map_err(db_error)?.get(0);
    if !exists {
        return Ok(0);
    }
    let row =
        client.query_one("SELECT coalesce(max(version), 0) FROM hub_schema_version", &[]).await.map_err(db_error)?;
    Ok(row.get(0))
}

/// Refuses a database migrated by a newer hub.
pub fn check_not_newer(found: i32) -> Result<(), HubError> {
    if found > SCHEMA_VERSION {
        return Err(HubError::NewerDatabaseSchema { found: found as u64, known: SCHEMA_VERSION as u64 });
    }
    Ok(())
}

/// Brings the database to [`SCHEMA_VERSION`], in one transaction under the advisory lock.
pub async fn migrate(client: &mut deadpool_postgres::Object) -> Result<Migrated, HubError> {
    let tx = client.transaction().await.map_err(db_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY]).await.map_err(db_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS hub_schema_version (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(db_error)?;
    let from = version(&tx).await?;
    check_not_newer(from)?;
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > from) {
        tx.batch_execute(sql).await.map_err(|e| {
            HubError::Migration(format!("migration {version} ({name}) failed: {}", super::describe_error(&e)))
        })?;
        tx.execute("INSERT INTO hub_schema_version (version, name) VALUES ($1, $2)", &[version, name])
            .await
            .map_err(db_error)?;
        tracing::info!(version, name, "applied a migration of the hub's database");
    }
    tx.commit().await.map_err(db_error)?;
    Ok(Migrated { from, to: SCHEMA_VERSION })
}

#[cfg(test)]
#[path = "migrate_tests.rs"]
mod tests;
