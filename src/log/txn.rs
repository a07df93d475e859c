//! What one request sees inside the writer's transaction, and the plumbing that carries a
//! request to the writer and its answer back.
//!
//! A request is a function `fn(&mut Txn, Q) -> Result<Result<O, AppendError>, redb::Error>`
//! and its input: the outer `Err` is a storage error (fatal for the whole batch), the inner
//! one a refusal of this request alone (disk reserve, encoding). The answer is held until
//! the batch's commit returned; if the commit fails, every request of the batch is answered
//! [`AppendError::Unavailable`] instead.

use jiff::Timestamp;
use redb::{Table, WriteTransaction};
use tokio::sync::oneshot;

use super::envelope::{EnvelopeRef, NewEvent};
use super::store::*;
use super::writer::AppendError;
use crate::config::Site;
use crate::telemetry::Metrics;

/// How a request is applied in the writer's transaction.
pub(crate) type ApplyFn<Q, O> = fn(&mut Txn<'_, '_>, Q) -> Result<Result<O, AppendError>, redb::Error>;

/// A request as the writer handles it, whatever its input and outcome types.
pub(crate) trait Request: Send {
    /// Applies the request; `Err` only for a storage error, which fails the batch.
    fn apply(&mut self, t: &mut Txn<'_, '_>) -> Result<(), redb::Error>;
    /// The refusal this request will be answered with, if any (for the metrics).
    fn refusal(&self) -> Option<&AppendError>;
    /// Sends the outcome (after the commit returned).
    fn answer(self: Box<Self>);
    /// Answers "unavailable" (the commit failed, or the writer is closing).
    fn fail(self: Box<Self>);
}

/// A typed request: input, how to apply it, and where its answer goes.
pub(crate) struct Job<Q, O> {
    pub input: Option<Q>,
    pub apply: ApplyFn<Q, O>,
    pub outcome: Option<Result<O, AppendError>>,
    pub reply: oneshot::Sender<Result<O, AppendError>>,
}

impl<Q: Send, O: Send> Request for Job<Q, O> {
    fn apply(&mut self, t: &mut Txn<'_, '_>) -> Result<(), redb::Error> {
        if let Some(input) = self.input.take() {
            self.outcome = Some((self.apply)(t, input)?);
        }
        Ok(())
    }

    fn refusal(&self) -> Option<&AppendError> {
        self.outcome.as_ref().and_then(|o| o.as_ref().err())
    }

    fn answer(self: Box<Self>) {
        // A caller that went away (connection closed) does not need its answer.
        let _ = self.reply.send(self.outcome.unwrap_or(Err(AppendError::Unavailable)));
    }

    fn fail(self: Box<Self>) {
        let _ = self.reply.send(Err(AppendError::Unavailable));
    }
}

/// The tables of the write transaction, opened on first use.
pub(crate) struct Tables<'t> {
    txn: &'t WriteTransaction,
    events: Option<Table<'t, u64, &'static [u8]>>,
    hl7_dedupe: Option<Table<'t, DedupeKey, &'static [u8]>>,
    dicom_instances: Option<Table<'t, InstanceKey, &'static [u8]>>,
    study_instances: Option<Table<'t, StudyInstanceKey, u64>>,
    studies: Option<Table<'t, StudyKey, &'static [u8]>>,
    studies_pending: Option<Table<'t, StudyKey, i64>>,
    hl7_messages: Option<Table<'t, Key3, u64>>,
    orders: Option<Table<'t, Key3, &'static [u8]>>,
    orders_by_placer: Option<Table<'t, Key4, &'static str>>,
    orders_by_accession: Option<Table<'t, Key4, ()>>,
    orders_by_patient: Option<Table<'t, Key4, ()>>,
    unmatched_orders: Option<Table<'t, Key4, i64>>,
    studies_by_accession: Option<Table<'t, Key4, ()>>,
    studies_by_patient: Option<Table<'t, Key4, ()>>,
    unmatched_studies: Option<Table<'t, Key4, i64>>,
    matches: Option<Table<'t, Key4, u64>>,
    matches_by_order: Option<Table<'t, Key4, u64>>,
    cases: Option<Table<'t, Key3, &'static [u8]>>,
    cases_by_patient: Option<Table<'t, Key4, i64>>,
    study_cases: Option<Table<'t, Key3, &'static str>>,
    patient_aliases: Option<Table<'t, Key3, &'static str>>,
    checkpoints: Option<Table<'t, &'static str, u64>>,
    deleted_files: Option<Table<'t, InstanceKey, u64>>,
    /// Write-back `studies` rows and `studies_pending` entries (`None`: removed) changed in
    /// this transaction, by study UID (a database holds one site). Every instance updates
    /// its study's row and pending mark; keeping them here until [`Tables::flush`] turns a
    /// study's many b-tree rewrites into one. Read through `projections::dicom` only.
    pub study_rows: std::collections::HashMap<String, crate::projections::dicom::StudyRow>,
    pub pending: std::collections::HashMap<String, Option<i64>>,
}

macro_rules! table_accessor {
    ($name:ident, $def:ident, $k:ty, $v:ty) => {
        pub fn $name(&mut self) -> Result<&mut Table<'t, $k, $v>, redb::Error> {
            if self.$name.is_none() {
                self.$name = Some(self.txn.open_table($def)?);
            }
            Ok(self.$name.as_mut().expect("just opened"))
        }
    };
}

impl<'t> Tables<'t> {
    pub fn new(txn: &'t WriteTransaction) -> Self {
        Tables {
            txn,
            events: None,
            hl7_dedupe: None,
            dicom_instances: None,
            study_instances: None,
            studies: None,
            studies_pending: None,
            hl7_messages: None,
            orders: None,
            orders_by_placer: None,
            orders_by_accession: None,
            orders_by_patient: None,
            unmatched_orders: None,
            studies_by_accession: None,
            studies_by_patient: None,
            unmatched_studies: None,
            matches: None,
            matches_by_order: None,
            cases: None,
            cases_by_patient: None,
            study_cases: None,
            patient_aliases: None,
            checkpoints: None,
            deleted_files: None,
            study_rows: std::collections::HashMap::new(),
            pending: std::collections::HashMap::new(),
        }
    }

    /// The write transaction itself, for tables that are not projections (sync state).
    pub(crate) fn txn(&self) -> &'t WriteTransaction {
        self.txn
    }

    table_accessor!(events, EVENTS, u64, &'static [u8]);
    table_accessor!(hl7_dedupe, HL7_DEDUPE, DedupeKey, &'static [u8]);
    table_accessor!(dicom_instances, DICOM_INSTANCES, InstanceKey, &'static [u8]);
    table_accessor!(study_instances, STUDY_INSTANCES, StudyInstanceKey, u64);
    table_accessor!(studies, STUDIES, StudyKey, &'static [u8]);
    table_accessor!(studies_pending, STUDIES_PENDING, StudyKey, i64);
    table_accessor!(hl7_messages, HL7_MESSAGES, Key3, u64);
    table_accessor!(orders, ORDERS, Key3, &'static [u8]);
    table_accessor!(orders_by_placer, ORDERS_BY_PLACER, Key4, &'static str);
    table_accessor!(orders_by_accession, ORDERS_BY_ACCESSION, Key4, ());
    table_accessor!(orders_by_patient, ORDERS_BY_PATIENT, Key4, ());
    table_accessor!(unmatched_orders, UNMATCHED_ORDERS, Key4, i64);
    table_accessor!(studies_by_accession, STUDIES_BY_ACCESSION, Key4, ());
    table_accessor!(studies_by_patient, STUDIES_BY_PATIENT, Key4, ());
    table_accessor!(unmatched_studies, UNMATCHED_STUDIES, Key4, i64);
    table_accessor!(matches, MATCHES, Key4, u64);
    table_accessor!(matches_by_order, MATCHES_BY_ORDER, Key4, u64);
    table_accessor!(cases, CASES, Key3, &'static [u8]);
    table_accessor!(cases_by_patient, CASES_BY_PATIENT, Key4, i64);
    table_accessor!(study_cases, STUDY_CASES, Key3, &'static str);
    table_accessor!(patient_aliases, PATIENT_ALIASES, Key3, &'static str);
    table_accessor!(checkpoints, CHECKPOINTS, &'static str, u64);
    table_accessor!(deleted_files, DELETED_FILES, InstanceKey, u64);
}

/// Where the writer's time comes from (tests inject one to cross months in a moment).
pub type Clock = std::sync::Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// What the writer's decisions depend on besides the projections.
#[derive(Clone)]
pub struct Policy {
    pub consolidation_window: std::time::Duration,
    pub clock: Clock,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy").field("consolidation_window", &self.consolidation_window).finish_non_exhaustive()
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            consolidation_window: std::time::Duration::from_secs(24 * 3600),
            clock: std::sync::Arc::new(Timestamp::now),
        }
    }
}

/// The batch's transaction as one request sees it.
pub(crate) struct Txn<'a, 't> {
    pub site: &'a Site,
    pub metrics: &'a Metrics,
    /// `Err` when free space is below the reserve: requests that add data must refuse.
    pub reserve: Result<(), AppendError>,
    /// The time recorded on every event of this batch.
    pub recorded_at: Timestamp,
    /// How long after its creation a patient case still takes studies of its patient.
    pub consolidation_window: std::time::Duration,
    pub tables: Tables<'t>,
    next_seq: &'a mut u64,
    /// Something was written (else the transaction is aborted instead of committed).
    pub dirty: bool,
}

impl<'a, 't> Txn<'a, 't> {
    pub fn new(
        txn: &'t WriteTransaction,
        site: &'a Site,
        metrics: &'a Metrics,
        reserve: Result<(), AppendError>,
        next_seq: &'a mut u64,
        policy: &Policy,
    ) -> Self {
        let tables = Tables::new(txn);
        Txn {
            site,
            metrics,
            reserve,
            recorded_at: (policy.clock)(),
            consolidation_window: policy.consolidation_window,
            tables,
            next_seq,
            dirty: false,
        }
    }

    /// The sequence number the next appended event gets.
    pub fn next_seq(&self) -> u64 {
        *self.next_seq
    }

    /// Appends one event at the next sequence number (gapless: a failed batch is fatal).
    pub fn append(&mut self, event: &NewEvent) -> Result<Result<u64, AppendError>, redb::Error> {
        let seq = *self.next_seq;
        let bytes = match encode(self.site, event, seq, self.recorded_at) {
            Ok(bytes) => bytes,
            Err(e) => return Ok(Err(e)),
        };
        self.tables.events()?.insert(seq, bytes.as_slice())?;
        let meta =
            crate::projections::Meta { site: self.site, seq, event_id: event.event_id, recorded_at: self.recorded_at };
        crate::projections::apply(&mut self.tables, &meta, &event.event)?;
        *self.next_seq += 1;
        self.dirty = true;
        Ok(Ok(seq))
    }
}

/// Plain appends: all events or none (a refusal of one refuses the request).
pub(crate) fn apply_events(
    t: &mut Txn<'_, '_>,
    events: Vec<NewEvent>,
) -> Result<Result<Vec<u64>, AppendError>, redb::Error> {
    if let Err(e) = &t.reserve {
        return Ok(Err(e.clone()));
    }
    let first = t.next_seq();
    let encoded: Result<Vec<Vec<u8>>, AppendError> =
        events.iter().enumerate().map(|(i, e)| encode(t.site, e, first + i as u64, t.recorded_at)).collect();
    let encoded = match encoded {
        Ok(encoded) => encoded,
        Err(e) => return Ok(Err(e)),
    };
    let mut seqs = Vec::with_capacity(encoded.len());
    for (bytes, event) in encoded.into_iter().zip(&events) {
        let seq = *t.next_seq;
        t.tables.events()?.insert(seq, bytes.as_slice())?;
        let meta = crate::projections::Meta { site: t.site, seq, event_id: event.event_id, recorded_at: t.recorded_at };
        crate::projections::apply(&mut t.tables, &meta, &event.event)?;
        *t.next_seq += 1;
        seqs.push(seq);
    }
    t.dirty |= !seqs.is_empty();
    Ok(Ok(seqs))
}

/// Serializes the envelope of `e` at `seq`.
fn encode(site: &Site, e: &NewEvent, seq: u64, recorded_at: Timestamp) -> Result<Vec<u8>, AppendError> {
    EnvelopeRef {
        seq,
        event_id: e.event_id,
        event_type: e.event.event_type(),
        event_version: e.event.event_version(),
        occurred_at: e.occurred_at,
        recorded_at,
        tenant_id: &site.tenant_id,
        hospital_id: &site.hospital_id,
        edge_id: &site.edge_id,
        aggregate: &e.aggregate,
        correlation_id: e.correlation_id,
        causation_id: e.causation_id,
        data: &e.event,
    }
    .encode(e.event.size_hint())
    .map_err(|err| AppendError::Encode(err.to_string()))
}

/// A value that does not decode is corruption: the batch fails (and the daemon restarts).
pub(crate) fn corrupt(table: &str, e: impl std::fmt::Display) -> redb::Error {
    redb::StorageError::Corrupted(format!("{table}: {e}")).into()
}
