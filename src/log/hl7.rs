//! HL7 messages in the log: stored once per (sender, control id, content), re-sends answered
//! with the acknowledgement the first copy got.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::envelope::NewEvent;
use super::txn::{Txn, corrupt};
use super::writer::{AppendError, LogHandle};
use crate::domain::Event;

/// An HL7 message to store unless the same sender already sent the same content under the
/// same control id.
#[derive(Debug)]
pub struct Hl7Append {
    /// Decoded MSH-3, MSH-4, MSH-10: the sender's identity for its control ids.
    pub sending_application: String,
    pub sending_facility: String,
    pub control_id: String,
    /// SHA-256 of the raw message: "the same content".
    pub content_sha256: [u8; 32],
    /// The acknowledgement that will be sent if this commits; kept so a re-send a year later
    /// gets the byte-identical answer. Empty when no acknowledgement is sent.
    pub ack: Vec<u8>,
    /// An [`Event::Hl7MessageReceived`]; the writer fills in the conflict fields.
    pub event: NewEvent,
}

/// What became of an [`Hl7Append`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hl7Outcome {
    /// Stored at `seq`; `conflicts_with` is the first message stored under this sender and
    /// control id with other content, if any.
    Stored { seq: u64, conflicts_with: Option<u64> },
    /// Already stored at `seq` with the same content: answer with `ack`, nothing appended.
    Duplicate { seq: u64, ack: Vec<u8> },
}

/// The value of an `hl7_dedupe` row.
#[derive(Debug, Serialize, Deserialize)]
struct DedupeEntry {
    seq: u64,
    #[serde(with = "serde_bytes")]
    ack: Vec<u8>,
}

impl LogHandle {
    /// Stores an HL7 message unless it is a re-send; replies once durable.
    pub async fn append_hl7(&self, request: Hl7Append) -> Result<Hl7Outcome, AppendError> {
        self.request(request, apply).await
    }
}

fn apply(t: &mut Txn<'_, '_>, mut request: Hl7Append) -> Result<Result<Hl7Outcome, AppendError>, redb::Error> {
    let site = t.site;
    let lo = (
        site.tenant_id.as_str(),
        site.hospital_id.as_str(),
        request.sending_application.as_str(),
        request.sending_facility.as_str(),
        request.control_id.as_str(),
        [0u8; 32],
    );
    let hi = (lo.0, lo.1, lo.2, lo.3, lo.4, [0xffu8; 32]);
    let mut conflicts_with = None;
    for row in t.tables.hl7_dedupe()?.range(lo..=hi)? {
        let (key, value) = row?;
        let entry: DedupeEntry = rmp_serde::from_slice(value.value()).map_err(|e| corrupt("hl7_dedupe", e))?;
        if key.value().5 == request.content_sha256 {
            t.metrics.hl7_duplicates.inc();
            return Ok(Ok(Hl7Outcome::Duplicate { seq: entry.seq, ack: entry.ack }));
        }
        conflicts_with = Some(conflicts_with.map_or(entry.seq, |s: u64| s.min(entry.seq)));
    }
    if let Err(e) = &t.reserve {
        return Ok(Err(e.clone()));
    }
    if let Event::Hl7MessageReceived(message) = &mut request.event.event {
        message.control_id_conflict = conflicts_with.is_some();
        message.conflicts_with_seq = conflicts_with;
    }
    let seq = match t.append(&request.event)? {
        Ok(seq) => seq,
        Err(e) => return Ok(Err(e)),
    };
    let entry =
        rmp_serde::to_vec_named(&DedupeEntry { seq, ack: request.ack }).map_err(|e| corrupt("hl7_dedupe", e))?;
    let key = (lo.0, lo.1, lo.2, lo.3, lo.4, request.content_sha256);
    t.tables.hl7_dedupe()?.insert(key, entry.as_slice())?;
    if conflicts_with.is_some() {
        t.metrics.hl7_control_id_conflicts.inc();
    }
    Ok(Ok(Hl7Outcome::Stored { seq, conflicts_with }))
}
