//! The identity of a connection's peer, from its verified client certificate.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::CertificateMatch;

/// A client certificate the TLS handshake verified, as the rest of the daemon needs it: taken
/// once per connection, carried into the intake events (`peer_identity`) and alerts, and
/// compared with what the configuration binds to certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerIdentity {
    /// The subject's common name (the first, if several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_cn: Option<String>,
    /// The subject alternative names, each with its kind as OpenSSL prints them: `DNS:`,
    /// `IP:`, `email:`, `URI:`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sans: Vec<String>,
    /// SHA-256 of the certificate (DER), lower-case hex: what `openssl x509 -fingerprint
    /// -sha256` prints, without the colons.
    pub sha256_fingerprint: String,
}

impl PeerIdentity {
    /// The identity of a DER certificate (one the handshake verified). The fingerprint is
    /// always there; names only as far as the certificate parses.
    pub fn from_der(der: &[u8]) -> PeerIdentity {
        use sha2::Digest;
        let sha256_fingerprint = crate::ids::hex(&sha2::Sha256::digest(der));
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return PeerIdentity { subject_cn: None, sans: Vec::new(), sha256_fingerprint };
        };
        let subject_cn = cert.subject().iter_common_name().find_map(|cn| cn.as_str().ok()).map(str::to_owned);
        let mut sans = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            use x509_parser::extensions::GeneralName;
            for name in &san.value.general_names {
                let text = match name {
                    GeneralName::DNSName(dns) => format!("DNS:{dns}"),
                    GeneralName::RFC822Name(email) => format!("email:{email}"),
                    GeneralName::URI(uri) => format!("URI:{uri}"),
                    GeneralName::IPAddress(bytes) => match ip(bytes) {
                        Some(addr) => format!("IP:{addr}"),
                        None => continue,
                    },
                    _ => continue,
                };
                sans.push(text);
            }
        }
        PeerIdentity { subject_cn, sans, sha256_fingerprint }
    }

    /// Whether this is the certificate `m` names: by its fingerprint, or by its common name
    /// or one of its subject alternative names (without the kind prefix).
    pub fn matches(&self, m: &CertificateMatch) -> bool {
        match m {
            CertificateMatch::Sha256(digest) => crate::ids::hex(digest) == self.sha256_fingerprint,
            CertificateMatch::Name(name) => {
                self.subject_cn.as_deref() == Some(name.as_str())
                    || self.sans.iter().any(|san| san.split_once(':').is_some_and(|(_, value)| value == name))
            }
        }
    }

    /// The name to show: the common name, else the first alternative name, else the
    /// fingerprint.
    pub fn name(&self) -> &str {
        self.subject_cn.as_deref().or(self.sans.first().map(String::as_str)).unwrap_or(&self.sha256_fingerprint)
    }
}

/// `CN=<name> sha256=<first 16 hex digits>…`, for logs.
impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = &self.sha256_fingerprint[..self.sha256_fingerprint.len().min(16)];
        match (&self.subject_cn, self.sans.first()) {
            (Some(cn), _) => write!(f, "CN={cn} sha256={short}…"),
            (None, Some(san)) => write!(f, "{san} sha256={short}…"),
            (None, None) => write!(f, "sha256={short}…"),
        }
    }
}

/// An IP address SAN (4 or 16 bytes).
fn ip(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => Some(std::net::IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(std::net::IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
