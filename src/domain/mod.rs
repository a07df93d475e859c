//! The domain: what zenedge records, in the hub's vocabulary.
//!
//! [`catalog`] lists every event type with its version; [`events`] holds the intake events
//! (what arrived), [`matching`] the decisions (matches and unmatches, orders, patient cases,
//! merges).
//! Together they are the wire contract with the hub.

pub mod catalog;
pub mod events;
pub mod matching;

pub use catalog::{EVENT_TYPES, Event, EventDecodeError, JsonPayload};
pub use events::{Hl7MessageReceived, InstanceFileDeleted, InstanceStored, StudyCompleted};
pub use matching::{
    FieldChange, Hl7MessageMatched, Hl7MessageUpdated, OrderCancelled, OrderCreated, OrderUpdated,
    PatientCaseClassified, PatientCaseConsolidated, PatientCaseCreated, PatientsMerged, StudyMatched, StudyUnmatched,
    UNMATCHED_ACCESSION_CHANGED,
};
