//! The hub's two stores for the tests that must hold on both: redb in a temp dir, and
//! PostgreSQL (a fresh database of the run's server, see [`super::postgres`]).
//! [`on_both_stores!`] turns one async test body into a `redb` and a `postgres` test.

use std::sync::Arc;

use zenedge::hub::{HubStore, PgSettings, PgStore};

use super::postgres::{self, PgServer};

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Redb,
    Postgres,
}

/// Where a store keeps its data, so that a test can stop a hub and start another on the
/// same data.
#[derive(Debug, Clone)]
pub enum Backing {
    Redb(Arc<tempfile::TempDir>),
    Postgres { server: Arc<PgServer>, url: String },
}

impl Store {
    /// Fresh, empty storage of this kind; `Err` says why PostgreSQL is not there.
    pub fn backing(self) -> Result<Backing, String> {
        match self {
            Store::Redb => Ok(Backing::Redb(Arc::new(tempfile::tempdir().unwrap()))),
            Store::Postgres => {
                let server = postgres::shared()?;
                let url = server.database();
                Ok(Backing::Postgres { server, url })
            }
        }
    }
}

impl Backing {
    /// A fresh database on `server`.
    pub fn on(server: Arc<PgServer>) -> Backing {
        let url = server.database();
        Backing::Postgres { server, url }
    }

    /// A copy of what this backing holds now, as a backup of it would (redb: stop the hub
    /// first, the files are copied).
    pub fn copy(&self) -> Backing {
        match self {
            Backing::Redb(dir) => {
                let copy = tempfile::tempdir().unwrap();
                copy_dir(dir.path(), copy.path());
                Backing::Redb(Arc::new(copy))
            }
            Backing::Postgres { server, url } => {
                Backing::Postgres { server: server.clone(), url: server.copy_database(url) }
            }
        }
    }

    /// The PostgreSQL server and database URL, for a test that looks into the tables.
    pub fn postgres(&self) -> Option<(&PgServer, &str)> {
        match self {
            Backing::Redb(_) => None,
            Backing::Postgres { server, url } => Some((server, url)),
        }
    }

    /// A store on this backing (PostgreSQL: connects and migrates).
    pub async fn open(&self) -> HubStore {
        match self {
            Backing::Redb(dir) => HubStore::open(dir.path()).unwrap(),
            Backing::Postgres { url, .. } => HubStore::Postgres(PgStore::open(&settings(url)).await.unwrap()),
        }
    }

    /// The command-line arguments that make `zenedge hub` use this backing.
    pub fn args(&self) -> Vec<String> {
        match self {
            Backing::Redb(dir) => vec!["--state-dir".into(), dir.path().display().to_string()],
            Backing::Postgres { url, .. } => vec!["--postgres".into(), url.clone()],
        }
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Test settings for `url`: a small pool, a short connect timeout.
pub fn settings(url: &str) -> PgSettings {
    let mut settings = PgSettings::new(url);
    settings.pool_size = 8;
    settings.connect_timeout = std::time::Duration::from_secs(2);
    settings
}

/// Turns `async fn name(store: Store) { … }` into the tests `name::redb` and
/// `name::postgres` (which says why it did not run where PostgreSQL is absent).
#[macro_export]
macro_rules! on_both_stores {
    ($(#[$meta:meta])* async fn $name:ident($store:ident: Store) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::support::hubs::Store;

            async fn body($store: Store) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redb() {
                body(Store::Redb).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Err(reason) = $crate::support::postgres::shared() {
                    $crate::support::postgres::skip(concat!(module_path!(), "::postgres"), &reason);
                    return;
                }
                body(Store::Postgres).await
            }
        }
    };
}
