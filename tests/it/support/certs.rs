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
//! Keys are ECDSA P-256 in PKCS#8 PEM; certificates are X.509 v3.

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
        }
    }
}

/// Two CAs, their certificates written to a temp directory that lives as long as this value.
pub struct TestPki {
    dir: tempfile::TempDir,
    trusted: Issuer<'static, KeyPair>,
    other: Issuer<'static, KeyPair>,
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
        TestPki { dir, trusted, other }
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
        let key = KeyPair::generate().expect("generate a key");
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

    /// Like [`TestPki::client`] but issued by the CA nobody trusts.
    pub fn unknown_ca_client(&self, dir: &Path, edge_id: &str) -> (PathBuf, PathBuf) {
        self.issue(dir, &Leaf { stem: format!("unknown-ca-{edge_id}"), issuer: Ca::Other, ..Leaf::client(edge_id) })
    }
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
