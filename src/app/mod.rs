//! The composition root: open the log, start the listeners, tell systemd we are ready,
//! then wait for shutdown (a signal, or the log failing) and drain.
//!
//! Before anything starts, the sync's TLS files are checked (a certificate ureq would panic
//! on, or one that expired, stops the daemon with exit 78 like any other config problem).
//! With a hub configured, the sync worker runs on its own thread ([`crate::sync`]). With
//! `retention.dicom_max_age` set, the retention sweep runs as a task ([`crate::retention`]).
//!
//! Shutdown, in order: cancel the token (listeners stop accepting, idle connections close,
//! frames that arrive from now on are answered `AR`, the sync worker's waits end); wait up
//! to `daemon.shutdown_grace` for in-flight messages to be committed and acknowledged; wait
//! up to [`crate::sync::STOP_GRACE`] for the sync thread (a request in flight cannot be
//! interrupted); stop the writer; close the database. A message is either acknowledged after
//! its commit or refused — never acknowledged and lost.
//!
//! [`run`] reads as the phases above; each phase is a function of [`start`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod start;

use crate::api;
use crate::config::Config;
use crate::dicom;
use crate::log::{FaultInjector, LogOptions, OpenError, WriterFailure};
use crate::sync;
use crate::systemd;
use crate::telemetry::Metrics;

/// Sockets bound by the caller (so tests can bind port 0 and learn the address).
#[derive(Debug)]
pub struct Listeners {
    pub mllp: TcpListener,
    pub dicom: TcpListener,
    pub http: TcpListener,
}

impl Listeners {
    /// Binds every listener the config names.
    pub async fn bind(config: &Config) -> Result<Listeners, RunError> {
        Ok(Listeners {
            mllp: bind(config.mllp.listen).await?,
            dicom: bind(config.dicom.listen).await?,
            http: bind(config.http.listen).await?,
        })
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr).await.map_err(|source| RunError::Bind { addr, source })
}

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("cannot prepare the instance store under {path}: {source}")]
    Instances { path: std::path::PathBuf, source: std::io::Error },
    #[error(transparent)]
    Writer(#[from] WriterFailure),
    /// A TLS file of the sync cannot be used (a configuration problem: exit 78).
    #[error(transparent)]
    SyncTls(#[from] sync::tls::CertError),
    #[error("cannot start the sync thread: {0}")]
    SyncThread(std::io::Error),
}

impl RunError {
    /// The configuration is unusable (as opposed to a runtime failure).
    pub fn is_config(&self) -> bool {
        matches!(self, RunError::SyncTls(_))
    }
}

/// Test hooks; production passes `RunOptions::default()`.
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Makes the database's fsyncs fail on demand; its storage hook, if any, sees every
    /// write of the database and of the instance files.
    pub faults: Option<FaultInjector>,
}

/// Runs the daemon until `shutdown` is cancelled or the log fails.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
    options: RunOptions,
) -> Result<(), RunError> {
    let sync_tls = start::check_sync_tls(&config)?;
    let metrics = Arc::new(Metrics::new());
    let log_options = LogOptions::from_config(&config);
    let clock = log_options.clock.clone();
    let hook = options.faults.as_ref().and_then(FaultInjector::hook);
    let log = start::open_log(log_options, metrics.clone(), options.faults).await?;
    start::warn_if_below_reserve(&log.disk_guard());
    let layout = dicom::Layout::with_hook(config.store.state_dir.clone(), hook);
    start::tidy_state_dir(&config, &layout, &log).await?;
    let addrs = start::Addresses::of(&config, &listeners)?;

    let stopping = CancellationToken::new();
    let tracker = TaskTracker::new();
    let ctx = start::Started { config: &config, log: &log, metrics: &metrics, stopping: &stopping, tracker: &tracker };
    ctx.mllp(listeners.mllp);
    ctx.dicom(listeners.dicom, layout);
    let sync_shared = ctx.sync_state().await?;
    let sync_worker = ctx.sync(sync_tls, &sync_shared)?;
    // One backup at a time, and no retention sweep while one is streamed.
    let exclusive = Arc::new(tokio::sync::Semaphore::new(1));
    ctx.retention(clock, &exclusive, &sync_shared);
    let http = tokio::spawn(api::serve(listeners.http, ctx.api(sync_shared, exclusive), config.http.header_timeout));
    let failed = log.handle().state.failed.clone();
    systemd::ready();
    let watchdog = tokio::spawn(systemd::watchdog(log.handle().state.clone()));
    tracing::info!(mllp = %addrs.mllp, dicom = %addrs.dicom, http = %addrs.http, edge = %config.site.edge_id, "zenedge is ready");

    tokio::select! {
        _ = shutdown.cancelled() => tracing::info!("shutting down"),
        _ = failed.cancelled() => tracing::error!("event log failed; shutting down to restart on a clean reopen"),
    }
    systemd::stopping();
    stopping.cancel();
    tracker.close();
    let grace = config.daemon.shutdown_grace;
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(?grace, "connections still busy after the grace period; closing anyway");
    }
    watchdog.abort();
    let _ = tokio::time::timeout(grace, http).await;
    if let Some(worker) = sync_worker {
        worker.stop(sync::STOP_GRACE).await;
    }
    log.close().await?;
    tracing::info!("event log closed");
    Ok(())
}
