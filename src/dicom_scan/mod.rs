//! Bounded scan of a received DICOM dataset for the attributes intake needs before it
//! acknowledges a C-STORE.
//!
//! The dataset comes from the network and is untrusted, so the scanner is written by hand
//! rather than with dicom-rs: dicom-rs 0.10.1's parser decodes every element of the dataset
//! and reserves and zero-fills each value's *declared* length before reading it
//! (`dicom-parser` `read_value_ob` and friends), so a few dozen bytes can demand 4 GiB.
//! Here instead:
//!
//! * Bytes are pulled through one 8 KiB buffer (`reader.rs`); nothing is allocated from a
//!   declared length except the values kept, each refused above
//!   [`ScanLimits::max_element_bytes`] and grown only as its bytes arrive.
//! * Everything not kept is skipped by length, including defined-length sequences.
//!   Undefined-length sequences are walked item by item on an explicit stack no deeper than
//!   [`ScanLimits::max_depth`] (`walker.rs`).
//! * The scan stops at pixel data (never read), at Data Set Trailing Padding, or as soon as
//!   a top-level tag is past (0020,0013), the largest tag kept, with the four required UIDs
//!   seen. Otherwise it reads on to the end, up to [`ScanLimits::max_header_bytes`].
//! * A declared length beyond the end of the stream is [`ScanError::Truncated`]; anything
//!   structurally wrong (odd lengths, unknown VRs, stray delimiters, items overrunning their
//!   sequence, a kept attribute twice) is [`ScanError::Malformed`]. No input panics.
//!
//! Input is the dataset alone (no preamble, no File Meta Information) in the transfer syntax
//! negotiated for the presentation context. Text is decoded per Specific Character Set
//! (`charset.rs`); decoding never fails, it falls back to ISO 8859-1 and says so in
//! [`InstanceAttributes::charset_fallback`]. Error messages fit a DICOM Error Comment
//! (≤ 64 characters) and never contain attribute values.
//!
//! A parser like [`crate::hl7`]: bytes in, values out, no I/O; it imports nothing of the
//! daemon but [`crate::ids`] (the UID check, the bound on patient ids).

mod charset;
mod fields;
mod reader;
mod syntax;
mod walker;

#[cfg(test)]
mod tests;

use std::io::Read;

use serde::{Deserialize, Serialize};

pub use fields::Tag;

use crate::ids::is_valid_uid;
use charset::Charset;
use fields::{FIELDS, Text, ix};
use reader::{Input, Source};
use walker::Collected;

/// Attributes of one instance, decoded to UTF-8 per its Specific Character Set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct InstanceAttributes {
    /// (0008,0016), validated by [`is_valid_uid`].
    pub sop_class_uid: String,
    /// (0008,0018), validated by [`is_valid_uid`].
    pub sop_instance_uid: String,
    /// (0020,000D), validated by [`is_valid_uid`].
    pub study_instance_uid: String,
    /// (0020,000E), validated by [`is_valid_uid`].
    pub series_instance_uid: String,
    /// (0010,0020).
    pub patient_id: Option<String>,
    /// (0010,0010) as written: all component groups (`=`) and components (`^`), trimmed.
    pub patient_name: Option<String>,
    /// (0010,1000) values, then each (0010,1002) item's (0010,0020), empty values dropped.
    pub other_patient_ids: Vec<String>,
    /// (0010,0021).
    pub issuer_of_patient_id: Option<String>,
    /// (0008,0050).
    pub accession_number: Option<String>,
    /// (0008,0060).
    pub modality: Option<String>,
    /// (0008,0020), as text (DA, not validated).
    pub study_date: Option<String>,
    /// (0008,0030), as text (TM, not validated).
    pub study_time: Option<String>,
    /// (0008,1030).
    pub study_description: Option<String>,
    /// (0020,0011), IS as text.
    pub series_number: Option<String>,
    /// (0020,0013), IS as text.
    pub instance_number: Option<String>,
    /// (0008,0005) as written (trimmed), so the original bytes' meaning can be revisited.
    pub specific_character_set: Option<String>,
    /// True when the declared character set was unknown, or some text did not decode in it
    /// (or was non-ASCII with none declared); such text was decoded as ISO 8859-1 (or, when
    /// nothing was declared, as UTF-8 if it validated).
    pub charset_fallback: bool,
}

/// Resource limits for one scan; each bounds what a hostile dataset can make us spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScanLimits {
    /// Largest kept element (and, together, the Other Patient IDs Sequence values kept):
    /// bounds the memory a scan holds. Default 64 KiB.
    pub max_element_bytes: u32,
    /// Deepest nesting of walked sequences. Default 8.
    pub max_depth: u32,
    /// Bytes of (inflated) dataset read while looking for the attributes before giving up;
    /// bounds time spent and, for deflate, decompression bombs. Default 64 MiB.
    pub max_header_bytes: u64,
}

impl Default for ScanLimits {
    fn default() -> Self {
        ScanLimits { max_element_bytes: 64 * 1024, max_depth: 8, max_header_bytes: 64 * 1024 * 1024 }
    }
}

/// Distinct Other Patient IDs one instance may carry, the bound HL7 messages have too: each
/// id is looked up and indexed for case grouping, so 64 KiB of one-character ids (about
/// 30,000) would cost seconds of the log writer's time per instance. Real instances carry a
/// handful.
pub const MAX_OTHER_PATIENT_IDS: usize = crate::ids::MAX_PATIENT_IDENTIFIERS;

/// Why a dataset was refused. Messages are fit for a DICOM Error Comment: short, and free of
/// patient data.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The transfer syntax UID (sanitised, at most 32 characters) is not one we read.
    #[error("unsupported transfer syntax {0}")]
    UnsupportedTransferSyntax(String),
    /// The stream ended inside an element (a declared length beyond the bytes present).
    #[error("dataset truncated")]
    Truncated,
    /// The bytes are not a well-formed dataset.
    #[error("malformed dataset: {0}")]
    Malformed(&'static str),
    /// Sequences nested deeper than [`ScanLimits::max_depth`].
    #[error("sequences nested too deeply")]
    TooDeep,
    /// A kept element larger than [`ScanLimits::max_element_bytes`].
    #[error("element {tag} exceeds the size limit")]
    ElementTooLarge { tag: Tag },
    /// The attributes were not all found within [`ScanLimits::max_header_bytes`].
    #[error("attributes not found in the first {limit} bytes")]
    HeaderLimitExceeded { limit: u64 },
    /// A required attribute is absent; the payload is its DICOM keyword.
    #[error("missing required attribute {0}")]
    MissingAttribute(&'static str),
    /// A required UID attribute does not satisfy [`is_valid_uid`].
    #[error("invalid UID in {attribute}")]
    InvalidUid { attribute: &'static str },
    /// More than [`MAX_OTHER_PATIENT_IDS`] distinct Other Patient IDs.
    #[error("more than {MAX_OTHER_PATIENT_IDS} other patient IDs")]
    TooManyPatientIds,
    /// The reader failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Scans a dataset in `transfer_syntax_uid` and extracts [`InstanceAttributes`].
///
/// Reads no further than needed (see the module doc); the reader is left wherever the scan
/// stopped.
pub fn scan(
    reader: impl Read,
    transfer_syntax_uid: &str,
    limits: &ScanLimits,
) -> Result<InstanceAttributes, ScanError> {
    let layout = syntax::layout(transfer_syntax_uid)
        .ok_or_else(|| ScanError::UnsupportedTransferSyntax(sanitise(transfer_syntax_uid)))?;
    let mut source = Source::new(Input::new(reader, layout.deflated), limits.max_header_bytes);
    let collected = walker::walk(&mut source, layout.encoding, limits)?;
    attributes(collected)
}

/// True if [`scan`] reads datasets in this transfer syntax (for presentation context
/// negotiation).
pub fn is_supported_transfer_syntax(uid: &str) -> bool {
    syntax::layout(uid).is_some()
}

/// A UID from the network, made safe and short enough for an error message.
fn sanitise(uid: &str) -> String {
    uid.chars().filter(|c| c.is_ascii_graphic()).take(32).collect()
}

/// Validates and decodes the collected raw values.
fn attributes(mut c: Collected) -> Result<InstanceAttributes, ScanError> {
    let mut uid = |index: usize| -> Result<String, ScanError> {
        let field = &FIELDS[index];
        let raw = c.values[index].take().ok_or(ScanError::MissingAttribute(field.keyword))?;
        let text = charset::latin1(&raw).trim_end_matches([' ', '\0']).to_owned();
        if is_valid_uid(&text) { Ok(text) } else { Err(ScanError::InvalidUid { attribute: field.keyword }) }
    };
    let mut out = InstanceAttributes {
        sop_class_uid: uid(ix::SOP_CLASS_UID)?,
        sop_instance_uid: uid(ix::SOP_INSTANCE_UID)?,
        study_instance_uid: uid(ix::STUDY_INSTANCE_UID)?,
        series_instance_uid: uid(ix::SERIES_INSTANCE_UID)?,
        ..InstanceAttributes::default()
    };
    let mut text = TextDecoder::new(c.values[ix::SPECIFIC_CHARACTER_SET].as_deref());
    let mut field = |index: usize| c.values[index].as_deref().and_then(|raw| text.field(index, raw));
    out.specific_character_set = field(ix::SPECIFIC_CHARACTER_SET);
    out.study_date = field(ix::STUDY_DATE);
    out.study_time = field(ix::STUDY_TIME);
    out.accession_number = field(ix::ACCESSION_NUMBER);
    out.modality = field(ix::MODALITY);
    out.study_description = field(ix::STUDY_DESCRIPTION);
    out.patient_name = field(ix::PATIENT_NAME);
    out.patient_id = field(ix::PATIENT_ID);
    out.issuer_of_patient_id = field(ix::ISSUER_OF_PATIENT_ID);
    out.series_number = field(ix::SERIES_NUMBER);
    out.instance_number = field(ix::INSTANCE_NUMBER);
    if let Some(raw) = &c.values[ix::OTHER_PATIENT_IDS] {
        let ids = text.decode(raw);
        out.other_patient_ids.extend(ids.split('\\').filter_map(trimmed));
    }
    let item_charsets: Vec<Charset> = c.item_charsets.iter().map(|raw| Charset::from_declared(Some(raw))).collect();
    for id in &c.sequence_ids {
        let own = id.charset.and_then(|i| item_charsets.get(i));
        let decoded = text.decode_with(own, &id.value);
        out.other_patient_ids.extend(trimmed(&decoded));
    }
    out.other_patient_ids = distinct(std::mem::take(&mut out.other_patient_ids));
    if out.other_patient_ids.len() > MAX_OTHER_PATIENT_IDS {
        return Err(ScanError::TooManyPatientIds);
    }
    out.charset_fallback = text.fallback;
    Ok(out)
}

/// `ids` without repeats, in order of first appearance.
fn distinct(ids: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    ids.into_iter().filter(|id| seen.insert(id.clone())).collect()
}

/// Decodes kept text per the dataset's character set, remembering whether it fell back.
struct TextDecoder {
    charset: Charset,
    fallback: bool,
}

impl TextDecoder {
    fn new(declared: Option<&[u8]>) -> Self {
        let charset = Charset::from_declared(declared);
        TextDecoder { fallback: charset.is_unknown(), charset }
    }

    /// The trimmed text of a kept top-level field, `None` when empty.
    fn field(&mut self, index: usize, raw: &[u8]) -> Option<String> {
        match FIELDS[index].text {
            Text::Decoded => trimmed(&self.decode(raw)),
            Text::Ascii | Text::Uid => trimmed(&charset::latin1(raw)),
        }
    }

    fn decode(&mut self, raw: &[u8]) -> String {
        self.decode_with(None, raw)
    }

    /// Decodes with `own` (an item's character set) if given, else the dataset's.
    fn decode_with(&mut self, own: Option<&Charset>, raw: &[u8]) -> String {
        let charset = own.unwrap_or(&self.charset);
        let decoded = charset.decode(raw);
        self.fallback |= decoded.fallback || charset.is_unknown();
        decoded.text
    }
}

/// Removes leading spaces and trailing space/NUL padding; `None` if nothing is left.
fn trimmed(text: &str) -> Option<String> {
    let text = text.trim_start_matches(' ').trim_end_matches([' ', '\0']);
    (!text.is_empty()).then(|| text.to_owned())
}
