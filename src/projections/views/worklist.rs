//! The modality worklist: its items, found through one index range.
//!
//! A query names what it knows for sure (exact values: an accession number, a patient id, the
//! beginning of the patient's name, a date range, a modality, a station AE title). The most
//! selective index among them gives the candidates (accession, then patient id, then name,
//! then the date range with the modality read from the same keys); only without any of them
//! is the whole table read. Each candidate is
//! then checked against every condition. Readers that match more (wildcards, names, times:
//! the C-FIND SCP) check their own conditions on what this returns.

use jiff::Timestamp;
use redb::ReadTransaction;
use serde::Serialize;

use super::{Hits, Scope, row, scan, scope, timestamp};
use crate::hl7::summary::{CodedValue, PersonName, Physician};
use crate::log::{LogReader, ReadError, Storage};
use crate::projections::tables::{
    WORKLIST, WORKLIST_BY_ACCESSION, WORKLIST_BY_DATE, WORKLIST_BY_NAME, WORKLIST_BY_PATIENT,
};
use crate::projections::worklist::{WorklistItem, name_key};

/// What a worklist query asks for; `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorklistQuery {
    pub accession: Option<String>,
    pub patient_id: Option<String>,
    /// SPS start date range, `YYYYMMDD`, both ends included; an item without a date is in no
    /// range.
    pub date_from: Option<String>,
    pub date_to: Option<String>,
    pub modality: Option<String>,
    pub station_ae: Option<String>,
    /// The patient's name (DICOM PN, upper case) begins with this.
    pub name_prefix: Option<String>,
    /// COMPLETED items too (hidden by default).
    pub include_completed: bool,
}

impl WorklistQuery {
    fn has_dates(&self) -> bool {
        self.date_from.is_some() || self.date_to.is_some()
    }

    /// Whether `item` meets every condition.
    pub fn accepts(&self, item: &WorklistItem) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| Some(w) == have);
        let date = item.start_date.as_deref().unwrap_or("");
        let in_range = !self.has_dates()
            || (!date.is_empty()
                && self.date_from.as_deref().is_none_or(|f| date >= f)
                && self.date_to.as_deref().is_none_or(|t| date <= t));
        (self.include_completed || item.is_open())
            && eq(&self.accession, Some(item.accession_number.as_str()))
            && eq(&self.patient_id, item.patient_id.as_deref())
            && eq(&self.modality, item.modality.as_deref())
            && eq(&self.station_ae, item.station_ae.as_deref())
            && self
                .name_prefix
                .as_deref()
                .is_none_or(|p| item.patient_name.as_ref().is_some_and(|n| name_key(n).starts_with(p)))
            && in_range
    }
}

/// The items `q` accepts, at most `limit` (`truncated` when there were more), in index order.
pub fn worklist_items(reader: &LogReader, q: &WorklistQuery, limit: usize) -> Result<Hits<WorklistItem>, ReadError> {
    worklist_items_where(reader, q, limit, |_| true)
}

/// [`worklist_items`] that `also` accepts too (a reader's own conditions, e.g. wildcards).
pub fn worklist_items_where(
    reader: &LogReader,
    q: &WorklistQuery,
    limit: usize,
    also: impl Fn(&WorklistItem) -> bool,
) -> Result<Hits<WorklistItem>, ReadError> {
    let txn = reader.begin_read()?;
    let s = scope(reader.site());
    let mut items = Vec::new();
    for id in candidates(&txn, s, q)? {
        let Some(item): Option<WorklistItem> = row(&txn, WORKLIST, "worklist", s, &id)? else { continue };
        if q.accepts(&item) && also(&item) {
            if items.len() == limit {
                return Ok(Hits { items, truncated: true });
            }
            items.push(item);
        }
    }
    Ok(Hits { items, truncated: false })
}

/// Item ids from the most selective index the query allows.
fn candidates(txn: &ReadTransaction, s: Scope<'_>, q: &WorklistQuery) -> Result<Vec<String>, ReadError> {
    if let Some(accession) = &q.accession {
        return ids_under(txn, WORKLIST_BY_ACCESSION, s, accession);
    }
    if let Some(patient) = &q.patient_id {
        return ids_under(txn, WORKLIST_BY_PATIENT, s, patient);
    }
    if let Some(prefix) = q.name_prefix.as_deref().filter(|p| !p.is_empty()) {
        return by_name(txn, s, prefix);
    }
    if q.has_dates() {
        return by_date(txn, s, q);
    }
    let table = txn.open_table(WORKLIST).storage()?;
    let mut out = Vec::new();
    for entry in table.range((s.0, s.1, "")..).storage()? {
        let (key, _) = entry.storage()?;
        let (kt, kh, id) = key.value();
        if (kt, kh) != s {
            break;
        }
        out.push(id.to_owned());
    }
    Ok(out)
}

fn ids_under(
    txn: &ReadTransaction,
    table: redb::TableDefinition<crate::projections::tables::Key4, ()>,
    s: Scope<'_>,
    first: &str,
) -> Result<Vec<String>, ReadError> {
    Ok(scan(&txn.open_table(table).storage()?, s, Some(first))?.into_iter().map(|(_, id, ())| id).collect())
}

/// The ids of the names that begin with `prefix`.
fn by_name(txn: &ReadTransaction, s: Scope<'_>, prefix: &str) -> Result<Vec<String>, ReadError> {
    let table = txn.open_table(WORKLIST_BY_NAME).storage()?;
    let mut out = Vec::new();
    for entry in table.range((s.0, s.1, prefix, "")..).storage()? {
        let (key, _) = entry.storage()?;
        let (kt, kh, name, id) = key.value();
        if (kt, kh) != s || !name.starts_with(prefix) {
            break;
        }
        out.push(id.to_owned());
    }
    Ok(out)
}

/// The ids in the date range, the modality read from the keys.
fn by_date(txn: &ReadTransaction, s: Scope<'_>, q: &WorklistQuery) -> Result<Vec<String>, ReadError> {
    let table = txn.open_table(WORKLIST_BY_DATE).storage()?;
    // Dates are digits: "0" sorts after the empty date of undated items and before any date.
    let from = q.date_from.as_deref().unwrap_or("0");
    let mut out = Vec::new();
    for entry in table.range((s.0, s.1, from, "", "")..).storage()? {
        let (key, ()) = entry.storage().map(|(k, v)| (k, v.value()))?;
        let (kt, kh, date, modality, id) = key.value();
        if (kt, kh) != s || q.date_to.as_deref().is_some_and(|to| date > to) {
            break;
        }
        if q.modality.as_deref().is_none_or(|m| m == modality) {
            out.push(id.to_owned());
        }
    }
    Ok(out)
}

/// A worklist item as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorklistView {
    pub item_id: String,
    pub order_id: String,
    pub received_at: Timestamp,
    pub status: String,
    pub patient_id: Option<String>,
    pub issuer_of_patient_id: Option<String>,
    pub patient_name: Option<PersonName>,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
    pub accession_number: String,
    pub placer_order_number: Option<String>,
    pub filler_order_number: Option<String>,
    pub requested_procedure_id: Option<String>,
    pub requested_procedure: Option<CodedValue>,
    pub requesting_physician: Option<Physician>,
    pub study_instance_uid: String,
    pub study_instance_uid_derived: bool,
    pub scheduled_procedure_step_id: Option<String>,
    pub modality: Option<String>,
    pub scheduled_station_ae_title: Option<String>,
    pub scheduled_station_name: Option<String>,
    pub start_date: Option<String>,
    pub start_time: Option<String>,
    pub step_description: Option<String>,
    pub protocol: Option<CodedValue>,
    pub performing_physician: Option<PersonName>,
}

/// `worklist_items` in the API's shape.
pub fn worklist(reader: &LogReader, q: &WorklistQuery, limit: usize) -> Result<Hits<WorklistView>, ReadError> {
    let hits = worklist_items(reader, q, limit)?;
    let items = hits.items.into_iter().map(view).collect::<Result<_, _>>()?;
    Ok(Hits { items, truncated: hits.truncated })
}

fn view(i: WorklistItem) -> Result<WorklistView, ReadError> {
    Ok(WorklistView {
        received_at: timestamp("worklist", i.received_at_us)?,
        item_id: i.item_id,
        order_id: i.order_id,
        status: i.status,
        patient_id: i.patient_id,
        issuer_of_patient_id: i.issuer_of_patient_id,
        patient_name: i.patient_name,
        birth_date: i.birth_date,
        sex: i.sex,
        accession_number: i.accession_number,
        placer_order_number: i.placer_order_number,
        filler_order_number: i.filler_order_number,
        requested_procedure_id: i.requested_procedure_id,
        requested_procedure: i.requested_procedure,
        requesting_physician: i.requesting_physician,
        study_instance_uid: i.study_instance_uid,
        study_instance_uid_derived: i.study_instance_uid_derived,
        scheduled_procedure_step_id: i.step_id,
        modality: i.modality,
        scheduled_station_ae_title: i.station_ae,
        scheduled_station_name: i.station_name,
        start_date: i.start_date,
        start_time: i.start_time,
        step_description: i.step_description,
        protocol: i.protocol,
        performing_physician: i.performing_physician,
    })
}
