//! DIMSE command sets (PS3.7 9.3, 9.1.1, 9.1.2 and 9.1.5; 10.3.1): C-ECHO, C-STORE, C-FIND,
//! C-CANCEL and N-EVENT-REPORT, requests in, responses out. Command sets are always implicit VR little endian (PS3.7 6.3.1).
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
const C_FIND_RQ: u16 = 0x0020;
const C_FIND_RSP: u16 = 0x8020;
const C_CANCEL_RQ: u16 = 0x0FFF;
const N_EVENT_REPORT_RQ: u16 = 0x0100;
/// Command Data Set Type: a data set follows (any value but [`NO_DATA_SET`]; this one we write).
const DATA_SET: u16 = 0x0000;
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
    /// C-FIND: a match follows, every key supported (PS3.4 C.4.1.1.4).
    pub const PENDING: u16 = 0xFF00;
    /// C-FIND: a match follows; an optional key was not supported.
    pub const PENDING_WARNING: u16 = 0xFF01;
    /// C-FIND: matching ended by a C-CANCEL.
    pub const CANCEL: u16 = 0xFE00;
    /// C-FIND: Identifier does not match SOP class.
    pub const IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS: u16 = 0xA900;
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
    /// C-FIND-RQ: its identifier follows as a data set.
    Find {
        message_id: u16,
        sop_class_uid: String,
    },
    /// C-CANCEL-RQ of the C-FIND with `message_id`.
    Cancel {
        message_id: u16,
    },
    /// N-EVENT-REPORT-RQ (a Storage Commitment report, [`super::commitment`]): its event
    /// information follows as a data set.
    EventReport {
        message_id: u16,
        sop_class_uid: String,
        event_type_id: u16,
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
    #[error("C-FIND-RQ without an identifier")]
    FindWithoutIdentifier,
    #[error("N-EVENT-REPORT-RQ without event information")]
    ReportWithoutData,
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
        C_FIND_RQ => {
            if elements.us(COMMAND_DATA_SET_TYPE, "Command Data Set Type")? == NO_DATA_SET {
                return Err(CommandError::FindWithoutIdentifier);
            }
            Ok(Request::Find {
                message_id: elements.us(MESSAGE_ID, "Message ID")?,
                sop_class_uid: elements.uid(AFFECTED_SOP_CLASS_UID, "Affected SOP Class UID")?,
            })
        }
        C_CANCEL_RQ => Ok(Request::Cancel {
            message_id: elements.us(MESSAGE_ID_BEING_RESPONDED_TO, "Message ID Being Responded To")?,
        }),
        N_EVENT_REPORT_RQ => {
            if elements.us(COMMAND_DATA_SET_TYPE, "Command Data Set Type")? == NO_DATA_SET {
                return Err(CommandError::ReportWithoutData);
            }
            Ok(Request::EventReport {
                message_id: elements.us(MESSAGE_ID, "Message ID")?,
                sop_class_uid: elements.uid(AFFECTED_SOP_CLASS_UID, "Affected SOP Class UID")?,
                event_type_id: elements.us(EVENT_TYPE_ID, "Event Type ID")?,
            })
        }
        other => Ok(Request::Other { command_field: other }),
    }
}

/// The command elements a request is answered from, as (group 0000) element numbers.
const AFFECTED_SOP_CLASS_UID: u16 = 0x0002;
const COMMAND_FIELD: u16 = 0x0100;
const MESSAGE_ID: u16 = 0x0110;
const MESSAGE_ID_BEING_RESPONDED_TO: u16 = 0x0120;
const COMMAND_DATA_SET_TYPE: u16 = 0x0800;
const AFFECTED_SOP_INSTANCE_UID: u16 = 0x1000;
const EVENT_TYPE_ID: u16 = 0x1002;
const KEPT: [u16; 7] = [
    AFFECTED_SOP_CLASS_UID,
    COMMAND_FIELD,
    MESSAGE_ID,
    MESSAGE_ID_BEING_RESPONDED_TO,
    COMMAND_DATA_SET_TYPE,
    AFFECTED_SOP_INSTANCE_UID,
    EVENT_TYPE_ID,
];

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
        elements.push(error_comment(comment));
    }
    encode(elements)
}

/// C-FIND-RSP (PS3.7 9.3.2.2): `status` PENDING/PENDING_WARNING with an identifier
/// following, else final, with an Error Comment for failures (LO, at most 64 chars).
pub fn find_response(message_id: u16, sop_class_uid: &str, status: u16, comment: Option<&str>) -> Vec<u8> {
    let pending = matches!(status, status::PENDING | status::PENDING_WARNING);
    let mut elements = vec![
        uid(tags::AFFECTED_SOP_CLASS_UID, sop_class_uid),
        us(tags::COMMAND_FIELD, C_FIND_RSP),
        us(tags::MESSAGE_ID_BEING_RESPONDED_TO, message_id),
        us(tags::COMMAND_DATA_SET_TYPE, if pending { DATA_SET } else { NO_DATA_SET }),
        us(tags::STATUS, status),
    ];
    if let Some(comment) = comment {
        elements.push(error_comment(comment));
    }
    encode(elements)
}

/// An Error Comment (LO): ASCII without backslashes, at most 64 characters.
fn error_comment(comment: &str) -> DataElement<InMemDicomObject> {
    let text: String = comment.chars().filter(|c| c.is_ascii() && *c != '\\').take(64).collect();
    DataElement::new(tags::ERROR_COMMENT, VR::LO, PrimitiveValue::from(text))
}

/// C-STORE-RQ (PS3.7 9.3.1.1), medium priority, a data set follows: what the forwarding
/// sends the archive.
pub fn store_request(message_id: u16, sop_class_uid: &str, sop_instance_uid: &str) -> Vec<u8> {
    encode(vec![
        uid(tags::AFFECTED_SOP_CLASS_UID, sop_class_uid),
        us(tags::COMMAND_FIELD, C_STORE_RQ),
        us(tags::MESSAGE_ID, message_id),
        us(tags::PRIORITY, 0),
        us(tags::COMMAND_DATA_SET_TYPE, 0x0000),
        uid(tags::AFFECTED_SOP_INSTANCE_UID, sop_instance_uid),
    ])
}

/// What an archive answered to a C-STORE-RQ (PS3.7 9.3.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreAnswer {
    pub message_id_being_responded_to: u16,
    pub status: u16,
    pub error_comment: Option<String>,
}

/// Reads a C-STORE-RSP command set (already bounded by [`MAX_COMMAND_BYTES`]).
pub fn parse_store_response(bytes: &[u8]) -> Result<StoreAnswer, CommandError> {
    let obj = read_response(bytes)?;
    let number = |tag, name| response_number(&obj, tag, name);
    if number(tags::COMMAND_FIELD, "Command Field")? != C_STORE_RSP {
        return Err(CommandError::Decode("not a C-STORE-RSP".into()));
    }
    let error_comment = obj
        .element_opt(tags::ERROR_COMMENT)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok().map(|t| t.trim_end_matches(['\0', ' ']).to_owned()));
    Ok(StoreAnswer {
        message_id_being_responded_to: number(tags::MESSAGE_ID_BEING_RESPONDED_TO, "Message ID Being Responded To")?,
        status: number(tags::STATUS, "Status")?,
        error_comment,
    })
}

/// A response command set from a peer (already bounded by the caller), read with dicom-object.
pub(super) fn read_response(bytes: &[u8]) -> Result<InMemDicomObject, CommandError> {
    InMemDicomObject::read_dataset_with_ts(bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| CommandError::Decode(e.to_string()))
}

/// A US element of a response read by [`read_response`].
pub(super) fn response_number(
    obj: &InMemDicomObject,
    tag: dicom_core::Tag,
    name: &'static str,
) -> Result<u16, CommandError> {
    let element = obj.element_opt(tag).map_err(|e| CommandError::Decode(e.to_string()))?;
    element.ok_or(CommandError::Missing(name))?.to_int::<u16>().map_err(|e| CommandError::Decode(e.to_string()))
}

pub(super) fn us(tag: dicom_core::Tag, value: u16) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, PrimitiveValue::from(value))
}

pub(super) fn uid(tag: dicom_core::Tag, value: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::UI, PrimitiveValue::from(value))
}

pub(super) fn encode(elements: Vec<DataElement<InMemDicomObject>>) -> Vec<u8> {
    let obj = InMemDicomObject::command_from_element_iter(elements);
    let mut out = Vec::with_capacity(256);
    obj.write_dataset_with_ts(&mut out, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .expect("writing a command set into a Vec cannot fail");
    out
}

#[cfg(test)]
#[path = "dimse_tests.rs"]
mod tests;
