//! Reading the log: any number of readers, each a short redb read transaction.
//!
//! Readers never block the writer (redb serves them from the last committed snapshot).
//! Calls here are synchronous and short; async callers run them on the blocking pool.

use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable};

use super::envelope::{DecodeError, Envelope};
use super::store::{DELETED_FILES, DICOM_INSTANCES, EVENTS, HL7_MESSAGES, STUDIES, STUDIES_PENDING, STUDY_INSTANCES};
use crate::config::Site;
use crate::projections::dicom::{InstanceRow, StudyRow};

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("database read failed: {0}")]
    Storage(#[from] redb::Error),
    #[error("event {seq} is unreadable: {source}")]
    Decode { seq: u64, source: DecodeError },
    #[error("{table} row is unreadable: {reason}")]
    Row { table: &'static str, reason: String },
}

/// Converts redb's per-operation errors (which all convert into `redb::Error`).
pub(super) trait Storage<T> {
    fn storage(self) -> Result<T, ReadError>;
}

impl<T, E: Into<redb::Error>> Storage<T> for Result<T, E> {
    fn storage(self) -> Result<T, ReadError> {
        self.map_err(|e| ReadError::Storage(e.into()))
    }
}

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

/// A page of events and where the next page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Envelope>,
    /// The `after` for the next page, `None` when this page reached the end of the log.
    pub next: Option<u64>,
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
    pub summary: super::views::StudySummary,
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

/// Read access to the event log.
#[derive(Debug, Clone)]
pub struct LogReader {
    pub(super) db: Arc<Database>,
    pub(super) site: Site,
}

impl LogReader {
    pub(crate) fn new(db: Arc<Database>, site: Site) -> LogReader {
        LogReader { db, site }
    }

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
        let links = super::views::study_links(&txn, &self.site, study_uid)?;
        Ok(Some(StudyView {
            summary: super::views::StudySummary::new(study_uid, row, pending),
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

    /// The last committed sequence number (0 for an empty log).
    pub fn latest_seq(&self) -> Result<u64, ReadError> {
        let txn = self.db.begin_read().storage()?;
        let table = txn.open_table(EVENTS).storage()?;
        Ok(table.last().storage()?.map(|(k, _)| k.value()).unwrap_or(0))
    }

    /// One event by sequence number.
    pub fn get(&self, seq: u64) -> Result<Option<Envelope>, ReadError> {
        let txn = self.db.begin_read().storage()?;
        let table = txn.open_table(EVENTS).storage()?;
        let Some(bytes) = table.get(seq).storage()? else { return Ok(None) };
        Envelope::from_bytes(bytes.value()).map(Some).map_err(|source| ReadError::Decode { seq, source })
    }

    /// Up to `limit` events with `seq > after`, in order.
    pub fn after(&self, after: u64, limit: usize) -> Result<Page, ReadError> {
        let raw = self.raw_after(after, limit)?;
        let full = raw.len() == limit;
        let items = raw
            .into_iter()
            .map(|(seq, bytes)| Envelope::from_bytes(&bytes).map_err(|source| ReadError::Decode { seq, source }))
            .collect::<Result<Vec<_>, _>>()?;
        let next = if full { items.last().map(|e| e.seq) } else { None };
        Ok(Page { items, next })
    }

    /// Up to `limit` stored envelopes (msgpack, as synced) with `seq > after`.
    pub fn raw_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, ReadError> {
        let txn = self.db.begin_read().storage()?;
        let table = txn.open_table(EVENTS).storage()?;
        let mut out = Vec::with_capacity(limit.min(1024));
        if after == u64::MAX {
            return Ok(out);
        }
        for row in table.range(after + 1..).storage()?.take(limit) {
            let (k, v) = row.storage()?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }
}

pub(super) fn decode_row<T: serde::de::DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T, ReadError> {
    rmp_serde::from_slice(bytes).map_err(|e| ReadError::Row { table, reason: e.to_string() })
}
