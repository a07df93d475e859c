//! Scheduled procedure steps: what a modality worklist item needs of an order group beyond
//! the stored [`super::Summary`], read again from the message's bytes.
//!
//! An imaging order (ORM^O01, OMI^O23) asks for one requested procedure, done in one or
//! more scheduled procedure steps. OMI^O23 names each step in its own IPC segment; ORM^O01
//! has no IPC and makes one step of its OBR. The fields follow dcm4chee-arc's HL7 → MWL
//! mapping (IHE RAD TF-2 Table 4.4-7/-8 and the OMI^O23 IPC segment):
//!
//! | DICOM | HL7, first non-empty |
//! | --- | --- |
//! | Requested Procedure ID | IPC-2, OBR-19 |
//! | Study Instance UID | IPC-3, ZDS-1 |
//! | Scheduled Procedure Step ID | IPC-4, OBR-20 |
//! | Modality | IPC-5, OBR-24 |
//! | Scheduled Protocol Code Sequence | IPC-6 |
//! | Scheduled Station Name | IPC-7 |
//! | Scheduled Station AE Title | IPC-9 |
//! | SPS Start Date/Time | TQ1-7, ORC-7.4, OBR-27.4, OBR-36 |
//! | Requested Procedure Code Sequence, Description | OBR-44, OBR-4 |
//! | SPS Description | IPC-6 text, else the procedure's text |
//! | Scheduled Performing Physician's Name | OBR-34 (NDL: the CNN's family & given) |
//!
//! Groups are the same as the summary's ([`super::orders`]), so group `i` here is order `i`
//! of [`super::Summary::orders`]. Reading again costs one parse of an order message; the
//! alternative, copying these fields into the summary, would have left every order received
//! before this existed without them.

use super::decode::{declared_in, decode_message};
use super::orders::{Group, coded_value, groups};
use super::parse::{Message, Segment};
use super::summary::{CodedValue, PersonName};
use super::{Charset, Separators, skip_preamble};

/// One scheduled procedure step of an order group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    pub requested_procedure_id: Option<String>,
    pub study_instance_uid: Option<String>,
    pub step_id: Option<String>,
    pub modality: Option<String>,
    pub protocol: Option<CodedValue>,
    pub station_name: Option<String>,
    pub station_ae: Option<String>,
    /// As given (HL7 DTM, e.g. `202612150930`).
    pub start: Option<String>,
    pub procedure: Option<CodedValue>,
    pub step_description: Option<String>,
    pub performing_physician: Option<PersonName>,
}

/// The steps of every order group of `raw`, in group order: one per IPC segment, or one
/// from the OBR when the group has none. `charset` is the one the message was read with
/// (the summary's), used when MSH-18 does not decode the bytes, as on intake. Empty when the
/// bytes no longer parse (they did when the message was accepted).
pub fn scheduled_steps(raw: &[u8], charset: Charset) -> Vec<Vec<Step>> {
    let raw = skip_preamble(raw);
    let Ok(seps) = Separators::from_msh(raw) else { return Vec::new() };
    let decoded = decode_message(raw, declared_in(raw, &seps), charset);
    let Ok(message) = Message::parse(&decoded.text, decoded.charset) else { return Vec::new() };
    let all = message.segments();
    groups(all).iter().map(|group| group_steps(group, all)).collect()
}

/// A value with the explicit null and empty text left out.
fn some(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn group_steps(group: &Group, all: &[Segment<'_>]) -> Vec<Step> {
    let orc = group.first(all, "ORC");
    let obr = group.first(all, "OBR");
    let get = |segment: Option<&Segment<'_>>, field: usize, component: usize| {
        some(segment.and_then(|s| s.field(field).component(component).text()))
    };
    let tq_start = |segment: Option<&Segment<'_>>, field: usize| {
        some(segment.and_then(|s| s.field(field).component(4).subcomponent(1).text()))
    };
    let procedure =
        obr.and_then(|s| coded_value(s.field(44).repetition(1)).or_else(|| coded_value(s.field(4).repetition(1))));
    let base = Step {
        requested_procedure_id: get(obr, 19, 1),
        study_instance_uid: get(group.first(all, "ZDS"), 1, 1),
        step_id: get(obr, 20, 1),
        modality: get(obr, 24, 1),
        start: get(group.first(all, "TQ1"), 7, 1)
            .or_else(|| tq_start(orc, 7))
            .or_else(|| tq_start(obr, 27))
            .or_else(|| get(obr, 36, 1)),
        step_description: procedure.as_ref().and_then(|p| p.text.clone()),
        procedure,
        performing_physician: obr.and_then(|s| {
            let cnn = s.field(34).repetition(1).component(1);
            let name = PersonName {
                family: some(cnn.subcomponent(2).text()),
                given: some(cnn.subcomponent(3).text()),
                ..PersonName::default()
            };
            (name != PersonName::default()).then_some(name)
        }),
        ..Step::default()
    };
    let ipcs: Vec<&Segment<'_>> = group.segments(all).filter(|s| s.name() == "IPC").collect();
    if ipcs.is_empty() {
        return vec![base];
    }
    ipcs.into_iter()
        .map(|ipc| {
            let ipc = Some(ipc);
            let protocol = ipc.and_then(|s| coded_value(s.field(6).repetition(1)));
            Step {
                requested_procedure_id: get(ipc, 2, 1).or_else(|| base.requested_procedure_id.clone()),
                study_instance_uid: get(ipc, 3, 1).or_else(|| base.study_instance_uid.clone()),
                step_id: get(ipc, 4, 1).or_else(|| base.step_id.clone()),
                modality: get(ipc, 5, 1).or_else(|| base.modality.clone()),
                step_description: protocol
                    .as_ref()
                    .and_then(|p| p.text.clone())
                    .or_else(|| base.step_description.clone()),
                protocol,
                station_name: get(ipc, 7, 1),
                station_ae: get(ipc, 9, 1),
                ..base.clone()
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "steps_tests.rs"]
mod tests;
