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
mod tests {
    use super::super::{ReadOptions, read};
    use super::*;
    use crate::hl7::Charset;
    use crate::hl7::parse::Message;

    const ORM: &str =
        "MSH|^~\\&|RIS|GENHOSP|ZENEDGE|RAD|20260314100000||ORM^O01^ORM_O01|CTRL\\F\\01|P|2.5.1\rPID|1||M1\r";

    fn now() -> Timestamp {
        "2026-03-14T09:30:05Z".parse().unwrap()
    }

    fn header(text: &str) -> Header {
        match read(text.as_bytes(), &ReadOptions::default()) {
            Ok(received) => received.header,
            Err(rejection) => rejection.header.expect("a partial header"),
        }
    }

    fn ack(text: &str, code: AckCode, error: Option<&ErrorDetail>) -> String {
        let bytes = build(Some(&header(text)), code, error, "ZE-1", now()).expect("an ACK is wanted");
        String::from_utf8(bytes).expect("ASCII ACK")
    }

    /// Field `n` of the first `name` segment, raw.
    fn field(ack: &str, name: &str, n: usize) -> String {
        let message = Message::parse(ack, Charset::Utf8).expect("the ACK parses");
        message.segment(name).map(|s| s.field(n).raw().to_owned()).unwrap_or_default()
    }

    #[test]
    fn accept_swaps_sender_and_receiver_and_echoes_the_rest() {
        let a = ack(ORM, AckCode::Accept, None);
        assert_eq!(
            a,
            "MSH|^~\\&|ZENEDGE|RAD|RIS|GENHOSP|20260314093005+0000||ACK^O01^ACK|ZE-1|P|2.5.1\r\
             MSA|AA|CTRL\\F\\01\r"
        );
    }

    #[test]
    fn msa2_echoes_the_inbound_control_id_with_its_escapes() {
        assert_eq!(field(&ack(ORM, AckCode::Accept, None), "MSA", 2), "CTRL\\F\\01");
    }

    #[test]
    fn generated_values_are_escaped() {
        let error = ErrorDetail::new(101, Some("PID^1^3"), "bad | value ^ ~ \\ & here\rsecond line");
        let bytes = build(Some(&header(ORM)), AckCode::Error, Some(&error), "ID|^~\\&", now()).unwrap();
        let a = String::from_utf8(bytes).unwrap();
        assert_eq!(a.matches('\r').count(), 3, "only segment ends: {a:?}");
        assert_eq!(field(&a, "MSH", 10), "ID\\F\\\\S\\\\R\\\\E\\\\T\\");
        assert_eq!(field(&a, "ERR", 8), "bad \\F\\ value \\S\\ \\R\\ \\E\\ \\T\\ here\\X0D\\second line");
    }

    #[test]
    fn custom_separators_are_used_for_the_ack() {
        let inbound = "MSH#*@!%#RIS#GENHOSP#ZENEDGE#RAD#20260314100000##ORM*O01#C1#P#2.5\r";
        let error = ErrorDetail::new(101, Some("PID^1^3"), "x*y");
        let a = ack(inbound, AckCode::Error, Some(&error));
        assert!(a.starts_with("MSH#*@!%#ZENEDGE#RAD#RIS#GENHOSP#20260314093005+0000##ACK*O01*ACK#ZE-1#P#2.5\r"), "{a}");
        assert!(a.contains("\rMSA#AE#C1\r"), "{a}");
        assert!(a.ends_with("ERR##PID*1*3#101*Required field missing*HL70357#E####x!S!y\r"), "{a}");
    }

    #[test]
    fn a_message_without_subcomponent_separator_gets_an_ack_with_the_same_three_characters() {
        let inbound = "MSH|^~\\|RIS|R&D|ZENEDGE|RAD|20260314100000||ORM^O01|C&1|P|2.3\r";
        let a = ack(inbound, AckCode::Accept, None);
        assert_eq!(a, "MSH|^~\\|ZENEDGE|RAD|RIS|R&D|20260314093005+0000||ACK^O01^ACK|ZE-1|P|2.3\rMSA|AA|C&1\r");
        let error = ErrorDetail::new(101, Some("PID^1^3"), "R&D");
        let a = ack(inbound, AckCode::Error, Some(&error));
        assert!(a.ends_with("MSA|AE|C&1|R&D\rERR|PID^1^3^101\r"), "{a}");
    }

    #[test]
    fn enhanced_mode_sends_only_the_acks_msh15_asks_for() {
        let with_msh15 = |v: &str| header(&format!("MSH|^~\\&|A|B|C|D|||ORM^O01|1|P|2.5|||{v}|NE"));
        let error = ErrorDetail::new(101, None, "x");
        let expected = [
            ("AL", [Some("CA"), Some("CE"), Some("CR")]),
            ("ER", [None, Some("CE"), Some("CR")]),
            ("SU", [Some("CA"), None, None]),
            ("NE", [None, None, None]),
            ("XX", [Some("CA"), Some("CE"), Some("CR")]),
            ("", [Some("AA"), Some("AE"), Some("AR")]),
        ];
        for (msh15, codes) in expected {
            let h = with_msh15(msh15);
            for (code, want) in [AckCode::Accept, AckCode::Error, AckCode::Reject].into_iter().zip(codes) {
                let got = build(Some(&h), code, Some(&error), "Z", now())
                    .map(|b| field(&String::from_utf8(b).unwrap(), "MSA", 1));
                assert_eq!(got.as_deref(), want, "MSH-15 {msh15:?}, {code:?}");
            }
        }
    }

    #[test]
    fn latin1_inbound_gets_a_latin1_ack_with_msh18_echoed() {
        let inbound = b"MSH|^~\\&|RIS|Klinik M\xFCnchen|ZENEDGE|RAD|20260314||ADT^A08|L1|P|2.5||||||8859/1\rPID|1||M1||M\xFCller^J\xFCrgen\r";
        let h = read(inbound, &ReadOptions::default()).unwrap().header;
        let bytes = build(Some(&h), AckCode::Accept, None, "Z", now()).unwrap();
        let expected = b"MSH|^~\\&|ZENEDGE|RAD|RIS|Klinik M\xFCnchen|20260314093005+0000||ACK^A08^ACK|Z|P|2.5||||||8859/1\rMSA|AA|L1\r";
        assert_eq!(bytes, expected);
    }

    #[test]
    fn v25_and_later_report_errors_in_err2_err3_and_err8() {
        let error = ErrorDetail::new(101, Some("MSH^1^10"), "MSH-10 is empty");
        let a = ack(ORM, AckCode::Error, Some(&error));
        assert!(
            a.ends_with("MSA|AE|CTRL\\F\\01\rERR||MSH^1^10|101^Required field missing^HL70357|E||||MSH-10 is empty\r"),
            "{a}"
        );
    }

    #[test]
    fn before_v25_errors_go_in_err1_and_msa3() {
        let inbound = "MSH|^~\\&|RIS|H|ZE|RAD|20260314||ORM^O01|C9|P|2.3.1\r";
        let error = ErrorDetail::new(101, Some("PID^1^3^1^1"), "PID-3 is empty");
        let a = ack(inbound, AckCode::Error, Some(&error));
        assert!(a.ends_with("MSA|AE|C9|PID-3 is empty\rERR|PID^1^3^101&Required field missing&HL70357\r"), "{a}");
        let a = ack(inbound, AckCode::Error, Some(&ErrorDetail::new(100, None, "no MSH")));
        assert!(a.ends_with("ERR|^^^100&Segment sequence error&HL70357\r"), "{a}");
    }

    #[test]
    fn reject_without_detail_reports_application_internal_error() {
        let a = ack(ORM, AckCode::Reject, None);
        assert!(a.contains("\rMSA|AR|CTRL\\F\\01\r"), "{a}");
        assert!(a.ends_with("ERR|||207^Application internal error^HL70357|E||||Application internal error\r"), "{a}");
        let custom = ErrorDetail::new(206, None, "record locked");
        assert!(ack(ORM, AckCode::Reject, Some(&custom)).contains("|206^Application record locked^HL70357|"));
    }

    #[test]
    fn accept_ignores_an_error_detail_and_error_without_detail_has_no_err() {
        let error = ErrorDetail::new(101, None, "x");
        assert!(!ack(ORM, AckCode::Accept, Some(&error)).contains("ERR"));
        assert!(!ack(ORM, AckCode::Error, None).contains("ERR"));
    }

    #[test]
    fn unknown_codes_use_the_error_text_as_description() {
        let error = ErrorDetail::new(999, None, "custom");
        assert!(ack(ORM, AckCode::Error, Some(&error)).contains("|999^custom^HL70357|"));
    }

    #[test]
    fn without_msh_a_minimal_ack_is_built_with_default_separators() {
        let error = ErrorDetail::new(100, Some("MSH^1"), "the first segment is not MSH");
        let bytes = build(None, AckCode::Error, Some(&error), "Z7", now()).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "MSH|^~\\&|||||20260314093005+0000||ACK|Z7|P|2.5\rMSA|AE\r\
             ERR||MSH^1|100^Segment sequence error^HL70357|E||||the first segment is not MSH\r"
        );
    }

    #[test]
    fn a_rejection_header_still_addresses_the_ack() {
        let rejection =
            read(b"MSH|^~\\&|RIS|H|ZE|RAD|20260314||ORM^O01||P|2.5\r", &ReadOptions::default()).unwrap_err();
        let bytes = build(rejection.header.as_ref(), AckCode::Error, Some(&rejection.error), "Z", now()).unwrap();
        let a = String::from_utf8(bytes).unwrap();
        assert!(a.starts_with("MSH|^~\\&|ZE|RAD|RIS|H|"), "{a}");
        assert!(a.contains("|MSH^1^10|101^"), "{a}");
    }
}
