//! Building a [`Summary`] from a parsed message: header facts, PID, PV1, MRG here;
//! order groups in [`super::orders`].
//!
//! Every message type gets the header facts; the rest is filled in as far as the segments
//! present allow, whatever MSH-9 says (an ADT without PV1 simply has no visit).

use super::ReadOptions;
use super::decode::Decoded;
use super::header::Header;
use super::orders;
use super::parse::{Component, Field, Message, Repetition, Segment};
use super::summary::{Merge, Patient, PatientIdentifier, PersonName, Summary, Visit};

/// Summarises a message whose header passed [`Header::check`].
pub(crate) fn summarize(message: &Message<'_>, header: &Header, decoded: &Decoded<'_>, opts: &ReadOptions) -> Summary {
    let msh = message.msh();
    let msh9 = msh.field(9);
    let unescape = |raw: &str| super::escape::unescape(raw, message.separators(), message.charset()).into_owned();
    Summary {
        message_code: unescape(&header.message_code),
        trigger_event: unescape(&header.trigger_event),
        message_structure: msh9.component(3).text(),
        // MSH-10 (ST): the whole field.
        control_id: msh.field(10).unescaped().into_owned(),
        sending_application: hd(msh.field(3)),
        sending_facility: hd(msh.field(4)),
        receiving_application: hd(msh.field(5)),
        receiving_facility: hd(msh.field(6)),
        message_datetime: msh.field(7).component(1).text(),
        version: msh.field(12).component(1).text(),
        processing_id: msh.field(11).component(1).text(),
        declared_charset: msh.field(18).text(),
        charset: decoded.charset.label().to_owned(),
        charset_fallback: decoded.fallback,
        patient: message.segment("PID").map(patient),
        visit: message.segment("PV1").map(visit),
        merge: message.segment("MRG").map(merge),
        orders: orders::extract(message.segments(), &opts.accession_from),
    }
}

/// An HD value given as a field (MSH-3..6): HD.1 namespace id, else HD.2 universal id.
fn hd(field: Field<'_>) -> Option<String> {
    field.component(1).text().or_else(|| field.component(2).text())
}

/// An HD value given as a component (CX.4): the same rule one level down.
fn hd_component(component: Component<'_>) -> Option<String> {
    component.subcomponent(1).text().or_else(|| component.subcomponent(2).text())
}

fn patient(pid: &Segment<'_>) -> Patient {
    // PID-3: patient identifier list (CX), repeating; PID-2: patient id (external, CX,
    // withdrawn in v2.7); PID-4: alternate patient id (CX, withdrawn in v2.7).
    let id = pid.field(3).component(1).text().or_else(|| pid.field(2).component(1).text());
    let identifiers = identifiers(pid.field(3), "PID-3")
        .chain(identifiers(pid.field(2), "PID-2"))
        .chain(identifiers(pid.field(4), "PID-4"))
        .collect();
    Patient {
        id,
        identifiers,
        // PID-5: patient name (XPN), repeating: the first is the legal name by convention.
        name: person_name(pid.field(5).repetition(1)),
        // PID-7: date/time of birth (TS: DTM^precision before v2.6).
        birth_date: pid.field(7).component(1).text(),
        // PID-8: administrative sex (IS; CWE in v2.7+).
        sex: pid.field(8).component(1).text(),
    }
}

/// Every repetition of a CX field that has an id (CX.1).
fn identifiers<'a>(field: Field<'a>, source: &'static str) -> impl Iterator<Item = PatientIdentifier> + 'a {
    field.repetitions().filter_map(move |rep| {
        let id = rep.component(1).value().filter(|id| !id.is_empty())?;
        Some(PatientIdentifier {
            id: id.into_owned(),
            // CX.4 assigning authority (HD, as subcomponents); CX.5 identifier type code.
            assigning_authority: hd_component(rep.component(4)),
            identifier_type: rep.component(5).text(),
            field: source.to_owned(),
        })
    })
}

/// XPN: family name (FN.1 surname) ^ given ^ middle ^ suffix ^ prefix ^ degree …
fn person_name(xpn: Repetition<'_>) -> Option<PersonName> {
    let name = PersonName {
        family: xpn.component(1).subcomponent(1).text(),
        given: xpn.component(2).text(),
        middle: xpn.component(3).text(),
        suffix: xpn.component(4).text(),
        prefix: xpn.component(5).text(),
    };
    (name != PersonName::default()).then_some(name)
}

fn visit(pv1: &Segment<'_>) -> Visit {
    Visit {
        // PV1-2: patient class (IS; CWE in v2.7+).
        patient_class: pv1.field(2).component(1).text(),
        // PV1-19: visit number (CX).
        visit_number: pv1.field(19).component(1).text(),
    }
}

fn merge(mrg: &Segment<'_>) -> Merge {
    Merge {
        // MRG-1: prior patient identifier list (CX), repeating; MRG-4: prior patient id
        // (CX, backward compatibility only).
        prior_identifiers: identifiers(mrg.field(1), "MRG-1").chain(identifiers(mrg.field(4), "MRG-4")).collect(),
        // MRG-7: prior patient name (XPN).
        prior_name: person_name(mrg.field(7).repetition(1)),
    }
}

#[cfg(test)]
#[path = "extract_tests.rs"]
mod tests;
