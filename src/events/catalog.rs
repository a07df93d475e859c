//! The event catalog: every event type this binary writes, its name in the envelope, its
//! current version, and the one place where stored payloads of older versions are upcast.
//!
//! An event is stored as an envelope (see [`crate::log::envelope`]) whose `data` is the
//! payload struct, serialized by name with rmp-serde; `event_type` and `event_version`
//! travel in the envelope. Adding a field with `#[serde(default)]` needs no new version;
//! renaming a field or changing its meaning does: keep the old struct as `…V1`, bump the
//! version below, and add an upcast arm to [`Event::decode`].

use crate::log::Subject;
use serde::Serialize;

use super::decisions::{
    Hl7MessageMatched, Hl7MessageUpdated, OrderCancelled, OrderCreated, OrderUpdated, PatientCaseClassified,
    PatientCaseConsolidated, PatientCaseCreated, PatientsMerged, StudyMatched, StudyUnmatched,
};
use super::forward::{InstanceForwarded, InstancesCommitted};
use super::intake::{Hl7MessageReceived, InstanceFileDeleted, InstanceStored, StudyCompleted};

/// A stored payload that this binary cannot turn into an [`Event`].
#[derive(Debug, thiserror::Error)]
pub enum EventDecodeError {
    #[error("unknown event type {event_type} version {event_version}")]
    Unknown { event_type: String, event_version: u32 },
    #[error("{event_type} v{event_version} does not decode: {reason}")]
    Malformed { event_type: String, event_version: u32, reason: String },
}

macro_rules! catalog {
    ($($variant:ident($payload:ty) = $name:literal v $version:literal;)*) => {
        /// The `event_type` of every event this binary writes.
        pub const EVENT_TYPES: &[&str] = &[$($name,)*];

        /// Every event type this binary writes, with its current payload.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Event {
            $($variant(Box<$payload>),)*
        }

        impl Event {
            /// The envelope's `event_type`.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $(Event::$variant(_) => $name,)*
                }
            }

            /// The version this binary writes for the event's type.
            pub fn event_version(&self) -> u32 {
                match self {
                    $(Event::$variant(_) => $version,)*
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
                    $(($name, $version) => Ok(Event::$variant(Box::new(rmpv::ext::from_value(data).map_err(malformed)?))),)*
                    _ => Err(EventDecodeError::Unknown { event_type: event_type.to_owned(), event_version }),
                }
            }

            fn serialize_json<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Event::$variant(e) => e.serialize_json(serializer),)*
                }
            }
        }

        /// The envelope's `data` is the bare payload struct (the type is in `event_type`).
        impl Serialize for Event {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Event::$variant(e) => e.serialize(serializer),)*
                }
            }
        }
    };
}

catalog! {
    Hl7MessageReceived(Hl7MessageReceived) = "HL7MessageReceived" v 1;
    Hl7MessageUpdated(Hl7MessageUpdated) = "HL7MessageUpdated" v 1;
    Hl7MessageMatched(Hl7MessageMatched) = "HL7MessageMatched" v 1;
    InstanceStored(InstanceStored) = "InstanceStored" v 1;
    StudyCompleted(StudyCompleted) = "StudyCompleted" v 1;
    StudyMatched(StudyMatched) = "StudyMatched" v 1;
    StudyUnmatched(StudyUnmatched) = "StudyUnmatched" v 1;
    OrderCreated(OrderCreated) = "OrderCreated" v 1;
    OrderUpdated(OrderUpdated) = "OrderUpdated" v 1;
    OrderCancelled(OrderCancelled) = "OrderCancelled" v 1;
    PatientCaseCreated(PatientCaseCreated) = "PatientCaseCreated" v 1;
    PatientCaseConsolidated(PatientCaseConsolidated) = "PatientCaseConsolidated" v 1;
    PatientCaseClassified(PatientCaseClassified) = "PatientCaseClassified" v 1;
    PatientsMerged(PatientsMerged) = "PatientsMerged" v 1;
    InstanceFileDeleted(InstanceFileDeleted) = "InstanceFileDeleted" v 1;
    InstanceForwarded(InstanceForwarded) = "InstanceForwarded" v 1;
    InstancesCommitted(InstancesCommitted) = "InstancesCommitted" v 1;
}

/// What the storage engine needs to store an event: its name, version and size.
impl crate::log::Payload for Event {
    fn event_type(&self) -> &'static str {
        Event::event_type(self)
    }

    fn event_version(&self) -> u32 {
        Event::event_version(self)
    }

    fn size_hint(&self) -> usize {
        Event::size_hint(self)
    }

    fn subject(&self) -> Subject<'_> {
        Event::subject(self)
    }
}

impl Event {
    pub const HL7_MESSAGE_RECEIVED: &'static str = "HL7MessageReceived";
    pub const INSTANCE_STORED: &'static str = "InstanceStored";
    pub const STUDY_COMPLETED: &'static str = "StudyCompleted";

    /// Whose patient data the payload carries (the key the log seals it under): the patient
    /// id it names, a key of its own when it carries patient data without one (an HL7 message
    /// with no PID, changed order fields), nothing for events that carry no patient data
    /// (matches, forwarding, file deletions, classifications).
    pub fn subject(&self) -> Subject<'_> {
        fn patient(id: Option<&String>) -> Subject<'_> {
            match id.filter(|id| !id.is_empty()) {
                Some(id) => Subject::Patient(id),
                None => Subject::Message,
            }
        }
        match self {
            Event::Hl7MessageReceived(e) => patient(e.summary.patient.as_ref().and_then(|p| p.id.as_ref())),
            Event::InstanceStored(e) => patient(e.patient_id.as_ref()),
            Event::StudyCompleted(e) => patient(e.patient_id.as_ref()),
            Event::OrderCreated(e) => patient(e.patient_ids.first()),
            Event::PatientCaseCreated(e) => patient(e.patient_ids.first()),
            Event::PatientCaseConsolidated(e) => patient(Some(&e.via_patient_id)),
            Event::PatientsMerged(e) => patient(Some(&e.surviving_patient_id)),
            Event::Hl7MessageUpdated(_) | Event::OrderUpdated(_) => Subject::Message,
            Event::Hl7MessageMatched(_)
            | Event::StudyMatched(_)
            | Event::StudyUnmatched(_)
            | Event::OrderCancelled(_)
            | Event::PatientCaseClassified(_)
            | Event::InstanceFileDeleted(_)
            | Event::InstanceForwarded(_)
            | Event::InstancesCommitted(_) => Subject::Clear,
        }
    }

    /// Roughly how many bytes the payload encodes to (sizes the encode buffer).
    pub fn size_hint(&self) -> usize {
        match self {
            Event::Hl7MessageReceived(e) => e.raw.len() + e.ack.len() + 1024,
            _ => 1024,
        }
    }

    /// The payload as JSON, for the read API: byte payloads are shown as text.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.json_view()).unwrap_or(serde_json::Value::Null)
    }

    /// The payload in its read-API form, serialized straight to the output (no
    /// intermediate `serde_json::Value`: a page of events is mostly this).
    pub fn json_view(&self) -> JsonPayload<'_> {
        JsonPayload(self)
    }
}

/// See [`Event::json_view`].
#[derive(Debug)]
pub struct JsonPayload<'a>(&'a Event);

impl Serialize for JsonPayload<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_json(serializer)
    }
}

/// How a payload shows in the read API: its serde form, unless it says otherwise.
trait JsonView: Serialize {
    fn serialize_json<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.serialize(serializer)
    }
}

impl JsonView for Hl7MessageReceived {
    fn serialize_json<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl JsonView for Hl7MessageUpdated {}
impl JsonView for Hl7MessageMatched {}
impl JsonView for InstanceStored {}
impl JsonView for StudyCompleted {}
impl JsonView for StudyMatched {}
impl JsonView for StudyUnmatched {}
impl JsonView for OrderCreated {}
impl JsonView for OrderUpdated {}
impl JsonView for OrderCancelled {}
impl JsonView for PatientCaseCreated {}
impl JsonView for PatientCaseConsolidated {}
impl JsonView for PatientCaseClassified {}
impl JsonView for PatientsMerged {}
impl JsonView for InstanceFileDeleted {}
impl JsonView for InstanceForwarded {}
impl JsonView for InstancesCommitted {}
