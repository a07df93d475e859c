//! The scanner's specification: what it extracts from realistic datasets in every transfer
//! syntax, and how it refuses hostile ones without panicking, over-reading or allocating
//! from declared lengths.

mod build;
mod props;
mod structure;
mod syntaxes;
mod text;

use super::{InstanceAttributes, ScanError, ScanLimits, scan};
use build::{SERIES, SOP_CLASS, SOP_INSTANCE, STUDY};

fn scan_bytes(bytes: &[u8], ts: &str) -> Result<InstanceAttributes, ScanError> {
    scan(bytes, ts, &ScanLimits::default())
}

/// What [`build::full_instance`] scans to.
fn expected_full(charset: &str, patient_name: &str) -> InstanceAttributes {
    InstanceAttributes {
        sop_class_uid: SOP_CLASS.into(),
        sop_instance_uid: SOP_INSTANCE.into(),
        study_instance_uid: STUDY.into(),
        series_instance_uid: SERIES.into(),
        patient_id: Some("PID-001".into()),
        patient_name: Some(patient_name.into()),
        other_patient_ids: vec!["OLD-1".into(), "OLD-2".into(), "SEQ-1".into(), "SEQ-2".into()],
        issuer_of_patient_id: Some("HOSP".into()),
        accession_number: Some("ACC-42".into()),
        modality: Some("CT".into()),
        study_date: Some("20240131".into()),
        study_time: Some("101500".into()),
        study_description: Some("CT HEAD".into()),
        series_number: Some("3".into()),
        instance_number: Some("12".into()),
        specific_character_set: Some(charset.into()),
        charset_fallback: false,
    }
}

/// Only the four required UIDs.
fn expected_minimal() -> InstanceAttributes {
    InstanceAttributes {
        sop_class_uid: SOP_CLASS.into(),
        sop_instance_uid: SOP_INSTANCE.into(),
        study_instance_uid: STUDY.into(),
        series_instance_uid: SERIES.into(),
        ..InstanceAttributes::default()
    }
}
