//! Application acknowledgements, which zenedge does not send, and the one log line per
//! sender that asks for them.
//!
//! In enhanced acknowledgement mode (MSH-15 present) MSH-16 asks for a second answer, the
//! application acknowledgement, once the receiving application has processed the message:
//! `AL` always, `SU` on success, `ER` on error, `NE` never. It is a message of its own that
//! the receiver sends back as a new exchange (and the sender answers with a commit ACK).
//! zenedge's processing of a message *is* storing it: the accept acknowledgement (`CA`) is
//! sent only after the durable commit, and nothing that happens later (matching) can make
//! the message fail. So it sends no application acknowledgement; a sender that waits for one
//! should be set to original mode (MSH-15 and MSH-16 empty), where the `AA` is exactly that.
//! Each sender that asks for one on success (`AL`, `SU`) is named once at WARN (per run of the
//! daemon: the set is in memory), so the admin
//! can fix the sender's configuration; `ER` needs nothing, since an accepted message has no
//! later error to report.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Mutex;

use crate::hl7::Header;

/// Senders remembered at most; beyond that no more are named (a bound against senders
/// inventing MSH-3 values, not a limit real sites reach).
const MAX_SENDERS: usize = 1024;

/// The senders (MSH-3, MSH-4 as written) already named in the log.
#[derive(Debug, Default)]
pub struct AppAckNotices {
    named: Mutex<HashSet<(String, String)>>,
}

impl AppAckNotices {
    /// Logs once per sender that `header` asks for an application acknowledgement that will
    /// not come. Returns whether it logged.
    pub(super) fn note(&self, header: &Header, peer: SocketAddr) -> bool {
        if !asks_for_application_ack(header) {
            return false;
        }
        let sender = (header.sending_application.clone(), header.sending_facility.clone());
        let first = {
            let mut named = self.named.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            named.len() < MAX_SENDERS && named.insert(sender)
        };
        if first {
            tracing::warn!(
                %peer,
                sending_application = ?header.sending_application,
                sending_facility = ?header.sending_facility,
                msh15 = ?header.accept_ack_type,
                msh16 = ?header.application_ack_type,
                "sender asks for application acknowledgements (MSH-16), which zenedge does not send: \
                 its accept acknowledgement (CA) already means stored; set the sender to original mode \
                 (MSH-15/MSH-16 empty) if it waits for one (said once per sender while the daemon runs)"
            );
        }
        first
    }
}

/// Enhanced mode, and MSH-16 asks for an application acknowledgement of a stored message.
fn asks_for_application_ack(header: &Header) -> bool {
    header.is_enhanced_mode() && matches!(header.application_ack_type.trim().to_ascii_uppercase().as_str(), "AL" | "SU")
}

#[cfg(test)]
#[path = "app_ack_tests.rs"]
mod tests;
