//! Event payloads and their versions.
//!
//! An event is stored as an envelope (see [`crate::log::Envelope`]) whose `data` is the
//! payload struct below, serialized by name with rmp-serde. `event_type` and
//! `event_version` travel in the envelope; [`Event::decode`] is the one place where a stored
//! payload of an older version is upcast to the current struct. Adding a field with
//! `#[serde(default)]` needs no new version; renaming or changing a field's meaning does:
//! keep the old struct as `…V1`, bump the version, and add the upcast arm.

use serde::{Deserialize, Serialize};

use crate::hl7::Summary;

/// Every event type this binary writes, with its current payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Hl7MessageReceived(Box<Hl7MessageReceived>),
    InstanceStored(Box<InstanceStored>),
    StudyCompleted(Box<StudyCompleted>),
}

/// An accepted MLLP message: the raw bytes exactly as received, plus the parsed summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hl7MessageReceived {
    /// The frame payload as received, byte for byte (in the sender's charset).
    #[serde(with = "serde_bytes")]
    pub raw: Vec<u8>,
    /// MSH-9 as `CODE^TRIGGER` (e.g. `ORM^O01`), decoded.
    pub message_type: String,
    /// MSH-10, decoded.
    pub control_id: String,
    /// MSH-3, decoded.
    pub sending_application: String,
    /// MSH-4, decoded.
    pub sending_facility: String,
    /// SHA-256 of `raw`, hex: what "the same content" means for a re-sent control id.
    pub content_sha256: String,
    /// Another message with this sender and control id but different content was stored
    /// before (the sender reused a control id); `conflicts_with_seq` names the first one.
    pub control_id_conflict: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicts_with_seq: Option<u64>,
    /// The peer address the message came from (`ip:port`).
    pub peer: String,
    /// The acknowledgement sent for it, byte for byte (empty when the sender asked for none):
    /// a re-send is answered with exactly these bytes.
    #[serde(with = "serde_bytes", default)]
    pub ack: Vec<u8>,
    /// The parsed summary (patient, orders, charset used).
    pub summary: Summary,
}

/// An accepted C-STORE: the Part 10 file is on disk (fsync'ed, renamed, directory
/// fsync'ed) before this event is appended, and `Success` is sent only after its commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStored {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    /// The transfer syntax the dataset was received (and is stored) in.
    pub transfer_syntax_uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_name: Option<String>,
    /// (0010,1000) and the Other Patient IDs Sequence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_patient_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_of_patient_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accession_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_number: Option<String>,
    /// (0008,0005) as sent; `charset_fallback` when it was unknown or did not fit the bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specific_character_set: Option<String>,
    pub charset_fallback: bool,
    /// The Part 10 file, relative to the state directory.
    pub file_path: String,
    /// Size of the file in bytes.
    pub size: u64,
    /// SHA-256 of the data set bytes as received (the file after its File Meta
    /// Information), hex: what "identical bytes" means for a re-send.
    pub sha256: String,
    pub calling_ae: String,
    pub called_ae: String,
    /// The peer address (`ip:port`).
    pub peer: String,
    /// The same SOP Instance UID was stored before with other bytes: the event of that
    /// earlier version. Both files are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces_seq: Option<u64>,
}

/// No new instance arrived in a study for `stable_after`: the study, as the log holds it.
/// A study that receives more instances later completes again with a higher `revision`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyCompleted {
    pub study_instance_uid: String,
    /// 1 for the first completion, then 2, 3… after late instances.
    pub revision: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_patient_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accession_number: Option<String>,
    /// The modality of the study's first instance; `modalities` lists every one seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modalities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_description: Option<String>,
    pub series_count: u32,
    pub instance_count: u32,
    /// The `InstanceStored` events this completion covers: the first and the last.
    pub first_instance_seq: u64,
    pub last_instance_seq: u64,
}

/// A stored payload that this binary cannot turn into an [`Event`].
#[derive(Debug, thiserror::Error)]
pub enum EventDecodeError {
    #[error("unknown event type {event_type} version {event_version}")]
    Unknown { event_type: String, event_version: u32 },
    #[error("{event_type} v{event_version} does not decode: {reason}")]
    Malformed { event_type: String, event_version: u32, reason: String },
}

impl Event {
    pub const HL7_MESSAGE_RECEIVED: &'static str = "HL7MessageReceived";
    pub const INSTANCE_STORED: &'static str = "InstanceStored";
    pub const STUDY_COMPLETED: &'static str = "StudyCompleted";

    /// The envelope's `event_type`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::Hl7MessageReceived(_) => Self::HL7_MESSAGE_RECEIVED,
            Event::InstanceStored(_) => Self::INSTANCE_STORED,
            Event::StudyCompleted(_) => Self::STUDY_COMPLETED,
        }
    }

    /// The version this binary writes for the event's type.
    pub fn event_version(&self) -> u32 {
        match self {
            Event::Hl7MessageReceived(_) | Event::InstanceStored(_) | Event::StudyCompleted(_) => 1,
        }
    }

    /// Roughly how many bytes the payload encodes to (sizes the encode buffer).
    pub fn size_hint(&self) -> usize {
        match self {
            Event::Hl7MessageReceived(e) => e.raw.len() + 1024,
            Event::InstanceStored(_) | Event::StudyCompleted(_) => 1024,
        }
    }

    /// Decodes a stored payload, upcasting older versions to the current struct.
    pub fn decode(event_type: &str, event_version: u32, data: rmpv::Value) -> Result<Event, EventDecodeError> {
        let malformed = |e: rmpv::ext::Error| EventDecodeError::Malformed {
            event_type: event_type.to_owned(),
            event_version,
            reason: e.to_string(),
        };
        match (event_type, event_version) {
            (Self::HL7_MESSAGE_RECEIVED, 1) => {
                Ok(Event::Hl7MessageReceived(Box::new(rmpv::ext::from_value(data).map_err(malformed)?)))
            }
            (Self::INSTANCE_STORED, 1) => {
                Ok(Event::InstanceStored(Box::new(rmpv::ext::from_value(data).map_err(malformed)?)))
            }
            (Self::STUDY_COMPLETED, 1) => {
                Ok(Event::StudyCompleted(Box::new(rmpv::ext::from_value(data).map_err(malformed)?)))
            }
            _ => Err(EventDecodeError::Unknown { event_type: event_type.to_owned(), event_version }),
        }
    }

    /// The payload as JSON, for the read API: byte payloads are shown as text.
    pub fn to_json(&self) -> serde_json::Value {
        let value = match self {
            Event::Hl7MessageReceived(e) => return e.to_json(),
            Event::InstanceStored(e) => serde_json::to_value(e),
            Event::StudyCompleted(e) => serde_json::to_value(e),
        };
        value.unwrap_or(serde_json::Value::Null)
    }
}

/// The envelope's `data` is the bare payload struct (the type is in `event_type`).
impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Event::Hl7MessageReceived(e) => e.serialize(serializer),
            Event::InstanceStored(e) => e.serialize(serializer),
            Event::StudyCompleted(e) => e.serialize(serializer),
        }
    }
}

impl Hl7MessageReceived {
    /// JSON with `raw` replaced by `raw_text`, the message decoded in the charset its summary
    /// was decoded with (segment separators shown as `\r`).
    fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(map) = value.as_object_mut() {
            map.remove("raw");
            map.remove("ack");
            map.insert("ack_text".into(), serde_json::Value::String(String::from_utf8_lossy(&self.ack).into_owned()));
            let charset = self.summary.charset.parse().unwrap_or(crate::hl7::Charset::Iso8859_1);
            let text = charset.decode_lossy(&self.raw).into_owned();
            map.insert("raw_text".into(), serde_json::Value::String(text));
        }
        value
    }
}
