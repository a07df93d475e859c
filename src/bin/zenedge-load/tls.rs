//! TLS for the load generator: `--tls-ca` (and a client certificate) turns every connection
//! into MLLP over TLS with rustls and ring, as a TLS-capable interface engine would connect.
//! Session resumption is off, so every connection opened is a full handshake.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::BoxError;

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct TlsArgs {
    /// Speak TLS, trusting this CA bundle (PEM) for the receiver's certificate.
    #[arg(long)]
    pub(crate) tls_ca: Option<PathBuf>,
    /// Client certificate chain (PEM) to present.
    #[arg(long, requires = "tls_key", requires = "tls_ca")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// The name the receiver's certificate must carry.
    #[arg(long, default_value = "localhost", requires = "tls_ca")]
    pub(crate) tls_name: String,
}

/// A client TLS set-up, shared by every connection of a run.
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) connector: tokio_rustls::TlsConnector,
    pub(crate) name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Tls {
    /// `None` without `--tls-ca`.
    pub(crate) fn from_args(args: &TlsArgs) -> Result<Option<Tls>, BoxError> {
        let Some(ca) = &args.tls_ca else { return Ok(None) };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("--tls-ca {}: {e}", ca.display()))? {
            roots.add(cert.map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let mut config = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
                builder.with_client_auth_cert(chain, key)?
            }
            _ => builder.with_no_client_auth(),
        };
        config.resumption = rustls::client::Resumption::disabled();
        let name = ServerName::try_from(args.tls_name.clone()).map_err(|e| format!("--tls-name: {e}"))?;
        Ok(Some(Tls { connector: tokio_rustls::TlsConnector::from(Arc::new(config)), name }))
    }
}
