//! DIMSE command sets (PS3.7 9.3, 9.1.1 and 9.1.5): C-ECHO and C-STORE, requests in,
//! responses out. Command sets are always implicit VR little endian (PS3.7 6.3.1).
//!
//! Requests are read by hand ([`parse`]); responses are written with dicom-object. dicom-object
//! is not fit for reading bytes from the network: it reserves and zero-fills each value's
//! *declared* length before reading it (12 bytes declaring 2 GiB made it allocate 2 GiB), and
//! some odd value lengths send its reader into a loop that allocates until memory runs out
//! (both found by the `dicom_command` fuzz target). The reader here only slices the buffer the
//! association handler has already bounded ([`MAX_COMMAND_BYTES`]).

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;

/// Largest command set accepted (a real one is a few hundred bytes).
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// Command Field values (PS3.7 E.1).
const C_STORE_RQ: u16 = 0x0001;
const C_STORE_RSP: u16 = 0x8001;
const C_ECHO_RQ: u16 = 0x0030;
const C_ECHO_RSP: u16 = 0x8030;
/// Command Data Set Type: no data set follows (PS3.7 E.1).
const NO_DATA_SET: u16 = 0x0101;

/// DIMSE status codes we answer with (PS3.4 B.2.3, PS3.7 C).
pub mod status {
    pub const SUCCESS: u16 = 0x0000;
    /// Refused: out of resources (disk reserve reached, store unavailable).
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Error: data set does not match SOP class.
    pub const DATA_SET_DOES_NOT_MATCH_SOP_CLASS: u16 = 0xA900;
    /// Error: cannot understand.
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
}

/// A request we understand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Echo {
        message_id: u16,
        sop_class_uid: String,
    },
    Store {
        message_id: u16,
        sop_class_uid: String,
        sop_instance_uid: String,
    },
    /// Anything else: answered by aborting the association (we accept no other service).
    Other {
        command_field: u16,
    },
}

/// Why a command set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("command set does not decode: {0}")]
    Decode(String),
    #[error("command set lacks {0}")]
    Missing(&'static str),
    #[error("C-STORE-RQ without a data set")]
    StoreWithoutData,
}

/// Reads a complete command set.
pub fn parse(bytes: &[u8]) -> Result<Request, CommandError> {
    let elements = elements(bytes)?;
    // The last occurrence of a tag wins, as when the elements are collected into an object.
    let value = |tag| elements.iter().rev().find(|(t, _)| *t == tag).map(|&(_, v)| v);
    let u16_of = |tag, name| {
        value(tag).and_then(|v| v.first_chunk::<2>()).map(|b| u16::from_le_bytes(*b)).ok_or(CommandError::Missing(name))
    };
    let uid_of = |tag, name| value(tag).map(uid_text).ok_or(CommandError::Missing(name));
    let command_field = u16_of(tags::COMMAND_FIELD, "Command Field")?;
    match command_field {
        C_ECHO_RQ => Ok(Request::Echo {
            message_id: u16_of(tags::MESSAGE_ID, "Message ID")?,
            sop_class_uid: uid_of(tags::AFFECTED_SOP_CLASS_UID, "Affected SOP Class UID")?,
        }),
        C_STORE_RQ => {
            if u16_of(tags::COMMAND_DATA_SET_TYPE, "Command Data Set Type")? == NO_DATA_SET {
                return Err(CommandError::StoreWithoutData);
            }
            Ok(Request::Store {
                message_id: u16_of(tags::MESSAGE_ID, "Message ID")?,
                sop_class_uid: uid_of(tags::AFFECTED_SOP_CLASS_UID, "Affected SOP Class UID")?,
                sop_instance_uid: uid_of(tags::AFFECTED_SOP_INSTANCE_UID, "Affected SOP Instance UID")?,
            })
        }
        other => Ok(Request::Other { command_field: other }),
    }
}

/// Splits an implicit VR little endian command set into its elements: tag (group, element:
/// 2 bytes each), value length (4 bytes), value (PS3.5 §7.1.3). Command elements always
/// have a defined length (PS3.7 §6.3.1 and E.1: no sequences), so the undefined length is
/// refused, and every length must fit in the bytes left.
fn elements(mut bytes: &[u8]) -> Result<Vec<(Tag, &[u8])>, CommandError> {
    let mut elements = Vec::new();
    while !bytes.is_empty() {
        let Some((header, rest)) = bytes.split_first_chunk::<8>() else {
            return Err(CommandError::Decode("element header cut short".into()));
        };
        let tag = Tag(u16::from_le_bytes([header[0], header[1]]), u16::from_le_bytes([header[2], header[3]]));
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == u32::MAX {
            return Err(CommandError::Decode("element of undefined length".into()));
        }
        let Some((value, next)) = rest.split_at_checked(len as usize) else {
            return Err(CommandError::Decode(format!("element length {len} exceeds the {} bytes left", rest.len())));
        };
        elements.push((tag, value));
        bytes = next;
    }
    Ok(elements)
}

/// A UI value as text: the default character repertoire read as ISO 8859-1 (so any byte is a
/// character), without the trailing NUL or space padding.
fn uid_text(value: &[u8]) -> String {
    value.iter().map(|&b| char::from(b)).collect::<String>().trim_end_matches(['\0', ' ']).to_owned()
}

/// C-ECHO-RSP: Affected SOP Class UID and Message ID Being Responded To from the request.
pub fn echo_response(message_id: u16, sop_class_uid: &str) -> Vec<u8> {
    encode(vec![
        uid(tags::AFFECTED_SOP_CLASS_UID, sop_class_uid),
        us(tags::COMMAND_FIELD, C_ECHO_RSP),
        us(tags::MESSAGE_ID_BEING_RESPONDED_TO, message_id),
        us(tags::COMMAND_DATA_SET_TYPE, NO_DATA_SET),
        us(tags::STATUS, status::SUCCESS),
    ])
}

/// C-STORE-RSP with `status` and, for failures, an Error Comment (LO, at most 64 chars).
pub fn store_response(
    message_id: u16,
    sop_class_uid: &str,
    sop_instance_uid: &str,
    status: u16,
    comment: Option<&str>,
) -> Vec<u8> {
    let mut elements = vec![
        uid(tags::AFFECTED_SOP_CLASS_UID, sop_class_uid),
        us(tags::COMMAND_FIELD, C_STORE_RSP),
        us(tags::MESSAGE_ID_BEING_RESPONDED_TO, message_id),
        us(tags::COMMAND_DATA_SET_TYPE, NO_DATA_SET),
        us(tags::STATUS, status),
        uid(tags::AFFECTED_SOP_INSTANCE_UID, sop_instance_uid),
    ];
    if let Some(comment) = comment {
        let text: String = comment.chars().filter(|c| c.is_ascii() && *c != '\\').take(64).collect();
        elements.push(DataElement::new(tags::ERROR_COMMENT, VR::LO, PrimitiveValue::from(text)));
    }
    encode(elements)
}

fn us(tag: dicom_core::Tag, value: u16) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, PrimitiveValue::from(value))
}

fn uid(tag: dicom_core::Tag, value: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::UI, PrimitiveValue::from(value))
}

fn encode(elements: Vec<DataElement<InMemDicomObject>>) -> Vec<u8> {
    let obj = InMemDicomObject::command_from_element_iter(elements);
    let mut out = Vec::with_capacity(256);
    obj.write_dataset_with_ts(&mut out, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .expect("writing a command set into a Vec cannot fail");
    out
}

#[cfg(test)]
mod tests {
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
        let rq = request(vec![
            uid(tags::AFFECTED_SOP_CLASS_UID, "1.2.840.10008.5.1.4.1.1.2"),
            us(tags::COMMAND_FIELD, C_STORE_RQ),
            us(tags::MESSAGE_ID, 3),
            us(tags::PRIORITY, 0),
            us(tags::COMMAND_DATA_SET_TYPE, 0x0000),
            uid(tags::AFFECTED_SOP_INSTANCE_UID, "1.2.3.4"),
        ]);
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

    /// Found by the `dicom_command` fuzz target
    /// (fuzz/regressions/dicom_command/declared-length-2gib): 12 bytes declaring a 2 GiB
    /// Affected SOP Class UID made dicom-object reserve and zero-fill 2 GiB.
    #[test]
    fn a_declared_length_beyond_the_command_set_is_refused_before_anything_is_allocated() {
        let bytes = include_bytes!("../../fuzz/regressions/dicom_command/declared-length-2gib");
        let Err(CommandError::Decode(reason)) = parse(bytes) else { panic!("{:?}", parse(bytes)) };
        assert_eq!(reason, "element length 2147483632 exceeds the 3 bytes left");
    }

    /// Found by the `dicom_command` fuzz target
    /// (fuzz/regressions/dicom_command/odd-lengths-endless-allocation): with these odd value
    /// lengths dicom-object's reader allocated until memory ran out.
    #[test]
    fn odd_value_lengths_are_read_without_looping() {
        let bytes = include_bytes!("../../fuzz/regressions/dicom_command/odd-lengths-endless-allocation");
        assert!(matches!(parse(bytes), Err(CommandError::Missing("Command Field"))), "{:?}", parse(bytes));
    }

    #[test]
    fn the_last_occurrence_of_an_element_wins_and_uid_padding_is_trimmed() {
        let rq = [
            request(vec![us(tags::COMMAND_FIELD, C_STORE_RQ), us(tags::MESSAGE_ID, 1)]),
            request(vec![
                us(tags::MESSAGE_ID, 9),
                us(tags::COMMAND_DATA_SET_TYPE, 0),
                uid(tags::AFFECTED_SOP_CLASS_UID, "1.2.3"),
                uid(tags::AFFECTED_SOP_INSTANCE_UID, "1.2.3.4 "),
            ]),
        ]
        .concat();
        let expected =
            Request::Store { message_id: 9, sop_class_uid: "1.2.3".into(), sop_instance_uid: "1.2.3.4".into() };
        assert_eq!(parse(&rq).unwrap(), expected);
    }

    #[test]
    fn an_undefined_length_or_a_cut_element_header_is_refused() {
        let undefined = [0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF, 1, 0];
        assert!(matches!(parse(&undefined), Err(CommandError::Decode(r)) if r == "element of undefined length"));
        let mut cut = request(vec![us(tags::COMMAND_FIELD, C_ECHO_RQ)]);
        cut.extend_from_slice(&[0, 0, 0x10]);
        assert!(matches!(parse(&cut), Err(CommandError::Decode(r)) if r == "element header cut short"));
    }
}
