//! `zenedge hub`, `zenedge hub migrate`, `zenedge hub check`: arguments and the hub
//! configuration file resolved into a store, then served (or migrated, or checked).
//!
//! Exit codes: 0 after a clean shutdown or a passed check; 78 (`EX_CONFIG`) for unusable
//! arguments or files, and for a database whose TLS is not what `sslmode=verify-full` asks
//! (a certificate from another CA or for another host name, a server without TLS); 1 for
//! anything else (a database that cannot be reached, a failed check).
//!
//! The hub configuration file (`--config`, see `hub.example.toml`) holds the PostgreSQL
//! settings, so that a password never has to appear on a command line:
//!
//! ```toml
//! [hub.postgres]
//! url = "postgres://zenedge_hub:secret@db.example.org/zenedge_hub?sslmode=verify-full"
//! ca_file = "/etc/zenedge-hub/postgres-ca.pem"   # the CA the server's certificate chains to
//! pool_size = 16                                  # connections at most
//! connect_timeout = "5s"
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::pg::{PgSettings, PgStore};
use super::{HubOptions, HubStore, HubTls, serve, tls_config};
use crate::cli::{EXIT_CONFIG, HubAction, HubArgs, HubStoreArgs};

/// The hub configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubFile {
    pub hub: HubSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSection {
    pub postgres: PostgresSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSection {
    pub url: String,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub pool_size: Option<usize>,
    #[serde(default)]
    pub connect_timeout: Option<String>,
}

impl HubFile {
    /// Reads and checks a hub configuration file into PostgreSQL settings.
    pub fn load(path: &Path) -> Result<PgSettings, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read the hub configuration: {e}", path.display()))?;
        let file: HubFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let section = file.hub.postgres;
        let mut settings = PgSettings::new(section.url);
        settings.ca_file = section.ca_file;
        if let Some(size) = section.pool_size {
            if size == 0 {
                return Err(format!("{}: hub.postgres.pool_size must be at least 1", path.display()));
            }
            settings.pool_size = size;
        }
        if let Some(timeout) = section.connect_timeout {
            settings.connect_timeout = crate::config::parse_duration_arg(&timeout)
                .map_err(|e| format!("{}: hub.postgres.connect_timeout: {e}", path.display()))?;
        }
        Ok(settings)
    }
}

/// Where the store is, resolved from the arguments.
#[derive(Debug, Clone)]
enum StoreChoice {
    Redb(PathBuf),
    Postgres(PgSettings),
}

fn store_choice(args: &HubStoreArgs) -> Result<StoreChoice, String> {
    match (&args.state_dir, &args.postgres, &args.config) {
        (Some(dir), None, None) => Ok(StoreChoice::Redb(dir.clone())),
        (None, Some(url), None) => {
            let mut settings = PgSettings::new(url.clone());
            settings.ca_file = args.postgres_ca.clone();
            if let Some(size) = args.postgres_pool {
                if size == 0 {
                    return Err("--postgres-pool must be at least 1".into());
                }
                settings.pool_size = size;
            }
            Ok(StoreChoice::Postgres(settings))
        }
        (None, None, Some(path)) => HubFile::load(path).map(StoreChoice::Postgres),
        (None, None, None) => Err("say where the hub stores: --state-dir DIR, --postgres URL or --config FILE".into()),
        _ => Err("--state-dir, --postgres and --config exclude each other: give one".into()),
    }
}

/// The limits of the command line, checked.
fn options(args: &HubArgs) -> Result<HubOptions, String> {
    let size = |name: &str, value: bytesize::ByteSize| match usize::try_from(value.as_u64()) {
        Ok(0) => Err(format!("{name} must be at least 1 byte")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{name} is too large for this machine")),
    };
    if args.header_timeout.is_zero() || args.body_timeout.is_zero() {
        return Err("--header-timeout and --body-timeout must be longer than zero".into());
    }
    Ok(HubOptions {
        max_batch_bytes: size("--max-batch-bytes", args.max_batch_bytes)?,
        max_event_bytes: size("--max-event-bytes", args.max_event_bytes)?,
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
    })
}

/// Opens the chosen store (PostgreSQL: connects and applies the migrations).
async fn open(choice: &StoreChoice) -> Result<HubStore, super::HubError> {
    match choice {
        StoreChoice::Redb(dir) => HubStore::open(dir),
        StoreChoice::Postgres(settings) => PgStore::open(settings).await.map(HubStore::Postgres),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| {
        eprintln!("zenedge hub: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
}

/// `zenedge hub …`: serve, or `migrate` / `check`.
pub fn run_command(args: &HubArgs) -> ExitCode {
    crate::telemetry::init_tracing("info");
    match &args.action {
        Some(HubAction::Migrate(store)) => return migrate(store),
        Some(HubAction::Check(store)) => return check(store),
        None => {}
    }
    let (options, choice) = match options(args).and_then(|o| store_choice(&args.store).map(|c| (o, c))) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("zenedge hub: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let StoreChoice::Postgres(settings) = &choice
        && let Err(e) = super::pg::check_settings(settings)
    {
        eprintln!("zenedge hub: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let Some(listen) = args.listen else {
        eprintln!("zenedge hub: --listen ADDR is required");
        return ExitCode::from(EXIT_CONFIG);
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let files = HubTls { cert: cert.clone(), key: key.clone(), client_ca: args.client_ca.clone() };
            match tls_config(&files) {
                Ok(config) => Some(config),
                Err(e) => {
                    eprintln!("zenedge hub: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            }
        }
        _ => None,
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let result = runtime.block_on(async move {
        let store = match open(&choice).await {
            Ok(store) => store,
            Err(e) => return Ok(Some(e)),
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        serve(listener, store, options, tls, shutdown).await.map(|()| None)
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        // The store did not open: 78 when the configuration is at fault.
        Ok(Some(e)) => exit_for(&e, ""),
        Ok(None) => {
            tracing::info!("hub stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zenedge hub: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The PostgreSQL settings of `migrate` / `check` (78 with a message otherwise).
fn postgres_only(args: &HubStoreArgs, what: &str) -> Result<PgSettings, ExitCode> {
    match store_choice(args) {
        Ok(StoreChoice::Postgres(settings)) => Ok(settings),
        Ok(StoreChoice::Redb(_)) => {
            eprintln!("zenedge hub {what}: only for the PostgreSQL store (--postgres URL or --config FILE)");
            Err(ExitCode::from(EXIT_CONFIG))
        }
        Err(e) => {
            eprintln!("zenedge hub {what}: {e}");
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

/// `zenedge hub migrate`: applies the migrations, prints the version.
fn migrate(args: &HubStoreArgs) -> ExitCode {
    let settings = match postgres_only(args, "migrate") {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(PgStore::migrate_only(&settings)) {
        Ok((target, m)) if m.from == m.to => {
            println!("{target}: schema version {} (up to date, nothing applied)", m.to);
            ExitCode::SUCCESS
        }
        Ok((target, m)) => {
            println!("{target}: schema version {} (was {})", m.to, m.from);
            ExitCode::SUCCESS
        }
        Err(e) => exit_for(&e, "migrate"),
    }
}

/// `zenedge hub check`: connectivity, schema, every edge's position.
fn check(args: &HubStoreArgs) -> ExitCode {
    let settings = match postgres_only(args, "check") {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let store = match PgStore::connect(&settings, false).await {
            Ok((store, _)) => store,
            Err(e) => return exit_for(&e, "check"),
        };
        println!("database: {} (reachable)", store.target());
        let version = match store.schema_version().await {
            Ok(v) => v,
            Err(e) => return exit_for(&e, "check"),
        };
        if version < super::pg::SCHEMA_VERSION {
            println!(
                "schema: version {version}, this binary writes {}: run `zenedge hub migrate` (or start the hub)",
                super::pg::SCHEMA_VERSION
            );
            return ExitCode::FAILURE;
        }
        println!("schema: version {version} (up to date)");
        match store.streams().await {
            Ok(streams) => {
                println!("edges: {}", streams.iter().filter(|s| s.1 == 0).count());
                for (edge_id, epoch, stored_through, events) in streams {
                    println!("  {edge_id:<24} epoch {epoch:<3} stored_through {stored_through:<12} events {events}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => exit_for(&e, "check"),
        }
    })
}

/// Prints `e` for the hub command `what` ("" when serving); 78 when the configuration is at
/// fault, else 1.
fn exit_for(e: &super::HubError, what: &str) -> ExitCode {
    let command = if what.is_empty() { "zenedge hub".to_owned() } else { format!("zenedge hub {what}") };
    eprintln!("{command}: {e}");
    match e {
        super::HubError::PgConfig(_) => ExitCode::from(EXIT_CONFIG),
        _ => ExitCode::FAILURE,
    }
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received: stopping"),
        _ = int.recv() => tracing::info!("SIGINT received: stopping"),
    }
    shutdown.cancel();
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
