//! Studies: a study with its series and instances, its patient case and its orders; the
//! studies waiting for completion; searches among completed studies; what the log holds;
//! whether an event names an instance file.

use redb::ReadTransaction;
use serde::Serialize;

use super::{Hits, Scope, Search, row, scan, scope};
use crate::config::Site;
use crate::events::Event;
use crate::log::{EVENTS, LogReader, ReadError, Storage, decode_row};
use crate::projections::dicom::{InstanceRow, StudyRow};
use crate::projections::tables::{
    DELETED_FILES, DICOM_INSTANCES, FORWARDS, HL7_MESSAGES, MATCHES, STUDIES, STUDIES_BY_ACCESSION, STUDIES_BY_PATIENT,
    STUDIES_PENDING, STUDY_CASES, STUDY_INSTANCES,
};

/// What the log holds, counted over its whole life (not since the daemon started): row
/// counts of projections, which redb keeps in each table's root, so reading them costs the
/// same for ten events as for ten million.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// HL7 messages stored (one `HL7MessageReceived` each; re-sends are not stored twice).
    pub hl7_messages: u64,
    /// Distinct DICOM instances stored (a new version of one counts once).
    pub dicom_instances: u64,
    /// Studies with at least one instance.
    pub studies: u64,
    /// Of those, studies completed and not waiting for more instances.
    pub studies_completed: u64,
}

/// A study waiting for completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingStudy {
    pub study_instance_uid: String,
    pub last_instance_seq: u64,
    /// When its last instance was recorded, µs since the epoch.
    pub last_instance_at_us: i64,
}

/// A study as the log holds it, for the API.
#[derive(Debug, Clone, Serialize)]
pub struct StudyView {
    /// What its instances say (the same fields as in searches).
    #[serde(flatten)]
    pub summary: StudySummary,
    pub series: Vec<SeriesView>,
    /// The patient case the study belongs to (once completed with a patient id).
    pub case_id: Option<String>,
    /// Ids of the orders matched with it, in match order.
    pub orders: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeriesView {
    pub series_instance_uid: String,
    pub instances: Vec<InstanceView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstanceView {
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    /// The `InstanceStored` event of the stored version.
    pub seq: u64,
    pub file_path: String,
    pub size: u64,
    /// Retention deleted the file (an `InstanceFileDeleted` names it); the instance stays.
    pub deleted: bool,
    /// Where this version was forwarded, by destination (none yet: empty).
    pub forwarded: Vec<ForwardView>,
}

/// What one forwarding destination answered for an instance version.
#[derive(Debug, Clone, Serialize)]
pub struct ForwardView {
    pub destination: String,
    /// `stored`, `refused`, or absent when only a commitment named it.
    pub status: Option<&'static str>,
    /// The destination confirmed holding it (retention may count on it).
    pub confirmed: bool,
    /// The last commitment answer named it failed, with this Failure Reason.
    pub commit_failed: Option<u16>,
}

/// A study's summary: what its instances say, without the instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StudySummary {
    pub study_instance_uid: String,
    /// `StudyCompleted` events so far; `pending` while instances arrived after the last.
    pub revision: u32,
    pub pending: bool,
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub other_patient_ids: Vec<String>,
    pub accession_number: Option<String>,
    pub modalities: Vec<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub study_description: Option<String>,
    pub series_count: u32,
    pub instance_count: u32,
}

impl StudySummary {
    /// The summary of study `uid` from its projection row.
    pub(crate) fn new(uid: &str, r: StudyRow, pending: bool) -> StudySummary {
        StudySummary {
            study_instance_uid: uid.to_owned(),
            revision: r.revision,
            pending,
            patient_id: r.patient_id,
            patient_name: r.patient_name,
            other_patient_ids: r.other_patient_ids,
            accession_number: r.accession_number,
            modalities: r.modalities,
            study_date: r.study_date,
            study_time: r.study_time,
            study_description: r.study_description,
            series_count: r.series_count,
            instance_count: r.instance_count,
        }
    }
}

/// A study found by a search: its summary, its patient case and its orders (the same
/// `case_id` and `orders` as the study's own view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StudyHit {
    #[serde(flatten)]
    pub study: StudySummary,
    pub case_id: Option<String>,
    /// Ids of the orders matched with it, in match order.
    pub orders: Vec<String>,
}

/// Studies with instances not yet covered by a `StudyCompleted`.
pub fn pending_studies(reader: &LogReader) -> Result<Vec<PendingStudy>, ReadError> {
    let txn = reader.begin_read()?;
    let pending = txn.open_table(STUDIES_PENDING).storage()?;
    let studies = txn.open_table(STUDIES).storage()?;
    let (t, h) = (reader.site().tenant_id.as_str(), reader.site().hospital_id.as_str());
    let mut out = Vec::new();
    for row in pending.range((t, h, "")..).storage()? {
        let (key, at) = row.storage()?;
        let (kt, kh, study) = key.value();
        if (kt, kh) != (t, h) {
            break;
        }
        let Some(study_row) = studies.get((t, h, study)).storage()? else { continue };
        let study_row: StudyRow = decode_row("studies", study_row.value())?;
        out.push(PendingStudy {
            study_instance_uid: study.to_owned(),
            last_instance_seq: study_row.last_instance_seq,
            last_instance_at_us: at.value(),
        });
    }
    Ok(out)
}

/// A study with its series and instances, `None` if no instance of it was stored.
pub fn study(reader: &LogReader, study_uid: &str) -> Result<Option<StudyView>, ReadError> {
    let txn = reader.begin_read()?;
    let (t, h) = (reader.site().tenant_id.as_str(), reader.site().hospital_id.as_str());
    let studies = txn.open_table(STUDIES).storage()?;
    let Some(row) = studies.get((t, h, study_uid)).storage()? else { return Ok(None) };
    let row: StudyRow = decode_row("studies", row.value())?;
    let pending = txn.open_table(STUDIES_PENDING).storage()?.get((t, h, study_uid)).storage()?.is_some();
    let contents = txn.open_table(STUDY_INSTANCES).storage()?;
    let instances = txn.open_table(DICOM_INSTANCES).storage()?;
    let deleted = txn.open_table(DELETED_FILES).storage()?;
    let forwards = txn.open_table(FORWARDS).storage()?;
    let mut series: Vec<SeriesView> = Vec::new();
    for entry in contents.range((t, h, study_uid, "", "")..).storage()? {
        let (key, _) = entry.storage()?;
        let (kt, kh, ks, series_uid, sop) = key.value();
        if (kt, kh, ks) != (t, h, study_uid) {
            break;
        }
        let Some(instance) = instances.get((t, h, sop)).storage()? else { continue };
        let instance: InstanceRow = decode_row("dicom_instances", instance.value())?;
        if series.last().is_none_or(|s| s.series_instance_uid != series_uid) {
            series.push(SeriesView { series_instance_uid: series_uid.to_owned(), instances: Vec::new() });
        }
        let is_deleted = deleted.get((t, h, instance.file_path.as_str())).storage()?.is_some();
        let forwarded = crate::projections::forward::rows_of(&forwards, reader.site(), instance.seq)?
            .into_iter()
            .map(|(destination, row)| ForwardView {
                destination,
                status: row.status.map(|s| s.as_str()),
                confirmed: row.confirmed_seq.is_some(),
                commit_failed: row.commit_failed,
            })
            .collect();
        series.last_mut().expect("pushed above").instances.push(InstanceView {
            sop_instance_uid: sop.to_owned(),
            sop_class_uid: instance.sop_class_uid,
            seq: instance.seq,
            file_path: instance.file_path,
            size: instance.size,
            deleted: is_deleted,
            forwarded,
        });
    }
    let links = study_links(&txn, reader.site(), study_uid)?;
    Ok(Some(StudyView {
        summary: StudySummary::new(study_uid, row, pending),
        series,
        case_id: links.case_id,
        orders: links.orders.into_iter().map(|(_, order_id)| order_id).collect(),
    }))
}

/// What the log holds, from its first event (a database holds one site).
pub fn totals(reader: &LogReader) -> Result<Totals, ReadError> {
    use redb::ReadableTableMetadata;
    let txn = reader.begin_read()?;
    let studies = txn.open_table(STUDIES).storage()?.len().storage()?;
    let pending = txn.open_table(STUDIES_PENDING).storage()?.len().storage()?;
    Ok(Totals {
        hl7_messages: txn.open_table(HL7_MESSAGES).storage()?.len().storage()?,
        dicom_instances: txn.open_table(DICOM_INSTANCES).storage()?.len().storage()?,
        studies,
        studies_completed: studies.saturating_sub(pending),
    })
}

/// Completed studies by accession or by any patient id, in the order their first
/// instance arrived.
pub fn search_studies(reader: &LogReader, by: &Search) -> Result<Hits<StudyHit>, ReadError> {
    let txn = reader.begin_read()?;
    let s = scope(reader.site());
    let (index, key) = match by {
        Search::Accession(a) => (STUDIES_BY_ACCESSION, a.as_str()),
        Search::PatientId(p) => (STUDIES_BY_PATIENT, p.as_str()),
    };
    let mut found = Vec::new();
    for (_, uid, ()) in scan(&txn.open_table(index).storage()?, s, Some(key))? {
        let Some((first_seq, study)) = study_summary(&txn, s, &uid)? else { continue };
        let StudyLinks { case_id, orders } = links(&txn, s, &uid)?;
        let orders = orders.into_iter().map(|(_, order_id)| order_id).collect();
        found.push((first_seq, StudyHit { study, case_id, orders }));
    }
    found.sort_by_key(|(first_seq, _)| *first_seq);
    Ok(Hits::capped(found.into_iter().map(|(_, hit)| hit).collect()))
}

/// What a study is linked to by matching: its patient case and its orders.
pub(crate) struct StudyLinks {
    pub case_id: Option<String>,
    /// (match seq, order id), in match order.
    pub orders: Vec<(u64, String)>,
}

/// A study's patient case and orders, read in `txn`.
pub(crate) fn study_links(txn: &ReadTransaction, site: &Site, study_uid: &str) -> Result<StudyLinks, ReadError> {
    links(txn, scope(site), study_uid)
}

pub(crate) fn links(txn: &ReadTransaction, s: Scope<'_>, study_uid: &str) -> Result<StudyLinks, ReadError> {
    let case_id =
        txn.open_table(STUDY_CASES).storage()?.get((s.0, s.1, study_uid)).storage()?.map(|v| v.value().to_owned());
    let mut orders: Vec<(u64, String)> = scan(&txn.open_table(MATCHES).storage()?, s, Some(study_uid))?
        .into_iter()
        .map(|(_, order_id, seq)| (seq, order_id))
        .collect();
    orders.sort();
    Ok(StudyLinks { case_id, orders })
}

/// A study's summary and the seq of its first instance (for ordering), `None` if unknown.
pub(crate) fn study_summary(
    txn: &ReadTransaction,
    s: Scope<'_>,
    uid: &str,
) -> Result<Option<(u64, StudySummary)>, ReadError> {
    let Some(r): Option<StudyRow> = row(txn, STUDIES, "studies", s, uid)? else { return Ok(None) };
    let pending = txn.open_table(STUDIES_PENDING).storage()?.get((s.0, s.1, uid)).storage()?.is_some();
    let first = r.first_instance_seq;
    Ok(Some((first, StudySummary::new(uid, r, pending))))
}

/// Whether an `InstanceStored` names `file_path` (a file of the SOP instance `sop_uid`):
/// the latest version's, or that of any version it replaced (each new version names the one
/// before it, so the chain from the latest reaches every `InstanceStored` of the instance).
pub fn names_file(reader: &LogReader, sop_uid: &str, file_path: &str) -> Result<bool, ReadError> {
    let txn = reader.begin_read()?;
    let (t, h) = (reader.site().tenant_id.as_str(), reader.site().hospital_id.as_str());
    let Some(latest) = txn.open_table(DICOM_INSTANCES).storage()?.get((t, h, sop_uid)).storage()? else {
        return Ok(false);
    };
    let latest: InstanceRow = decode_row("dicom_instances", latest.value())?;
    let events = txn.open_table(EVENTS).storage()?;
    let mut next = Some(latest.seq);
    while let Some(seq) = next {
        let Some(bytes) = events.get(seq).storage()? else { break };
        let Event::InstanceStored(stored) = crate::events::decoded(seq, bytes.value())?.event else { break };
        if stored.file_path == file_path {
            return Ok(true);
        }
        next = stored.replaces_seq.filter(|earlier| *earlier < seq);
    }
    Ok(false)
}
