//! The audit trail forwarded to a syslog collector that runs in the test: over UDP, one RFC
//! 5424 datagram per record with MSGID `IHE+RFC-3881` and the DICOM PS3.15 A.5 message; over
//! TLS, RFC 5425 octet-counted frames on a connection that presents the sync's client
//! certificate; and a collector that was down while messages were acknowledged and the daemon
//! restarted gets every record once it is up, sent again from the cursor.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};

use crate::support::certs::TestPki;
use crate::support::hl7msg::{ack_code, orm};
use crate::support::{TestDaemon, eventually};

const LIMIT: Duration = Duration::from_secs(30);

/// Checks one RFC 5424 message as the edge sends it; returns its XML.
fn check_message(message: &[u8]) -> String {
    let text = String::from_utf8(message.to_vec()).expect("UTF-8");
    let (header, xml) = text.split_once(" - \u{FEFF}").unwrap_or_else(|| panic!("no SD, then a BOM: {text}"));
    let fields: Vec<&str> = header.split(' ').collect();
    assert_eq!(fields.len(), 6, "PRI+VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID: {header}");
    assert!(fields[0] == "<85>1" || fields[0] == "<84>1", "facility 10, notice or warning: {header}");
    assert!(fields[1].ends_with('Z') && fields[1].parse::<jiff::Timestamp>().is_ok(), "TIMESTAMP: {header}");
    assert_eq!(&fields[2..4], ["e1", "zenedge"], "{header}");
    assert_eq!(fields[5], "IHE+RFC-3881", "{header}");
    for element in [
        "<AuditMessage>",
        "<EventIdentification",
        "<ActiveParticipant",
        "<AuditSourceIdentification",
        "</AuditMessage>",
    ] {
        assert!(xml.contains(element), "{element} in {xml}");
    }
    xml.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_udp_each_record_is_one_rfc_5424_datagram_with_the_ihe_msgid_and_its_audit_message() {
    let collector = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = collector.local_addr().unwrap().port();
    let d = TestDaemon::start_with(&format!("[audit]\nsyslog = \"udp://127.0.0.1:{port}\"\n")).await;
    assert_eq!(ack_code(&d.client().await.send(&orm("SYSLOG-UDP-1", "ACC-SU")).await), "AA");
    let mut xmls = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while !xmls.iter().any(|x: &String| x.contains("SYSLOG-UDP-1")) {
        let (n, _) = tokio::time::timeout(LIMIT, collector.recv_from(&mut buf)).await.expect("a datagram").unwrap();
        xmls.push(check_message(&buf[..n]));
    }
    assert!(xmls[0].contains("csd-code=\"110100\""), "the start comes first: {}", xmls[0]);
    let order = xmls.iter().find(|x| x.contains("SYSLOG-UDP-1")).unwrap();
    assert!(order.contains("csd-code=\"110109\"") && order.contains("<ParticipantObjectIdentification"), "{order}");
    eventually("no backlog", LIMIT, || async {
        let ready = d.get("/readyz").await.json();
        let syslog = &ready["checks"]["audit_syslog"];
        if syslog["backlog"] == 0 && syslog["target"] == format!("udp://127.0.0.1:{port}") {
            Ok(())
        } else {
            Err(syslog.to_string())
        }
    })
    .await;
    d.stop().await.unwrap();
}

/// A TLS collector on `listener` that requires a client certificate of the PKI's CA; each
/// frame it reads (octet counting checked) is pushed to `frames`.
fn tls_collector(pki: &TestPki, dir: &std::path::Path, listener: TcpListener) -> Arc<Mutex<Vec<Vec<u8>>>> {
    let (cert, key) = pki.server(dir);
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&cert).unwrap().collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(pki.ca_path()).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build().unwrap();
    let config =
        rustls::ServerConfig::builder().with_client_cert_verifier(verifier).with_single_cert(chain, key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let frames = Arc::new(Mutex::new(Vec::new()));
    let out = frames.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, out) = (acceptor.clone(), out.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let cn = tls.get_ref().1.peer_certificates().map(|c| c.len()).unwrap_or(0);
                assert_eq!(cn, 1, "the edge presents its certificate");
                let mut pending = Vec::new();
                let mut buf = vec![0u8; 16_384];
                loop {
                    let n = match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(space) = pending.iter().position(|&b| b == b' ') {
                        let len: usize = std::str::from_utf8(&pending[..space]).unwrap().parse().expect("MSG-LEN");
                        if pending.len() < space + 1 + len {
                            break;
                        }
                        let frame = pending[space + 1..space + 1 + len].to_vec();
                        pending.drain(..space + 1 + len);
                        out.lock().unwrap().push(frame);
                    }
                }
            });
        }
    });
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_collector_down_through_a_restart_gets_every_record_from_the_cursor_once_it_is_up() {
    let pki = TestPki::new();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = pki.client(certs.path(), "e1");
    // A port nothing listens on yet: the collector is down.
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let extra = format!(
        "[sync]\nhub_url = \"https://127.0.0.1:9\"\nca_file = {:?}\nclient_cert = {:?}\nclient_key = {:?}\n\
         [audit]\nsyslog = \"tls://localhost:{port}\"\n",
        pki.ca_path().display().to_string(),
        cert.display().to_string(),
        key.display().to_string(),
    );
    let d = TestDaemon::start_with(&extra).await;
    for n in 0..3 {
        let id = format!("SYSLOG-TLS-{n}");
        assert_eq!(ack_code(&d.client().await.send(&orm(&id, "ACC-ST")).await), "AA", "intake goes on");
    }
    eventually("a backlog and the reason", LIMIT, || async {
        let syslog = d.get("/readyz").await.json()["checks"]["audit_syslog"].clone();
        let waiting = syslog["backlog"].as_u64().unwrap_or(0) >= 4 && syslog["last_error"].is_string();
        if waiting { Ok(()) } else { Err(syslog.to_string()) }
    })
    .await;
    let metrics = d.get("/metrics").await.body;
    assert!(!metrics.contains("zenedge_audit_syslog_backlog 0\n"), "{metrics}");
    let d = d.restart().await;
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
    let frames = tls_collector(&pki, certs.path(), listener);
    let xmls = eventually("every record at the collector", LIMIT, || async {
        let xmls: Vec<String> = frames.lock().unwrap().iter().map(|f| check_message(f)).collect();
        let orders = (0..3).filter(|n| xmls.iter().any(|x| x.contains(&format!("SYSLOG-TLS-{n}")))).count();
        let activity = xmls.iter().filter(|x| x.contains("csd-code=\"110100\"")).count();
        if orders == 3 && activity == 3 { Ok(xmls) } else { Err(format!("{orders} orders, {activity} start/stop")) }
    })
    .await;
    assert!(xmls[0].contains("csd-code=\"110120\""), "from the first record on: {}", xmls[0]);
    eventually("no backlog", LIMIT, || async {
        let syslog = d.get("/readyz").await.json()["checks"]["audit_syslog"].clone();
        if syslog["backlog"] == 0 && syslog["last_error"].is_null() { Ok(()) } else { Err(syslog.to_string()) }
    })
    .await;
    d.stop().await.unwrap();
}
