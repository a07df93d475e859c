//! The `zenedge` binary: parse the command line, set up tracing, hand over to the library.

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use zenedge::app::{self, Listeners, RunOptions};
use zenedge::cli::{self, Cli, Command, DeadLetterCommand, SyncCommand};
use zenedge::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Serve { config } => serve(&config),
        Command::Rebuild { config } => zenedge::operator::rebuild::run_rebuild(&config),
        Command::Verify { config } => zenedge::operator::rebuild::run_verify(&config),
        Command::Status { config, json } => zenedge::operator::status::run_command(&config, json),
        Command::Events { config, after, follow } => zenedge::operator::events::run_command(&config, after, follow),
        Command::Backup { config, to } => zenedge::operator::backup::run_command(&config, &to),
        Command::Restore { from, config, force } => zenedge::operator::restore::run_command(&from, &config, force),
        Command::DeadLetters(command) => dead_letters(command),
        Command::Sync(SyncCommand::Fork { config }) => zenedge::operator::fork::run_command(&config),
        Command::Hub(args) => zenedge::hub::run_command(&args),
    }
}

fn dead_letters(command: DeadLetterCommand) -> ExitCode {
    use zenedge::operator::dead_letters::{self, Action};
    match command {
        DeadLetterCommand::List { config, json } => dead_letters::run_command(&config, Action::List { json }),
        DeadLetterCommand::Retry { config, seq: Some(seq), .. } => {
            dead_letters::run_command(&config, Action::Retry(seq))
        }
        DeadLetterCommand::Retry { config, seq: None, .. } => dead_letters::run_command(&config, Action::RetryAll),
        DeadLetterCommand::Skip { config, seq } => dead_letters::run_command(&config, Action::Skip(seq)),
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    let config = match cli::load_config(file) {
        Ok(config) => config,
        Err(code) => return code,
    };
    match sync_certificates(&config) {
        Ok(warning) => {
            if let Some(warning) = warning {
                eprintln!("{}: warning: {warning}", file.display());
            }
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => cli::config_problem(file, e),
    }
}

/// Checks the sync's TLS files (with an https hub); the warning when the client certificate
/// expires soon.
fn sync_certificates(config: &Config) -> Result<Option<String>, zenedge::sync::tls::CertError> {
    let Some(hub) = &config.sync.hub else { return Ok(None) };
    let now = jiff::Timestamp::now();
    Ok(zenedge::sync::tls::load(hub, now)?.and_then(|tls| tls.expiry_warning(now)))
}

fn serve(path: &std::path::Path) -> ExitCode {
    let config = match cli::load_config(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    // Before any port is bound (app::run checks again, for callers that skip this).
    if let Err(e) = sync_certificates(&config) {
        return cli::config_problem(path, e);
    }
    zenedge::telemetry::init_tracing(&config.daemon.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listeners = Listeners::bind(&config).await?;
        let shutdown = CancellationToken::new();
        tokio::spawn(signals(shutdown.clone()));
        app::run(config, listeners, shutdown, RunOptions::default()).await
    });
    // Connection tasks still running after the grace period are dropped here.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_config() => {
            tracing::error!(error = %e, "zenedge cannot start: fix the configuration");
            ExitCode::from(cli::EXIT_CONFIG)
        }
        Err(e) => {
            tracing::error!(error = %e, "zenedge stopped");
            ExitCode::FAILURE
        }
    }
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
async fn signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
}

/// jemalloc instead of glibc's allocator. redb allocates a fresh zero-filled buffer for
/// every page a commit writes and frees it after the flush, and request buffers are
/// allocated on tokio workers and freed on the log writer thread; under glibc, `sysmalloc`
/// and the page faults behind it were a large share of the writer's time. Measured with
/// 32 connections: about 12% more messages/s with jemalloc, for about 10 MiB more resident
/// memory (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
