//! Events as the log holds them, typed: an envelope read back with its payload decoded and
//! upcast into the catalog's [`Event`] ([`Event::decode`]), its read-API JSON form, and reading
//! the log's events in order.
//!
//! The storage engine keeps each payload as opaque msgpack (see [`crate::log::envelope`]);
//! this is where it becomes an [`Event`] again.

use jiff::Timestamp;
use serde::Serialize;
use uuid::Uuid;

use super::{Event, EventDecodeError, JsonPayload};
use crate::log::{Aggregate, LogReader, ReadError, StoredEnvelope};

/// An event of the catalog as a caller hands it to the log, before it has a sequence number.
pub type NewEvent = crate::log::NewEvent<Event>;

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

/// Why stored bytes could not be read as an event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Envelope(#[from] crate::log::DecodeError),
    #[error(transparent)]
    Event(#[from] EventDecodeError),
}

impl Envelope {
    pub fn from_bytes(bytes: &[u8]) -> Result<Envelope, DecodeError> {
        Envelope::decode(StoredEnvelope::from_bytes(bytes)?)
    }

    /// The stored envelope with its payload decoded (and upcast to the current version).
    pub fn decode(stored: StoredEnvelope) -> Result<Envelope, DecodeError> {
        let event = Event::decode(&stored.event_type, stored.event_version, stored.data)?;
        Ok(Envelope {
            seq: stored.seq,
            event_id: stored.event_id,
            occurred_at: stored.occurred_at,
            recorded_at: stored.recorded_at,
            tenant_id: stored.tenant_id,
            hospital_id: stored.hospital_id,
            edge_id: stored.edge_id,
            aggregate: stored.aggregate,
            correlation_id: stored.correlation_id,
            causation_id: stored.causation_id,
            event,
        })
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
    data: JsonPayload<'a>,
}

/// A page of events and where the next page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Envelope>,
    /// The `after` for the next page, `None` when this page reached the end of the log.
    pub next: Option<u64>,
}

/// One event by sequence number.
pub fn get(reader: &LogReader, seq: u64) -> Result<Option<Envelope>, ReadError> {
    let Some(bytes) = reader.raw_event(seq)? else { return Ok(None) };
    decoded(seq, &bytes).map(Some)
}

/// Up to `limit` events with `seq > after`, in order.
pub fn after(reader: &LogReader, after: u64, limit: usize) -> Result<Page, ReadError> {
    let raw = reader.raw_after(after, limit)?;
    let full = raw.len() == limit;
    let items = raw.into_iter().map(|(seq, bytes)| decoded(seq, &bytes)).collect::<Result<Vec<_>, _>>()?;
    let next = if full { items.last().map(|e| e.seq) } else { None };
    Ok(Page { items, next })
}

/// Event `seq` decoded from its stored bytes.
pub fn decoded(seq: u64, bytes: &[u8]) -> Result<Envelope, ReadError> {
    Envelope::from_bytes(bytes).map_err(|source| ReadError::Decode { seq, source: Box::new(source) })
}
