use super::super::{ReadOptions, Summary, read};

fn summary_with(text: &str, opts: &ReadOptions) -> Summary {
    read(text.as_bytes(), opts).expect("accepted").summary
}

fn summary(text: &str) -> Summary {
    summary_with(text, &ReadOptions::default())
}

const ORM_O01: &str = "MSH|^~\\&|RIS|GENHOSP|ZENEDGE|RAD|20260314100000||ORM^O01|ORM0001|P|2.3.1\r\
    PID|1||MRN4711^^^GENHOSP^MR||Example^Anna||19800101|F\r\
    PV1|1|O\r\
    ORC|NW|PLC100^RIS|FIL200^PACS||SC||^^^20260315090000||20260314100000|||D123^Welby^Marcus^^^DR\r\
    OBR|1|PLC100^RIS|FIL200^PACS|CTHEAD^CT Head w/o contrast^L|||||||||Headache since 3 days|||||ACC5001||||||CT\r\
    ZDS|1.2.826.0.1.3680043.2.1125.1.99.1^ZENEDGE^Application^DICOM\r";

#[test]
fn orm_o01_order_group_is_summarised() {
    let s = summary(ORM_O01);
    assert_eq!(s.orders.len(), 1);
    let o = &s.orders[0];
    assert_eq!(o.order_control.as_deref(), Some("NW"));
    assert_eq!(o.order_status.as_deref(), Some("SC"));
    assert_eq!(o.placer_order_number.as_deref(), Some("PLC100"));
    assert_eq!(o.filler_order_number.as_deref(), Some("FIL200"));
    assert_eq!((o.accession_number.as_deref(), o.accession_source.as_deref()), (Some("ACC5001"), Some("OBR-18")));
    assert_eq!(o.modality.as_deref(), Some("CT"));
    let procedure = o.procedure.as_ref().unwrap();
    assert_eq!(
        (procedure.code.as_deref(), procedure.text.as_deref(), procedure.coding_system.as_deref()),
        (Some("CTHEAD"), Some("CT Head w/o contrast"), Some("L"))
    );
    let doctor = o.requesting_physician.as_ref().unwrap();
    assert_eq!(
        (doctor.id.as_deref(), doctor.family.as_deref(), doctor.given.as_deref()),
        (Some("D123"), Some("Welby"), Some("Marcus"))
    );
    assert_eq!(o.clinical_info.as_deref(), Some("Headache since 3 days"));
    assert_eq!(o.study_instance_uid.as_deref(), Some("1.2.826.0.1.3680043.2.1125.1.99.1"));
    assert_eq!(o.scheduled_datetime.as_deref(), Some("20260315090000"));
    assert_eq!(s.visit.unwrap().patient_class.as_deref(), Some("O"));
}

const OMI_O23: &str = "MSH|^~\\&|RIS|GENHOSP|ZENEDGE|RAD|20260314110000||OMI^O23^OMI_O23|OMI0001|P|2.5.1\r\
    PID|1||MRN4711^^^GENHOSP^MR||Example^Anna||19800101|F\r\
    PV1|1|I\r\
    ORC|NW|PLC300|FIL400||SC\r\
    TQ1|1||||||20260316141500\r\
    OBR|1|PLC300|FIL400|MRKNEE^MR Knee^L||||||||||||D555^House^Greg|||||||||||||||R-Knee pain\r\
    IPC|ACC7001|RP7001|1.2.826.0.1.3680043.2.1125.1.99.2|SPS7001|MR^Magnetic Resonance^DCM\r\
    IPC|ACC7001|RP7001|1.2.826.0.1.3680043.2.1125.1.99.2|SPS7002|MR\r";

#[test]
fn omi_o23_order_takes_accession_modality_and_uid_from_ipc() {
    let s = summary(OMI_O23);
    assert_eq!(s.orders.len(), 1);
    let o = &s.orders[0];
    assert_eq!((o.accession_number.as_deref(), o.accession_source.as_deref()), (Some("ACC7001"), Some("IPC-1")));
    assert_eq!(o.modality.as_deref(), Some("MR"));
    assert_eq!(o.requested_procedure_id.as_deref(), Some("RP7001"));
    assert_eq!(o.scheduled_procedure_step_id.as_deref(), Some("SPS7001"));
    assert_eq!(o.study_instance_uid.as_deref(), Some("1.2.826.0.1.3680043.2.1125.1.99.2"));
    assert_eq!(o.scheduled_datetime.as_deref(), Some("20260316141500"));
    assert_eq!(o.clinical_info.as_deref(), Some("R-Knee pain"), "OBR-31 stands in for an empty OBR-13");
    assert_eq!(o.requesting_physician.as_ref().unwrap().family.as_deref(), Some("House"));
}

#[test]
fn accession_is_looked_up_only_within_its_own_group() {
    let s = summary(
        "MSH|^~\\&|RIS|H|||||ORM^O01|2|P|2.3\r\
         ORC|NW|P1|F1\rOBR|1|P1|F1|CT1||||||||||||||ACC1\r\
         ORC|NW|P2|F2\rOBR|1|P2|F2|CT2\r",
    );
    let accession: Vec<_> =
        s.orders.iter().map(|o| (o.accession_number.as_deref(), o.accession_source.as_deref())).collect();
    // The second group has no OBR-18 and no IPC: ORC-3 is next in the default order.
    assert_eq!(accession, [(Some("ACC1"), Some("OBR-18")), (Some("F2"), Some("ORC-3"))]);
}

#[test]
fn configured_accession_locations_are_tried_in_order() {
    let opts = ReadOptions {
        accession_from: vec!["OBR-3.2".parse().unwrap(), "OBR-18".parse().unwrap()],
        ..ReadOptions::default()
    };
    let s = summary_with(ORM_O01, &opts);
    assert_eq!(
        (s.orders[0].accession_number.as_deref(), s.orders[0].accession_source.as_deref()),
        (Some("PACS"), Some("OBR-3.2"))
    );
    let opts = ReadOptions { accession_from: vec![], ..ReadOptions::default() };
    assert_eq!(summary_with(ORM_O01, &opts).orders[0].accession_number, None);
}

#[test]
fn null_accession_candidates_are_skipped() {
    let s = summary("MSH|^~\\&|RIS|H|||||ORM^O01|3|P|2.3\rORC|XO|P1|F1\rOBR|1|P1|F1|CT1||||||||||||||\"\"\r");
    assert_eq!(s.orders[0].accession_number.as_deref(), Some("F1"));
}

#[test]
fn a_second_obr_without_orc_is_its_own_order_with_the_identifiers_of_its_obr() {
    let s = summary(
        "MSH|^~\\&|RIS|H|||||ORM^O01|4|P|2.3\r\
         ORC|NW|P1|F1||||^^^20260401080000|||||D9^Doc^Ann\r\
         OBR|1|P1|F1|XR1||||||||||||||ACC1||||||CR\rZDS|1.2.3.1\r\
         OBR|2|P1b|F1b|XR2||||||||||||||ACC2||||||DX\r",
    );
    assert_eq!(s.orders.len(), 2);
    let first = &s.orders[0];
    assert_eq!(
        (first.order_control.as_deref(), first.placer_order_number.as_deref(), first.filler_order_number.as_deref()),
        (Some("NW"), Some("P1"), Some("F1"))
    );
    assert_eq!(first.study_instance_uid.as_deref(), Some("1.2.3.1"));
    assert_eq!(first.scheduled_datetime.as_deref(), Some("20260401080000"));
    let second = &s.orders[1];
    assert_eq!(second.order_control, None, "the first group's ORC is not the second's");
    assert_eq!(second.placer_order_number.as_deref(), Some("P1b"), "OBR-2");
    assert_eq!(second.filler_order_number.as_deref(), Some("F1b"), "OBR-3");
    assert_eq!(second.accession_number.as_deref(), Some("ACC2"));
    assert_eq!(second.modality.as_deref(), Some("DX"));
    assert_eq!(second.study_instance_uid, None, "the ZDS belongs to the first group");
    assert_eq!(second.requesting_physician, None, "ORC-12 is the first group's");
    assert_eq!(second.scheduled_datetime, None, "ORC-7 is the first group's");
}

#[test]
fn an_oru_with_one_orc_and_several_obr_groups_reads_each_group_from_its_own_segments() {
    // As result feeds send it: ORC only before the first OBR, the accession in OBR-3.
    let s = summary(
        "MSH|^~\\&|RADRPT|HOSP|ZENEDGE|EDGE|20260314120000||ORU^R01|RPT-9|P|2.4\r\
         PID|1||MRN77^^^HOSP^MR||Sample^Alex\r\
         ORC|RE|PL-71^RIS|FIL-71^PACS||CM\r\
         OBR|1|PL-71^RIS|FIL-71^PACS|CTCHEST^CT Chest^L|||20260314110000|||||||||||||||||CT|F\r\
         OBX|1|TX|GDT^Report||Chest normal||||||F\r\
         OBR|2|PL-72^RIS|FIL-72^PACS|CTABD^CT Abdomen^L|||20260314111500|||||||||||||||||CT|F\r\
         OBX|1|TX|GDT^Report||Abdomen normal||||||F\r",
    );
    let orders: Vec<_> = s
        .orders
        .iter()
        .map(|o| {
            (
                o.order_control.as_deref(),
                o.placer_order_number.as_deref(),
                o.accession_number.as_deref(),
                o.accession_source.as_deref(),
                o.procedure.as_ref().and_then(|p| p.code.as_deref()),
                o.modality.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        orders,
        [
            (Some("RE"), Some("PL-71"), Some("FIL-71"), Some("ORC-3"), Some("CTCHEST"), Some("CT")),
            (None, Some("PL-72"), Some("FIL-72"), Some("OBR-3"), Some("CTABD"), Some("CT")),
        ]
    );
}

#[test]
fn obr_without_any_orc_is_still_an_order() {
    let s = summary("MSH|^~\\&|LAB|H|||||ORU^R01|5|P|2.5\rPID|1||M1\rOBR|1|P9|F9|GLU\rOBX|1|NM|GLU||5.5\r");
    assert_eq!(s.orders.len(), 1);
    assert_eq!((s.orders[0].order_control.as_deref(), s.orders[0].filler_order_number.as_deref()), (None, Some("F9")));
}

#[test]
fn orc_without_obr_is_an_order_too() {
    let s = summary("MSH|^~\\&|RIS|H|||||ORM^O01|6|P|2.3\rORC|CA|P1|F1||CA\r");
    assert_eq!(s.orders.len(), 1);
    assert_eq!((s.orders[0].order_control.as_deref(), s.orders[0].order_status.as_deref()), (Some("CA"), Some("CA")));
}

#[test]
fn grouping_is_linear_even_with_one_orc_and_many_obrs() {
    let mut text = String::from("MSH|^~\\&|RIS|H|||||ORM^O01|7|P|2.3\rORC|NW|P1\r");
    text.push_str(&"TQ1|1\r".repeat(10_000));
    text.push_str(&"OBR|1|||||||||||||||||ACC\r".repeat(10_000));
    // Past what `read` accepts (MAX_ORDER_SEGMENTS): the grouping itself is exercised.
    let message = super::super::Message::parse(&text, super::super::Charset::Iso8859_1).unwrap();
    let orders = super::extract(message.segments(), &ReadOptions::default().accession_from);
    assert_eq!(orders.len(), 10_000);
    assert!(orders.iter().all(|o| o.accession_number.as_deref() == Some("ACC")));
}
