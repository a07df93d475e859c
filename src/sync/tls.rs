//! The sync's TLS files, checked before the daemon reports ready (and by `zenedge
//! check-config`).
//!
//! ureq panics instead of failing when rustls refuses a client certificate (an X.509 v1
//! certificate, a key that does not match). So every file is read and checked here, with a
//! message naming its config key and path, and the last check builds the very rustls
//! client configuration ureq will build: whatever passes [`load`] cannot make ureq panic.
//!
//! * `sync.ca_file`: at least one certificate, every one parseable.
//! * `sync.client_cert`: a chain of parseable certificates; the first (this edge's) is
//!   X.509 v3 and valid now (not expired, not before its start).
//! * `sync.client_key`: a PEM private key that ring supports and that matches the
//!   certificate.

use jiff::Timestamp;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::HubEndpoint;
pub use crate::tls::files::{CertError, EXPIRY_WARNING};
use crate::tls::files::{certificates, check_key_matches, check_leaf, error, expiry_warning, private_key};

/// Checked TLS material for the hub.
pub struct ClientTls {
    /// The CA bundle: the only roots the hub's certificate may chain to.
    pub roots: Vec<CertificateDer<'static>>,
    /// This edge's certificate first, then intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// The same key as ureq takes it.
    pub ureq_key: ureq::tls::PrivateKey<'static>,
    /// When this edge's certificate expires.
    pub not_after: Timestamp,
    /// Its path, for messages.
    pub cert_file: String,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("roots", &self.roots.len())
            .field("chain", &self.chain.len())
            .field("key", &"***")
            .field("not_after", &self.not_after)
            .finish()
    }
}

impl ClientTls {
    /// A warning when the certificate expires within [`EXPIRY_WARNING`] of `now`.
    pub fn expiry_warning(&self, now: Timestamp) -> Option<String> {
        client_expiry_warning(&self.cert_file, self.not_after, now)
    }
}

/// A warning when the sync's client certificate (`cert_file`, ending at `not_after`) expires
/// within [`EXPIRY_WARNING`] of `now`.
pub fn client_expiry_warning(cert_file: &str, not_after: Timestamp, now: Timestamp) -> Option<String> {
    expiry_warning("sync.client_cert", cert_file, not_after, now, "sync stops")
}

/// Reads and checks the hub endpoint's TLS files at `now`; `None` for a plain-http hub.
pub fn load(endpoint: &HubEndpoint, now: Timestamp) -> Result<Option<ClientTls>, CertError> {
    if !endpoint.url.starts_with("https://") {
        return Ok(None);
    }
    let (Some(ca), Some(cert), Some(key)) = (&endpoint.ca_file, &endpoint.client_cert, &endpoint.client_key) else {
        let problem = "an https hub needs sync.ca_file, sync.client_cert and sync.client_key".to_owned();
        return Err(CertError { key: "sync.hub_url", file: endpoint.url.clone(), problem });
    };
    let roots = certificates("sync.ca_file", ca)?;
    let chain = certificates("sync.client_cert", cert)?;
    let not_after = check_leaf(&chain[0], now).map_err(|problem| error("sync.client_cert", cert, problem))?;
    let (key_der, pem) = private_key("sync.client_key", key)?;
    let ureq_key = ureq::tls::PrivateKey::from_pem(&pem)
        .map_err(|e| error("sync.client_key", key, format!("not a valid PEM private key: {e}")))?;
    check_key_matches(&chain, &key_der, ("sync.client_cert", cert), ("sync.client_key", key))?;
    check_client_config(&roots, &chain, &key_der, cert)?;
    Ok(Some(ClientTls { roots, chain, key: key_der, ureq_key, not_after, cert_file: cert.display().to_string() }))
}

/// rustls accepts the whole configuration exactly as ureq will build it.
fn check_client_config(
    roots: &[CertificateDer<'static>],
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    cert_file: &std::path::Path,
) -> Result<(), CertError> {
    let mut store = rustls::RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(roots.iter().cloned());
    if added == 0 {
        return Err(error("sync.ca_file", cert_file, "no certificate in the bundle is usable as a trust anchor"));
    }
    rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| error("sync.client_cert", cert_file, format!("TLS set-up failed: {e}")))?
        .with_root_certificates(store)
        .with_client_auth_cert(chain.to_vec(), key.clone_key())
        .map_err(|e| {
            let problem = crate::tls_words::describe(&e);
            error("sync.client_cert", cert_file, format!("rustls refuses the certificate and key: {problem}"))
        })?;
    Ok(())
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
