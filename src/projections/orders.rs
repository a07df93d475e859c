//! Order projections: every order HL7 messages brought (by id, placer number, accession,
//! patient), the pending-match indexes, and the matches.
//!
//! Projection rule for `HL7MessageReceived`: an order group with an accession number is a
//! new order unless its ORC-1 says it changes or cancels one (`XO`, `SC`, `CA`, `DC`, `OC`)
//! or its placer order number from the same sender is already known. The order's id is
//! `<message id>:<group index>`. Changes to known orders come as `HL7MessageUpdated`
//! events, decided by the writer; a change of the accession number moves the order in the
//! accession indexes (and in the waiting list, keeping the time it started waiting).
//!
//! Waiting times are first times: an order waits since the message that placed it, a study
//! since its first completion, also when a later completion (late instances) or a
//! `StudyUnmatched` puts it back on the list.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::Tables;
use crate::events::{
    FieldChange, Hl7MessageReceived, Hl7MessageUpdated, OrderCreated, StudyCompleted, StudyMatched, StudyUnmatched,
};
use crate::hl7::summary::{CodedValue, Physician};
use crate::log::Meta;
use crate::log::{encode_row, read_row};

/// ORC-1 values that change or cancel an existing order instead of placing one.
pub(crate) const CHANGE_CONTROLS: &[&str] = &["XO", "SC", "CA", "DC", "OC"];
/// ORC-1 values that cancel.
pub(crate) const CANCEL_CONTROLS: &[&str] = &["CA", "DC", "OC"];

/// The value of an `orders` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OrderRow {
    pub order_id: String,
    pub hl7_message_id: String,
    /// `HL7MessageReceived` that placed the order.
    pub seq: u64,
    pub received_at_us: i64,
    pub sending_application: String,
    pub placer_order_number: Option<String>,
    pub filler_order_number: Option<String>,
    pub accession_number: String,
    pub patient_id: Option<String>,
    #[serde(default)]
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
    /// Studies matched with it, in match order.
    #[serde(default)]
    pub matched_studies: Vec<String>,
    /// The patient case of its `OrderCreated`, once matched.
    pub patient_case_id: Option<String>,
}

/// The order id of group `index` of message `message_id`.
pub(crate) fn order_id(message_id: &str, index: usize) -> String {
    format!("{message_id}:{index}")
}

/// Orders placed by a message: (group index, accession) of each group the rule makes an
/// order of, judged against the orders known so far.
pub(crate) fn placed_orders(
    t: &mut Tables<'_>,
    m: &Meta<'_>,
    msg: &Hl7MessageReceived,
) -> Result<Vec<(usize, String)>, redb::Error> {
    let mut out = Vec::new();
    for (index, order) in msg.summary.orders.iter().enumerate() {
        let Some(accession) = order.accession_number.as_deref().filter(|a| !a.is_empty()) else { continue };
        let control = order.order_control.as_deref().unwrap_or("").to_ascii_uppercase();
        if CHANGE_CONTROLS.contains(&control.as_str()) {
            continue;
        }
        if let Some(placer) = order.placer_order_number.as_deref().filter(|p| !p.is_empty()) {
            let key = (m.tenant(), m.hospital(), msg.sending_application.as_str(), placer);
            if t.orders_by_placer()?.get(key)?.is_some() {
                continue;
            }
        }
        out.push((index, accession.to_owned()));
    }
    Ok(out)
}

/// `HL7MessageReceived`: the message by id, and the orders it places.
pub(crate) fn apply_received(t: &mut Tables<'_>, m: &Meta<'_>, msg: &Hl7MessageReceived) -> Result<(), redb::Error> {
    let message_id = m.event_id.to_string();
    t.hl7_messages()?.insert((m.tenant(), m.hospital(), message_id.as_str()), m.seq)?;
    let patient = msg.summary.patient.as_ref();
    let patient_ids = patient_ids(msg);
    for (index, accession) in placed_orders(t, m, msg)? {
        let group = &msg.summary.orders[index];
        let row = OrderRow {
            order_id: order_id(&message_id, index),
            hl7_message_id: message_id.clone(),
            seq: m.seq,
            received_at_us: m.recorded_at.as_microsecond(),
            sending_application: msg.sending_application.clone(),
            placer_order_number: group.placer_order_number.clone(),
            filler_order_number: group.filler_order_number.clone(),
            accession_number: accession.clone(),
            patient_id: patient.and_then(|p| p.id.clone()),
            patient_ids: patient_ids.clone(),
            patient_name: patient
                .and_then(|p| p.name.as_ref())
                .map(|n| [n.family.as_deref(), n.given.as_deref()].into_iter().flatten().collect::<Vec<_>>().join("^")),
            patient_class: msg.summary.visit.as_ref().and_then(|v| v.patient_class.clone()),
            modality: group.modality.clone(),
            procedure: group.procedure.clone(),
            requesting_physician: group.requesting_physician.clone(),
            clinical_info: group.clinical_info.clone(),
            order_status: group.order_status.clone(),
            scheduled_datetime: group.scheduled_datetime.clone(),
            cancelled: false,
            matched_studies: Vec::new(),
            patient_case_id: None,
        };
        put(t, m, &row)?;
        let id = row.order_id.as_str();
        if let Some(placer) = group.placer_order_number.as_deref().filter(|p| !p.is_empty()) {
            t.orders_by_placer()?.insert((m.tenant(), m.hospital(), msg.sending_application.as_str(), placer), id)?;
        }
        t.orders_by_accession()?.insert((m.tenant(), m.hospital(), accession.as_str(), id), ())?;
        for pid in &patient_ids {
            t.orders_by_patient()?.insert((m.tenant(), m.hospital(), pid.as_str(), id), ())?;
        }
        t.unmatched_orders()?
            .insert((m.tenant(), m.hospital(), accession.as_str(), id), m.recorded_at.as_microsecond())?;
    }
    Ok(())
}

/// The message's patient ids: the primary one first, then every other identifier.
pub(crate) fn patient_ids(msg: &Hl7MessageReceived) -> Vec<String> {
    crate::events::subject::message_patient_ids(msg).into_iter().map(str::to_owned).collect()
}

/// `HL7MessageUpdated`: the new values, and a cancelled order stops waiting for a study.
pub(crate) fn apply_updated(t: &mut Tables<'_>, m: &Meta<'_>, u: &Hl7MessageUpdated) -> Result<(), redb::Error> {
    let Some(mut row) = order(t, m, &u.order_id)? else { return Ok(()) };
    for change in &u.changes {
        match (change.field.as_str(), change.new.as_deref()) {
            ("accession_number", Some(new)) if !new.is_empty() => move_accession(t, m, &mut row, new)?,
            _ => set_field(&mut row, change),
        }
    }
    if u.cancelled {
        row.cancelled = true;
        t.unmatched_orders()?.remove((
            m.tenant(),
            m.hospital(),
            row.accession_number.as_str(),
            row.order_id.as_str(),
        ))?;
    }
    put(t, m, &row)
}

/// A new accession number: the order is found (and waits) under it instead of the old one.
fn move_accession(t: &mut Tables<'_>, m: &Meta<'_>, row: &mut OrderRow, new: &str) -> Result<(), redb::Error> {
    let old = std::mem::replace(&mut row.accession_number, new.to_owned());
    let id = row.order_id.as_str();
    t.orders_by_accession()?.remove((m.tenant(), m.hospital(), old.as_str(), id))?;
    t.orders_by_accession()?.insert((m.tenant(), m.hospital(), new, id), ())?;
    let since = t.unmatched_orders()?.remove((m.tenant(), m.hospital(), old.as_str(), id))?.map(|v| v.value());
    if let Some(since) = since {
        t.unmatched_orders()?.insert((m.tenant(), m.hospital(), new, id), since)?;
    }
    Ok(())
}

/// Applies one change by field name (the names [`changes`] produces).
fn set_field(row: &mut OrderRow, change: &FieldChange) {
    let value = change.new.clone();
    match change.field.as_str() {
        "order_status" => row.order_status = value,
        "modality" => row.modality = value,
        "clinical_info" => row.clinical_info = value,
        "scheduled_datetime" => row.scheduled_datetime = value,
        "patient_class" => row.patient_class = value,
        "procedure" => {
            row.procedure =
                value.map(|code| CodedValue { code: Some(code), ..row.procedure.clone().unwrap_or_default() })
        }
        "requesting_physician" => {
            row.requesting_physician =
                value.map(|id| Physician { id: Some(id), ..row.requesting_physician.clone().unwrap_or_default() })
        }
        _ => {}
    }
}

/// What a change message changes in `row`: accession number, status, modality, procedure,
/// physician, clinical info, schedule, patient class.
pub(crate) fn changes(row: &OrderRow, msg: &Hl7MessageReceived, index: usize) -> Vec<FieldChange> {
    let group = &msg.summary.orders[index];
    let class = msg.summary.visit.as_ref().and_then(|v| v.patient_class.clone());
    let candidates = [
        ("accession_number", Some(row.accession_number.clone()), group.accession_number.clone()),
        ("order_status", row.order_status.clone(), group.order_status.clone()),
        ("modality", row.modality.clone(), group.modality.clone()),
        (
            "procedure",
            row.procedure.as_ref().and_then(|p| p.code.clone()),
            group.procedure.as_ref().and_then(|p| p.code.clone()),
        ),
        (
            "requesting_physician",
            row.requesting_physician.as_ref().and_then(|p| p.id.clone()),
            group.requesting_physician.as_ref().and_then(|p| p.id.clone()),
        ),
        ("clinical_info", row.clinical_info.clone(), group.clinical_info.clone()),
        ("scheduled_datetime", row.scheduled_datetime.clone(), group.scheduled_datetime.clone()),
        ("patient_class", row.patient_class.clone(), class),
    ];
    candidates
        .into_iter()
        // An absent value in a change message means "not sent", not "cleared"; the explicit
        // null `""` clears.
        .filter(|(_, old, new)| new.is_some() && old != new)
        .map(|(field, old, new)| FieldChange { field: field.into(), old, new: new.filter(|v| !v.is_empty()) })
        .collect()
}

/// `StudyCompleted`: the study by accession and patient, and waiting for an order (since its
/// first completion) unless it has one.
pub(crate) fn apply_completed(t: &mut Tables<'_>, m: &Meta<'_>, c: &StudyCompleted) -> Result<(), redb::Error> {
    let study = c.study_instance_uid.as_str();
    if let Some(accession) = c.accession_number.as_deref().filter(|a| !a.is_empty()) {
        t.studies_by_accession()?.insert((m.tenant(), m.hospital(), accession, study), ())?;
        if !is_matched_study(t, m, study)? {
            wait_for_order(t, m, accession, study)?;
        }
    }
    for pid in c.patient_id.iter().chain(&c.other_patient_ids) {
        t.studies_by_patient()?.insert((m.tenant(), m.hospital(), pid.as_str(), study), ())?;
    }
    Ok(())
}

/// `StudyMatched`: the pair, and neither side waits any more.
pub(crate) fn apply_matched(t: &mut Tables<'_>, m: &Meta<'_>, s: &StudyMatched) -> Result<(), redb::Error> {
    let (study, order_id, accession) =
        (s.study_instance_uid.as_str(), s.order_id.as_str(), s.accession_number.as_str());
    t.matches()?.insert((m.tenant(), m.hospital(), study, order_id), m.seq)?;
    t.matches_by_order()?.insert((m.tenant(), m.hospital(), order_id, study), m.seq)?;
    t.unmatched_orders()?.remove((m.tenant(), m.hospital(), accession, order_id))?;
    t.unmatched_studies()?.remove((m.tenant(), m.hospital(), accession, study))?;
    if let Some(mut row) = order(t, m, order_id)? {
        row.matched_studies.push(study.to_owned());
        put(t, m, &row)?;
    }
    Ok(())
}

/// The study waits for an order under `accession`, since its first completion.
fn wait_for_order(t: &mut Tables<'_>, m: &Meta<'_>, accession: &str, study: &str) -> Result<(), redb::Error> {
    let first = super::dicom::study(t, m.site, study)?.and_then(|s| s.first_completed_us);
    let since = first.unwrap_or(m.recorded_at.as_microsecond());
    t.unmatched_studies()?.insert((m.tenant(), m.hospital(), accession, study), since)?;
    Ok(())
}

/// `StudyUnmatched`: the pair is gone; the order (unless cancelled) and the study wait again,
/// each since its first time, when no other pair holds them.
pub(crate) fn apply_unmatched(t: &mut Tables<'_>, m: &Meta<'_>, u: &StudyUnmatched) -> Result<(), redb::Error> {
    let (study, order_id) = (u.study_instance_uid.as_str(), u.order_id.as_str());
    t.matches()?.remove((m.tenant(), m.hospital(), study, order_id))?;
    t.matches_by_order()?.remove((m.tenant(), m.hospital(), order_id, study))?;
    if let Some(mut row) = order(t, m, order_id)? {
        row.matched_studies.retain(|s| s != study);
        if row.matched_studies.is_empty() {
            row.patient_case_id = None;
            if !row.cancelled {
                let key = (m.tenant(), m.hospital(), row.accession_number.as_str(), order_id);
                t.unmatched_orders()?.insert(key, row.received_at_us)?;
            }
        }
        put(t, m, &row)?;
    }
    let accession = super::dicom::study(t, m.site, study)?.and_then(|s| s.accession_number);
    if let Some(accession) = accession.filter(|a| !a.is_empty())
        && !is_matched_study(t, m, study)?
    {
        wait_for_order(t, m, &accession, study)?;
    }
    Ok(())
}

/// `OrderCreated`: the order's patient case, which its patient ids now find too.
pub(crate) fn apply_created(t: &mut Tables<'_>, m: &Meta<'_>, c: &OrderCreated) -> Result<(), redb::Error> {
    let Some(mut row) = order(t, m, &c.order_id)? else { return Ok(()) };
    row.patient_case_id.clone_from(&c.patient_case_id);
    put(t, m, &row)?;
    if let Some(case_id) = c.patient_case_id.as_deref() {
        // Events from before `patient_ids` existed: the ids the order's message gave.
        let ids = if c.patient_ids.is_empty() { &row.patient_ids } else { &c.patient_ids };
        super::cases::add_patient_ids(t, m, case_id, ids)?;
    }
    Ok(())
}

pub(crate) fn order(t: &mut Tables<'_>, m: &Meta<'_>, order_id: &str) -> Result<Option<OrderRow>, redb::Error> {
    match t.orders()?.get((m.tenant(), m.hospital(), order_id))? {
        Some(v) => Ok(Some(read_row("orders", v.value())?)),
        None => Ok(None),
    }
}

fn put(t: &mut Tables<'_>, m: &Meta<'_>, row: &OrderRow) -> Result<(), redb::Error> {
    let bytes = encode_row("orders", row)?;
    t.orders()?.insert((m.tenant(), m.hospital(), row.order_id.as_str()), bytes.as_slice())?;
    Ok(())
}

/// Whether the study was matched with any order.
pub(crate) fn is_matched_study(t: &mut Tables<'_>, m: &Meta<'_>, study: &str) -> Result<bool, redb::Error> {
    let first = t.matches()?.range((m.tenant(), m.hospital(), study, "")..)?.next().transpose()?;
    Ok(first.is_some_and(|(k, _)| {
        let k = k.value();
        (k.0, k.1, k.2) == (m.tenant(), m.hospital(), study)
    }))
}

/// Whether the pair was recorded before.
pub(crate) fn is_pair(t: &mut Tables<'_>, m: &Meta<'_>, study: &str, order_id: &str) -> Result<bool, redb::Error> {
    Ok(t.matches()?.get((m.tenant(), m.hospital(), study, order_id))?.is_some())
}

/// Entries of a 4-part-key table under `(tenant, hospital, first)`, as the last key part.
pub(crate) fn under<V: redb::Value + 'static>(
    table: &redb::Table<'_, super::tables::Key4, V>,
    m: &Meta<'_>,
    first: &str,
) -> Result<Vec<String>, redb::Error> {
    let mut out = Vec::new();
    for row in table.range((m.tenant(), m.hospital(), first, "")..)? {
        let (k, _) = row?;
        let k = k.value();
        if (k.0, k.1, k.2) != (m.tenant(), m.hospital(), first) {
            break;
        }
        out.push(k.3.to_owned());
    }
    Ok(out)
}
