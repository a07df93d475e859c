//! The status page (`/status`) of a running daemon: each listener's counts come from real
//! traffic (over TLS on the TLS listeners' rows; DCMTK is the DICOM/TLS peer, skipped without
//! it) and survive a restart (the history is saved in the state directory), a corrupt
//! history file costs the history but not the start, and the page works in a real headless
//! Chromium (no console errors, the figures of `/api/v1/status`, the reload, the plots, no
//! patient data without the scope `read`, usable at 1024×768).

use std::time::Duration;

use crate::support::access::client_toml_for;
use crate::support::dataset::Instance;
use crate::support::hl7msg::{ack_code, orm};
use crate::support::http::get_as;
use crate::support::{TestDaemon, eventually, scu};

/// A client with the scope `status` only: it may see the page, but no patient.
const STATUS_ONLY: &str = "zt_status-page-client-token-000000";
/// The patient of the test traffic (invented), to look for on the page.
const PATIENT: &str = "Zzyzx^Quentin";

fn config() -> String {
    format!(
        "[dicom]\nstable_after = \"1s\"\nworklist = true\n{}",
        client_toml_for("status-page", STATUS_ONLY, &["status"])
    )
}

/// One ORM whose patient is [`PATIENT`].
fn order(control_id: &str, accession: &str) -> Vec<u8> {
    String::from_utf8(orm(control_id, accession)).unwrap().replace("Doe^Jane^Q", PATIENT).into_bytes()
}

/// `hl7` orders (each answered AA), one malformed frame (answered AE), and `instances` CT
/// instances of one study, all with [`PATIENT`].
async fn traffic(daemon: &TestDaemon, hl7: u32, instances: u32) {
    let mut client = daemon.client().await;
    for i in 0..hl7 {
        let ack = client.send(&order(&format!("PAGE-{i}"), &format!("ACC-PAGE-{i}"))).await;
        assert_eq!(ack_code(&ack), "AA");
    }
    // No control id (MSH-10): refused with AE.
    let ack = client.send(b"MSH|^~\\&|RIS|HOSP|ZE|EDGE|20261123||ORM^O01||P|2.5.1\rPID|1\r").await;
    assert_eq!(ack_code(&ack), "AE");
    let study = (0..instances)
        .map(|n| Instance { patient_name: PATIENT.into(), ..Instance::ct(4242, 1, n + 1) })
        .collect::<Vec<_>>();
    scu::store_all(daemon.dicom, study).await;
}

/// The number in the cell `field` of the listener row `listener`.
fn cell(page: &str, listener: &str, field: &str) -> u64 {
    let start = page.find(&format!("data-listener=\"{listener}\"")).unwrap_or_else(|| panic!("{listener}: {page}"));
    let row = page[start..].split("</tr>").next().unwrap();
    let at = row.find(&format!("data-field=\"{field}\">")).unwrap_or_else(|| panic!("{field}: {row}"));
    let text = &row[at + field.len() + 14..];
    let digits: String =
        text.trim_start_matches("<span class=\"warn\">").chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("{field}: {row}"))
}

async fn page(daemon: &TestDaemon) -> String {
    let response = get_as(daemon.http, "/status", Some(STATUS_ONLY)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_counts_come_from_traffic_and_survive_a_restart() {
    let daemon = TestDaemon::start_with(&config()).await;
    traffic(&daemon, 3, 2).await;
    let before = page(&daemon).await;
    assert_eq!(cell(&before, "mllp", "last_hour"), 4, "3 AA and 1 AE");
    assert_eq!(cell(&before, "mllp", "negative_last_day"), 1);
    assert_eq!(cell(&before, "dicom", "last_day"), 2);
    let worklist = before.find("data-listener=\"worklist\"").map(|at| &before[at..at + 400]).expect("the worklist row");
    assert!(worklist.contains(&daemon.dicom.to_string()), "served on the DICOM listener: {worklist}");
    let daemon = daemon.restart().await;
    let after = page(&daemon).await;
    assert_eq!(cell(&after, "mllp", "last_day"), 4, "the day's counts were saved at shutdown");
    assert_eq!(cell(&after, "mllp", "negative_last_day"), 1);
    assert_eq!(cell(&after, "dicom", "last_day"), 2);
    assert!(after.contains("none since the start"), "the last answer is this run's");
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_history_file_starts_an_empty_history_and_is_replaced_at_shutdown() {
    let daemon = TestDaemon::start_with(&config()).await;
    traffic(&daemon, 1, 1).await;
    let (dir, file) = (daemon.dir.clone(), daemon.dir.path().join("activity.msgpack"));
    daemon.stop().await.unwrap();
    assert!(file.exists(), "saved at shutdown");
    std::fs::write(&file, b"\x00\xffnot a history at all").unwrap();
    let daemon = TestDaemon::start_in(dir.clone(), &config()).await;
    let page = page(&daemon).await;
    assert_eq!(cell(&page, "mllp", "last_day"), 0, "an empty history");
    traffic(&daemon, 1, 0).await;
    daemon.stop().await.unwrap();
    let saved = zenedge::activity::History::load(file.parent().unwrap()).expect("a valid file again").unwrap();
    let activity = zenedge::activity::Activity::new();
    activity.restore(saved);
    activity.opened(zenedge::activity::Listener::Mllp, "saved");
    let mllp = &activity.listeners(jiff::Timestamp::now())[0];
    assert_eq!((mllp.last_day, mllp.negative_last_day), (2, 1), "this run's answers: 1 AA, 1 AE");
}

/// Why the browser test cannot run here, if it cannot: Debian's `chromium` and Playwright for
/// python are needed (`.ci/run` installs both).
fn browser_missing() -> Option<String> {
    if !std::path::Path::new("/usr/bin/chromium").exists() {
        return Some("/usr/bin/chromium is missing (apt-get install chromium)".into());
    }
    let probe = std::process::Command::new("python3").args(["-c", "import playwright.sync_api"]).output();
    match probe {
        Ok(out) if out.status.success() => None,
        Ok(_) => Some("Playwright for python is missing (pip install playwright)".into()),
        Err(e) => Some(format!("python3 cannot run: {e}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_works_in_a_real_headless_chromium() {
    if let Some(reason) = browser_missing() {
        println!("SKIPPED the_page_works_in_a_real_headless_chromium: {reason}");
        return;
    }
    let daemon = TestDaemon::start_with(&config()).await;
    traffic(&daemon, 3, 2).await;
    // The study completes after `stable_after` (1 s) and then waits for its order.
    eventually("the study waiting for an order", Duration::from_secs(20), || async {
        page(&daemon).await.contains(r#"<span data-waiting="studies">1</span>"#)
    })
    .await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let artifacts = root.join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("status-page.png");
    let script = root.join("tests/browser/status_page.py");
    let url = format!("http://{}", daemon.http);
    let outputs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (outputs.path().join("stdout"), outputs.path().join("stderr"));
    let mut child = std::process::Command::new("python3")
        .arg(&script)
        .args(["--url", &url, "--status-token", STATUS_ONLY, "--read-token", crate::support::access::TOKEN])
        .args(["--patient", PATIENT, "--hl7", "4", "--instances", "2"])
        .arg("--screenshot")
        .arg(&screenshot)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    // The daemon answers on this runtime meanwhile; the script is bounded by its own timeouts
    // and, should it hang, killed here.
    let status = eventually("the browser checks to end", Duration::from_secs(120), || {
        let exited = child.try_wait().unwrap();
        async move { exited }
    })
    .await;
    let _ = child.kill();
    let (stdout, stderr) = (
        std::fs::read_to_string(&out_path).unwrap_or_default(),
        std::fs::read_to_string(&err_path).unwrap_or_default(),
    );
    println!("{stdout}");
    assert!(status.success(), "the browser checks failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all checks passed"), "{stdout}");
    assert!(screenshot.metadata().is_ok_and(|m| m.len() > 1000), "a screenshot was saved");
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_over_tls_are_counted_on_the_tls_listener_row() {
    let tls = crate::support::tls::EdgeTls::new();
    let extra = format!("[mllp]\ntls_listen = \"127.0.0.1:0\"\n{}\n{}", tls.section(""), config());
    let daemon = TestDaemon::start_with(&extra).await;
    let (address, ca, client) = (daemon.mllp_tls.unwrap(), tls.ca(), tls.client("ris.hospital.example"));
    let mut secure = crate::support::tls::TlsMllpClient::connect(address, &ca, &client).await.unwrap();
    assert_eq!(ack_code(&secure.send(&order("TLS-1", "ACC-TLS-1")).await.unwrap()), "AA");
    let mut plain = daemon.client().await;
    for i in 0..2 {
        assert_eq!(ack_code(&plain.send(&order(&format!("PLAIN-{i}"), &format!("ACC-P-{i}"))).await), "AA");
    }
    let page = page(&daemon).await;
    assert_eq!(cell(&page, "mllp_tls", "last_hour"), 1);
    assert_eq!(cell(&page, "mllp", "last_hour"), 2);
    assert!(page.contains(&address.to_string()), "the TLS listener's address");
    daemon.stop().await.unwrap();
}

/// DCMTK's storescu over TLS with `client` as `aet` to the daemon's DICOM/TLS port: whether
/// it succeeded.
async fn storescu_tls(
    storescu: std::path::PathBuf,
    tls: &crate::support::tls::EdgeTls,
    client: &(std::path::PathBuf, std::path::PathBuf),
    aet: &str,
    port: u16,
    file: std::path::PathBuf,
) -> bool {
    let mut command = std::process::Command::new(storescu);
    command.arg("+tls").arg(&client.1).arg(&client.0).arg("+cf").arg(tls.ca());
    command.args(["-aet", aet, "-aec", "ZENEDGE", "127.0.0.1", &port.to_string()]).arg(file);
    tokio::task::spawn_blocking(move || command.output().expect("run storescu")).await.unwrap().status.success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dicom_over_tls_is_counted_on_its_row_and_a_rejected_association_is_its_last_error() {
    let Some(storescu) =
        crate::support::tls::tool("storescu", "DCMTK is the DICOM-over-TLS peer; Debian package dcmtk")
    else {
        return;
    };
    if !crate::support::certs::rsa_available() {
        return;
    }
    let tls = crate::support::tls::EdgeTls::rsa();
    let allow = "calling_ae_allow = [{ ae = \"CT01\", certificate = \"ct01.radiology.example\" }, \"US01\"]\n";
    let extra = format!("[dicom]\ntls_listen = \"127.0.0.1:0\"\n{allow}\n{}", tls.section(""));
    let daemon = TestDaemon::start_with(&extra).await;
    let port = daemon.dicom_tls.unwrap().port();
    let files = tempfile::tempdir().unwrap();
    let sent = crate::support::dataset::write_file(files.path(), &Instance::ct(61, 1, 1), scu::EXPLICIT_LE);
    let ct01 = tls.client("ct01.radiology.example");
    assert!(storescu_tls(storescu.clone(), &tls, &ct01, "CT01", port, sent.clone()).await, "stored over TLS");
    let other = tls.client("us01.radiology.example");
    assert!(!storescu_tls(storescu, &tls, &other, "CT01", port, sent).await, "CT01 with another certificate");
    let response = get_as(daemon.http, "/status", Some(crate::support::access::TOKEN)).await;
    let page = response.body;
    assert_eq!(cell(&page, "dicom_tls", "last_hour"), 1);
    assert_eq!(cell(&page, "dicom", "last_hour"), 0);
    let start = page.find("data-listener=\"dicom_tls\"").unwrap();
    let row = page[start..].split("</tr>").next().unwrap();
    assert!(row.contains("association from &quot;CT01&quot; rejected"), "{row}");
    daemon.stop().await.unwrap();
}
