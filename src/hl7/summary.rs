//! The summary of an accepted message that goes into the `HL7MessageReceived` event.
//!
//! This is a wire contract with the hub (serialised with `rmp_serde::to_vec_named`): field
//! names are stable, new fields are only ever added as `Option` or with `#[serde(default)]`
//! so that older readers and older events keep working.
//!
//! Conventions for every `Option<String>` below:
//! * `None`: the message had nothing there (field absent or empty);
//! * `Some("")`: the sender sent the explicit null `""`, i.e. "delete this value" (matters
//!   for updates such as ADT^A08 or ORC-1 XO);
//! * `Some(text)`: the value with escape sequences decoded and the charset converted.
//!
//! In the encoded form a `None` or an empty list is left out (an absent key reads back as
//! `None` / empty), which keeps events small: most messages fill few of these fields.
//!
//! Values are otherwise as given: dates and times are the HL7 DTM text (`20260314083000`,
//! possibly with a precision or offset), codes are not mapped.

use serde::{Deserialize, Serialize};

/// What zenedge records about one accepted HL7 v2 message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// MSH-9.1 message code, e.g. `ORM`, `OMI`, `ADT`. Never empty (else the message is rejected).
    pub message_code: String,
    /// MSH-9.2 trigger event, e.g. `O01`, `A08` (EVN-1 for v2.1 messages without MSH-9.2).
    /// Never empty.
    pub trigger_event: String,
    /// MSH-9.3 message structure, e.g. `ADT_A01` (often absent before v2.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_structure: Option<String>,
    /// MSH-10 message control id, unescaped. Never empty. Unique per sender by the standard;
    /// the key (with the sender) for recognising a re-sent message.
    pub control_id: String,
    /// MSH-3 sending application: HD.1 namespace id, or HD.2 universal id when HD.1 is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending_application: Option<String>,
    /// MSH-4 sending facility (HD.1, else HD.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending_facility: Option<String>,
    /// MSH-5 receiving application (HD.1, else HD.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving_application: Option<String>,
    /// MSH-6 receiving facility (HD.1, else HD.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving_facility: Option<String>,
    /// MSH-7 date/time of message, as given (first component).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_datetime: Option<String>,
    /// MSH-12.1 version id, e.g. `2.5.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// MSH-11.1 processing id: `P` production, `T` training, `D` debugging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_id: Option<String>,
    /// MSH-18 as the sender wrote it, e.g. `8859/1` (code extensions included, e.g.
    /// `~ISO IR87`); `None` when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_charset: Option<String>,
    /// HL7 table 0211 name of the charset actually used to decode the message.
    pub charset: String,
    /// True when `charset` is the configured fallback because MSH-18 was unknown or
    /// unsupported, or the bytes were not valid in the declared charset (non-ASCII under an
    /// empty MSH-18 that is not valid UTF-8 counts too). Names may then be garbled.
    #[serde(default)]
    pub charset_fallback: bool,
    /// The first PID segment, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<Patient>,
    /// The first PV1 segment, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visit: Option<Visit>,
    /// The first MRG segment (ADT^A40 and other merges), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<Merge>,
    /// Order groups in message order (ORC/OBR/TQ1/IPC/ZDS…); empty for messages without
    /// ORC or OBR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orders: Vec<Order>,
}

/// Patient facts from PID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Patient {
    /// Primary patient id: PID-3 (first repetition) CX.1; PID-2 CX.1 when PID-3 is empty
    /// (pre-v2.5 senders that still use the external id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Every identifier with a non-empty id: all PID-3 repetitions, then PID-2 and PID-4
    /// (kept for older versions), in message order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<PatientIdentifier>,
    /// PID-5 patient name, first repetition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<PersonName>,
    /// PID-7 date/time of birth (first component), as given, e.g. `19800101`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// PID-8 administrative sex (HL7 table 0001: `F`, `M`, `O`, `U`, `A`, `N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<String>,
}

/// One patient identifier (a CX value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientIdentifier {
    /// CX.1 id number (never empty: empty repetitions are not listed).
    pub id: String,
    /// CX.4 assigning authority: HD.1 namespace id, or HD.2 universal id when HD.1 is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigning_authority: Option<String>,
    /// CX.5 identifier type code (HL7 table 0203: `MR`, `PI`, `NH`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier_type: Option<String>,
    /// The field it came from: `PID-3`, `PID-2`, `PID-4`, `MRG-1` or `MRG-4`.
    pub field: String,
}

/// A person name (XPN, or the name part of XCN).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PersonName {
    /// XPN.1.1 family name (surname).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// XPN.2 given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given: Option<String>,
    /// XPN.3 second and further given names or initials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle: Option<String>,
    /// XPN.4 suffix, e.g. `JR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// XPN.5 prefix, e.g. `DR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Visit facts from PV1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    /// PV1-2 patient class (HL7 table 0004: `I` inpatient, `O` outpatient, `E` emergency…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_class: Option<String>,
    /// PV1-19 visit number, CX.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visit_number: Option<String>,
}

/// What a merge (MRG) says about the record being merged away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merge {
    /// MRG-1 prior patient identifier list (all repetitions), then MRG-4 prior patient id
    /// (older versions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prior_identifiers: Vec<PatientIdentifier>,
    /// MRG-7 prior patient name, first repetition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_name: Option<PersonName>,
}

/// One order group: an ORC with its OBR and the TQ1/IPC/ZDS… segments that follow.
///
/// An OBR without its own ORC (a second OBR after one ORC, or OBR-only messages) forms a
/// group of its own, without an ORC: its values come from its OBR (an ORC belongs to its own
/// group only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// ORC-1 order control (HL7 table 0119: `NW` new, `XO` change, `CA` cancel, `SC` status…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_control: Option<String>,
    /// ORC-5 order status (HL7 table 0038: `SC` scheduled, `IP` in process, `CM` completed…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_status: Option<String>,
    /// Placer order number: ORC-2 EI.1, else OBR-2 EI.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placer_order_number: Option<String>,
    /// Filler order number: ORC-3 EI.1, else OBR-3 EI.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filler_order_number: Option<String>,
    /// Accession number: the first non-empty, non-null value among the configured
    /// locations (`ReadOptions::accession_from`), looked up within this group only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accession_number: Option<String>,
    /// The configured location the accession number came from, e.g. `OBR-18`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accession_source: Option<String>,
    /// Modality: IPC-5 CWE.1 (e.g. `CT`), else OBR-24 diagnostic service section id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
    /// OBR-4 universal service identifier: the ordered procedure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procedure: Option<CodedValue>,
    /// IPC-2 requested procedure id (OMI^O23).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_procedure_id: Option<String>,
    /// IPC-4 scheduled procedure step id (OMI^O23).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_procedure_step_id: Option<String>,
    /// Ordering provider: OBR-16 (first repetition), else ORC-12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requesting_physician: Option<Physician>,
    /// Relevant clinical information: OBR-13, else OBR-31 reason for study (first
    /// repetition; for coded values the text component, else the code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinical_info: Option<String>,
    /// DICOM Study Instance UID: IPC-3 EI.1, else ZDS-1.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_instance_uid: Option<String>,
    /// When the procedure is scheduled, as given: TQ1-7 start date/time, else OBR-36
    /// scheduled date/time, else OBR-27.4 / ORC-7.4 (quantity/timing start), else OBR-7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_datetime: Option<String>,
}

/// A coded value (CE/CWE).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CodedValue {
    /// Component 1: identifier (code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Component 2: text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Component 3: name of coding system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coding_system: Option<String>,
}

/// A provider (XCN): id and name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Physician {
    /// XCN.1 id number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// XCN.2.1 family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// XCN.3 given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given: Option<String>,
}

impl Summary {
    /// `code^trigger`, e.g. `ORM^O01` (for logs and metrics labels; never patient data).
    pub fn message_type(&self) -> String {
        format!("{}^{}", self.message_code, self.trigger_event)
    }
}
