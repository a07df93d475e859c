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
pub(crate) mod test_certs {
    //! Certificates for tests, made with rcgen: a CA, certificates it signs, and files.

    use std::path::{Path, PathBuf};

    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

    /// A CA that signs server and client certificates.
    pub struct TestCa {
        pub cert_pem: String,
        params: CertificateParams,
        key: KeyPair,
    }

    /// A certificate and its key, as PEM.
    pub struct Leaf {
        pub cert_pem: String,
        pub key_pem: String,
        pub cert_der: Vec<u8>,
    }

    impl TestCa {
        pub fn new() -> TestCa {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(DnType::CommonName, "zenedge test CA");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            TestCa { cert_pem: cert.pem(), params, key }
        }

        /// A certificate for `names` (DNS names or IPs), valid `from..until` (seconds
        /// relative to now).
        pub fn leaf(&self, common_name: &str, names: &[&str], from: i64, until: i64) -> Leaf {
            let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
            params.distinguished_name.push(DnType::CommonName, common_name);
            params.not_before = at(from).into();
            params.not_after = at(until).into();
            let key = KeyPair::generate().unwrap();
            let issuer = Issuer::from_params(&self.params, &self.key);
            let cert = params.signed_by(&key, &issuer).unwrap();
            Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem(), cert_der: cert.der().to_vec() }
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
}

#[cfg(test)]
mod tests {
    use super::test_certs::{TestCa, write};
    use super::*;

    const DAY: i64 = 86_400;

    fn endpoint(ca: &Path, cert: &Path, key: &Path) -> HubEndpoint {
        HubEndpoint {
            url: "https://hub.example:8443".into(),
            ca_file: Some(ca.into()),
            client_cert: Some(cert.into()),
            client_key: Some(key.into()),
        }
    }

    /// A CA file and a client certificate valid `from..until` days from now.
    fn files(dir: &Path, from: i64, until: i64) -> (TestCa, HubEndpoint) {
        let ca = TestCa::new();
        let leaf = ca.leaf("edge-1", &["edge-1"], from * DAY, until * DAY);
        let e = endpoint(
            &write(dir, "ca.pem", &ca.cert_pem),
            &write(dir, "edge.pem", &leaf.cert_pem),
            &write(dir, "edge.key", &leaf.key_pem),
        );
        (ca, e)
    }

    fn problem(e: &HubEndpoint) -> String {
        load(e, Timestamp::now()).unwrap_err().to_string()
    }

    #[test]
    fn good_files_load_and_a_near_expiry_is_warned() {
        let dir = tempfile::tempdir().unwrap();
        let (_, e) = files(dir.path(), -1, 365);
        let tls = load(&e, Timestamp::now()).unwrap().unwrap();
        assert_eq!((tls.roots.len(), tls.chain.len()), (1, 1));
        assert!(tls.expiry_warning(Timestamp::now()).is_none());
        let (_, soon) = files(dir.path(), -1, 10);
        let warning = load(&soon, Timestamp::now()).unwrap().unwrap().expiry_warning(Timestamp::now()).unwrap();
        assert!(warning.starts_with("sync.client_cert (") && warning.contains("expires on"), "{warning}");
        assert!(warning.contains("(in 9 days)"), "{warning}");
        let (_, tomorrow) = files(dir.path(), -1, 2);
        let warning = load(&tomorrow, Timestamp::now()).unwrap().unwrap().expiry_warning(Timestamp::now()).unwrap();
        assert!(warning.contains("(in 1 day)"), "{warning}");
        let plain =
            HubEndpoint { url: "http://127.0.0.1:1".into(), ca_file: None, client_cert: None, client_key: None };
        assert!(load(&plain, Timestamp::now()).unwrap().is_none());
    }

    #[test]
    fn an_expired_certificate_is_named_with_its_date() {
        let dir = tempfile::tempdir().unwrap();
        let (_, e) = files(dir.path(), -30, -1);
        let message = problem(&e);
        assert!(message.starts_with("sync.client_cert ("), "{message}");
        assert!(message.contains("edge.pem): the certificate expired on 20"), "{message}");
    }

    #[test]
    fn a_certificate_not_yet_valid_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, e) = files(dir.path(), 2, 30);
        assert!(problem(&e).contains("the certificate is not valid before"), "{}", problem(&e));
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, mut e) = files(dir.path(), -1, 30);
        let other = ca.leaf("edge-2", &["edge-2"], -DAY, 30 * DAY);
        e.client_key = Some(write(dir.path(), "other.key", &other.key_pem));
        let message = problem(&e);
        assert!(message.starts_with("sync.client_key ("), "{message}");
        assert!(message.contains("does not belong to the certificate: their public keys differ"), "{message}");
        assert!(!message.contains("KeyMismatch"), "rustls's internal name: {message}");
    }

    #[test]
    fn garbage_and_missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut e) = files(dir.path(), -1, 30);
        let good = e.clone();
        e.ca_file = Some(write(dir.path(), "garbage.pem", "hello, this is not PEM\n"));
        assert!(problem(&e).starts_with("sync.ca_file ("), "{}", problem(&e));
        assert!(problem(&e).contains("holds no certificate"), "{}", problem(&e));
        let mut e = good.clone();
        e.client_cert =
            Some(write(dir.path(), "broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"));
        assert!(problem(&e).contains("does not parse as X.509"), "{}", problem(&e));
        let mut e = good.clone();
        e.client_key = Some(write(dir.path(), "nokey.pem", "-----BEGIN CERTIFICATE-----\n"));
        assert!(problem(&e).starts_with("sync.client_key ("), "{}", problem(&e));
        let mut e = good.clone();
        e.client_cert = Some(dir.path().join("absent.pem"));
        let message = problem(&e);
        assert!(message.contains("absent.pem): cannot read the file"), "{message}");
    }

    #[test]
    fn a_version_1_certificate_is_refused_before_ureq_could_panic_on_it() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, mut e) = files(dir.path(), -1, 30);
        let leaf = ca.leaf("edge-1", &["edge-1"], -DAY, 30 * DAY);
        let v1 = as_version_1(&leaf.cert_der);
        assert_eq!(
            x509_parser::parse_x509_certificate(&v1).unwrap().1.version().0,
            0,
            "the test made a v1 certificate"
        );
        e.client_cert = Some(write(dir.path(), "v1.pem", &pem_of(&v1)));
        e.client_key = Some(write(dir.path(), "v1.key", &leaf.key_pem));
        let message = problem(&e);
        assert!(message.contains("X.509 version 1"), "{message}");
    }

    fn pem_of(der: &[u8]) -> String {
        use base64::encode;
        let body = encode(der);
        let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
        format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
    }

    /// The same certificate with its `version` and `extensions` fields cut out of the
    /// TBSCertificate (RFC 5280 §4.1): what a version 1 certificate looks like. The
    /// signature no longer matches; the checks here read fields, they do not verify it.
    fn as_version_1(der: &[u8]) -> Vec<u8> {
        let (_, cert_body) = der_element(der);
        let (tbs_len, tbs_body) = der_element(cert_body);
        let rest = &cert_body[tbs_len..];
        let mut fields = Vec::new();
        let mut at = tbs_body;
        while !at.is_empty() {
            let (len, _) = der_element(at);
            let tag = at[0];
            if tag != 0xA0 && tag != 0xA3 {
                fields.extend_from_slice(&at[..len]);
            }
            at = &at[len..];
        }
        let mut tbs = vec![0x30];
        tbs.extend(der_len(fields.len()));
        tbs.extend(fields);
        let mut body = tbs;
        body.extend_from_slice(rest);
        let mut out = vec![0x30];
        out.extend(der_len(body.len()));
        out.extend(body);
        out
    }

    /// A DER element at the start of `bytes`: its whole length and its contents.
    fn der_element(bytes: &[u8]) -> (usize, &[u8]) {
        let first = bytes[1] as usize;
        let (header, len) = if first < 0x80 {
            (2, first)
        } else {
            let n = first & 0x7f;
            (2 + n, bytes[2..2 + n].iter().fold(0usize, |acc, b| acc << 8 | *b as usize))
        };
        (header + len, &bytes[header..header + len])
    }

    fn der_len(len: usize) -> Vec<u8> {
        if len < 0x80 {
            return vec![len as u8];
        }
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        let mut out = vec![0x80 | bytes.len() as u8];
        out.extend(bytes);
        out
    }

    mod base64 {
        /// Standard base64 with padding (PEM bodies).
        pub fn encode(bytes: &[u8]) -> String {
            const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
                let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
                for i in 0..4 {
                    if i <= chunk.len() {
                        out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
                    } else {
                        out.push('=');
                    }
                }
            }
            out
        }
    }
}
