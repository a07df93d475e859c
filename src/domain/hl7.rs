//! An HL7 message becomes an event, stored once per (sender, control id, content); re-sends
//! are answered with the acknowledgement the first copy got. "The same content" ignores the
//! segment terminators after the last segment (see [`crate::hl7::without_final_terminators`]);
//! the bytes kept are those of the first copy.
//!
//! [`received_event`] builds the `HL7MessageReceived` of a parsed message (its digests, its
//! sender, the ACK that will answer it); [`store`] is its request to the single writer. The
//! duplicate decision is taken there, in the writer's transaction, from the duplicate index in
//! [`crate::projections::hl7`], and the matching decisions follow ([`super::decide`]); the
//! event itself carries everything the index is built from (sender, control id, content hash),
//! so a rebuild reproduces it, and the ACK sent, which a re-send is answered with (the index
//! names the event and does not copy it). Its audit record (Patient or Order Record,
//! [`crate::audit`]) is appended in the same transaction, for a re-send too (unless below the
//! disk reserve, where a re-send is answered and nothing is written).

use redb::ReadableTable;

use crate::events::{Event, NewEvent};
use crate::log::{Aggregate, AppendError, LogHandle, Txn, corrupt};
use crate::projections::Projections;
use crate::projections::hl7::DedupeEntry;
use crate::security::PeerIdentity;

/// What became of a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hl7Outcome {
    /// Stored at `seq`; `conflicts_with` is the first message stored under this sender and
    /// control id with other content, if any.
    Stored { seq: u64, conflicts_with: Option<u64> },
    /// Already stored at `seq` with the same content: answer with `ack`, nothing appended.
    Duplicate { seq: u64, ack: Vec<u8> },
}

/// The `HL7MessageReceived` for a parsed message and the ACK that will answer it.
pub fn received_event(payload: &[u8], received: &crate::hl7::Received, peer: &str, ack: Vec<u8>) -> NewEvent {
    received_event_from(payload, received, peer, None, ack)
}

/// [`received_event`] from a connection whose client certificate is `peer_identity`.
pub fn received_event_from(
    payload: &[u8],
    received: &crate::hl7::Received,
    peer: &str,
    peer_identity: Option<PeerIdentity>,
    ack: Vec<u8>,
) -> NewEvent {
    use sha2::Digest;
    // One pass: the digest of the message without its final terminators, then of the rest.
    let body = crate::hl7::without_final_terminators(payload);
    let mut hasher = sha2::Sha256::new();
    hasher.update(body);
    let normalized_sha256: [u8; 32] = hasher.clone().finalize().into();
    hasher.update(&payload[body.len()..]);
    let content_sha256: [u8; 32] = hasher.finalize().into();
    let (app, facility) = received.sender();
    let event = crate::events::Hl7MessageReceived {
        raw: payload.to_vec(),
        message_type: received.summary.message_type(),
        control_id: received.control_id().to_owned(),
        sending_application: app.to_owned(),
        sending_facility: facility.to_owned(),
        content_sha256: crate::ids::hex(&content_sha256),
        normalized_sha256: Some(crate::ids::hex(&normalized_sha256)),
        control_id_conflict: false,
        conflicts_with_seq: None,
        peer: peer.to_owned(),
        peer_identity,
        ack,
        summary: received.summary.clone(),
    };
    let mut new = NewEvent::now(
        Aggregate { kind: "hl7_message".into(), id: String::new() },
        Event::Hl7MessageReceived(Box::new(event)),
    );
    new.aggregate.id = new.event_id.to_string();
    new
}

/// Stores an `HL7MessageReceived` (which carries the ACK that will be sent) unless the same
/// sender already sent the same content under the same control id; replies once durable. The
/// writer fills in the conflict fields.
pub async fn store(log: &LogHandle<Projections>, event: NewEvent) -> Result<Hl7Outcome, AppendError> {
    log.request(event, apply).await
}

fn apply(
    t: &mut Txn<'_, '_, Projections>,
    mut event: NewEvent,
) -> Result<Result<Hl7Outcome, AppendError>, redb::Error> {
    let Event::Hl7MessageReceived(message) = &mut event.event else {
        return Ok(Err(AppendError::Encode("not an HL7MessageReceived event".into())));
    };
    let site = t.site;
    let hash = message.dedupe_sha256();
    let (app, facility, control_id) =
        (message.sending_application.clone(), message.sending_facility.clone(), message.control_id.clone());
    let lo = (
        site.tenant_id.as_str(),
        site.hospital_id.as_str(),
        app.as_str(),
        facility.as_str(),
        control_id.as_str(),
        [0u8; 32],
    );
    let hi = (lo.0, lo.1, lo.2, lo.3, lo.4, [0xffu8; 32]);
    let mut conflicts_with = None;
    let mut duplicate = None;
    for row in t.tables.hl7_dedupe()?.range(lo..=hi)? {
        let (key, value) = row?;
        let entry: DedupeEntry = rmp_serde::from_slice(value.value()).map_err(|e| corrupt("hl7_dedupe", e))?;
        if key.value().5 == hash {
            duplicate = Some(entry);
            break;
        }
        conflicts_with = Some(conflicts_with.map_or(entry.seq, |s: u64| s.min(entry.seq)));
    }
    if let Some(entry) = duplicate {
        t.metrics.hl7_duplicates.inc();
        // Below the reserve a re-send is still answered, but nothing is written for it.
        if t.reserve.is_ok() {
            let record = crate::audit::kinds::hl7_received(&site.edge_id, message, t.recorded_at);
            crate::audit::append(t, vec![record])?;
        }
        let ack = stored_ack(t, entry.seq)?;
        return Ok(Ok(Hl7Outcome::Duplicate { seq: entry.seq, ack }));
    }
    if let Err(e) = &t.reserve {
        return Ok(Err(e.clone()));
    }
    message.control_id_conflict = conflicts_with.is_some();
    message.conflicts_with_seq = conflicts_with;
    let seq = match t.append(&event)? {
        Ok(seq) => seq,
        Err(e) => return Ok(Err(e)),
    };
    if let Event::Hl7MessageReceived(message) = &event.event {
        let record = crate::audit::kinds::hl7_received(&site.edge_id, message, t.recorded_at);
        crate::audit::append(t, vec![record])?;
        super::decide::after_message(t, event.event_id, message)?;
    }
    if conflicts_with.is_some() {
        t.metrics.hl7_control_id_conflicts.inc();
    }
    Ok(Ok(Hl7Outcome::Stored { seq, conflicts_with }))
}

/// The ACK the message stored at `seq` was answered with: its event carries it (the duplicate
/// index keeps only the seq). An index row without its event, or naming another kind of event,
/// is corruption.
fn stored_ack(t: &mut Txn<'_, '_, Projections>, seq: u64) -> Result<Vec<u8>, redb::Error> {
    let stored =
        t.event(seq)?.ok_or_else(|| corrupt("hl7_dedupe", format!("names event {seq}, which the log lacks")))?;
    match crate::events::Envelope::decode(stored).map_err(|e| corrupt("events", format!("event {seq}: {e}")))?.event {
        Event::Hl7MessageReceived(message) => Ok(message.ack),
        other => Err(corrupt("hl7_dedupe", format!("names event {seq}, a {}", other.event_type()))),
    }
}

#[cfg(test)]
#[path = "hl7_tests.rs"]
mod tests;
