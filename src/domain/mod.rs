//! The domain: the decisions that turn what arrives into events, each with its request to the
//! single writer.
//!
//! * [`hl7`] — an HL7 message becomes an `HL7MessageReceived`, stored once per sender, control
//!   id and content; a re-send is answered with the ACK the first copy got.
//! * [`dicom`] — a scanned, durable DICOM instance becomes an `InstanceStored`, recorded once
//!   per identical data set; a study completes when its instances stop coming.
//! * [`decide`] — what follows from a message or a completion: matching orders with studies,
//!   order changes and accession corrections, patient cases, merges, classification.
//!
//! Every decision is taken once, in the writer's transaction, from the projections, and
//! recorded as events (invariant 3): replay applies the events, it never decides again. The
//! event types are the catalog's ([`crate::events`]).

pub mod decide;
pub mod dicom;
pub mod hl7;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

pub use dicom::{
    Arrival, CompletionOutcome, InstanceOutcome, StoredFile, complete_study, instance_event, receive_instance,
    receive_instances, record_instance,
};
pub use hl7::{Hl7Outcome, received_event, received_event_from};
