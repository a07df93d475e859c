//! HL7 v2: reading inbound messages and writing their acknowledgements. Pure code, no I/O.
//!
//! [`read`] takes the bytes of one message (MLLP framing already removed) and returns either
//! a [`Received`] (the [`Header`] the ACK needs and the [`Summary`] stored in the
//! `HL7MessageReceived` event) or a [`Rejection`] (what is wrong, for an AE, with whatever
//! header could be read). It never panics and runs in time linear in the input; it is
//! property-tested with random bytes and with mutations of valid messages.
//!
//! The pieces, in the order [`read`] uses them:
//! * [`separators`]: MSH-1/MSH-2 give this message's delimiters; nothing assumes `|^~\&`.
//! * [`charset`] (names, conversions) and `decode` (the policy): MSH-18 is found at byte
//!   level and the whole message is decoded to text with that charset before anything is
//!   split (multi-byte charsets can hide separator bytes inside characters); charset
//!   problems fall back to a configured charset and are flagged, never rejected.
//! * [`parse`]: segments (`\r`, `\n` or `\r\n`), fields with the standard MSH numbering,
//!   repetitions, components, subcomponents, the explicit null `""`.
//! * [`escape`]: `\F\ \S\ \T\ \R\ \E\ \P\ \Xhh\ \.br\` … both ways.
//! * [`path`]: `OBR-18`-style locations, for the per-site accession number setting.
//! * [`summary`]: the stored facts (header, PID, PV1, MRG, order groups); its serde form is a
//!   wire contract with the hub.
//! * [`ack`]: AA/AE/AR (CA/CE/CR in enhanced mode) with ERR per version, in the sender's
//!   separators and charset.
//!
//! Why our own parser: no HL7 crate was fit when this was written (see CRATES.md):
//! hl7-parser 0.3 panics decoding escapes in non-ASCII text and garbles `\S\`; hl7v2 is
//! AGPL; rust-hl7 is unmaintained since 2021; hl7-v2 does not decode escapes; hl7 and hl7-2
//! need a newer rustc. What we need is a few hundred lines, and owning them lets us fuzz
//! exactly the code that faces the network.
//!
//! Logging: [`Summary::message_type`], control ids and [`ErrorDetail`] texts are safe to
//! log; everything else in a summary is patient data.

pub mod ack;
pub mod charset;
mod decode;
pub mod error;
pub mod escape;
pub mod parse;
pub mod path;
pub mod separators;
pub mod summary;

mod extract;
mod header;
mod orders;
pub mod steps;

use crate::ids::MAX_PATIENT_IDENTIFIERS;
pub use charset::{Charset, UnknownCharset};
pub use error::{ErrorDetail, Rejection};
pub use header::Header;
pub use parse::Message;
pub use path::{FieldPath, FieldPathError};
pub use separators::Separators;
pub use summary::{CodedValue, Merge, Order, Patient, PatientIdentifier, PersonName, Physician, Summary, Visit};

/// Most order groups one message may carry, counted as ORC and as OBR segments: each
/// becomes an order with its own rows and index entries.
pub const MAX_ORDER_SEGMENTS: usize = 1000;

/// Per-site settings for [`read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    /// Where to look for the accession number, in order; the first non-empty value within
    /// an order group wins. Default: [`DEFAULT_ACCESSION_FROM`].
    pub accession_from: Vec<FieldPath>,
    /// Charset used when MSH-18 is unknown or does not match the bytes. Default: Latin-1
    /// (`8859/1`): every byte sequence is valid Latin-1, and it is the most common
    /// undeclared charset in European hospitals.
    pub fallback_charset: Charset,
}

/// The default accession number locations: IPC-1 (OMI^O23 imaging procedure control),
/// OBR-18 (placer field 1, the usual place in ORM^O01), ORC-3 (filler order number), OBR-3.
pub const DEFAULT_ACCESSION_FROM: [&str; 4] = ["IPC-1", "OBR-18", "ORC-3", "OBR-3"];

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            accession_from: DEFAULT_ACCESSION_FROM
                .iter()
                .map(|p| p.parse().expect("default accession paths are valid"))
                .collect(),
            fallback_charset: Charset::Iso8859_1,
        }
    }
}

/// An accepted message: what the ACK needs and what the event stores.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// Raw MSH facts for the ACK.
    pub header: Header,
    /// Decoded facts for the `HL7MessageReceived` event.
    pub summary: Summary,
}

impl Received {
    /// Sending application and facility (MSH-3, MSH-4; decoded, see [`Summary`]), "" when
    /// absent. With [`Received::control_id`], the key for recognising a re-sent message.
    pub fn sender(&self) -> (&str, &str) {
        (
            self.summary.sending_application.as_deref().unwrap_or_default(),
            self.summary.sending_facility.as_deref().unwrap_or_default(),
        )
    }

    /// MSH-10 message control id, decoded (never empty).
    pub fn control_id(&self) -> &str {
        &self.summary.control_id
    }
}

/// Reads one HL7 v2 message.
///
/// Leading blank lines, whitespace and a UTF-8 byte order mark are skipped. Rejected (for
/// an AE): empty input or a first segment other than MSH (code 100), unusable separators
/// (102; the rejection's header then carries MSH-10 alone if it can still be read), MSH-9 without message code or trigger event (101, `MSH^1^9`), empty MSH-10 (101,
/// `MSH^1^10`), a second MSH in the same frame (100), more than [`MAX_PATIENT_IDENTIFIERS`]
/// or [`MAX_ORDER_SEGMENTS`] (102). Anything else with a valid MSH is accepted, charset
/// trouble included.
#[expect(
    clippy::result_large_err,
    reason = "one call per message, and the Ok side (Received) is larger still; boxing would \
              only add an allocation and change the agreed `Rejection::header` type"
)]
pub fn read(raw: &[u8], opts: &ReadOptions) -> Result<Received, Rejection> {
    let no_header = |error| Rejection { error, header: None };
    let raw = skip_preamble(raw);
    if !raw.starts_with(b"MSH") {
        return Err(no_header(parse::sequence_error(raw)));
    }
    let seps = Separators::from_msh(raw)
        .map_err(|error| Rejection { header: header::control_id_only(raw).map(Header::minimal), error })?;
    let declared = decode::declared_in(raw, &seps);
    let decoded = decode::decode_message(raw, declared, opts.fallback_charset);
    let message = Message::parse(&decoded.text, decoded.charset).map_err(no_header)?;
    let header = Header::read(&message);
    if let Err(error) = header.check() {
        return Err(Rejection { error, header: Some(header) });
    }
    if let Some(error) = parse::second_message(&message).or_else(|| beyond_limits(&message)) {
        return Err(Rejection { error, header: Some(header) });
    }
    let summary = extract::summarize(&message, &header, &decoded, opts);
    Ok(Received { header, summary })
}

/// A message over [`MAX_PATIENT_IDENTIFIERS`] or [`MAX_ORDER_SEGMENTS`], refused before
/// anything is extracted from it. Counting is linear in the message.
fn beyond_limits(message: &Message<'_>) -> Option<ErrorDetail> {
    for (name, fields) in [("PID", &[2, 3, 4][..]), ("MRG", &[1, 4][..])] {
        let Some(segment) = message.segment(name) else { continue };
        let count: usize =
            fields.iter().map(|&f| segment.field(f).repetitions().filter(|r| !r.raw().is_empty()).count()).sum();
        if count > MAX_PATIENT_IDENTIFIERS {
            let text =
                format!("{name} carries {count} patient identifiers; at most {MAX_PATIENT_IDENTIFIERS} are accepted");
            return Some(ErrorDetail::new(error::codes::DATA_TYPE_ERROR, Some(&format!("{name}^1")), text));
        }
    }
    for name in ["ORC", "OBR"] {
        let count = message.segments().iter().filter(|s| s.name() == name).count();
        if count > MAX_ORDER_SEGMENTS {
            let text = format!("the message holds {count} {name} segments; at most {MAX_ORDER_SEGMENTS} are accepted");
            return Some(ErrorDetail::new(error::codes::DATA_TYPE_ERROR, Some(name), text));
        }
    }
    None
}

/// The message without the segment terminators (CR, LF) after its last segment: what makes
/// two copies of a message the same whether or not the sender kept the final CR (python-hl7's
/// `mllp_send`, for one, strips it).
pub fn without_final_terminators(raw: &[u8]) -> &[u8] {
    let end = raw.iter().rposition(|&b| b != b'\r' && b != b'\n').map_or(0, |last| last + 1);
    &raw[..end]
}

/// Skips whitespace (blank lines) and a UTF-8 byte order mark before MSH.
fn skip_preamble(raw: &[u8]) -> &[u8] {
    let raw = raw.trim_ascii_start();
    raw.strip_prefix(b"\xEF\xBB\xBF").map_or(raw, <[u8]>::trim_ascii_start)
}

#[cfg(test)]
mod read_tests;

#[cfg(test)]
mod tests;
