//! The decisions, taken once by the writer inside the transaction that appends the event
//! that triggers them, and recorded as events (invariant 3):
//!
//! * **Matching.** Every live (not cancelled) order and every completed study with the same
//!   (tenant, hospital, accession) make a pair: a placed order meets every completed study
//!   with its accession, a completing study every live order with its accession. Each pair
//!   appends `StudyMatched`, `HL7MessageMatched`, `OrderCreated` (in the study's patient
//!   case), and `PatientCaseClassified` when the order brings a patient class the case does
//!   not have. A pair is recorded once: the `matches` projection is checked first. Looking
//!   up *all* orders and studies of the accession, not only those still waiting, makes the
//!   pairs independent of arrival order (a study matched with one order still meets a
//!   second order of the same accession that comes later). Nothing expires: no index has
//!   time in its keys and nothing removes an entry but a match (from the waiting indexes)
//!   or a cancel.
//! * **Order changes.** ORC-1 `XO`/`SC` (or a known placer number again) finds its order by
//!   placer number, else by accession when exactly one live order has it, and appends
//!   `HL7MessageUpdated`; once the order was matched, `OrderUpdated`. `CA`/`DC`/`OC` cancel:
//!   `HL7MessageUpdated` with `cancelled`, and `OrderCancelled` once matched.
//! * **Accession corrections.** A change of the accession number (a re-sent `NW` with the same
//!   placer number, or an `XO`) is such a change; then every pair the order made with a study
//!   that does not have the new accession is undone (`StudyUnmatched`, reason
//!   `accession_changed`: the `StudyMatched` stays in the log, the pair leaves the matches and
//!   both sides wait again unless other pairs hold them), and the order, unless cancelled,
//!   meets every completed study of the new accession.
//! * **Patient cases.** A study's first completion joins the most recent case of the same
//!   patient (any of its ids, resolved through merges) and the same modality created within
//!   the consolidation window (`PatientCaseConsolidated`), else opens one
//!   (`PatientCaseCreated`). Studies completing in the same batch are decided one after the
//!   other, so N studies of one patient at the same instant make one case.
//! * **Merges.** ADT^A40 appends `PatientsMerged`: the prior ids resolve to the surviving one
//!   and the prior ids' cases are found under the surviving id, for later consolidation.
//!   Cases that already exist are not merged retroactively.
//! * **Classification.** A matched order's patient class (PV1-2) classifies its case, and a
//!   later change of that class in an order change reclassifies it.
//! * **Case ids.** A match brings the order's patient ids (PID-3 repetitions, PID-2, PID-4,
//!   resolved through merges) to the study's case in `OrderCreated`: the case is found by
//!   them, and later studies under them join it.

use std::time::Duration;

use redb::ReadableTable;
use uuid::Uuid;

use crate::events::NewEvent;
use crate::events::{
    Event, FieldChange, Hl7MessageMatched, Hl7MessageReceived, Hl7MessageUpdated, OrderCancelled, OrderCreated,
    OrderUpdated, PatientCaseClassified, PatientCaseConsolidated, PatientCaseCreated, PatientsMerged, StudyCompleted,
    StudyMatched, StudyUnmatched, UNMATCHED_ACCESSION_CHANGED,
};
use crate::log::{Aggregate, Meta, Txn};
use crate::projections::orders::{self, CANCEL_CONTROLS, CHANGE_CONTROLS, OrderRow};
use crate::projections::{Projections, cases, dicom};

/// Appends a decision. Encoding a decision cannot fail in practice; if it did, the batch
/// fails as a whole rather than committing a trigger without its decisions.
fn record(
    t: &mut Txn<'_, '_, Projections>,
    cause: Uuid,
    kind: &str,
    id: &str,
    event: Event,
) -> Result<u64, redb::Error> {
    let mut new = NewEvent::now(Aggregate { kind: kind.into(), id: id.into() }, event);
    new.occurred_at = t.recorded_at;
    new.causation_id = Some(cause);
    new.correlation_id = Some(cause);
    t.append(&new)?.map_err(|e| redb::StorageError::Corrupted(format!("decision event: {e}")).into())
}

/// Decisions after an `HL7MessageReceived` (event `cause`) was appended.
pub(super) fn after_message(
    t: &mut Txn<'_, '_, Projections>,
    cause: Uuid,
    msg: &Hl7MessageReceived,
) -> Result<(), redb::Error> {
    let message_id = cause.to_string();
    merge(t, cause, &message_id, msg)?;
    let meta = scope(t);
    for (index, group) in msg.summary.orders.iter().enumerate() {
        let control = group.order_control.as_deref().unwrap_or("").to_ascii_uppercase();
        let placed = orders::order(&mut t.tables, &meta, &orders::order_id(&message_id, index))?;
        match placed {
            Some(order) if !CHANGE_CONTROLS.contains(&control.as_str()) => {
                for study in orders::under(t.tables.studies_by_accession()?, &meta, &order.accession_number)? {
                    pair(t, cause, &order, &study)?;
                }
            }
            _ => {
                if let Some(order_id) = find_order(t, msg, index)? {
                    update(t, cause, &message_id, msg, index, &order_id, &control)?;
                }
            }
        }
    }
    Ok(())
}

/// ADT^A40: the message's patient survives, MRG-1 ids are prior.
fn merge(
    t: &mut Txn<'_, '_, Projections>,
    cause: Uuid,
    message_id: &str,
    msg: &Hl7MessageReceived,
) -> Result<(), redb::Error> {
    let s = &msg.summary;
    if !(s.message_code.eq_ignore_ascii_case("ADT") && s.trigger_event.eq_ignore_ascii_case("A40")) {
        return Ok(());
    }
    let (Some(surviving), Some(merge)) = (s.patient.as_ref().and_then(|p| p.id.clone()), s.merge.as_ref()) else {
        return Ok(());
    };
    let prior: Vec<String> =
        merge.prior_identifiers.iter().map(|i| i.id.clone()).filter(|id| !id.is_empty() && *id != surviving).collect();
    if prior.is_empty() {
        return Ok(());
    }
    let event = PatientsMerged {
        surviving_patient_id: surviving.clone(),
        prior_patient_ids: prior,
        hl7_message_id: message_id.into(),
    };
    record(t, cause, "patient", &surviving, Event::PatientsMerged(Box::new(event)))?;
    Ok(())
}

/// The order a change message means: by (sender, placer number), else the one live order
/// with its accession.
///
/// Several groups of one message may carry the same placer number (the index then names the
/// last of them): group `index` of a later message means the order of group `index` of that
/// message when it has the same placer number, so a re-sent multi-group message updates each
/// order from its own group instead of one order from every group in turn.
fn find_order(
    t: &mut Txn<'_, '_, Projections>,
    msg: &Hl7MessageReceived,
    index: usize,
) -> Result<Option<String>, redb::Error> {
    let meta = scope(t);
    let group = &msg.summary.orders[index];
    if let Some(placer) = group.placer_order_number.as_deref().filter(|p| !p.is_empty()) {
        let key = (meta.tenant(), meta.hospital(), msg.sending_application.as_str(), placer);
        let found = t.tables.orders_by_placer()?.get(key)?.map(|id| id.value().to_owned());
        if let Some(id) = found {
            let sibling = id.rsplit_once(':').map(|(message, _)| orders::order_id(message, index));
            if let Some(sibling) = sibling.filter(|s| *s != id) {
                let same = orders::order(&mut t.tables, &meta, &sibling)?.is_some_and(|o| {
                    o.placer_order_number.as_deref() == Some(placer) && o.sending_application == msg.sending_application
                });
                if same {
                    return Ok(Some(sibling));
                }
            }
            return Ok(Some(id));
        }
    }
    let Some(accession) = group.accession_number.as_deref().filter(|a| !a.is_empty()) else { return Ok(None) };
    let mut live = Vec::new();
    for id in orders::under(t.tables.orders_by_accession()?, &meta, accession)? {
        if orders::order(&mut t.tables, &meta, &id)?.is_some_and(|o| !o.cancelled) {
            live.push(id);
        }
    }
    Ok(if live.len() == 1 { live.pop() } else { None })
}

fn update(
    t: &mut Txn<'_, '_, Projections>,
    cause: Uuid,
    message_id: &str,
    msg: &Hl7MessageReceived,
    index: usize,
    order_id: &str,
    control: &str,
) -> Result<(), redb::Error> {
    let meta = scope(t);
    let Some(row) = orders::order(&mut t.tables, &meta, order_id)? else { return Ok(()) };
    if row.cancelled {
        return Ok(());
    }
    let changes = orders::changes(&row, msg, index);
    let cancelled = CANCEL_CONTROLS.contains(&control);
    if changes.is_empty() && !cancelled {
        return Ok(());
    }
    let updated = Hl7MessageUpdated {
        order_id: order_id.into(),
        hl7_message_id: message_id.into(),
        order_control: (!control.is_empty()).then(|| control.to_owned()),
        changes: changes.clone(),
        cancelled,
    };
    record(t, cause, "hl7_message", &row.hl7_message_id, Event::Hl7MessageUpdated(Box::new(updated)))?;
    if !row.matched_studies.is_empty() {
        update_matched(t, cause, message_id, &row, changes.clone(), cancelled)?;
    }
    let new_accession = changes.into_iter().find(|c| c.field == "accession_number").and_then(|c| c.new);
    if let Some(new) = new_accession {
        rematch(t, cause, message_id, &row, &new, cancelled)?;
    }
    Ok(())
}

/// The change of an order that was matched: `OrderUpdated` or `OrderCancelled`, and its case
/// reclassified when the patient class changed.
fn update_matched(
    t: &mut Txn<'_, '_, Projections>,
    cause: Uuid,
    message_id: &str,
    row: &OrderRow,
    changes: Vec<FieldChange>,
    cancelled: bool,
) -> Result<(), redb::Error> {
    let order_id = row.order_id.as_str();
    let new_class = changes.iter().find(|c| c.field == "patient_class").and_then(|c| c.new.clone());
    let event = if cancelled {
        Event::OrderCancelled(Box::new(OrderCancelled { order_id: order_id.into(), hl7_message_id: message_id.into() }))
    } else {
        Event::OrderUpdated(Box::new(OrderUpdated {
            order_id: order_id.into(),
            hl7_message_id: message_id.into(),
            changes,
        }))
    };
    record(t, cause, "order", order_id, event)?;
    if let (Some(case_id), Some(class), false) = (row.patient_case_id.as_deref(), new_class, cancelled) {
        let reason = format!("order {order_id} changed its patient class");
        classify(t, cause, case_id, &class, reason, message_id)?;
    }
    Ok(())
}

/// The order (`before`: its row before the change) now has accession number `new`: its pairs
/// with studies that do not have it are undone, and unless cancelled it meets the completed
/// studies that do.
fn rematch(
    t: &mut Txn<'_, '_, Projections>,
    cause: Uuid,
    message_id: &str,
    before: &OrderRow,
    new: &str,
    cancelled: bool,
) -> Result<(), redb::Error> {
    let meta = scope(t);
    let order_id = before.order_id.as_str();
    for study in &before.matched_studies {
        let accession = dicom::study(&mut t.tables, t.site, study)?.and_then(|s| s.accession_number);
        let key = (meta.tenant(), meta.hospital(), study.as_str(), order_id);
        let match_seq = t.tables.matches()?.get(key)?.map(|v| v.value());
        let Some(match_seq) = match_seq.filter(|_| accession.as_deref() != Some(new)) else { continue };
        let unmatched = StudyUnmatched {
            study_instance_uid: study.clone(),
            order_id: order_id.into(),
            hl7_message_id: before.hl7_message_id.clone(),
            accession_number: before.accession_number.clone(),
            new_accession_number: new.into(),
            reason: UNMATCHED_ACCESSION_CHANGED.into(),
            changed_by_hl7_message_id: message_id.into(),
            match_seq,
        };
        record(t, cause, "study", study, Event::StudyUnmatched(Box::new(unmatched)))?;
    }
    if cancelled {
        return Ok(());
    }
    let Some(order) = orders::order(&mut t.tables, &meta, order_id)? else { return Ok(()) };
    for study in orders::under(t.tables.studies_by_accession()?, &meta, new)? {
        pair(t, cause, &order, &study)?;
    }
    Ok(())
}

/// Appends `PatientCaseClassified` unless the case has that class already.
fn classify(
    t: &mut Txn<'_, '_, Projections>,
    cause: Uuid,
    case_id: &str,
    class: &str,
    reason: String,
    hl7_message_id: &str,
) -> Result<(), redb::Error> {
    let meta = scope(t);
    let old = cases::case(&mut t.tables, &meta, case_id)?.and_then(|c| c.patient_class);
    if old.as_deref() == Some(class) {
        return Ok(());
    }
    let classified = PatientCaseClassified {
        case_id: case_id.into(),
        old_class: old,
        new_class: class.into(),
        reason,
        hl7_message_id: hl7_message_id.into(),
    };
    record(t, cause, "patient_case", case_id, Event::PatientCaseClassified(Box::new(classified)))?;
    Ok(())
}

/// Decisions after a `StudyCompleted` (event `cause`) was appended.
pub(super) fn after_completion(
    t: &mut Txn<'_, '_, Projections>,
    cause: Uuid,
    c: &StudyCompleted,
    window: Duration,
) -> Result<(), redb::Error> {
    if c.revision == 1 {
        decide_case(t, cause, c, window)?;
    }
    let meta = scope(t);
    let Some(accession) = c.accession_number.as_deref().filter(|a| !a.is_empty()) else { return Ok(()) };
    for order_id in orders::under(t.tables.orders_by_accession()?, &meta, accession)? {
        match orders::order(&mut t.tables, &meta, &order_id)? {
            Some(order) if !order.cancelled => pair(t, cause, &order, &c.study_instance_uid)?,
            _ => {}
        }
    }
    Ok(())
}

fn decide_case(
    t: &mut Txn<'_, '_, Projections>,
    cause: Uuid,
    c: &StudyCompleted,
    window: Duration,
) -> Result<(), redb::Error> {
    let meta = scope(t);
    let mut ids = Vec::new();
    for id in c.patient_id.iter().chain(&c.other_patient_ids).filter(|id| !id.is_empty()) {
        let resolved = cases::resolve(&mut t.tables, &meta, id)?;
        if !ids.contains(&resolved) {
            ids.push(resolved);
        }
    }
    let now = t.recorded_at.as_microsecond();
    let window = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
    // The most recently created matching case (by its event's seq: times can be equal).
    let mut best: Option<(u64, String, String)> = None;
    for id in &ids {
        for case_id in orders::under(t.tables.cases_by_patient()?, &meta, id)? {
            let Some(case) = cases::case(&mut t.tables, &meta, &case_id)? else { continue };
            let recent = now.saturating_sub(case.created_at_us) <= window;
            let newer = best.as_ref().is_none_or(|(seq, _, _)| case.created_seq > *seq);
            if case.modality == c.modality && recent && newer {
                best = Some((case.created_seq, case_id, id.clone()));
            }
        }
    }
    let study = c.study_instance_uid.clone();
    match best {
        Some((_, case_id, via)) => {
            let event = PatientCaseConsolidated {
                case_id: case_id.clone(),
                study_instance_uid: study,
                via_patient_id: via,
                patient_ids: ids,
            };
            record(t, cause, "patient_case", &case_id, Event::PatientCaseConsolidated(Box::new(event)))?;
        }
        None if !ids.is_empty() => {
            let case_id = Uuid::now_v7().to_string();
            let event = PatientCaseCreated {
                case_id: case_id.clone(),
                study_instance_uid: study,
                patient_ids: ids,
                modality: c.modality.clone(),
            };
            record(t, cause, "patient_case", &case_id, Event::PatientCaseCreated(Box::new(event)))?;
        }
        // A study without any patient id cannot be grouped with anything.
        None => {}
    }
    Ok(())
}

/// Records the pair (order, study) unless it was recorded before.
fn pair(t: &mut Txn<'_, '_, Projections>, cause: Uuid, order: &OrderRow, study: &str) -> Result<(), redb::Error> {
    let meta = scope(t);
    if orders::is_pair(&mut t.tables, &meta, study, &order.order_id)? {
        return Ok(());
    }
    let case_id = cases::case_of_study(&mut t.tables, &meta, study)?;
    let mut patient_ids: Vec<String> = Vec::new();
    for id in &order.patient_ids {
        let resolved = cases::resolve(&mut t.tables, &meta, id)?;
        if !patient_ids.contains(&resolved) {
            patient_ids.push(resolved);
        }
    }
    let accession = order.accession_number.clone();
    let matched = StudyMatched {
        study_instance_uid: study.into(),
        order_id: order.order_id.clone(),
        hl7_message_id: order.hl7_message_id.clone(),
        accession_number: accession.clone(),
        matched_at: t.recorded_at,
    };
    record(t, cause, "study", study, Event::StudyMatched(Box::new(matched)))?;
    let message_matched = Hl7MessageMatched {
        hl7_message_id: order.hl7_message_id.clone(),
        order_id: order.order_id.clone(),
        study_instance_uid: study.into(),
        accession_number: accession.clone(),
    };
    record(t, cause, "hl7_message", &order.hl7_message_id, Event::Hl7MessageMatched(Box::new(message_matched)))?;
    let created = OrderCreated {
        order_id: order.order_id.clone(),
        patient_case_id: case_id.clone(),
        patient_ids,
        hl7_message_id: order.hl7_message_id.clone(),
        study_instance_uid: study.into(),
        accession_number: accession,
        modality: order.modality.clone(),
        procedure: order.procedure.clone(),
        requesting_physician: order.requesting_physician.clone(),
        clinical_info: order.clinical_info.clone(),
        patient_class: order.patient_class.clone(),
        order_status: order.order_status.clone(),
    };
    record(t, cause, "order", &order.order_id, Event::OrderCreated(Box::new(created)))?;
    if let (Some(case_id), Some(class)) = (case_id, order.patient_class.as_deref().filter(|c| !c.is_empty())) {
        let reason = format!("order {} matched study {study}", order.order_id);
        classify(t, cause, &case_id, class, reason, &order.hl7_message_id)?;
    }
    Ok(())
}

/// Tenant and hospital for projection reads (seq and event id are not meaningful here).
fn scope<'a>(t: &Txn<'a, '_, Projections>) -> Meta<'a> {
    Meta { site: t.site, seq: 0, event_id: Uuid::nil(), recorded_at: t.recorded_at }
}
