use super::*;

fn request(elements: Vec<DataElement<InMemDicomObject>>) -> Vec<u8> {
    encode(elements)
}

#[test]
fn echo_request_round_trips_into_a_response_that_names_its_message_and_class() {
    let rq = request(vec![
        uid(tags::AFFECTED_SOP_CLASS_UID, "1.2.840.10008.1.1"),
        us(tags::COMMAND_FIELD, C_ECHO_RQ),
        us(tags::MESSAGE_ID, 7),
        us(tags::COMMAND_DATA_SET_TYPE, NO_DATA_SET),
    ]);
    let Request::Echo { message_id, sop_class_uid } = parse(&rq).unwrap() else { panic!() };
    assert_eq!((message_id, sop_class_uid.as_str()), (7, "1.2.840.10008.1.1"));
    let rsp = InMemDicomObject::read_dataset_with_ts(
        &echo_response(7, &sop_class_uid)[..],
        &IMPLICIT_VR_LITTLE_ENDIAN.erased(),
    )
    .unwrap();
    assert_eq!(rsp.element(tags::MESSAGE_ID_BEING_RESPONDED_TO).unwrap().to_int::<u16>().unwrap(), 7);
    assert_eq!(rsp.element(tags::COMMAND_FIELD).unwrap().to_int::<u16>().unwrap(), C_ECHO_RSP);
    assert_eq!(
        rsp.element(tags::AFFECTED_SOP_CLASS_UID).unwrap().to_str().unwrap().trim_end_matches('\0'),
        "1.2.840.10008.1.1"
    );
    assert!(rsp.element(tags::COMMAND_GROUP_LENGTH).is_ok());
}

#[test]
fn store_request_is_read_and_its_failure_response_carries_an_error_comment() {
    let rq = store_request_with(&[]);
    assert_eq!(
        parse(&rq).unwrap(),
        Request::Store {
            message_id: 3,
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            sop_instance_uid: "1.2.3.4".into()
        }
    );
    let rsp = store_response(
        3,
        "1.2.840.10008.5.1.4.1.1.2",
        "1.2.3.4",
        status::OUT_OF_RESOURCES,
        Some("disk reserve reached"),
    );
    let rsp = InMemDicomObject::read_dataset_with_ts(&rsp[..], &IMPLICIT_VR_LITTLE_ENDIAN.erased()).unwrap();
    assert_eq!(rsp.element(tags::STATUS).unwrap().to_int::<u16>().unwrap(), 0xA700);
    assert_eq!(rsp.element(tags::ERROR_COMMENT).unwrap().to_str().unwrap().trim(), "disk reserve reached");
}

#[test]
fn garbage_and_incomplete_command_sets_are_errors() {
    assert!(parse(b"\x01\x02").is_err());
    let no_field = request(vec![us(tags::MESSAGE_ID, 1)]);
    assert!(matches!(parse(&no_field), Err(CommandError::Missing("Command Field"))));
}

/// A C-STORE-RQ as bytes, then `extra` appended (an element of the caller's making).
fn store_request_with(extra: &[u8]) -> Vec<u8> {
    let mut rq = request(vec![
        uid(tags::AFFECTED_SOP_CLASS_UID, "1.2.840.10008.5.1.4.1.1.2"),
        us(tags::COMMAND_FIELD, C_STORE_RQ),
        us(tags::MESSAGE_ID, 3),
        us(tags::PRIORITY, 0),
        us(tags::COMMAND_DATA_SET_TYPE, 0x0000),
        uid(tags::AFFECTED_SOP_INSTANCE_UID, "1.2.3.4"),
    ]);
    rq.extend_from_slice(extra);
    rq
}

/// An implicit VR little endian element header.
fn header(group: u16, element: u16, len: u32) -> Vec<u8> {
    [group.to_le_bytes(), element.to_le_bytes()].concat().into_iter().chain(len.to_le_bytes()).collect()
}

#[test]
fn an_element_declaring_more_bytes_than_the_command_set_holds_is_refused() {
    // (0000,1030) declaring 3 GiB with 4 bytes present: refused without reserving them.
    let mut extra = header(0x0000, 0x1030, 0xC000_0000);
    extra.extend_from_slice(b"CT01");
    let err = parse(&store_request_with(&extra)).unwrap_err();
    assert!(
        matches!(&err, CommandError::Decode(text) if text.contains("declares 3221225472 bytes, 4 follow")),
        "{err}"
    );
    assert!(matches!(parse(&store_request_with(&[0x00, 0x00, 0x00])), Err(CommandError::Decode(_))));
}

#[test]
fn nested_sequences_in_a_command_set_are_refused_without_recursion() {
    // 4,000 levels of SQ / item of undefined length fill the whole command set budget.
    let mut extra = Vec::new();
    for _ in 0..4_000 {
        extra.extend(header(0x0008, 0x1110, u32::MAX));
        extra.extend(header(0xFFFE, 0xE000, u32::MAX));
    }
    let err = parse(&store_request_with(&extra)).unwrap_err();
    assert!(matches!(&err, CommandError::Decode(text) if text.contains("undefined length")), "{err}");
}

#[test]
fn elements_of_other_groups_are_skipped_and_kept_ones_must_be_well_formed() {
    let mut extra = header(0x0008, 0x0016, 4);
    extra.extend_from_slice(b"1.2\0");
    assert!(matches!(parse(&store_request_with(&extra)), Ok(Request::Store { message_id: 3, .. })));
    let twice = store_request_with(&[header(0x0000, 0x0110, 2), vec![9, 0]].concat());
    assert!(matches!(parse(&twice), Err(CommandError::Decode(_))));
    let wide = request(vec![
        DataElement::new(tags::COMMAND_FIELD, VR::UL, PrimitiveValue::from(1u32)),
        us(tags::MESSAGE_ID, 1),
    ]);
    assert!(matches!(parse(&wide), Err(CommandError::Decode(_))));
}

/// Found by the `dicom_command` fuzz target
/// (fuzz/regressions/dicom_command/declared-length-2gib): 12 bytes declaring a 2 GiB
/// Affected SOP Class UID made dicom-object reserve and zero-fill 2 GiB.
#[test]
fn fuzz_regression_a_declared_length_of_2_gib_is_refused_before_anything_is_allocated() {
    let bytes = include_bytes!("../../fuzz/regressions/dicom_command/declared-length-2gib");
    let result = parse(bytes);
    assert!(matches!(&result, Err(CommandError::Decode(r)) if r.contains("declares 2147483632 bytes")), "{result:?}");
}

/// Found by the `dicom_command` fuzz target
/// (fuzz/regressions/dicom_command/non-ascii-uid-in-the-response): a C-STORE-RQ whose
/// Affected SOP Instance UID held a non-ASCII character was read, and writing the
/// response that echoes it panicked ("unrepresentable character").
#[test]
fn fuzz_regression_a_uid_outside_the_default_repertoire_is_refused() {
    let bytes = include_bytes!("../../fuzz/regressions/dicom_command/non-ascii-uid-in-the-response");
    let result = parse(bytes);
    assert!(matches!(&result, Err(CommandError::Decode(r)) if r.contains("default repertoire")), "{result:?}");
}

/// Found by the `dicom_command` fuzz target
/// (fuzz/regressions/dicom_command/odd-lengths-endless-allocation): with these odd value
/// lengths dicom-object's reader allocated until memory ran out.
#[test]
fn fuzz_regression_odd_value_lengths_are_read_without_looping() {
    let bytes = include_bytes!("../../fuzz/regressions/dicom_command/odd-lengths-endless-allocation");
    let result = parse(bytes);
    assert!(matches!(&result, Err(CommandError::Decode(r)) if r == "Command Field is not a US value"), "{result:?}");
}

#[test]
fn a_store_response_reads_back_with_its_status_and_comment() {
    let bytes = store_response(7, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4", 0xA700, Some("out of resources"));
    let answer = parse_store_response(&bytes).unwrap();
    assert_eq!(answer.message_id_being_responded_to, 7);
    assert_eq!((answer.status, answer.error_comment.as_deref()), (0xA700, Some("out of resources")));
    let request = store_request(7, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4");
    assert!(parse_store_response(&request).is_err(), "a request is not an answer");
    assert_eq!(
        parse(&request).unwrap(),
        Request::Store {
            message_id: 7,
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            sop_instance_uid: "1.2.3.4".into()
        }
    );
}

#[test]
fn find_and_cancel_requests_are_read_and_find_responses_say_whether_data_follows() {
    let mwl = "1.2.840.10008.5.1.4.31";
    let find = |data_set_type| {
        request(vec![
            uid(tags::AFFECTED_SOP_CLASS_UID, mwl),
            us(tags::COMMAND_FIELD, C_FIND_RQ),
            us(tags::MESSAGE_ID, 9),
            us(tags::PRIORITY, 0),
            us(tags::COMMAND_DATA_SET_TYPE, data_set_type),
        ])
    };
    assert_eq!(parse(&find(0x0000)).unwrap(), Request::Find { message_id: 9, sop_class_uid: mwl.into() });
    assert!(matches!(parse(&find(NO_DATA_SET)), Err(CommandError::FindWithoutIdentifier)));
    let cancel = request(vec![
        us(tags::COMMAND_FIELD, C_CANCEL_RQ),
        us(tags::MESSAGE_ID_BEING_RESPONDED_TO, 9),
        us(tags::COMMAND_DATA_SET_TYPE, NO_DATA_SET),
    ]);
    assert_eq!(parse(&cancel).unwrap(), Request::Cancel { message_id: 9 });
    let read = |bytes: Vec<u8>| {
        InMemDicomObject::read_dataset_with_ts(&bytes[..], &IMPLICIT_VR_LITTLE_ENDIAN.erased()).unwrap()
    };
    let number = |obj: &InMemDicomObject, tag| obj.element(tag).unwrap().to_int::<u16>().unwrap();
    let pending = read(find_response(9, mwl, status::PENDING, None));
    assert_eq!(number(&pending, tags::COMMAND_DATA_SET_TYPE), DATA_SET);
    assert_eq!(number(&pending, tags::STATUS), 0xFF00);
    let failed = read(find_response(9, mwl, status::IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, Some("bad \\ key")));
    assert_eq!(number(&failed, tags::COMMAND_DATA_SET_TYPE), NO_DATA_SET);
    assert_eq!(number(&failed, tags::COMMAND_FIELD), C_FIND_RSP);
    assert_eq!(failed.element(tags::ERROR_COMMENT).unwrap().to_str().unwrap().trim_end(), "bad  key");
}
