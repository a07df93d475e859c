//! Order groups: which segments belong to which order, and what each order says.
//!
//! ORM^O01, OMI^O23 and friends repeat `ORC [TQ1…] OBR [NTE…] [IPC…] [ZDS]`; ORU^R01
//! repeats `[ORC] OBR [NTE…] [OBX…]`, where the ORC is optional per group. Grouping:
//! * ORC starts a group; the segments after it up to the first OBR are its *head*
//!   (TQ1 timing in OMI^O23);
//! * the first OBR after an ORC joins that group, and the segments after it (IPC, ZDS, NTE,
//!   OBX…) up to the next ORC or OBR are the group's *body*;
//! * any other OBR starts a group of its own, without a head: an ORC belongs to its own
//!   group only, so a group without one takes its order control (none), its placer and filler
//!   numbers and everything else from its OBR. Each group is its own order; letting a
//!   previous group's ORC stand in would give several orders one placer number, and a later
//!   message would then find one order for all of them.
//!
//! Values are looked up head first, then body, so "within the group" is cheap; every segment
//! belongs to one group at most, so the work stays linear in the message size.

use std::ops::Range;

use super::parse::{Repetition, Segment};
use super::path::FieldPath;
use super::summary::{CodedValue, Order, Physician};

/// One order group, as index ranges into the message's segments.
#[derive(Debug, Clone)]
struct Group {
    /// The ORC and the segments after it, before the first OBR (empty for a bare OBR).
    head: Range<usize>,
    /// The OBR and the segments after it, up to the next ORC or OBR.
    body: Range<usize>,
}

impl Group {
    fn has_obr(&self) -> bool {
        !self.body.is_empty()
    }

    /// The group's segments: head, then body.
    fn segments<'m, 'a>(&self, all: &'m [Segment<'a>]) -> impl Iterator<Item = &'m Segment<'a>> {
        all[self.head.clone()].iter().chain(&all[self.body.clone()])
    }

    fn first<'m, 'a>(&self, all: &'m [Segment<'a>], name: &str) -> Option<&'m Segment<'a>> {
        self.segments(all).find(|s| s.name() == name)
    }
}

/// Splits the segments into order groups (see the module doc).
fn groups(segments: &[Segment<'_>]) -> Vec<Group> {
    let mut done = Vec::new();
    let mut current: Option<Group> = None;
    for (i, segment) in segments.iter().enumerate() {
        match (segment.name(), current.as_mut()) {
            ("ORC", _) => {
                done.extend(current.take());
                current = Some(Group { head: i..i + 1, body: i + 1..i + 1 });
            }
            ("OBR", Some(group)) if !group.has_obr() => group.body = i..i + 1,
            ("OBR", _) => {
                done.extend(current.take());
                current = Some(Group { head: i..i, body: i..i + 1 });
            }
            (_, Some(group)) if group.has_obr() => group.body.end = i + 1,
            (_, Some(group)) => {
                group.head.end = i + 1;
                group.body = i + 1..i + 1;
            }
            _ => {}
        }
    }
    done.extend(current);
    done
}

/// The orders of a message, with accession numbers looked up at `accession_from`.
pub(crate) fn extract(segments: &[Segment<'_>], accession_from: &[FieldPath]) -> Vec<Order> {
    groups(segments).iter().map(|group| order(group, segments, accession_from)).collect()
}

fn order(group: &Group, all: &[Segment<'_>], accession_from: &[FieldPath]) -> Order {
    let orc = group.first(all, "ORC");
    let obr = group.first(all, "OBR");
    let ipc = group.first(all, "IPC");
    // Reads SEG-field.component of an optional segment.
    let get = |segment: Option<&Segment<'_>>, field: usize, component: usize| {
        segment.and_then(|s| s.field(field).component(component).text())
    };
    let (accession_number, accession_source) = accession(group, all, accession_from).unzip();
    Order {
        // ORC-1 order control; ORC-5 order status.
        order_control: get(orc, 1, 1),
        order_status: get(orc, 5, 1),
        // ORC-2 / OBR-2 placer order number (EI); ORC-3 / OBR-3 filler order number (EI).
        placer_order_number: get(orc, 2, 1).or_else(|| get(obr, 2, 1)),
        filler_order_number: get(orc, 3, 1).or_else(|| get(obr, 3, 1)),
        accession_number,
        accession_source,
        // IPC-5 modality (CWE); OBR-24 diagnostic serv sect id (ID).
        modality: get(ipc, 5, 1).or_else(|| get(obr, 24, 1)),
        // OBR-4 universal service identifier (CE/CWE).
        procedure: obr.and_then(|s| coded_value(s.field(4).repetition(1))),
        // IPC-2 requested procedure id (EI); IPC-4 scheduled procedure step id (EI).
        requested_procedure_id: get(ipc, 2, 1),
        scheduled_procedure_step_id: get(ipc, 4, 1),
        // OBR-16 ordering provider (XCN), else ORC-12 ordering provider (XCN).
        requesting_physician: obr
            .and_then(|s| physician(s.field(16).repetition(1)))
            .or_else(|| orc.and_then(|s| physician(s.field(12).repetition(1)))),
        // OBR-13 relevant clinical information (ST; CWE in v2.7+), else OBR-31 reason for
        // study (CE/CWE).
        clinical_info: obr
            .and_then(|s| coded_text(s.field(13).repetition(1)).or_else(|| coded_text(s.field(31).repetition(1)))),
        // IPC-3 study instance UID (EI), else ZDS-1 study instance UID (RP: UID^app^type^subtype).
        study_instance_uid: get(ipc, 3, 1).or_else(|| get(group.first(all, "ZDS"), 1, 1)),
        scheduled_datetime: scheduled(group, all, orc, obr),
    }
}

/// The first configured location with a non-empty, non-null value in this group.
fn accession(group: &Group, all: &[Segment<'_>], accession_from: &[FieldPath]) -> Option<(String, String)> {
    accession_from.iter().find_map(|path| {
        group
            .segments(all)
            .filter(|s| s.name() == path.segment())
            .find_map(|s| s.get(path).value().filter(|v| !v.is_empty()))
            .map(|value| (value.into_owned(), path.to_string()))
    })
}

/// TQ1-7 start date/time, else OBR-36 scheduled date/time, else the TQ start (component 4,
/// a TS whose first subcomponent is the time) of OBR-27 or ORC-7, else OBR-7 observation
/// date/time.
fn scheduled(
    group: &Group,
    all: &[Segment<'_>],
    orc: Option<&Segment<'_>>,
    obr: Option<&Segment<'_>>,
) -> Option<String> {
    let tq_start =
        |segment: Option<&Segment<'_>>, field| segment.and_then(|s| s.field(field).component(4).subcomponent(1).text());
    group
        .first(all, "TQ1")
        .and_then(|tq1| tq1.field(7).component(1).text())
        .or_else(|| obr.and_then(|s| s.field(36).component(1).text()))
        .or_else(|| tq_start(obr, 27))
        .or_else(|| tq_start(orc, 7))
        .or_else(|| obr.and_then(|s| s.field(7).component(1).text()))
}

/// CE/CWE: identifier ^ text ^ coding system.
fn coded_value(cwe: Repetition<'_>) -> Option<CodedValue> {
    let value = CodedValue {
        code: cwe.component(1).text(),
        text: cwe.component(2).text(),
        coding_system: cwe.component(3).text(),
    };
    (value != CodedValue::default()).then_some(value)
}

/// The readable part of a value that may be plain text or coded: component 2 (text) when
/// present, else component 1.
fn coded_text(value: Repetition<'_>) -> Option<String> {
    value.component(2).text().or_else(|| value.component(1).text())
}

/// XCN: id ^ family name (FN: surname & …) ^ given name ^ …
fn physician(xcn: Repetition<'_>) -> Option<Physician> {
    let physician = Physician {
        id: xcn.component(1).text(),
        family: xcn.component(2).subcomponent(1).text(),
        given: xcn.component(3).text(),
    };
    (physician != Physician::default()).then_some(physician)
}

#[cfg(test)]
mod tests {
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
            (
                first.order_control.as_deref(),
                first.placer_order_number.as_deref(),
                first.filler_order_number.as_deref()
            ),
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
        assert_eq!(
            (s.orders[0].order_control.as_deref(), s.orders[0].filler_order_number.as_deref()),
            (None, Some("F9"))
        );
    }

    #[test]
    fn orc_without_obr_is_an_order_too() {
        let s = summary("MSH|^~\\&|RIS|H|||||ORM^O01|6|P|2.3\rORC|CA|P1|F1||CA\r");
        assert_eq!(s.orders.len(), 1);
        assert_eq!(
            (s.orders[0].order_control.as_deref(), s.orders[0].order_status.as_deref()),
            (Some("CA"), Some("CA"))
        );
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
}
