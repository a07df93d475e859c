//! The envelope every event is stored and synced in.
//!
//! Field names are the hub contract (`DESIGN.md`, "Storage layout"). The stored form is a
//! msgpack map by field name whose `data` is the payload's own map, encoded by the layer that
//! owns the payload type ([`Payload`]); `event_type` and `event_version` travel beside it, so
//! the hub reads one document per event. The engine never decodes `data`: reading goes through
//! [`StoredEnvelope`], which keeps it as a generic msgpack value for the layer above to decode.
//! What is stored is this envelope behind [`super::value`]'s compression; reading a stored value
//! here undoes it.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::value::ValueFault;

/// What the engine needs from an event payload to store it: its name and version in the
/// envelope, a size hint for the encode buffer, and whose data it is (sealing). It is encoded with its own `Serialize`.
pub trait Payload: Serialize + Send + Sync + 'static {
    /// The envelope's `event_type`.
    fn event_type(&self) -> &'static str;
    /// The envelope's `event_version`.
    fn event_version(&self) -> u32;
    /// Roughly how many bytes the payload encodes to.
    fn size_hint(&self) -> usize;
    /// Whose patient data the payload carries: the data key it is sealed under when the log
    /// seals ([`super::keys`]). Payloads with no patient data are stored unsealed.
    fn subject(&self) -> super::keys::Subject<'_> {
        super::keys::Subject::Clear
    }
}

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
pub struct NewEvent<E> {
    pub event_id: Uuid,
    /// When it happened in the world (e.g. when the frame was received).
    pub occurred_at: Timestamp,
    pub aggregate: Aggregate,
    /// Groups the events of one request (e.g. a message and the decisions it caused).
    pub correlation_id: Option<Uuid>,
    /// The event that caused this one.
    pub causation_id: Option<Uuid>,
    pub event: E,
}

impl<E> NewEvent<E> {
    /// A new event about `aggregate`, happening now, with a fresh time-ordered id.
    pub fn now(aggregate: Aggregate, event: E) -> NewEvent<E> {
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
pub(crate) struct EnvelopeRef<'a, E> {
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
    pub data: &'a E,
}

impl<E: Serialize> EnvelopeRef<'_, E> {
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

/// Why stored bytes could not be read as an envelope.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the stored value is corrupt: {0}")]
    Value(#[from] ValueFault),
    #[error("envelope does not decode: {0}")]
    Msgpack(#[from] rmp_serde::decode::Error),
}

impl StoredEnvelope {
    /// The envelope of a stored value, compressed ([`super::value`]) or plain.
    pub fn from_bytes(bytes: &[u8]) -> Result<StoredEnvelope, DecodeError> {
        let plain = super::value::plain(bytes)?;
        Ok(rmp_serde::from_slice(&plain)?)
    }
}

/// The `event_id` of a stored value (compressed or plain), without decoding the rest of it.
pub fn head_event_id(bytes: &[u8]) -> Result<Uuid, String> {
    #[derive(Deserialize)]
    struct Head {
        event_id: Uuid,
    }
    let plain = super::value::plain(bytes).map_err(|e| format!("the stored value is corrupt: {e}"))?;
    rmp_serde::from_slice::<Head>(&plain).map(|h| h.event_id).map_err(|e| format!("envelope without an event id: {e}"))
}
