//! The edge's server identity (`[tls]`): its files read and checked, and the rustls server
//! configurations built from them: one that requires a client certificate (MLLP, DICOM) and
//! one that verifies a client certificate when one is presented (HTTPS).

use std::path::Path;
use std::sync::Arc;

use jiff::Timestamp;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::files::{self, CertError, error};
use crate::config::TlsFiles;

/// The `[tls]` identity, checked, as the listeners use it.
pub struct ServerTls {
    /// Client certificates required (MLLP, DICOM); `None` without `tls.client_ca`.
    pub mutual: Option<Arc<ServerConfig>>,
    /// Client certificates verified when presented, not required (HTTPS).
    pub https: Arc<ServerConfig>,
    /// When the edge's certificate expires.
    pub not_after: Timestamp,
    /// SHA-256 of the edge's certificate, hex (logged at start and on reload).
    pub fingerprint: String,
    cert_file: String,
    /// The CRL file and its earliest next update, if any.
    crl_next_update: Option<(String, Timestamp)>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("mutual", &self.mutual.is_some())
            .field("not_after", &self.not_after)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads and checks every `[tls]` file at `now`; every problem found, each naming its key
    /// and file (a file that cannot be read hides nothing of the others).
    pub fn load(files: &TlsFiles, now: Timestamp) -> Result<ServerTls, Vec<CertError>> {
        let mut problems = Vec::new();
        let identity = identity(files, now).map_err(|e| problems.push(e)).ok();
        let roots = files.client_ca.as_deref().map(|ca| files::certificates("tls.client_ca", ca));
        let roots = roots.transpose().map_err(|e| problems.push(e)).ok().flatten();
        let crls = files.crl.as_deref().map(|crl| files::crls("tls.crl", crl).map(|c| (crl, c)));
        let crls = crls.transpose().map_err(|e| problems.push(e)).ok().flatten();
        let (Some(identity), true) = (identity, problems.is_empty()) else {
            return Err(problems);
        };
        let (crl_list, crl_next_update) = match crls {
            Some((path, (list, next))) => (list, next.map(|n| (path.display().to_string(), n))),
            None => (Vec::new(), None),
        };
        let mutual = match (&roots, &files.client_ca) {
            (Some(roots), Some(ca)) => Some(config(&identity, verifier(roots, &crl_list, false, ca, files)?)?),
            _ => None,
        };
        let https_verifier = match (&roots, &files.client_ca) {
            (Some(roots), Some(ca)) => verifier(roots, &crl_list, true, ca, files)?,
            _ => WebPkiClientVerifier::no_client_auth(),
        };
        let mut https = config(&identity, https_verifier)?;
        Arc::get_mut(&mut https).expect("not shared yet").alpn_protocols = vec![b"http/1.1".to_vec()];
        let fingerprint = {
            use sha2::Digest;
            crate::ids::hex(&sha2::Sha256::digest(identity.chain[0].as_ref()))
        };
        let cert_file = files.cert.display().to_string();
        Ok(ServerTls { mutual, https, not_after: identity.not_after, fingerprint, cert_file, crl_next_update })
    }

    /// What an admin should know at `now`: the certificate expires within 30 days, the CRL is
    /// past its next update.
    pub fn warnings(&self, now: Timestamp) -> Vec<String> {
        self.expiry_warning(now).into_iter().chain(self.crl_warning(now)).collect()
    }

    /// A warning when the certificate expires within 30 days of `now`.
    pub fn expiry_warning(&self, now: Timestamp) -> Option<String> {
        files::expiry_warning("tls.cert", &self.cert_file, self.not_after, now, "TLS clients refuse to connect")
    }

    /// A warning when the CRL is past its next update at `now`.
    pub fn crl_warning(&self, now: Timestamp) -> Option<String> {
        let (file, next) = self.crl_next_update.as_ref().filter(|(_, next)| *next < now)?;
        Some(format!(
            "tls.crl ({file}): its next update was due on {next}: get the CA's current CRL (certificates \
             revoked since are still accepted), then reload"
        ))
    }
}

/// The edge's certificate chain and key, checked.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    not_after: Timestamp,
}

/// The certificate chain and key: parseable, the leaf valid now, the key its own.
fn identity(files: &TlsFiles, now: Timestamp) -> Result<Identity, CertError> {
    let chain = files::certificates("tls.cert", &files.cert)?;
    let not_after = files::check_leaf(&chain[0], now).map_err(|problem| error("tls.cert", &files.cert, problem))?;
    let (key, _) = files::private_key("tls.key", &files.key)?;
    files::check_key_matches(&chain, &key, ("tls.cert", &files.cert), ("tls.key", &files.key))?;
    Ok(Identity { chain, key, not_after })
}

/// A client certificate verifier over `roots` and `crls`; `optional`: clients without a
/// certificate are let through (their identity is then none).
fn verifier(
    roots: &[CertificateDer<'static>],
    crls: &[CertificateRevocationListDer<'static>],
    optional: bool,
    ca_file: &Path,
    files: &TlsFiles,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, Vec<CertError>> {
    let mut store = rustls::RootCertStore::empty();
    for (n, cert) in roots.iter().enumerate() {
        store.add(cert.clone()).map_err(|e| {
            vec![error("tls.client_ca", ca_file, format!("certificate {} is not usable as a CA: {e}", n + 1))]
        })?;
    }
    // A CRL revokes what it lists; the certificates of a CA without a CRL in the file are not
    // checked (rather than all refused), and an outdated CRL still applies (with a warning).
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(store), super::provider())
        .with_crls(crls.iter().cloned())
        .allow_unknown_revocation_status();
    if optional {
        builder = builder.allow_unauthenticated();
    }
    builder.build().map_err(|e| {
        let (key, file) = match (&files.crl, &e) {
            (Some(crl), rustls::server::VerifierBuilderError::InvalidCrl(_)) => ("tls.crl", crl.as_path()),
            _ => ("tls.client_ca", ca_file),
        };
        vec![error(key, file, format!("cannot verify client certificates with it: {e}"))]
    })
}

/// TLS 1.2 and 1.3 with ring's suites (ECDHE with AES-GCM and ChaCha20 for RSA and ECDSA keys
/// in TLS 1.2, which is what DCMTK's BCP 195 profiles offer).
fn config(
    identity: &Identity,
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
) -> Result<Arc<ServerConfig>, Vec<CertError>> {
    let problem = |e: rustls::Error| vec![CertError { key: "tls.cert", file: String::new(), problem: e.to_string() }];
    let config = ServerConfig::builder_with_provider(super::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(problem)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(problem)?;
    Ok(Arc::new(config))
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
