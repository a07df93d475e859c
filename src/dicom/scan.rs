//! TEMPORARY stand-in until the bounded scanner lands; same API.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct InstanceAttributes {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub other_patient_ids: Vec<String>,
    pub issuer_of_patient_id: Option<String>,
    pub accession_number: Option<String>,
    pub modality: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub study_description: Option<String>,
    pub series_number: Option<String>,
    pub instance_number: Option<String>,
    pub specific_character_set: Option<String>,
    pub charset_fallback: bool,
}

#[derive(Debug, Default)]
pub struct ScanLimits;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("unsupported")]
    Unsupported,
}

pub fn scan(_reader: impl std::io::Read, _ts: &str, _limits: &ScanLimits) -> Result<InstanceAttributes, ScanError> {
    Err(ScanError::Unsupported)
}

pub fn is_valid_uid(uid: &str) -> bool {
    !uid.is_empty() && uid.len() <= 64 && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}
