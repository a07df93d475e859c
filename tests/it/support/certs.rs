//! A throw-away PKI for the TLS tests (sync and hub): a trusted CA, a second CA nobody trusts,
//! and leaf certificates issued on demand as PEM files in a directory of the caller's choice.
//!
//! * [`TestPki::ca_path`] is the CA both sides trust (hub `--client-ca`, edge `sync.ca_file`).
//! * [`TestPki::server`] is a hub certificate for `localhost`, `127.0.0.1` and `::1`.
//! * [`TestPki::client`] is an edge certificate: subject CN = the edge id (and a DNS SAN with
//!   the same name), extended key usage clientAuth.
//! * [`TestPki::expired_client`], [`TestPki::unknown_ca_client`] and [`TestPki::issue`] with a
//!   [`Leaf`] make everything that must be refused (expired, other CA, other names).
//!
//! Keys are ECDSA P-256 in PKCS#8 PEM, or RSA 2048 ([`Leaf::rsa`], made by the `openssl`
//! command: ring cannot generate RSA keys); certificates are X.509 v3, each with its own
//! serial number, which [`TestPki::crl`] revokes by.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Which CA signs a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ca {
    /// The CA at [`TestPki::ca_path`]: the one the tests configure as trusted.
    Trusted,
    /// The CA at [`TestPki::other_ca_path`]: valid, but trusted by nobody.
    Other,
}

/// What a leaf certificate is for (its extended key usage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
}

/// The description of one leaf certificate for [`TestPki::issue`].
#[derive(Debug, Clone)]
pub struct Leaf {
    /// File stem: the files are `<stem>.pem` (certificate) and `<stem>.key` (private key).
    pub stem: String,
    /// Subject common name; `None` leaves the subject empty.
    pub common_name: Option<String>,
    /// Subject alternative names: DNS names or IP addresses (parsed as IP when they are one).
    pub alt_names: Vec<String>,
    pub usage: Usage,
    pub issuer: Ca,
    /// Valid from 2000 to 2001 instead of from 1975 to 4096.
    pub expired: bool,
    /// Valid from 2000 until this many days from now (a certificate about to expire).
    pub expires_in_days: Option<i64>,
    /// An RSA key instead of ECDSA (what DCMTK's default profile needs of a server over TLS
    /// 1.2); needs the `openssl` command.
    pub rsa: bool,
}

impl Leaf {
    /// A client certificate for `edge_id` from the trusted CA, CN and DNS SAN = `edge_id`.
    pub fn client(edge_id: &str) -> Leaf {
        Leaf {
            stem: format!("client-{edge_id}"),
            common_name: Some(edge_id.to_owned()),
            alt_names: vec![edge_id.to_owned()],
            usage: Usage::Client,
            issuer: Ca::Trusted,
            expired: false,
            expires_in_days: None,
            rsa: false,
        }
    }

    /// A server certificate for `localhost`, `127.0.0.1` and `::1` from the trusted CA.
    pub fn server() -> Leaf {
        Leaf {
            stem: "server".to_owned(),
            common_name: Some("localhost".to_owned()),
            alt_names: vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()],
            usage: Usage::Server,
            issuer: Ca::Trusted,
            expired: false,
            expires_in_days: None,
            rsa: false,
        }
    }
}

/// Two CAs, their certificates written to a temp directory that lives as long as this value.
pub struct TestPki {
    dir: tempfile::TempDir,
    trusted: Issuer<'static, KeyPair>,
    other: Issuer<'static, KeyPair>,
    serials: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki").field("dir", &self.dir.path()).finish_non_exhaustive()
    }
}

impl TestPki {
    /// Generates both CAs and writes `ca.pem` and `other-ca.pem`.
    pub fn new() -> TestPki {
        let dir = tempfile::tempdir().expect("temp dir for the test PKI");
        let trusted = new_ca("zenedge test CA", &dir.path().join("ca.pem"));
        let other = new_ca("some other CA", &dir.path().join("other-ca.pem"));
        TestPki { dir, trusted, other, serials: std::sync::atomic::AtomicU64::new(1) }
    }

    /// The trusted CA's certificate (PEM).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The CA nobody is configured to trust (PEM).
    pub fn other_ca_path(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    /// Issues `leaf` into `dir`; returns (certificate path, key path).
    pub fn issue(&self, dir: &Path, leaf: &Leaf) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(leaf.alt_names.clone()).expect("valid subject alternative names");
        let mut subject = DistinguishedName::new();
        if let Some(cn) = &leaf.common_name {
            subject.push(DnType::CommonName, cn.as_str());
        }
        params.distinguished_name = subject;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![match leaf.usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        if leaf.expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        if let Some(days) = leaf.expires_in_days {
            let end = jiff::Zoned::now().date().checked_add(jiff::Span::new().days(days)).expect("a date");
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(i32::from(end.year()), end.month() as u8, end.day() as u8);
        }
        let serial = self.serials.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        let key = if leaf.rsa { rsa_key() } else { KeyPair::generate().expect("generate a key") };
        let issuer = match leaf.issuer {
            Ca::Trusted => &self.trusted,
            Ca::Other => &self.other,
        };
        let cert = params.signed_by(&key, issuer).expect("sign the certificate");
        let cert_path = dir.join(format!("{}.pem", leaf.stem));
        let key_path = dir.join(format!("{}.key", leaf.stem));
        std::fs::write(&cert_path, cert.pem()).expect("write the certificate");
        std::fs::write(&key_path, key.serialize_pem()).expect("write the key");
        (cert_path, key_path)
    }

    /// The hub's certificate: `localhost`, `127.0.0.1`, `::1`, from the trusted CA.
    pub fn server(&self, dir: &Path) -> (PathBuf, PathBuf) {
        self.issue(dir, &Leaf::server())
    }

    /// An edge's client certificate: CN and DNS SAN = `edge_id`, from the trusted CA.
    pub fn client(&self, dir: &Path, edge_id: &str) -> (PathBuf, PathBuf) {
        self.issue(dir, &Leaf::client(edge_id))
    }

    /// Like [`TestPki::client`] but valid only from 2000 to 2001.
    pub fn expired_client(&self, dir: &Path, edge_id: &str) -> (PathBuf, PathBuf) {
        self.issue(dir, &Leaf { stem: format!("expired-{edge_id}"), expired: true, ..Leaf::client(edge_id) })
    }

    /// A CRL of the trusted CA revoking the certificates at `revoked`, written to `path`.
    pub fn crl(&self, path: &Path, revoked: &[&Path]) -> PathBuf {
        let now = std::time::SystemTime::now();
        let day = std::time::Duration::from_secs(86_400);
        let revoked_certs = revoked
            .iter()
            .map(|cert| rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(&serial_of(cert)),
                revocation_time: (now - day).into(),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect();
        let params = rcgen::CertificateRevocationListParams {
            this_update: (now - day).into(),
            next_update: (now + 30 * day).into(),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.trusted).expect("sign the CRL");
        std::fs::write(path, crl.pem().expect("PEM of the CRL")).expect("write the CRL");
        path.to_owned()
    }

    /// Like [`TestPki::client`] but issued by the CA nobody trusts.
    pub fn unknown_ca_client(&self, dir: &Path, edge_id: &str) -> (PathBuf, PathBuf) {
        self.issue(dir, &Leaf { stem: format!("unknown-ca-{edge_id}"), issuer: Ca::Other, ..Leaf::client(edge_id) })
    }
}

/// Whether RSA keys can be made here (the `openssl` command); `false` says why.
pub fn rsa_available() -> bool {
    let ok = std::process::Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success());
    if !ok {
        println!("skipping: the openssl command is not installed (needed for RSA test keys)");
    }
    ok
}

/// An RSA 2048 key made by `openssl genpkey`.
fn rsa_key() -> KeyPair {
    let out = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        .output()
        .expect("run openssl genpkey (RSA test keys need the openssl command)");
    assert!(out.status.success(), "openssl genpkey: {}", String::from_utf8_lossy(&out.stderr));
    KeyPair::from_pem(std::str::from_utf8(&out.stdout).unwrap()).expect("an RSA key rcgen can sign with")
}

/// The serial number of the certificate in the PEM file at `path`.
pub fn serial_of(path: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_file(path).expect("a PEM certificate");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("X.509");
    cert.tbs_certificate.raw_serial().to_vec()
}

/// The SHA-256 fingerprint of the certificate in the PEM file at `path`, lower-case hex.
pub fn fingerprint_of(path: &Path) -> String {
    use rustls::pki_types::pem::PemObject;
    use sha2::Digest;
    let der = rustls::pki_types::CertificateDer::from_pem_file(path).expect("a PEM certificate");
    sha2::Sha256::digest(&der).iter().map(|b| format!("{b:02x}")).collect()
}

/// A self-signed CA named `name`, its certificate written to `path`.
fn new_ca(name: &str, path: &Path) -> Issuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, name);
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().expect("generate the CA key");
    let cert = params.self_signed(&key).expect("self-sign the CA");
    std::fs::write(path, cert.pem()).expect("write the CA certificate");
    Issuer::new(params, key)
}
