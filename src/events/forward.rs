//! The forwarding events: what a destination (the central archive) answered for an instance
//! the edge sent it, and what it confirmed holding. Field names are the hub contract.
//!
//! A destination's confirmation is what lets retention delete an instance file: either the
//! store's own success (`confirm = "store"`: an [`InstanceForwarded`] with `confirmed`), or a
//! Storage Commitment's answer ([`InstancesCommitted`]).

use serde::{Deserialize, Serialize};

/// What a destination answered to one instance. Stored as its name (`"stored"`,
/// `"refused"`): the log's decoder reads enums only from strings it is handed as such.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum ForwardStatus {
    /// The destination stored it (C-STORE Success or a warning, STOW-RS stored).
    Stored,
    /// The destination refused it (C-STORE `0xA7xx`/`0xA9xx`/`0xCxxx`, a transfer syntax it
    /// does not accept, STOW-RS 4xx or a failed SOP): a dead letter until an operator
    /// retries or skips it.
    Refused,
}

impl ForwardStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardStatus::Stored => "stored",
            ForwardStatus::Refused => "refused",
        }
    }
}

impl From<ForwardStatus> for &'static str {
    fn from(status: ForwardStatus) -> &'static str {
        status.as_str()
    }
}

impl TryFrom<String> for ForwardStatus {
    type Error = String;

    fn try_from(text: String) -> Result<ForwardStatus, String> {
        match text.as_str() {
            "stored" => Ok(ForwardStatus::Stored),
            "refused" => Ok(ForwardStatus::Refused),
            other => Err(format!("unknown forward status {other:?}")),
        }
    }
}

/// An instance was sent to a destination and it answered (transient failures, a network
/// error or a destination away, are retried and are not events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceForwarded {
    /// The destination's configured name.
    pub destination: String,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    /// The `InstanceStored` event of the version sent.
    pub instance_seq: u64,
    pub status: ForwardStatus,
    /// The destination's status code: the DIMSE status, or the HTTP status of STOW-RS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_status: Option<u16>,
    /// The destination's own words (Error Comment, a STOW failure reason), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// This answer is the destination's confirmation that it holds the instance
    /// (`confirm = "store"` and `status` stored).
    #[serde(default)]
    pub confirmed: bool,
    /// The Storage Commitment transaction that asks the destination to confirm this instance
    /// (`confirm = "commitment"`, the instance stored): the report that answers it is an
    /// [`InstancesCommitted`] with this `transaction_uid`. Absent otherwise, and in events
    /// written before commitment existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commitment_transaction_uid: Option<String>,
}

/// One instance named in a Storage Commitment answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedInstance {
    pub sop_instance_uid: String,
    /// The `InstanceStored` event of the version the request named.
    pub instance_seq: u64,
    /// For a failed reference: the Failure Reason (0008,1197).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<u16>,
}

/// A destination answered a Storage Commitment request (N-EVENT-REPORT): it holds the
/// `committed` instances, and does not hold the `failed` ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstancesCommitted {
    pub destination: String,
    /// The request's Transaction UID (0008,1195).
    pub transaction_uid: String,
    pub study_instance_uid: String,
    pub committed: Vec<CommittedInstance>,
    #[serde(default)]
    pub failed: Vec<CommittedInstance>,
}
