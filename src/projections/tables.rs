//! The projection tables: their definitions and key shapes, and the schema version of the file
//! with its migrations. What one write transaction keeps of them is [`super::Tables`].

use redb::TableDefinition;

use crate::log::{Migration, Schema, TableSpec};

/// `(tenant, hospital, MSH-3, MSH-4, MSH-10, sha256 of the message without its final segment
/// terminators) -> msgpack DedupeEntry` (the seq of the message's event).
pub(crate) const HL7_DEDUPE: TableDefinition<DedupeKey, &[u8]> = TableDefinition::new("hl7_dedupe");

/// `(tenant, hospital, MSH-3, MSH-4, MSH-10, sha256)`.
pub(crate) type DedupeKey = (&'static str, &'static str, &'static str, &'static str, &'static str, [u8; 32]);

/// `(tenant, hospital, SOP Instance UID) -> msgpack InstanceRow`: the latest stored version of
/// each instance (duplicate detection, file lookup).
pub(crate) const DICOM_INSTANCES: TableDefinition<InstanceKey, &[u8]> = TableDefinition::new("dicom_instances");
pub(crate) type InstanceKey = (&'static str, &'static str, &'static str);

/// `(tenant, hospital, study UID, series UID, SOP Instance UID) -> seq` of the instance's
/// latest `InstanceStored`: the study's contents in order.
pub(crate) const STUDY_INSTANCES: TableDefinition<StudyInstanceKey, u64> = TableDefinition::new("study_instances");
pub(crate) type StudyInstanceKey = (&'static str, &'static str, &'static str, &'static str, &'static str);

/// `(tenant, hospital, study UID) -> msgpack StudyRow`: what a `StudyCompleted` reports.
pub(crate) const STUDIES: TableDefinition<StudyKey, &[u8]> = TableDefinition::new("studies");
pub(crate) type StudyKey = (&'static str, &'static str, &'static str);

/// `(tenant, hospital, study UID) -> recorded_at (µs since the epoch) of its last instance`:
/// studies with instances not yet covered by a `StudyCompleted` (the completion timers are
/// rebuilt from it at start-up).
pub(crate) const STUDIES_PENDING: TableDefinition<StudyKey, i64> = TableDefinition::new("studies_pending");

/// `InstanceFileDeleted`: (tenant, hospital, file path) → seq of the deletion event. The
/// files retention removed (or is about to, after a crash between commit and unlink).
pub(crate) const DELETED_FILES: TableDefinition<InstanceKey, u64> = TableDefinition::new("deleted_files");

/// `InstanceForwarded`, `InstancesCommitted`: (tenant, hospital, seq of the `InstanceStored`,
/// destination) → msgpack [`super::forward::ForwardRow`]: what each destination answered for
/// that version of the instance, and whether it confirmed holding it.
pub(crate) const FORWARDS: TableDefinition<ForwardKey, &[u8]> = TableDefinition::new("forwards");
pub(crate) type ForwardKey = (&'static str, &'static str, u64, &'static str);

/// `InstanceForwarded` with a commitment transaction, until the `InstancesCommitted` of that
/// transaction: (tenant, hospital, transaction UID) → msgpack
/// [`super::forward::PendingCommitment`] (the destination and the instances it names).
pub(crate) const FORWARD_COMMITMENTS: TableDefinition<Key3, &[u8]> = TableDefinition::new("forward_commitments");

/// `(tenant, hospital, item id) -> msgpack` [`super::worklist::WorklistItem`]: one modality
/// worklist item per scheduled procedure step of each live order ([`super::worklist`]).
pub(crate) const WORKLIST: TableDefinition<Key3, &[u8]> = TableDefinition::new("worklist");
/// `(tenant, hospital, SPS start date YYYYMMDD or "", modality or "", item id)`: the items
/// of a date range (and modality) are one range read.
pub(crate) const WORKLIST_BY_DATE: TableDefinition<WorklistDateKey, ()> = TableDefinition::new("worklist_by_date");
pub(crate) type WorklistDateKey = (&'static str, &'static str, &'static str, &'static str, &'static str);
/// `(tenant, hospital, patient id, item id)`.
pub(crate) const WORKLIST_BY_PATIENT: TableDefinition<Key4, ()> = TableDefinition::new("worklist_by_patient");
/// `(tenant, hospital, patient's name as DICOM PN in upper case, item id)`: a name or a
/// name's beginning (`DOE*`) is a range read.
pub(crate) const WORKLIST_BY_NAME: TableDefinition<Key4, ()> = TableDefinition::new("worklist_by_name");
/// `(tenant, hospital, accession, item id)`.
pub(crate) const WORKLIST_BY_ACCESSION: TableDefinition<Key4, ()> = TableDefinition::new("worklist_by_accession");

/// Calls `$m!(TABLE)` for every projection table, in a fixed order (the digest's).
macro_rules! projection_tables {
    ($m:ident) => {
        $m!(HL7_DEDUPE);
        $m!(DICOM_INSTANCES);
        $m!(STUDY_INSTANCES);
        $m!(STUDIES);
        $m!(STUDIES_PENDING);
        $m!(HL7_MESSAGES);
        $m!(ORDERS);
        $m!(ORDERS_BY_PLACER);
        $m!(ORDERS_BY_ACCESSION);
        $m!(ORDERS_BY_PATIENT);
        $m!(UNMATCHED_ORDERS);
        $m!(STUDIES_BY_ACCESSION);
        $m!(STUDIES_BY_PATIENT);
        $m!(UNMATCHED_STUDIES);
        $m!(MATCHES);
        $m!(MATCHES_BY_ORDER);
        $m!(CASES);
        $m!(CASES_BY_PATIENT);
        $m!(STUDY_CASES);
        $m!(PATIENT_ALIASES);
        $m!(DELETED_FILES);
        $m!(FORWARDS);
        $m!(FORWARD_COMMITMENTS);
        $m!(WORKLIST);
        $m!(WORKLIST_BY_DATE);
        $m!(WORKLIST_BY_PATIENT);
        $m!(WORKLIST_BY_ACCESSION);
        $m!(WORKLIST_BY_NAME);
    };
}
pub(crate) use projection_tables;

/// Key shapes of the matching projections.
pub(crate) type Key3 = (&'static str, &'static str, &'static str);
pub(crate) type Key4 = (&'static str, &'static str, &'static str, &'static str);

/// `(tenant, hospital, HL7 message id) -> seq` of its `HL7MessageReceived`.
pub(crate) const HL7_MESSAGES: TableDefinition<Key3, u64> = TableDefinition::new("hl7_messages");
/// `(tenant, hospital, order id) -> msgpack OrderRow`: every order an HL7 message brought.
pub(crate) const ORDERS: TableDefinition<Key3, &[u8]> = TableDefinition::new("orders");
/// `(tenant, hospital, sending application, placer order number) -> order id`: how a later
/// XO/CA finds its order.
pub(crate) const ORDERS_BY_PLACER: TableDefinition<Key4, &str> = TableDefinition::new("orders_by_placer");
/// `(tenant, hospital, accession, order id)`: orders by accession (search).
pub(crate) const ORDERS_BY_ACCESSION: TableDefinition<Key4, ()> = TableDefinition::new("orders_by_accession");
/// `(tenant, hospital, patient id, order id)`: orders by any of the patient's ids.
pub(crate) const ORDERS_BY_PATIENT: TableDefinition<Key4, ()> = TableDefinition::new("orders_by_patient");
/// `(tenant, hospital, accession, order id) -> received at (µs)`: orders waiting for a study.
pub(crate) const UNMATCHED_ORDERS: TableDefinition<Key4, i64> = TableDefinition::new("unmatched_orders");
/// `(tenant, hospital, accession, study UID)`: completed studies by accession (search).
pub(crate) const STUDIES_BY_ACCESSION: TableDefinition<Key4, ()> = TableDefinition::new("studies_by_accession");
/// `(tenant, hospital, patient id, study UID)`: completed studies by any of the patient's ids.
pub(crate) const STUDIES_BY_PATIENT: TableDefinition<Key4, ()> = TableDefinition::new("studies_by_patient");
/// `(tenant, hospital, accession, study UID) -> completed at (µs)`: completed studies waiting
/// for an order.
pub(crate) const UNMATCHED_STUDIES: TableDefinition<Key4, i64> = TableDefinition::new("unmatched_studies");
/// `(tenant, hospital, study UID, order id) -> seq of StudyMatched`: every pair, once, until a
/// `StudyUnmatched` undoes it.
pub(crate) const MATCHES: TableDefinition<Key4, u64> = TableDefinition::new("matches");
/// `(tenant, hospital, order id, study UID) -> seq of StudyMatched`: the same, by order.
pub(crate) const MATCHES_BY_ORDER: TableDefinition<Key4, u64> = TableDefinition::new("matches_by_order");
/// `(tenant, hospital, case id) -> msgpack CaseRow`.
pub(crate) const CASES: TableDefinition<Key3, &[u8]> = TableDefinition::new("cases");
/// `(tenant, hospital, patient id, case id) -> created at (µs)`: cases by any patient id.
pub(crate) const CASES_BY_PATIENT: TableDefinition<Key4, i64> = TableDefinition::new("cases_by_patient");
/// `(tenant, hospital, study UID) -> case id`.
pub(crate) const STUDY_CASES: TableDefinition<Key3, &str> = TableDefinition::new("study_cases");
/// `(tenant, hospital, prior patient id) -> surviving patient id` (ADT^A40).
pub(crate) const PATIENT_ALIASES: TableDefinition<Key3, &str> = TableDefinition::new("patient_aliases");

/// `projection table name -> seq`: the last event each projection has applied. The writer
/// sets every checkpoint to the batch's last seq in the batch's transaction; rebuild sets
/// them after each chunk. A checkpoint behind the log's head (a projection added by an
/// upgrade, a rebuild that was interrupted) makes the daemon rebuild at start-up.
pub(crate) const CHECKPOINTS: TableDefinition<&str, u64> = TableDefinition::new("projection_checkpoints");

/// The on-disk layout this binary writes. Bump it with every change to tables or key
/// encodings and add the step to [`MIGRATIONS`]. Every change so far was a projection's, so
/// the version is declared here, with the tables.
pub const SCHEMA_VERSION: u64 = 11;

/// Migrations in order.
///
/// * 1 → 2: the matching and patient-case projections and their checkpoints. The tables are
///   created empty when the file is opened; their checkpoints (absent, so 0) are behind the log, so
///   the daemon fills them by rebuilding at start-up.
/// * 2 → 3: `studies` rows list their series. Projections changed shape: the checkpoints
///   are dropped, so the daemon rebuilds every projection at start-up.
/// * 3 → 4: `hl7_dedupe` keys hash the message without its final segment terminators, and
///   the matching projections follow accession changes, keep a study's first waiting time and
///   find cases by their orders' patient ids: rebuilt at start-up, as for 2 → 3.
/// * 4 → 5: the `forwards` projection (what the central archive answered and confirmed),
///   created empty and filled at start-up like the tables of 1 → 2.
/// * 5 → 6: event values are written compressed ([`crate::log::value`]). Older values stay
///   plain and are read in place, so nothing is rewritten; the new version is what makes an
///   older binary, which cannot read a compressed value, refuse the file.
/// * 6 → 7: `hl7_dedupe` rows no longer copy the ACK (the event holds it): rebuilt at
///   start-up, as for 2 → 3.
/// * 7 → 8: values may be compressed with a dictionary trained on the site's events, kept in
///   the log's `value_dictionaries` table ([`crate::log::dictionary`]), created when the file is
///   opened. Nothing is rewritten; the version makes an older binary refuse the file.
/// * 8 → 9: the modality worklist (`worklist` and its indexes), created empty and filled at
///   start-up like the tables of 1 → 2.
/// * 9 → 10: the worklist's index by patient's name (`worklist_by_name`), created empty and
///   filled at start-up like the tables of 1 → 2.
/// * 10 → 11: the Storage Commitment requests awaiting their report (`forward_commitments`),
///   created empty and filled at start-up like the tables of 1 → 2.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration { from: 1, apply: |_| Ok(()) },
    Migration { from: 2, apply: rebuild_projections },
    Migration { from: 3, apply: rebuild_projections },
    Migration { from: 4, apply: |_| Ok(()) },
    Migration { from: 5, apply: |_| Ok(()) },
    Migration { from: 6, apply: rebuild_projections },
    Migration { from: 7, apply: |_| Ok(()) },
    Migration { from: 8, apply: |_| Ok(()) },
    Migration { from: 9, apply: |_| Ok(()) },
    Migration { from: 10, apply: |_| Ok(()) },
];

/// A migration for projection changes: every checkpoint goes, so the log rebuilds them all
/// when it opens.
fn rebuild_projections(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
    txn.delete_table(CHECKPOINTS)?;
    Ok(())
}

/// Every projection table and the checkpoints, as the engine creates and copies them.
pub fn specs() -> Vec<TableSpec> {
    let mut out = Vec::new();
    macro_rules! spec {
        ($def:ident) => {
            out.push(TableSpec::of(&$def));
        };
    }
    projection_tables!(spec);
    spec!(CHECKPOINTS);
    out
}

/// The file's layout as the projections need it: [`SCHEMA_VERSION`], [`MIGRATIONS`] and
/// every projection table. Other layers declare their own tables with [`Schema::with`].
pub fn schema() -> Schema {
    Schema { version: SCHEMA_VERSION, migrations: MIGRATIONS, tables: specs() }
}
