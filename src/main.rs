//! The `zenedge` binary: parse the command line, set up tracing, hand over to the library.

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use zenedge::app::{self, Listeners, RunOptions};
use zenedge::cli::{Cli, Command};
use zenedge::config::Config;

/// `EX_CONFIG` from sysexits.h: the configuration is unusable.
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Serve { config } => serve(&config),
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match Config::load(file) {
        Ok(_) => {
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("{}: {line}", file.display());
            }
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn serve(path: &std::path::Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("{}: {line}", path.display());
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
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
