//! One connection's TLS handshake, under a deadline, with the peer's identity as its result.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use super::TlsSwitch;
use crate::security::{AlertKind, Alerts, Facts, PeerIdentity};

/// What a TLS listener's connections share for their handshakes.
#[derive(Debug, Clone)]
pub struct Handshaker {
    /// The listener, in logs and alerts (`mllp_tls`, `dicom_tls`, `http`).
    pub listener: &'static str,
    /// The identity in use (replaced by reloads).
    pub switch: TlsSwitch,
    /// Client certificates required (MLLP, DICOM) or only verified when presented (HTTPS).
    pub require_client_certificate: bool,
    /// The handshake must be done within this time of the accept.
    pub timeout: Duration,
    pub alerts: Alerts,
    /// A handshake in progress at shutdown is dropped.
    pub shutdown: CancellationToken,
}

impl Handshaker {
    /// Runs the handshake on `stream` from `peer` with the identity in use now. `None`: the
    /// handshake failed, timed out or shutdown began (a security alert says why, except for a
    /// client that closed without a word).
    pub async fn accept(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Option<(TlsStream<TcpStream>, Option<PeerIdentity>)> {
        crate::net::tune(&stream);
        let refused = |reason: String| {
            let facts = Facts::connection(self.listener, peer, reason);
            self.alerts.alert(AlertKind::TlsHandshakeRefused, facts);
            None
        };
        let Some(config) = self.config() else {
            return refused("no tls.client_ca to verify client certificates with".into());
        };
        let handshake = tokio::select! {
            result = tokio::time::timeout(self.timeout, TlsAcceptor::from(config).accept(stream)) => result,
            _ = self.shutdown.cancelled() => return None,
        };
        let tls = match handshake {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                tracing::debug!(listener = self.listener, %peer, "connection closed during the TLS handshake");
                return None;
            }
            Ok(Err(e)) => return refused(format!("TLS handshake refused: {}", crate::tls_words::describe_io(&e))),
            Err(_) => {
                let timeout = self.timeout;
                return refused(format!("TLS handshake not finished within {timeout:?} (tls.handshake_timeout)"));
            }
        };
        let identity =
            tls.get_ref().1.peer_certificates().and_then(|chain| chain.first()).map(|c| PeerIdentity::from_der(c));
        tracing::debug!(listener = self.listener, %peer, identity = identity.as_ref().map(tracing::field::display), "TLS connection");
        Some((tls, identity))
    }

    /// The configuration for a connection accepted now; `None` for a listener that requires
    /// client certificates without a client CA, which the configuration's checks refuse.
    fn config(&self) -> Option<Arc<rustls::ServerConfig>> {
        let tls = self.switch.current();
        if self.require_client_certificate { tls.mutual.clone() } else { Some(tls.https.clone()) }
    }
}
