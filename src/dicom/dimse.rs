//! DIMSE command sets (PS3.7 9.3, 9.1.1 and 9.1.5): C-ECHO and C-STORE, requests in,
//! responses out. Command sets are always implicit VR little endian (PS3.7 6.3.1).
//!
//! Requests are read by hand ([`parse`]) from a buffer the association handler has already
//! bounded ([`MAX_COMMAND_BYTES`]), every declared length checked against the bytes present;
//! responses are written with dicom-object.

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
///
/// A command set is a flat list of implicit VR little endian data elements (PS3.7 6.3.1 and
/// 9.3): tag (group, element: 2 + 2 bytes), value length (4 bytes), value. It is read here
/// by hand rather than with dicom-object, whose parser reserves and zero-fills each value's
/// *declared* length before reading it (so 12 bytes could demand 4 GiB) and reads sequences
/// recursively (so a command set of nested items could overflow the stack). Every declared
/// length is checked against the bytes present, an undefined length (a sequence) is refused,
/// and only the elements we answer from are kept, as slices of `bytes`.
pub fn parse(bytes: &[u8]) -> Result<Request, CommandError> {
    let elements = CommandElements::read(bytes)?;
    let command_field = elements.us(COMMAND_FIELD, "Command Field")?;
    match command_field {
        C_ECHO_RQ => Ok(Request::Echo {
            message_id: elements.us(MESSAGE_ID, "Message ID")?,
            sop_class_uid: elements.uid(AFFECTED_SOP_CLASS_UID, "Affected SOP Class UID")?,
        }),
        C_STORE_RQ => {
            if elements.us(COMMAND_DATA_SET_TYPE, "Command Data Set Type")? == NO_DATA_SET {
                return Err(CommandError::StoreWithoutData);
            }
            Ok(Request::Store {
                message_id: elements.us(MESSAGE_ID, "Message ID")?,
                sop_class_uid: elements.uid(AFFECTED_SOP_CLASS_UID, "Affected SOP Class UID")?,
                sop_instance_uid: elements.uid(AFFECTED_SOP_INSTANCE_UID, "Affected SOP Instance UID")?,
            })
        }
        other => Ok(Request::Other { command_field: other }),
    }
}

/// The command elements a request is answered from, as (group 0000) element numbers.
const AFFECTED_SOP_CLASS_UID: u16 = 0x0002;
const COMMAND_FIELD: u16 = 0x0100;
const MESSAGE_ID: u16 = 0x0110;
const COMMAND_DATA_SET_TYPE: u16 = 0x0800;
const AFFECTED_SOP_INSTANCE_UID: u16 = 0x1000;
const KEPT: [u16; 5] =
    [AFFECTED_SOP_CLASS_UID, COMMAND_FIELD, MESSAGE_ID, COMMAND_DATA_SET_TYPE, AFFECTED_SOP_INSTANCE_UID];

/// The values of the [`KEPT`] elements of one command set, borrowed from its bytes.
struct CommandElements<'a> {
    values: [Option<&'a [u8]>; KEPT.len()],
}

impl<'a> CommandElements<'a> {
    fn read(mut bytes: &'a [u8]) -> Result<Self, CommandError> {
        let mut values = [None; KEPT.len()];
        while !bytes.is_empty() {
            let Some((header, rest)) = bytes.split_first_chunk::<8>() else {
                return Err(CommandError::Decode("truncated element header".into()));
            };
            let group = u16::from_le_bytes([header[0], header[1]]);
            let element = u16::from_le_bytes([header[2], header[3]]);
            let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            if len == u32::MAX {
                return Err(CommandError::Decode(format!("({group:04X},{element:04X}) has an undefined length")));
            }
            let Some((value, rest)) = rest.split_at_checked(len as usize) else {
                return Err(CommandError::Decode(format!(
                    "({group:04X},{element:04X}) declares {len} bytes, {} follow",
                    rest.len()
                )));
            };
            // Elements of other groups do not belong in a command set (PS3.7 6.3.1); they are
            // skipped by their (checked) length.
            let kept = if group == 0x0000 { KEPT.iter().position(|&e| e == element) } else { None };
            if let Some(i) = kept
                && values[i].replace(value).is_some()
            {
                return Err(CommandError::Decode(format!("(0000,{element:04X}) appears twice")));
            }
            bytes = rest;
        }
        Ok(CommandElements { values })
    }

    fn value(&self, element: u16) -> Option<&'a [u8]> {
        KEPT.iter().position(|&e| e == element).and_then(|i| self.values[i])
    }

    /// A US value: exactly two bytes.
    fn us(&self, element: u16, name: &'static str) -> Result<u16, CommandError> {
        match self.value(element) {
            Some(&[lo, hi]) => Ok(u16::from_le_bytes([lo, hi])),
            Some(_) => Err(CommandError::Decode(format!("{name} is not a US value"))),
            None => Err(CommandError::Missing(name)),
        }
    }

    /// A UI value as text, its NUL or space padding removed.
    ///
    /// Only the default repertoire (ASCII) is accepted: the UID is echoed in the response,
    /// and a character the command set's encoding cannot hold would fail to be written back.
    fn uid(&self, element: u16, name: &'static str) -> Result<String, CommandError> {
        let value = self.value(element).ok_or(CommandError::Missing(name))?;
        if !value.is_ascii() {
            return Err(CommandError::Decode(format!("{name} is not text in the default repertoire")));
        }
        let text = std::str::from_utf8(value).map_err(|_| CommandError::Decode(format!("{name} is not text")))?;
        Ok(text.trim_end_matches(['\0', ' ']).to_owned())
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
        assert!(
            matches!(&result, Err(CommandError::Decode(r)) if r.contains("declares 2147483632 bytes")),
            "{result:?}"
        );
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
        assert!(
            matches!(&result, Err(CommandError::Decode(r)) if r == "Command Field is not a US value"),
            "{result:?}"
        );
    }
}
