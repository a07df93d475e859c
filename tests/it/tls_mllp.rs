//! MLLP over TLS, with python's `ssl` module as the client: only a client certificate of the
//! trusted CA gets in, and it is named in every event its connection stores; a connection may
//! send only as the MSH-3/MSH-4 bound to it (AR with ERR otherwise, nothing stored); the plain
//! listener takes only its allowed networks; a client that stalls in the handshake is cut and
//! frees its slot. Every refusal is a security alert.
//!
//! Without python3 these tests print why they are skipped and pass.

use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::support::certs::{Ca, Leaf, fingerprint_of};
use crate::support::hl7msg::{ack_code, orm, segments};
use crate::support::http::{audit_trail, audited};
use crate::support::tls::{EdgeTls, alerts, python_mllp};
use crate::support::{MllpClient, TestDaemon, eventually};

const LIMIT: Duration = Duration::from_secs(20);

/// A daemon with MLLP over TLS on a fresh port, `[tls]` from `tls` (plus `tls_extra`) and
/// `extra` config.
async fn daemon(tls: &EdgeTls, tls_extra: &str, extra: &str) -> TestDaemon {
    TestDaemon::start_with(&format!("[mllp]\ntls_listen = \"127.0.0.1:0\"\n{extra}\n{}", tls.section(tls_extra))).await
}

/// Waits until the daemon counts `n` alerts of `kind`.
async fn alerted(d: &TestDaemon, kind: &str, n: u64) {
    eventually(&format!("{n} {kind} alerts"), LIMIT, || async {
        let seen = alerts(d.http, kind).await;
        if seen == n { Ok(()) } else { Err(format!("{seen}")) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_a_certificate_of_the_trusted_ca_is_acked_and_its_events_name_the_certificate() {
    let tls = EdgeTls::new();
    let d = daemon(&tls, "", "").await;
    let ris = tls.client("ris.hospital.example");
    let Some(answer) = python_mllp(d.mllp_tls.unwrap(), &tls.ca(), Some(&ris), &orm("TLS-1", "ACC-TLS-1")).await else {
        return;
    };
    let ack = answer.expect("an ACK over TLS");
    assert_eq!(ack_code(&ack), "AA", "{}", String::from_utf8_lossy(&ack));
    assert_eq!(ack_code(&d.client().await.send(&orm("PLAIN-1", "ACC-PLAIN-1")).await), "AA");
    let events = d.events().await;
    let identity = &events[0]["data"]["peer_identity"];
    assert_eq!(identity["subject_cn"], "ris.hospital.example");
    assert_eq!(identity["sans"], serde_json::json!(["DNS:ris.hospital.example"]));
    assert_eq!(identity["sha256_fingerprint"], fingerprint_of(&ris.0).as_str());
    assert!(events[1]["data"].get("peer_identity").is_none(), "a plain connection has no identity: {}", events[1]);
    assert_eq!(alerts(d.http, "tls_handshake_refused").await, 0);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_certificate_another_cas_an_expired_and_a_revoked_one_are_refused_in_the_handshake() {
    let tls = EdgeTls::new();
    let revoked = tls.client("revoked.hospital.example");
    let crl = tls.pki.crl(&tls.dir.path().join("ca.crl"), &[&revoked.0]);
    let d = daemon(&tls, &format!("crl = {:?}\n", crl.display().to_string()), "").await;
    let addr = d.mllp_tls.unwrap();
    let foreign = tls.issue(&Leaf { stem: "foreign".into(), issuer: Ca::Other, ..Leaf::client("ris") });
    let expired = tls.issue(&Leaf { stem: "expired".into(), expired: true, ..Leaf::client("ris") });
    let refused = [
        ("no certificate", None),
        ("another CA's certificate", Some(&foreign)),
        ("an expired certificate", Some(&expired)),
        ("a revoked certificate", Some(&revoked)),
    ];
    for (n, (what, client)) in refused.iter().enumerate() {
        let Some(answer) = python_mllp(addr, &tls.ca(), *client, &orm(&format!("NO-{n}"), "ACC-NO")).await else {
            return;
        };
        let error = answer.expect_err(what);
        assert!(error.contains("SSLError") || error.contains("ConnectionError"), "{what}: {error}");
    }
    alerted(&d, "tls_handshake_refused", refused.len() as u64).await;
    eventually("a failed User Authentication per refused handshake", LIMIT, || async {
        let trail = audit_trail(d.http).await;
        let failed = audited(&trail, "110114");
        let done = failed.len() == refused.len()
            && failed.iter().all(|r| r["record"]["participants"][0]["network_access_point"] == "127.0.0.1");
        if done { Ok(()) } else { Err(format!("{failed:?}")) }
    })
    .await;
    let good = tls.client("ris");
    let ack = python_mllp(addr, &tls.ca(), Some(&good), &orm("YES-1", "ACC-YES")).await.unwrap().unwrap();
    assert_eq!(ack_code(&ack), "AA", "the CRL revokes what it lists, no more");
    let events = d.events().await;
    assert_eq!(events.len(), 1, "nothing of the refused clients is stored");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_sending_as_an_msh3_not_bound_to_its_certificate_gets_ar_and_nothing_is_stored() {
    let tls = EdgeTls::new();
    let senders = "[[mllp.senders]]\nname = \"ris\"\ncertificate = \"ris.hospital.example\"\n\
                   sending_application = [\"RIS\"]\nsending_facility = [\"HOSP\"]\n";
    let d = daemon(&tls, "", senders).await;
    let (ris, lab) = (tls.client("ris.hospital.example"), tls.client("lab.hospital.example"));
    let addr = d.mllp_tls.unwrap();
    let Some(answer) = python_mllp(addr, &tls.ca(), Some(&lab), &orm("SPOOF-1", "ACC-SPOOF")).await else { return };
    let ack = answer.expect("an answer");
    assert_eq!(ack_code(&ack), "AR", "{}", String::from_utf8_lossy(&ack));
    let err = segments(&ack).into_iter().find(|s| s[0] == "ERR").expect("an ERR segment");
    let err = err.join("|");
    assert!(err.contains("MSH^1^3") && err.contains("103^Table value not found^HL70357"), "{err}");
    assert!(err.contains("sender not allowed") && err.contains("lab.hospital.example"), "{err}");
    alerted(&d, "sender_not_allowed", 1).await;
    let mut plain = d.client().await;
    assert_eq!(
        ack_code(&plain.send(&orm("SPOOF-2", "ACC-SPOOF")).await),
        "AR",
        "a plain connection has no certificate"
    );
    assert!(d.events().await.is_empty(), "nothing refused is stored");
    let ack = python_mllp(addr, &tls.ca(), Some(&ris), &orm("RIS-1", "ACC-RIS")).await.unwrap().unwrap();
    assert_eq!(ack_code(&ack), "AA");
    assert_eq!(d.events().await.len(), 1);
    alerted(&d, "sender_not_allowed", 2).await;
    // Each refusal's Security Alert was committed before its AR was sent.
    let trail = audit_trail(d.http).await;
    let refusals = audited(&trail, "110113");
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    let record = &refusals[0]["record"];
    assert_eq!(record["event_types"][0]["code"], "110126", "Node Authentication");
    assert_eq!(record["outcome"], "MinorFailure");
    let sender = &record["participants"][0];
    assert_eq!(sender["user_id"], "RIS");
    let certificate = format!("lab.hospital.example sha256={}", fingerprint_of(&lab.0));
    assert_eq!(sender["user_name"], certificate.as_str());
    assert!(record["outcome_description"].as_str().unwrap().contains("sender not allowed"), "{record}");
    assert!(refusals[1]["record"]["participants"][0].get("user_name").is_none(), "the plain connection");
    assert_eq!(audited(&trail, "110109").len(), 1, "the accepted order");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_mllp_sent_to_the_tls_port_is_refused_in_the_handshake() {
    let tls = EdgeTls::new();
    let d = daemon(&tls, "", "").await;
    let mut c = MllpClient::connect(d.mllp_tls.unwrap()).await;
    c.write(&crate::support::mllp::frame(&orm("PLAIN-ON-TLS", "ACC-X"))).await;
    assert_eq!(c.read_ack().await, None, "no answer, the connection closed");
    alerted(&d, "tls_handshake_refused", 1).await;
    assert!(d.events().await.is_empty());
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_listener_closes_connections_from_outside_its_allowed_networks_at_once() {
    let closed = TestDaemon::start_with("[mllp]\nallow_from = [\"192.0.2.0/24\", \"10.0.0.0/8\"]\n").await;
    let mut c = closed.client().await;
    c.write(&crate::support::mllp::frame(&orm("FAR-1", "ACC-FAR"))).await;
    assert_eq!(c.read_ack().await, None, "closed without an answer");
    alerted(&closed, "source_address_refused", 1).await;
    assert!(closed.events().await.is_empty());
    closed.stop().await.unwrap();
    let open = TestDaemon::start_with("[mllp]\nallow_from = [\"127.0.0.0/8\"]\n").await;
    assert_eq!(ack_code(&open.client().await.send(&orm("NEAR-1", "ACC-NEAR")).await), "AA");
    assert_eq!(alerts(open.http, "source_address_refused").await, 0);
    open.stop().await.unwrap();
}

/// Two clients that connect and say nothing hold both connection slots; they are cut at the
/// handshake timeout, and the sender waiting behind them is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_stalled_in_the_handshake_are_cut_at_the_timeout_and_free_their_slots() {
    let tls = EdgeTls::new();
    let d = daemon(&tls, "handshake_timeout = \"300ms\"\n", "max_connections = 2\n").await;
    let addr = d.mllp_tls.unwrap();
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let ris = tls.client("ris");
    let Some(answer) = python_mllp(addr, &tls.ca(), Some(&ris), &orm("WAITED-1", "ACC-W")).await else { return };
    assert_eq!(ack_code(&answer.expect("served once a slot was free")), "AA");
    for mut stream in silent {
        let read = tokio::time::timeout(LIMIT, stream.read(&mut [0u8; 64])).await.expect("closed by the daemon");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    alerted(&d, "tls_handshake_refused", 2).await;
    d.stop().await.unwrap();
}

/// A client that trickles its ClientHello a byte at a time never lets a read wait long, so
/// only a deadline on the whole handshake cuts it: the daemon closes the connection while
/// the client is still sending, long before its 16 KiB record could be complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_handshake_is_cut_at_the_handshake_timeout() {
    use tokio::io::AsyncWriteExt;
    let tls = EdgeTls::new();
    let d = daemon(&tls, "handshake_timeout = \"300ms\"\n", "").await;
    let stream = tokio::net::TcpStream::connect(d.mllp_tls.unwrap()).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    // A handshake record header announcing 16 KiB, then its body one byte every 50 ms.
    let mut bytes = [0x16u8, 0x03, 0x01, 0x40, 0x00].into_iter().chain(std::iter::repeat(0x01)).take(400);
    let mut pace = tokio::time::interval(Duration::from_millis(50));
    let (mut sent, mut buf) = (0, [0u8; 64]);
    let closed = loop {
        tokio::select! {
            result = read.read(&mut buf) => break matches!(result, Ok(0) | Err(_)),
            _ = pace.tick() => match bytes.next() {
                Some(byte) if write.write_all(&[byte]).await.is_ok() => sent += 1,
                Some(_) => break true,
                None => break false,
            },
        }
    };
    assert!(closed, "still open after all {sent} trickled bytes: the handshake was never cut");
    alerted(&d, "tls_handshake_refused", 1).await;
    d.stop().await.unwrap();
}

/// An edge that takes HL7 only over TLS: the plain listener switched off (`listen = ""`) is
/// not bound at all, and the TLS listener serves alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_plain_listener_switched_off_only_the_tls_port_serves_mllp() {
    let tls = EdgeTls::new();
    let section = tls.section("");
    let daemon = crate::support::logged::Logged::start_edited(|text| {
        let plain = "[mllp]\nlisten = \"127.0.0.1:0\"\n";
        assert!(text.contains(plain), "{text}");
        text.replace(plain, "[mllp]\nlisten = \"\"\ntls_listen = \"127.0.0.1:0\"\n") + &section
    });
    let ready = daemon.wait_for("zenedge is ready").await;
    let ready = ready.lines().find(|l| l.contains("zenedge is ready")).unwrap().to_owned();
    assert!(ready.contains("mllp=off"), "{ready}");
    let addr = crate::support::logged::ready_address(&ready, "mllp_tls");
    let ris = tls.client("ris");
    if let Some(answer) = python_mllp(addr, &tls.ca(), Some(&ris), &orm("TLS-ONLY-1", "ACC-T")).await {
        assert_eq!(ack_code(&answer.expect("an ACK over TLS")), "AA");
    }
    daemon.stop();
}

/// What an admin sees of a refused handshake: a WARN line of the real binary naming the
/// alert, the listener, the client's address and port, and the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_handshake_is_logged_at_warn_with_the_address_and_the_reason() {
    use tokio::io::AsyncWriteExt;
    let tls = EdgeTls::new();
    let section = tls.section("");
    let daemon = crate::support::logged::Logged::start_edited(|text| {
        text.replace("[mllp]\n", "[mllp]\ntls_listen = \"127.0.0.1:0\"\n") + &section
    });
    let ready = daemon.wait_for("zenedge is ready").await;
    let addr = crate::support::logged::ready_address(&ready, "mllp_tls");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let client = stream.local_addr().unwrap();
    stream.write_all(&crate::support::mllp::frame(&orm("PLAIN-ON-TLS", "ACC-X"))).await.unwrap();
    let log = daemon.wait_for("tls_handshake_refused").await;
    let line = log.lines().find(|l| l.contains("tls_handshake_refused")).unwrap();
    assert!(line.contains("WARN") && line.contains("security alert"), "{line}");
    assert!(line.contains("listener=\"mllp_tls\""), "{line}");
    assert!(line.contains(&client.to_string()), "the client's address {client}: {line}");
    assert!(line.contains("reason=") && line.contains("TLS handshake refused"), "{line}");
    daemon.stop();
}
