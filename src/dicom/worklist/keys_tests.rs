use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::*;
use crate::projections::worklist::{SCHEDULED, WorklistItem};

pub(super) fn item() -> WorklistItem {
    WorklistItem {
        item_id: "m:0:0".into(),
        order_id: "m:0".into(),
        seq: 1,
        received_at_us: 0,
        status: SCHEDULED.into(),
        patient_id: Some("MRN4712".into()),
        issuer_of_patient_id: Some("GENHOSP".into()),
        patient_name: Some(PersonName {
            family: Some("Müller".into()),
            given: Some("Jürgen".into()),
            ..PersonName::default()
        }),
        birth_date: Some("19700202".into()),
        sex: Some("M".into()),
        accession_number: "ACC5001".into(),
        placer_order_number: Some("PL1".into()),
        filler_order_number: Some("FL1".into()),
        requested_procedure_id: Some("RP5001".into()),
        requested_procedure: Some(CodedValue {
            code: Some("CTHEAD".into()),
            text: Some("CT Head".into()),
            coding_system: Some("L".into()),
        }),
        requesting_physician: None,
        study_instance_uid: "1.2.3.4".into(),
        study_instance_uid_derived: false,
        step_id: Some("SPS5001".into()),
        modality: Some("CT".into()),
        station_ae: Some("CT01".into()),
        station_name: None,
        start_date: Some("20261215".into()),
        start_time: Some("081500".into()),
        step_description: Some("CT Head".into()),
        protocol: None,
        performing_physician: None,
        charset: "8859/1".into(),
    }
}

fn text(tag: dicom_core::Tag, vr: VR, value: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

/// An identifier with `top` keys and an SPS item of `step` keys.
fn identifier(top: &[(dicom_core::Tag, VR, &str)], step: &[(dicom_core::Tag, VR, &str)]) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    for (tag, vr, v) in top {
        obj.put(text(*tag, *vr, v));
    }
    let mut sps = InMemDicomObject::new_empty();
    for (tag, vr, v) in step {
        sps.put(text(*tag, *vr, v));
    }
    obj.put(DataElement::new(tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE, VR::SQ, DataSetSequence::from(vec![sps])));
    obj
}

fn finds(top: &[(dicom_core::Tag, VR, &str)], step: &[(dicom_core::Tag, VR, &str)]) -> bool {
    Query::new(identifier(top, step)).unwrap().matches(&item())
}

#[test]
fn the_modalities_keys_match_by_their_rules() {
    assert!(finds(&[(tags::PATIENT_NAME, VR::PN, "MÜLLER^JÜRGEN")], &[]));
    assert!(finds(&[(tags::PATIENT_NAME, VR::PN, "mü*")], &[]));
    assert!(!finds(&[(tags::PATIENT_NAME, VR::PN, "Doe*")], &[]));
    assert!(finds(&[(tags::PATIENT_ID, VR::LO, "MRN4712"), (tags::ACCESSION_NUMBER, VR::SH, "ACC*")], &[]));
    assert!(!finds(&[(tags::REQUESTED_PROCEDURE_ID, VR::SH, "RP9")], &[]));
    let sps = |tag, vr, v| finds(&[], &[(tag, vr, v)]);
    assert!(sps(tags::MODALITY, VR::CS, "CT"));
    assert!(!sps(tags::MODALITY, VR::CS, "MR"));
    assert!(sps(tags::SCHEDULED_STATION_AE_TITLE, VR::AE, "CT01"));
    assert!(sps(tags::SCHEDULED_PROCEDURE_STEP_START_DATE, VR::DA, "20261201-20261231"));
    assert!(!sps(tags::SCHEDULED_PROCEDURE_STEP_START_DATE, VR::DA, "-20261214"));
    assert!(sps(tags::SCHEDULED_PROCEDURE_STEP_STATUS, VR::CS, "SCHEDULED"));
    assert!(finds(
        &[(tags::PATIENT_NAME, VR::PN, ""), (tags::PATIENT_ID, VR::LO, "")],
        &[(tags::MODALITY, VR::CS, "")]
    ));
}

#[test]
fn a_date_and_a_time_range_together_are_one_date_time_range() {
    let q = |date: &str, time: &str| {
        finds(
            &[],
            &[
                (tags::SCHEDULED_PROCEDURE_STEP_START_DATE, VR::DA, date),
                (tags::SCHEDULED_PROCEDURE_STEP_START_TIME, VR::TM, time),
            ],
        )
    };
    // 2026-12-14 20:00 to 2026-12-15 09:00 holds 2026-12-15 08:15, though 0815 < 2000.
    assert!(q("20261214-20261215", "2000-0900"));
    assert!(!q("20261215-20261216", "0900-1200"));
}

#[test]
fn every_requested_key_is_answered_and_unknown_ones_are_empty() {
    let request = identifier(
        &[
            (tags::PATIENT_NAME, VR::PN, ""),
            (tags::ACCESSION_NUMBER, VR::SH, ""),
            (tags::REFERRING_PHYSICIAN_NAME, VR::PN, ""),
        ],
        &[(tags::MODALITY, VR::CS, ""), (tags::SCHEDULED_PROCEDURE_STEP_START_TIME, VR::TM, "")],
    );
    let mut request = request;
    request.put(DataElement::new(
        tags::REQUESTED_PROCEDURE_CODE_SEQUENCE,
        VR::SQ,
        DataSetSequence::<InMemDicomObject>::empty(),
    ));
    let answer = Query::new(request).unwrap().answer(&item());
    let get = |obj: &InMemDicomObject, tag| obj.element(tag).unwrap().to_str().unwrap().into_owned();
    assert_eq!(get(&answer, tags::PATIENT_NAME), "Müller^Jürgen");
    assert_eq!(get(&answer, tags::ACCESSION_NUMBER), "ACC5001");
    assert_eq!(answer.element(tags::REFERRING_PHYSICIAN_NAME).unwrap().header().len.0, 0);
    let sps = &answer.element(tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE).unwrap().items().unwrap()[0];
    assert_eq!(get(sps, tags::MODALITY), "CT");
    assert_eq!(get(sps, tags::SCHEDULED_PROCEDURE_STEP_START_TIME), "081500");
    assert!(sps.element_opt(tags::SCHEDULED_STATION_AE_TITLE).unwrap().is_none(), "only what was asked");
    let code = &answer.element(tags::REQUESTED_PROCEDURE_CODE_SEQUENCE).unwrap().items().unwrap()[0];
    assert_eq!(get(code, tags::CODE_VALUE), "CTHEAD");
    assert_eq!(get(code, tags::CODING_SCHEME_DESIGNATOR), "L");
}

#[test]
fn a_value_on_a_key_that_cannot_be_matched_makes_answers_a_warning() {
    let q = Query::new(identifier(&[(tags::PATIENT_WEIGHT, VR::DS, "80")], &[])).unwrap();
    assert!(q.unsupported);
    let q = Query::new(identifier(&[(tags::PATIENT_WEIGHT, VR::DS, "")], &[])).unwrap();
    assert!(!q.unsupported);
}

#[test]
fn exact_keys_become_index_hints_and_the_calling_ae_restricts_an_open_station() {
    let mut q = Query::new(identifier(
        &[(tags::PATIENT_ID, VR::LO, "MRN4712"), (tags::ACCESSION_NUMBER, VR::SH, "ACC*")],
        &[(tags::MODALITY, VR::CS, "CT"), (tags::SCHEDULED_PROCEDURE_STEP_START_DATE, VR::DA, "20261201-")],
    ))
    .unwrap();
    q.restrict_station("CT02");
    let hints = q.hints(false);
    assert_eq!(hints.patient_id.as_deref(), Some("MRN4712"));
    assert_eq!(hints.accession, None, "a wildcard is no index key");
    assert_eq!((hints.date_from.as_deref(), hints.date_to.as_deref()), (Some("20261201"), None));
    assert_eq!((hints.modality.as_deref(), hints.station_ae.as_deref()), (Some("CT"), Some("CT02")));
    assert!(!q.matches(&item()), "the item is CT01's");
    let prefix = |name: &str| {
        Query::new(identifier(&[(tags::PATIENT_NAME, VR::PN, name)], &[])).unwrap().hints(false).name_prefix
    };
    assert_eq!(prefix("mü*^j*"), Some("MÜ".into()));
    assert_eq!(prefix("Doe^John"), Some("DOE".into()));
    assert_eq!(prefix("*john"), None);
}

#[test]
fn a_step_sequence_of_two_items_is_refused() {
    let mut obj = InMemDicomObject::new_empty();
    let two = vec![InMemDicomObject::new_empty(), InMemDicomObject::new_empty()];
    obj.put(DataElement::new(tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE, VR::SQ, DataSetSequence::from(two)));
    assert!(Query::new(obj).is_err());
}
