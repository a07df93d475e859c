//! Orders waiting for a study and completed studies waiting for an order, oldest first.

use std::time::Duration;

use jiff::Timestamp;
use redb::{ReadTransaction, TableDefinition};
use serde::Serialize;

use super::{Scope, row, scan, scope, timestamp};
use crate::hl7::summary::CodedValue;
use crate::log::{LogReader, ReadError, Storage};
use crate::projections::dicom::StudyRow;
use crate::projections::orders::OrderRow;
use crate::projections::tables::{Key4, ORDERS, STUDIES, UNMATCHED_ORDERS, UNMATCHED_STUDIES};

/// Where a page of waiting orders or studies starts: after this (waiting since, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingCursor {
    pub since_us: i64,
    pub id: String,
}

impl WaitingCursor {
    /// Parses `<µs since the epoch>:<id>` (the id may contain `:`).
    pub fn parse(text: &str) -> Option<WaitingCursor> {
        let (us, id) = text.split_once(':')?;
        let since_us = us.parse().ok()?;
        (!id.is_empty()).then(|| WaitingCursor { since_us, id: id.to_owned() })
    }
}

impl std::fmt::Display for WaitingCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.since_us, self.id)
    }
}

/// Which waiting orders or studies to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingQuery {
    /// The time ages are computed at.
    pub now: Timestamp,
    /// Only what has waited at least this long.
    pub older_than: Option<Duration>,
    pub after: Option<WaitingCursor>,
    pub limit: usize,
}

/// A page of waiting orders or studies, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitingPage<T> {
    pub items: Vec<T>,
    /// The `after` of the next page; `None` when this page holds the last one.
    pub next: Option<String>,
}

/// An order waiting for its study.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitingOrder {
    pub accession_number: String,
    pub order_id: String,
    pub waiting_since: Timestamp,
    /// Whole seconds between `waiting_since` and the request.
    pub age_seconds: i64,
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub procedure: Option<CodedValue>,
    pub modality: Option<String>,
}

/// A completed study waiting for its order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitingStudy {
    pub accession_number: String,
    pub study_instance_uid: String,
    /// When it first waited: its first completion (later completions do not move it).
    pub waiting_since: Timestamp,
    /// Whole seconds between `waiting_since` and the request.
    pub age_seconds: i64,
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub modalities: Vec<String>,
    pub study_date: Option<String>,
}

/// Orders waiting for a study, oldest first.
pub fn unmatched_orders(reader: &LogReader, query: &WaitingQuery) -> Result<WaitingPage<WaitingOrder>, ReadError> {
    let txn = reader.begin_read()?;
    let s = scope(reader.site());
    let (keys, more) = waiting(&txn, UNMATCHED_ORDERS, s, query)?;
    let mut items = Vec::with_capacity(keys.len());
    for (since_us, order_id, accession_number) in keys {
        let order: Option<OrderRow> = row(&txn, ORDERS, "orders", s, &order_id)?;
        let (patient_id, patient_name, procedure, modality) = match order {
            Some(o) => (o.patient_id, o.patient_name, o.procedure, o.modality),
            None => (None, None, None, None),
        };
        items.push(WaitingOrder {
            accession_number,
            order_id,
            waiting_since: timestamp("unmatched_orders", since_us)?,
            age_seconds: age_seconds(query.now, since_us),
            patient_id,
            patient_name,
            procedure,
            modality,
        });
    }
    let next = cursor(more, items.last().map(|o| (o.waiting_since, o.order_id.as_str())));
    Ok(WaitingPage { items, next })
}

/// Completed studies waiting for an order, oldest first.
pub fn unmatched_studies(reader: &LogReader, query: &WaitingQuery) -> Result<WaitingPage<WaitingStudy>, ReadError> {
    let txn = reader.begin_read()?;
    let s = scope(reader.site());
    let (keys, more) = waiting(&txn, UNMATCHED_STUDIES, s, query)?;
    let mut items = Vec::with_capacity(keys.len());
    for (since_us, study_instance_uid, accession_number) in keys {
        let study: StudyRow = row(&txn, STUDIES, "studies", s, &study_instance_uid)?.unwrap_or_default();
        items.push(WaitingStudy {
            accession_number,
            study_instance_uid,
            waiting_since: timestamp("unmatched_studies", since_us)?,
            age_seconds: age_seconds(query.now, since_us),
            patient_id: study.patient_id,
            patient_name: study.patient_name,
            modalities: study.modalities,
            study_date: study.study_date,
        });
    }
    let next = cursor(more, items.last().map(|o| (o.waiting_since, o.study_instance_uid.as_str())));
    Ok(WaitingPage { items, next })
}

/// How many orders and how many completed studies wait for a match: the waiting indexes'
/// row counts, which redb keeps in each table's root (a database holds one site).
pub fn waiting_counts(reader: &LogReader) -> Result<(u64, u64), ReadError> {
    use redb::ReadableTableMetadata;
    let txn = reader.begin_read()?;
    let orders = txn.open_table(UNMATCHED_ORDERS).storage()?.len().storage()?;
    let studies = txn.open_table(UNMATCHED_STUDIES).storage()?.len().storage()?;
    Ok((orders, studies))
}

/// An entry of a waiting index: (waiting since µs, id, accession), ordered by the first two.
type Waiting = (i64, String, String);

/// The entries of a waiting index that a page holds, in (waiting since, id) order, and
/// whether more follow.
fn waiting(
    txn: &ReadTransaction,
    index: TableDefinition<Key4, i64>,
    s: Scope<'_>,
    query: &WaitingQuery,
) -> Result<(Vec<Waiting>, bool), ReadError> {
    let cutoff = query
        .older_than
        .map(|d| query.now.as_microsecond().saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)));
    let after = query.after.as_ref().map(|c| (c.since_us, c.id.as_str()));
    let mut keys: Vec<Waiting> = scan(&txn.open_table(index).storage()?, s, None)?
        .into_iter()
        .map(|(accession, id, since)| (since, id, accession))
        .filter(|(since, id, _)| cutoff.is_none_or(|c| *since <= c) && after.is_none_or(|a| (*since, id.as_str()) > a))
        .collect();
    keys.sort();
    let more = keys.len() > query.limit;
    keys.truncate(query.limit);
    Ok((keys, more))
}

fn cursor(more: bool, last: Option<(Timestamp, &str)>) -> Option<String> {
    let (since, id) = last.filter(|_| more)?;
    Some(WaitingCursor { since_us: since.as_microsecond(), id: id.to_owned() }.to_string())
}

fn age_seconds(now: Timestamp, since_us: i64) -> i64 {
    (now.as_microsecond().saturating_sub(since_us) / 1_000_000).max(0)
}
#[cfg(test)]
#[path = "waiting_tests.rs"]
mod tests;
