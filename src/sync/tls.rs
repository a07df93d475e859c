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

use std::path::Path;

use jiff::Timestamp;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::HubEndpoint;

/// A client certificate this close to expiry gets a warning at start-up.
pub const EXPIRY_WARNING: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

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
        let left = self.not_after.duration_since(now);
        let soon = jiff::SignedDuration::try_from(EXPIRY_WARNING).unwrap_or(jiff::SignedDuration::MAX);
        (left < soon).then(|| {
            let within = match left.as_secs().max(0) / 86_400 {
                0 => "less than a day".to_owned(),
                1 => "1 day".to_owned(),
                days => format!("{days} days"),
            };
            format!(
                "sync.client_cert ({}): the certificate expires on {} (in {within}); renew it before then or sync stops",
                self.cert_file, self.not_after,
            )
        })
    }
}

/// A TLS file that cannot be used, with its config key and path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} ({file}): {problem}")]
pub struct CertError {
    pub key: &'static str,
    pub file: String,
    pub problem: String,
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
    let (key_der, ureq_key) = private_key(key)?;
    check_pair(&roots, &chain, &key_der, cert, key)?;
    Ok(Some(ClientTls { roots, chain, key: key_der, ureq_key, not_after, cert_file: cert.display().to_string() }))
}

fn error(key: &'static str, file: &Path, problem: impl Into<String>) -> CertError {
    CertError { key, file: file.display().to_string(), problem: problem.into() }
}

/// Every certificate of a PEM file, each parseable as X.509; at least one.
fn certificates(key: &'static str, file: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bytes = std::fs::read(file).map_err(|e| error(key, file, format!("cannot read the file: {e}")))?;
    let mut out = Vec::new();
    for item in CertificateDer::pem_slice_iter(&bytes) {
        let der = item.map_err(|e| error(key, file, format!("not valid PEM: {e}")))?;
        if let Err(e) = x509_parser::parse_x509_certificate(&der) {
            return Err(error(key, file, format!("certificate {} does not parse as X.509: {e}", out.len() + 1)));
        }
        out.push(der);
    }
    if out.is_empty() {
        return Err(error(key, file, "holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\")"));
    }
    Ok(out)
}

/// The edge's own certificate: v3 and valid at `now`. Returns its expiry.
fn check_leaf(der: &CertificateDer<'_>, now: Timestamp) -> Result<Timestamp, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| format!("does not parse as X.509: {e}"))?;
    if cert.version() != x509_parser::x509::X509Version::V3 {
        return Err(format!(
            "the certificate is X.509 version {}; TLS client certificates must be version 3",
            cert.version().0 + 1
        ));
    }
    let time = |t: &x509_parser::time::ASN1Time| Timestamp::from_second(t.timestamp()).unwrap_or(Timestamp::MAX);
    let (not_before, not_after) = (time(&cert.validity().not_before), time(&cert.validity().not_after));
    if now > not_after {
        return Err(format!("the certificate expired on {not_after}"));
    }
    if now < not_before {
        return Err(format!("the certificate is not valid before {not_before} (check this machine's clock)"));
    }
    Ok(not_after)
}

/// The key, for rustls and for ureq (which takes it only as PEM).
fn private_key(file: &Path) -> Result<(PrivateKeyDer<'static>, ureq::tls::PrivateKey<'static>), CertError> {
    use rustls::pki_types::pem::Error;
    let bytes =
        std::fs::read(file).map_err(|e| error("sync.client_key", file, format!("cannot read the file: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        let problem = match e {
            Error::NoItemsFound => "holds no private key (expected PEM \"-----BEGIN PRIVATE KEY-----\")".into(),
            other => format!("not a valid PEM private key: {other}"),
        };
        error("sync.client_key", file, problem)
    })?;
    let for_ureq = ureq::tls::PrivateKey::from_pem(&bytes)
        .map_err(|e| error("sync.client_key", file, format!("not a valid PEM private key: {e}")))?;
    Ok((key, for_ureq))
}

/// The key is one ring can sign with, it belongs to the certificate, and rustls accepts
/// the whole configuration exactly as ureq will build it.
fn check_pair(
    roots: &[CertificateDer<'static>],
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    cert_file: &Path,
    key_file: &Path,
) -> Result<(), CertError> {
    let signing = rustls::crypto::ring::sign::any_supported_type(key)
        .map_err(|e| error("sync.client_key", key_file, format!("unsupported private key: {e}")))?;
    rustls::sign::CertifiedKey::new(chain.to_vec(), signing).keys_match().map_err(|e| {
        let problem = crate::tls_words::describe(&e);
        error(
            "sync.client_key",
            key_file,
            format!("{problem} (the certificate: sync.client_cert, {})", cert_file.display()),
        )
    })?;
    let mut store = rustls::RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(roots.iter().cloned());
    if added == 0 {
        return Err(error("sync.ca_file", cert_file, "no certificate in the bundle is usable as a trust anchor"));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
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
#[path = "tls_test_certs.rs"]
pub(crate) mod test_certs;

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
