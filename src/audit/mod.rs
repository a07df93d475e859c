//! The audit trail (IHE ATNA): every receipt of patient data, every read of it through the
//! API and every security event, recorded durably before the answer, as DICOM PS3.15 A.5
//! audit messages.
//!
//! # Where the records live, and why there
//!
//! An append-only table `audit_trail` in the same redb file as the log (`id → msgpack`
//! [`StoredRecord`], ids gapless from 1), written only through the log's single writer, not
//! audit events in the log itself:
//!
//! * **Same transaction, no extra fsync.** The record of an HL7 message is appended by the
//!   domain's request that stores the message ([`crate::domain::hl7`]), in the same write
//!   transaction; the record of a C-STORE by the request that records the instance. They
//!   commit together or not at all, so an acknowledged message always has its record, and the
//!   record costs no commit of its own. Records of alerts and start/stop are requests of their
//!   own ([`record`]) that the writer batches with ingest (group commit). Records of API reads
//!   are made durable in the audit journal ([`journal`]: an append-only file, one `fdatasync`
//!   per group, no wait behind ingest) and copied into the trail in the background
//!   (`audit.journal = false`: through the writer like the alerts).
//! * **Not events.** The log is the hub's contract and the projections' source, replayed by
//!   `rebuild` and kept forever (nothing expires, design invariant 4). Audit records change no
//!   state, are many (every API read), and must be pruned after `audit.retention`; as events
//!   they would grow the log, the sync and every replay with them, and could never be
//!   removed. A table beside the log is pruned from its front without touching the log.
//!
//! # Contract
//!
//! * A record is committed before the answer it audits is sent: HL7 and C-STORE in the
//!   intake's own transaction; an API read waits for its record's commit and answers 503 when
//!   it cannot be had; a refused sender or a spoofed AE waits for its alert's record before the
//!   refusal ([`crate::security::Alerts::alert_recorded`]). Other alerts (a refused handshake,
//!   a refused address) are queued ([`alerts`]) and committed in the next batch.
//! * Below the disk reserve records are refused like any new data (a commit could meet a
//!   full disk, which stops the writer): a read of patient data is then answered 503, a
//!   re-send is answered without its record, the start of a daemon on a full disk is not
//!   recorded.
//! * The records hold patient ids (that is their purpose); logs at INFO never do.
//! * The trail is copied by backups like every declared table; `rebuild` and `verify` leave
//!   it alone (it is not a projection).

pub mod alerts;
pub mod journal;
pub mod kinds;
pub mod record;
pub mod retention;
pub mod syslog;
pub mod trail;
pub mod xml;

pub use alerts::{AlertTrail, alert_trail, write_alerts};
pub use journal::Journal;
pub use kinds::Requester;
pub use record::{Action, AuditObject, AuditRecord, Code, Outcome, Participant, StoredRecord};
pub use trail::{AUDIT_TRAIL, append, last_id, page, page_raw, record};
pub use xml::{AuditSource, render};

/// The tables the trail keeps, for the file's schema.
pub fn tables() -> Vec<crate::log::TableSpec> {
    vec![trail::table_spec()]
}
