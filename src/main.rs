//! The `zenedge` binary: parse the command line, set up tracing, hand over to the library.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use zenedge::app::{self, Listeners, RunOptions};
use zenedge::cli::{self, Cli, Command, DeadLetterCommand, SyncCommand, TokenCommand};
use zenedge::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Serve { config } => serve(&config),
        Command::Rebuild { config } => zenedge::operator::rebuild::run_rebuild(&config),
        Command::Verify { config } => zenedge::operator::rebuild::run_verify(&config),
        Command::DiskUsage { config } => zenedge::operator::disk_usage::run_command(&config),
        Command::Status { config, json } => zenedge::operator::status::run_command(&config, json),
        Command::Events { config, after, follow } => zenedge::operator::events::run_command(&config, after, follow),
        Command::Backup { config, to } => zenedge::operator::backup::run_command(&config, &to),
        Command::Export { config, patient, to } => zenedge::operator::export::run_command(&config, &patient, &to),
        Command::Restore { from, config, force } => zenedge::operator::restore::run_command(&from, &config, force),
        Command::DeadLetters(command) => dead_letters(command),
        Command::Sync(SyncCommand::Fork { config }) => zenedge::operator::fork::run_command(&config),
        Command::Token(TokenCommand::New { name, scopes }) => zenedge::operator::token::run_new(&name, &scopes),
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
    match certificates(&config) {
        Ok(warnings) => {
            for warning in config.warnings().into_iter().chain(warnings) {
                eprintln!("{}: warning: {warning}", file.display());
            }
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(problems) => cli::config_problem(file, problems.join("\n")),
    }
}

/// Checks the TLS files the config names: the sync's (with an https hub) and the `[tls]`
/// identity's. The warnings (a certificate expiring soon, an outdated CRL), or every problem.
fn certificates(config: &Config) -> Result<Vec<String>, Vec<String>> {
    let now = jiff::Timestamp::now();
    let (mut warnings, mut problems) = (Vec::new(), Vec::new());
    if let Some(hub) = &config.sync.hub {
        match zenedge::sync::tls::load(hub, now) {
            Ok(tls) => warnings.extend(tls.and_then(|tls| tls.expiry_warning(now))),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if let Some(files) = &config.tls.files {
        match zenedge::tls::ServerTls::load(files, now) {
            Ok(tls) => warnings.extend(tls.warnings(now)),
            Err(found) => problems.extend(found.iter().map(ToString::to_string)),
        }
    }
    if problems.is_empty() { Ok(warnings) } else { Err(problems) }
}

fn serve(path: &std::path::Path) -> ExitCode {
    let config = match cli::load_config(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    // Before any port is bound (app::run checks again, for callers that skip this).
    if let Err(problems) = certificates(&config) {
        return cli::config_problem(path, problems.join("\n"));
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
        let shutdown = CancellationToken::new();
        let reload = Arc::new(Notify::new());
        tokio::spawn(signals(shutdown.clone(), reload.clone()));
        let listeners = Listeners::bind(&config).await?;
        app::run(config, listeners, shutdown, RunOptions { reload: Some(reload), ..RunOptions::default() }).await
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

/// Cancels `shutdown` on SIGTERM or SIGINT; notifies `reload` on each SIGHUP (`systemctl
/// reload`: the `[tls]` files are read again).
async fn signals(shutdown: CancellationToken, reload: Arc<Notify>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM received"); break }
            _ = int.recv() => { tracing::info!("SIGINT received"); break }
            _ = hup.recv() => {
                tracing::info!("SIGHUP received: reloading the TLS files");
                reload.notify_one();
            }
        }
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
