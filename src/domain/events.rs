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
    /// The parsed summary (patient, orders, charset used).
    pub summary: Summary,
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

    /// The envelope's `event_type`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::Hl7MessageReceived(_) => Self::HL7_MESSAGE_RECEIVED,
        }
    }

    /// The version this binary writes for the event's type.
    pub fn event_version(&self) -> u32 {
        match self {
            Event::Hl7MessageReceived(_) => 1,
        }
    }

    /// Roughly how many bytes the payload encodes to (sizes the encode buffer).
    pub fn size_hint(&self) -> usize {
        match self {
            Event::Hl7MessageReceived(e) => e.raw.len() + 1024,
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
            _ => Err(EventDecodeError::Unknown { event_type: event_type.to_owned(), event_version }),
        }
    }

    /// The payload as JSON, for the read API: byte payloads are shown as text.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Event::Hl7MessageReceived(e) => e.to_json(),
        }
    }
}

/// The envelope's `data` is the bare payload struct (the type is in `event_type`).
impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Event::Hl7MessageReceived(e) => e.serialize(serializer),
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
            let charset = self.summary.charset.parse().unwrap_or(crate::hl7::Charset::Iso8859_1);
            let text = charset.decode_lossy(&self.raw).into_owned();
            map.insert("raw_text".into(), serde_json::Value::String(text));
        }
        value
    }
}
