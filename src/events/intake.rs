//! The intake events: what arrived (an HL7 message, a DICOM instance) and when a study was
//! complete. Field names are the hub contract.

use serde::{Deserialize, Serialize};

use crate::hl7::Summary;
use crate::security::PeerIdentity;

/// An accepted MLLP message: the raw bytes exactly as received, plus the parsed summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hl7MessageReceived {
    /// The frame payload as received, byte for byte (in the sender's charset).
    #[serde(with = "serde_bytes")]
    pub raw: Vec<u8>,
    /// MSH-9 as `CODE^TRIGGER` (e.g. `ORM^O01`), decoded.
    pub message_type: String,
    /// MSH-10, decoded.
    pub control_id: String,
    /// MSH-3, decoded.
    pub sending_application: String,
    /// MSH-4, decoded.
    pub sending_facility: String,
    /// SHA-256 of `raw` exactly as received, hex.
    pub content_sha256: String,
    /// SHA-256 of `raw` without the segment terminators after its last segment, hex: what
    /// "the same content" means for a re-sent control id, so a copy that only lost (or
    /// gained) the final CR is a duplicate. Absent from events written before it existed:
    /// [`Hl7MessageReceived::dedupe_sha256`] computes it from `raw` then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalized_sha256: Option<String>,
    /// Another message with this sender and control id but different content was stored
    /// before (the sender reused a control id); `conflicts_with_seq` names the first one.
    pub control_id_conflict: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicts_with_seq: Option<u64>,
    /// The peer address the message came from (`ip:port`).
    pub peer: String,
    /// The client certificate of the connection (MLLP over TLS); absent for a plain
    /// connection and in events written before TLS existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_identity: Option<PeerIdentity>,
    /// The acknowledgement sent for it, byte for byte (empty when the sender asked for none):
    /// a re-send is answered with exactly these bytes.
    #[serde(with = "serde_bytes", default)]
    pub ack: Vec<u8>,
    /// The parsed summary (patient, orders, charset used).
    pub summary: Summary,
}

/// An accepted C-STORE: the Part 10 file is on disk (fsync'ed, renamed, directory
/// fsync'ed) before this event is appended, and `Success` is sent only after its commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStored {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    /// The transfer syntax the dataset was received (and is stored) in.
    pub transfer_syntax_uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_name: Option<String>,
    /// (0010,1000) and the Other Patient IDs Sequence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_patient_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_of_patient_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accession_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_number: Option<String>,
    /// (0008,0005) as sent; `charset_fallback` when it was unknown or did not fit the bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specific_character_set: Option<String>,
    pub charset_fallback: bool,
    /// The Part 10 file, relative to the state directory.
    pub file_path: String,
    /// Size of the file in bytes.
    pub size: u64,
    /// SHA-256 of the data set bytes as received (the file after its File Meta
    /// Information), hex: what "identical bytes" means for a re-send.
    pub sha256: String,
    pub calling_ae: String,
    pub called_ae: String,
    /// The peer address (`ip:port`).
    pub peer: String,
    /// The client certificate of the association (DICOM over TLS); absent for a plain
    /// association and in events written before TLS existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_identity: Option<PeerIdentity>,
    /// The same SOP Instance UID was stored before with other bytes: the event of that
    /// earlier version. Both files are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces_seq: Option<u64>,
}

/// The retention policy removed an instance file: decided (and committed) before the file
/// is unlinked, and only for an `InstanceStored` the hub had already stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceFileDeleted {
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    /// The Part 10 file, relative to the state directory, as its `InstanceStored` names it.
    pub file_path: String,
    /// The `InstanceStored` event of the file.
    pub instance_seq: u64,
    /// Why: `retention`.
    pub reason: String,
    /// The configured maximum age that applied (e.g. `90d`).
    pub max_age: String,
}

/// No new instance arrived in a study for `stable_after`: the study, as the log holds it.
/// A study that receives more instances later completes again with a higher `revision`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyCompleted {
    pub study_instance_uid: String,
    /// 1 for the first completion, then 2, 3… after late instances.
    pub revision: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_patient_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accession_number: Option<String>,
    /// The modality of the study's first instance; `modalities` lists every one seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modalities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_description: Option<String>,
    pub series_count: u32,
    pub instance_count: u32,
    /// The `InstanceStored` events this completion covers: the first and the last.
    pub first_instance_seq: u64,
    pub last_instance_seq: u64,
}

impl Hl7MessageReceived {
    /// The digest duplicates are recognised by: [`Self::normalized_sha256`], or for an
    /// event written before that field, the same digest computed from `raw`.
    pub(crate) fn dedupe_sha256(&self) -> [u8; 32] {
        use sha2::Digest;
        match self.normalized_sha256.as_deref().and_then(crate::ids::sha256_from_hex) {
            Some(digest) => digest,
            None => sha2::Sha256::digest(crate::hl7::without_final_terminators(&self.raw)).into(),
        }
    }

    /// JSON with `raw` replaced by `raw_text`, the message decoded in the charset its summary
    /// was decoded with (segment separators shown as `\r`).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(map) = value.as_object_mut() {
            map.remove("raw");
            map.remove("ack");
            map.insert("ack_text".into(), serde_json::Value::String(String::from_utf8_lossy(&self.ack).into_owned()));
            let charset = self.summary.charset.parse().unwrap_or(crate::hl7::Charset::Iso8859_1);
            let text = charset.decode_lossy(&self.raw).into_owned();
            map.insert("raw_text".into(), serde_json::Value::String(text));
        }
        value
    }
}

#[cfg(test)]
#[path = "intake_tests.rs"]
mod tests;
