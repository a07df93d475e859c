//! HL7 escape sequences (v2.x chapter 2, "Use of escape sequences in text fields").
//!
//! Between two escape characters (`\` in the recommended set; always the message's own):
//!
//! | sequence | meaning | [`unescape`] gives |
//! | --- | --- | --- |
//! | `\F\ \S\ \T\ \R\ \E\` | field, component, subcomponent, repetition, escape separator | that character (`\T\` only if MSH-2 defines one) |
//! | `\P\` (v2.7) | truncation character | it, if MSH-2 defines one |
//! | `\Xhhhh…\` | raw bytes in hex | the bytes decoded in the message's charset |
//! | `\.br\`, `\.sp…\` | line break, vertical space | `\n` |
//! | `\H\ \N\ \.in±n\ \.ti±n\ \.sk+n\ \.ce\ \.fi\ \.nf\` | highlighting and layout | nothing |
//! | `\Cxxyy\ \Mxxyyzz\ \Zxx…\` | charset switches, locally defined | nothing |
//!
//! Anything else is kept literally: an escape character without a closing one, and a
//! closed sequence we do not recognise (e.g. a Windows path `C:\temp\` sent unescaped). In
//! the latter case only the opening character is taken literally and scanning resumes at the
//! closing one, so a valid sequence right after it is still found; each character is looked
//! at a bounded number of times, so unescaping is linear.
//!
//! [`escape`] writes only `\F\ \S\ \T\ \R\ \E\`, `\P\` and `\X0D\` / `\X0A\` for CR and LF
//! (which would otherwise end the segment), so `unescape(escape(s)) == s` for every string.

use std::borrow::Cow;

use super::charset::Charset;
use super::separators::Separators;

/// Escapes `text` for use as one leaf value of a message with separators `seps`.
pub fn escape(text: &str, seps: &Separators) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let code = match c {
            c if c == seps.field => "F",
            c if c == seps.component => "S",
            c if Some(c) == seps.subcomponent => "T",
            c if c == seps.repetition => "R",
            c if c == seps.escape => "E",
            c if Some(c) == seps.truncation => "P",
            '\r' => "X0D",
            '\n' => "X0A",
            c => {
                out.push(c);
                continue;
            }
        };
        out.push(seps.escape);
        out.push_str(code);
        out.push(seps.escape);
    }
    out
}

/// Decodes the escape sequences in `text`; `\X…\` bytes are decoded in `charset`
/// (as Latin-1 if they are not valid there). Borrows when there is nothing to decode.
pub fn unescape<'a>(text: &'a str, seps: &Separators, charset: Charset) -> Cow<'a, str> {
    let esc = seps.escape;
    let Some(first) = text.find(esc) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..first]);
    let mut rest = &text[first..];
    // Invariant: `rest` starts with the escape character.
    loop {
        let after = &rest[esc.len_utf8()..];
        let Some(end) = after.find(esc) else {
            out.push_str(rest);
            break;
        };
        if decode_sequence(&after[..end], seps, charset, &mut out) {
            rest = &after[end + esc.len_utf8()..];
        } else {
            out.push(esc);
            rest = after;
        }
        let Some(next) = rest.find(esc) else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..next]);
        rest = &rest[next..];
    }
    Cow::Owned(out)
}

/// Appends what one escape sequence (without its delimiters) stands for to `out`;
/// returns false when the sequence is not one we recognise.
fn decode_sequence(seq: &str, seps: &Separators, charset: Charset, out: &mut String) -> bool {
    let replacement = match seq {
        "F" => seps.field,
        "S" => seps.component,
        // `\T\` and `\P\` name separators a message may not have: then they are not escapes.
        "T" => match seps.subcomponent {
            Some(c) => c,
            None => return false,
        },
        "R" => seps.repetition,
        "E" => seps.escape,
        "P" => match seps.truncation {
            Some(c) => c,
            None => return false,
        },
        // Highlighting on/off: dropped.
        "H" | "N" => return true,
        _ => return decode_long_sequence(seq, charset, out),
    };
    out.push(replacement);
    true
}

/// The multi-character sequences: hex data, formatting commands, charset switches.
fn decode_long_sequence(seq: &str, charset: Charset, out: &mut String) -> bool {
    if let Some(hex) = seq.strip_prefix('X') {
        return match hex_bytes(hex) {
            Some(bytes) => {
                out.push_str(&charset.decode(&bytes).unwrap_or_else(|| Charset::Iso8859_1.decode_lossy(&bytes)));
                true
            }
            None => false,
        };
    }
    if let Some(command) = seq.strip_prefix('.') {
        return decode_formatting(command, out);
    }
    match seq.as_bytes() {
        // \Cxxyy\ single-byte and \Mxxyyzz\ multi-byte charset switches (ISO 2022 escapes
        // already applied when the message was decoded), \Z…\ locally defined: dropped.
        [b'C', rest @ ..] => rest.len() == 4 && is_hex(rest),
        [b'M', rest @ ..] => matches!(rest.len(), 4 | 6) && is_hex(rest),
        [b'Z', ..] => true,
        _ => false,
    }
}

/// Formatted-text commands (`\.br\` etc.; FT data type). Line breaks become `\n`.
fn decode_formatting(command: &str, out: &mut String) -> bool {
    let (name, argument) = command.split_at_checked(2).unwrap_or((command, ""));
    let argument = argument.trim();
    let recognised = match name {
        "br" | "ce" | "fi" | "nf" => argument.is_empty(),
        "sp" | "in" | "ti" | "sk" => is_signed_number(argument),
        _ => false,
    };
    if recognised && matches!(name, "br" | "sp") {
        out.push('\n');
    }
    recognised
}

/// Empty, or digits with an optional leading sign.
fn is_signed_number(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    digits.bytes().all(|b| b.is_ascii_digit()) && (digits.len() == s.len() || !digits.is_empty())
}

fn is_hex(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_hexdigit)
}

/// `hhhh…` (an even, non-zero number of hex digits) to bytes.
fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    let digits = hex.as_bytes();
    if digits.is_empty() || !digits.len().is_multiple_of(2) || !is_hex(digits) {
        return None;
    }
    let value = |d: u8| char::from(d).to_digit(16).map(|v| v as u8);
    digits.chunks_exact(2).map(|pair| Some((value(pair[0])? << 4) | value(pair[1])?)).collect()
}

#[cfg(test)]
#[path = "escape_tests.rs"]
mod tests;
