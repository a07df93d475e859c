//! Certificates about to expire: this edge's `[tls]` identity (the one in use, which a reload
//! may have renewed) and the sync's client certificate, checked at start, after each reload and
//! then daily. Each one that ends within 30 days is a security alert
//! ([`AlertKind::CertificateExpiring`]): logged at WARN, counted, and recorded in the audit
//! trail, once per check, so the trail shows it daily until the certificate is renewed.
//! Each check also sets `zenedge_tls_certificate_expiry_timestamp_seconds` for both, so an
//! alert rule can warn ahead of time too.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::security::{AlertKind, Alerts, Facts};
use crate::sync::tls::client_expiry_warning;
use crate::telemetry::Metrics;
use crate::tls::TlsSwitch;

/// How often the certificates are checked after the start.
const EVERY: Duration = Duration::from_secs(24 * 3600);

/// The certificates to watch.
#[derive(Debug, Clone)]
pub(super) struct Certificates {
    /// The `[tls]` identity, if configured.
    pub server: Option<TlsSwitch>,
    /// The sync's client certificate (its file and end), with an https hub.
    pub client: Option<(String, Timestamp)>,
    /// Where their ends are published.
    pub metrics: Arc<Metrics>,
}

impl Certificates {
    /// Raises one alert per certificate that expires within 30 days of `now`.
    pub fn check(&self, alerts: &Alerts, now: Timestamp) {
        if let Some(server) = &self.server {
            self.metrics.certificate_expiry("tls.cert", server.current().not_after);
        }
        if let Some((_, end)) = &self.client {
            self.metrics.certificate_expiry("sync.client_cert", *end);
        }
        let server = self.server.as_ref().and_then(|s| s.current().expiry_warning(now));
        let client = self.client.as_ref().and_then(|(file, end)| client_expiry_warning(file, *end, now));
        for reason in server.into_iter().chain(client) {
            alerts.alert(AlertKind::CertificateExpiring, Facts { reason, ..Facts::default() });
        }
    }

    /// Checks now, then every day until `stopping`.
    pub async fn watch(self, alerts: Alerts, stopping: CancellationToken) {
        loop {
            self.check(&alerts, Timestamp::now());
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = stopping.cancelled() => return,
            }
        }
    }
}
