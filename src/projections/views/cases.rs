//! Patient cases: a case with its studies and, for each, the orders matched with it; the
//! cases of a patient id.

use std::collections::BTreeSet;

use jiff::Timestamp;
use redb::ReadTransaction;
use serde::Serialize;

use super::studies::{StudySummary, links, study_summary};
use super::{Hits, Scope, row, scan, scope, timestamp};
use crate::hl7::summary::CodedValue;
use crate::log::{LogReader, ReadError, Storage};
use crate::projections::cases::CaseRow;
use crate::projections::orders::OrderRow;
use crate::projections::tables::{CASES, CASES_BY_PATIENT, ORDERS, PATIENT_ALIASES};

/// A patient case with its studies and, for each, the orders matched with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseView {
    pub case_id: String,
    /// The patient ids the case is found by: its studies' (DICOM Patient ID and Other Patient
    /// IDs) and its matched orders' (PID-3 repetitions, PID-2, PID-4), resolved through merges
    /// when they joined.
    pub patient_ids: Vec<String>,
    pub modality: Option<String>,
    pub patient_class: Option<String>,
    pub created_at: Timestamp,
    /// In the order they joined the case.
    pub studies: Vec<CaseStudy>,
}

/// A study of a patient case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseStudy {
    #[serde(flatten)]
    pub study: StudySummary,
    /// The orders matched with it, in match order.
    pub orders: Vec<MatchedOrder>,
}

/// An order matched with a study, summarised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchedOrder {
    pub order_id: String,
    /// The seq of the pair's `StudyMatched`.
    pub match_seq: u64,
    pub accession_number: String,
    pub modality: Option<String>,
    pub procedure: Option<CodedValue>,
    pub order_status: Option<String>,
    pub cancelled: bool,
}

/// A patient case with its studies and their orders, `None` if unknown.
pub fn case(reader: &LogReader, case_id: &str) -> Result<Option<CaseView>, ReadError> {
    let txn = reader.begin_read()?;
    case_view(&txn, scope(reader.site()), case_id)
}

/// The patient cases of a patient id: those under the id itself and those under the id
/// it resolves to through merges, oldest first.
pub fn search_cases(reader: &LogReader, patient_id: &str) -> Result<Hits<CaseView>, ReadError> {
    let txn = reader.begin_read()?;
    let s = scope(reader.site());
    let resolved = resolve(&txn, s, patient_id)?;
    let by_patient = txn.open_table(CASES_BY_PATIENT).storage()?;
    let mut ids = BTreeSet::new();
    for id in [patient_id, resolved.as_str()] {
        ids.extend(scan(&by_patient, s, Some(id))?.into_iter().map(|(_, case_id, _)| case_id));
    }
    let mut items = Vec::new();
    for case_id in ids {
        items.extend(case_view(&txn, s, &case_id)?);
    }
    items.sort_by(|a, b| (a.created_at, &a.case_id).cmp(&(b.created_at, &b.case_id)));
    Ok(Hits::capped(items))
}

fn case_view(txn: &ReadTransaction, s: Scope<'_>, case_id: &str) -> Result<Option<CaseView>, ReadError> {
    let Some(c): Option<CaseRow> = row(txn, CASES, "cases", s, case_id)? else { return Ok(None) };
    let mut studies = Vec::with_capacity(c.studies.len());
    for uid in &c.studies {
        let Some((_, study)) = study_summary(txn, s, uid)? else { continue };
        let mut orders = Vec::new();
        for (match_seq, order_id) in links(txn, s, uid)?.orders {
            let Some(o): Option<OrderRow> = row(txn, ORDERS, "orders", s, &order_id)? else { continue };
            orders.push(MatchedOrder {
                order_id,
                match_seq,
                accession_number: o.accession_number,
                modality: o.modality,
                procedure: o.procedure,
                order_status: o.order_status,
                cancelled: o.cancelled,
            });
        }
        studies.push(CaseStudy { study, orders });
    }
    Ok(Some(CaseView {
        case_id: c.case_id,
        patient_ids: c.patient_ids,
        modality: c.modality,
        patient_class: c.patient_class,
        created_at: timestamp("cases", c.created_at_us)?,
        studies,
    }))
}

/// The id a patient id resolves to through merges (itself if never merged), following the
/// chain as the writer does.
fn resolve(txn: &ReadTransaction, s: Scope<'_>, id: &str) -> Result<String, ReadError> {
    let aliases = txn.open_table(PATIENT_ALIASES).storage()?;
    crate::projections::cases::follow_aliases(&aliases, s.0, s.1, id).storage()
}
