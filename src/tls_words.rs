//! rustls errors in an admin's words.
//!
//! rustls describes a certificate's validity in UNIX seconds ("verification time 1796606887
//! (UNIX), but certificate is not valid after 1609459200") and some errors by their Rust
//! names ("keys may not be consistent: KeyMismatch"). Whoever reads the daemon's log, `zenedge
//! status` or `check-config` needs dates and plain words; this is the one place that turns
//! the errors the edge and the hub meet into them. Errors not listed here keep rustls's own
//! text.

use rustls::pki_types::UnixTime;
use rustls::{AlertDescription, CertificateError, Error, InconsistentKeys, InvalidMessage};

/// `e` as a sentence with dates instead of UNIX seconds.
pub fn describe(e: &Error) -> String {
    match e {
        Error::InvalidCertificate(cert) => format!("invalid peer certificate: {}", certificate(cert)),
        Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
            "the private key does not belong to the certificate: their public keys differ".into()
        }
        Error::InconsistentKeys(InconsistentKeys::Unknown) => {
            "the private key could not be checked against the certificate".into()
        }
        Error::AlertReceived(AlertDescription::CertificateExpired) => {
            "the peer refused our certificate: it has expired or is not valid yet".into()
        }
        Error::AlertReceived(AlertDescription::UnknownCA) => {
            "the peer refused our certificate: it is not signed by a CA the peer trusts".into()
        }
        Error::AlertReceived(AlertDescription::BadCertificate | AlertDescription::CertificateRequired) => {
            "the peer refused our certificate (or wanted one and got none)".into()
        }
        Error::NoCertificatesPresented => "the client presented no certificate, and one is required".into(),
        Error::InvalidMessage(InvalidMessage::InvalidContentType | InvalidMessage::UnknownProtocolVersion) => {
            "the peer does not speak TLS (plain MLLP, DICOM or HTTP sent to a TLS port?)".into()
        }
        other => other.to_string(),
    }
}

/// The finding on a certificate, with its dates.
fn certificate(e: &CertificateError) -> String {
    match e {
        CertificateError::ExpiredContext { time, not_after } => {
            format!("the certificate expired on {} (it is now {})", date(*not_after), date(*time))
        }
        CertificateError::NotValidYetContext { time, not_before } => {
            format!("the certificate is not valid before {} (it is now {})", date(*not_before), date(*time))
        }
        CertificateError::Expired => "the certificate has expired".into(),
        CertificateError::NotValidYet => "the certificate is not valid yet".into(),
        CertificateError::UnknownIssuer => "the certificate is not signed by a trusted CA (unknown issuer)".into(),
        CertificateError::BadSignature => "the certificate's signature does not verify".into(),
        CertificateError::Revoked => "the certificate is revoked".into(),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!("the certificate is not valid for the name connected to ({e})")
        }
        other => other.to_string(),
    }
}

/// A UNIX time as an RFC 3339 date in UTC (the seconds themselves if out of range).
fn date(t: UnixTime) -> String {
    i64::try_from(t.as_secs())
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(|| format!("{} (UNIX time)", t.as_secs()), |ts| ts.to_string())
}

/// The rustls error inside an I/O error (how tokio-rustls and ureq report a failed
/// handshake), described; else the I/O error's own text.
pub fn describe_io(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
        Some(tls) => describe(tls),
        None => e.to_string(),
    }
}

#[cfg(test)]
#[path = "tls_words_tests.rs"]
mod tests;
