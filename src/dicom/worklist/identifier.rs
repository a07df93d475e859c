//! The C-FIND identifier on the wire: checked by hand, then read and written with
//! dicom-object in the presentation context's transfer syntax.
//!
//! dicom-object's parser reserves and zero-fills each value's *declared* length before
//! reading it and reads sequences recursively (see [`crate::dicom::dimse`]). So before it
//! sees an identifier, [`check`] walks the bytes (at most [`MAX_IDENTIFIER_BYTES`]) without
//! allocating: every declared length must fit in what remains of its container, and
//! sequences and items may nest at most [`MAX_DEPTH`] deep. In implicit VR the standard
//! dictionary says which tags are sequences, as it does for the parser.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_encoding::TransferSyntax;
use dicom_encoding::text::SpecificCharacterSet;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::{EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN};

/// Largest identifier accepted (a modality's is well under 2 KiB).
pub const MAX_IDENTIFIER_BYTES: usize = 64 * 1024;
/// Deepest nesting of sequences and items (a worklist query nests two: SPS, code item).
pub const MAX_DEPTH: usize = 8;

/// The transfer syntaxes a worklist context is accepted with, in our order of preference.
pub const TRANSFER_SYNTAXES: [&str; 2] = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"];

fn syntax(uid: &str) -> TransferSyntax {
    if uid == TRANSFER_SYNTAXES[0] { EXPLICIT_VR_LITTLE_ENDIAN.erased() } else { IMPLICIT_VR_LITTLE_ENDIAN.erased() }
}

/// Why an identifier cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("identifier: {0}")]
pub struct IdentifierError(pub String);

fn fail<T>(text: impl Into<String>) -> Result<T, IdentifierError> {
    Err(IdentifierError(text.into()))
}

/// Reads an identifier sent in transfer syntax `ts_uid`, after [`check`].
pub fn read(bytes: &[u8], ts_uid: &str) -> Result<InMemDicomObject, IdentifierError> {
    read_at_most(bytes, ts_uid, MAX_IDENTIFIER_BYTES)
}

/// Reads a data set of at most `max` bytes sent in (implicit or explicit VR little endian)
/// transfer syntax `ts_uid`, after the same checks as [`check`].
pub fn read_at_most(bytes: &[u8], ts_uid: &str, max: usize) -> Result<InMemDicomObject, IdentifierError> {
    check_within(bytes, ts_uid == TRANSFER_SYNTAXES[0], max)?;
    InMemDicomObject::read_dataset_with_ts(bytes, &syntax(ts_uid)).map_err(|e| IdentifierError(e.to_string()))
}

/// Writes an answer in transfer syntax `ts_uid` and character set `charset` (a DICOM term
/// such as `ISO_IR 192`; `None`: the default repertoire).
pub fn write(obj: &InMemDicomObject, ts_uid: &str, charset: Option<&str>) -> Result<Vec<u8>, IdentifierError> {
    let cs = charset.and_then(SpecificCharacterSet::from_code).unwrap_or_default();
    let mut out = Vec::with_capacity(1024);
    obj.write_dataset_with_ts_cs(&mut out, &syntax(ts_uid), cs).map_err(|e| IdentifierError(e.to_string()))?;
    Ok(out)
}

/// VRs with a 4-byte length (and 2 reserved bytes) in explicit VR (PS3.5 7.1.2).
const LONG_VRS: &[&[u8; 2]] =
    &[b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"];

/// Checks that every declared length of `bytes` (little endian) fits and nesting is bounded.
pub fn check(bytes: &[u8], explicit: bool) -> Result<(), IdentifierError> {
    check_within(bytes, explicit, MAX_IDENTIFIER_BYTES)
}

/// [`check`] for a data set of at most `max` bytes.
fn check_within(bytes: &[u8], explicit: bool, max: usize) -> Result<(), IdentifierError> {
    if bytes.len() > max {
        return fail(format!("{} bytes, at most {max} accepted", bytes.len()));
    }
    // Open sequences and items: where each ends (`None`: undefined length, a delimiter ends it).
    let mut open: Vec<Option<usize>> = Vec::new();
    let mut pos = 0;
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    loop {
        while let Some(Some(end)) = open.last() {
            if pos < *end {
                break;
            }
            open.pop();
        }
        if pos == bytes.len() {
            break;
        }
        let limit = open.iter().rev().find_map(|e| *e).unwrap_or(bytes.len());
        if pos + 8 > limit {
            return fail(format!("element header at byte {pos} runs past its container"));
        }
        let tag = Tag(u16_at(pos), u16_at(pos + 2));
        let (header, len, sequence) = if tag.group() == 0xFFFE {
            (8, u32_at(pos + 4), tag.element() == 0xE000)
        } else if explicit {
            let vr = [bytes[pos + 4], bytes[pos + 5]];
            if LONG_VRS.contains(&&vr) {
                if pos + 12 > limit {
                    return fail(format!("element header at byte {pos} runs past its container"));
                }
                (12, u32_at(pos + 8), &vr == b"SQ")
            } else {
                (8, u32::from(u16_at(pos + 6)), false)
            }
        } else {
            let len = u32_at(pos + 4);
            (8, len, len == u32::MAX || is_sequence(tag))
        };
        pos += header;
        match (tag.group(), tag.element()) {
            (0xFFFE, 0xE00D | 0xE0DD) => {
                if open.pop() != Some(None) {
                    return fail(format!("delimiter at byte {} closes nothing open", pos - header));
                }
                continue;
            }
            _ if sequence || len == u32::MAX => {
                if open.len() == MAX_DEPTH * 2 {
                    return fail(format!("sequences nest deeper than {MAX_DEPTH}"));
                }
                if len == u32::MAX {
                    open.push(None);
                    continue;
                }
            }
            _ => {}
        }
        let end = pos + len as usize;
        if end > limit {
            return fail(format!("{tag} declares {len} bytes, {} remain", limit - pos));
        }
        if sequence {
            open.push(Some(end));
        } else {
            pos = end;
        }
    }
    if !open.is_empty() {
        return fail("a sequence or item is not closed");
    }
    Ok(())
}

/// Whether the standard dictionary names `tag` a sequence (implicit VR).
fn is_sequence(tag: Tag) -> bool {
    StandardDataDictionary.by_tag(tag).is_some_and(|e| matches!(e.vr(), VirtualVr::Exact(VR::SQ)))
}

#[cfg(test)]
#[path = "identifier_tests.rs"]
mod tests;
