//! Order groups: which segments belong to which order, and what each order says.
//!
//! ORM^O01, OMI^O23 and friends repeat `ORC [TQ1…] OBR [NTE…] [IPC…] [ZDS]`; ORU^R01
//! repeats `[ORC] OBR [NTE…] [OBX…]`, where the ORC is optional per group. Grouping:
//! * ORC starts a group; the segments after it up to the first OBR are its *head*
//!   (TQ1 timing in OMI^O23);
//! * the first OBR after an ORC joins that group, and the segments after it (IPC, ZDS, NTE,
//!   OBX…) up to the next ORC or OBR are the group's *body*;
//! * any other OBR starts a group of its own, without a head: an ORC belongs to its own
//!   group only, so a group without one takes its order control (none), its placer and filler
//!   numbers and everything else from its OBR. Each group is its own order; letting a
//!   previous group's ORC stand in would give several orders one placer number, and a later
//!   message would then find one order for all of them.
//!
//! Values are looked up head first, then body, so "within the group" is cheap; every segment
//! belongs to one group at most, so the work stays linear in the message size.

use std::ops::Range;

use super::parse::{Repetition, Segment};
use super::path::FieldPath;
use super::summary::{CodedValue, Order, Physician};

/// One order group, as index ranges into the message's segments.
#[derive(Debug, Clone)]
pub(super) struct Group {
    /// The ORC and the segments after it, before the first OBR (empty for a bare OBR).
    head: Range<usize>,
    /// The OBR and the segments after it, up to the next ORC or OBR.
    body: Range<usize>,
}

impl Group {
    fn has_obr(&self) -> bool {
        !self.body.is_empty()
    }

    /// The group's segments: head, then body.
    pub(super) fn segments<'m, 'a>(&self, all: &'m [Segment<'a>]) -> impl Iterator<Item = &'m Segment<'a>> {
        all[self.head.clone()].iter().chain(&all[self.body.clone()])
    }

    pub(super) fn first<'m, 'a>(&self, all: &'m [Segment<'a>], name: &str) -> Option<&'m Segment<'a>> {
        self.segments(all).find(|s| s.name() == name)
    }
}

/// Splits the segments into order groups (see the module doc).
pub(super) fn groups(segments: &[Segment<'_>]) -> Vec<Group> {
    let mut done = Vec::new();
    let mut current: Option<Group> = None;
    for (i, segment) in segments.iter().enumerate() {
        match (segment.name(), current.as_mut()) {
            ("ORC", _) => {
                done.extend(current.take());
                current = Some(Group { head: i..i + 1, body: i + 1..i + 1 });
            }
            ("OBR", Some(group)) if !group.has_obr() => group.body = i..i + 1,
            ("OBR", _) => {
                done.extend(current.take());
                current = Some(Group { head: i..i, body: i..i + 1 });
            }
            (_, Some(group)) if group.has_obr() => group.body.end = i + 1,
            (_, Some(group)) => {
                group.head.end = i + 1;
                group.body = i + 1..i + 1;
            }
            _ => {}
        }
    }
    done.extend(current);
    done
}

/// The orders of a message, with accession numbers looked up at `accession_from`.
pub(crate) fn extract(segments: &[Segment<'_>], accession_from: &[FieldPath]) -> Vec<Order> {
    groups(segments).iter().map(|group| order(group, segments, accession_from)).collect()
}

fn order(group: &Group, all: &[Segment<'_>], accession_from: &[FieldPath]) -> Order {
    let orc = group.first(all, "ORC");
    let obr = group.first(all, "OBR");
    let ipc = group.first(all, "IPC");
    // Reads SEG-field.component of an optional segment.
    let get = |segment: Option<&Segment<'_>>, field: usize, component: usize| {
        segment.and_then(|s| s.field(field).component(component).text())
    };
    let (accession_number, accession_source) = accession(group, all, accession_from).unzip();
    Order {
        // ORC-1 order control; ORC-5 order status.
        order_control: get(orc, 1, 1),
        order_status: get(orc, 5, 1),
        // ORC-2 / OBR-2 placer order number (EI); ORC-3 / OBR-3 filler order number (EI).
        placer_order_number: get(orc, 2, 1).or_else(|| get(obr, 2, 1)),
        filler_order_number: get(orc, 3, 1).or_else(|| get(obr, 3, 1)),
        accession_number,
        accession_source,
        // IPC-5 modality (CWE); OBR-24 diagnostic serv sect id (ID).
        modality: get(ipc, 5, 1).or_else(|| get(obr, 24, 1)),
        // OBR-4 universal service identifier (CE/CWE).
        procedure: obr.and_then(|s| coded_value(s.field(4).repetition(1))),
        // IPC-2 requested procedure id (EI); IPC-4 scheduled procedure step id (EI).
        requested_procedure_id: get(ipc, 2, 1),
        scheduled_procedure_step_id: get(ipc, 4, 1),
        // OBR-16 ordering provider (XCN), else ORC-12 ordering provider (XCN).
        requesting_physician: obr
            .and_then(|s| physician(s.field(16).repetition(1)))
            .or_else(|| orc.and_then(|s| physician(s.field(12).repetition(1)))),
        // OBR-13 relevant clinical information (ST; CWE in v2.7+), else OBR-31 reason for
        // study (CE/CWE).
        clinical_info: obr
            .and_then(|s| coded_text(s.field(13).repetition(1)).or_else(|| coded_text(s.field(31).repetition(1)))),
        // IPC-3 study instance UID (EI), else ZDS-1 study instance UID (RP: UID^app^type^subtype).
        study_instance_uid: get(ipc, 3, 1).or_else(|| get(group.first(all, "ZDS"), 1, 1)),
        scheduled_datetime: scheduled(group, all, orc, obr),
    }
}

/// The first configured location with a non-empty, non-null value in this group.
fn accession(group: &Group, all: &[Segment<'_>], accession_from: &[FieldPath]) -> Option<(String, String)> {
    accession_from.iter().find_map(|path| {
        group
            .segments(all)
            .filter(|s| s.name() == path.segment())
            .find_map(|s| s.get(path).value().filter(|v| !v.is_empty()))
            .map(|value| (value.into_owned(), path.to_string()))
    })
}

/// TQ1-7 start date/time, else OBR-36 scheduled date/time, else the TQ start (component 4,
/// a TS whose first subcomponent is the time) of OBR-27 or ORC-7, else OBR-7 observation
/// date/time.
fn scheduled(
    group: &Group,
    all: &[Segment<'_>],
    orc: Option<&Segment<'_>>,
    obr: Option<&Segment<'_>>,
) -> Option<String> {
    let tq_start =
        |segment: Option<&Segment<'_>>, field| segment.and_then(|s| s.field(field).component(4).subcomponent(1).text());
    group
        .first(all, "TQ1")
        .and_then(|tq1| tq1.field(7).component(1).text())
        .or_else(|| obr.and_then(|s| s.field(36).component(1).text()))
        .or_else(|| tq_start(obr, 27))
        .or_else(|| tq_start(orc, 7))
        .or_else(|| obr.and_then(|s| s.field(7).component(1).text()))
}

/// CE/CWE: identifier ^ text ^ coding system.
pub(super) fn coded_value(cwe: Repetition<'_>) -> Option<CodedValue> {
    let value = CodedValue {
        code: cwe.component(1).text(),
        text: cwe.component(2).text(),
        coding_system: cwe.component(3).text(),
    };
    (value != CodedValue::default()).then_some(value)
}

/// The readable part of a value that may be plain text or coded: component 2 (text) when
/// present, else component 1.
fn coded_text(value: Repetition<'_>) -> Option<String> {
    value.component(2).text().or_else(|| value.component(1).text())
}

/// XCN: id ^ family name (FN: surname & …) ^ given name ^ …
fn physician(xcn: Repetition<'_>) -> Option<Physician> {
    let physician = Physician {
        id: xcn.component(1).text(),
        family: xcn.component(2).subcomponent(1).text(),
        given: xcn.component(3).text(),
    };
    (physician != Physician::default()).then_some(physician)
}

#[cfg(test)]
#[path = "orders_tests.rs"]
mod tests;
