use super::super::Charset;
use super::scheduled_steps;

/// An OMI^O23 as a RIS sends it: one requested procedure in two steps (two IPC segments).
pub(crate) const OMI_O23: &str = "MSH|^~\\&|RIS|GENHOSP|ZENEDGE|RAD|20261214100000||OMI^O23^OMI_O23|OMI0001|P|2.5.1|||||DEU|8859/1\r\
    PID|1||MRN4711^^^GENHOSP^MR||M\u{fc}ller^J\u{fc}rgen^K||19700202|M\r\
    PV1|1|I\r\
    ORC|NW|PLC300^RIS|FIL300^PACS||SC||||20261214100000|||D123^Welby^Marcus\r\
    TQ1|1||||||20261215093000\r\
    OBR|1|PLC300^RIS|FIL300^PACS|CTABD^CT Abdomen^L||||||||||||||||||||CT||||||||||T77&Tech&Tina\r\
    IPC|ACC7001|RP7001|1.2.826.0.1.3680043.2.1125.7001|SPS7001a|CT|PROT1^Abdomen native^L|CT Room 1||CT01\r\
    IPC|ACC7001|RP7001|1.2.826.0.1.3680043.2.1125.7001|SPS7001b|CT|PROT2^Abdomen contrast^L|CT Room 1||CT01\r";

/// An ORM^O01 without IPC: one step from ORC/OBR, the procedure code in OBR-44.
pub(crate) const ORM_O01: &str = "MSH|^~\\&|RIS|GENHOSP|ZENEDGE|RAD|20261214100000||ORM^O01|ORM0001|P|2.3.1\r\
    PID|1||MRN4712^^^GENHOSP^MR||Example^Anna||19800101|F\r\
    ORC|NW|PLC100^RIS|FIL200^PACS||SC||^^^20261215081500||20261214100000\r\
    OBR|1|PLC100^RIS|FIL200^PACS|CTHEAD^CT Head w/o contrast^L||||||||||||D123^Welby^Marcus||ACC5001|RP5001|SPS5001||||CT||||||||||||||||||||RPID77^Head CT^LOCAL\r";

#[test]
fn each_ipc_of_an_omi_o23_group_is_a_step_of_its_own() {
    let groups = scheduled_steps(OMI_O23.as_bytes(), Charset::Iso8859_1);
    assert_eq!(groups.len(), 1);
    let steps = &groups[0];
    assert_eq!(steps.len(), 2);
    let a = &steps[0];
    assert_eq!(a.requested_procedure_id.as_deref(), Some("RP7001"));
    assert_eq!(a.study_instance_uid.as_deref(), Some("1.2.826.0.1.3680043.2.1125.7001"));
    assert_eq!(a.step_id.as_deref(), Some("SPS7001a"));
    assert_eq!(a.modality.as_deref(), Some("CT"));
    assert_eq!(a.station_ae.as_deref(), Some("CT01"));
    assert_eq!(a.station_name.as_deref(), Some("CT Room 1"));
    assert_eq!(a.start.as_deref(), Some("20261215093000"));
    assert_eq!(a.step_description.as_deref(), Some("Abdomen native"));
    assert_eq!(a.protocol.as_ref().and_then(|p| p.code.as_deref()), Some("PROT1"));
    assert_eq!(a.procedure.as_ref().and_then(|p| p.code.as_deref()), Some("CTABD"));
    let tech = a.performing_physician.as_ref().unwrap();
    assert_eq!((tech.family.as_deref(), tech.given.as_deref()), (Some("Tech"), Some("Tina")));
    assert_eq!(steps[1].step_id.as_deref(), Some("SPS7001b"));
    assert_eq!(steps[1].step_description.as_deref(), Some("Abdomen contrast"));
}

#[test]
fn an_orm_o01_group_is_one_step_from_its_obr() {
    let groups = scheduled_steps(ORM_O01.as_bytes(), Charset::Iso8859_1);
    assert_eq!(groups.len(), 1);
    let [step] = groups[0].as_slice() else { panic!("{groups:?}") };
    assert_eq!(step.requested_procedure_id.as_deref(), Some("RP5001"));
    assert_eq!(step.step_id.as_deref(), Some("SPS5001"));
    assert_eq!(step.modality.as_deref(), Some("CT"));
    assert_eq!(step.station_ae, None);
    assert_eq!(step.study_instance_uid, None);
    // ORC-7.4, the TQ start, when there is no TQ1.
    assert_eq!(step.start.as_deref(), Some("20261215081500"));
    // OBR-44 wins over OBR-4.
    let procedure = step.procedure.as_ref().unwrap();
    assert_eq!((procedure.code.as_deref(), procedure.text.as_deref()), (Some("RPID77"), Some("Head CT")));
    assert_eq!(step.step_description.as_deref(), Some("Head CT"));
}

#[test]
fn bytes_that_do_not_parse_have_no_steps() {
    assert!(scheduled_steps(b"not hl7", Charset::Iso8859_1).is_empty());
}
