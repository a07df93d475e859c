//! Projections: everything in the database that is not the log itself (or the sync's record
//! of what the hub answered), derived from the events alone (invariant 2); and the read queries
//! over them ([`views`]).
//!
//! # Contract
//!
//! * [`apply`] is the only way a projection changes. The log's writer is started with
//!   [`Projections`] as its applier and calls it for every event it appends, in the same write
//!   transaction, so projections and log commit together and never disagree; each batch ends
//!   with [`finish`] (write-back rows, checkpoints). `zenedge rebuild` drops every projection
//!   and calls [`apply`] again for every event in order, to the same result.
//! * Decisions (a study is complete, an order matches a study, …) are taken by the domain's
//!   requests to the writer ([`crate::domain`]) *before* they append the event that records
//!   them; [`apply`] only applies that event. Replay therefore re-applies decisions and never
//!   re-takes them (invariant 3).
//! * Keys are scoped by (tenant, hospital) like everything the edge stores. The tables, the
//!   file's schema version and its migrations are declared in [`tables`] ([`schema`]); what
//!   one write transaction keeps of them is [`Tables`].
//!
//! The tables (key → value):
//!
//! | table | from | |
//! | --- | --- | --- |
//! | `hl7_dedupe` | `HL7MessageReceived` | (sender, control id, hash of the content without its final segment terminators) → seq, ACK sent |
//! | `dicom_instances` | `InstanceStored` | SOP instance UID → latest version (seq, hash, file) |
//! | `study_instances` | `InstanceStored` | (study, series, SOP instance) → seq |
//! | `studies` | `InstanceStored`, `StudyCompleted` | study → counts, patient, accession, revision |
//! | `studies_pending` | `InstanceStored`, `StudyCompleted` | study → time of its last instance |
//! | `hl7_messages` | `HL7MessageReceived` | message id → seq |
//! | `orders`, `orders_by_placer`, `orders_by_accession`, `orders_by_patient` | `HL7MessageReceived`, `HL7MessageUpdated`, `StudyMatched`, `StudyUnmatched`, `OrderCreated` | order id → order; lookups |
//! | `unmatched_orders` | `HL7MessageReceived`, `HL7MessageUpdated`, `StudyMatched`, `StudyUnmatched` | (accession, order id) → waiting since (its receipt) |
//! | `studies_by_accession`, `studies_by_patient` | `StudyCompleted` | lookups of completed studies |
//! | `unmatched_studies` | `StudyCompleted`, `StudyMatched`, `StudyUnmatched` | (accession, study) → waiting since (its first completion) |
//! | `matches`, `matches_by_order` | `StudyMatched`, `StudyUnmatched` | (study, order) and (order, study) → seq |
//! | `cases`, `cases_by_patient`, `study_cases` | `PatientCase*`, `OrderCreated` (the order's patient ids) | case id → case; lookups |
//! | `patient_aliases` | `PatientsMerged` | prior patient id → surviving id |
//! | `deleted_files` | `InstanceFileDeleted`, `InstanceStored` (a re-stored file) | instance file path → seq of its deletion |
//! | `worklist`, `worklist_by_date`, `worklist_by_patient`, `worklist_by_accession`, `worklist_by_name` | `HL7MessageReceived` (ORM/OMI orders, ADT^A08/A40), `HL7MessageUpdated`, `StudyMatched` | item id → modality worklist item; lookups |
//! | `forwards` | `InstanceForwarded`, `InstancesCommitted` | (instance version, destination) → its answer, its confirmation |
//!
//! Every projection has a checkpoint (`projection_checkpoints`: table → last applied seq),
//! written with each batch; when the log is opened, before its writer starts, any projection
//! whose checkpoint is behind the log's head is rebuilt ([`catch_up`], called by the
//! composition root).

pub(crate) mod cases;
pub(crate) mod dicom;
pub mod forward;
pub(crate) mod hl7;
pub(crate) mod orders;
pub mod probe;
pub mod rebuild;
pub mod tables;
pub mod views;
pub mod worklist;

use std::collections::HashMap;

use redb::{Table, WriteTransaction};

pub use rebuild::{catch_up, open_log};
pub use tables::{SCHEMA_VERSION, schema};

use self::dicom::StudyRow;
use self::tables::*;
use crate::config::Site;
use crate::events::Event;
use crate::log::{Applier, Meta};

/// The applier the log's writer is started with: every event it appends is applied to the
/// projections in the same transaction, and each batch ends with [`finish`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Projections;

impl Applier for Projections {
    type Event = Event;
    type Tables<'t> = Tables<'t>;

    fn tables<'t>(&self, txn: &'t WriteTransaction) -> Tables<'t> {
        Tables::new(txn)
    }

    fn apply(&self, tables: &mut Tables<'_>, meta: &Meta<'_>, event: &Event) -> Result<(), redb::Error> {
        apply(tables, meta, event)
    }

    fn finish(&self, tables: &mut Tables<'_>, site: &Site, last_seq: u64) -> Result<(), redb::Error> {
        finish(tables, site, last_seq)
    }
}

/// The projection tables of one write transaction, opened on first use.
#[allow(missing_debug_implementations)] // holds redb's open tables, which have no `Debug`
pub struct Tables<'t> {
    txn: &'t WriteTransaction,
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
    forwards: Option<Table<'t, ForwardKey, &'static [u8]>>,
    forward_commitments: Option<Table<'t, Key3, &'static [u8]>>,
    worklist: Option<Table<'t, Key3, &'static [u8]>>,
    worklist_by_date: Option<Table<'t, WorklistDateKey, ()>>,
    worklist_by_patient: Option<Table<'t, Key4, ()>>,
    worklist_by_accession: Option<Table<'t, Key4, ()>>,
    worklist_by_name: Option<Table<'t, Key4, ()>>,
    /// Write-back `studies` rows and `studies_pending` entries (`None`: removed) changed in
    /// this transaction, by study UID (a database holds one site). Every instance updates
    /// its study's row and pending mark; keeping them here until [`dicom::flush`] turns a
    /// study's many b-tree rewrites into one. Read through [`dicom`] only.
    pub(crate) study_rows: HashMap<String, StudyRow>,
    pub(crate) pending: HashMap<String, Option<i64>>,
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
            forwards: None,
            forward_commitments: None,
            worklist: None,
            worklist_by_date: None,
            worklist_by_patient: None,
            worklist_by_accession: None,
            worklist_by_name: None,
            study_rows: HashMap::new(),
            pending: HashMap::new(),
        }
    }

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
    table_accessor!(forwards, FORWARDS, ForwardKey, &'static [u8]);
    table_accessor!(forward_commitments, FORWARD_COMMITMENTS, Key3, &'static [u8]);
    table_accessor!(worklist, WORKLIST, Key3, &'static [u8]);
    table_accessor!(worklist_by_date, WORKLIST_BY_DATE, WorklistDateKey, ());
    table_accessor!(worklist_by_patient, WORKLIST_BY_PATIENT, Key4, ());
    table_accessor!(worklist_by_accession, WORKLIST_BY_ACCESSION, Key4, ());
    table_accessor!(worklist_by_name, WORKLIST_BY_NAME, Key4, ());
}

/// Names of every projection table, in the digest's order.
pub(crate) fn table_names() -> Vec<&'static str> {
    use redb::TableHandle;
    let mut names = Vec::new();
    macro_rules! name {
        ($def:ident) => {
            names.push(tables::$def.name());
        };
    }
    tables::projection_tables!(name);
    names
}

/// Ends a transaction's projection work before its commit: writes the write-back rows and
/// records that every projection has applied the log up to `seq`.
pub(crate) fn finish(t: &mut Tables<'_>, site: &Site, seq: u64) -> Result<(), redb::Error> {
    dicom::flush(t, site)?;
    let table = t.checkpoints()?;
    for name in table_names() {
        table.insert(name, seq)?;
    }
    Ok(())
}
/// Applies one event to every projection.
pub(crate) fn apply(t: &mut Tables<'_>, m: &Meta<'_>, event: &Event) -> Result<(), redb::Error> {
    match event {
        Event::Hl7MessageReceived(e) => {
            hl7::apply_received(t, m.site, m.seq, e)?;
            orders::apply_received(t, m, e)?;
            worklist::apply_received(t, m, e)
        }
        Event::Hl7MessageUpdated(e) => {
            orders::apply_updated(t, m, e)?;
            worklist::apply_updated(t, m, e)
        }
        Event::InstanceStored(e) => dicom::apply_instance(t, m.site, m.seq, m.recorded_at, e),
        Event::StudyCompleted(e) => {
            dicom::apply_completed(t, m.site, m.recorded_at, e)?;
            orders::apply_completed(t, m, e)
        }
        Event::StudyMatched(e) => {
            orders::apply_matched(t, m, e)?;
            worklist::apply_matched(t, m, e)
        }
        Event::StudyUnmatched(e) => orders::apply_unmatched(t, m, e),
        Event::OrderCreated(e) => orders::apply_created(t, m, e),
        Event::PatientCaseCreated(e) => cases::apply_created(t, m, e),
        Event::PatientCaseConsolidated(e) => cases::apply_consolidated(t, m, e),
        Event::PatientCaseClassified(e) => cases::apply_classified(t, m, e),
        Event::PatientsMerged(e) => cases::apply_merged(t, m, e),
        Event::InstanceFileDeleted(e) => dicom::apply_file_deleted(t, m.site, m.seq, e),
        Event::InstanceForwarded(e) => forward::apply_forwarded(t, m, e),
        Event::InstancesCommitted(e) => forward::apply_committed(t, m.site, m.seq, e),
        // Recorded for the hub and the history; the projections above already reflect them.
        Event::Hl7MessageMatched(_) | Event::OrderUpdated(_) | Event::OrderCancelled(_) => Ok(()),
    }
}
