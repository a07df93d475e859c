//! The modality worklist: one item per scheduled procedure step of each live imaging order,
//! what a modality's C-FIND (Modality Worklist Information Model – FIND) and
//! `GET /api/v1/worklist` answer from.
//!
//! # Rules
//!
//! * **Items.** An order an ORM^O01 or OMI^O23 places (the [`super::orders`] rule) becomes one
//!   item per step ([`crate::hl7::steps`]: one per IPC segment, else one from the OBR). The
//!   item id is `<order id>:<step index>`, so an order's items are one key range. Patient,
//!   accession and order numbers come from the stored summary, the step's fields from the
//!   message's bytes read again (the mapping table is in [`crate::hl7::steps`]).
//! * **Status.** ORC-5 `CM` is COMPLETED, `IP` STARTED, anything else SCHEDULED. An order
//!   change (`HL7MessageUpdated`, the writer's decision) changes its items: ORC-1 `CA`/`DC`/`OC`
//!   removes them, `XO`/`SC` set the changed accession, status, modality, procedure code and
//!   start. A study matched with the order (`StudyMatched`: it was completed with the order's
//!   accession) makes its items COMPLETED. Completed items stay in the table; the readers
//!   hide them unless asked (`dicom.worklist_show_completed`).
//! * **Patients.** ADT^A08 and ADT^A31 update the name, birth date and sex of the open items
//!   of the patient (PID-3); ADT^A40 moves the open items of the MRG-1 ids to the surviving
//!   patient (PID-3 and its demographics). These follow the message itself, like the order
//!   rule: the projection is a function of the events in order.
//! * **Study Instance UID.** IPC-3 or ZDS-1 when the order brings one. Otherwise one is
//!   *derived*: `2.25.<n>`, where n is a UUID (version 8 bits set) made of the SHA-256 of the
//!   `HL7MessageReceived` event's id and the group index (PS3.5 B.2: a UID from a UUID needs
//!   no registered root). Deriving rather than recording it in the event keeps the event
//!   catalog as it is (no new field, older events get UIDs too) and is deterministic: the
//!   event id is part of the log and replicated to the hub, so a rebuild, another edge's
//!   `verify` or the hub compute the same UID. All steps of one requested procedure share
//!   it, so the images of every step land in one study.
//! * **Indexes.** `worklist_by_date` (SPS start date, modality), `worklist_by_patient`,
//!   `worklist_by_accession`, `worklist_by_name` (the name as DICOM PN, upper case): a query reads a key range of one of them, then the rows it
//!   names. Every change rewrites an item's index entries (remove old, insert new).

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Tables;
use super::orders::{self, CANCEL_CONTROLS};
use crate::events::{Hl7MessageReceived, Hl7MessageUpdated, StudyMatched};
use crate::hl7::steps::{Step, scheduled_steps};
use crate::hl7::summary::{CodedValue, PersonName, Physician};
use crate::hl7::{Charset, Summary};
use crate::log::{Meta, encode_row, read_row};

pub const SCHEDULED: &str = "SCHEDULED";
pub const STARTED: &str = "STARTED";
pub const COMPLETED: &str = "COMPLETED";

/// The value of a `worklist` row: one scheduled procedure step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorklistItem {
    /// `<order id>:<step index>`.
    pub item_id: String,
    pub order_id: String,
    /// Seq of the `HL7MessageReceived` that placed the order.
    pub seq: u64,
    /// When that message was recorded (µs since the epoch).
    pub received_at_us: i64,
    /// SCHEDULED, STARTED or COMPLETED (DICOM SPS Status).
    pub status: String,
    pub patient_id: Option<String>,
    /// PID-3 CX.4 of the patient id: DICOM Issuer of Patient ID.
    pub issuer_of_patient_id: Option<String>,
    pub patient_name: Option<PersonName>,
    /// YYYYMMDD.
    pub birth_date: Option<String>,
    /// M, F or O (HL7 U, A, N have no DICOM value and are left out).
    pub sex: Option<String>,
    pub accession_number: String,
    pub placer_order_number: Option<String>,
    pub filler_order_number: Option<String>,
    pub requested_procedure_id: Option<String>,
    pub requested_procedure: Option<CodedValue>,
    pub requesting_physician: Option<Physician>,
    pub study_instance_uid: String,
    /// The UID was derived (the order brought none).
    pub study_instance_uid_derived: bool,
    pub step_id: Option<String>,
    pub modality: Option<String>,
    pub station_ae: Option<String>,
    pub station_name: Option<String>,
    /// SPS start, YYYYMMDD and HHMMSS[.f…].
    pub start_date: Option<String>,
    pub start_time: Option<String>,
    pub step_description: Option<String>,
    pub protocol: Option<CodedValue>,
    pub performing_physician: Option<PersonName>,
    /// HL7 table 0211 name of the charset the order was read with.
    pub charset: String,
}

impl WorklistItem {
    pub fn is_open(&self) -> bool {
        self.status != COMPLETED
    }
}

/// The DICOM SPS Status an ORC-5 order status means.
pub fn status_of(order_status: Option<&str>) -> &'static str {
    match order_status.map(str::to_ascii_uppercase).as_deref() {
        Some("CM") => COMPLETED,
        Some("IP") => STARTED,
        _ => SCHEDULED,
    }
}

/// HL7 DTM `YYYYMMDD[HHMM[SS[.S…]]][+/-ZZZZ]` as DICOM (date, time); `None` parts when absent
/// or not digits.
pub fn split_datetime(dtm: &str) -> (Option<String>, Option<String>) {
    let dtm = dtm.split(['+', '-']).next().unwrap_or_default();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let date = dtm.get(..8).filter(|d| d.bytes().all(|b| b.is_ascii_digit())).map(str::to_owned);
    let time = dtm.get(8..).filter(|t| date.is_some() && digits(t)).map(str::to_owned);
    (date, time)
}

/// The derived Study Instance UID of group `index` of the message event `event_id`.
pub fn derived_study_uid(event_id: uuid::Uuid, index: usize) -> String {
    let mut hash = Sha256::new();
    hash.update(b"zenedge worklist study uid\0");
    hash.update(event_id.as_bytes());
    hash.update((index as u64).to_be_bytes());
    let mut bytes: [u8; 16] = hash.finalize()[..16].try_into().expect("16 of 32 bytes");
    bytes[6] = (bytes[6] & 0x0f) | 0x80; // version 8 (custom)
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    format!("2.25.{}", u128::from_be_bytes(bytes))
}

fn is(summary: &Summary, code: &str, triggers: &[&str]) -> bool {
    summary.message_code.eq_ignore_ascii_case(code)
        && triggers.iter().any(|t| summary.trigger_event.eq_ignore_ascii_case(t))
}

/// `HL7MessageReceived`: the items of the orders it places, or the patient changes of an ADT.
pub(crate) fn apply_received(t: &mut Tables<'_>, m: &Meta<'_>, msg: &Hl7MessageReceived) -> Result<(), redb::Error> {
    let s = &msg.summary;
    if is(s, "ORM", &["O01"]) || is(s, "OMI", &["O23"]) {
        return place(t, m, msg);
    }
    if is(s, "ADT", &["A08", "A31"]) {
        return update_patient(t, m, s);
    }
    if is(s, "ADT", &["A40"]) {
        return merge_patients(t, m, s);
    }
    Ok(())
}

/// The items of every order the message placed (the orders projection applied it first).
fn place(t: &mut Tables<'_>, m: &Meta<'_>, msg: &Hl7MessageReceived) -> Result<(), redb::Error> {
    let message_id = m.event_id.to_string();
    let mut steps: Option<Vec<Vec<Step>>> = None;
    for (index, group) in msg.summary.orders.iter().enumerate() {
        let order_id = orders::order_id(&message_id, index);
        let Some(order) = orders::order(t, m, &order_id)?.filter(|o| o.seq == m.seq) else { continue };
        let charset = msg.summary.charset.parse().unwrap_or(Charset::Iso8859_1);
        let steps = steps.get_or_insert_with(|| scheduled_steps(&msg.raw, charset));
        let group_steps = steps.get(index).cloned().unwrap_or_else(|| vec![Step::default()]);
        let patient = msg.summary.patient.as_ref();
        for (n, step) in group_steps.into_iter().enumerate() {
            let (start_date, start_time) =
                step.start.as_deref().or(group.scheduled_datetime.as_deref()).map(split_datetime).unwrap_or_default();
            let (uid, derived) = match step.study_instance_uid.clone().or_else(|| group.study_instance_uid.clone()) {
                Some(uid) if !uid.is_empty() => (uid, false),
                _ => (derived_study_uid(m.event_id, index), true),
            };
            let item = WorklistItem {
                item_id: format!("{order_id}:{n}"),
                order_id: order_id.clone(),
                seq: m.seq,
                received_at_us: m.recorded_at.as_microsecond(),
                status: status_of(group.order_status.as_deref()).to_owned(),
                patient_id: patient.and_then(|p| p.id.clone()),
                issuer_of_patient_id: patient.and_then(issuer),
                patient_name: patient.and_then(|p| p.name.clone()),
                birth_date: patient.and_then(|p| p.birth_date.as_deref()).and_then(|d| split_datetime(d).0),
                sex: patient.and_then(|p| p.sex.as_deref()).and_then(dicom_sex),
                accession_number: order.accession_number.clone(),
                placer_order_number: group.placer_order_number.clone(),
                filler_order_number: group.filler_order_number.clone(),
                requested_procedure_id: step.requested_procedure_id.or_else(|| group.requested_procedure_id.clone()),
                requested_procedure: step.procedure.or_else(|| group.procedure.clone()),
                requesting_physician: group.requesting_physician.clone(),
                study_instance_uid: uid,
                study_instance_uid_derived: derived,
                step_id: step.step_id.or_else(|| group.scheduled_procedure_step_id.clone()),
                modality: step.modality.or_else(|| group.modality.clone()),
                station_ae: step.station_ae,
                station_name: step.station_name,
                start_date,
                start_time,
                step_description: step.step_description,
                protocol: step.protocol,
                performing_physician: step.performing_physician,
                charset: msg.summary.charset.clone(),
            };
            put(t, m, &item)?;
            index_item(t, m, &item, true)?;
        }
    }
    Ok(())
}

/// The assigning authority of the patient's primary id (PID-3).
fn issuer(p: &crate::hl7::Patient) -> Option<String> {
    let id = p.id.as_deref()?;
    p.identifiers.iter().find(|i| i.id == id && i.field == "PID-3").and_then(|i| i.assigning_authority.clone())
}

/// The `worklist_by_name` key of a name: family^given^middle^prefix^suffix (trailing empty
/// parts left out), upper case.
pub fn name_key(name: &PersonName) -> String {
    let parts = [&name.family, &name.given, &name.middle, &name.prefix, &name.suffix];
    let text = parts.iter().map(|p| p.as_deref().unwrap_or("")).collect::<Vec<_>>().join("^");
    text.trim_end_matches('^').to_uppercase()
}

fn dicom_sex(sex: &str) -> Option<String> {
    let sex = sex.to_ascii_uppercase();
    matches!(sex.as_str(), "M" | "F" | "O").then_some(sex)
}

/// `HL7MessageUpdated`: a cancel removes the order's items, a change changes them.
pub(crate) fn apply_updated(t: &mut Tables<'_>, m: &Meta<'_>, u: &Hl7MessageUpdated) -> Result<(), redb::Error> {
    let control = u.order_control.as_deref().unwrap_or("").to_ascii_uppercase();
    let cancelled = u.cancelled || CANCEL_CONTROLS.contains(&control.as_str());
    for mut item in items_of_order(t, m, &u.order_id)? {
        index_item(t, m, &item, false)?;
        if cancelled {
            t.worklist()?.remove((m.tenant(), m.hospital(), item.item_id.as_str()))?;
            continue;
        }
        for change in &u.changes {
            let new = change.new.clone().filter(|v| !v.is_empty());
            match change.field.as_str() {
                "accession_number" => item.accession_number = new.unwrap_or_default(),
                "order_status" => item.status = status_of(new.as_deref()).to_owned(),
                "modality" => item.modality = new,
                "scheduled_datetime" => {
                    (item.start_date, item.start_time) = new.as_deref().map(split_datetime).unwrap_or_default();
                }
                "procedure" => {
                    item.requested_procedure = new.map(|code| CodedValue { code: Some(code), ..CodedValue::default() })
                }
                _ => {}
            }
        }
        put(t, m, &item)?;
        index_item(t, m, &item, true)?;
    }
    Ok(())
}

/// `StudyMatched`: the order's study was done; its items are COMPLETED.
pub(crate) fn apply_matched(t: &mut Tables<'_>, m: &Meta<'_>, s: &StudyMatched) -> Result<(), redb::Error> {
    for mut item in items_of_order(t, m, &s.order_id)? {
        if item.status != COMPLETED {
            item.status = COMPLETED.to_owned();
            put(t, m, &item)?;
        }
    }
    Ok(())
}

/// ADT^A08/A31: new demographics for the open items of the patient.
fn update_patient(t: &mut Tables<'_>, m: &Meta<'_>, s: &Summary) -> Result<(), redb::Error> {
    let Some(patient) = s.patient.as_ref() else { return Ok(()) };
    let Some(id) = patient.id.as_deref().filter(|id| !id.is_empty()) else { return Ok(()) };
    for mut item in items_of_patient(t, m, id)?.into_iter().filter(WorklistItem::is_open) {
        index_item(t, m, &item, false)?;
        demographics(&mut item, patient);
        put(t, m, &item)?;
        index_item(t, m, &item, true)?;
    }
    Ok(())
}

/// Name, birth date and sex as the message sends them: absent keeps, the null `""` clears.
fn demographics(item: &mut WorklistItem, p: &crate::hl7::Patient) {
    if let Some(name) = &p.name {
        item.patient_name = Some(name.clone()).filter(|n| *n != PersonName::default());
    }
    if let Some(birth) = &p.birth_date {
        item.birth_date = split_datetime(birth).0;
    }
    if let Some(sex) = &p.sex {
        item.sex = dicom_sex(sex);
    }
}

/// ADT^A40: the open items of every prior id (MRG-1) belong to the surviving patient (PID).
fn merge_patients(t: &mut Tables<'_>, m: &Meta<'_>, s: &Summary) -> Result<(), redb::Error> {
    let (Some(patient), Some(merge)) = (s.patient.as_ref(), s.merge.as_ref()) else { return Ok(()) };
    let Some(surviving) = patient.id.as_deref().filter(|id| !id.is_empty()) else { return Ok(()) };
    for prior in merge.prior_identifiers.iter().map(|i| i.id.as_str()).filter(|id| *id != surviving) {
        for mut item in items_of_patient(t, m, prior)?.into_iter().filter(WorklistItem::is_open) {
            index_item(t, m, &item, false)?;
            item.patient_id = Some(surviving.to_owned());
            item.issuer_of_patient_id = issuer(patient);
            demographics(&mut item, patient);
            put(t, m, &item)?;
            index_item(t, m, &item, true)?;
        }
    }
    Ok(())
}

/// The items of one order (one key range: item ids are `<order id>:<n>`).
fn items_of_order(t: &mut Tables<'_>, m: &Meta<'_>, order_id: &str) -> Result<Vec<WorklistItem>, redb::Error> {
    let (from, to) = (format!("{order_id}:"), format!("{order_id};"));
    let mut out = Vec::new();
    for row in
        t.worklist()?.range((m.tenant(), m.hospital(), from.as_str())..(m.tenant(), m.hospital(), to.as_str()))?
    {
        let (_, v) = row?;
        out.push(read_row("worklist", v.value())?);
    }
    Ok(out)
}

fn items_of_patient(t: &mut Tables<'_>, m: &Meta<'_>, patient_id: &str) -> Result<Vec<WorklistItem>, redb::Error> {
    let ids = orders::under(t.worklist_by_patient()?, m, patient_id)?;
    let mut out = Vec::new();
    for id in ids {
        if let Some(v) = t.worklist()?.get((m.tenant(), m.hospital(), id.as_str()))? {
            out.push(read_row("worklist", v.value())?);
        }
    }
    Ok(out)
}

fn put(t: &mut Tables<'_>, m: &Meta<'_>, item: &WorklistItem) -> Result<(), redb::Error> {
    let bytes = encode_row("worklist", item)?;
    t.worklist()?.insert((m.tenant(), m.hospital(), item.item_id.as_str()), bytes.as_slice())?;
    Ok(())
}

/// Inserts (or removes) the item's entries in the three indexes.
fn index_item(t: &mut Tables<'_>, m: &Meta<'_>, item: &WorklistItem, insert: bool) -> Result<(), redb::Error> {
    let (tenant, hospital, id) = (m.tenant(), m.hospital(), item.item_id.as_str());
    let date = item.start_date.as_deref().unwrap_or("");
    let modality = item.modality.as_deref().unwrap_or("");
    let by_date = (tenant, hospital, date, modality, id);
    let by_accession = (tenant, hospital, item.accession_number.as_str(), id);
    let by_patient = item.patient_id.as_deref().map(|p| (tenant, hospital, p, id));
    let name = item.patient_name.as_ref().map(name_key);
    let by_name = name.as_deref().map(|n| (tenant, hospital, n, id));
    if let Some(key) = by_name {
        if insert {
            t.worklist_by_name()?.insert(key, ())?;
        } else {
            t.worklist_by_name()?.remove(key)?;
        }
    }
    if insert {
        t.worklist_by_date()?.insert(by_date, ())?;
        t.worklist_by_accession()?.insert(by_accession, ())?;
        if let Some(key) = by_patient {
            t.worklist_by_patient()?.insert(key, ())?;
        }
    } else {
        t.worklist_by_date()?.remove(by_date)?;
        t.worklist_by_accession()?.remove(by_accession)?;
        if let Some(key) = by_patient {
            t.worklist_by_patient()?.remove(key)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "worklist_tests.rs"]
mod tests;
