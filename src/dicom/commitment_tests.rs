use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, Length, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;

use super::*;

fn reference(n: u32) -> Reference {
    Reference { sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(), sop_instance_uid: format!("1.2.3.{n}") }
}

#[test]
fn a_request_data_set_reads_back_as_the_instances_it_names() {
    let refs: Vec<Reference> = (1..=3).map(reference).collect();
    let bytes = action_data_set("2.25.42", &refs);
    let report = parse_report(&bytes, "1.2.840.10008.1.2").unwrap();
    assert_eq!(report, Report { transaction_uid: "2.25.42".into(), committed: refs, failed: Vec::new() });
}

#[test]
fn a_report_with_failures_in_explicit_vr_gives_each_failure_its_reason() {
    let item = |r: &Reference, reason: Option<u16>| {
        let mut elements = vec![
            DataElement::new(tags::REFERENCED_SOP_CLASS_UID, VR::UI, PrimitiveValue::from(r.sop_class_uid.as_str())),
            DataElement::new(
                tags::REFERENCED_SOP_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from(r.sop_instance_uid.as_str()),
            ),
        ];
        if let Some(reason) = reason {
            elements.push(DataElement::new(tags::FAILURE_REASON, VR::US, PrimitiveValue::from(reason)));
        }
        InMemDicomObject::from_element_iter(elements)
    };
    let sequence = |items| dicom_core::DicomValue::from(DataSetSequence::new(items, Length::UNDEFINED));
    let obj = InMemDicomObject::from_element_iter([
        DataElement::new(tags::TRANSACTION_UID, VR::UI, PrimitiveValue::from("2.25.7")),
        DataElement::new(tags::REFERENCED_SOP_SEQUENCE, VR::SQ, sequence(vec![item(&reference(1), None)])),
        DataElement::new(tags::FAILED_SOP_SEQUENCE, VR::SQ, sequence(vec![item(&reference(2), Some(0x0112))])),
    ]);
    let mut bytes = Vec::new();
    obj.write_dataset_with_ts(&mut bytes, &EXPLICIT_VR_LITTLE_ENDIAN.erased()).unwrap();
    let report = parse_report(&bytes, "1.2.840.10008.1.2.1").unwrap();
    assert_eq!(report.committed, [reference(1)]);
    assert_eq!(report.failed, [(reference(2), Some(0x0112))]);
}

#[test]
fn a_report_without_transaction_or_with_broken_lengths_is_refused() {
    let no_uid =
        InMemDicomObject::from_element_iter([DataElement::new(tags::PATIENT_ID, VR::LO, PrimitiveValue::from("P"))]);
    let mut bytes = Vec::new();
    no_uid.write_dataset_with_ts(&mut bytes, &EXPLICIT_VR_LITTLE_ENDIAN.erased()).unwrap();
    assert!(parse_report(&bytes, "1.2.840.10008.1.2.1").unwrap_err().contains("Transaction UID"));
    let mut truncated = action_data_set("2.25.1", &[reference(1)]);
    truncated.truncate(truncated.len() - 3);
    assert!(parse_report(&truncated, "1.2.840.10008.1.2").is_err());
    assert!(parse_report(&[0xFF; 16], "1.2.840.10008.1.2").is_err());
}

#[test]
fn the_action_request_and_the_report_response_carry_the_commitment_instance() {
    let request = InMemDicomObject::read_dataset_with_ts(
        &action_request(9)[..],
        &dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased(),
    )
    .unwrap();
    assert_eq!(request.element(tags::COMMAND_FIELD).unwrap().to_int::<u16>().unwrap(), 0x0130);
    assert_eq!(request.element(tags::ACTION_TYPE_ID).unwrap().to_int::<u16>().unwrap(), 1);
    assert_eq!(
        request.element(tags::REQUESTED_SOP_INSTANCE_UID).unwrap().to_str().unwrap().trim_end_matches('\0'),
        STORAGE_COMMITMENT_INSTANCE
    );
    let answer = encode(vec![
        us(tags::COMMAND_FIELD, 0x8130),
        us(tags::MESSAGE_ID_BEING_RESPONDED_TO, 9),
        us(tags::COMMAND_DATA_SET_TYPE, 0x0101),
        us(tags::STATUS, 0),
    ]);
    assert_eq!(parse_action_response(&answer).unwrap(), ActionAnswer { message_id_being_responded_to: 9, status: 0 });
    assert!(parse_action_response(&event_report_response(9, 1, 0)).is_err(), "not an N-ACTION-RSP");
    assert!(new_transaction_uid().starts_with("2.25.") && new_transaction_uid().len() <= 64);
}
