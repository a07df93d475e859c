use super::super::{ReadOptions, read};
use super::*;

fn summary(text: &str) -> Summary {
    read(text.as_bytes(), &ReadOptions::default()).expect("accepted").summary
}

const ADT_A01: &str = "MSH|^~\\&|HIS^1.2.840.99.1^ISO|GENHOSP|ZENEDGE|RAD|20260314083000+0100||ADT^A01^ADT_A01|ADT0001|P|2.5.1\r\
    EVN|A01|20260314083000\r\
    PID|1||MRN4711^^^GENHOSP&1.2.840.99.2&ISO^MR~900123^^^^PI~^^^NOBODY^XX||Example^Anna^Maria^JR^DR||19800101|F|||Main St 1^^Springfield\r\
    PV1|1|I|WARD1^101^A||||||||||||||||V0042\r";

#[test]
fn header_facts_are_decoded() {
    let s = summary(ADT_A01);
    assert_eq!((s.message_code.as_str(), s.trigger_event.as_str()), ("ADT", "A01"));
    assert_eq!(s.message_structure.as_deref(), Some("ADT_A01"));
    assert_eq!(s.control_id, "ADT0001");
    assert_eq!(s.sending_application.as_deref(), Some("HIS"));
    assert_eq!(s.sending_facility.as_deref(), Some("GENHOSP"));
    assert_eq!(s.receiving_application.as_deref(), Some("ZENEDGE"));
    assert_eq!(s.receiving_facility.as_deref(), Some("RAD"));
    assert_eq!(s.message_datetime.as_deref(), Some("20260314083000+0100"));
    assert_eq!(s.version.as_deref(), Some("2.5.1"));
    assert_eq!(s.processing_id.as_deref(), Some("P"));
    assert_eq!((s.declared_charset.as_deref(), s.charset.as_str(), s.charset_fallback), (None, "ASCII", false));
    assert_eq!(s.message_type(), "ADT^A01");
    assert!(s.orders.is_empty() && s.merge.is_none());
}

#[test]
fn adt_a01_patient_and_visit_are_summarised() {
    let s = summary(ADT_A01);
    let p = s.patient.unwrap();
    assert_eq!(p.id.as_deref(), Some("MRN4711"));
    let ids: Vec<_> = p
        .identifiers
        .iter()
        .map(|i| (i.id.as_str(), i.assigning_authority.as_deref(), i.identifier_type.as_deref(), i.field.as_str()))
        .collect();
    assert_eq!(ids, [("MRN4711", Some("GENHOSP"), Some("MR"), "PID-3"), ("900123", None, Some("PI"), "PID-3")]);
    let name = p.name.unwrap();
    assert_eq!(
        (
            name.family.as_deref(),
            name.given.as_deref(),
            name.middle.as_deref(),
            name.suffix.as_deref(),
            name.prefix.as_deref()
        ),
        (Some("Example"), Some("Anna"), Some("Maria"), Some("JR"), Some("DR"))
    );
    assert_eq!((p.birth_date.as_deref(), p.sex.as_deref()), (Some("19800101"), Some("F")));
    let v = s.visit.unwrap();
    assert_eq!((v.patient_class.as_deref(), v.visit_number.as_deref()), (Some("I"), Some("V0042")));
}

#[test]
fn sender_falls_back_to_the_universal_id_when_the_namespace_id_is_empty() {
    let s = summary("MSH|^~\\&|^1.2.3^ISO|FAC|||||ADT^A08|X|P|2.5\r");
    assert_eq!(s.sending_application.as_deref(), Some("1.2.3"));
}

#[test]
fn older_pid2_and_pid4_identifiers_are_kept() {
    let s = summary("MSH|^~\\&|HIS|H|||||ADT^A04|2|P|2.3\rPID|1|EXT77^^^OLD||ALT5|Old^Style\r");
    let p = s.patient.unwrap();
    assert_eq!(p.id.as_deref(), Some("EXT77"), "PID-2 stands in for an empty PID-3");
    let fields: Vec<_> = p.identifiers.iter().map(|i| (i.id.as_str(), i.field.as_str())).collect();
    assert_eq!(fields, [("EXT77", "PID-2"), ("ALT5", "PID-4")]);
}

#[test]
fn explicit_nulls_become_empty_strings_and_empty_fields_none() {
    let s = summary("MSH|^~\\&|HIS|H|||||ADT^A08|3|P|2.5\rPID|1||M1||\"\"||\"\"|\rPV1||\"\"\r");
    let p = s.patient.unwrap();
    assert_eq!(p.name.unwrap().family.as_deref(), Some(""));
    assert_eq!(p.birth_date.as_deref(), Some(""));
    assert_eq!(p.sex, None);
    assert_eq!(s.visit.unwrap().patient_class.as_deref(), Some(""));
}

#[test]
fn adt_a40_merge_lists_every_prior_identifier() {
    let s = summary(
        "MSH|^~\\&|HIS|GENHOSP|ZENEDGE|RAD|20260314090000||ADT^A40^ADT_A39|ADT0002|P|2.5\r\
         EVN|A40|20260314090000\r\
         PID|1||MRN1000^^^GENHOSP^MR||Sample^Ben\r\
         MRG|MRN2000^^^GENHOSP^MR~TMP9^^^ER^PI||||||Sampel^Ben\r",
    );
    let merge = s.merge.unwrap();
    let prior: Vec<_> = merge.prior_identifiers.iter().map(|i| (i.id.as_str(), i.field.as_str())).collect();
    assert_eq!(prior, [("MRN2000", "MRG-1"), ("TMP9", "MRG-1")]);
    assert_eq!(merge.prior_name.unwrap().family.as_deref(), Some("Sampel"));
    assert_eq!(s.patient.unwrap().id.as_deref(), Some("MRN1000"));
}

#[test]
fn escapes_in_patient_fields_are_decoded() {
    let s = summary("MSH|^~\\&|HIS|H|||||ADT^A08|4|P|2.5\rPID|1||A\\T\\B||O\\S\\Brien^Sean\r");
    let p = s.patient.unwrap();
    assert_eq!(p.id.as_deref(), Some("A&B"));
    assert_eq!(p.name.unwrap().family.as_deref(), Some("O^Brien"));
}
