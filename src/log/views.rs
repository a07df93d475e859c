//! Read-only views of the matching projections for the read API: an order with the studies
//! it matched, a patient case with its studies and their orders, the recorded pairs, the
//! orders and studies still waiting for a match, and the search indexes.
//!
//! Each call is one redb read transaction, so a view is one committed snapshot and never
//! blocks the writer. The tables and their row types stay where the projections define them
//! (`store.rs`, `crate::projections`); the structs here are the API's shape, mapped field by
//! field so that a change of a stored row cannot change the API unnoticed.
//!
//! # Paging
//!
//! * **Matches** are paged by the seq of their `StudyMatched`. A pair recorded later always
//!   has a higher seq, so a client that follows `next` (or polls with the last seq it saw)
//!   never misses one. A pair undone by a `StudyUnmatched` (the order's accession number was
//!   corrected) leaves the list; the event itself is in the log and its stream. The `matches` table is keyed by (study, order), so a page scans it
//!   once and keeps the `limit` smallest seqs after the cursor: memory is bounded by `limit`,
//!   and the table has one row per match, far fewer than the log has events.
//! * **Waiting orders and studies** are listed oldest first, the order a coordinator works
//!   through them. The indexes are keyed by accession, so a page reads the keys and times of
//!   the whole index (small: only what still waits), sorts them by (waiting since, id), and
//!   reads rows for its own items only. The cursor is the last item's `<µs>:<id>`
//!   ([`WaitingCursor`]): keyset paging, no offsets, so entries that stop waiting between
//!   two pages shift nothing and an entry that starts waiting later sorts after the cursor.
//! * **Searches** return every hit, at most [`MAX_HITS`], with `truncated` set when there
//!   were more.

use std::collections::{BTreeSet, BinaryHeap};
use std::time::Duration;

use jiff::Timestamp;
use redb::{ReadOnlyTable, ReadTransaction, ReadableDatabase, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::reader::{LogReader, ReadError, Storage, decode_row};
use crate::config::Site;
use crate::hl7::summary::{CodedValue, Physician};
use crate::projections::cases::CaseRow;
use crate::projections::dicom::{InstanceRow, StudyRow};
use crate::projections::orders::OrderRow;
use crate::projections::tables::{
    CASES, CASES_BY_PATIENT, DELETED_FILES, DICOM_INSTANCES, HL7_MESSAGES, Key3, Key4, MATCHES, MATCHES_BY_ORDER,
    ORDERS, ORDERS_BY_ACCESSION, ORDERS_BY_PATIENT, PATIENT_ALIASES, STUDIES, STUDIES_BY_ACCESSION, STUDIES_BY_PATIENT,
    STUDIES_PENDING, STUDY_CASES, STUDY_INSTANCES, UNMATCHED_ORDERS, UNMATCHED_STUDIES,
};

/// The most hits a search returns.
pub const MAX_HITS: usize = 1000;

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
#[derive(Debug, Clone, serde::Serialize)]
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

#[derive(Debug, Clone, serde::Serialize)]
pub struct SeriesView {
    pub series_instance_uid: String,
    pub instances: Vec<InstanceView>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct InstanceView {
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    /// The `InstanceStored` event of the stored version.
    pub seq: u64,
    pub file_path: String,
    pub size: u64,
    /// Retention deleted the file (an `InstanceFileDeleted` names it); the instance stays.
    pub deleted: bool,
}

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

/// One recorded pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchView {
    /// The seq of its `StudyMatched`.
    pub seq: u64,
    pub study_instance_uid: String,
    pub order_id: String,
    pub accession_number: Option<String>,
}

/// Which pairs to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchQuery<'a> {
    /// Pairs whose `StudyMatched` seq is greater.
    pub after: u64,
    pub limit: usize,
    /// Only the pairs of orders with this accession number.
    pub accession: Option<&'a str>,
}

/// A page of pairs in seq order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchPage {
    pub items: Vec<MatchView>,
    /// The `after` of the next page; `None` when this page holds the last pair.
    pub next: Option<u64>,
}

/// What a search of orders or studies looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    Accession(String),
    /// Any of the patient's ids as the message or data set gave them.
    PatientId(String),
}

/// Search results, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hits<T> {
    pub items: Vec<T>,
    /// There were more than [`MAX_HITS`]; the newest were left out.
    pub truncated: bool,
}

impl<T> Hits<T> {
    fn capped(mut items: Vec<T>) -> Hits<T> {
        let truncated = items.len() > MAX_HITS;
        items.truncate(MAX_HITS);
        Hits { items, truncated }
    }
}

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

/// (tenant, hospital): the key prefix of everything the site stores.
type Scope<'a> = (&'a str, &'a str);

fn scope(site: &Site) -> Scope<'_> {
    (site.tenant_id.as_str(), site.hospital_id.as_str())
}

impl LogReader {
    /// An order with the studies it matched, `None` if no message placed it.
    pub fn order(&self, order_id: &str) -> Result<Option<OrderView>, ReadError> {
        let txn = self.db.begin_read().storage()?;
        order_view(&txn, scope(&self.site), order_id)
    }

    /// A patient case with its studies and their orders, `None` if unknown.
    pub fn case(&self, case_id: &str) -> Result<Option<CaseView>, ReadError> {
        let txn = self.db.begin_read().storage()?;
        case_view(&txn, scope(&self.site), case_id)
    }

    /// A page of recorded pairs in the seq order of their `StudyMatched`.
    pub fn matches(&self, query: &MatchQuery<'_>) -> Result<MatchPage, ReadError> {
        let txn = self.db.begin_read().storage()?;
        let s = scope(&self.site);
        let mut page = Smallest::new(query.after, query.limit);
        match query.accession {
            None => {
                for row in txn.open_table(MATCHES).storage()?.range((s.0, s.1, "", "")..).storage()? {
                    let (key, seq) = row.storage()?;
                    let (kt, kh, study, order_id) = key.value();
                    if (kt, kh) != s {
                        break;
                    }
                    page.offer(seq.value(), study, order_id);
                }
            }
            Some(accession) => {
                let by_order = txn.open_table(MATCHES_BY_ORDER).storage()?;
                for (_, order_id, ()) in scan(&txn.open_table(ORDERS_BY_ACCESSION).storage()?, s, Some(accession))? {
                    for (_, study, seq) in scan(&by_order, s, Some(&order_id))? {
                        page.offer(seq, &study, &order_id);
                    }
                }
            }
        }
        let (pairs, more) = page.finish();
        let mut items = Vec::with_capacity(pairs.len());
        for (seq, study_instance_uid, order_id) in pairs {
            let order: Option<OrderRow> = row(&txn, ORDERS, "orders", s, &order_id)?;
            let accession_number = order.map(|o| o.accession_number);
            items.push(MatchView { seq, study_instance_uid, order_id, accession_number });
        }
        let next = if more { items.last().map(|m| m.seq) } else { None };
        Ok(MatchPage { items, next })
    }

    /// Orders by accession or by any patient id, in the order they were received.
    pub fn search_orders(&self, by: &Search) -> Result<Hits<OrderView>, ReadError> {
        let txn = self.db.begin_read().storage()?;
        let s = scope(&self.site);
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

    /// Completed studies by accession or by any patient id, in the order their first
    /// instance arrived.
    pub fn search_studies(&self, by: &Search) -> Result<Hits<StudyHit>, ReadError> {
        let txn = self.db.begin_read().storage()?;
        let s = scope(&self.site);
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

    /// The patient cases of a patient id: those under the id itself and those under the id
    /// it resolves to through merges, oldest first.
    pub fn search_cases(&self, patient_id: &str) -> Result<Hits<CaseView>, ReadError> {
        let txn = self.db.begin_read().storage()?;
        let s = scope(&self.site);
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

    /// Orders waiting for a study, oldest first.
    pub fn unmatched_orders(&self, query: &WaitingQuery) -> Result<WaitingPage<WaitingOrder>, ReadError> {
        let txn = self.db.begin_read().storage()?;
        let s = scope(&self.site);
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
    pub fn unmatched_studies(&self, query: &WaitingQuery) -> Result<WaitingPage<WaitingStudy>, ReadError> {
        let txn = self.db.begin_read().storage()?;
        let s = scope(&self.site);
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
}

impl LogReader {
    /// Studies with instances not yet covered by a `StudyCompleted`.
    pub fn pending_studies(&self) -> Result<Vec<PendingStudy>, ReadError> {
        let txn = self.db.begin_read().storage()?;
        let pending = txn.open_table(STUDIES_PENDING).storage()?;
        let studies = txn.open_table(STUDIES).storage()?;
        let (t, h) = (self.site.tenant_id.as_str(), self.site.hospital_id.as_str());
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
    pub fn study(&self, study_uid: &str) -> Result<Option<StudyView>, ReadError> {
        let txn = self.db.begin_read().storage()?;
        let (t, h) = (self.site.tenant_id.as_str(), self.site.hospital_id.as_str());
        let studies = txn.open_table(STUDIES).storage()?;
        let Some(row) = studies.get((t, h, study_uid)).storage()? else { return Ok(None) };
        let row: StudyRow = decode_row("studies", row.value())?;
        let pending = txn.open_table(STUDIES_PENDING).storage()?.get((t, h, study_uid)).storage()?.is_some();
        let contents = txn.open_table(STUDY_INSTANCES).storage()?;
        let instances = txn.open_table(DICOM_INSTANCES).storage()?;
        let deleted = txn.open_table(DELETED_FILES).storage()?;
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
            series.last_mut().expect("pushed above").instances.push(InstanceView {
                sop_instance_uid: sop.to_owned(),
                sop_class_uid: instance.sop_class_uid,
                seq: instance.seq,
                file_path: instance.file_path,
                size: instance.size,
                deleted: is_deleted,
            });
        }
        let links = study_links(&txn, &self.site, study_uid)?;
        Ok(Some(StudyView {
            summary: StudySummary::new(study_uid, row, pending),
            series,
            case_id: links.case_id,
            orders: links.orders.into_iter().map(|(_, order_id)| order_id).collect(),
        }))
    }

    /// What the log holds, from its first event (a database holds one site).
    pub fn totals(&self) -> Result<Totals, ReadError> {
        use redb::ReadableTableMetadata;
        let txn = self.db.begin_read().storage()?;
        let studies = txn.open_table(STUDIES).storage()?.len().storage()?;
        let pending = txn.open_table(STUDIES_PENDING).storage()?.len().storage()?;
        Ok(Totals {
            hl7_messages: txn.open_table(HL7_MESSAGES).storage()?.len().storage()?,
            dicom_instances: txn.open_table(DICOM_INSTANCES).storage()?.len().storage()?,
            studies,
            studies_completed: studies.saturating_sub(pending),
        })
    }
}

/// What a study is linked to by matching: its patient case and its orders.
pub(super) struct StudyLinks {
    pub case_id: Option<String>,
    /// (match seq, order id), in match order.
    pub orders: Vec<(u64, String)>,
}

/// A study's patient case and orders, read in `txn`.
pub(super) fn study_links(txn: &ReadTransaction, site: &Site, study_uid: &str) -> Result<StudyLinks, ReadError> {
    links(txn, scope(site), study_uid)
}

fn links(txn: &ReadTransaction, s: Scope<'_>, study_uid: &str) -> Result<StudyLinks, ReadError> {
    let case_id =
        txn.open_table(STUDY_CASES).storage()?.get((s.0, s.1, study_uid)).storage()?.map(|v| v.value().to_owned());
    let mut orders: Vec<(u64, String)> = scan(&txn.open_table(MATCHES).storage()?, s, Some(study_uid))?
        .into_iter()
        .map(|(_, order_id, seq)| (seq, order_id))
        .collect();
    orders.sort();
    Ok(StudyLinks { case_id, orders })
}

fn order_view(txn: &ReadTransaction, s: Scope<'_>, order_id: &str) -> Result<Option<OrderView>, ReadError> {
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

/// A study's summary and the seq of its first instance (for ordering), `None` if unknown.
fn study_summary(txn: &ReadTransaction, s: Scope<'_>, uid: &str) -> Result<Option<(u64, StudySummary)>, ReadError> {
    let Some(r): Option<StudyRow> = row(txn, STUDIES, "studies", s, uid)? else { return Ok(None) };
    let pending = txn.open_table(STUDIES_PENDING).storage()?.get((s.0, s.1, uid)).storage()?.is_some();
    let first = r.first_instance_seq;
    Ok(Some((first, StudySummary::new(uid, r, pending))))
}

/// The id a patient id resolves to through merges (itself if never merged), following the
/// chain as the writer does.
fn resolve(txn: &ReadTransaction, s: Scope<'_>, id: &str) -> Result<String, ReadError> {
    let aliases = txn.open_table(PATIENT_ALIASES).storage()?;
    crate::projections::cases::follow_aliases(&aliases, s.0, s.1, id).storage()
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

fn timestamp(table: &'static str, us: i64) -> Result<Timestamp, ReadError> {
    Timestamp::from_microsecond(us).map_err(|e| ReadError::Row { table, reason: e.to_string() })
}

/// A msgpack row of a `(tenant, hospital, id)` table.
fn row<T: DeserializeOwned>(
    txn: &ReadTransaction,
    table: TableDefinition<Key3, &[u8]>,
    name: &'static str,
    s: Scope<'_>,
    id: &str,
) -> Result<Option<T>, ReadError> {
    match txn.open_table(table).storage()?.get((s.0, s.1, id)).storage()? {
        Some(bytes) => decode_row(name, bytes.value()).map(Some),
        None => Ok(None),
    }
}

/// Entries of a 4-part-key table under the scope and, when given, `first`, in key order:
/// (third key part, fourth key part, value).
fn scan<V, X>(
    table: &ReadOnlyTable<Key4, V>,
    s: Scope<'_>,
    first: Option<&str>,
) -> Result<Vec<(String, String, X)>, ReadError>
where
    V: for<'a> redb::Value<SelfType<'a> = X> + 'static,
{
    let mut out = Vec::new();
    for entry in table.range((s.0, s.1, first.unwrap_or(""), "")..).storage()? {
        let (key, value) = entry.storage()?;
        let (kt, kh, third, fourth) = key.value();
        if (kt, kh) != s || first.is_some_and(|f| f != third) {
            break;
        }
        out.push((third.to_owned(), fourth.to_owned(), value.value()));
    }
    Ok(out)
}

/// Keeps the `limit` pairs with the smallest seqs above `after` out of any number offered.
struct Smallest {
    after: u64,
    limit: usize,
    heap: BinaryHeap<(u64, String, String)>,
    more: bool,
}

impl Smallest {
    fn new(after: u64, limit: usize) -> Smallest {
        Smallest { after, limit: limit.max(1), heap: BinaryHeap::new(), more: false }
    }

    fn offer(&mut self, seq: u64, study: &str, order_id: &str) {
        if seq <= self.after {
            return;
        }
        if self.heap.len() == self.limit {
            self.more = true;
            if self.heap.peek().is_some_and(|(largest, _, _)| *largest < seq) {
                return;
            }
            self.heap.pop();
        }
        self.heap.push((seq, study.to_owned(), order_id.to_owned()));
    }

    /// The kept pairs in seq order, and whether others were left out.
    fn finish(self) -> (Vec<(u64, String, String)>, bool) {
        (self.heap.into_sorted_vec(), self.more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_what_it_wrote_even_with_colons_in_the_id() {
        let cursor = WaitingCursor { since_us: 1_763_900_000_000_000, id: "0190a-b:3".into() };
        assert_eq!(WaitingCursor::parse(&cursor.to_string()), Some(cursor));
        for bad in ["", "12", "12:", "x:id", ":id"] {
            assert_eq!(WaitingCursor::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn smallest_keeps_the_lowest_seqs_after_the_cursor_and_says_when_more_remain() {
        let mut page = Smallest::new(2, 2);
        for seq in [9, 1, 4, 2, 7, 3] {
            page.offer(seq, &format!("s{seq}"), "o");
        }
        let (kept, more) = page.finish();
        assert_eq!(kept.iter().map(|(seq, _, _)| *seq).collect::<Vec<_>>(), [3, 4]);
        assert!(more);
        let mut last = Smallest::new(4, 5);
        [9, 7, 1].into_iter().for_each(|seq| last.offer(seq, "s", "o"));
        assert_eq!(last.finish(), (vec![(7, "s".into(), "o".into()), (9, "s".into(), "o".into())], false));
    }
}
