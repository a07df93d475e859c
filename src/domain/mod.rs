//! The domain: what zenedge records, in the hub's vocabulary.
//!
//! [`events`] is the catalog of event payloads and their versions; it is the wire contract
//! with the hub, so names and field names follow `DESIGN.md` and change only by adding a
//! version with an upcast.

pub mod events;

pub use events::{Event, EventDecodeError, Hl7MessageReceived, InstanceStored, StudyCompleted};

/// Lower-case hex of a digest, as events carry SHA-256 values.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}
