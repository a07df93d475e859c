//! Acknowledgements (ACK) for inbound messages; bytes out, no MLLP framing (the caller frames).
//!
//! The ACK mirrors the inbound message: its separators, its charset (MSH-18 echoed and the
//! bytes encoded with the charset the message was decoded with, i.e. the fallback when
//! MSH-18 was not understood), MSH-3/4 and MSH-5/6 swapped, MSH-11/12 echoed, MSA-2 the
//! inbound MSH-10. Copied fields are copied raw (still escaped, so they stay exactly what the
//! sender wrote); everything we generate (control id, error text, location) is escaped.
//! Segments end with `\r`.
//!
//! ```text
//! MSH|^~\&|<MSH-5>|<MSH-6>|<MSH-3>|<MSH-4>|<now>||ACK^<trigger>^ACK|<ack id>|<MSH-11>|<MSH-12>[|||||||<MSH-18>]
//! MSA|<code>|<inbound MSH-10>[|<text> (before v2.5)]
//! ERR||<location>|<code>^<table 0357 text>^HL70357|E||||<text>        (v2.5+)
//! ERR|<segment>^<sequence>^<field>^<code>&<table 0357 text>&HL70357  (before v2.5)
//! ```
//!
//! Meaning of the codes (original mode / enhanced mode): `AA`/`CA` stored durably;
//! `AE`/`CE` the message is wrong, do not resend it unchanged; `AR`/`CR` we could not take
//! it now (store unavailable, disk reserve reached): resend later.
//!
//! Enhanced acknowledgment mode (MSH-15 non-empty) lets the sender choose which commit
//! acknowledgements it wants: `AL` (and any value we do not know) always, `ER` only for
//! errors and rejects, `SU` only on success, `NE` never. [`build`] returns `None` when the
//! sender asked for no ACK for this outcome; the caller then sends nothing.

use jiff::Timestamp;

use super::error::{ErrorDetail, table_0357_text};
use super::escape::escape;
use super::header::Header;
use super::separators::Separators;

/// The outcome an ACK reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckCode {
    /// Stored durably (`AA`, `CA` in enhanced mode).
    Accept,
    /// The message is wrong; the sender should not resend it unchanged (`AE`, `CE`).
    Error,
    /// We could not take it now; the sender should resend later (`AR`, `CR`).
    Reject,
}

impl AckCode {
    /// The MSA-1 code: original mode `AA`/`AE`/`AR`, enhanced mode `CA`/`CE`/`CR`.
    pub fn msa_code(self, enhanced: bool) -> &'static str {
        match (self, enhanced) {
            (AckCode::Accept, false) => "AA",
            (AckCode::Error, false) => "AE",
            (AckCode::Reject, false) => "AR",
            (AckCode::Accept, true) => "CA",
            (AckCode::Error, true) => "CE",
            (AckCode::Reject, true) => "CR",
        }
    }
}

/// Builds the ACK for a message with this `header` (`None`: no usable MSH was found).
///
/// `error` fills the ERR segment for [`AckCode::Error`] and [`AckCode::Reject`] (ignored for
/// `Accept`); a `Reject` without one reports code 207, application internal error.
/// Returns `None` when enhanced mode (MSH-15) says the sender wants no ACK for this outcome.
pub fn build(
    header: Option<&Header>,
    code: AckCode,
    error: Option<&ErrorDetail>,
    ack_control_id: &str,
    now: Timestamp,
) -> Option<Vec<u8>> {
    let fallback;
    let header = match header {
        Some(header) => header,
        None => {
            fallback = headerless();
            &fallback
        }
    };
    if !is_wanted(header, code) {
        return None;
    }
    let default_reject;
    let error = match (code, error) {
        (AckCode::Accept, _) => None,
        (AckCode::Reject, None) => {
            default_reject = ErrorDetail::application_internal_error("Application internal error");
            Some(&default_reject)
        }
        (_, error) => error,
    };
    let mut text = msh(header, ack_control_id, now);
    text.push_str(&msa(header, code, error));
    if let Some(error) = error {
        text.push_str(&err(header, error));
    }
    Some(header.charset.encode(&text))
}

/// Whether enhanced mode asks for an ACK with this outcome (original mode: always).
fn is_wanted(header: &Header, code: AckCode) -> bool {
    if !header.is_enhanced_mode() {
        return true;
    }
    match header.accept_ack_type.trim().to_ascii_uppercase().as_str() {
        "NE" => false,
        "ER" => code != AckCode::Accept,
        "SU" => code == AckCode::Accept,
        _ => true,
    }
}

/// What we answer with when there is no MSH: recommended separators, v2.5, nothing to echo.
fn headerless() -> Header {
    Header::minimal(String::new())
}

/// Joins fields with the field separator, drops trailing empty ones, ends with `\r`.
fn segment(name: &str, fields: &[&str], seps: &Separators) -> String {
    let used = fields.iter().rposition(|f| !f.is_empty()).map_or(0, |last| last + 1);
    let mut out = String::from(name);
    for field in &fields[..used] {
        out.push(seps.field);
        out.push_str(field);
    }
    out.push('\r');
    out
}

fn msh(h: &Header, ack_control_id: &str, now: Timestamp) -> String {
    let seps = &h.separators;
    let c = seps.component;
    // MSH-9: message code ^ trigger event ^ message structure.
    let message_type = match h.trigger_event.as_str() {
        "" => "ACK".to_owned(),
        trigger => format!("ACK{c}{trigger}{c}ACK"),
    };
    let timestamp = format!("{}+0000", now.strftime("%Y%m%d%H%M%S"));
    let control_id = escape(ack_control_id, seps);
    let mut fields = vec![
        seps.encoding_characters(),      // MSH-2
        h.receiving_application.clone(), // MSH-3 ← inbound MSH-5
        h.receiving_facility.clone(),    // MSH-4 ← inbound MSH-6
        h.sending_application.clone(),   // MSH-5 ← inbound MSH-3
        h.sending_facility.clone(),      // MSH-6 ← inbound MSH-4
        timestamp,                       // MSH-7 date/time of message
        String::new(),                   // MSH-8 security
        message_type,                    // MSH-9
        control_id,                      // MSH-10
        h.processing_id.clone(),         // MSH-11
        h.version_id.clone(),            // MSH-12
    ];
    // MSH-13..17 empty, MSH-18 character set echoed.
    fields.resize(16, String::new());
    fields.push(h.character_set.clone());
    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    segment("MSH", &fields, seps)
}

/// True for v2.5 and later (and for versions we cannot read): ERR-2/ERR-3 layout.
fn uses_v25_err(h: &Header) -> bool {
    h.version().is_none_or(|v| v >= (2, 5))
}

fn msa(h: &Header, code: AckCode, error: Option<&ErrorDetail>) -> String {
    // MSA-1 acknowledgment code, MSA-2 message control id, MSA-3 text message (before v2.5).
    let text = match error {
        Some(error) if !uses_v25_err(h) => escape(&error.text, &h.separators),
        _ => String::new(),
    };
    let fields = [code.msa_code(h.is_enhanced_mode()), h.control_id.as_str(), &text];
    segment("MSA", &fields, &h.separators)
}

fn err(h: &Header, error: &ErrorDetail) -> String {
    let seps = &h.separators;
    let code = error.code.to_string();
    let description = escape(table_0357_text(error.code).unwrap_or(&error.text), seps);
    let location = error.location.as_deref().unwrap_or_default();
    if uses_v25_err(h) {
        // ERR-2 error location (ERL), ERR-3 HL7 error code (CWE, table 0357),
        // ERR-4 severity, ERR-8 user message.
        let (c, text) = (seps.component, escape(&error.text, seps));
        let hl7_code = format!("{code}{c}{description}{c}HL70357");
        let erl = location_parts(location, seps, 6).join(&c.to_string());
        let fields = ["", &erl, &hl7_code, "E", "", "", "", &text];
        segment("ERR", &fields, seps)
    } else {
        // ERR-1 error code and location (ELD): segment ^ sequence ^ field ^ code (CE, as
        // subcomponents; just the code when the message has no subcomponent separator).
        let mut eld = location_parts(location, seps, 3);
        eld.resize(3, String::new());
        eld.push(match seps.subcomponent {
            Some(s) => format!("{code}{s}{description}{s}HL70357"),
            None => code,
        });
        segment("ERR", &[&eld.join(&seps.component.to_string())], seps)
    }
}

/// The first `max` parts of a location written with `^` (see [`ErrorDetail::location`]),
/// each escaped, to be re-joined with the message's own component separator.
fn location_parts(location: &str, seps: &Separators, max: usize) -> Vec<String> {
    location.split('^').take(max).map(|part| escape(part, seps)).collect()
}

#[cfg(test)]
#[path = "ack_tests.rs"]
mod tests;
