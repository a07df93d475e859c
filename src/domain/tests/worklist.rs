//! The modality worklist projection: orders become one item per scheduled procedure step,
//! mapped as dcm4chee-arc maps HL7 to MWL; changes, cancels, completion and patient updates
//! follow; a replay of the log gives the same items (derived Study Instance UIDs included).

use super::*;
use crate::projections::views::{WorklistQuery, worklist_items};
use crate::projections::worklist::{COMPLETED, SCHEDULED, WorklistItem};

/// An ORM^O01 as a RIS sends it (no IPC; step fields from OBR-19/20/24/44, start ORC-7.4).
fn orm(control_id: &str, control: &str, status: &str, placer: &str, accession: &str, start: &str) -> NewEvent {
    hl7(&format!(
        "MSH|^~\\&|RIS|GENHOSP|ZENEDGE|RAD|20261214100000||ORM^O01|{control_id}|P|2.3.1\r\
         PID|1||MRN4712^^^GENHOSP^MR||Example^Anna^Maria||19800101|F\r\
         ORC|{control}|{placer}^RIS|F{placer}^PACS||{status}||^^^{start}\r\
         OBR|1|{placer}^RIS|F{placer}^PACS|CTHEAD^CT Head w/o contrast^L||||||||||||D123^Welby^Marcus||{accession}|RP{placer}|SPS{placer}||||CT||||||||||T77&Tech&Tina||||||||||RPID77^Head CT^LOCAL\r"
    ))
}

/// An OMI^O23 with two steps (two IPC), Study Instance UID in IPC-3, station AE in IPC-9.
fn omi(control_id: &str, patient: &str) -> NewEvent {
    hl7(&format!(
        "MSH|^~\\&|RIS|GENHOSP|ZENEDGE|RAD|20261214100000||OMI^O23^OMI_O23|{control_id}|P|2.5.1\r\
         PID|1||{patient}^^^GENHOSP^MR||Doe^John||19700202|M\r\
         ORC|NW|PLC300^RIS|FIL300^PACS||SC\r\
         TQ1|1||||||20261216093000\r\
         OBR|1|PLC300^RIS|FIL300^PACS|MRKNEE^MR Knee^L\r\
         IPC|ACC7001|RP7001|1.2.826.0.1.3680043.2.1125.7001|SPS7001a|MR|PROT1^Knee T1^L|MR Room 2||MR02\r\
         IPC|ACC7001|RP7001|1.2.826.0.1.3680043.2.1125.7001|SPS7001b|MR|PROT2^Knee T2^L|MR Room 2||MR02\r"
    ))
}

fn items(log: &Log<Projections>, q: WorklistQuery) -> Vec<WorklistItem> {
    worklist_items(&log.reader(), &q, 1000).unwrap().items
}

fn all(log: &Log<Projections>) -> Vec<WorklistItem> {
    items(log, WorklistQuery { include_completed: true, ..WorklistQuery::default() })
}

#[tokio::test]
async fn an_orm_o01_becomes_one_item_mapped_like_dcm4chee_and_a_replay_derives_the_same_study_uid() {
    let (dir, _clock, log) = start();
    send(&log, orm("C1", "NW", "SC", "PL1", "ACC1", "20261215081500")).await;
    let [item] = all(&log).try_into().unwrap();
    assert_eq!(item.status, SCHEDULED);
    assert_eq!(item.patient_id.as_deref(), Some("MRN4712"));
    assert_eq!(item.issuer_of_patient_id.as_deref(), Some("GENHOSP"));
    let name = item.patient_name.as_ref().unwrap();
    assert_eq!((name.family.as_deref(), name.given.as_deref()), (Some("Example"), Some("Anna")));
    assert_eq!((item.birth_date.as_deref(), item.sex.as_deref()), (Some("19800101"), Some("F")));
    assert_eq!(item.accession_number, "ACC1");
    assert_eq!((item.placer_order_number.as_deref(), item.filler_order_number.as_deref()), (Some("PL1"), Some("FPL1")));
    assert_eq!(item.requested_procedure_id.as_deref(), Some("RPPL1"));
    assert_eq!(item.step_id.as_deref(), Some("SPSPL1"));
    assert_eq!(item.modality.as_deref(), Some("CT"));
    assert_eq!((item.start_date.as_deref(), item.start_time.as_deref()), (Some("20261215"), Some("081500")));
    assert_eq!(item.requested_procedure.as_ref().and_then(|p| p.code.as_deref()), Some("RPID77"));
    assert_eq!(item.requesting_physician.as_ref().and_then(|p| p.family.as_deref()), Some("Welby"));
    assert_eq!(item.performing_physician.as_ref().and_then(|p| p.family.as_deref()), Some("Tech"));
    assert!(item.study_instance_uid_derived);
    assert!(item.study_instance_uid.starts_with("2.25.") && item.study_instance_uid.len() <= 64);
    log.close().await.unwrap();
    assert_replay_equals_projections(dir.path());
    let site = test_support::site();
    let db = crate::projections::rebuild::open(&dir.path().join("zenedge.redb"), &site, 1 << 20).unwrap();
    crate::projections::rebuild::rebuild(&db, &site, |_, _| {}).unwrap();
    drop(db);
    let log = open(dir.path(), &TestClock::at("2026-05-01T08:00:00Z".parse().unwrap()));
    assert_eq!(all(&log), [item], "a rebuild derives the same Study Instance UID");
}

#[tokio::test]
async fn each_ipc_of_an_omi_o23_is_an_item_sharing_the_orders_study_uid() {
    let (_dir, _clock, log) = start();
    send(&log, omi("C1", "P9")).await;
    let found = all(&log);
    let steps: Vec<_> = found.iter().map(|i| i.step_id.as_deref().unwrap()).collect();
    assert_eq!(steps, ["SPS7001a", "SPS7001b"]);
    for item in &found {
        assert_eq!(item.study_instance_uid, "1.2.826.0.1.3680043.2.1125.7001");
        assert!(!item.study_instance_uid_derived);
        assert_eq!(item.accession_number, "ACC7001");
        assert_eq!((item.station_ae.as_deref(), item.modality.as_deref()), (Some("MR02"), Some("MR")));
        assert_eq!(item.start_date.as_deref(), Some("20261216"));
    }
    assert_eq!(found[1].step_description.as_deref(), Some("Knee T2"));
}

#[tokio::test]
async fn queries_read_the_date_modality_patient_and_accession_indexes() {
    let (_dir, _clock, log) = start();
    send(&log, orm("C1", "NW", "SC", "PL1", "ACC1", "20261215081500")).await;
    send(&log, orm("C2", "NW", "SC", "PL2", "ACC2", "20261217081500")).await;
    send(&log, omi("C3", "P9")).await;
    let accessions = |q| items(&log, q).into_iter().map(|i| i.accession_number).collect::<Vec<_>>();
    let day = |from: &str, to: &str| WorklistQuery {
        date_from: Some(from.into()),
        date_to: Some(to.into()),
        ..WorklistQuery::default()
    };
    assert_eq!(accessions(day("20261215", "20261215")), ["ACC1"]);
    assert_eq!(accessions(day("20261215", "20261216")), ["ACC1", "ACC7001", "ACC7001"]);
    let ct = WorklistQuery { modality: Some("CT".into()), ..day("20261201", "20261231") };
    assert_eq!(accessions(ct), ["ACC1", "ACC2"]);
    let station = WorklistQuery { station_ae: Some("MR02".into()), ..WorklistQuery::default() };
    assert_eq!(accessions(station).len(), 2);
    let patient = WorklistQuery { patient_id: Some("P9".into()), ..WorklistQuery::default() };
    assert_eq!(accessions(patient), ["ACC7001", "ACC7001"]);
    let accession = WorklistQuery { accession: Some("ACC2".into()), ..WorklistQuery::default() };
    assert_eq!(accessions(accession), ["ACC2"]);
}

#[tokio::test]
async fn a_change_moves_the_item_a_cancel_removes_it_and_completion_hides_it() {
    let (dir, _clock, log) = start();
    send(&log, orm("C1", "NW", "SC", "PL1", "ACC1", "20261215081500")).await;
    send(&log, orm("C2", "NW", "SC", "PL2", "ACC2", "20261215091500")).await;
    send(&log, orm("C3", "NW", "SC", "PL3", "ACC3", "20261215101500")).await;
    send(&log, orm("C4", "XO", "SC", "PL1", "ACC1", "20261218120000")).await;
    let on = |date: &str| {
        let q = WorklistQuery { date_from: Some(date.into()), date_to: Some(date.into()), ..WorklistQuery::default() };
        items(&log, q).into_iter().map(|i| i.accession_number).collect::<Vec<_>>()
    };
    assert_eq!(on("20261218"), ["ACC1"], "XO moved the step to its new start");
    assert_eq!(on("20261215"), ["ACC2", "ACC3"]);
    send(&log, orm("C5", "CA", "CA", "PL2", "ACC2", "20261215091500")).await;
    assert_eq!(on("20261215"), ["ACC3"], "CA removes the item");
    send(&log, orm("C6", "SC", "CM", "PL3", "ACC3", "20261215101500")).await;
    assert!(on("20261215").is_empty(), "a completed item is hidden");
    let statuses: Vec<_> = all(&log).into_iter().map(|i| (i.accession_number, i.status)).collect();
    assert_eq!(statuses, [("ACC1".into(), SCHEDULED.into()), ("ACC3".into(), COMPLETED.into())]);
    log.close().await.unwrap();
    assert_replay_equals_projections(dir.path());
}

#[tokio::test]
async fn a_study_matched_with_the_order_completes_its_items() {
    let (_dir, _clock, log) = start();
    send(&log, Order::new("C1", "PL1", "ACC1", &["P1"]).event()).await;
    assert_eq!(all(&log)[0].status, SCHEDULED);
    Study::new("1.2.1", "ACC1", "P1").arrive(&log, 1).await;
    assert_eq!(all(&log)[0].status, COMPLETED);
    assert!(items(&log, WorklistQuery::default()).is_empty());
}

#[tokio::test]
async fn adt_a08_renames_open_items_and_adt_a40_moves_them_to_the_surviving_patient() {
    let (dir, _clock, log) = start();
    send(&log, omi("C1", "P9")).await;
    send(
        &log,
        hl7("MSH|^~\\&|PAS|GENHOSP|ZENEDGE|RAD|20261214110000||ADT^A08|C2|P|2.5.1\r\
             EVN|A08|20261214110000\r\
             PID|1||P9^^^GENHOSP^MR||Doe-Smith^John||19700203|M\r"),
    )
    .await;
    let patient = |id: &str| WorklistQuery { patient_id: Some(id.into()), ..WorklistQuery::default() };
    let renamed = items(&log, patient("P9"));
    assert_eq!(renamed.len(), 2);
    assert!(renamed.iter().all(|i| i.patient_name.as_ref().unwrap().family.as_deref() == Some("Doe-Smith")));
    assert_eq!(renamed[0].birth_date.as_deref(), Some("19700203"));
    let named = |prefix: &str| {
        let q = WorklistQuery { name_prefix: Some(prefix.into()), ..WorklistQuery::default() };
        items(&log, q).len()
    };
    assert_eq!((named("DOE-SMITH^J"), named("DOE^JOHN")), (2, 0), "the name index follows the rename");
    send(&log, merge("C3", "P1", "P9")).await;
    assert!(items(&log, patient("P9")).is_empty());
    let moved = items(&log, patient("P1"));
    assert_eq!(moved.len(), 2);
    assert_eq!(moved[0].patient_name.as_ref().unwrap().family.as_deref(), Some("Doe"));
    log.close().await.unwrap();
    assert_replay_equals_projections(dir.path());
}
