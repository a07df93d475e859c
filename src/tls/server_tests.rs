use std::path::Path;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::security::{Alerts, PeerIdentity};
use crate::telemetry::Metrics;
use crate::tls::test_certs::{Leaf, TestCa, write};
use crate::tls::{Handshaker, TlsSwitch};

const DAY: i64 = 86_400;

/// A CA, the edge's server certificate from it, and `[tls]` files naming them.
fn edge(dir: &Path) -> (TestCa, TlsFiles) {
    let ca = TestCa::new();
    let server = ca.leaf("edge-1", &["localhost", "127.0.0.1"], -DAY, 365 * DAY);
    let files = TlsFiles {
        cert: write(dir, "edge.pem", &server.cert_pem),
        key: write(dir, "edge.key", &server.key_pem),
        client_ca: Some(write(dir, "ca.pem", &ca.cert_pem)),
        crl: None,
    };
    (ca, files)
}

fn problems(files: &TlsFiles) -> Vec<String> {
    ServerTls::load(files, Timestamp::now()).unwrap_err().iter().map(ToString::to_string).collect()
}

#[test]
fn good_files_load_into_a_mutual_and_an_https_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let (_, files) = edge(dir.path());
    let tls = ServerTls::load(&files, Timestamp::now()).unwrap();
    assert!(tls.mutual.is_some());
    assert_eq!(tls.https.alpn_protocols, [b"http/1.1".to_vec()]);
    assert!(tls.warnings(Timestamp::now()).is_empty());
    let https_only = TlsFiles { client_ca: None, ..files };
    assert!(ServerTls::load(&https_only, Timestamp::now()).unwrap().mutual.is_none());
}

#[test]
fn every_unusable_file_is_named_with_its_key_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, mut files) = edge(dir.path());
    let expired = ca.leaf("edge-1", &["localhost"], -30 * DAY, -DAY);
    files.cert = write(dir.path(), "expired.pem", &expired.cert_pem);
    files.client_ca = Some(write(dir.path(), "garbage.pem", "not a certificate"));
    files.crl = Some(dir.path().join("absent.crl"));
    let found = problems(&files);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].starts_with("tls.cert (") && found[0].contains("expired.pem): the certificate expired on"));
    assert!(found[1].starts_with("tls.client_ca (") && found[1].contains("holds no certificate"), "{found:?}");
    assert!(found[2].starts_with("tls.crl (") && found[2].contains("cannot read the file"), "{found:?}");
}

#[test]
fn a_key_of_another_certificate_is_refused_naming_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, mut files) = edge(dir.path());
    files.key = write(dir.path(), "other.key", &ca.leaf("other", &["other"], -DAY, DAY).key_pem);
    let found = problems(&files);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("tls.key (") && found[0].contains("their public keys differ"), "{found:?}");
    assert!(found[0].contains("(the certificate: tls.cert, "), "{found:?}");
}

#[test]
fn a_certificate_near_expiry_and_an_outdated_crl_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, mut files) = edge(dir.path());
    let soon = ca.leaf("edge-1", &["localhost"], -DAY, 5 * DAY);
    (files.cert, files.key) =
        (write(dir.path(), "soon.pem", &soon.cert_pem), write(dir.path(), "soon.key", &soon.key_pem));
    files.crl = Some(write(dir.path(), "ca.crl", &ca.crl(&[], 60)));
    let tls = ServerTls::load(&files, Timestamp::now()).unwrap();
    let later = Timestamp::now().checked_add(jiff::SignedDuration::from_hours(1)).unwrap();
    let warnings = tls.warnings(later);
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(warnings[0].starts_with("tls.cert (") && warnings[0].contains("(in 4 days)"), "{warnings:?}");
    assert!(warnings[1].starts_with("tls.crl (") && warnings[1].contains("next update was due"), "{warnings:?}");
}

/// A TLS client with `leaf` as its certificate (or none) trusting `ca`.
fn client(ca: &TestCa, leaf: Option<&Leaf>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match leaf {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![rustls::pki_types::CertificateDer::from(leaf.cert_der.clone())],
                rustls::pki_types::PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A listener whose every connection runs `handshaker`; each result is sent back.
async fn serve(
    handshaker: Handshaker,
) -> (std::net::SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Option<Option<PeerIdentity>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            let (handshaker, tx) = (handshaker.clone(), tx.clone());
            tokio::spawn(async move {
                let result = handshaker.accept(stream, peer).await;
                let identity = result.as_ref().map(|(_, id)| id.clone());
                if let Some((mut tls, _)) = result {
                    let _ = tls.write_all(b"hello").await;
                    let _ = tls.shutdown().await;
                }
                let _ = tx.send(identity);
            });
        }
    });
    (addr, rx)
}

fn handshaker(files: &TlsFiles, metrics: &Arc<Metrics>, timeout: Duration) -> Handshaker {
    let tls = ServerTls::load(files, Timestamp::now()).unwrap();
    Handshaker {
        listener: "mllp_tls",
        switch: TlsSwitch::new(files.clone(), tls),
        require_client_certificate: true,
        timeout,
        alerts: Alerts::new(metrics.clone()),
        shutdown: tokio_util::sync::CancellationToken::new(),
    }
}

async fn connect(addr: std::net::SocketAddr, connector: &tokio_rustls::TlsConnector) -> std::io::Result<Vec<u8>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    Ok(out)
}

fn alerts(metrics: &Metrics) -> u64 {
    let text = metrics.encode();
    text.lines()
        .find_map(|l| l.strip_prefix("zenedge_security_alerts_total{kind=\"tls_handshake_refused\"} "))
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn a_client_certificate_of_the_client_ca_is_accepted_and_its_identity_taken() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, files) = edge(dir.path());
    let metrics = Arc::new(Metrics::new());
    let (addr, mut results) = serve(handshaker(&files, &metrics, Duration::from_secs(10))).await;
    let ris = ca.leaf("ris", &["ris.hospital.example"], -DAY, DAY);
    assert_eq!(connect(addr, &client(&ca, Some(&ris))).await.unwrap(), b"hello");
    let identity = results.recv().await.unwrap().expect("handshake done").expect("an identity");
    assert_eq!(identity, PeerIdentity::from_der(&ris.cert_der));
    assert_eq!(identity.subject_cn.as_deref(), Some("ris"));
    assert_eq!(alerts(&metrics), 0);
}

#[tokio::test]
async fn no_certificate_another_cas_and_a_revoked_one_are_refused_with_an_alert_each() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, mut files) = edge(dir.path());
    let revoked = ca.leaf("lab", &["lab"], -DAY, DAY);
    files.crl = Some(write(dir.path(), "ca.crl", &ca.crl(&[revoked.serial], DAY)));
    let metrics = Arc::new(Metrics::new());
    let (addr, mut results) = serve(handshaker(&files, &metrics, Duration::from_secs(10))).await;
    let foreign_ca = TestCa::new();
    let foreign = foreign_ca.leaf("ris", &["ris"], -DAY, DAY);
    for (what, connector) in [
        ("no certificate", client(&ca, None)),
        ("another CA's certificate", client(&ca, Some(&foreign))),
        ("a revoked certificate", client(&ca, Some(&revoked))),
    ] {
        let got = connect(addr, &connector).await;
        assert!(got.is_err() || got.as_ref().is_ok_and(Vec::is_empty), "{what}: {got:?}");
        assert_eq!(results.recv().await.unwrap(), None, "{what}");
    }
    assert_eq!(alerts(&metrics), 3);
    let good = ca.leaf("ris", &["ris"], -DAY, DAY);
    assert_eq!(connect(addr, &client(&ca, Some(&good))).await.unwrap(), b"hello", "the CRL revokes only what it lists");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stalls_in_the_handshake_is_cut_at_the_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (_, files) = edge(dir.path());
    let metrics = Arc::new(Metrics::new());
    let (addr, mut results) = serve(handshaker(&files, &metrics, Duration::from_secs(10))).await;
    // Paused time: an hour passes at once when nothing else can happen, so a missing deadline
    // fails the test instead of hanging it.
    let within_an_hour = |what| move |_| panic!("{what} was not cut within an hour");
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(3600), results.recv()).await;
    assert_eq!(result.unwrap_or_else(within_an_hour("a silent client")).unwrap(), None);
    assert_eq!(silent.read(&mut [0u8; 16]).await.unwrap(), 0, "the server closed the connection");
    // A ClientHello trickled a byte at a time, each byte before the last one's timeout would
    // have passed: the deadline counts from the accept, not from the last byte.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let hello = [0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
    let trickle = async {
        for byte in hello.iter().cycle() {
            if slow.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    tokio::select! {
        result = results.recv() => assert_eq!(result.unwrap(), None),
        _ = trickle => panic!("the trickle was not cut"),
        _ = tokio::time::sleep(Duration::from_secs(3600)) => panic!("a trickled ClientHello was not cut within an hour"),
    }
    assert_eq!(alerts(&metrics), 2);
}

#[tokio::test]
async fn a_reload_puts_new_files_in_use_for_new_connections_and_a_broken_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, files) = edge(dir.path());
    let switch = TlsSwitch::new(files.clone(), ServerTls::load(&files, Timestamp::now()).unwrap());
    let first = switch.current().fingerprint.clone();
    let renewed = ca.leaf("edge-1", &["localhost"], -DAY, 400 * DAY);
    std::fs::write(&files.cert, &renewed.cert_pem).unwrap();
    std::fs::write(&files.key, &renewed.key_pem).unwrap();
    let fresh = switch.reload(Timestamp::now()).unwrap();
    assert_ne!(fresh.fingerprint, first);
    assert_eq!(switch.current().fingerprint, fresh.fingerprint);
    std::fs::write(&files.key, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
    let problems = switch.reload(Timestamp::now()).unwrap_err();
    assert_eq!(problems[0].key, "tls.key", "{problems:?}");
    assert_eq!(switch.current().fingerprint, fresh.fingerprint, "the identity in use stays");
}
