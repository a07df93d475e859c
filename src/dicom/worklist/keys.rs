//! The worklist's attributes: which the SCP matches on and returns, where each comes from in
//! an item, and a query read from an identifier.
//!
//! Every attribute of [`TOP`] and of [`STEP`] (inside the Scheduled Procedure Step Sequence)
//! can be matched on ([`super::matching`], by its VR) and is returned; those are the IHE
//! RAD-5 keys and the ones dcm4chee-arc fills from HL7. A key the request gives a value for
//! that is not here cannot be matched: it is answered zero-length and the matches are sent
//! with 0xFF01 (PS3.4 C.4.1.1.4). The two code sequences are returned with their code
//! value, scheme and meaning; any other sequence asked for is returned empty.

use dicom_core::header::Header;
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::matching::{Condition, Kind};
use crate::hl7::summary::{CodedValue, PersonName, Physician};
use crate::projections::views::WorklistQuery;
use crate::projections::worklist::WorklistItem;

/// One attribute: tag, VR, and its value in an item.
#[derive(Debug)]
pub struct Key {
    pub tag: Tag,
    pub vr: VR,
    pub value: fn(&WorklistItem) -> Option<String>,
}

const fn key(tag: Tag, vr: VR, value: fn(&WorklistItem) -> Option<String>) -> Key {
    Key { tag, vr, value }
}

/// A DICOM PN from its parts (family^given^middle^prefix^suffix), trailing empties left out.
pub fn person_name(name: &PersonName) -> Option<String> {
    let parts = [&name.family, &name.given, &name.middle, &name.prefix, &name.suffix];
    let text = parts.iter().map(|p| p.as_deref().unwrap_or("")).collect::<Vec<_>>().join("^");
    let text = text.trim_end_matches('^').to_owned();
    (!text.is_empty()).then_some(text)
}

fn physician(p: &Physician) -> Option<String> {
    person_name(&PersonName { family: p.family.clone(), given: p.given.clone(), ..PersonName::default() })
}

/// Attributes of the item itself.
pub const TOP: &[Key] = &[
    key(tags::PATIENT_NAME, VR::PN, |i| i.patient_name.as_ref().and_then(person_name)),
    key(tags::PATIENT_ID, VR::LO, |i| i.patient_id.clone()),
    key(tags::ISSUER_OF_PATIENT_ID, VR::LO, |i| i.issuer_of_patient_id.clone()),
    key(tags::PATIENT_BIRTH_DATE, VR::DA, |i| i.birth_date.clone()),
    key(tags::PATIENT_SEX, VR::CS, |i| i.sex.clone()),
    key(tags::ACCESSION_NUMBER, VR::SH, |i| Some(i.accession_number.clone())),
    key(tags::REQUESTED_PROCEDURE_ID, VR::SH, |i| i.requested_procedure_id.clone()),
    key(tags::REQUESTED_PROCEDURE_DESCRIPTION, VR::LO, |i| i.requested_procedure.as_ref().and_then(|p| p.text.clone())),
    key(tags::STUDY_INSTANCE_UID, VR::UI, |i| Some(i.study_instance_uid.clone())),
    key(tags::REQUESTING_PHYSICIAN, VR::PN, |i| i.requesting_physician.as_ref().and_then(physician)),
    key(tags::PLACER_ORDER_NUMBER_IMAGING_SERVICE_REQUEST, VR::LO, |i| i.placer_order_number.clone()),
    key(tags::FILLER_ORDER_NUMBER_IMAGING_SERVICE_REQUEST, VR::LO, |i| i.filler_order_number.clone()),
];

/// Attributes of the Scheduled Procedure Step Sequence's item.
pub const STEP: &[Key] = &[
    key(tags::MODALITY, VR::CS, |i| i.modality.clone()),
    key(tags::SCHEDULED_STATION_AE_TITLE, VR::AE, |i| i.station_ae.clone()),
    key(tags::SCHEDULED_STATION_NAME, VR::SH, |i| i.station_name.clone()),
    key(tags::SCHEDULED_PROCEDURE_STEP_START_DATE, VR::DA, |i| i.start_date.clone()),
    key(tags::SCHEDULED_PROCEDURE_STEP_START_TIME, VR::TM, |i| i.start_time.clone()),
    key(tags::SCHEDULED_PERFORMING_PHYSICIAN_NAME, VR::PN, |i| i.performing_physician.as_ref().and_then(person_name)),
    key(tags::SCHEDULED_PROCEDURE_STEP_DESCRIPTION, VR::LO, |i| i.step_description.clone()),
    key(tags::SCHEDULED_PROCEDURE_STEP_ID, VR::SH, |i| i.step_id.clone()),
    key(tags::SCHEDULED_PROCEDURE_STEP_STATUS, VR::CS, |i| Some(i.status.clone())),
];

/// The code sequences returned with their codes.
fn code_of(tag: Tag, item: &WorklistItem) -> Option<Option<&CodedValue>> {
    match tag {
        tags::REQUESTED_PROCEDURE_CODE_SEQUENCE => Some(item.requested_procedure.as_ref()),
        tags::SCHEDULED_PROTOCOL_CODE_SEQUENCE => Some(item.protocol.as_ref()),
        _ => None,
    }
}

fn kind(vr: VR) -> Kind {
    match vr {
        VR::PN => Kind::PersonName,
        VR::DA => Kind::Date,
        VR::TM => Kind::Time,
        VR::UI => Kind::Uid,
        _ => Kind::Text,
    }
}

/// Why a request cannot be answered (0xA900).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// A query: the conditions of an identifier, and the identifier (what to return).
#[derive(Debug)]
pub struct Query {
    top: Vec<(&'static Key, Condition)>,
    step: Vec<(&'static Key, Condition)>,
    /// A key with a value the SCP cannot match on was given (answers are 0xFF01).
    pub unsupported: bool,
    /// The requester reads UTF-8 (it listed ISO_IR 192).
    pub utf8: bool,
    request: InMemDicomObject,
}

fn text(element: &DataElement<InMemDicomObject>) -> String {
    element.to_str().map(|s| s.into_owned()).unwrap_or_default()
}

impl Query {
    pub fn new(request: InMemDicomObject) -> Result<Query, QueryError> {
        let (mut top, mut step, mut unsupported) = (Vec::new(), Vec::new(), false);
        for element in request.iter() {
            let tag = element.tag();
            if tag == tags::SPECIFIC_CHARACTER_SET
                || element.vr() == VR::SQ && tag != tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE
            {
                continue;
            }
            if tag == tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE {
                let items = element.items().unwrap_or_default();
                if items.len() > 1 {
                    return Err(QueryError("Scheduled Procedure Step Sequence with more than one item".into()));
                }
                for inner in items.iter().flat_map(|i| i.iter()) {
                    unsupported |= condition(inner, STEP, &mut step);
                }
                continue;
            }
            unsupported |= condition(element, TOP, &mut top);
        }
        let utf8 = request
            .element_opt(tags::SPECIFIC_CHARACTER_SET)
            .ok()
            .flatten()
            .is_some_and(|e| text(e).split('\\').any(|t| t.trim() == "ISO_IR 192"));
        Ok(Query { top, step, unsupported, utf8, request })
    }

    /// A query that leaves the station AE title open gets `ae`'s items only.
    pub fn restrict_station(&mut self, ae: &str) {
        if !self.step.iter().any(|(k, _)| k.tag == tags::SCHEDULED_STATION_AE_TITLE) {
            let key = STEP.iter().find(|k| k.tag == tags::SCHEDULED_STATION_AE_TITLE).expect("listed");
            self.step.push((key, Condition::Single(ae.to_owned())));
        }
    }

    /// What an index can narrow the candidates to (exact values only).
    pub fn hints(&self, include_completed: bool) -> WorklistQuery {
        let single = |list: &[(&Key, Condition)], tag: Tag| {
            list.iter().find(|(k, _)| k.tag == tag).and_then(|(_, c)| match c {
                Condition::Single(v) => Some(v.clone()),
                _ => None,
            })
        };
        let (date_from, date_to) =
            match self.step.iter().find(|(k, _)| k.tag == tags::SCHEDULED_PROCEDURE_STEP_START_DATE) {
                Some((_, Condition::Single(d))) => (Some(d.clone()), Some(d.clone())),
                Some((_, Condition::Range(a, b))) => (a.clone(), b.clone()),
                _ => (None, None),
            };
        WorklistQuery {
            accession: single(&self.top, tags::ACCESSION_NUMBER),
            patient_id: single(&self.top, tags::PATIENT_ID),
            date_from,
            date_to,
            modality: single(&self.step, tags::MODALITY),
            station_ae: single(&self.step, tags::SCHEDULED_STATION_AE_TITLE),
            name_prefix: self.name_prefix(),
            include_completed,
        }
    }

    /// What every matching name begins with (upper case): a single value's family name, or a
    /// wildcard pattern's text before its first wildcard.
    fn name_prefix(&self) -> Option<String> {
        let (_, condition) = self.top.iter().find(|(k, _)| k.tag == tags::PATIENT_NAME)?;
        let prefix = match condition {
            Condition::Single(name) => name.split('^').next().unwrap_or(""),
            Condition::Wildcard(pattern) => pattern.split(['*', '?']).next().unwrap_or(""),
            _ => "",
        };
        (!prefix.is_empty()).then(|| prefix.to_uppercase())
    }

    /// Whether `item` meets every condition (SPS date and time ranges together as one
    /// date-time range).
    pub fn matches(&self, item: &WorklistItem) -> bool {
        let ok = |(k, c): &(&Key, Condition)| c.matches(kind(k.vr), (k.value)(item).as_deref());
        let date = self.step.iter().find(|(k, _)| k.tag == tags::SCHEDULED_PROCEDURE_STEP_START_DATE);
        let time = self.step.iter().find(|(k, _)| k.tag == tags::SCHEDULED_PROCEDURE_STEP_START_TIME);
        if let (Some((_, Condition::Range(df, dt))), Some((_, Condition::Range(tf, tt)))) = (date, time) {
            let rest = self.step.iter().filter(|(k, _)| {
                k.tag != tags::SCHEDULED_PROCEDURE_STEP_START_DATE && k.tag != tags::SCHEDULED_PROCEDURE_STEP_START_TIME
            });
            return self.top.iter().all(ok) && rest.into_iter().all(ok) && in_datetime_range(item, (df, tf), (dt, tt));
        }
        self.top.iter().all(ok) && self.step.iter().all(ok)
    }

    /// The answer for `item`: every requested attribute, zero-length when unknown.
    pub fn answer(&self, item: &WorklistItem) -> InMemDicomObject {
        let mut out = InMemDicomObject::new_empty();
        for element in self.request.iter() {
            let tag = element.tag();
            if tag == tags::SPECIFIC_CHARACTER_SET {
                continue;
            }
            if tag == tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE {
                let asked = element.items().and_then(|i| i.first());
                let mut inner = InMemDicomObject::new_empty();
                for e in asked.into_iter().flat_map(|a| a.iter()) {
                    inner.put(returned(e, STEP, item));
                }
                out.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(vec![inner])));
                continue;
            }
            out.put(returned(element, TOP, item));
        }
        out
    }
}

/// Adds the condition of `element` if it states one; true when it states one on an
/// attribute the SCP cannot match on.
fn condition(
    element: &DataElement<InMemDicomObject>,
    keys: &'static [Key],
    out: &mut Vec<(&'static Key, Condition)>,
) -> bool {
    if element.vr() == VR::SQ {
        return false;
    }
    let value = text(element);
    match keys.iter().find(|k| k.tag == element.tag()) {
        Some(k) => {
            let c = Condition::parse(&value, kind(k.vr));
            if c != Condition::Universal {
                out.push((k, c));
            }
            false
        }
        None => !value.trim_matches([' ', '\0']).is_empty(),
    }
}

/// The answer's element for a requested one.
fn returned(
    element: &DataElement<InMemDicomObject>,
    keys: &[Key],
    item: &WorklistItem,
) -> DataElement<InMemDicomObject> {
    let tag = element.tag();
    if let Some(code) = code_of(tag, item) {
        let asked = element.items().and_then(|i| i.first());
        let items = code.map(|c| vec![code_item(c, asked)]).unwrap_or_default();
        return DataElement::new(tag, VR::SQ, DataSetSequence::from(items));
    }
    if element.vr() == VR::SQ {
        return DataElement::new(tag, VR::SQ, DataSetSequence::<InMemDicomObject>::empty());
    }
    match keys.iter().find(|k| k.tag == tag).and_then(|k| (k.value)(item).map(|v| (k.vr, v))) {
        Some((vr, value)) => DataElement::new(tag, vr, PrimitiveValue::from(value)),
        None => DataElement::empty(tag, element.vr()),
    }
}

/// A code item: the code attributes asked for (all three when the request's item is empty).
fn code_item(code: &CodedValue, asked: Option<&InMemDicomObject>) -> InMemDicomObject {
    let parts = [
        (tags::CODE_VALUE, VR::SH, &code.code),
        (tags::CODING_SCHEME_DESIGNATOR, VR::SH, &code.coding_system),
        (tags::CODE_MEANING, VR::LO, &code.text),
    ];
    let wanted = |tag| asked.is_none_or(|a| a.iter().next().is_none() || a.element_opt(tag).ok().flatten().is_some());
    let mut out = InMemDicomObject::new_empty();
    for (tag, vr, value) in parts.into_iter().filter(|(tag, _, _)| wanted(*tag)) {
        out.put(match value {
            Some(v) => DataElement::new(tag, vr, PrimitiveValue::from(v.clone())),
            None => DataElement::empty(tag, vr),
        });
    }
    out
}

/// Combined date-time range matching (PS3.4 C.2.2.2.5.1).
fn in_datetime_range(
    item: &WorklistItem,
    from: (&Option<String>, &Option<String>),
    to: (&Option<String>, &Option<String>),
) -> bool {
    let Some(date) = item.start_date.as_deref() else { return false };
    let time: String = item.start_time.as_deref().unwrap_or("").chars().filter(|c| *c != ':').collect();
    let at = format!("{date}{}", pad(&time, '0'));
    let bound = |d: &Option<String>, t: &Option<String>, fill: char| {
        d.as_ref().map(|d| format!("{d}{}", pad(t.as_deref().unwrap_or(""), fill)))
    };
    bound(from.0, from.1, '0').is_none_or(|l| at >= l) && bound(to.0, to.1, '9').is_none_or(|u| at <= u)
}

/// A time to six digits (HHMMSS), filled with `fill`; a fraction is kept.
fn pad(time: &str, fill: char) -> String {
    let mut out = time.to_owned();
    while out.len() < 6 {
        out.push(fill);
    }
    out
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
