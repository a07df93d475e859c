//! `zenedge-load`: the project's own load generator, and the yardstick it is compared to.
//!
//! * `mllp` drives an MLLP receiver the way HL7 senders do: one message in flight per
//!   connection (send, wait for the ACK, send the next), synthesized ORM^O01 orders with a
//!   unique MSH-10 each (`<run id>-<counter>`), closed loop or on a fixed open-loop
//!   schedule (`--rate`). It reports ACK codes, MSA-2 mismatches, errors, throughput and
//!   ACK latency (write start → complete ACK, hdrhistogram at microsecond resolution).
//!   `--nagle` imitates interface engines that leave Nagle on and write a frame in three
//!   pieces: a receiver that lets its kernel delay ACKs then stalls ~40 ms per message.
//!   `--tls-ca` (with `--tls-cert`/`--tls-key`) speaks MLLP over TLS; the report then also
//!   gives the connect-and-handshake time of every connection opened.
//! * `handshakes` opens connections one after another (or N at a time) and closes each once
//!   it is up: connects per second and their latency, plain or TLS (full handshakes).
//! * `fill-log`, `match-lookup` and `http` write a log of a given size through the daemon's
//!   writer, time the writer's matching lookup in it, and load the read API at a fixed
//!   rate: the rebuild, lookup and API benchmarks.
//! * `sync-lag` sends orders at a fixed rate and times each from its ACK to the moment the
//!   hub's copy of the edge's stream shows it: the steady-state sync benchmark.
//! * `commit-ceiling` measures the physical ceiling of the store: durable redb 4.6 commits
//!   of N events each, in a fresh database. The daemon's throughput is judged against it.
//!
//! It shares two cores with the receiver under test, so it stays lean: one reusable buffer
//! per connection, no per-message allocation beyond the message text, one tokio worker by
//! default.
//!
//! Exit status: 0 when every message got AA or CA with the right MSA-2 and nothing failed;
//! 1 otherwise; 2 on usage errors; 3 when a connection could not be opened at start.

mod ceiling;
mod conn;
mod driver;
mod fill;
mod handshake;
mod http;
mod hubload;
mod inserts;
mod message;
mod plan;
mod report;
mod synclag;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::ceiling::run_ceiling_command;
use crate::report::run_mllp_command;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Highest latency the histograms track (values above are clamped).
const MAX_LATENCY_US: u64 = 3_600_000_000;

#[derive(Parser, Debug)]
#[command(name = "zenedge-load", version, about = "Load generator for zenedge (MLLP) and the redb commit ceiling")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send synthesized ORM^O01 orders over MLLP, one in flight per connection.
    Mllp(MllpArgs),
    /// Measure durable redb commits per second: the ceiling for acknowledged messages.
    CommitCeiling(CeilingArgs),
    /// Write a log of exams (orders, instances, completions and the decisions they trigger)
    /// through the daemon's writer into an empty state directory.
    FillLog(FillArgs),
    /// Time the writer's matching lookup for random accessions of a filled log.
    MatchLookup(LookupArgs),
    /// GET the read API at a fixed offered rate and report latency percentiles.
    Http(HttpArgs),
    /// Measure redb inserts and reads per second with the projections' key shapes.
    InsertCeiling(InsertArgs),
    /// Send orders at a fixed rate and time each from its ACK to the hub holding it.
    SyncLag(synclag::SyncLagArgs),
    /// Open connections (plain or TLS) and close each once it is up: handshakes per second.
    Handshakes(handshake::HandshakeArgs),
    /// Many virtual edges syncing to the hub at once (mutual TLS), and a consumer of the feed.
    HubLoad(hubload::HubLoadArgs),
    /// Read the hub's whole cross-edge feed from the start: events/s.
    FeedRead(hubload::FeedReadArgs),
}

#[derive(Args, Debug)]
struct InsertArgs {
    /// Directory for the scratch database (the file is removed after).
    #[arg(long)]
    dir: PathBuf,
    /// Rows per measurement.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// redb cache in MiB.
    #[arg(long, default_value_t = 256)]
    cache_mib: usize,
}

#[derive(Args, Debug)]
struct FillArgs {
    /// The daemon's config (its state directory must hold no events yet).
    #[arg(long)]
    config: PathBuf,
    /// Stop once the log holds this many events.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Instances per study.
    #[arg(long, default_value_t = 20)]
    instances: u32,
    /// Exams in flight at once.
    #[arg(long, default_value_t = 256)]
    tasks: u64,
}

#[derive(Args, Debug)]
struct LookupArgs {
    /// The config of a stopped daemon whose log `fill-log` wrote.
    #[arg(long)]
    config: PathBuf,
    /// Exams in that log (accessions are drawn from 0..exams).
    #[arg(long)]
    exams: u64,
    /// Lookups to time.
    #[arg(long, default_value_t = 100_000)]
    lookups: u64,
}

#[derive(Args, Debug)]
struct HttpArgs {
    /// The API's address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Path templates, used in turn: `{study}`, `{accession}`, `{patient}` and `{exam}` (the
    /// number itself) are filled from a random exam number of a `fill-log` log.
    #[arg(long, required = true)]
    path: Vec<String>,
    /// Exams in the log (exam numbers are drawn from 0..exams).
    #[arg(long)]
    exams: u64,
    /// Offered requests per second, across all connections.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    connections: u64,
    /// How long to measure, after the warmup.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Send for this long first, excluded from the figures.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// A file holding the API token to present (e.g. the daemon's
    /// `<state_dir>/local-api.token`); without it requests go anonymous (and are refused,
    /// but for /healthz and /readyz).
    #[arg(long)]
    token_file: Option<std::path::PathBuf>,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    threads: u64,
}

#[derive(Args, Debug)]
struct MllpArgs {
    /// Receiver address.
    #[arg(long, default_value = "127.0.0.1:2575")]
    addr: SocketAddr,
    /// Parallel connections, each with one message in flight.
    #[arg(short, long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    connections: u64,
    /// Messages to send in total across all connections, warm-up included (with the
    /// default --warmup of 0s for --count, all of them are measured). Default: run for
    /// --duration.
    #[arg(long, conflicts_with = "duration")]
    count: Option<u64>,
    /// How long to measure, after the warmup [default: 10s].
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Offered load in messages/s across all connections, on a fixed schedule per
    /// connection (open loop); 0 = as fast as the ACKs come back.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Leave Nagle on (no TCP_NODELAY) and write each frame in 3 writes: start block + MSH,
    /// the rest of the payload, end block.
    #[arg(long)]
    nagle: bool,
    /// Send for this long first, excluded from the figures (with --count, part of the
    /// count) [default: 1s with --duration, 0s with --count].
    #[arg(long, value_parser = humantime::parse_duration)]
    warmup: Option<Duration>,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    threads: u64,
    /// Write the MSH-10 of every message answered AA/CA (warmup included), one a line.
    #[arg(long)]
    acked_out: Option<PathBuf>,
    /// First counter value in the control ids (`<run id>-<counter>`).
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Prefix of the control ids [default: the current time in milliseconds, base 36].
    /// Letters, digits, `.`, `_`, `-`; keep id + counter within 20 characters for v2.5.
    #[arg(long, value_parser = parse_run_id)]
    run_id: Option<String>,
    /// Approximate payload size in bytes (NTE segments pad the order up to it).
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Give up on an ACK after this long (the connection is then reopened).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Give up connecting after this long.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tls: tls::TlsArgs,
}

#[derive(Args, Debug)]
struct CeilingArgs {
    /// Directory for the scratch database (created if missing; the file is removed after).
    #[arg(long)]
    dir: PathBuf,
    /// Rows inserted per write transaction.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    events_per_commit: u64,
    /// Write transactions to run.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    commits: u64,
    /// Bytes per row.
    #[arg(long, default_value_t = 1024)]
    event_bytes: usize,
    /// Also insert, per row, a row into a second table shaped like the daemon's HL7
    /// duplicate index (a tuple key of five strings and a SHA-256, a ~200-byte value): the
    /// ceiling for the daemon's own transaction shape rather than a bare row.
    #[arg(long)]
    index_row: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_run_id(s: &str) -> Result<String, String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if s.is_empty() || s.len() > 16 || !s.chars().all(ok) {
        return Err("1-16 characters from A-Z a-z 0-9 . _ -".into());
    }
    Ok(s.to_owned())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Mllp(args) => run_mllp_command(args),
        Command::CommitCeiling(args) => run_ceiling_command(&args),
        Command::FillLog(args) => fill::run_fill_command(&args),
        Command::MatchLookup(args) => http::run_lookup_command(&args),
        Command::Http(args) => http::run_http_command(&args),
        Command::InsertCeiling(args) => inserts::run_insert_command(&args),
        Command::SyncLag(args) => synclag::run_sync_lag_command(&args),
        Command::Handshakes(args) => handshake::run_handshake_command(&args),
        Command::HubLoad(args) => hubload::run_hub_load_command(&args),
        Command::FeedRead(args) => hubload::run_feed_read_command(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("zenedge-load: {err}");
            ExitCode::FAILURE
        }
    }
}
