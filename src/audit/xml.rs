//! The DICOM PS3.15 A.5 audit message of a record (`AuditMessage`: `EventIdentification`,
//! `ActiveParticipant`, `AuditSourceIdentification`, `ParticipantObjectIdentification`), as
//! the syslog forwarder sends it and the API shows it. Bytes out, no I/O.
//!
//! Written by hand rather than with an XML crate's writer, because the values come from
//! outside (AE titles, MSH fields, patient ids, certificate names) and the writers at hand
//! escape only `<`, `>`, `&` and quotes: a control character (an HL7 field may hold one after
//! `\X01\`) would still be written raw, and XML 1.0 has no way to carry it, escaped or not, so
//! the message would not parse. [`escape`] therefore also replaces every character XML 1.0
//! does not allow with U+FFFD, and writes tab, line feed and carriage return in attributes as
//! character references (a parser would otherwise normalise them to spaces). The fuzz target
//! `audit_xml` checks that every message parses back with the values it was given.

use std::fmt::Write as _;

use base64::Engine as _;

use super::record::{AuditObject, AuditRecord, Code, Participant};

/// Who reports: `AuditSourceIdentification`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSource {
    /// `AuditSourceID`: the edge id.
    pub source_id: String,
    /// `AuditEnterpriseSiteID`: the hospital id.
    pub site_id: String,
}

/// The record as an `AuditMessage` document (UTF-8, with its XML declaration).
pub fn render(record: &AuditRecord, source: &AuditSource) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?><AuditMessage>");
    event_identification(&mut out, record);
    for participant in &record.participants {
        active_participant(&mut out, participant);
    }
    out.push_str("<AuditSourceIdentification");
    attr(&mut out, "AuditEnterpriseSiteID", &source.site_id);
    attr(&mut out, "AuditSourceID", &source.source_id);
    out.push('>');
    coded(&mut out, "AuditSourceTypeCode", &Code::dcm("4", "Application Server Process"));
    out.push_str("</AuditSourceIdentification>");
    for object in &record.objects {
        participant_object(&mut out, object);
    }
    out.push_str("</AuditMessage>");
    out
}

fn event_identification(out: &mut String, r: &AuditRecord) {
    out.push_str("<EventIdentification");
    attr(out, "EventActionCode", r.action.letter());
    attr(out, "EventDateTime", &r.at.to_string());
    attr(out, "EventOutcomeIndicator", r.outcome.number());
    out.push('>');
    coded(out, "EventID", &r.event);
    for t in &r.event_types {
        coded(out, "EventTypeCode", t);
    }
    if let Some(text) = &r.outcome_description {
        element(out, "EventOutcomeDescription", text);
    }
    out.push_str("</EventIdentification>");
}

fn active_participant(out: &mut String, p: &Participant) {
    out.push_str("<ActiveParticipant");
    attr(out, "UserID", &p.user_id);
    if let Some(v) = &p.alternative_user_id {
        attr(out, "AlternativeUserID", v);
    }
    if let Some(v) = &p.user_name {
        attr(out, "UserName", v);
    }
    attr(out, "UserIsRequestor", if p.requestor { "true" } else { "false" });
    if let Some(v) = &p.network_access_point {
        attr(out, "NetworkAccessPointID", v);
        let ip = v.parse::<std::net::IpAddr>().is_ok();
        attr(out, "NetworkAccessPointTypeCode", if ip { "2" } else { "1" });
    }
    match &p.role {
        Some(role) => {
            out.push('>');
            coded(out, "RoleIDCode", role);
            out.push_str("</ActiveParticipant>");
        }
        None => out.push_str("/>"),
    }
}

fn participant_object(out: &mut String, o: &AuditObject) {
    out.push_str("<ParticipantObjectIdentification");
    attr(out, "ParticipantObjectID", &o.id);
    let _ = write!(out, " ParticipantObjectTypeCode=\"{}\"", o.type_code);
    let _ = write!(out, " ParticipantObjectTypeCodeRole=\"{}\"", o.role);
    out.push('>');
    coded(out, "ParticipantObjectIDTypeCode", &o.id_type);
    if let Some(name) = &o.name {
        element(out, "ParticipantObjectName", name);
    }
    for (kind, value) in &o.details {
        out.push_str("<ParticipantObjectDetail");
        attr(out, "type", kind);
        attr(out, "value", &base64::engine::general_purpose::STANDARD.encode(value));
        out.push_str("/>");
    }
    if let Some(text) = &o.description {
        element(out, "ParticipantObjectDescription", text);
    }
    out.push_str("</ParticipantObjectIdentification>");
}

/// `<name csd-code=".." codeSystemName=".." originalText=".."/>`
fn coded(out: &mut String, name: &str, code: &Code) {
    out.push('<');
    out.push_str(name);
    attr(out, "csd-code", &code.code);
    attr(out, "codeSystemName", &code.system);
    attr(out, "originalText", &code.display);
    out.push_str("/>");
}

fn element(out: &mut String, name: &str, text: &str) {
    let _ = write!(out, "<{name}>");
    escape(out, text);
    let _ = write!(out, "</{name}>");
}

fn attr(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, " {name}=\"");
    escape(out, value);
    out.push('"');
}

/// Appends `text` escaped for an attribute value or element content: markup characters as
/// entities, tab/LF/CR as character references, and every character XML 1.0 does not allow
/// (C0 controls but those three, U+FFFE, U+FFFF) as U+FFFD.
pub fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c if !allowed(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// What the text becomes once escaped and read back by an XML parser.
pub fn as_read_back(text: &str) -> String {
    text.chars().map(|c| if allowed(c) { c } else { '\u{FFFD}' }).collect()
}

/// XML 1.0's `Char` production (surrogates cannot occur in a `str`).
fn allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
#[path = "xml_tests.rs"]
mod tests;
