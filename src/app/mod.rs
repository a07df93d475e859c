//! The composition root: open the log, start the listeners, tell systemd we are ready,
//! then wait for shutdown (a signal, or the log failing) and drain.
//!
//! Before anything starts, the TLS files are checked, the sync's (a certificate ureq would
//! panic on, or one that expired, stops the daemon with exit 78 like any other config problem)
//! and the `[tls]` identity of the TLS listeners (the same checks). A reload request (SIGHUP in
//! production, [`RunOptions::reload`]) reads the `[tls]` files again: the new identity serves
//! the connections accepted from then on if every file is usable; otherwise the one in use
//! stays and a security alert (ERROR) says why.
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
//! The audit trail records the start (before any listener) and the stop (after the last
//! connection, before the log closes) as Application Activity, and every security alert
//! ([`crate::audit::alerts`]).
//!
//! [`run`] reads as the phases above; each phase is a function of [`start`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod activity;
mod expiry;
mod services;
mod start;

use crate::api;
use crate::audit;
use crate::config::Config;
use crate::dicom;
use crate::log::{FaultInjector, LogOptions, OpenError, WriterFailure};
use crate::security::Alerts;
use crate::sync;
use crate::systemd;
use crate::telemetry::Metrics;
use crate::tls::CertError;

/// Sockets bound by the caller (so tests can bind port 0 and learn the address). A listener
/// the config switches off is `None`.
#[derive(Debug)]
pub struct Listeners {
    /// `mllp.listen`
    pub mllp: Option<TcpListener>,
    /// `mllp.tls_listen`
    pub mllp_tls: Option<TcpListener>,
    /// `dicom.listen`
    pub dicom: Option<TcpListener>,
    /// `dicom.tls_listen`
    pub dicom_tls: Option<TcpListener>,
    /// `http.listen`
    pub http: TcpListener,
}

impl Listeners {
    /// Binds every listener the config names.
    pub async fn bind(config: &Config) -> Result<Listeners, RunError> {
        Ok(Listeners {
            mllp: bind_some(config.mllp.listen).await?,
            mllp_tls: bind_some(config.mllp.tls_listen).await?,
            dicom: bind_some(config.dicom.listen).await?,
            dicom_tls: bind_some(config.dicom.tls_listen).await?,
            http: bind(config.http.listen).await?,
        })
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr).await.map_err(|source| RunError::Bind { addr, source })
}

async fn bind_some(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, RunError> {
    match addr {
        Some(addr) => bind(addr).await.map(Some),
        None => Ok(None),
    }
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
    /// A flush of DICOM instance files failed (see [`dicom::flush`]): restart cleanly.
    #[error("DICOM instance files could not be flushed, no further instances were accepted")]
    InstanceFlush,
    /// A TLS file of the sync cannot be used (a configuration problem: exit 78).
    #[error(transparent)]
    SyncTls(#[from] sync::tls::CertError),
    /// Files of the `[tls]` identity cannot be used (a configuration problem: exit 78).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Tls(Vec<CertError>),
    #[error("cannot start the sync thread: {0}")]
    SyncThread(std::io::Error),
    #[error(transparent)]
    Journal(#[from] audit::journal::JournalError),
}

impl RunError {
    /// The configuration is unusable (as opposed to a runtime failure).
    pub fn is_config(&self) -> bool {
        match self {
            RunError::SyncTls(_) | RunError::Tls(_) => true,
            RunError::Open(e) => e.is_config(),
            _ => false,
        }
    }
}

/// What the caller hands in besides the config: production's reload signal, the tests'
/// fault injection.
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Makes the database's fsyncs fail on demand; its storage hook, if any, sees every
    /// write of the database and of the instance files.
    pub faults: Option<FaultInjector>,
    /// Notified to reload the `[tls]` files (the binary notifies it on SIGHUP).
    pub reload: Option<Arc<Notify>>,
}

/// Runs the daemon until `shutdown` is cancelled or the log fails.
/// Waits up to [`sync::STOP_GRACE`] for the forwarding threads (an association in flight
/// cannot be interrupted), then leaves them behind: a round not recorded is sent again.
async fn stop_forwarding(threads: Vec<std::thread::JoinHandle<()>>) {
    let waiting = tokio::task::spawn_blocking(move || {
        for thread in threads {
            let _ = thread.join();
        }
    });
    if tokio::time::timeout(sync::STOP_GRACE, waiting).await.is_err() {
        tracing::warn!("a forwarding thread is still waiting for its archive; leaving it behind");
    }
}

pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
    options: RunOptions,
) -> Result<(), RunError> {
    let sync_tls = start::check_sync_tls(&config)?;
    let server_tls = start::check_server_tls(&config)?;
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let metrics = Arc::new(Metrics::new());
    let log_options = LogOptions::from_config(&config).serving();
    let clock = log_options.clock.clone();
    let hook = options.faults.as_ref().and_then(FaultInjector::hook);
    let log = start::open_log(log_options, metrics.clone(), options.faults).await?;
    start::audit_activity(&config, &log, true).await?;
    let (trail, queued) = audit::alert_trail(&config.site.edge_id, metrics.clone());
    let alerts = Alerts::new(metrics.clone()).recording(trail);
    start::warn_if_below_reserve(&log.disk_guard());
    let layout = dicom::Layout::with_hook(config.store.state_dir.clone(), hook)
        .with_flush(dicom::flush::effective(config.dicom.flush));
    start::tidy_state_dir(&config, &layout, &log).await?;
    activity::load(&config.store.state_dir, &metrics);
    let addrs = start::Addresses::of(&config, &listeners)?;

    let stopping = CancellationToken::new();
    let tracker = TaskTracker::new();
    let ctx = services::Started {
        config: &config,
        log: &log,
        metrics: &metrics,
        alerts: &alerts,
        tls: server_tls.as_ref(),
        stopping: &stopping,
        tracker: &tracker,
    };
    tracker.spawn(audit::write_alerts(queued, log.handle(), stopping.clone()));
    let certificates = expiry::Certificates {
        server: server_tls.clone(),
        client: sync_tls.as_ref().map(|t| (t.cert_file.clone(), t.not_after)),
        metrics: metrics.clone(),
    };
    tracker.spawn(certificates.watch(alerts.clone(), stopping.clone()));
    ctx.mllp(listeners.mllp, listeners.mllp_tls);
    let retention_layout = layout.clone();
    let flush_failed = ctx.dicom(listeners.dicom, listeners.dicom_tls, layout)?;
    ctx.reloads(options.reload);
    let sync_shared = ctx.sync_state().await?;
    let syslog = ctx.syslog(sync_tls.as_ref()).await?;
    ctx.audit_retention();
    ctx.value_dictionary();
    ctx.activity();
    let sync_worker = ctx.sync(sync_tls, &sync_shared)?;
    let (forward_shared, forward_threads) = ctx.forward()?;
    // One backup at a time, and no retention sweep while one is streamed.
    let exclusive = Arc::new(tokio::sync::Semaphore::new(1));
    ctx.retention(clock, &exclusive, retention_layout);
    let scheduled_backups = ctx.backups(&exclusive);
    let https = config.http.tls.then(|| ctx.handshaker("http", false)).flatten();
    // Always opened: what a run with the journal left in it is copied into the trail first.
    let journal =
        audit::Journal::open(&config.store.state_dir, log.handle(), log.reader(), log.disk_guard(), stopping.clone())
            .await?;
    let api = ctx.api(sync_shared, forward_shared, exclusive, scheduled_backups, syslog, journal);
    let limits = api::ConnectionLimits {
        header_timeout: config.http.header_timeout,
        max_header_bytes: config.http.max_header_bytes,
    };
    let http = tokio::spawn(api::serve(listeners.http, api, limits, https));
    let failed = log.handle().state.failed.clone();
    systemd::ready();
    let watchdog = tokio::spawn(systemd::watchdog(log.handle().state.clone()));
    tracing::info!(
        mllp = %addrs.mllp,
        mllp_tls = %addrs.mllp_tls,
        dicom = %addrs.dicom,
        dicom_tls = %addrs.dicom_tls,
        http = %addrs.http,
        https = config.http.tls,
        edge = %config.site.edge_id,
        "zenedge is ready"
    );

    tokio::select! {
        _ = shutdown.cancelled() => tracing::info!("shutting down"),
        _ = failed.cancelled() => tracing::error!("event log failed; shutting down to restart on a clean reopen"),
        _ = flush_failed.cancelled() => tracing::error!("DICOM instance files could not be flushed; shutting down to restart cleanly"),
    }
    systemd::stopping();
    stopping.cancel();
    tracker.close();
    let grace = config.daemon.shutdown_grace;
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(?grace, "connections still busy after the grace period; closing anyway");
    }
    watchdog.abort();
    activity::save(config.store.state_dir.clone(), metrics.clone()).await;
    let _ = tokio::time::timeout(grace, http).await;
    if let Some(worker) = sync_worker {
        worker.stop(sync::STOP_GRACE).await;
    }
    stop_forwarding(forward_threads).await;
    if let Err(e) = start::audit_activity(&config, &log, false).await {
        tracing::warn!(error = %e, "the audit record of this stop could not be written");
    }
    log.close().await?;
    tracing::info!("event log closed");
    if flush_failed.is_cancelled() {
        return Err(RunError::InstanceFlush);
    }
    Ok(())
}
