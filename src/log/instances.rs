//! DICOM instances and studies in the log: an instance is stored once per identical
//! dataset; a study completes when its instances stop coming.
//!
//! Applied in the writer's transaction together with the event, so the projections below
//! (the instance index, the study's contents, the pending-completion list) never disagree
//! with the log:
//!
//! * `dicom_instances` — the latest version of each SOP instance: the same UID with the same
//!   dataset bytes again is a duplicate (no event); with other bytes it is stored as a new
//!   version whose event names the one it replaces (both files are kept).
//! * `study_instances`, `studies` — what a `StudyCompleted` reports: counts, patient,
//!   accession, modalities, first and last instance.
//! * `studies_pending` — studies with instances not yet covered by a `StudyCompleted`.
//!   Completion is decided by the timer in `crate::dicom::stability` but recorded here,
//!   only if no instance arrived since the timer was armed.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::envelope::NewEvent;
use super::txn::{Txn, corrupt};
use super::writer::{AppendError, LogHandle};
use crate::domain::{Event, InstanceStored, StudyCompleted};

/// An instance whose file is already durable, to be recorded.
#[derive(Debug)]
pub struct InstanceAppend {
    /// SHA-256 of the dataset bytes as received: what "identical" means.
    pub dataset_sha256: [u8; 32],
    /// An [`Event::InstanceStored`]; the writer fills in `replaces_seq`.
    pub event: NewEvent,
}

/// What became of an [`InstanceAppend`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceOutcome {
    /// Recorded at `seq`; `replaces` is the event of the earlier version with other bytes.
    Stored { seq: u64, replaces: Option<u64> },
    /// The same dataset is already stored (at `seq`, in `file_path`): nothing appended.
    Duplicate { seq: u64, file_path: String },
}

/// What became of a completion request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompletionOutcome {
    /// `StudyCompleted` appended at `seq`.
    Completed { seq: u64, revision: u32 },
    /// An instance arrived after the timer was armed (its seq given): not stable yet.
    NotStable { last_instance_seq: u64 },
    /// Nothing to complete (no instances since the last completion, or unknown study).
    NotPending,
}

/// The value of a `dicom_instances` row.
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
    /// `StudyCompleted` events appended so far.
    pub revision: u32,
    pub first_instance_seq: u64,
    pub last_instance_seq: u64,
    pub instance_count: u32,
    pub series_count: u32,
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
}

impl LogHandle {
    /// Records a stored instance unless the same dataset is already recorded; replies once
    /// durable.
    pub async fn append_instance(&self, request: InstanceAppend) -> Result<InstanceOutcome, AppendError> {
        self.request(request, apply_instance).await
    }

    /// Appends `StudyCompleted` for `study_uid` if its last instance is still
    /// `last_instance_seq`.
    pub async fn complete_study(
        &self,
        study_uid: String,
        last_instance_seq: u64,
    ) -> Result<CompletionOutcome, AppendError> {
        self.request((study_uid, last_instance_seq), apply_completion).await
    }
}

fn apply_instance(
    t: &mut Txn<'_, '_>,
    mut request: InstanceAppend,
) -> Result<Result<InstanceOutcome, AppendError>, redb::Error> {
    let site = t.site;
    let Event::InstanceStored(instance) = &mut request.event.event else {
        return Ok(Err(AppendError::Encode("not an InstanceStored event".into())));
    };
    let sop = instance.sop_instance_uid.clone();
    let key = (site.tenant_id.as_str(), site.hospital_id.as_str(), sop.as_str());
    let previous: Option<InstanceRow> = match t.tables.dicom_instances()?.get(key)? {
        Some(v) => Some(rmp_serde::from_slice(v.value()).map_err(|e| corrupt("dicom_instances", e))?),
        None => None,
    };
    if let Some(previous) = &previous
        && previous.dataset_sha256 == request.dataset_sha256
    {
        return Ok(Ok(InstanceOutcome::Duplicate { seq: previous.seq, file_path: previous.file_path.clone() }));
    }
    if let Err(e) = &t.reserve {
        return Ok(Err(e.clone()));
    }
    instance.replaces_seq = previous.as_ref().map(|p| p.seq);
    let seq = match t.append(&request.event)? {
        Ok(seq) => seq,
        Err(e) => return Ok(Err(e)),
    };
    let Event::InstanceStored(instance) = &request.event.event else { unreachable!("checked above") };
    let row = InstanceRow {
        seq,
        dataset_sha256: request.dataset_sha256.to_vec(),
        file_path: instance.file_path.clone(),
        study_instance_uid: instance.study_instance_uid.clone(),
        series_instance_uid: instance.series_instance_uid.clone(),
        sop_class_uid: instance.sop_class_uid.clone(),
        size: instance.size,
    };
    let bytes = rmp_serde::to_vec_named(&row).map_err(|e| corrupt("dicom_instances", e))?;
    t.tables.dicom_instances()?.insert(key, bytes.as_slice())?;
    update_study(t, instance, seq)?;
    Ok(Ok(InstanceOutcome::Stored { seq, replaces: previous.map(|p| p.seq) }))
}

/// Adds the instance to its study and marks the study pending completion.
fn update_study(t: &mut Txn<'_, '_>, i: &InstanceStored, seq: u64) -> Result<(), redb::Error> {
    let site = t.site;
    let (tenant, hospital) = (site.tenant_id.as_str(), site.hospital_id.as_str());
    let study = i.study_instance_uid.as_str();
    let series = i.series_instance_uid.as_str();
    let contents = t.tables.study_instances()?;
    let series_known =
        contents.range((tenant, hospital, study, series, "")..)?.next().transpose()?.is_some_and(|(k, _)| {
            let k = k.value();
            (k.0, k.1, k.2, k.3) == (tenant, hospital, study, series)
        });
    let instance_known =
        contents.insert((tenant, hospital, study, series, i.sop_instance_uid.as_str()), seq)?.is_some();
    let key = (tenant, hospital, study);
    let mut row: StudyRow = match t.tables.studies()?.get(key)? {
        Some(v) => rmp_serde::from_slice(v.value()).map_err(|e| corrupt("studies", e))?,
        None => StudyRow { first_instance_seq: seq, ..StudyRow::default() },
    };
    row.last_instance_seq = seq;
    row.instance_count += u32::from(!instance_known);
    row.series_count += u32::from(!series_known);
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
    let bytes = rmp_serde::to_vec_named(&row).map_err(|e| corrupt("studies", e))?;
    t.tables.studies()?.insert(key, bytes.as_slice())?;
    let at = t.recorded_at.as_microsecond();
    t.tables.studies_pending()?.insert(key, at)?;
    Ok(())
}

/// Keeps the first value seen for a study-level attribute.
fn fill(slot: &mut Option<String>, value: &Option<String>) {
    if slot.is_none() {
        slot.clone_from(value);
    }
}

fn apply_completion(
    t: &mut Txn<'_, '_>,
    (study_uid, last_instance_seq): (String, u64),
) -> Result<Result<CompletionOutcome, AppendError>, redb::Error> {
    let site = t.site;
    let key = (site.tenant_id.as_str(), site.hospital_id.as_str(), study_uid.as_str());
    if t.tables.studies_pending()?.get(key)?.is_none() {
        return Ok(Ok(CompletionOutcome::NotPending));
    }
    let mut row: StudyRow = match t.tables.studies()?.get(key)? {
        Some(v) => rmp_serde::from_slice(v.value()).map_err(|e| corrupt("studies", e))?,
        None => return Ok(Ok(CompletionOutcome::NotPending)),
    };
    if row.last_instance_seq != last_instance_seq {
        return Ok(Ok(CompletionOutcome::NotStable { last_instance_seq: row.last_instance_seq }));
    }
    if let Err(e) = &t.reserve {
        return Ok(Err(e.clone()));
    }
    row.revision += 1;
    let completed = StudyCompleted {
        study_instance_uid: study_uid.clone(),
        revision: row.revision,
        patient_id: row.patient_id.clone(),
        patient_name: row.patient_name.clone(),
        other_patient_ids: row.other_patient_ids.clone(),
        accession_number: row.accession_number.clone(),
        modality: row.modalities.first().cloned(),
        modalities: row.modalities.clone(),
        study_date: row.study_date.clone(),
        study_time: row.study_time.clone(),
        study_description: row.study_description.clone(),
        series_count: row.series_count,
        instance_count: row.instance_count,
        first_instance_seq: row.first_instance_seq,
        last_instance_seq: row.last_instance_seq,
    };
    let event = NewEvent::now(
        super::Aggregate { kind: "study".into(), id: study_uid.clone() },
        Event::StudyCompleted(Box::new(completed)),
    );
    let seq = match t.append(&event)? {
        Ok(seq) => seq,
        Err(e) => return Ok(Err(e)),
    };
    let bytes = rmp_serde::to_vec_named(&row).map_err(|e| corrupt("studies", e))?;
    t.tables.studies()?.insert(key, bytes.as_slice())?;
    t.tables.studies_pending()?.remove(key)?;
    Ok(Ok(CompletionOutcome::Completed { seq, revision: row.revision }))
}
