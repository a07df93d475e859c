//! Security alerts: one function, [`Alerts::alert`], that every listener calls.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use super::PeerIdentity;
use crate::telemetry::Metrics;

/// What happened; the label of `zenedge_security_alerts_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    /// A TLS handshake failed on a listener: no client certificate, an expired, revoked or
    /// foreign one, a client that is not speaking TLS, or one too slow to finish.
    TlsHandshakeRefused,
    /// A connection from a source address the listener's allow-list does not hold.
    SourceAddressRefused,
    /// An HL7 message sent as an MSH-3/MSH-4 its connection's identity may not send as.
    SenderNotAllowed,
    /// A DICOM calling AE title presented without the certificate it is bound to.
    CallingAeSpoofed,
    /// A reload (SIGHUP) found unusable files: the configuration in use stays.
    ConfigurationReloadFailed,
    /// A reload (SIGHUP) put new files in use: recorded (the security configuration changed),
    /// logged at INFO.
    ConfigurationReloaded,
    /// One of this edge's certificates (the `[tls]` identity, the sync's client certificate)
    /// expires within 30 days: checked at start and daily.
    CertificateExpiring,
}

impl AlertKind {
    /// The metric label and the `alert` field of the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::TlsHandshakeRefused => "tls_handshake_refused",
            AlertKind::SourceAddressRefused => "source_address_refused",
            AlertKind::SenderNotAllowed => "sender_not_allowed",
            AlertKind::CallingAeSpoofed => "calling_ae_spoofed",
            AlertKind::ConfigurationReloadFailed => "configuration_reload_failed",
            AlertKind::ConfigurationReloaded => "configuration_reloaded",
            AlertKind::CertificateExpiring => "certificate_expiring",
        }
    }

    /// Whether an operator must act (ERROR) rather than look (WARN).
    fn operator_must_act(self) -> bool {
        self == AlertKind::ConfigurationReloadFailed
    }

    /// Whether this is a change that went well (the record's outcome is a success; INFO).
    pub fn is_success(self) -> bool {
        self == AlertKind::ConfigurationReloaded
    }
}

/// The facts of one alert: where, who, why. Never patient data: addresses, AE titles,
/// MSH-3/MSH-4, certificate names and fingerprints, file names, reasons in words.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The listener it happened on (`mllp`, `mllp_tls`, `dicom`, `dicom_tls`, `http`), if any.
    pub listener: Option<&'static str>,
    /// The remote address, if a connection is involved.
    pub peer: Option<SocketAddr>,
    /// The connection's verified client certificate, if it presented one.
    pub identity: Option<PeerIdentity>,
    /// Why, in an admin's words.
    pub reason: String,
    /// Further facts by name (`calling_ae`, `sending_application`…).
    pub details: Vec<(&'static str, String)>,
}

impl Facts {
    /// Facts of a connection on `listener` from `peer`.
    pub fn connection(listener: &'static str, peer: SocketAddr, reason: impl Into<String>) -> Facts {
        Facts { listener: Some(listener), peer: Some(peer), reason: reason.into(), ..Facts::default() }
    }

    /// With the connection's identity.
    pub fn identity(mut self, identity: Option<&PeerIdentity>) -> Facts {
        self.identity = identity.cloned();
        self
    }

    /// With one more named fact.
    pub fn detail(mut self, name: &'static str, value: impl Into<String>) -> Facts {
        self.details.push((name, value.into()));
        self
    }
}

/// Where alerts go besides the log and the metric: the audit trail (`crate::audit`), which
/// lives in a layer above this one and is handed in by the composition root.
pub trait AlertRecorder: Send + Sync + std::fmt::Debug {
    /// Queues the alert's record; the receiver, if any, is answered once it is durable.
    fn record(&self, kind: AlertKind, facts: &Facts) -> Option<tokio::sync::oneshot::Receiver<()>>;
}

/// Where alerts go: the log, the metric, and the audit trail when one records them.
#[derive(Debug, Clone)]
pub struct Alerts {
    metrics: Arc<Metrics>,
    recorder: Option<Arc<dyn AlertRecorder>>,
}

impl Alerts {
    pub fn new(metrics: Arc<Metrics>) -> Alerts {
        Alerts { metrics, recorder: None }
    }

    /// The same alerts, each also recorded by `recorder`.
    pub fn recording(self, recorder: Arc<dyn AlertRecorder>) -> Alerts {
        Alerts { recorder: Some(recorder), ..self }
    }

    /// Records one security alert: counted by kind, logged with its facts, queued for the
    /// audit trail.
    pub fn alert(&self, kind: AlertKind, facts: Facts) {
        let _ = self.raise(kind, facts);
    }

    /// [`Alerts::alert`], returning once the audit trail holds its record (at once without a
    /// trail, or when the record could not be queued): for refusals whose answer should follow
    /// the record, as an acknowledgement follows its commit.
    pub async fn alert_recorded(&self, kind: AlertKind, facts: Facts) {
        if let Some(durable) = self.raise(kind, facts) {
            let _ = durable.await;
        }
    }

    fn raise(&self, kind: AlertKind, facts: Facts) -> Option<tokio::sync::oneshot::Receiver<()>> {
        self.metrics.security_alert(kind.as_str());
        let mut details = String::new();
        for (name, value) in &facts.details {
            let sep = if details.is_empty() { "" } else { " " };
            let _ = write!(details, "{sep}{name}={value:?}");
        }
        let peer = facts.peer.map(tracing::field::display);
        let identity = facts.identity.as_ref().map(tracing::field::display);
        let details = (!details.is_empty()).then_some(details);
        let (alert, listener, reason) = (kind.as_str(), facts.listener, facts.reason.as_str());
        if kind.operator_must_act() {
            tracing::error!(alert, listener, peer, identity, details, reason, "security alert");
        } else if kind.is_success() {
            tracing::info!(alert, listener, peer, identity, details, reason, "security configuration changed");
        } else {
            tracing::warn!(alert, listener, peer, identity, details, reason, "security alert");
        }
        self.recorder.as_ref().and_then(|r| r.record(kind, &facts))
    }
}

#[cfg(test)]
#[path = "alert_tests.rs"]
mod tests;
