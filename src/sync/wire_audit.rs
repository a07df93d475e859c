//! The audit records on the hub contract, shared by the edge's sync worker and the reference
//! hub: an edge sends its audit trail ([`crate::audit`]) to the hub beside its events, so a
//! central security team sees every edge's trail.
//!
//! # Sending
//!
//! `POST /v1/edges/{edge_id}/audit` ([`audit_path`]), `Content-Type: application/msgpack`,
//! `Content-Encoding: gzip`: a msgpack array of the edge's records exactly as its trail stores
//! them (`{id, recorded_at, record}` by field name), ids strictly ascending. The hub keeps each
//! record once per `(edge_id, id)`: a record it holds already is not stored again (a page sent
//! twice, after a lost answer, stores nothing the second time). It answers `200`
//! [`AuditStored`] once the page is durable. Unlike events, pages need not be contiguous:
//! records the edge pruned before it had a hub never come.
//!
//! Refusals as for batches: `400`/`413`/`415`/`422` with a [`super::wire::Refusal`]. A hub
//! older than this contract answers `404` (no such path): the edge logs it and asks again
//! later, and its event sync goes on regardless.
//!
//! # Reading
//!
//! `GET /v1/audit?edge=EDGE&after=ID&limit=N` ([`AUDIT_READ_PATH`]) on the hub: the records
//! of one edge with `id > after`, ascending, `{"items": [{"edge_id", "id", "recorded_at",
//! "record"}], "next": ID|null}`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::wire::WireError;

/// Where the hub's security team pages through every edge's trail.
pub const AUDIT_READ_PATH: &str = "/v1/audit";

/// `POST` path of an edge's audit pages.
pub fn audit_path(edge_id: &str) -> String {
    format!("/v1/edges/{edge_id}/audit")
}

/// The hub's `200` to an audit page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditStored {
    /// The last id of the page: every record of it is held.
    pub stored_through: u64,
    /// Records of the page the hub did not hold before.
    pub stored: u64,
}

/// The fields of a stored record the hub reads; the rest is kept as sent, so records of a
/// newer edge are kept whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct AuditHead {
    pub id: u64,
    pub recorded_at: Timestamp,
}

/// One record of a received page: its head and its bytes as sent.
#[derive(Debug, Clone)]
pub struct ReceivedRecord {
    pub head: AuditHead,
    pub bytes: Vec<u8>,
}

/// The body of a page of stored records (the same framing as an event batch).
pub fn encode_audit_page<'a>(records: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<u8> {
    super::wire::encode_batch(records, 1)
}

/// Reads a page: gunzip (at most `max_bytes` expanded), then each record's head; ids must
/// ascend strictly.
pub fn decode_audit_page(body: &[u8], max_bytes: usize) -> Result<Vec<ReceivedRecord>, WireError> {
    let plain = super::wire::gunzip_bounded(body, max_bytes)?;
    let mut cursor = std::io::Cursor::new(plain.as_slice());
    let len = rmp::decode::read_array_len(&mut cursor).map_err(|e| WireError::Array(e.to_string()))? as usize;
    let mut out: Vec<ReceivedRecord> = Vec::with_capacity(len.min(100_000));
    for index in 0..len {
        let start = cursor.position() as usize;
        let head: AuditHead = rmp_serde::decode::from_read(&mut cursor)
            .map_err(|e| WireError::Envelope { index, reason: format!("not an audit record: {e}") })?;
        if out.last().is_some_and(|prev| prev.head.id >= head.id) {
            return Err(WireError::Envelope { index, reason: format!("id {} does not ascend", head.id) });
        }
        let end = cursor.position() as usize;
        out.push(ReceivedRecord { head, bytes: plain[start..end].to_vec() });
    }
    let rest = plain.len() - cursor.position() as usize;
    if rest != 0 {
        return Err(WireError::Trailing(rest));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "wire_audit_tests.rs"]
mod tests;
