//! HL7 projections: the duplicate index of received messages, from which a re-sent message
//! is answered with the acknowledgement it got the first time (kept in its event, not here).

use serde::{Deserialize, Serialize};

use super::Tables;
use crate::config::Site;
use crate::events::Hl7MessageReceived;
use crate::log::corrupt;

/// The value of an `hl7_dedupe` row: the event that stored the message. The ACK it was
/// answered with is that event's (`HL7MessageReceived.ack`), read from it when a re-send comes,
/// so it is stored once. (Rows written before schema 7 also held a copy of it; a rebuild at
/// the upgrade rewrote them.)
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DedupeEntry {
    pub seq: u64,
}

/// `HL7MessageReceived`: (sender, control id, content hash without the final segment
/// terminators) → seq.
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
    let entry = rmp_serde::to_vec_named(&DedupeEntry { seq }).map_err(|e| corrupt("hl7_dedupe", e))?;
    t.hl7_dedupe()?.insert(key, entry.as_slice())?;
    Ok(())
}
