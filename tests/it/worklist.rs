//! The modality worklist served from the log: orders that arrived over MLLP are answered to
//! DCMTK's `findscu -W` (an independent C-FIND SCU) by the PS3.4 C.2.2.2 matching rules, with
//! every requested key, in a character set the requester can read; a C-CANCEL ends the answer
//! with Cancel; each query leaves a Query audit record; the worklist is off unless configured;
//! and the whole story: an order queried from the worklist and imaged with the item's
//! accession number and Study Instance UID matches that order with nothing typed by hand.
//!
//! Without DCMTK these tests print why they are skipped and pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};

use crate::dcmtk::{dcmtk, run};
use crate::support::dataset::Instance;
use crate::support::http::{audit_trail, audited};
use crate::support::scu::store_all;
use crate::support::{TestDaemon, eventually};

const WORKLIST_ON: &str = "[dicom]\nworklist = true\n";

/// An ORM^O01 for one order: patient, accession, modality, scheduled start (ORC-7.4), in
/// `charset` (MSH-18; the bytes are encoded in it).
struct Orm<'a> {
    control_id: &'a str,
    patient: (&'a str, &'a str),
    accession: &'a str,
    modality: &'a str,
    start: &'a str,
}

impl Orm<'_> {
    fn latin1(&self) -> Vec<u8> {
        let text = format!(
            "MSH|^~\\&|RIS|HOSP|ZENEDGE|EDGE|20261201090000||ORM^O01|{id}|P|2.3.1|||||DEU|8859/1\r\
             PID|1||{pid}^^^HOSP^MR||{name}||19700101|F\r\
             ORC|NW|PL-{acc}|FL-{acc}||SC||^^^{start}\r\
             OBR|1|PL-{acc}|FL-{acc}|PROC^Procedure {acc}^L||||||||||||||{acc}|RP-{acc}|SPS-{acc}||||{modality}\r",
            id = self.control_id,
            pid = self.patient.0,
            name = self.patient.1,
            acc = self.accession,
            modality = self.modality,
            start = self.start,
        );
        text.chars().map(|c| u8::try_from(u32::from(c)).expect("Latin-1 text")).collect()
    }
}

async fn send_orders(d: &TestDaemon, orders: &[Orm<'_>]) {
    let mut client = d.client().await;
    for order in orders {
        let ack = client.send(&order.latin1()).await;
        assert!(String::from_utf8_lossy(&ack).contains("MSA|AA"), "{}", String::from_utf8_lossy(&ack));
    }
}

/// `findscu -W` with `keys`; its exit status and the answers it extracted, in order.
async fn findscu(findscu: &Path, port: u16, args: &[&str], keys: &[&str]) -> (bool, String, Vec<InMemDicomObject>) {
    let out_dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(findscu);
    command.args(["-W", "-v", "-aet", "CT01", "-aec", "ZENEDGE", "-X", "-od"]).arg(out_dir.path()).args(args);
    for key in keys {
        command.args(["-k", key]);
    }
    command.args(["127.0.0.1", &port.to_string()]);
    let out = run(command).await;
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let mut files: Vec<PathBuf> = std::fs::read_dir(out_dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let answers =
        files.iter().map(|f| dicom_object::open_file(f).map(DefaultDicomObject::into_inner).unwrap()).collect();
    (out.status.success(), log, answers)
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag).unwrap().to_str().unwrap().trim_end().to_owned()
}

fn step(obj: &InMemDicomObject) -> &InMemDicomObject {
    &obj.element(tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE).unwrap().items().unwrap()[0]
}

fn accessions(answers: &[InMemDicomObject]) -> Vec<String> {
    let mut out: Vec<String> = answers.iter().map(|a| text(a, tags::ACCESSION_NUMBER)).collect();
    out.sort();
    out
}

const RETURN_KEYS: [&str; 6] = [
    "PatientName",
    "PatientID",
    "AccessionNumber",
    "StudyInstanceUID",
    "ScheduledProcedureStepSequence[0].Modality",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findscu_worklist_queries_match_by_the_standards_rules_and_return_every_requested_key() {
    let Some(tool) = dcmtk("findscu") else { return };
    let d = TestDaemon::start_with(WORKLIST_ON).await;
    send_orders(
        &d,
        &[
            Orm {
                control_id: "W1",
                patient: ("P1", "Doe^Jane"),
                accession: "A1",
                modality: "CT",
                start: "20261215081500",
            },
            Orm {
                control_id: "W2",
                patient: ("P2", "Müller^Jürgen"),
                accession: "A2",
                modality: "CT",
                start: "20261216093000",
            },
            Orm {
                control_id: "W3",
                patient: ("P3", "Roe^Richard"),
                accession: "A3",
                modality: "MR",
                start: "20261215120000",
            },
            Orm {
                control_id: "W4",
                patient: ("P4", "Doe^John"),
                accession: "A4",
                modality: "CT",
                start: "20270105080000",
            },
        ],
    )
    .await;
    let port = d.dicom.port();
    let query = |extra: &'static [&'static str]| {
        let keys: Vec<&str> = RETURN_KEYS.iter().copied().chain(extra.iter().copied()).collect();
        let tool = tool.clone();
        async move { findscu(&tool, port, &[], &keys).await }
    };
    let (ok, log, all) = query(&[]).await;
    assert!(ok, "{log}");
    assert_eq!(accessions(&all), ["A1", "A2", "A3", "A4"], "universal matching: {log}");

    let (_, log, found) = query(&[
        "ScheduledProcedureStepSequence[0].Modality=CT",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20261201-20261231",
    ])
    .await;
    assert_eq!(accessions(&found), ["A1", "A2"], "modality and date range: {log}");
    let (_, _, found) = query(&["PatientName=doe*"]).await;
    assert_eq!(accessions(&found), ["A1", "A4"], "wildcard, case-insensitive name");
    let (_, _, found) = query(&["ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=-20261215"]).await;
    assert_eq!(accessions(&found), ["A1", "A3"]);
    let (_, _, found) = query(&["PatientID=P3", "AccessionNumber=A3"]).await;
    assert_eq!(accessions(&found), ["A3"]);
    let (_, _, found) = query(&[
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20261215-20261216",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime=1000-0900",
    ])
    .await;
    assert_eq!(accessions(&found), ["A3"], "combined date-time range: 15 Dec 10:00 to 16 Dec 09:00");

    let a2 = all.iter().find(|a| text(a, tags::ACCESSION_NUMBER) == "A2").unwrap();
    assert_eq!(text(a2, tags::PATIENT_NAME), "Müller^Jürgen", "Latin-1 read back, no mojibake");
    assert_eq!(text(a2, tags::SPECIFIC_CHARACTER_SET), "ISO_IR 100");
    assert_eq!(text(a2, tags::PATIENT_ID), "P2");
    assert!(text(a2, tags::STUDY_INSTANCE_UID).starts_with("2.25."), "a derived Study Instance UID");
    assert_eq!(text(step(a2), tags::MODALITY), "CT");
    assert_eq!(text(step(a2), tags::SCHEDULED_PROCEDURE_STEP_START_DATE), "20261216");

    let (_, log, utf8) =
        findscu(&tool, port, &[], &["SpecificCharacterSet=ISO_IR 192", "PatientName", "PatientID=P2"]).await;
    assert_eq!(utf8.len(), 1, "{log}");
    assert_eq!(text(&utf8[0], tags::SPECIFIC_CHARACTER_SET), "ISO_IR 192");
    assert_eq!(text(&utf8[0], tags::PATIENT_NAME), "Müller^Jürgen");

    let queries = audited(&audit_trail(d.http).await, "110112")
        .into_iter()
        .filter(|r| r["record"]["participants"][0]["user_id"] == "CT01")
        .count();
    assert_eq!(queries, 7, "one Query record per C-FIND");
    let metrics = d.get("/metrics").await.body;
    assert!(metrics.contains("worklist_queries_total{status=\"success\"} 7"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_cancel_ends_the_answer_with_cancel_before_every_item_was_sent() {
    let Some(tool) = dcmtk("findscu") else { return };
    let d = TestDaemon::start_with(WORKLIST_ON).await;
    // One message of 900 orders: 900 items, answered one Pending each.
    let mut groups = String::new();
    for n in 0..900 {
        groups.push_str(&format!(
            "ORC|NW|PL{n}|FL{n}||SC||^^^20261215081500\rOBR|1|PL{n}|FL{n}|PROC^Procedure^L||||||||||||||ACC{n}||||||CT\r"
        ));
    }
    let message = format!(
        "MSH|^~\\&|RIS|HOSP|ZENEDGE|EDGE|20261201090000||ORM^O01|MANY|P|2.3.1\rPID|1||P1^^^HOSP^MR||Doe^Jane\r{groups}"
    );
    let ack = d.client().await.send(message.as_bytes()).await;
    assert!(String::from_utf8_lossy(&ack).contains("MSA|AA"));
    let (_, log, answers) = findscu(&tool, d.dicom.port(), &["--cancel", "1"], &["AccessionNumber", "PatientID"]).await;
    assert!(!answers.is_empty() && answers.len() < 900, "{} answers: {log}", answers.len());
    assert!(log.contains("Cancel"), "{log}");
    let metrics = d.get("/metrics").await.body;
    assert!(metrics.contains("worklist_queries_total{status=\"cancel\"} 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_dicom_worklist_the_context_is_refused_and_nothing_is_answered() {
    let Some(tool) = dcmtk("findscu") else { return };
    let d = TestDaemon::start().await;
    let (ok, log, answers) = findscu(&tool, d.dicom.port(), &[], &["PatientID"]).await;
    assert!(!ok && answers.is_empty(), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_study_made_from_a_worklist_item_matches_its_order_and_completes_the_item() {
    let Some(tool) = dcmtk("findscu") else { return };
    let d = TestDaemon::start_with("[dicom]\nworklist = true\nstable_after = \"100ms\"\n").await;
    let order = Orm {
        control_id: "E1",
        patient: ("P7", "Doe^Jane"),
        accession: "E2E-1",
        modality: "CT",
        start: "20261215081500",
    };
    send_orders(&d, &[order]).await;
    let keys = [
        "PatientID",
        "PatientName",
        "AccessionNumber",
        "StudyInstanceUID",
        "ScheduledProcedureStepSequence[0].Modality=CT",
    ];
    let (_, log, answers) = findscu(&tool, d.dicom.port(), &[], &keys).await;
    let [item] = answers.as_slice() else { panic!("one item expected: {log}") };
    // The modality takes every identifier from the item: no accession number typed by hand.
    let study = text(item, tags::STUDY_INSTANCE_UID);
    let instance = Instance {
        study: study.clone(),
        series: format!("{study}.1"),
        sop: format!("{study}.1.1"),
        patient_id: text(item, tags::PATIENT_ID),
        patient_name: text(item, tags::PATIENT_NAME),
        accession: text(item, tags::ACCESSION_NUMBER),
        ..Instance::ct(1, 1, 1)
    };
    store_all(d.dicom, vec![instance]).await;
    let matched =
        eventually("the study made from the item matches its order", std::time::Duration::from_secs(20), || async {
            d.events().await.into_iter().find(|e| e["event_type"] == "StudyMatched")
        })
        .await;
    assert_eq!(matched["data"]["study_instance_uid"], study.as_str());
    assert_eq!(matched["data"]["accession_number"], "E2E-1");
    let (_, log, after) = findscu(&tool, d.dicom.port(), &[], &keys).await;
    assert!(after.is_empty(), "the matched order's item is COMPLETED and hidden: {log}");
}
