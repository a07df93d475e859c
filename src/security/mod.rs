//! Who is at the other end of a connection, and the one place every security alert goes
//! through.
//!
//! * [`PeerIdentity`]: taken once per connection from the client certificate the TLS
//!   handshake verified (subject CN, subject alternative names, SHA-256 fingerprint of the
//!   certificate). The listeners carry it into the intake events (`peer_identity`), compare it
//!   with the sender bindings (`[[mllp.senders]]`) and the calling AE entries
//!   (`dicom.calling_ae_allow`), and name it in alerts.
//! * [`Alerts::alert`]: every security event of the daemon (a refused handshake, a refused
//!   source address, a sender sending as someone else, a spoofed AE title, a reload that
//!   failed) is logged here, at WARN (ERROR when an operator must act), with facts and never
//!   patient data, counted in `zenedge_security_alerts_total{kind}`, and handed to the audit
//!   trail ([`AlertRecorder`], `crate::audit`). Nothing else logs a security event.

mod alert;
mod identity;

pub use alert::{AlertKind, AlertRecorder, Alerts, Facts};
pub use identity::PeerIdentity;
