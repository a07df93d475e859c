//! DICOM projections: the instance index, each study's contents and summary, and the
//! studies waiting for completion. Derived from `InstanceStored` and `StudyCompleted` only.

use jiff::Timestamp;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::Tables;
use crate::config::Site;
use crate::events::{InstanceFileDeleted, InstanceStored, StudyCompleted};
use crate::log::{encode_row, read_row};

/// The value of a `dicom_instances` row: the latest stored version of a SOP instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InstanceRow {
    pub seq: u64,
    #[serde(with = "serde_bytes")]
    pub dataset_sha256: Vec<u8>,
    pub file_path: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub sop_class_uid: String,
    pub size: u64,
}

/// The value of a `studies` row: the study as its instances describe it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct StudyRow {
    /// `StudyCompleted` events so far.
    pub revision: u32,
    pub first_instance_seq: u64,
    pub last_instance_seq: u64,
    pub instance_count: u32,
    pub series_count: u32,
    /// Its series UIDs, in arrival order.
    #[serde(default)]
    pub series: Vec<String>,
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    #[serde(default)]
    pub other_patient_ids: Vec<String>,
    pub accession_number: Option<String>,
    #[serde(default)]
    pub modalities: Vec<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub study_description: Option<String>,
    /// When its first `StudyCompleted` was recorded (µs): since then it waits for an order
    /// (also after a late instance completes it again, or a pair is undone).
    #[serde(default)]
    pub first_completed_us: Option<i64>,
}

/// Reads a study's row, if any (this transaction's write-back row first).
pub(crate) fn study(t: &mut Tables<'_>, site: &Site, study_uid: &str) -> Result<Option<StudyRow>, redb::Error> {
    if let Some(row) = t.study_rows.get(study_uid) {
        return Ok(Some(row.clone()));
    }
    let key = (site.tenant_id.as_str(), site.hospital_id.as_str(), study_uid);
    match t.studies()?.get(key)? {
        Some(v) => Ok(Some(read_row("studies", v.value())?)),
        None => Ok(None),
    }
}

/// Reads the latest stored version of an instance, if any.
pub(crate) fn instance(t: &mut Tables<'_>, site: &Site, sop_uid: &str) -> Result<Option<InstanceRow>, redb::Error> {
    let key = (site.tenant_id.as_str(), site.hospital_id.as_str(), sop_uid);
    match t.dicom_instances()?.get(key)? {
        Some(v) => Ok(Some(read_row("dicom_instances", v.value())?)),
        None => Ok(None),
    }
}

/// Whether a study has instances not yet covered by a `StudyCompleted`.
pub(crate) fn is_pending(t: &mut Tables<'_>, site: &Site, study_uid: &str) -> Result<bool, redb::Error> {
    if let Some(pending) = t.pending.get(study_uid) {
        return Ok(pending.is_some());
    }
    let key = (site.tenant_id.as_str(), site.hospital_id.as_str(), study_uid);
    Ok(t.studies_pending()?.get(key)?.is_some())
}

/// Writes the transaction's write-back study rows and pending marks to their tables.
pub(crate) fn flush(t: &mut Tables<'_>, site: &Site) -> Result<(), redb::Error> {
    let (tenant, hospital) = (site.tenant_id.as_str(), site.hospital_id.as_str());
    let rows = std::mem::take(&mut t.study_rows);
    let table = t.studies()?;
    for (study, row) in &rows {
        let bytes = encode_row("studies", row)?;
        table.insert((tenant, hospital, study.as_str()), bytes.as_slice())?;
    }
    let pending = std::mem::take(&mut t.pending);
    let table = t.studies_pending()?;
    for (study, at) in &pending {
        match at {
            Some(at) => table.insert((tenant, hospital, study.as_str()), *at)?,
            None => table.remove((tenant, hospital, study.as_str()))?,
        };
    }
    Ok(())
}

/// `InstanceStored`: index the instance, add it to its study, mark the study pending; a file
/// retention had deleted and that is stored again is no longer deleted.
pub(crate) fn apply_instance(
    t: &mut Tables<'_>,
    site: &Site,
    seq: u64,
    recorded_at: Timestamp,
    i: &InstanceStored,
) -> Result<(), redb::Error> {
    let (tenant, hospital) = (site.tenant_id.as_str(), site.hospital_id.as_str());
    let row = InstanceRow {
        seq,
        dataset_sha256: crate::ids::hex_to_bytes(&i.sha256),
        file_path: i.file_path.clone(),
        study_instance_uid: i.study_instance_uid.clone(),
        series_instance_uid: i.series_instance_uid.clone(),
        sop_class_uid: i.sop_class_uid.clone(),
        size: i.size,
    };
    let bytes = encode_row("dicom_instances", &row)?;
    t.dicom_instances()?.insert((tenant, hospital, i.sop_instance_uid.as_str()), bytes.as_slice())?;
    if i.replaces_seq.is_some() {
        // A version stored again after retention deleted its file (same bytes, same path):
        // the file is there again.
        t.deleted_files()?.remove((tenant, hospital, i.file_path.as_str()))?;
    }
    let study = i.study_instance_uid.as_str();
    let series = i.series_instance_uid.as_str();
    let instance_known =
        t.study_instances()?.insert((tenant, hospital, study, series, i.sop_instance_uid.as_str()), seq)?.is_some();
    let mut row = match t.study_rows.remove(study) {
        Some(row) => row,
        None => self::study(t, site, study)?.unwrap_or(StudyRow { first_instance_seq: seq, ..StudyRow::default() }),
    };
    row.last_instance_seq = seq;
    row.instance_count += u32::from(!instance_known);
    if !row.series.iter().any(|s| s == series) {
        row.series.push(series.to_owned());
        row.series_count += 1;
    }
    fill(&mut row.patient_id, &i.patient_id);
    fill(&mut row.patient_name, &i.patient_name);
    fill(&mut row.accession_number, &i.accession_number);
    fill(&mut row.study_date, &i.study_date);
    fill(&mut row.study_time, &i.study_time);
    fill(&mut row.study_description, &i.study_description);
    for id in &i.other_patient_ids {
        if !row.other_patient_ids.contains(id) {
            row.other_patient_ids.push(id.clone());
        }
    }
    if let Some(m) = &i.modality
        && !row.modalities.contains(m)
    {
        row.modalities.push(m.clone());
    }
    t.study_rows.insert(study.to_owned(), row);
    t.pending.insert(study.to_owned(), Some(recorded_at.as_microsecond()));
    Ok(())
}

/// `StudyCompleted`: the study's revision (and the time of its first completion), and it is
/// no longer pending.
pub(crate) fn apply_completed(
    t: &mut Tables<'_>,
    site: &Site,
    recorded_at: Timestamp,
    c: &StudyCompleted,
) -> Result<(), redb::Error> {
    let study = c.study_instance_uid.as_str();
    if let Some(mut row) = self::study(t, site, study)? {
        row.revision = c.revision;
        row.first_completed_us.get_or_insert(recorded_at.as_microsecond());
        t.study_rows.insert(study.to_owned(), row);
    }
    t.pending.insert(study.to_owned(), None);
    Ok(())
}

/// `InstanceFileDeleted`: the file is recorded as deleted (the study keeps the instance).
pub(crate) fn apply_file_deleted(
    t: &mut Tables<'_>,
    site: &Site,
    seq: u64,
    d: &InstanceFileDeleted,
) -> Result<(), redb::Error> {
    let key = (site.tenant_id.as_str(), site.hospital_id.as_str(), d.file_path.as_str());
    t.deleted_files()?.insert(key, seq)?;
    Ok(())
}

/// Whether retention deleted the file at `file_path` (and it was not stored again since).
pub(crate) fn is_deleted(t: &mut Tables<'_>, site: &Site, file_path: &str) -> Result<bool, redb::Error> {
    let key = (site.tenant_id.as_str(), site.hospital_id.as_str(), file_path);
    Ok(t.deleted_files()?.get(key)?.is_some())
}

/// Keeps the first value seen for a study-level attribute.
fn fill(slot: &mut Option<String>, value: &Option<String>) {
    if slot.is_none() {
        slot.clone_from(value);
    }
}
