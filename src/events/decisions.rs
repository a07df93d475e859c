//! The decisions: an order matched with a study (and unmatched when the order's accession
//! number changes), the order created from that match and its later changes, patient cases,
//! merged patients. Each is decided once, by the log writer, and recorded as one of these
//! events (invariant 3); replay applies them, never decides them again. Field names are the
//! hub contract.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::hl7::summary::{CodedValue, Physician};

/// A completed study was paired with an order: same (tenant, hospital, accession).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyMatched {
    pub study_instance_uid: String,
    /// `<HL7 message id>:<order group>`: the order within its message.
    pub order_id: String,
    /// The event id of the `HL7MessageReceived` that brought the order.
    pub hl7_message_id: String,
    pub accession_number: String,
    pub matched_at: Timestamp,
}

/// The same pairing, from the HL7 message's side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hl7MessageMatched {
    pub hl7_message_id: String,
    pub order_id: String,
    pub study_instance_uid: String,
    pub accession_number: String,
}

/// A pair recorded by [`StudyMatched`] no longer holds: the order's accession number was
/// corrected (a re-sent `NW` with the same placer number, or an `XO`) and the study does not
/// have the new one. The `StudyMatched` stays in the log; from this event on, the pair is gone
/// from the matches, the order and the study wait again unless they have other pairs, and
/// the order meets the completed studies of its new accession (new `StudyMatched` events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyUnmatched {
    pub study_instance_uid: String,
    pub order_id: String,
    /// The event id of the `HL7MessageReceived` that brought the order.
    pub hl7_message_id: String,
    /// The accession number the pair was matched under.
    pub accession_number: String,
    /// The order's accession number now.
    pub new_accession_number: String,
    /// Why: `accession_changed`.
    pub reason: String,
    /// The event id of the `HL7MessageReceived` that changed the accession number.
    pub changed_by_hl7_message_id: String,
    /// The seq of the pair's `StudyMatched`.
    pub match_seq: u64,
}

/// [`StudyUnmatched::reason`] when the order's accession number changed.
pub const UNMATCHED_ACCESSION_CHANGED: &str = "accession_changed";

/// A matched pair becomes an order of the study's patient case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCreated {
    pub order_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_case_id: Option<String>,
    /// The order's patient ids (PID-3 repetitions, PID-2, PID-4), resolved through merges:
    /// from now on they find the case too. Empty in events written before this field; the
    /// order's ids as its message gave them are taken then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patient_ids: Vec<String>,
    pub hl7_message_id: String,
    pub study_instance_uid: String,
    pub accession_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procedure: Option<CodedValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requesting_physician: Option<Physician>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinical_info: Option<String>,
    /// PV1-2 of the order's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_status: Option<String>,
}

/// One field of an order that a later message changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

/// An order message (ORC-1 `XO`, a status change, or `CA`) changed a known order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hl7MessageUpdated {
    pub order_id: String,
    /// The `HL7MessageReceived` that carried the change.
    pub hl7_message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_control: Option<String>,
    pub changes: Vec<FieldChange>,
    /// ORC-1 `CA`: the order is cancelled.
    pub cancelled: bool,
}

/// A change to an order that was already matched (created).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderUpdated {
    pub order_id: String,
    pub hl7_message_id: String,
    pub changes: Vec<FieldChange>,
}

/// A matched order was cancelled (ORC-1 `CA`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub order_id: String,
    pub hl7_message_id: String,
}

/// A completed study opened a new patient case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatientCaseCreated {
    pub case_id: String,
    pub study_instance_uid: String,
    /// The patient's ids as resolved through merges: the study's patient id first.
    pub patient_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
}

/// A completed study joined an open case of the same patient and modality, created within
/// the consolidation window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatientCaseConsolidated {
    pub case_id: String,
    pub study_instance_uid: String,
    /// The id the study and the case share.
    pub via_patient_id: String,
    /// The study's patient ids (resolved through merges); ids new to the case join it.
    #[serde(default)]
    pub patient_ids: Vec<String>,
}

/// A match brought the case's patient class (PV1-2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatientCaseClassified {
    pub case_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_class: Option<String>,
    pub new_class: String,
    pub reason: String,
    pub hl7_message_id: String,
}

/// ADT^A40: the prior patient ids are now the surviving patient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatientsMerged {
    pub surviving_patient_id: String,
    pub prior_patient_ids: Vec<String>,
    pub hl7_message_id: String,
}
