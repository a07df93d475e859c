//! DICOM over TLS with real clients: DCMTK's `storescu`/`echoscu` in their default profile
//! (BCP 195) and pynetdicom with an `ssl.SSLContext`. An instance sent over TLS is stored
//! byte for byte and its event names the client certificate; a client without a certificate
//! or with one of another CA is refused in the handshake; an AE title bound to a certificate
//! is refused (A-ASSOCIATE-RJ) from any other one, and that is a security alert.
//!
//! The server key is RSA: DCMTK's default profile offers only RSA-authenticated suites in TLS
//! 1.2 (`tls_1_2_only_dcmtk_connects_with_ecdhe_rsa_and_aes_gcm` shows the suite). Without
//! DCMTK, openssl (for the RSA key) or pynetdicom these tests print why they are skipped and
//! pass.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::certs::{Ca, Leaf, fingerprint_of, rsa_available};
use crate::support::dataset::{Instance, dataset_bytes, write_file};
use crate::support::http::{audit_trail, audited};
use crate::support::scu::EXPLICIT_LE;
use crate::support::tls::{EdgeTls, alerts, tool};
use crate::support::{TestDaemon, eventually};

/// The calling AE entries: CT01 only with its certificate, US01 with any.
const ALLOW: &str = "calling_ae_allow = [{ ae = \"CT01\", certificate = \"ct01.radiology.example\" }, \"US01\"]\n";

/// DCMTK's `tool`, an RSA server identity and a daemon with DICOM over TLS; `None` (skipped)
/// without DCMTK or openssl.
async fn setup(tool_name: &str) -> Option<(PathBuf, EdgeTls, TestDaemon)> {
    let found = tool(tool_name, "DCMTK is the DICOM-over-TLS peer; Debian package dcmtk")?;
    if !rsa_available() {
        return None;
    }
    let tls = EdgeTls::rsa();
    let d =
        TestDaemon::start_with(&format!("[dicom]\ntls_listen = \"127.0.0.1:0\"\n{ALLOW}\n{}", tls.section(""))).await;
    Some((found, tls, d))
}

/// `+tls KEY CERT +cf CA` (or `+tla` without a client certificate) and the association.
fn dcmtk(tool: &Path, tls: &EdgeTls, client: Option<&(PathBuf, PathBuf)>, aet: &str, port: u16) -> Command {
    let mut command = Command::new(tool);
    match client {
        Some((cert, key)) => command.arg("+tls").arg(key).arg(cert),
        None => command.arg("+tla"),
    };
    command.arg("+cf").arg(tls.ca()).args(["-aet", aet, "-aec", "ZENEDGE", "127.0.0.1", &port.to_string()]);
    command
}

async fn run(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().expect("run DCMTK")).await.unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

async fn alerted(d: &TestDaemon, kind: &str, n: u64) {
    eventually(&format!("{n} {kind} alerts"), Duration::from_secs(20), || async {
        let seen = alerts(d.http, kind).await;
        if seen == n { Ok(()) } else { Err(format!("{seen}")) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcmtk_over_tls_echoes_and_stores_byte_equal_with_the_certificate_in_the_event() {
    let Some((storescu, tls, d)) = setup("storescu").await else { return };
    let Some(echoscu) = tool("echoscu", "DCMTK") else { return };
    let port = d.dicom_tls.unwrap().port();
    let ct01 = tls.client("ct01.radiology.example");
    let out = run(dcmtk(&echoscu, &tls, Some(&ct01), "CT01", port)).await;
    assert!(out.status.success(), "echoscu +tls: {}", text(&out));
    let files = tempfile::tempdir().unwrap();
    let sent = write_file(files.path(), &Instance::ct(60, 1, 1), EXPLICIT_LE);
    let mut store = dcmtk(&storescu, &tls, Some(&ct01), "CT01", port);
    store.arg(&sent);
    let out = run(store).await;
    assert!(out.status.success(), "storescu +tls: {}", text(&out));
    let events = d.events().await;
    let stored = events.iter().find(|e| e["event_type"] == "InstanceStored").expect("an InstanceStored");
    assert_eq!(stored["data"]["calling_ae"], "CT01");
    let identity = &stored["data"]["peer_identity"];
    assert_eq!(identity["subject_cn"], "ct01.radiology.example");
    assert_eq!(identity["sha256_fingerprint"], fingerprint_of(&ct01.0).as_str());
    let path = d.dir.path().join(stored["data"]["file_path"].as_str().unwrap());
    assert!(dataset_bytes(&path).1 == dataset_bytes(&sent).1, "the stored data set is the one sent");
    assert_eq!(alerts(d.http, "tls_handshake_refused").await, 0);
    let trail = audit_trail(d.http).await;
    let transfers = audited(&trail, "110104");
    assert_eq!(transfers.len(), 1, "{trail:?}");
    let source = &transfers[0]["record"]["participants"][0];
    assert_eq!(source["user_id"], "CT01");
    let certificate = format!("ct01.radiology.example sha256={}", fingerprint_of(&ct01.0));
    assert_eq!(source["user_name"], certificate.as_str(), "the certificate identity");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcmtk_without_a_certificate_or_with_another_cas_is_refused_in_the_handshake() {
    let Some((echoscu, tls, d)) = setup("echoscu").await else { return };
    let port = d.dicom_tls.unwrap().port();
    let out = run(dcmtk(&echoscu, &tls, None, "US01", port)).await;
    assert!(!out.status.success(), "echoscu +tla (no certificate) got in: {}", text(&out));
    let foreign = tls.issue(&Leaf { stem: "foreign".into(), issuer: Ca::Other, ..Leaf::client("us01") });
    let out = run(dcmtk(&echoscu, &tls, Some(&foreign), "US01", port)).await;
    assert!(!out.status.success(), "a certificate of another CA got in: {}", text(&out));
    alerted(&d, "tls_handshake_refused", 2).await;
    let us01 = tls.client("us01.radiology.example");
    let out = run(dcmtk(&echoscu, &tls, Some(&us01), "US01", port)).await;
    assert!(out.status.success(), "the trusted CA's certificate: {}", text(&out));
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ae_title_presented_with_another_aes_certificate_is_rejected_and_alerted() {
    let Some((echoscu, tls, d)) = setup("echoscu").await else { return };
    let port = d.dicom_tls.unwrap().port();
    let mr01 = tls.client("mr01.radiology.example");
    let out = run(dcmtk(&echoscu, &tls, Some(&mr01), "CT01", port)).await;
    assert!(!out.status.success(), "CT01 got in with MR01's certificate: {}", text(&out));
    assert!(text(&out).contains("Association Rejected"), "an A-ASSOCIATE-RJ: {}", text(&out));
    alerted(&d, "calling_ae_spoofed", 1).await;
    let trail = audit_trail(d.http).await;
    let spoofed = audited(&trail, "110113");
    assert_eq!(spoofed.len(), 1, "recorded before the A-ASSOCIATE-RJ: {trail:?}");
    let peer = &spoofed[0]["record"]["participants"][0];
    assert_eq!(peer["user_id"], "CT01");
    assert!(peer["user_name"].as_str().unwrap().starts_with("mr01.radiology.example sha256="), "{peer}");
    let out = run(dcmtk(&echoscu, &tls, Some(&mr01), "US01", port)).await;
    assert!(out.status.success(), "an AE title bound to no certificate: {}", text(&out));
    assert_eq!(alerts(d.http, "calling_ae_spoofed").await, 1);
    d.stop().await.unwrap();
}

/// An OpenSSL limited to TLS 1.2 (as on systems before TLS 1.3) in DCMTK's default profile:
/// the handshake needs an RSA server key and ECDHE-RSA with AES-GCM, which is what is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_only_dcmtk_connects_with_ecdhe_rsa_and_aes_gcm() {
    let Some((echoscu, tls, d)) = setup("echoscu").await else { return };
    let conf = tls.dir.path().join("tls12.cnf");
    std::fs::write(
        &conf,
        "openssl_conf = conf\n[conf]\nssl_conf = ssl\n[ssl]\nsystem_default = default\n[default]\nMaxProtocol = TLSv1.2\n",
    )
    .unwrap();
    let us01 = tls.client("us01");
    let mut echo = dcmtk(&echoscu, &tls, Some(&us01), "US01", d.dicom_tls.unwrap().port());
    echo.arg("-d").env("OPENSSL_CONF", &conf);
    let out = run(echo).await;
    let log = text(&out);
    assert!(out.status.success(), "echoscu over TLS 1.2: {log}");
    assert!(log.contains("TLSv1.2") && log.contains("ECDHE-RSA-AES128-GCM-SHA256"), "{log}");
    d.stop().await.unwrap();
}

/// pynetdicom's C-STORE with `tls_args=(ssl.SSLContext, server name)`.
const PYNETDICOM_STORE: &str = r#"
import ssl, sys
from pydicom import dcmread
from pynetdicom import AE
host, port, ca, cert, key, path = sys.argv[1], int(sys.argv[2]), *sys.argv[3:7]
ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
ctx.load_cert_chain(cert, key)
ds = dcmread(path)
ae = AE(ae_title="CT01")
ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
assoc = ae.associate(host, port, ae_title="ZENEDGE", tls_args=(ctx, "localhost"))
if not assoc.is_established:
    sys.exit("association not established")
status = assoc.send_c_store(ds)
assoc.release()
print(f"0x{status.Status:04X}")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pynetdicom_with_an_ssl_context_stores_over_tls() {
    let python =
        std::env::var_os("PEERS_VENV").map_or_else(|| PathBuf::from("python3"), |v| Path::new(&v).join("bin/python3"));
    let has = Command::new(&python).args(["-c", "import pynetdicom"]).output().is_ok_and(|o| o.status.success());
    if !has {
        println!("skipping: {} cannot import pynetdicom (set PEERS_VENV to a venv that has it)", python.display());
        return;
    }
    let tls = EdgeTls::new();
    let d =
        TestDaemon::start_with(&format!("[dicom]\ntls_listen = \"127.0.0.1:0\"\n{ALLOW}\n{}", tls.section(""))).await;
    let ct01 = tls.client("ct01.radiology.example");
    let files = tempfile::tempdir().unwrap();
    let sent = write_file(files.path(), &Instance::ct(61, 1, 1), EXPLICIT_LE);
    let addr = d.dicom_tls.unwrap();
    let mut command = Command::new(&python);
    command.args(["-c", PYNETDICOM_STORE, "127.0.0.1", &addr.port().to_string()]);
    command.arg(tls.ca()).arg(&ct01.0).arg(&ct01.1).arg(&sent);
    let out = run(command).await;
    assert!(out.status.success(), "pynetdicom: {}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0x0000", "{}", text(&out));
    let events = d.events().await;
    let stored = events.iter().find(|e| e["event_type"] == "InstanceStored").expect("stored");
    assert_eq!(stored["data"]["peer_identity"]["subject_cn"], "ct01.radiology.example");
    d.stop().await.unwrap();
}
