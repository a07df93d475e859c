//! Forwarding the audit trail to a syslog collector (`audit.syslog`): every record, in order,
//! as RFC 5424 with MSGID `IHE+RFC-3881` and its DICOM PS3.15 A.5 message
//! ([`crate::audit::syslog`]), over UDP (RFC 5426, one datagram per record) or TLS (RFC 5425,
//! octet-counted frames, the edge presenting the sync's client certificate and checking the
//! collector's against `sync.ca_file` and the target's host name).
//!
//! # Guarantees
//!
//! * **From a cursor that survives restarts.** `meta["audit_syslog_cursor"]`: every record up
//!   to it was handed to the collector's connection. It moves, through the log writer, only
//!   after a batch was written and flushed; a restart or a lost connection sends again from it
//!   (at least once; a collector sees a record twice at worst). Over UDP nothing comes back,
//!   so "handed over" is all the edge can know.
//! * **Intake never waits for the collector.** The forwarder is its own task: it reads the
//!   trail in short read transactions and writes one cursor row per batch. A collector that
//!   is down or slow makes it back off (0.5 s doubling up to 30 s) and the backlog grow,
//!   nothing else.
//! * **Visible.** `zenedge_audit_syslog_backlog` (records not yet forwarded) and
//!   `zenedge_audit_syslog_sent_total`; `/readyz` shows `checks.audit_syslog` (target, cursor,
//!   backlog, last error) without ever turning 503 for it.

mod cursor;
mod transport;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use cursor::{cursor, set_cursor};
pub use transport::client_config;

use crate::audit::{self, AuditSource};
use crate::config::SyslogTarget;
use crate::log::{LogHandle, LogReader};
use crate::projections::Projections;
use crate::telemetry::Metrics;

/// Records sent per batch at most (one cursor write each).
const BATCH: usize = 256;
/// The longest wait between tries while the collector fails.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// The forwarder as `/readyz` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SyslogStatus {
    /// `udp://host:port` or `tls://host:port`.
    pub target: String,
    /// Every record up to here was forwarded.
    pub cursor: u64,
    /// Records in the trail after the cursor.
    pub backlog: u64,
    /// The last failure, while it lasts.
    pub last_error: Option<String>,
}

/// Shared between the forwarder and the API.
pub type SharedStatus = Arc<Mutex<SyslogStatus>>;

/// What the forwarder runs with.
#[derive(Debug)]
pub struct Forwarder {
    pub target: SyslogTarget,
    /// For `tls://`: the sync's identity and CAs.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub source: AuditSource,
    pub log: LogHandle<Projections>,
    pub reader: LogReader,
    pub metrics: Arc<Metrics>,
    pub status: SharedStatus,
}

/// The status a forwarder to `target` starts with.
pub fn status(target: &SyslogTarget, cursor: u64) -> SharedStatus {
    let scheme = match target {
        SyslogTarget::Udp { .. } => "udp",
        SyslogTarget::Tls { .. } => "tls",
    };
    let target = format!("{scheme}://{}", target.address());
    Arc::new(Mutex::new(SyslogStatus { target, cursor, backlog: 0, last_error: None }))
}

impl Forwarder {
    /// Forwards until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut commits = self.log.state.committed.subscribe();
        let mut cursor = self.status.lock().expect("status lock").cursor;
        let mut connection: Option<transport::Connection> = None;
        let mut failures = 0u32;
        let procid = std::process::id();
        while !stop.is_cancelled() {
            let reader = self.reader.clone();
            let page = tokio::task::spawn_blocking(move || {
                Ok::<_, crate::log::ReadError>((audit::page(&reader, cursor, BATCH)?, audit::trail::last_id(&reader)?))
            })
            .await
            .expect("reading the trail does not panic");
            let (page, last) = match page {
                Ok(read) => read,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the audit trail for syslog");
                    (Vec::new(), cursor)
                }
            };
            self.backlog(cursor, last);
            if page.is_empty() {
                tokio::select! {
                    _ = commits.changed() => {}
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(BACKOFF_CAP) => {}
                }
                continue;
            }
            let messages: Vec<Vec<u8>> =
                page.iter().map(|row| audit::syslog::message(row, &self.source, procid)).collect();
            let sent = transport::send(&mut connection, &self.target, self.tls.as_ref(), &messages).await;
            match sent {
                Ok(()) => {
                    failures = 0;
                    cursor = page.last().map_or(cursor, |r| r.id);
                    self.metrics.audit_syslog_sent.inc_by(page.len() as u64);
                    if let Err(e) = set_cursor(&self.log, cursor).await {
                        tracing::warn!(error = %e, "cannot record the syslog cursor; records may be sent again");
                    }
                    self.status.lock().expect("status lock").last_error = None;
                    self.backlog(cursor, last);
                }
                Err(e) => {
                    connection = None;
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(target = %self.status.lock().expect("status lock").target, error = %e, "audit records not forwarded to syslog; retrying");
                    }
                    self.status.lock().expect("status lock").last_error = Some(e);
                    let wait = BACKOFF_CAP.min(Duration::from_millis(500) * 2u32.saturating_pow(failures.min(8) - 1));
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.cancelled() => return,
                    }
                }
            }
        }
    }

    fn backlog(&self, cursor: u64, last: u64) {
        let backlog = last.saturating_sub(cursor);
        self.metrics.audit_syslog_backlog.set(backlog as i64);
        let mut status = self.status.lock().expect("status lock");
        (status.cursor, status.backlog) = (cursor, backlog);
    }
}
