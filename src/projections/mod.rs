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
//! | `hl7_dedupe` | `HL7MessageReceived` | (sender, control id, content hash) → seq, ACK sent |
//! | `dicom_instances` | `InstanceStored` | SOP instance UID → latest version (seq, hash, file) |
//! | `study_instances` | `InstanceStored` | (study, series, SOP instance) → seq |
//! | `studies` | `InstanceStored`, `StudyCompleted` | study → counts, patient, accession, revision |
//! | `studies_pending` | `InstanceStored`, `StudyCompleted` | study → time of its last instance |

pub(crate) mod dicom;
pub(crate) mod hl7;
pub mod rebuild;

use jiff::Timestamp;

use crate::config::Site;
use crate::domain::Event;
use crate::log::txn::Tables;

/// Applies one event to every projection.
pub(crate) fn apply(
    t: &mut Tables<'_>,
    site: &Site,
    seq: u64,
    recorded_at: Timestamp,
    event: &Event,
) -> Result<(), redb::Error> {
    match event {
        Event::Hl7MessageReceived(m) => hl7::apply_received(t, site, seq, m),
        Event::InstanceStored(i) => dicom::apply_instance(t, site, seq, recorded_at, i),
        Event::StudyCompleted(c) => dicom::apply_completed(t, site, c),
        _ => Ok(()),
    }
}
