use std::path::Path;

use super::*;
use crate::tls::test_certs::{TestCa, write};

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
    let plain = HubEndpoint { url: "http://127.0.0.1:1".into(), ca_file: None, client_cert: None, client_key: None };
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
    assert_eq!(x509_parser::parse_x509_certificate(&v1).unwrap().1.version().0, 0, "the test made a v1 certificate");
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
