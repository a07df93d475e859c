//! The domain: what zenedge records, in the hub's vocabulary.
//!
//! [`events`] is the catalog of event payloads and their versions; it is the wire contract
//! with the hub, so names and field names follow `DESIGN.md` and change only by adding a
//! version with an upcast.

pub mod events;

pub use events::{Event, EventDecodeError, Hl7MessageReceived, InstanceStored, StudyCompleted};
