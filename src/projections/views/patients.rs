//! One patient's data: the ids merged into a patient, and the patient's events in log order
//! (what a data export holds; [`crate::events::subject`] decides which events are whose).

use super::{Scope, scope};
use crate::events::subject::PatientEvents;
use crate::events::{Envelope, after};
use crate::log::{LogReader, ReadError, Storage};
use crate::projections::tables::PATIENT_ALIASES;

/// Events decoded per read transaction while scanning.
const PAGE: usize = 2048;

/// `patient_id` first, then every id merged into it (ADT^A40), directly or through a chain of
/// merges, sorted.
pub fn merged_into(reader: &LogReader, patient_id: &str) -> Result<Vec<String>, ReadError> {
    let txn = reader.begin_read()?;
    let s: Scope<'_> = scope(reader.site());
    let aliases = txn.open_table(PATIENT_ALIASES).storage()?;
    let mut merged = Vec::new();
    for row in aliases.range((s.0, s.1, "")..).storage()? {
        let (key, _) = row.storage()?;
        let (tenant, hospital, prior) = key.value();
        if (tenant, hospital) != s {
            break;
        }
        let survivor = crate::projections::cases::follow_aliases(&aliases, s.0, s.1, prior).storage()?;
        if survivor == patient_id && prior != patient_id {
            merged.push(prior.to_owned());
        }
    }
    merged.sort();
    merged.insert(0, patient_id.to_owned());
    Ok(merged)
}

/// Calls `each` with every event of the patient known by `patient_ids` ([`merged_into`]), in
/// sequence order, up to the log's head when the scan reaches it; stops early when `each`
/// fails. One page of events in memory at a time.
pub fn patient_events<E: From<ReadError>>(
    reader: &LogReader,
    patient_ids: &[String],
    mut each: impl FnMut(Envelope) -> Result<(), E>,
) -> Result<(), E> {
    let mut gatherer = PatientEvents::new(patient_ids.iter().cloned());
    let mut cursor = 0;
    loop {
        let page = after(reader, cursor, PAGE)?;
        for envelope in page.items {
            if gatherer.take(envelope.seq, envelope.event_id, &envelope.event) {
                each(envelope)?;
            }
        }
        match page.next {
            Some(next) => cursor = next,
            None => return Ok(()),
        }
    }
}
