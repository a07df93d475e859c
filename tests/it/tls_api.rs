//! The HTTP API over TLS (`http.tls`), with curl as the client: served with the `[tls]`
//! identity; a client certificate is optional, but one that is presented must be valid. The
//! zenedge commands that talk to the daemon use HTTPS then.
//! Without curl this test prints why it is skipped and passes.

use std::process::Command;

use crate::support::TestDaemon;
use crate::support::certs::{Ca, Leaf};
use crate::support::tls::{EdgeTls, tool};

async fn curl(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || Command::new("curl").args(&args).output().expect("run curl")).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reads_the_api_over_https_with_or_without_a_client_certificate() {
    if tool("curl", "the HTTPS client of this test").is_none() {
        return;
    }
    let tls = EdgeTls::new();
    let d = TestDaemon::start_with(&format!("[http]\ntls = true\n{}", tls.section(""))).await;
    let url = |path: &str| format!("https://127.0.0.1:{}{path}", d.http.port());
    let ca = tls.ca().display().to_string();
    let base =
        |path: &str| vec!["-sS".to_owned(), "--max-time".into(), "20".into(), "--cacert".into(), ca.clone(), url(path)];
    let out = curl(base("/readyz")).await;
    assert!(out.status.success(), "curl --cacert: {}", String::from_utf8_lossy(&out.stderr));
    let ready: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(ready["ready"], true, "{ready}");
    let (cert, key) = tls.client("viewer");
    let mut with_cert = base("/healthz");
    with_cert.extend(["--cert".into(), cert.display().to_string(), "--key".into(), key.display().to_string()]);
    let out = curl(with_cert).await;
    assert!(out.status.success(), "with a client certificate: {}", String::from_utf8_lossy(&out.stderr));
    let (foreign, foreign_key) =
        tls.issue(&Leaf { stem: "foreign".into(), issuer: Ca::Other, ..Leaf::client("viewer") });
    let mut bad = base("/healthz");
    bad.extend(["--cert".into(), foreign.display().to_string(), "--key".into(), foreign_key.display().to_string()]);
    assert!(!curl(bad).await.status.success(), "a client certificate of another CA is refused");
    let https = zenedge::operator::Daemon {
        https: true,
        ..zenedge::operator::Daemon::from((d.http, crate::support::access::TOKEN))
    };
    let status = tokio::task::spawn_blocking(move || zenedge::operator::status::fetch(https)).await.unwrap();
    assert_eq!(status.expect("zenedge status over HTTPS")["edge_id"], "e1");
    let plain = curl(vec![
        "-sS".into(),
        "--max-time".into(),
        "20".into(),
        format!("http://127.0.0.1:{}/healthz", d.http.port()),
    ])
    .await;
    assert!(!plain.status.success(), "plain HTTP on the HTTPS port gets no answer");
    d.stop().await.unwrap();
}
