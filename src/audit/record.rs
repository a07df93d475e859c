//! One audit record, shaped like the DICOM PS3.15 A.5 audit message it is rendered as: what
//! happened ([`AuditRecord::event`], its action, time, outcome and types), who took part
//! ([`Participant`]) and what was touched ([`AuditObject`]). The audit source (this edge) is
//! added when the record is rendered ([`super::xml`]), so it is not repeated in every row.
//!
//! Stored as msgpack by field name: fields may be added later with `#[serde(default)]`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A coded value (`csd-code`, `codeSystemName`, `originalText` in the XML).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Code {
    pub code: String,
    /// `DCM` (PS3.16), `RFC-3881`, `IHE`, `HL7`.
    pub system: String,
    pub display: String,
}

impl Code {
    /// A code of DICOM's own vocabulary (PS3.16, `DCM`).
    pub fn dcm(code: &str, display: &str) -> Code {
        Code { code: code.into(), system: "DCM".into(), display: display.into() }
    }

    /// A code of the RFC 3881 tables the A.5 schema keeps (`RFC-3881`).
    pub fn rfc3881(code: &str, display: &str) -> Code {
        Code { code: code.into(), system: "RFC-3881".into(), display: display.into() }
    }
}

/// `EventActionCode`: what was done to the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    Create,
    Read,
    Update,
    Delete,
    Execute,
}

impl Action {
    /// The letter of the schema (`C`, `R`, `U`, `D`, `E`).
    pub fn letter(self) -> &'static str {
        match self {
            Action::Create => "C",
            Action::Read => "R",
            Action::Update => "U",
            Action::Delete => "D",
            Action::Execute => "E",
        }
    }
}

/// `EventOutcomeIndicator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// 0
    Success,
    /// 4: the action was refused or partly done (a refused handshake, a refused sender).
    MinorFailure,
    /// 8: the action failed.
    SeriousFailure,
    /// 12: a failure that takes the service down.
    MajorFailure,
}

impl Outcome {
    pub fn number(self) -> &'static str {
        match self {
            Outcome::Success => "0",
            Outcome::MinorFailure => "4",
            Outcome::SeriousFailure => "8",
            Outcome::MajorFailure => "12",
        }
    }
}

/// An `ActiveParticipant`: a person, an application or a node that took part.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Participant {
    /// `UserID`: the application, AE title, API client or process.
    pub user_id: String,
    /// `AlternativeUserID`: `AETITLES=…` for DICOM applications, the certificate's SHA-256
    /// fingerprint for a TLS peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternative_user_id: Option<String>,
    /// `UserName`: the name the participant proved (the certificate's subject CN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// `UserIsRequestor`.
    pub requestor: bool,
    /// `NetworkAccessPointID`: the participant's IP address (type code 2) or host name (1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_access_point: Option<String>,
    /// `RoleIDCode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Code>,
}

/// A `ParticipantObjectIdentification`: a patient, a study, a message, a query, the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditObject {
    /// `ParticipantObjectTypeCode`: 1 person, 2 system object, 3 organization, 4 other.
    pub type_code: u8,
    /// `ParticipantObjectTypeCodeRole`: 1 patient, 3 report, 4 resource, 24 query, …
    pub role: u8,
    /// `ParticipantObjectIDTypeCode`.
    pub id_type: Code,
    /// `ParticipantObjectID`.
    pub id: String,
    /// `ParticipantObjectName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `ParticipantObjectDescription`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `ParticipantObjectDetail` pairs (type, value; the value is base64 in the XML).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<(String, String)>,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// `EventID`.
    pub event: Code,
    pub action: Action,
    /// `EventDateTime`: when it happened.
    pub at: Timestamp,
    pub outcome: Outcome,
    /// `EventOutcomeDescription`: why a failure failed, in an admin's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_description: Option<String>,
    /// `EventTypeCode`s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_types: Vec<Code>,
    pub participants: Vec<Participant>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<AuditObject>,
}

/// A record as the trail holds it: its position and the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// Gapless from 1, in commit order.
    pub id: u64,
    /// When the writer committed it.
    pub recorded_at: Timestamp,
    pub record: AuditRecord,
}
