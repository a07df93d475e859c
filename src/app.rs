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
//! interrupted); stop the writer; close the database. A message is either acknowledged after its commit or refused — never
//! acknowledged and lost.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, ApiState};
use crate::config::Config;
use crate::dicom::{self, DicomContext};
use crate::log::{FaultInjector, LogOptions, OpenError, Store, WriterFailure};
use crate::mllp::{self, MllpContext};
use crate::projections::{self, Projections};
use crate::sync::{self, SyncShared};
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
    let sync_tls = check_sync_tls(&config)?;
    let metrics = Arc::new(Metrics::new());
    let log_options = LogOptions::from_config(&config);
    let clock = log_options.clock.clone();
    let hook = options.faults.as_ref().and_then(FaultInjector::hook);
    let log = {
        let metrics = metrics.clone();
        tokio::task::spawn_blocking(move || {
            // The file (schema, site), the projections level with the log, then the writer.
            let schema = projections::schema().with(sync::tables());
            let store = Store::open(&log_options, schema, options.faults)?;
            projections::catch_up(&store)?;
            store.start(Projections, metrics)
        })
        .await
        .expect("opening the log does not panic")?
    };
    warn_if_below_reserve(&log.disk_guard());
    let layout = dicom::Layout::with_hook(config.store.state_dir.clone(), hook);
    let swept = {
        let layout = layout.clone();
        tokio::task::spawn_blocking(move || layout.prepare())
            .await
            .expect("preparing the instance store does not panic")
    }
    .map_err(|source| RunError::Instances { path: layout.instances(), source })?;
    if swept > 0 {
        tracing::warn!(files = swept, "removed partly received DICOM instances left by a crash");
    }
    match crate::operator::snapshot::sweep(&config.store.state_dir) {
        Ok(0) => {}
        Ok(copies) => tracing::warn!(copies, "removed database copies left by an interrupted backup"),
        Err(e) => tracing::warn!(error = %e, "cannot remove the copies of an interrupted backup"),
    }
    let finished = {
        let (reader, dir) = (log.reader(), config.store.state_dir.clone());
        tokio::task::spawn_blocking(move || crate::retention::unlink_deleted(&reader, &dir))
            .await
            .expect("removing deleted instance files does not panic")
    };
    match finished {
        Ok(0) => {}
        Ok(files) => tracing::warn!(files, "removed instance files whose deletion was recorded before a crash"),
        Err(e) => tracing::warn!(error = %e, "cannot remove instance files whose deletion was recorded"),
    }
    let mllp_addr =
        listeners.mllp.local_addr().map_err(|source| RunError::Bind { addr: config.mllp.listen, source })?;
    let http_addr =
        listeners.http.local_addr().map_err(|source| RunError::Bind { addr: config.http.listen, source })?;
    let stopping = CancellationToken::new();
    let tracker = TaskTracker::new();
    let mllp_ctx = Arc::new(MllpContext::new(config.mllp.clone(), log.handle(), metrics.clone(), stopping.clone()));
    tracker.spawn(mllp::serve(listeners.mllp, mllp_ctx, tracker.clone()));
    let dicom_addr =
        listeners.dicom.local_addr().map_err(|source| RunError::Bind { addr: config.dicom.listen, source })?;
    let (stability, notices) = dicom::stability::channel();
    tracker.spawn(dicom::stability::run(
        notices,
        log.handle(),
        log.reader(),
        config.dicom.stable_after,
        config.matching.consolidation_window_for(&config.site.hospital_id),
        metrics.clone(),
        stopping.clone(),
    ));
    let dicom_ctx = Arc::new(DicomContext {
        config: config.dicom.clone(),
        log: log.handle(),
        metrics: metrics.clone(),
        disk: log.disk_guard(),
        layout,
        stability,
        shutdown: stopping.clone(),
    });
    tracker.spawn(dicom::serve(listeners.dicom, dicom_ctx, tracker.clone()));
    let sync_shared = {
        let reader = log.reader();
        let (cursor, epoch, restored_at) = tokio::task::spawn_blocking(move || {
            use crate::sync::cursor;
            Ok::<_, crate::log::ReadError>((
                cursor::cursor(&reader)?,
                cursor::epoch(&reader)?,
                cursor::restored_at(&reader)?,
            ))
        })
        .await
        .expect("reading the sync state does not panic")
        .map_err(|e| WriterFailure(format!("cannot read the sync state: {e}")))?;
        let shared = SyncShared::new(config.sync.hub.as_ref().map(|h| h.url.clone()), cursor);
        shared.update(|s| {
            (s.epoch, s.fork_at, s.restored_at) = (epoch.epoch, epoch.fork_at, restored_at);
        });
        Arc::new(shared)
    };
    let sync_worker = match &config.sync.hub {
        Some(hub) => {
            let transport = sync::HttpTransport::new(
                &hub.url,
                &config.site.edge_id,
                sync_tls.as_ref(),
                config.sync.connect_timeout,
                config.sync.timeout,
            );
            let parts = sync::WorkerParts {
                config: config.sync.clone(),
                transport: Box::new(transport),
                log: log.handle(),
                reader: log.reader(),
                metrics: metrics.clone(),
                shared: sync_shared.clone(),
            };
            Some(sync::spawn(parts, stopping.child_token()).map_err(RunError::SyncThread)?)
        }
        None => None,
    };
    // One backup at a time, and no retention sweep while one is streamed.
    let exclusive = Arc::new(tokio::sync::Semaphore::new(1));
    if let Some(max_age) = config.retention.dicom_max_age {
        let retention = crate::retention::Retention {
            state_dir: config.store.state_dir.clone(),
            max_age,
            max_age_text: config.retention.dicom_max_age_text.clone(),
            log: log.handle(),
            reader: log.reader(),
            metrics: metrics.clone(),
            clock,
            exclusive: exclusive.clone(),
            hub: sync_shared.clone(),
        };
        tracker.spawn(crate::retention::run(retention, config.retention.interval, stopping.clone()));
    }
    let api_state = ApiState {
        reader: log.reader(),
        writer: log.handle().state.clone(),
        log: log.handle(),
        disk: log.disk_guard(),
        metrics: metrics.clone(),
        shutdown: stopping.clone(),
        database_path: config.database_path(),
        edge_id: config.site.edge_id.clone(),
        sync: sync_shared,
        operator_token: config.http.operator_token.clone(),
        backups: exclusive,
    };
    let http = tokio::spawn(api::serve(listeners.http, api_state, config.http.header_timeout));
    let failed = log.handle().state.failed.clone();
    systemd::ready();
    let watchdog = tokio::spawn(systemd::watchdog(log.handle().state.clone()));
    tracing::info!(mllp = %mllp_addr, dicom = %dicom_addr, http = %http_addr, edge = %config.site.edge_id, "zenedge is ready");

    tokio::select! {
        _ = shutdown.cancelled() => tracing::info!("shutting down"),
        _ = failed.cancelled() => tracing::error!("event log failed; shutting down to restart on a clean reopen"),
    }
    systemd::stopping();
    stopping.cancel();
    tracker.close();
    if tokio::time::timeout(config.daemon.shutdown_grace, tracker.wait()).await.is_err() {
        tracing::warn!(grace = ?config.daemon.shutdown_grace, "connections still busy after the grace period; closing anyway");
    }
    watchdog.abort();
    let _ = tokio::time::timeout(config.daemon.shutdown_grace, http).await;
    if let Some(worker) = sync_worker {
        worker.stop(sync::STOP_GRACE).await;
    }
    log.close().await?;
    tracing::info!("event log closed");
    Ok(())
}

/// Checks the sync's TLS files (with a hub over https); warns when the client certificate
/// expires soon.
fn check_sync_tls(config: &Config) -> Result<Option<sync::tls::ClientTls>, RunError> {
    let Some(hub) = &config.sync.hub else { return Ok(None) };
    let now = jiff::Timestamp::now();
    let tls = sync::tls::load(hub, now)?;
    if let Some(warning) = tls.as_ref().and_then(|t| t.expiry_warning(now)) {
        tracing::warn!("{warning}");
    }
    Ok(tls)
}

/// A daemon started below the disk reserve refuses every message and instance: say so once
/// at start, not only on each refusal.
fn warn_if_below_reserve(disk: &crate::log::DiskGuard) {
    use crate::log::human;
    match disk.space() {
        Ok(space) if space.below_reserve() => tracing::warn!(
            free = %human(space.free),
            reserve = %human(space.reserve),
            "free disk space is below store.disk_reserve: HL7 messages get AR and DICOM instances 0xA700 until space \
             is freed"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot measure free disk space: new data is refused until it can be"),
    }
}
