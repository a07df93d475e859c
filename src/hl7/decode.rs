//! Choosing the charset of one message and decoding it to text.
//!
//! The whole message is decoded into a `String` before it is split into segments and fields.
//! Splitting raw bytes would be wrong for multi-byte charsets: a GB 18030, Big5 or
//! ISO-2022-JP character can contain the byte of `|`, `^`, `~` or `\`. MSH-18 itself is
//! found at byte level first ([`declared_in`]), on the assumption that MSH up to MSH-18 is
//! ASCII (if it is not, MSH-18 may be misread, which at worst means a flagged fallback).
//!
//! Charset trouble never rejects a message (a lost order is worse than a garbled name):
//! an unknown or unsupported MSH-18, or bytes that are invalid in the declared charset, are
//! decoded with the configured fallback and flagged (`charset_fallback` in the summary).
//! An empty MSH-18 means ASCII; non-ASCII bytes there are accepted as UTF-8 when they are
//! valid UTF-8 (not flagged), else decoded with the fallback (flagged).

use std::borrow::Cow;

use super::charset::Charset;
use super::separators::Separators;

/// How the bytes were turned into text.
#[derive(Debug)]
pub(crate) struct Decoded<'a> {
    /// The message text.
    pub text: Cow<'a, str>,
    /// The charset actually used.
    pub charset: Charset,
    /// True when `charset` is the configured fallback because the declared one was unknown,
    /// unsupported, or did not match the bytes.
    pub fallback: bool,
}

/// What MSH-18 says, read before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Declared {
    /// MSH-18 empty: ASCII by the standard, UTF-8 accepted.
    Nothing,
    /// A charset we support.
    Known(Charset),
    /// A value we do not recognise or cannot decode (e.g. `UNICODE UTF-16`).
    Unknown,
}

/// Reads what MSH-18 declares, at byte level, from the first segment of `raw`.
///
/// `raw` starts with `MSH` and has separators `seps`. The first repetition names the charset;
/// later repetitions are ISO 2022 code extensions, of which we honour Japanese (`~ISO IR87`
/// after an ASCII default means ISO-2022-JP).
pub(crate) fn declared_in(raw: &[u8], seps: &Separators) -> Declared {
    // Separators are ASCII (checked by `Separators::from_msh`), so these casts are exact.
    let (field, repetition) = (seps.field as u8, seps.repetition as u8);
    let end = memchr::memchr2(b'\r', b'\n', raw).unwrap_or(raw.len());
    // Split parts: [0] = "MSH", [1] = MSH-2, [k] = MSH-(k+1); so MSH-18 is part 17.
    let Some(msh18) = raw[..end].split(|&b| b == field).nth(17) else {
        return Declared::Nothing;
    };
    let mut reps = msh18.split(|&b| b == repetition).map(|r| r.trim_ascii());
    let first = reps.next().unwrap_or_default();
    let default = match first {
        [] => None,
        bytes => match std::str::from_utf8(bytes).ok().and_then(Charset::from_msh18) {
            Some(c) => Some(c),
            None => return Declared::Unknown,
        },
    };
    if matches!(default, None | Some(Charset::Ascii)) {
        let japanese = reps
            .filter_map(|r| std::str::from_utf8(r).ok().and_then(Charset::from_msh18))
            .find(|c| matches!(c, Charset::IsoIr87 | Charset::IsoIr159));
        if let Some(c) = japanese {
            return Declared::Known(c);
        }
    }
    default.map_or(Declared::Nothing, Declared::Known)
}

/// Decodes a whole message according to what it declares (see the module doc for the rules).
pub(crate) fn decode_message(raw: &[u8], declared: Declared, fallback: Charset) -> Decoded<'_> {
    let attempt = match declared {
        Declared::Nothing if raw.is_ascii() => Some(Charset::Ascii),
        Declared::Nothing => Some(Charset::Utf8),
        Declared::Known(c) => Some(c),
        Declared::Unknown => None,
    };
    if let Some(charset) = attempt
        && let Some(text) = charset.decode(raw)
    {
        return Decoded { text, charset, fallback: false };
    }
    Decoded { text: fallback.decode_lossy(raw), charset: fallback, fallback: true }
}
#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
