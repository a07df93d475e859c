//! The command line: `serve`, `check-config`, `rebuild`, `verify`, `disk-usage`, `status`,
//! `events`, `backup`, `restore`, `dead-letters`, `sync fork`, `hub`; the exit code every
//! subcommand gives an unusable configuration, and loading the configuration a subcommand names.
//!
//! Exit codes: 0 done, 78 ([`EXIT_CONFIG`]) the configuration (or a file or argument it names)
//! is unusable, 1 anything else.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// `EX_CONFIG` from sysexits.h: the configuration, or a file or argument it names, is unusable.
pub const EXIT_CONFIG: u8 = 78;

/// The configuration at `path`, or exit 78 after printing each of its problems as
/// `<file>: <problem>`.
pub fn load_config(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| config_problem(path, e))
}

/// Exit 78 after printing `problem` (one line or several) as `<file>: <problem>`.
pub fn config_problem(path: &Path, problem: impl std::fmt::Display) -> ExitCode {
    for line in problem.to_string().lines() {
        eprintln!("{}: {line}", path.display());
    }
    ExitCode::from(EXIT_CONFIG)
}

#[derive(Debug, Parser)]
#[command(name = "zenedge", version, about = "Hospital edge daemon: durable HL7 v2 and DICOM intake")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve {
        /// The configuration file (see config.example.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file: prints every problem with its key, exits 78 if any.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
    /// Drop every projection and replay the log (the daemon must be stopped). Prints a
    /// digest of the projections before and after.
    Rebuild {
        /// The configuration file (/etc/zenedge/zenedge.toml on an installed box).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Replay the log in memory and compare with the projections on disk; changes nothing.
    /// Exits 1 if they differ (the daemon must be stopped).
    Verify {
        /// The configuration file (/etc/zenedge/zenedge.toml on an installed box).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// What each table of the database holds on disk (rows, bytes, fragmentation, pages), then
    /// the file's length and allocated bytes (the daemon must be stopped).
    DiskUsage {
        /// The configuration file (/etc/zenedge/zenedge.toml on an installed box).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Ask the running daemon (at the config's `http.listen`) for its state: last sequence,
    /// what the log holds, what was answered since start, disk reserve, sync cursor, lag,
    /// breaker and dead letters.
    Status {
        /// The configuration file (/etc/zenedge/zenedge.toml on an installed box).
        #[arg(long, short)]
        config: PathBuf,
        /// Print the daemon's JSON instead of the summary.
        #[arg(long)]
        json: bool,
    },
    /// Print the running daemon's events as JSON lines, in sequence order (tail and export).
    /// Exits 0 at the end of the log, 1 if the daemon does not answer.
    Events {
        /// The configuration file (/etc/zenedge/zenedge.toml on an installed box).
        #[arg(long, short)]
        config: PathBuf,
        /// Start after this sequence number (default: 0; with --follow: from now).
        #[arg(long)]
        after: Option<u64>,
        /// Keep printing events as they are committed (the daemon's live stream).
        #[arg(long)]
        follow: bool,
    },
    /// Copy the running daemon's log and instance files into a new directory, without
    /// stopping intake (scope `operator`: run as root or the service user). The copy is consistent (one snapshot
    /// of the log and the files its events name) and checked against the events.
    Backup {
        /// The configuration file (/etc/zenedge/zenedge.toml on an installed box).
        #[arg(long, short)]
        config: PathBuf,
        /// The directory to write (created; must be empty).
        #[arg(long)]
        to: PathBuf,
    },
    /// Write everything this edge holds of one patient (and the ids merged into it) to a tar
    /// file: its events as JSON, its HL7 messages as received, its DICOM files, and a manifest
    /// with the SHA-256 of each (a data subject's access request; recorded in the audit trail).
    Export {
        /// The configuration file (/etc/zenedge/zenedge.toml on an installed box).
        #[arg(long, short)]
        config: PathBuf,
        /// The patient id (PID-3, DICOM Patient ID).
        #[arg(long)]
        patient: String,
        /// The file to write (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
    /// Put a backup in place (the daemon must be stopped): into an empty state directory,
    /// or over a used one with --force. Checks the site and every instance file.
    Restore {
        /// A directory written by `zenedge backup`.
        #[arg(long)]
        from: PathBuf,
        /// The configuration file (/etc/zenedge/zenedge.toml on an installed box).
        #[arg(long, short)]
        config: PathBuf,
        /// Write into a state directory that is not empty.
        #[arg(long)]
        force: bool,
    },
    /// The running daemon's dead letters (events the hub refused): list them, or send them
    /// again or give them up (scope `operator`: run as root or the service user).
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
    /// Operator actions on the running daemon's sync (scope `operator`).
    #[command(subcommand)]
    Sync(SyncCommand),
    /// API client tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Run the reference hub: receives edges' event batches (the hub contract) and stores
    /// each `(edge_id, seq)` once.
    Hub(Box<HubArgs>),
}

/// `zenedge dead-letters`.
#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    /// List every dead letter with its status, attempts and the hub's reason.
    List {
        /// The configuration file (/etc/zenedge/zenedge.toml on an installed box).
        #[arg(long, short)]
        config: PathBuf,
        /// Print the daemon's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Send a dead letter to the hub once more (after the hub was fixed); `--all` retries
    /// every parked one (skipped ones stay given up).
    Retry {
        /// The configuration file (/etc/zenedge/zenedge.toml on an installed box).
        #[arg(long, short)]
        config: PathBuf,
        /// The dead letter's sequence number.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        seq: Option<u64>,
        /// Every parked dead letter.
        #[arg(long)]
        all: bool,
    },
    /// Give a dead letter up for good: the hub keeps it as skipped.
    Skip {
        /// The configuration file (/etc/zenedge/zenedge.toml on an installed box).
        #[arg(long, short)]
        config: PathBuf,
        /// The dead letter's sequence number.
        seq: u64,
    },
}

/// `zenedge token`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a fresh random token for a new API client, once, and the `[[http.clients]]`
    /// lines to paste into the config (which keeps only the token's SHA-256).
    New {
        /// The client's name (1-64 characters of A-Z a-z 0-9 . _ -), as the audit trail names it.
        name: String,
        /// Comma-separated scopes: read, status, operator, audit.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
    },
}

/// `zenedge sync`.
#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// After the sync stopped at `hub_diverged` (this log and the hub hold different histories
    /// under the same sequence numbers, e.g. after restoring a backup): keep both. The hub
    /// starts a new epoch of this edge's stream after the last common sequence number and this
    /// log's events after it go there; the hub keeps the other history as it is.
    Fork {
        /// The configuration file (/etc/zenedge/zenedge.toml on an installed box).
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// `zenedge hub`: serve (with `--listen`), or `migrate` / `check` the PostgreSQL store.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct HubArgs {
    #[command(subcommand)]
    pub action: Option<HubAction>,
    /// Address to listen on, e.g. 127.0.0.1:8443.
    #[arg(long, required = true)]
    pub listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub store: HubStoreArgs,
    /// Server certificate chain (PEM); with --tls-key, serve HTTPS. Without: plain HTTP.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA bundle (PEM) for client certificates: every edge must present one issued by it,
    /// and may write only the stream of the edge id named in it.
    #[arg(long, requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// Largest batch body accepted once decompressed.
    #[arg(long, default_value = "64MiB")]
    pub max_batch_bytes: bytesize::ByteSize,
    /// Largest single event accepted; a batch holding a larger one is refused (422).
    #[arg(long, default_value = "16MiB")]
    pub max_event_bytes: bytesize::ByteSize,
    /// How long a request's headers may take to arrive on an open connection.
    #[arg(long, default_value = "30s", value_parser = crate::config::parse_duration_arg)]
    pub header_timeout: std::time::Duration,
    /// How long a request's body may take to arrive after its headers (408 beyond).
    #[arg(long, default_value = "60s", value_parser = crate::config::parse_duration_arg)]
    pub body_timeout: std::time::Duration,
}

/// Where the hub stores: exactly one of `--state-dir`, `--postgres`, `--config`.
#[derive(Debug, Clone, clap::Args)]
pub struct HubStoreArgs {
    /// Directory for the hub's redb database (created if missing): a small site.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// A PostgreSQL URL, e.g. postgres://zenedge_hub@db.example.org/zenedge_hub?sslmode=verify-full
    /// (a password here shows in the process list: put it in --config instead).
    #[arg(long)]
    pub postgres: Option<String>,
    /// The CA bundle (PEM) the database's certificate must chain to (sslmode=verify-full).
    #[arg(long, requires = "postgres")]
    pub postgres_ca: Option<PathBuf>,
    /// Database connections the hub keeps open at most [default: 16].
    #[arg(long, requires = "postgres")]
    pub postgres_pool: Option<usize>,
    /// A hub configuration file (TOML) with a [hub.postgres] table; see hub.example.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `zenedge hub migrate` and `zenedge hub check`.
#[derive(Debug, Clone, Subcommand)]
pub enum HubAction {
    /// Bring the PostgreSQL database's schema up to this binary's version, and print it.
    Migrate(HubStoreArgs),
    /// Check the PostgreSQL store: connectivity, schema version, every edge's position.
    Check(HubStoreArgs),
}
