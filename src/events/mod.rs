//! The event catalog: what zenedge records, in the hub's vocabulary.
//!
//! [`catalog`] lists every event type with its version; [`intake`] holds the intake events
//! (what arrived), [`forward`] what the central archive answered and confirmed, [`decisions`]
//! the decisions (matches and unmatches, orders, patient cases, merges). Together they are the
//! wire contract with the hub. [`envelope`] reads them back from the log: the storage engine
//! keeps each payload as opaque msgpack, and here it becomes an [`Event`] again (upcast from
//! older versions).

pub mod catalog;
pub mod decisions;
pub mod envelope;
pub mod forward;
pub mod intake;
pub mod subject;

pub use catalog::{EVENT_TYPES, Event, EventDecodeError, JsonPayload};
pub use decisions::{
    FieldChange, Hl7MessageMatched, Hl7MessageUpdated, OrderCancelled, OrderCreated, OrderUpdated,
    PatientCaseClassified, PatientCaseConsolidated, PatientCaseCreated, PatientsMerged, StudyMatched, StudyUnmatched,
    UNMATCHED_ACCESSION_CHANGED,
};
pub use envelope::{DecodeError, Envelope, JsonEnvelope, NewEvent, Page, after, decoded, get};
pub use forward::{CommittedInstance, ForwardStatus, InstanceForwarded, InstancesCommitted};
pub use intake::{Hl7MessageReceived, InstanceFileDeleted, InstanceStored, StudyCompleted};
