//! Certificates for unit tests, made with rcgen: a CA, certificates it signs (each with its
//! own serial number), CRLs it signs, and files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber};

/// A CA that signs server and client certificates, and CRLs.
pub struct TestCa {
    pub cert_pem: String,
    params: CertificateParams,
    key: KeyPair,
    serials: AtomicU64,
}

/// A certificate and its key, as PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
    pub serial: u64,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "zenedge test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert_pem: cert.pem(), params, key, serials: AtomicU64::new(1000) }
    }

    /// A certificate for `names` (DNS names or IPs), valid `from..until` (seconds
    /// relative to now).
    pub fn leaf(&self, common_name: &str, names: &[&str], from: i64, until: i64) -> Leaf {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.not_before = at(from).into();
        params.not_after = at(until).into();
        let serial = self.serials.fetch_add(1, Ordering::Relaxed);
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem(), cert_der: cert.der().to_vec(), serial }
    }

    /// A CRL revoking the certificates with `serials`, next update `next_update` seconds from
    /// now.
    pub fn crl(&self, serials: &[u64], next_update: i64) -> String {
        let revoked = serials
            .iter()
            .map(|s| rcgen::RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: at(-60).into(),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect();
        let params = rcgen::CertificateRevocationListParams {
            this_update: at(-3600).into(),
            next_update: at(next_update).into(),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let issuer = Issuer::from_params(&self.params, &self.key);
        params.signed_by(&issuer).unwrap().pem().unwrap()
    }
}

/// Now plus `seconds` (negative: in the past).
fn at(seconds: i64) -> std::time::SystemTime {
    let now = std::time::SystemTime::now();
    let by = std::time::Duration::from_secs(seconds.unsigned_abs());
    if seconds < 0 { now - by } else { now + by }
}

pub fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}
