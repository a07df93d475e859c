//! A record as a syslog message (RFC 5424) carrying its audit message, and the octet-counted
//! frame RFC 5425 sends over TLS. Bytes out, no I/O.
//!
//! `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - BOM XML`: facility 10 (security and
//! authorization), severity 5 (notice) for a success and 4 (warning) for a failure; the
//! edge id as HOSTNAME; `zenedge` as APP-NAME; MSGID `IHE+RFC-3881`, as IHE ATNA requires for
//! DICOM PS3.15 A.5 messages; no structured data; the message as UTF-8 with its BOM.

use super::record::{Outcome, StoredRecord};
use super::xml::{AuditSource, render};

/// The MSGID IHE ATNA gives audit messages in the RFC 3881 / DICOM schema.
pub const MSGID: &str = "IHE+RFC-3881";
/// Facility 10: security/authorization messages.
const FACILITY: u8 = 10;

/// The RFC 5424 message of `row`; `procid` is this process's id.
pub fn message(row: &StoredRecord, source: &AuditSource, procid: u32) -> Vec<u8> {
    let severity = if row.record.outcome == Outcome::Success { 5 } else { 4 };
    let pri = u16::from(FACILITY) * 8 + severity;
    // TIME-SECFRAC has at most 6 digits.
    let at = jiff::Timestamp::from_microsecond(row.record.at.as_microsecond()).unwrap_or(row.record.at);
    let host = header_field(&source.source_id, 255);
    let mut out = format!("<{pri}>1 {at} {host} zenedge {procid} {MSGID} - ").into_bytes();
    out.extend_from_slice("\u{FEFF}".as_bytes());
    out.extend_from_slice(render(&row.record, source).as_bytes());
    out
}

/// RFC 5425 octet counting: `MSG-LEN SP SYSLOG-MSG`.
pub fn octet_counted(message: &[u8]) -> Vec<u8> {
    let mut out = format!("{} ", message.len()).into_bytes();
    out.extend_from_slice(message);
    out
}

/// A header field as RFC 5424 allows it: printable US-ASCII without spaces, at most `max`
/// characters, `-` (the nil value) when empty.
fn header_field(text: &str, max: usize) -> String {
    let field: String = text.chars().map(|c| if c.is_ascii_graphic() { c } else { '_' }).take(max).collect();
    if field.is_empty() { "-".into() } else { field }
}

#[cfg(test)]
#[path = "syslog_tests.rs"]
mod tests;
