//! What the daemon writes to its log stream (journald in production).

use crate::support::MllpClient;
use crate::support::hl7msg::{ack_code, orm};
use crate::support::logged::{Logged, ready_address};
use crate::support::scu::{self, DX_FOR_PRESENTATION, EXPLICIT_LE};

/// Logs at INFO and above carry no patient data: a day's kinds of traffic (orders, a
/// re-send, a reused control id, a malformed message) leave no patient id, name, birth date
/// or clinical text in what the real binary writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_logs_carry_no_patient_data() {
    let daemon = Logged::start("");
    let text = daemon.wait_for("zenedge is ready").await;
    let mut c = MllpClient::connect(ready_address(&text, "mllp")).await;
    assert_eq!(ack_code(&c.send(&orm("LOG-1", "ACC-LOG-1")).await), "AA");
    assert_eq!(ack_code(&c.send(&orm("LOG-1", "ACC-LOG-1")).await), "AA");
    assert_eq!(ack_code(&c.send(&crate::support::hl7msg::orm_other_content("LOG-1")).await), "AA");
    let broken = String::from_utf8(orm("LOG-2", "ACC-LOG-2")).unwrap().replace("MSH|^~\\&|", "MSH|");
    let _ = c.send(broken.as_bytes()).await;
    drop(c);
    let text = daemon.stop();
    assert!(text.contains("re-sent HL7 message"), "the traffic was logged at all: {text}");
    for secret in ["PAT-ACC-LOG", "INS-77", "Doe", "Jane", "19700101", "Headache", "House"] {
        assert!(!text.contains(secret), "{secret:?} in the logs:\n{text}");
    }
}

/// Retention configured without a required forwarding destination: one WARN at start says
/// nothing will be deleted (no archive confirms what it holds), and it is true: no sweep runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_without_a_required_destination_warns_once_and_does_not_sweep() {
    let daemon = Logged::start("[retention]\ndicom_max_age = \"1d\"\n");
    daemon.wait_for("no file will be deleted").await;
    daemon.wait_for("zenedge is ready").await;
    let text = daemon.stop();
    let warnings: Vec<_> =
        text.lines().filter(|l| l.contains("WARN") && l.contains("no forwarding destination is required")).collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(!text.contains("retention sweep done"), "{text}");
}

/// A sender asking for application acknowledgements (MSH-15/MSH-16 `AL`), which zenedge does
/// not send, is named once at WARN however many messages it sends; other senders asking are
/// named once each, senders not asking never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_asking_for_application_acks_is_named_once_in_the_log() {
    let daemon = Logged::start("");
    let mut c = MllpClient::connect(ready_address(&daemon.wait_for("zenedge is ready").await, "mllp")).await;
    let enhanced = |sender: &str, id: &str, msh16: &str| {
        String::from_utf8(orm(id, &format!("ACC-{id}")))
            .unwrap()
            .replacen("|RIS|HOSP|", &format!("|{sender}|HOSP|"), 1)
            .replacen("|P|2.5.1\r", &format!("|P|2.5.1|||AL|{msh16}\r"), 1)
            .into_bytes()
    };
    for n in 0..3 {
        assert_eq!(ack_code(&c.send(&enhanced("RIS-A", &format!("AA-{n}"), "AL")).await), "CA");
    }
    assert_eq!(ack_code(&c.send(&enhanced("RIS-B", "AB-1", "AL")).await), "CA");
    assert_eq!(ack_code(&c.send(&enhanced("RIS-C", "AC-1", "NE")).await), "CA");
    drop(c);
    let text = daemon.stop();
    let named: Vec<&str> = text.lines().filter(|l| l.contains("application acknowledgements")).collect();
    assert_eq!(named.len(), 2, "{named:#?}");
    assert!(named[0].contains("WARN") && named[0].contains("RIS-A"), "{}", named[0]);
    assert!(named[1].contains("RIS-B"), "{}", named[1]);
}

/// A refused presentation context is visible to an admin: one WARN line each, with the SOP
/// class UID and name, the reason and the calling AE (the accepted ones are not listed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refused_presentation_context_is_logged_at_warn_with_its_sop_class_and_the_calling_ae() {
    let daemon = Logged::start("");
    let dicom = ready_address(&daemon.wait_for("zenedge is ready").await, "dicom");
    tokio::task::spawn_blocking(move || {
        let find = "1.2.840.10008.5.1.4.1.2.2.1";
        let contexts: &[(&str, &[&str])] = &[(DX_FOR_PRESENTATION, &[EXPLICIT_LE]), (find, &[EXPLICIT_LE])];
        scu::connect(dicom, "DX01", "ZENEDGE", contexts, 16_384).expect("association").release();
    })
    .await
    .unwrap();
    daemon.wait_for("DICOM presentation context refused").await;
    let text = daemon.stop();
    let refused: Vec<_> = text.lines().filter(|l| l.contains("DICOM presentation context refused")).collect();
    assert_eq!(refused.len(), 1, "{text}");
    let line = refused[0];
    for needle in [
        "WARN",
        "calling_ae=DX01",
        "abstract_syntax=1.2.840.10008.5.1.4.1.2.2.1",
        "sop_class=\"Study Root Query/Retrieve Information Model - FIND\"",
        "reason=\"not_storage\"",
    ] {
        assert!(line.contains(needle), "{needle:?} not in {line}");
    }
    let accepted = text.lines().find(|l| l.contains("DICOM association accepted")).expect("accepted");
    assert!(accepted.contains("contexts=1") && accepted.contains("refused=1"), "{accepted}");
}

/// Below the disk reserve an admin learns it at start (one WARN), and each refusal's line
/// gives sizes as people read them, not raw bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_below_the_disk_reserve_warns_and_refusals_give_human_sizes() {
    let daemon = Logged::start_edited(|text| text.replace("disk_reserve = \"0\"", "disk_reserve = \"100%\""));
    let text = daemon.wait_for("zenedge is ready").await;
    let mut c = MllpClient::connect(ready_address(&text, "mllp")).await;
    assert_eq!(ack_code(&c.send(&orm("FULL-1", "ACC-FULL-1")).await), "AR");
    drop(c);
    daemon.wait_for("HL7 message not stored (AR)").await;
    let text = daemon.stop();
    let start =
        text.lines().find(|l| l.contains("free disk space is below store.disk_reserve")).expect("a warning at start");
    assert!(start.contains("WARN") && start.contains("free=") && start.contains("iB"), "{start}");
    let refusal = text.lines().find(|l| l.contains("HL7 message not stored (AR)")).unwrap();
    assert!(refusal.contains("free disk space") && refusal.contains("iB is below the reserve of"), "{refusal}");
    assert!(!refusal.contains(" bytes"), "{refusal}");
}
