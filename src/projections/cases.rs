//! Patient case projections: cases, the studies in each, cases by any patient id (the
//! studies' DICOM ids and the ids of the orders matched with them), and the patient ids that
//! merges retired.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::Tables;
use super::tables::Key3;
use crate::events::{PatientCaseClassified, PatientCaseConsolidated, PatientCaseCreated, PatientsMerged};
use crate::log::Meta;
use crate::log::{encode_row, read_row};

/// Merge chains longer than this are cut (a loop of merges must not hang the writer).
const MAX_ALIAS_HOPS: usize = 16;

/// The value of a `cases` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CaseRow {
    pub case_id: String,
    pub patient_ids: Vec<String>,
    pub modality: Option<String>,
    pub created_at_us: i64,
    /// The `PatientCaseCreated` event: orders cases by recency when their times are equal.
    pub created_seq: u64,
    pub studies: Vec<String>,
    pub patient_class: Option<String>,
}

/// `PatientCaseCreated`.
pub(crate) fn apply_created(t: &mut Tables<'_>, m: &Meta<'_>, c: &PatientCaseCreated) -> Result<(), redb::Error> {
    let row = CaseRow {
        case_id: c.case_id.clone(),
        patient_ids: c.patient_ids.clone(),
        modality: c.modality.clone(),
        created_at_us: m.recorded_at.as_microsecond(),
        created_seq: m.seq,
        studies: vec![c.study_instance_uid.clone()],
        patient_class: None,
    };
    for pid in &row.patient_ids {
        t.cases_by_patient()?
            .insert((m.tenant(), m.hospital(), pid.as_str(), row.case_id.as_str()), row.created_at_us)?;
    }
    t.study_cases()?.insert((m.tenant(), m.hospital(), c.study_instance_uid.as_str()), c.case_id.as_str())?;
    put(t, m, &row)
}

/// `PatientCaseConsolidated`: the study joins, and its patient ids find the case too.
pub(crate) fn apply_consolidated(
    t: &mut Tables<'_>,
    m: &Meta<'_>,
    c: &PatientCaseConsolidated,
) -> Result<(), redb::Error> {
    let Some(mut row) = case(t, m, &c.case_id)? else { return Ok(()) };
    row.studies.push(c.study_instance_uid.clone());
    for pid in &c.patient_ids {
        if !row.patient_ids.contains(pid) {
            row.patient_ids.push(pid.clone());
            t.cases_by_patient()?
                .insert((m.tenant(), m.hospital(), pid.as_str(), row.case_id.as_str()), row.created_at_us)?;
        }
    }
    t.study_cases()?.insert((m.tenant(), m.hospital(), c.study_instance_uid.as_str()), c.case_id.as_str())?;
    put(t, m, &row)
}

/// `OrderCreated`: the order's patient ids find its case too.
pub(crate) fn add_patient_ids(
    t: &mut Tables<'_>,
    m: &Meta<'_>,
    case_id: &str,
    ids: &[String],
) -> Result<(), redb::Error> {
    let Some(mut row) = case(t, m, case_id)? else { return Ok(()) };
    let before = row.patient_ids.len();
    for pid in ids.iter().filter(|id| !id.is_empty()) {
        if !row.patient_ids.contains(pid) {
            row.patient_ids.push(pid.clone());
            t.cases_by_patient()?
                .insert((m.tenant(), m.hospital(), pid.as_str(), row.case_id.as_str()), row.created_at_us)?;
        }
    }
    if row.patient_ids.len() == before {
        return Ok(());
    }
    put(t, m, &row)
}

/// `PatientCaseClassified`.
pub(crate) fn apply_classified(t: &mut Tables<'_>, m: &Meta<'_>, c: &PatientCaseClassified) -> Result<(), redb::Error> {
    let Some(mut row) = case(t, m, &c.case_id)? else { return Ok(()) };
    row.patient_class = Some(c.new_class.clone());
    put(t, m, &row)
}

/// `PatientsMerged`: each prior id now resolves to the surviving one, and the cases opened
/// under a prior id are found under the surviving id too (so a later study of the surviving
/// id can join them).
pub(crate) fn apply_merged(t: &mut Tables<'_>, m: &Meta<'_>, p: &PatientsMerged) -> Result<(), redb::Error> {
    let surviving = p.surviving_patient_id.as_str();
    for prior in p.prior_patient_ids.iter().filter(|id| **id != surviving) {
        t.patient_aliases()?.insert((m.tenant(), m.hospital(), prior.as_str()), surviving)?;
        let mut cases = Vec::new();
        for row in t.cases_by_patient()?.range((m.tenant(), m.hospital(), prior.as_str(), "")..)? {
            let (k, created_at) = row?;
            let k = k.value();
            if (k.0, k.1, k.2) != (m.tenant(), m.hospital(), prior.as_str()) {
                break;
            }
            cases.push((k.3.to_owned(), created_at.value()));
        }
        for (case_id, created_at) in cases {
            t.cases_by_patient()?.insert((m.tenant(), m.hospital(), surviving, case_id.as_str()), created_at)?;
        }
    }
    Ok(())
}

/// The id a patient id resolves to through merges (itself if never merged).
pub(crate) fn resolve(t: &mut Tables<'_>, m: &Meta<'_>, id: &str) -> Result<String, redb::Error> {
    Ok(follow_aliases(t.patient_aliases()?, m.tenant(), m.hospital(), id)?)
}

/// The id `id` resolves to in `aliases` (itself if never merged), at most
/// [`MAX_ALIAS_HOPS`] hops; shared by the writer and the read API.
pub(crate) fn follow_aliases(
    aliases: &impl ReadableTable<Key3, &'static str>,
    tenant: &str,
    hospital: &str,
    id: &str,
) -> Result<String, redb::StorageError> {
    let mut current = id.to_owned();
    for _ in 0..MAX_ALIAS_HOPS {
        let next = aliases.get((tenant, hospital, current.as_str()))?.map(|v| v.value().to_owned());
        match next {
            Some(next) if next != current => current = next,
            _ => break,
        }
    }
    Ok(current)
}

pub(crate) fn case(t: &mut Tables<'_>, m: &Meta<'_>, case_id: &str) -> Result<Option<CaseRow>, redb::Error> {
    match t.cases()?.get((m.tenant(), m.hospital(), case_id))? {
        Some(v) => Ok(Some(read_row("cases", v.value())?)),
        None => Ok(None),
    }
}

/// The case a study belongs to.
pub(crate) fn case_of_study(t: &mut Tables<'_>, m: &Meta<'_>, study: &str) -> Result<Option<String>, redb::Error> {
    Ok(t.study_cases()?.get((m.tenant(), m.hospital(), study))?.map(|v| v.value().to_owned()))
}

fn put(t: &mut Tables<'_>, m: &Meta<'_>, row: &CaseRow) -> Result<(), redb::Error> {
    let bytes = encode_row("cases", row)?;
    t.cases()?.insert((m.tenant(), m.hospital(), row.case_id.as_str()), bytes.as_slice())?;
    Ok(())
}
