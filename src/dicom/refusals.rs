//! What a modality is turned away with, logged and counted: each refused presentation
//! context with its SOP class, the reason and the calling AE.

use std::net::SocketAddr;

use super::DicomContext;
use super::negotiate::Negotiated;
use super::sop_class;

/// Refused presentation contexts logged one by one per association; the rest are counted.
const REFUSALS_LOGGED: usize = 16;

/// Logs (WARN) and counts each refused presentation context, so an admin sees what a
/// modality was turned away with: the SOP class UID and name, the reason, the calling AE.
pub(super) fn report(negotiated: &Negotiated, peer: SocketAddr, ctx: &DicomContext) {
    for (n, refused) in negotiated.refused.iter().enumerate() {
        let entry = sop_class::entry(&refused.abstract_syntax);
        ctx.metrics.dicom_context_refused(refused.reason.as_str(), entry.map_or("unknown", |e| e.alias));
        if n < REFUSALS_LOGGED {
            tracing::warn!(
                peer = %peer,
                calling_ae = %negotiated.calling_ae,
                context_id = refused.id,
                abstract_syntax = %printable_uid(&refused.abstract_syntax),
                sop_class = entry.map_or("(not in the standard dictionary)", |e| e.name),
                reason = refused.reason.as_str(),
                "DICOM presentation context refused"
            );
        }
    }
    if negotiated.refused.len() > REFUSALS_LOGGED {
        tracing::warn!(
            peer = %peer,
            calling_ae = %negotiated.calling_ae,
            more = negotiated.refused.len() - REFUSALS_LOGGED,
            "more DICOM presentation contexts refused (counted in zenedge_dicom_contexts_refused_total)"
        );
    }
}

/// A UID from the wire as it can be logged: as is when it is a UID, else quoted and
/// escaped (at most 64 characters), so it cannot forge log lines.
fn printable_uid(uid: &str) -> String {
    if crate::ids::is_valid_uid(uid) {
        return uid.to_owned();
    }
    let head: String = uid.chars().take(64).collect();
    format!("{head:?}")
}
