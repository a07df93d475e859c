//! HL7 projections: the duplicate index of received messages, from which a re-sent message
//! is answered with the acknowledgement it got the first time.

use serde::{Deserialize, Serialize};

use super::Tables;
use crate::config::Site;
use crate::events::Hl7MessageReceived;
use crate::log::corrupt;

/// The value of an `hl7_dedupe` row.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DedupeEntry {
    pub seq: u64,
    #[serde(with = "serde_bytes")]
    pub ack: Vec<u8>,
}

/// `HL7MessageReceived`: (sender, control id, content hash without the final segment
/// terminators) → (seq, ACK sent).
pub(crate) fn apply_received(
    t: &mut Tables<'_>,
    site: &Site,
    seq: u64,
    m: &Hl7MessageReceived,
) -> Result<(), redb::Error> {
    let hash = m.dedupe_sha256();
    let key = (
        site.tenant_id.as_str(),
        site.hospital_id.as_str(),
        m.sending_application.as_str(),
        m.sending_facility.as_str(),
        m.control_id.as_str(),
        hash,
    );
    let entry =
        rmp_serde::to_vec_named(&DedupeEntry { seq, ack: m.ack.clone() }).map_err(|e| corrupt("hl7_dedupe", e))?;
    t.hl7_dedupe()?.insert(key, entry.as_slice())?;
    Ok(())
}
