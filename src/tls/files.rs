//! Reading TLS files and checking them before any connection needs them, with a message
//! naming the config key and the path of whatever is wrong.
//!
//! * certificates: PEM, at least one, every one parseable as X.509;
//! * a leaf (the edge's own certificate, as client or as server): X.509 v3 and valid now;
//! * a private key: PEM (PKCS#8, PKCS#1 or SEC1), of a type ring signs with, and the key of
//!   the leaf's public key;
//! * CRLs: PEM (`-----BEGIN X509 CRL-----`), each parseable, with its next update for the
//!   warning when it has passed.

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

/// A certificate this close to expiry gets a warning (at start, in `check-config`, on reload).
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// A TLS file that cannot be used, with its config key and path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} ({file}): {problem}")]
pub struct CertError {
    pub key: &'static str,
    pub file: String,
    pub problem: String,
}

/// A [`CertError`] of `key` and `file`.
pub fn error(key: &'static str, file: &Path, problem: impl Into<String>) -> CertError {
    CertError { key, file: file.display().to_string(), problem: problem.into() }
}

fn read(key: &'static str, file: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(file).map_err(|e| error(key, file, format!("cannot read the file: {e}")))
}

/// Every certificate of a PEM file, each parseable as X.509; at least one.
pub fn certificates(key: &'static str, file: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bytes = read(key, file)?;
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

/// The edge's own certificate (as a client or a server): v3 and valid at `now`. Returns its
/// expiry.
pub fn check_leaf(der: &CertificateDer<'_>, now: Timestamp) -> Result<Timestamp, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| format!("does not parse as X.509: {e}"))?;
    if cert.version() != x509_parser::x509::X509Version::V3 {
        return Err(format!(
            "the certificate is X.509 version {}; TLS certificates must be version 3",
            cert.version().0 + 1
        ));
    }
    let (not_before, not_after) = (timestamp(&cert.validity().not_before), timestamp(&cert.validity().not_after));
    if now > not_after {
        return Err(format!("the certificate expired on {not_after}"));
    }
    if now < not_before {
        return Err(format!("the certificate is not valid before {not_before} (check this machine's clock)"));
    }
    Ok(not_after)
}

fn timestamp(t: &x509_parser::time::ASN1Time) -> Timestamp {
    Timestamp::from_second(t.timestamp()).unwrap_or(Timestamp::MAX)
}

/// The private key of a PEM file, and the file's bytes (ureq takes the key only as PEM).
pub fn private_key(key: &'static str, file: &Path) -> Result<(PrivateKeyDer<'static>, Vec<u8>), CertError> {
    use rustls::pki_types::pem::Error;
    let bytes = read(key, file)?;
    let der = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        let problem = match e {
            Error::NoItemsFound => "holds no private key (expected PEM \"-----BEGIN PRIVATE KEY-----\")".into(),
            other => format!("not a valid PEM private key: {other}"),
        };
        error(key, file, problem)
    })?;
    Ok((der, bytes))
}

/// The key is one ring can sign with and belongs to the first certificate of `chain`.
pub fn check_key_matches(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    (cert_key, cert_file): (&'static str, &Path),
    (key_key, key_file): (&'static str, &Path),
) -> Result<std::sync::Arc<rustls::sign::CertifiedKey>, CertError> {
    let signing = rustls::crypto::ring::sign::any_supported_type(key)
        .map_err(|e| error(key_key, key_file, format!("unsupported private key: {e}")))?;
    let certified = rustls::sign::CertifiedKey::new(chain.to_vec(), signing);
    certified.keys_match().map_err(|e| {
        let problem = crate::tls_words::describe(&e);
        error(key_key, key_file, format!("{problem} (the certificate: {cert_key}, {})", cert_file.display()))
    })?;
    Ok(std::sync::Arc::new(certified))
}

/// Every CRL of a PEM file (at least one), each parseable; with the earliest "next update"
/// among them, if any says one.
pub fn crls(
    key: &'static str,
    file: &Path,
) -> Result<(Vec<CertificateRevocationListDer<'static>>, Option<Timestamp>), CertError> {
    let bytes = read(key, file)?;
    let (mut out, mut next_update) = (Vec::new(), None::<Timestamp>);
    for item in CertificateRevocationListDer::pem_slice_iter(&bytes) {
        let der = item.map_err(|e| error(key, file, format!("not valid PEM: {e}")))?;
        let (_, crl) = x509_parser::parse_x509_crl(&der)
            .map_err(|e| error(key, file, format!("CRL {} does not parse: {e}", out.len() + 1)))?;
        if let Some(next) = crl.next_update() {
            let next = timestamp(&next);
            next_update = Some(next_update.map_or(next, |n| n.min(next)));
        }
        out.push(der);
    }
    if out.is_empty() {
        return Err(error(key, file, "holds no CRL (expected PEM \"-----BEGIN X509 CRL-----\")"));
    }
    Ok((out, next_update))
}

/// A warning when a certificate (`key`, `file`) expires within [`EXPIRY_WARNING`] of `now`;
/// `then` says what stops working.
pub fn expiry_warning(key: &str, file: &str, not_after: Timestamp, now: Timestamp, then: &str) -> Option<String> {
    let left = not_after.duration_since(now);
    let soon = jiff::SignedDuration::try_from(EXPIRY_WARNING).unwrap_or(jiff::SignedDuration::MAX);
    (left < soon).then(|| {
        let within = match left.as_secs().max(0) / 86_400 {
            0 => "less than a day".to_owned(),
            1 => "1 day".to_owned(),
            days => format!("{days} days"),
        };
        format!("{key} ({file}): the certificate expires on {not_after} (in {within}); renew it before then or {then}")
    })
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
