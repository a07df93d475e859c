//! Projections: everything in the database that is not the log itself, derived from the
//! events alone (invariant 2).
//!
//! # Contract
//!
//! * [`apply`] is the only way a projection changes. The writer calls it for every event it
//!   appends, in the same write transaction, so projections and log commit together and
//!   never disagree. `zenedge rebuild` drops every projection and calls it again for every
//!   event in order, to the same result.
//! * Decisions (a study is complete, an order matches a study, …) are taken by the writer's
//!   commands *before* they append the event that records them; [`apply`] only applies that
//!   event. Replay therefore re-applies decisions and never re-takes them (invariant 3).
//! * Keys are scoped by (tenant, hospital) like everything the edge stores.
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
//! | `deleted_files` | `InstanceFileDeleted` | instance file path → seq of its deletion |
//!
//! Every projection has a checkpoint (`projection_checkpoints`: table → last applied seq),
//! written with each batch; one behind the log's head is rebuilt when the log opens.

pub(crate) mod cases;
pub(crate) mod dicom;
pub(crate) mod hl7;
pub(crate) mod orders;
pub mod probe;
pub mod rebuild;
pub mod tables;
pub mod views;

use redb::WriteTransaction;

pub use rebuild::{catch_up, open_log};
pub use tables::{SCHEMA_VERSION, Tables, schema};

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
            orders::apply_received(t, m, e)
        }
        Event::Hl7MessageUpdated(e) => orders::apply_updated(t, m, e),
        Event::InstanceStored(e) => dicom::apply_instance(t, m.site, m.seq, m.recorded_at, e),
        Event::StudyCompleted(e) => {
            dicom::apply_completed(t, m.site, m.recorded_at, e)?;
            orders::apply_completed(t, m, e)
        }
        Event::StudyMatched(e) => orders::apply_matched(t, m, e),
        Event::StudyUnmatched(e) => orders::apply_unmatched(t, m, e),
        Event::OrderCreated(e) => orders::apply_created(t, m, e),
        Event::PatientCaseCreated(e) => cases::apply_created(t, m, e),
        Event::PatientCaseConsolidated(e) => cases::apply_consolidated(t, m, e),
        Event::PatientCaseClassified(e) => cases::apply_classified(t, m, e),
        Event::PatientsMerged(e) => cases::apply_merged(t, m, e),
        Event::InstanceFileDeleted(e) => dicom::apply_file_deleted(t, m.site, m.seq, e),
        // Recorded for the hub and the history; the projections above already reflect them.
        Event::Hl7MessageMatched(_) | Event::OrderUpdated(_) | Event::OrderCancelled(_) => Ok(()),
    }
}
