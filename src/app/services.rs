//! The services of the running daemon, started by [`super::run`] once the log is open and
//! the state directory tidied ([`super::start`]): the listeners, TLS reloads, the sync, the
//! forwarders, retention, the audit trail's forwarder and retention, the value dictionary's
//! trainer and the HTTP API. Each is a task on the shared tracker that shutdown waits for.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::RunError;
use super::activity;
use crate::activity::Listener;
use crate::api::ApiState;
use crate::config::{Config, SyslogTarget};
use crate::dicom::{self, DicomContext};
use crate::log::{Clock, Log, ReadError, WriterFailure};
use crate::mllp::{self, MllpContext};
use crate::projections::Projections;
use crate::security::{AlertKind, Alerts, Facts};
use crate::sync::{self, SyncShared};
use crate::telemetry::Metrics;
use crate::tls::{Handshaker, TlsSwitch};

/// What every service is started with.
pub(super) struct Started<'a> {
    pub config: &'a Config,
    pub log: &'a Log<Projections>,
    pub metrics: &'a Arc<Metrics>,
    /// Where every security alert goes.
    pub alerts: &'a Alerts,
    /// The `[tls]` identity, if configured.
    pub tls: Option<&'a TlsSwitch>,
    /// Cancelled when shutdown begins.
    pub stopping: &'a CancellationToken,
    /// The tasks shutdown waits for.
    pub tracker: &'a TaskTracker,
}

impl Started<'_> {
    /// The handshakes of the TLS listener `name`; `None` without a `[tls]` identity.
    pub fn handshaker(&self, name: &'static str, require_client_certificate: bool) -> Option<Handshaker> {
        Some(Handshaker {
            listener: name,
            switch: self.tls?.clone(),
            require_client_certificate,
            timeout: self.config.tls.handshake_timeout,
            alerts: self.alerts.clone(),
            shutdown: self.stopping.clone(),
        })
    }

    /// The MLLP accept loops, plain and TLS.
    pub fn mllp(&self, plain: Option<TcpListener>, tls: Option<TcpListener>) {
        let (config, log) = (self.config.mllp.clone(), self.log.handle());
        let (metrics, alerts) = (self.metrics.clone(), self.alerts.clone());
        let ctx = Arc::new(MllpContext::new(config, log, metrics, alerts, self.stopping.clone()));
        if let Some(listener) = plain {
            let address = activity::address(&listener);
            let serve = mllp::serve(listener, ctx.clone(), self.tracker.clone());
            self.tracker.spawn(activity::accepting(self.metrics.clone(), Listener::Mllp, address, serve));
        }
        if let (Some(listener), Some(handshaker)) = (tls, self.handshaker("mllp_tls", true)) {
            let address = activity::address(&listener);
            let serve = mllp::serve_tls(listener, ctx, self.tracker.clone(), handshaker);
            self.tracker.spawn(activity::accepting(self.metrics.clone(), Listener::MllpTls, address, serve));
        }
    }

    /// The study completion timers and the DICOM accept loops, plain and TLS.
    /// Starts the DICOM listeners and what they share; returns the flusher's failure token
    /// (raised when instance files could not be flushed: the daemon must stop).
    pub fn dicom(
        &self,
        plain: Option<TcpListener>,
        tls: Option<TcpListener>,
        layout: dicom::Layout,
    ) -> Result<CancellationToken, RunError> {
        let flusher = dicom::Flusher::start(layout.clone(), self.log.handle(), self.metrics.clone())
            .map_err(|source| RunError::Instances { path: layout.instances(), source })?;
        let failed = flusher.failed.clone();
        let (stability, notices) = dicom::stability::channel();
        self.tracker.spawn(dicom::stability::run(
            notices,
            self.log.handle(),
            self.log.reader(),
            self.config.dicom.stable_after,
            self.config.matching.consolidation_window_for(&self.config.site.hospital_id),
            self.metrics.clone(),
            self.stopping.clone(),
        ));
        let ctx = Arc::new(DicomContext {
            config: self.config.dicom.clone(),
            log: self.log.handle(),
            reader: self.log.reader(),
            edge_id: self.config.site.edge_id.clone(),
            metrics: self.metrics.clone(),
            alerts: self.alerts.clone(),
            disk: self.log.disk_guard(),
            layout,
            flusher,
            stability,
            shutdown: self.stopping.clone(),
        });
        let mut worklist = Vec::new();
        if let Some(listener) = plain {
            let address = activity::address(&listener);
            worklist.push(address.clone());
            let serve = dicom::serve(listener, ctx.clone(), self.tracker.clone());
            self.tracker.spawn(activity::accepting(self.metrics.clone(), Listener::Dicom, address, serve));
        }
        if let (Some(listener), Some(handshaker)) = (tls, self.handshaker("dicom_tls", true)) {
            let address = activity::address(&listener);
            worklist.push(address.clone());
            let serve = dicom::serve_tls(listener, ctx, self.tracker.clone(), handshaker);
            self.tracker.spawn(activity::accepting(self.metrics.clone(), Listener::DicomTls, address, serve));
        }
        // The worklist is served on the DICOM listeners, by their accept loops.
        if self.config.dicom.worklist && !worklist.is_empty() {
            self.metrics.activity.opened(Listener::Worklist, worklist.join(", "));
        }
        Ok(failed)
    }

    /// Reloads the `[tls]` files each time `reload` is notified, until shutdown.
    pub fn reloads(&self, reload: Option<Arc<tokio::sync::Notify>>) {
        let Some(reload) = reload else { return };
        let (switch, alerts, stopping) = (self.tls.cloned(), self.alerts.clone(), self.stopping.clone());
        let metrics = self.metrics.clone();
        self.tracker.spawn(async move {
            loop {
                tokio::select! {
                    _ = reload.notified() => {}
                    _ = stopping.cancelled() => return,
                }
                match &switch {
                    Some(switch) => {
                        if reload_tls(switch, &alerts).await {
                            let watched = super::expiry::Certificates {
                                server: Some(switch.clone()),
                                client: None,
                                metrics: metrics.clone(),
                            };
                            watched.check(&alerts, jiff::Timestamp::now());
                        }
                    }
                    None => tracing::info!("reload requested: no [tls] identity is configured, nothing to reload"),
                }
            }
        });
    }

    /// The sync's state as the log holds it, shared by the worker, the API and retention.
    pub async fn sync_state(&self) -> Result<Arc<SyncShared>, RunError> {
        let reader = self.log.reader();
        let (cursor, epoch, restored_at) = tokio::task::spawn_blocking(move || {
            use crate::sync::cursor;
            Ok::<_, ReadError>((cursor::cursor(&reader)?, cursor::epoch(&reader)?, cursor::restored_at(&reader)?))
        })
        .await
        .expect("reading the sync state does not panic")
        .map_err(|e| WriterFailure(format!("cannot read the sync state: {e}")))?;
        let shared = SyncShared::new(self.config.sync.hub.as_ref().map(|h| h.url.clone()), cursor);
        shared.update(|s| {
            (s.epoch, s.fork_at, s.restored_at) = (epoch.epoch, epoch.fork_at, restored_at);
        });
        Ok(Arc::new(shared))
    }

    /// The sync worker's thread, with a hub configured.
    pub fn sync(
        &self,
        tls: Option<sync::tls::ClientTls>,
        shared: &Arc<SyncShared>,
    ) -> Result<Option<sync::SyncWorker>, RunError> {
        let Some(hub) = &self.config.sync.hub else { return Ok(None) };
        let c = &self.config.sync;
        let transport =
            sync::HttpTransport::new(&hub.url, &self.config.site.edge_id, tls.as_ref(), c.connect_timeout, c.timeout);
        let parts = sync::WorkerParts {
            config: c.clone(),
            transport: Box::new(transport),
            log: self.log.handle(),
            reader: self.log.reader(),
            metrics: self.metrics.clone(),
            shared: shared.clone(),
        };
        Ok(Some(sync::spawn(parts, self.stopping.child_token()).map_err(RunError::SyncThread)?))
    }

    /// One forwarding worker thread per `[[forward.destinations]]`.
    pub fn forward(&self) -> Result<(Arc<crate::forward::ForwardShared>, Vec<std::thread::JoinHandle<()>>), RunError> {
        let destinations = &self.config.forward.destinations;
        let shared = Arc::new(crate::forward::ForwardShared::new(destinations));
        let parts = crate::forward::ForwardParts {
            state_dir: self.config.store.state_dir.clone(),
            log: self.log.handle(),
            reader: self.log.reader(),
            metrics: self.metrics.clone(),
            shared: shared.clone(),
        };
        let threads =
            crate::forward::spawn(destinations, parts, self.stopping.clone()).map_err(RunError::SyncThread)?;
        Ok((shared, threads))
    }

    /// The retention sweep, with `retention.dicom_max_age` set: files go once every required
    /// forwarding destination confirmed them (none configured: nothing goes).
    pub fn retention(&self, clock: Clock, exclusive: &Arc<tokio::sync::Semaphore>, layout: dicom::Layout) {
        let Some(max_age) = self.config.retention.dicom_max_age else { return };
        let retention = crate::retention::Retention {
            layout,
            max_age,
            max_age_text: self.config.retention.dicom_max_age_text.clone(),
            log: self.log.handle(),
            reader: self.log.reader(),
            metrics: self.metrics.clone(),
            clock,
            exclusive: exclusive.clone(),
            required: self.config.forward.required(),
            before_unlink: None,
        };
        self.tracker.spawn(crate::retention::run(retention, self.config.retention.interval, self.stopping.clone()));
    }

    /// Scheduled backups, with `backup.dir` set; their live state either way.
    pub fn backups(&self, exclusive: &Arc<tokio::sync::Semaphore>) -> Arc<crate::backups::BackupShared> {
        let shared = Arc::new(crate::backups::BackupShared::new(&self.config.backup));
        if self.config.backup.dir.is_some() {
            let scheduler = crate::backups::Scheduler {
                config: self.config.backup.clone(),
                state_dir: self.config.store.state_dir.clone(),
                edge_id: self.config.site.edge_id.clone(),
                reader: self.log.reader(),
                log: self.log.handle(),
                disk: self.log.disk_guard(),
                metrics: self.metrics.clone(),
                shared: shared.clone(),
                exclusive: exclusive.clone(),
            };
            self.tracker.spawn(scheduler.run(self.stopping.clone()));
        }
        shared
    }

    /// The audit trail's syslog forwarder, with `audit.syslog` set; its status for `/readyz`.
    pub async fn syslog(
        &self,
        tls: Option<&sync::tls::ClientTls>,
    ) -> Result<Option<crate::syslog::SharedStatus>, RunError> {
        let Some(target) = &self.config.audit.syslog else { return Ok(None) };
        let tls = match (target, tls) {
            (SyslogTarget::Udp { .. }, _) => None,
            (SyslogTarget::Tls { .. }, Some(tls)) => Some(crate::syslog::client_config(tls).map_err(|e| {
                let problem = format!("the sync's TLS identity is unusable for syslog: {e}");
                RunError::SyncTls(sync::tls::CertError { key: "audit.syslog", file: target.address(), problem })
            })?),
            (SyslogTarget::Tls { .. }, None) => {
                let problem = "tls:// needs the sync's TLS identity (an https sync.hub_url with its files)".to_owned();
                return Err(RunError::SyncTls(sync::tls::CertError {
                    key: "audit.syslog",
                    file: target.address(),
                    problem,
                }));
            }
        };
        let reader = self.log.reader();
        let cursor = tokio::task::spawn_blocking(move || crate::syslog::cursor(&reader))
            .await
            .expect("reading the syslog cursor does not panic")
            .map_err(|e| WriterFailure(format!("cannot read the syslog cursor: {e}")))?;
        let status = crate::syslog::status(target, cursor);
        let forwarder = crate::syslog::Forwarder {
            target: target.clone(),
            tls,
            source: self.audit_source(),
            log: self.log.handle(),
            reader: self.log.reader(),
            metrics: self.metrics.clone(),
            status: status.clone(),
        };
        self.tracker.spawn(forwarder.run(self.stopping.clone()));
        Ok(Some(status))
    }

    /// Prunes the audit trail: records older than `audit.retention`, already forwarded to
    /// syslog (when it is on) and already stored by the hub (when the sync is on).
    /// Trains (and retrains) the compression dictionary of event values in the background.
    pub fn value_dictionary(&self) {
        let trainer = crate::log::dictionary::Trainer {
            reader: self.log.reader(),
            log: self.log.handle(),
            after: self.config.store.value_dictionary_after,
            metrics: self.metrics.clone(),
        };
        self.tracker.spawn(trainer.run(self.stopping.clone()));
    }

    pub fn audit_retention(&self) {
        let (log, reader, stop) = (self.log.handle(), self.log.reader(), self.stopping.clone());
        let keep = self.config.audit.retention;
        let (forwarded, synced) = (self.config.audit.syslog.is_some(), self.config.sync.hub.is_some());
        let interval = (keep / 24).clamp(std::time::Duration::from_secs(1), std::time::Duration::from_secs(3600));
        self.tracker.spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.cancelled() => return,
                }
                let reader = reader.clone();
                let bound = tokio::task::spawn_blocking(move || {
                    let syslog = if forwarded { Some(crate::syslog::cursor(&reader)?) } else { None };
                    let hub = if synced { Some(sync::audit_cursor::cursor(&reader)?) } else { None };
                    Ok::<_, ReadError>(crate::audit::retention::bound(syslog, hub))
                });
                let Ok(Ok(upto)) = bound.await else { continue };
                let Ok(keep) = jiff::SignedDuration::try_from(keep) else { return };
                let Ok(before) = jiff::Timestamp::now().checked_sub(keep) else { continue };
                match crate::audit::retention::prune(&log, before, upto).await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "audit records past audit.retention removed"),
                    Err(e) => tracing::warn!(error = %e, "audit records past audit.retention not removed"),
                }
            }
        });
    }

    fn audit_source(&self) -> crate::audit::AuditSource {
        crate::audit::AuditSource {
            source_id: self.config.site.edge_id.clone(),
            site_id: self.config.site.hospital_id.clone(),
        }
    }

    /// The free disk space sampled and the listeners' activity saved every minute.
    pub fn activity(&self) {
        let (dir, metrics) = (self.config.store.state_dir.clone(), self.metrics.clone());
        self.tracker.spawn(activity::sample(dir, metrics, self.log.disk_guard(), self.stopping.clone()));
    }

    /// What the HTTP API reads and acts through.
    pub fn api(
        &self,
        sync: Arc<SyncShared>,
        forward: Arc<crate::forward::ForwardShared>,
        backups: Arc<tokio::sync::Semaphore>,
        scheduled_backups: Arc<crate::backups::BackupShared>,
        syslog: Option<crate::syslog::SharedStatus>,
        journal: crate::audit::Journal,
    ) -> ApiState {
        let local = crate::operator::local_token::open(&self.config.store.state_dir);
        ApiState {
            reader: self.log.reader(),
            writer: self.log.handle().state.clone(),
            log: self.log.handle(),
            disk: self.log.disk_guard(),
            metrics: self.metrics.clone(),
            shutdown: self.stopping.clone(),
            database_path: self.config.database_path(),
            edge_id: self.config.site.edge_id.clone(),
            audit_source: self.audit_source(),
            syslog,
            sync,
            forward,
            access: Arc::new(crate::api::AccessControl::new(&self.config.http, local)),
            backups,
            scheduled_backups,
            journal: self.config.audit.journal.then_some(journal),
        }
    }
}

/// Reads the `[tls]` files again; puts them in use only if all are usable. Either way the
/// audit trail records it (Security Alert, Security Configuration). Returns whether the new
/// files are in use.
async fn reload_tls(switch: &TlsSwitch, alerts: &Alerts) -> bool {
    let candidate = switch.clone();
    let now = jiff::Timestamp::now();
    let result = tokio::task::spawn_blocking(move || candidate.reload(now)).await.expect("reloading does not panic");
    match result {
        Ok(tls) => {
            tracing::info!(sha256 = %tls.fingerprint, not_after = %tls.not_after, "TLS identity reloaded: new connections use it");
            if let Some(warning) = tls.crl_warning(now) {
                tracing::warn!("{warning}");
            }
            let reason =
                format!("new [tls] files in use: certificate sha256={} until {}", tls.fingerprint, tls.not_after);
            alerts.alert(AlertKind::ConfigurationReloaded, Facts { reason, ..Facts::default() });
            true
        }
        Err(problems) => {
            let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            let reason = format!("TLS files not reloaded, the identity in use stays: {}", problems.join("; "));
            alerts.alert(AlertKind::ConfigurationReloadFailed, Facts { reason, ..Facts::default() });
            false
        }
    }
}
