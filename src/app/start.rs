//! The phases of [`super::run`] before the services start, one function each: check the TLS
//! files, open the log, tidy what a crash left in the state directory, resolve the addresses.
//! The services themselves are [`super::services`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::{Listeners, RunError};
use crate::config::Config;
use crate::dicom;
use crate::log::{DiskGuard, FaultInjector, Log, LogOptions, Store, WriterFailure, human};
use crate::projections::{self, Projections};
use crate::sync;
use crate::telemetry::Metrics;
use crate::tls::{ServerTls, TlsSwitch};

/// Checks the sync's TLS files (with a hub over https).
pub(super) fn check_sync_tls(config: &Config) -> Result<Option<sync::tls::ClientTls>, RunError> {
    let Some(hub) = &config.sync.hub else { return Ok(None) };
    let now = jiff::Timestamp::now();
    // A certificate about to expire is a security alert, raised once the audit trail is open
    // (see `super::expiry`).
    Ok(sync::tls::load(hub, now)?)
}

/// Checks the `[tls]` files (with TLS listeners configured); warns when the CRL is outdated.
pub(super) fn check_server_tls(config: &Config) -> Result<Option<TlsSwitch>, RunError> {
    let Some(files) = &config.tls.files else { return Ok(None) };
    let now = jiff::Timestamp::now();
    let tls = ServerTls::load(files, now).map_err(RunError::Tls)?;
    // An expiring certificate is a security alert once the trail is open (`super::expiry`).
    if let Some(warning) = tls.crl_warning(now) {
        tracing::warn!("{warning}");
    }
    tracing::info!(certificate = %files.cert.display(), sha256 = %tls.fingerprint, not_after = %tls.not_after, "TLS identity loaded");
    Ok(Some(TlsSwitch::new(files.clone(), tls)))
}

/// The file (schema version, site, every table the projections and the sync keep), the
/// projections level with the log, then the writer applying them.
pub(super) async fn open_log(
    options: LogOptions,
    metrics: Arc<Metrics>,
    faults: Option<FaultInjector>,
) -> Result<Log<Projections>, RunError> {
    let opened = tokio::task::spawn_blocking(move || {
        let schema =
            projections::schema().with(sync::tables()).with(crate::audit::tables()).with(crate::forward::tables());
        let store = Store::open(&options, schema, faults)?;
        projections::catch_up(&store)?;
        store.start(Projections, metrics)
    })
    .await
    .expect("opening the log does not panic");
    Ok(opened?)
}

/// Records the daemon's start or stop (Application Activity) in the audit trail, durably.
/// Below the disk reserve it is left out (with a warning): the daemon must come up on a full
/// disk to refuse intake.
pub(super) async fn audit_activity(config: &Config, log: &Log<Projections>, started: bool) -> Result<(), RunError> {
    if log.disk_guard().space().is_ok_and(|space| space.below_reserve()) {
        tracing::warn!(started, "disk reserve reached: the audit record of this start or stop is not written");
        return Ok(());
    }
    let record = crate::audit::kinds::application_activity(&config.site.edge_id, started, jiff::Timestamp::now());
    match crate::audit::record(&log.handle(), vec![record]).await {
        Ok(()) => Ok(()),
        Err(e @ crate::log::AppendError::DiskReserve { .. }) => {
            tracing::warn!(error = %e, started, "the audit record of this start or stop is not written");
            Ok(())
        }
        Err(e) => Err(RunError::Writer(WriterFailure(format!("cannot write the audit trail: {e}")))),
    }
}

/// A daemon started below the disk reserve refuses every message and instance: say so once
/// at start, not only on each refusal.
pub(super) fn warn_if_below_reserve(disk: &DiskGuard) {
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

/// Removes what a crash left: partly received instances, instance files put in place but
/// never recorded, database copies of an interrupted backup, and instance files whose
/// deletion was recorded but not done. Runs before the listeners accept.
pub(super) async fn tidy_state_dir(
    config: &Config,
    layout: &dicom::Layout,
    log: &Log<Projections>,
) -> Result<(), RunError> {
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
    let orphans = {
        let (layout, reader) = (layout.clone(), log.reader());
        tokio::task::spawn_blocking(move || dicom::orphans::sweep(&layout, &reader))
            .await
            .expect("sweeping unrecorded instance files does not panic")
    };
    match orphans {
        Ok(swept) if swept.removed > 0 => tracing::warn!(
            files = swept.removed,
            examined = swept.examined,
            "removed DICOM instance files no event names (put in place before a crash, never recorded)"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot sweep DICOM instance files no event names"),
    }
    match crate::operator::snapshot::sweep(&config.store.state_dir) {
        Ok(0) => {}
        Ok(copies) => tracing::warn!(copies, "removed database copies left by an interrupted backup"),
        Err(e) => tracing::warn!(error = %e, "cannot remove the copies of an interrupted backup"),
    }
    let finished = {
        let (reader, layout) = (log.reader(), layout.clone());
        tokio::task::spawn_blocking(move || crate::retention::unlink_deleted(&reader, &layout))
            .await
            .expect("removing deleted instance files does not panic")
    };
    match finished {
        Ok(0) => {}
        Ok(files) => tracing::warn!(files, "removed instance files whose deletion was recorded before a crash"),
        Err(e) => tracing::warn!(error = %e, "cannot remove instance files whose deletion was recorded"),
    }
    Ok(())
}

/// Where the listeners answer (port 0 resolved), for the ready line.
pub(super) struct Addresses {
    pub mllp: Address,
    pub mllp_tls: Address,
    pub dicom: Address,
    pub dicom_tls: Address,
    pub http: SocketAddr,
}

/// A listener's address, or `off`.
pub(super) struct Address(Option<SocketAddr>);

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => write!(f, "off"),
        }
    }
}

impl Addresses {
    pub fn of(config: &Config, listeners: &Listeners) -> Result<Addresses, RunError> {
        let at = |listener: &TcpListener, addr: SocketAddr| {
            listener.local_addr().map_err(|source| RunError::Bind { addr, source })
        };
        let some = |listener: &Option<TcpListener>, addr: Option<SocketAddr>| match (listener, addr) {
            (Some(listener), Some(addr)) => at(listener, addr).map(|a| Address(Some(a))),
            _ => Ok(Address(None)),
        };
        Ok(Addresses {
            mllp: some(&listeners.mllp, config.mllp.listen)?,
            mllp_tls: some(&listeners.mllp_tls, config.mllp.tls_listen)?,
            dicom: some(&listeners.dicom, config.dicom.listen)?,
            dicom_tls: some(&listeners.dicom_tls, config.dicom.tls_listen)?,
            http: at(&listeners.http, config.http.listen)?,
        })
    }
}
