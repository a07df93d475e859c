//! A DICOM instance becomes an event, recorded once per identical data set; a study
//! completes when its instances stop coming.
//!
//! [`instance_event`] builds the `InstanceStored` of a scanned, durable instance file;
//! [`record_instance`] (or [`receive_instance`], with its audit record) and [`complete_study`]
//! are the requests to the single writer. The
//! decisions are taken there, in the writer's transaction, from the projections in
//! [`crate::projections::dicom`]: a re-sent identical data set is a duplicate (no event),
//! unless retention deleted its file (then it is stored again, as a new version); other bytes for a known SOP instance make a new version that names the one it replaces;
//! a completion request from the stability timer appends `StudyCompleted` only if the study
//! is pending and its last instance is still the one the timer saw, and the case and matching
//! decisions follow ([`super::decide`]).

use std::time::Duration;

use crate::dicom_scan::InstanceAttributes;
use crate::events::{Event, InstanceStored, NewEvent, StudyCompleted};
use crate::log::{Aggregate, AppendError, LogHandle, Txn};
use crate::projections::{Projections, dicom};
use crate::security::PeerIdentity;

/// How an instance arrived: the association and the transfer syntax it was sent in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub calling_ae: String,
    pub called_ae: String,
    /// The peer address (`ip:port`).
    pub peer: String,
    /// The association's client certificate (DICOM over TLS).
    pub peer_identity: Option<PeerIdentity>,
    pub transfer_syntax_uid: String,
}

/// The instance file as the spool made it durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// Relative to the state directory.
    pub path: String,
    pub size: u64,
    /// SHA-256 of the data set bytes (the file after its File Meta Information).
    pub sha256: [u8; 32],
}

/// The `InstanceStored` for an instance whose file is durable.
pub fn instance_event(a: InstanceAttributes, file: StoredFile, arrival: Arrival) -> NewEvent {
    let sop = a.sop_instance_uid.clone();
    let event = InstanceStored {
        sop_class_uid: a.sop_class_uid,
        sop_instance_uid: a.sop_instance_uid,
        study_instance_uid: a.study_instance_uid,
        series_instance_uid: a.series_instance_uid,
        transfer_syntax_uid: arrival.transfer_syntax_uid,
        patient_id: a.patient_id,
        patient_name: a.patient_name,
        other_patient_ids: a.other_patient_ids,
        issuer_of_patient_id: a.issuer_of_patient_id,
        accession_number: a.accession_number,
        modality: a.modality,
        study_date: a.study_date,
        study_time: a.study_time,
        study_description: a.study_description,
        series_number: a.series_number,
        instance_number: a.instance_number,
        specific_character_set: a.specific_character_set,
        charset_fallback: a.charset_fallback,
        file_path: file.path,
        size: file.size,
        sha256: crate::ids::hex(&file.sha256),
        calling_ae: arrival.calling_ae,
        called_ae: arrival.called_ae,
        peer: arrival.peer,
        peer_identity: arrival.peer_identity,
        replaces_seq: None,
    };
    NewEvent::now(Aggregate { kind: "instance".into(), id: sop }, Event::InstanceStored(Box::new(event)))
}

/// What became of a [`record_instance`].
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

/// Records an `InstanceStored` (whose file is already durable) unless the same data set (its
/// `sha256`) is already recorded for that SOP instance; replies once durable. The writer fills
/// in `replaces_seq`.
pub async fn record_instance(log: &LogHandle<Projections>, event: NewEvent) -> Result<InstanceOutcome, AppendError> {
    log.request(event, apply_instance).await
}

/// [`record_instance`] for an instance received on an association. With `audit` (the first
/// instance of its study on that association), its DICOM Instances Transferred record
/// ([`crate::audit`]) is appended in the same transaction, for an identical re-send too (but
/// not below the disk reserve).
pub async fn receive_instance(
    log: &LogHandle<Projections>,
    event: NewEvent,
    audit: bool,
) -> Result<InstanceOutcome, AppendError> {
    log.request((event, audit), apply_received).await
}

/// [`receive_instance`] for several instances at once (of any associations), in one
/// transaction: one commit records them all. Each has its own outcome; the outer error is
/// the writer refusing the whole request.
pub async fn receive_instances(
    log: &LogHandle<Projections>,
    instances: Vec<(NewEvent, bool)>,
) -> Result<Vec<Result<InstanceOutcome, AppendError>>, AppendError> {
    log.request(instances, apply_all_received).await
}

type Outcomes = Vec<Result<InstanceOutcome, AppendError>>;

fn apply_all_received(
    t: &mut Txn<'_, '_, Projections>,
    instances: Vec<(NewEvent, bool)>,
) -> Result<Result<Outcomes, AppendError>, redb::Error> {
    instances.into_iter().map(|instance| apply_received(t, instance)).collect::<Result<Outcomes, _>>().map(Ok)
}

fn apply_received(
    t: &mut Txn<'_, '_, Projections>,
    (event, audit): (NewEvent, bool),
) -> Result<Result<InstanceOutcome, AppendError>, redb::Error> {
    let record = match &event.event {
        Event::InstanceStored(instance) if audit => {
            Some(crate::audit::kinds::instances_transferred(instance, t.recorded_at))
        }
        _ => None,
    };
    let outcome = apply_instance(t, event)?;
    // Below the reserve an identical re-send is answered, but nothing is written for it.
    if let (Ok(_), Some(record), Ok(())) = (&outcome, record, &t.reserve) {
        crate::audit::append(t, vec![record])?;
    }
    Ok(outcome)
}

/// Appends `StudyCompleted` for `study_uid` if its last instance is still `last_instance_seq`;
/// a first completion joins a patient case created within `consolidation_window`, or opens
/// one.
pub async fn complete_study(
    log: &LogHandle<Projections>,
    study_uid: String,
    last_instance_seq: u64,
    consolidation_window: Duration,
) -> Result<CompletionOutcome, AppendError> {
    log.request((study_uid, last_instance_seq, consolidation_window), apply_completion).await
}

fn apply_instance(
    t: &mut Txn<'_, '_, Projections>,
    mut event: NewEvent,
) -> Result<Result<InstanceOutcome, AppendError>, redb::Error> {
    let Event::InstanceStored(instance) = &mut event.event else {
        return Ok(Err(AppendError::Encode("not an InstanceStored event".into())));
    };
    let previous = dicom::instance(&mut t.tables, t.site, &instance.sop_instance_uid)?;
    // The same data set again is a duplicate, unless retention deleted its file: then the
    // file the spool just put in place is the instance's only copy here, and it is stored
    // again (a new event, replacing the one whose file went).
    if let Some(previous) = &previous
        && previous.dataset_sha256 == crate::ids::hex_to_bytes(&instance.sha256)
        && !dicom::is_deleted(&mut t.tables, t.site, &previous.file_path)?
    {
        return Ok(Ok(InstanceOutcome::Duplicate { seq: previous.seq, file_path: previous.file_path.clone() }));
    }
    if let Err(e) = &t.reserve {
        return Ok(Err(e.clone()));
    }
    instance.replaces_seq = previous.as_ref().map(|p| p.seq);
    Ok(t.append(&event)?.map(|seq| InstanceOutcome::Stored { seq, replaces: previous.map(|p| p.seq) }))
}

/// Decides completion: the study is pending and its last instance is the one the timer saw.
fn apply_completion(
    t: &mut Txn<'_, '_, Projections>,
    (study_uid, last_instance_seq, window): (String, u64, Duration),
) -> Result<Result<CompletionOutcome, AppendError>, redb::Error> {
    if !dicom::is_pending(&mut t.tables, t.site, &study_uid)? {
        return Ok(Ok(CompletionOutcome::NotPending));
    }
    let Some(row) = dicom::study(&mut t.tables, t.site, &study_uid)? else {
        return Ok(Ok(CompletionOutcome::NotPending));
    };
    if row.last_instance_seq != last_instance_seq {
        return Ok(Ok(CompletionOutcome::NotStable { last_instance_seq: row.last_instance_seq }));
    }
    if let Err(e) = &t.reserve {
        return Ok(Err(e.clone()));
    }
    let revision = row.revision + 1;
    let completed = StudyCompleted {
        study_instance_uid: study_uid.clone(),
        revision,
        patient_id: row.patient_id,
        patient_name: row.patient_name,
        other_patient_ids: row.other_patient_ids,
        accession_number: row.accession_number,
        modality: row.modalities.first().cloned(),
        modalities: row.modalities,
        study_date: row.study_date,
        study_time: row.study_time,
        study_description: row.study_description,
        series_count: row.series_count,
        instance_count: row.instance_count,
        first_instance_seq: row.first_instance_seq,
        last_instance_seq: row.last_instance_seq,
    };
    let event =
        NewEvent::now(Aggregate { kind: "study".into(), id: study_uid }, Event::StudyCompleted(Box::new(completed)));
    let seq = match t.append(&event)? {
        Ok(seq) => seq,
        Err(e) => return Ok(Err(e)),
    };
    if let Event::StudyCompleted(completed) = &event.event {
        super::decide::after_completion(t, event.event_id, completed, window)?;
    }
    Ok(Ok(CompletionOutcome::Completed { seq, revision }))
}
