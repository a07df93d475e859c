//! HL7 as other systems really send it, through the real MLLP listener: what the standard
//! allows is accepted and stored like any message, what is wrong gets an `AE` the sender can
//! match to its message, and nothing is stored twice.

use std::path::PathBuf;

use crate::support::TestDaemon;
use crate::support::hl7msg::{ack_code, msa, msh, orm, segments};

/// An ORU^R01 as a laboratory system sends it: MSH-2 with three encoding characters (no
/// subcomponent separator, HL7 v2.3 §2.7), an `&` in the data.
const THREE_ENCODING_CHARACTERS: &str = "MSH|^~\\|LABSYS|R&D LAB|ZENEDGE|EDGE|20261123101500||ORU^R01|LAB-3C-1|P|2.3\r\
    PID|1||MRN-3C^^^HOSP^MR||Sample^Kim||19750505|F\r\
    OBR|1|PL-3C|FI-3C|CTABD^CT Abdomen & Pelvis^L|||20261123093000|||||||||||ACC-3C||||||CT\r\
    OBX|1|TX|RPT^Report||Liver and spleen normal||||||F\r";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msh2_without_a_subcomponent_separator_is_stored_and_acked_in_kind() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    let ack = c.send(THREE_ENCODING_CHARACTERS.as_bytes()).await;
    assert_eq!(ack_code(&ack), "AA", "{}", String::from_utf8_lossy(&ack));
    assert_eq!(msh(&ack, 2), "^~\\", "the ACK declares the same encoding characters");
    assert_eq!(msh(&ack, 6), "R&D LAB");
    assert_eq!(msa(&ack)[2], "LAB-3C-1");
    let events = d.events().await;
    assert_eq!(events.len(), 1);
    let summary = &events[0]["data"]["summary"];
    assert_eq!(summary["sending_facility"], "R&D LAB");
    assert_eq!(summary["orders"][0]["procedure"]["text"], "CT Abdomen & Pelvis");
    assert_eq!(summary["orders"][0]["accession_number"], "ACC-3C");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_encoding_characters_get_ae_with_the_control_id_in_msa2() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    for (msh2, id) in [("^~", "BAD-MSH2-1"), ("^~~\\&", "BAD-MSH2-2")] {
        let message = format!("MSH|{msh2}|RIS|HOSP|ZENEDGE|EDGE|20261123101500||ORM^O01|{id}|P|2.5.1\rPID|1||X\r");
        let ack = c.send(message.as_bytes()).await;
        assert_eq!(ack_code(&ack), "AE", "{msh2}");
        assert_eq!(msa(&ack)[2], id, "the sender can tell which message was refused");
        let err = segments(&ack).into_iter().find(|s| s[0] == "ERR").expect("an ERR segment");
        assert_eq!((err[2].as_str(), err[3].as_str()), ("MSH^1^2", "102^Data type error^HL70357"), "{msh2}");
    }
    // MSH-1 itself unusable: nothing can be read, MSA-2 stays empty.
    let ack = c.send(b"MSHA^~\\&ARISAHOSPAAAA20261123AAORM^O01ANOPEAPA2.5\r").await;
    assert_eq!(ack_code(&ack), "AE");
    assert_eq!(msa(&ack).get(2).map(String::as_str).unwrap_or_default(), "");
    assert!(d.events().await.is_empty(), "nothing refused is stored");
    d.stop().await.unwrap();
}

/// A radiology report feed's ORU^R01 with two order groups and an ORC before the first only:
/// each group's placer number in OBR-2, its accession (filler number) in OBR-3.
fn two_group_report(control_id: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|RADRPT|HOSP|ZENEDGE|EDGE|20261123120000||ORU^R01|{control_id}|P|2.4\r\
         PID|1||MRN-71^^^HOSP^MR||Sample^Alex||19800101|M\r\
         ORC|RE|PL-71^RIS|ACC-71^PACS||CM\r\
         OBR|1|PL-71^RIS|ACC-71^PACS|CTCHEST^CT Chest^L|||20261123110000|||||||||||||||||CT|F\r\
         OBX|1|TX|GDT^Report||Chest normal||||||F\r\
         OBR|2|PL-72^RIS|ACC-72^PACS|MRKNEE^MR Knee^L|||20261123111500|||||||||||||||||MR|F\r\
         OBX|1|TX|GDT^Report||Knee normal||||||F\r"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_order_group_is_an_order_of_its_own_also_when_the_message_comes_again() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    assert_eq!(ack_code(&c.send(&two_group_report("RPT-1")).await), "AA");
    // Received again under a new control id: the same two orders, neither changed.
    assert_eq!(ack_code(&c.send(&two_group_report("RPT-2")).await), "AA");
    for (accession, placer, procedure, modality) in
        [("ACC-71", "PL-71", "CTCHEST", "CT"), ("ACC-72", "PL-72", "MRKNEE", "MR")]
    {
        let found = d.get(&format!("/api/v1/orders?accession={accession}")).await.json();
        let items = found["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{found}");
        let order = &items[0];
        assert_eq!(
            (&order["placer_order_number"], &order["procedure"]["code"], &order["modality"]),
            (&placer.into(), &procedure.into(), &modality.into()),
            "{order}"
        );
    }
    let kinds: Vec<String> = d.events().await.iter().map(|e| e["event_type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, ["HL7MessageReceived", "HL7MessageReceived"], "no order was changed");
    d.stop().await.unwrap();
}

/// The HL7 messages in the log, with their `control_id_conflict` flags.
async fn received(d: &TestDaemon) -> Vec<(String, bool)> {
    d.events()
        .await
        .iter()
        .filter(|e| e["event_type"] == "HL7MessageReceived")
        .map(|e| (e["data"]["control_id"].as_str().unwrap().to_owned(), e["data"]["control_id_conflict"] == true))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_send_without_the_final_cr_is_a_duplicate_answered_with_the_stored_ack() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    let message = orm("TRIM-1", "ACC-TRIM-1");
    assert!(message.ends_with(b"\r"));
    let first = c.send(&message).await;
    assert_eq!(ack_code(&first), "AA");
    for copy in [&message[..message.len() - 1], &[&message[..], b"\n"].concat()[..]] {
        assert_eq!(c.send(copy).await, first, "answered with the stored ACK, byte for byte");
    }
    assert_eq!(received(&d).await, [("TRIM-1".to_owned(), false)], "stored once, not flagged");
    let events = d.events().await;
    let stored = events[0]["data"]["raw_text"].as_str().unwrap();
    assert!(stored.ends_with('\r'), "the bytes are kept as first received");
    d.stop().await.unwrap();
}

/// python-hl7's `mllp_send` (the `hl7` package on PyPI), or `None` (with the reason printed)
/// when it is not on `PATH`. Put a virtualenv holding it at the end of `PATH`: pynetdicom,
/// often installed beside it, brings its own `storescu` and `echoscu`, which must not shadow
/// DCMTK's for the tests in `dcmtk.rs`.
fn mllp_send() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("mllp_send"))
        .find(|p| p.is_file());
    if found.is_none() {
        println!("skipping: python-hl7's mllp_send is not on PATH (pip install hl7, in a virtualenv on PATH)");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_hl7_mllp_send_which_strips_the_final_cr_gets_the_stored_ack_for_a_re_send() {
    let Some(mllp_send) = mllp_send() else { return };
    let d = TestDaemon::start().await;
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("orm.hl7");
    std::fs::write(&file, orm("PY-1", "ACC-PY-1")).unwrap();
    let send = || {
        let mut command = std::process::Command::new(&mllp_send);
        command.args(["--loose", "-p", &d.mllp.port().to_string(), "-f"]).arg(&file).arg("127.0.0.1");
        tokio::task::spawn_blocking(move || command.output().expect("run mllp_send"))
    };
    let first = send().await.unwrap();
    assert!(first.status.success(), "mllp_send: {}", String::from_utf8_lossy(&first.stderr));
    let ack = &first.stdout;
    assert!(String::from_utf8_lossy(ack).contains("MSA|AA|PY-1"), "{}", String::from_utf8_lossy(ack));
    // The same file again from python-hl7, then with its final CR from our client.
    assert_eq!(&send().await.unwrap().stdout, ack, "the stored ACK again");
    let mine = d.client().await.send(&orm("PY-1", "ACC-PY-1")).await;
    assert!(ack.windows(mine.len()).any(|w| w == mine), "the stored ACK again");
    assert_eq!(received(&d).await, [("PY-1".to_owned(), false)], "stored once, not flagged");
    d.stop().await.unwrap();
}
