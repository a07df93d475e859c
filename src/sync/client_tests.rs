use super::*;
use crate::tls::test_certs::{TestCa, write};

#[test]
fn answers_are_classified_per_the_contract() {
    let old = |at| Reported { stored_through: at, last_event: None };
    assert_eq!(classify(200, br#"{"stored_through": 7}"#), Outcome::Stored(old(7)), "a hub that does not say");
    assert_eq!(classify(409, br#"{"error": "behind", "stored_through": 3}"#), Outcome::Conflict(old(3)));
    let id = uuid::Uuid::from_u128(7);
    assert_eq!(
        classify(200, format!(r#"{{"stored_through": 7, "last_event": {{"seq": 6, "event_id": "{id}"}}}}"#).as_bytes()),
        Outcome::Stored(Reported::new(7, Some(EventRef { seq: 6, event_id: id })))
    );
    assert_eq!(
        classify(409, br#"{"error": "behind", "stored_through": 3, "last_event": null}"#),
        Outcome::Conflict(Reported::new(3, None)),
        "null: the hub stores no event up there"
    );
    assert_eq!(
        classify(422, br#"{"error": "event 5 is bad", "seq": 5}"#),
        Outcome::Refused("422: event 5 is bad".into())
    );
    assert!(matches!(classify(413, b"too large"), Outcome::Refused(r) if r.contains("too large")));
    let kind = |status, body: &[u8]| match classify(status, body) {
        Outcome::Failure(f) => f.kind,
        other => panic!("{other:?}"),
    };
    assert_eq!(kind(200, b"ok"), FailureKind::Protocol);
    assert_eq!(kind(409, br#"{"error": "x"}"#), FailureKind::Protocol);
    assert_eq!(kind(503, b""), FailureKind::Http5xx);
    assert_eq!(kind(401, b""), FailureKind::Http4xx);
    assert_eq!(kind(403, b""), FailureKind::Http4xx);
    assert_eq!(kind(404, b""), FailureKind::Http4xx);
    assert_eq!(kind(429, b""), FailureKind::Http4xx);
    assert_eq!(kind(302, b""), FailureKind::Protocol);
}

fn transport(url: &str, tls: Option<&ClientTls>, timeout: Duration) -> HttpTransport {
    HttpTransport::new(url, "e1", tls, Duration::from_secs(5), timeout)
}

fn batch() -> Batch {
    let envelope = rmp_serde::to_vec_named(&serde_json::json!({"seq": 3, "event_type": "X"})).unwrap();
    Batch {
        epoch: 0,
        prev_event_id: Some(uuid::Uuid::from_u128(2)),
        first: 3,
        last: 5,
        skipped: vec![4, 5],
        redelivery: false,
        events: 1,
        body: wire::encode_batch(std::iter::once(envelope.as_slice()), 1),
    }
}

/// What a test server saw of one request.
struct Request {
    head: String,
    body: Vec<u8>,
}

/// Serves one connection on `listener` (over TLS with `tls`): reads one request and
/// answers `answer` (a whole HTTP response), unless `answer` is `None` (then it holds
/// the connection open until the client gives up). `None` if the exchange failed.
fn serve_one(
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    answer: Option<&'static str>,
) -> std::thread::JoinHandle<Option<Request>> {
    std::thread::spawn(move || {
        let (tcp, _) = listener.accept().ok()?;
        match tls {
            Some(config) => {
                let conn = rustls::ServerConnection::new(config).ok()?;
                exchange(rustls::StreamOwned::new(conn, tcp), answer)
            }
            None => exchange(tcp, answer),
        }
    })
}

fn exchange(mut stream: impl std::io::Read + std::io::Write, answer: Option<&str>) -> Option<Request> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    let split = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).ok().filter(|n| *n > 0)?;
        raw.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let mut body = raw[split..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&chunk[..n]);
    }
    match answer {
        Some(answer) => {
            stream.write_all(answer.as_bytes()).ok()?;
            stream.flush().ok()?;
        }
        // Hold the connection: the client's timeout ends the exchange.
        None => while stream.read(&mut chunk).is_ok_and(|n| n > 0) {},
    }
    Some(Request { head, body })
}

const STORED_5: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n{\"stored_through\":5}";

#[test]
fn a_batch_goes_out_with_the_contract_headers_and_its_body_as_built() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve_one(listener, None, Some(STORED_5));
    let batch = batch();
    let outcome = transport(&format!("http://{addr}"), None, Duration::from_secs(5)).send(&batch);
    assert_eq!(outcome, Outcome::Stored(Reported { stored_through: 5, last_event: None }));
    let request = server.join().unwrap().expect("a request");
    assert!(request.head.starts_with("post /v1/edges/e1/events http/1.1"), "{}", request.head);
    for header in [
        "content-type: application/msgpack",
        "content-encoding: gzip",
        "zenedge-first-seq: 3",
        "zenedge-last-seq: 5",
        "zenedge-skipped: 4,5",
        "zenedge-prev-event-id: 00000000-0000-0000-0000-000000000002",
    ] {
        assert!(request.head.contains(header), "{header} not in {}", request.head);
    }
    assert!(!request.head.contains("zenedge-redelivery"));
    assert_eq!(request.body, batch.body);
}

#[test]
fn a_404_for_the_position_of_epoch_0_is_a_hub_that_holds_nothing_of_this_edge() {
    const UNKNOWN: &str = "HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}";
    for (epoch, nothing) in [(0, true), (2, false)] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = serve_one(listener, None, Some(UNKNOWN));
        let answer = transport(&format!("http://{addr}"), None, Duration::from_secs(5)).position(epoch, None);
        server.join().unwrap().expect("a request");
        match answer {
            Ok(position) => {
                assert!(nothing, "epoch {epoch}");
                assert_eq!((position.stored_through, position.last_event), (0, Some(None)));
            }
            // A missing later epoch is not "nothing": the operator's fork is gone.
            Err(f) => assert!(!nothing && f.kind == FailureKind::Http4xx, "{f}"),
        }
    }
}

#[test]
fn a_hub_that_does_not_answer_in_time_is_a_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve_one(listener, None, None);
    match transport(&format!("http://{addr}"), None, Duration::from_millis(300)).send(&batch()) {
        Outcome::Failure(f) => assert_eq!(f.kind, FailureKind::Timeout, "{f}"),
        other => panic!("{other:?}"),
    }
    drop(server);
}

#[test]
fn no_listener_is_a_connect_failure() {
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = refused.local_addr().unwrap();
    drop(refused);
    match transport(&format!("http://{addr}"), None, Duration::from_secs(5)).send(&batch()) {
        Outcome::Failure(f) => assert_eq!(f.kind, FailureKind::Connect, "{f}"),
        other => panic!("{other:?}"),
    }
}

/// A hub server config: its certificate from `ca`, client certificates required from `ca`.
fn hub_tls(ca: &TestCa) -> Arc<rustls::ServerConfig> {
    hub_tls_valid(ca, -3600, 3600)
}

/// [`hub_tls`] with a server certificate valid `from..until` (seconds from now).
fn hub_tls_valid(ca: &TestCa, from: i64, until: i64) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ca.leaf("localhost", &["localhost"], from, until);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap()).unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().unwrap();
    let chain = vec![rustls::pki_types::CertificateDer::from_pem_slice(server.cert_pem.as_bytes()).unwrap()];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).unwrap();
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

/// The edge's checked TLS files, its CA bundle being `trusted`.
fn edge_tls(client_ca: &TestCa, trusted: &TestCa, dir: &std::path::Path) -> ClientTls {
    let leaf = client_ca.leaf("e1", &["e1"], -3600, 3600);
    let endpoint = crate::config::HubEndpoint {
        url: "https://localhost".into(),
        ca_file: Some(write(dir, "ca.pem", &trusted.cert_pem)),
        client_cert: Some(write(dir, "edge.pem", &leaf.cert_pem)),
        client_key: Some(write(dir, "edge.key", &leaf.key_pem)),
    };
    super::super::tls::load(&endpoint, jiff::Timestamp::now()).unwrap().unwrap()
}

#[test]
fn mutual_tls_delivers_to_a_hub_the_ca_bundle_vouches_for() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve_one(listener, Some(hub_tls(&ca)), Some(STORED_5));
    let tls = edge_tls(&ca, &ca, dir.path());
    let outcome = transport(&format!("https://localhost:{port}"), Some(&tls), Duration::from_secs(5)).send(&batch());
    assert_eq!(outcome, Outcome::Stored(Reported { stored_through: 5, last_event: None }));
    assert!(server.join().unwrap().is_some());
}

#[test]
fn a_hub_certificate_from_another_ca_is_a_tls_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, other) = (TestCa::new(), TestCa::new());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve_one(listener, Some(hub_tls(&ca)), Some(STORED_5));
    let tls = edge_tls(&ca, &other, dir.path());
    match transport(&format!("https://localhost:{port}"), Some(&tls), Duration::from_secs(5)).send(&batch()) {
        Outcome::Failure(f) => {
            assert_eq!(f.kind, FailureKind::Tls, "{f}");
            assert!(f.message.contains("certificate"), "{f}");
        }
        other => panic!("{other:?}"),
    }
    assert!(server.join().unwrap().is_none(), "nothing was exchanged");
}

/// An expired hub certificate is reported (in `zenedge status` and the log) with its
/// dates, not rustls's UNIX seconds.
#[test]
fn an_expired_hub_certificate_is_a_tls_failure_that_says_when_it_expired() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve_one(listener, Some(hub_tls_valid(&ca, -2 * 86_400, -86_400)), Some(STORED_5));
    let tls = edge_tls(&ca, &ca, dir.path());
    match transport(&format!("https://localhost:{port}"), Some(&tls), Duration::from_secs(5)).send(&batch()) {
        Outcome::Failure(f) => {
            assert_eq!(f.kind, FailureKind::Tls, "{f}");
            assert!(f.message.contains("the certificate expired on 20"), "{f}");
            assert!(f.message.contains("(it is now 20"), "{f}");
            assert!(!f.message.contains("UNIX"), "{f}");
        }
        other => panic!("{other:?}"),
    }
    assert!(server.join().unwrap().is_none(), "nothing was exchanged");
}
