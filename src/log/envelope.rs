//! The envelope every event is stored and synced in.
//!
//! Field names are the hub contract (`DESIGN.md`, "Storage layout"). The stored form is a
//! msgpack map by field name whose `data` is the event payload's own map, so the hub reads
//! one document per event. Reading goes through [`StoredEnvelope`], which keeps `data` as a
//! generic msgpack value until [`crate::events::Event::decode`] upcasts it.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::{Event, EventDecodeError};

/// What the event is about: the aggregate it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregate {
    /// e.g. `hl7_message`, `study`, `order`, `patient_case`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// An event as a caller hands it to the log, before it has a sequence number.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: Uuid,
    /// When it happened in the world (e.g. when the frame was received).
    pub occurred_at: Timestamp,
    pub aggregate: Aggregate,
    /// Groups the events of one request (e.g. a message and the decisions it caused).
    pub correlation_id: Option<Uuid>,
    /// The event that caused this one.
    pub causation_id: Option<Uuid>,
    pub event: Event,
}

impl NewEvent {
    /// A new event about `aggregate`, happening now, with a fresh time-ordered id.
    pub fn now(aggregate: Aggregate, event: Event) -> NewEvent {
        NewEvent {
            event_id: Uuid::now_v7(),
            occurred_at: Timestamp::now(),
            aggregate,
            correlation_id: None,
            causation_id: None,
            event,
        }
    }
}

/// The envelope as written: borrowed parts, serialized once by the writer.
#[derive(Debug, Serialize)]
pub(crate) struct EnvelopeRef<'a> {
    pub seq: u64,
    pub event_id: Uuid,
    pub event_type: &'static str,
    pub event_version: u32,
    pub occurred_at: Timestamp,
    pub recorded_at: Timestamp,
    pub tenant_id: &'a str,
    pub hospital_id: &'a str,
    pub edge_id: &'a str,
    pub aggregate: &'a Aggregate,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub data: &'a Event,
}

impl EnvelopeRef<'_> {
    /// Serializes by field name into a buffer sized for `hint` bytes of payload.
    pub fn encode(&self, hint: usize) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        let mut out = Vec::with_capacity(hint + 512);
        rmp_serde::encode::write_named(&mut out, self)?;
        Ok(out)
    }
}

/// The envelope as read back, payload not yet decoded.
#[derive(Debug, Clone, Deserialize)]
pub struct StoredEnvelope {
    pub seq: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: u32,
    pub occurred_at: Timestamp,
    pub recorded_at: Timestamp,
    pub tenant_id: String,
    pub hospital_id: String,
    pub edge_id: String,
    pub aggregate: Aggregate,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub data: rmpv::Value,
}

/// A decoded envelope with its typed, upcast payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub seq: u64,
    pub event_id: Uuid,
    pub occurred_at: Timestamp,
    pub recorded_at: Timestamp,
    pub tenant_id: String,
    pub hospital_id: String,
    pub edge_id: String,
    pub aggregate: Aggregate,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub event: Event,
}

/// Why stored bytes could not be read as an envelope.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("envelope does not decode: {0}")]
    Envelope(#[from] rmp_serde::decode::Error),
    #[error(transparent)]
    Event(#[from] EventDecodeError),
}

impl StoredEnvelope {
    pub fn from_bytes(bytes: &[u8]) -> Result<StoredEnvelope, DecodeError> {
        Ok(rmp_serde::from_slice(bytes)?)
    }

    pub fn decode(self) -> Result<Envelope, DecodeError> {
        let event = Event::decode(&self.event_type, self.event_version, self.data)?;
        Ok(Envelope {
            seq: self.seq,
            event_id: self.event_id,
            occurred_at: self.occurred_at,
            recorded_at: self.recorded_at,
            tenant_id: self.tenant_id,
            hospital_id: self.hospital_id,
            edge_id: self.edge_id,
            aggregate: self.aggregate,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            event,
        })
    }
}

impl Envelope {
    pub fn from_bytes(bytes: &[u8]) -> Result<Envelope, DecodeError> {
        StoredEnvelope::from_bytes(bytes)?.decode()
    }

    pub fn event_type(&self) -> &'static str {
        self.event.event_type()
    }

    /// The envelope as JSON for the read API (same field names as the stored form).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.json_view()).unwrap_or(serde_json::Value::Null)
    }

    /// The envelope in its read-API form, serialized straight to the output.
    pub fn json_view(&self) -> JsonEnvelope<'_> {
        let e = self;
        JsonEnvelope {
            seq: e.seq,
            event_id: e.event_id,
            event_type: e.event.event_type(),
            event_version: e.event.event_version(),
            occurred_at: e.occurred_at,
            recorded_at: e.recorded_at,
            tenant_id: &e.tenant_id,
            hospital_id: &e.hospital_id,
            edge_id: &e.edge_id,
            aggregate: &e.aggregate,
            correlation_id: e.correlation_id,
            causation_id: e.causation_id,
            data: e.event.json_view(),
        }
    }
}

/// An envelope as the read API shows it; see [`Envelope::json_view`].
#[derive(Debug, Serialize)]
pub struct JsonEnvelope<'a> {
    seq: u64,
    event_id: Uuid,
    event_type: &'static str,
    event_version: u32,
    occurred_at: Timestamp,
    recorded_at: Timestamp,
    tenant_id: &'a str,
    hospital_id: &'a str,
    edge_id: &'a str,
    aggregate: &'a Aggregate,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
    data: crate::events::JsonPayload<'a>,
}
