//! Sender bindings (`[[mllp.senders]]`): which connection may send as which MSH-3/MSH-4. No
//! I/O: the connection's identity and address and the message's sender in, a verdict out.
//!
//! A connection matches an entry when the entry's certificate (if it names one) is the
//! connection's client certificate and the entry's networks (if any) hold its address. A
//! message is allowed when some entry its connection matches allows its MSH-3 and MSH-4
//! (decoded: HD.1, else HD.2). With no entries, every message is allowed: the listener alone
//! decides who may connect (over TLS, any certificate of `tls.client_ca`).

use std::net::IpAddr;

use crate::config::MllpSender;
use crate::hl7::ErrorDetail;
use crate::hl7::error::codes::TABLE_VALUE_NOT_FOUND;
use crate::security::PeerIdentity;

/// Why a message may not be taken from this connection: the ERR for the `AR`, and the same
/// words for the alert.
pub(super) fn refusal(
    senders: &[MllpSender],
    identity: Option<&PeerIdentity>,
    addr: IpAddr,
    (application, facility): (&str, &str),
) -> Option<ErrorDetail> {
    if senders.is_empty() {
        return None;
    }
    let addr = addr.to_canonical();
    let matching: Vec<&MllpSender> = senders
        .iter()
        .filter(|s| s.from_matches(addr))
        .filter(|s| s.certificate.as_ref().is_none_or(|m| identity.is_some_and(|id| id.matches(m))))
        .collect();
    if matching.iter().any(|s| s.allows(application, facility)) {
        return None;
    }
    let who = match identity {
        Some(id) => format!("the certificate {:?} from {addr}", id.name()),
        None => format!("a plain connection from {addr}"),
    };
    let (location, text) = if matching.is_empty() {
        ("MSH^1^3", format!("sender not allowed: {who} matches no entry of mllp.senders; message not stored"))
    } else {
        let names: Vec<&str> = matching.iter().map(|s| s.name.as_str()).collect();
        let application_ok = matching
            .iter()
            .any(|s| s.sending_applications.is_empty() || s.sending_applications.iter().any(|a| a == application));
        let field = if application_ok { "MSH^1^4" } else { "MSH^1^3" };
        let text = format!(
            "sender not allowed: {who} ({}) may not send as MSH-3 {application:?}, MSH-4 {facility:?}; message not stored",
            names.join(", ")
        );
        (field, text)
    };
    Some(ErrorDetail { code: TABLE_VALUE_NOT_FOUND, location: Some(location.to_owned()), text })
}

#[cfg(test)]
#[path = "senders_tests.rs"]
mod tests;
