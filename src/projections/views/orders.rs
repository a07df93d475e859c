//! Orders: an order with the studies it matched, and searches among orders.

use jiff::Timestamp;
use redb::ReadTransaction;
use serde::Serialize;

use super::{Hits, Scope, Search, row, scan, scope, timestamp};
use crate::hl7::summary::{CodedValue, Physician};
use crate::log::{LogReader, ReadError, Storage};
use crate::projections::orders::OrderRow;
use crate::projections::tables::{MATCHES_BY_ORDER, ORDERS, ORDERS_BY_ACCESSION, ORDERS_BY_PATIENT, UNMATCHED_ORDERS};

/// An order as the log holds it, with the studies it matched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderView {
    /// `<HL7 message id>:<order group index>`.
    pub order_id: String,
    pub hl7_message_id: String,
    /// The `HL7MessageReceived` that placed it.
    pub seq: u64,
    pub received_at: Timestamp,
    pub sending_application: String,
    pub placer_order_number: Option<String>,
    pub filler_order_number: Option<String>,
    pub accession_number: String,
    pub patient_id: Option<String>,
    pub patient_ids: Vec<String>,
    pub patient_name: Option<String>,
    pub patient_class: Option<String>,
    pub modality: Option<String>,
    pub procedure: Option<CodedValue>,
    pub requesting_physician: Option<Physician>,
    pub clinical_info: Option<String>,
    pub order_status: Option<String>,
    pub scheduled_datetime: Option<String>,
    pub cancelled: bool,
    /// The patient case of its study, once matched.
    pub patient_case_id: Option<String>,
    /// Since when it waits for a study (its receipt); `None` while matched or once cancelled.
    pub waiting_since: Option<Timestamp>,
    /// The studies matched with it, in match order.
    pub studies: Vec<MatchedStudy>,
}

/// A study matched with an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchedStudy {
    pub study_instance_uid: String,
    /// The seq of the pair's `StudyMatched`.
    pub match_seq: u64,
}

/// An order with the studies it matched, `None` if no message placed it.
pub fn order(reader: &LogReader, order_id: &str) -> Result<Option<OrderView>, ReadError> {
    let txn = reader.begin_read()?;
    order_view(&txn, scope(reader.site()), order_id)
}

/// Orders by accession or by any patient id, in the order they were received.
pub fn search_orders(reader: &LogReader, by: &Search) -> Result<Hits<OrderView>, ReadError> {
    let txn = reader.begin_read()?;
    let s = scope(reader.site());
    let (index, key) = match by {
        Search::Accession(a) => (ORDERS_BY_ACCESSION, a.as_str()),
        Search::PatientId(p) => (ORDERS_BY_PATIENT, p.as_str()),
    };
    let mut items = Vec::new();
    for (_, order_id, ()) in scan(&txn.open_table(index).storage()?, s, Some(key))? {
        items.extend(order_view(&txn, s, &order_id)?);
    }
    items.sort_by(|a, b| (a.seq, &a.order_id).cmp(&(b.seq, &b.order_id)));
    Ok(Hits::capped(items))
}

pub(crate) fn order_view(txn: &ReadTransaction, s: Scope<'_>, order_id: &str) -> Result<Option<OrderView>, ReadError> {
    let Some(o): Option<OrderRow> = row(txn, ORDERS, "orders", s, order_id)? else { return Ok(None) };
    let mut studies: Vec<MatchedStudy> = scan(&txn.open_table(MATCHES_BY_ORDER).storage()?, s, Some(order_id))?
        .into_iter()
        .map(|(_, study_instance_uid, match_seq)| MatchedStudy { study_instance_uid, match_seq })
        .collect();
    studies.sort_by_key(|m| m.match_seq);
    let waiting = txn
        .open_table(UNMATCHED_ORDERS)
        .storage()?
        .get((s.0, s.1, o.accession_number.as_str(), order_id))
        .storage()?
        .map(|v| v.value());
    Ok(Some(OrderView {
        order_id: o.order_id,
        hl7_message_id: o.hl7_message_id,
        seq: o.seq,
        received_at: timestamp("orders", o.received_at_us)?,
        sending_application: o.sending_application,
        placer_order_number: o.placer_order_number,
        filler_order_number: o.filler_order_number,
        accession_number: o.accession_number,
        patient_id: o.patient_id,
        patient_ids: o.patient_ids,
        patient_name: o.patient_name,
        patient_class: o.patient_class,
        modality: o.modality,
        procedure: o.procedure,
        requesting_physician: o.requesting_physician,
        clinical_info: o.clinical_info,
        order_status: o.order_status,
        scheduled_datetime: o.scheduled_datetime,
        cancelled: o.cancelled,
        patient_case_id: o.patient_case_id,
        waiting_since: waiting.map(|us| timestamp("unmatched_orders", us)).transpose()?,
        studies,
    }))
}
