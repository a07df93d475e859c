//! DIMSE command sets (PS3.7 9.3, 9.1.1 and 9.1.5): C-ECHO and C-STORE, requests in,
//! responses out. Command sets are always implicit VR little endian (PS3.7 6.3.1).
//!
//! Parsing uses dicom-object on a buffer the association handler has already bounded
//! ([`MAX_COMMAND_BYTES`]), so a hostile length cannot make it allocate more than that.

use dicom_core::{DataElement, PrimitiveValue, VR};
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
    let ts = IMPLICIT_VR_LITTLE_ENDIAN.erased();
    let obj = InMemDicomObject::read_dataset_with_ts(bytes, &ts).map_err(|e| CommandError::Decode(e.to_string()))?;
    let u16_of = |tag, name| {
        obj.element_opt(tag).ok().flatten().and_then(|e| e.to_int::<u16>().ok()).ok_or(CommandError::Missing(name))
    };
    let uid_of = |tag, name| {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_str().ok().map(|s| s.trim_end_matches(['\0', ' ']).to_owned()))
            .ok_or(CommandError::Missing(name))
    };
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
}
