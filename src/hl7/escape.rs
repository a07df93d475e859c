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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn un(s: &str) -> String {
        unescape(s, &Separators::default(), Charset::Utf8).into_owned()
    }

    #[test]
    fn separator_escapes_decode_to_the_messages_own_separators() {
        assert_eq!(un(r"A\F\B\S\C\T\D\R\E\E\F"), r"A|B^C&D~E\F");
        let custom = Separators::from_msh(b"MSH#*@!%#").unwrap();
        let s = unescape("a!F!b!S!c!E!d", &custom, Charset::Utf8);
        assert_eq!(s, "a#b*c!d");
    }

    #[test]
    fn text_without_escape_character_is_borrowed() {
        assert!(matches!(unescape("plain", &Separators::default(), Charset::Utf8), Cow::Borrowed(_)));
    }

    #[test]
    fn truncation_escape_needs_a_declared_truncation_character() {
        assert_eq!(un(r"a\P\b"), r"a\P\b");
        let seps = Separators::from_msh(b"MSH|^~\\&#|").unwrap();
        assert_eq!(unescape(r"a\P\b", &seps, Charset::Utf8), "a#b");
    }

    #[test]
    fn hex_escapes_are_decoded_in_the_message_charset() {
        assert_eq!(un(r"M\XC3BC\ller"), "Müller");
        let seps = Separators::default();
        assert_eq!(unescape(r"M\XFC\ller", &seps, Charset::Iso8859_1), "Müller");
        assert_eq!(unescape(r"\XFC\", &seps, Charset::Utf8), "ü", "invalid UTF-8 falls back to Latin-1");
        assert_eq!(un(r"a\X0D0A\b"), "a\r\nb");
    }

    #[test]
    fn line_break_commands_become_newlines_and_layout_commands_vanish() {
        assert_eq!(un(r"one\.br\two\.sp\three\.sp2\four"), "one\ntwo\nthree\nfour");
        assert_eq!(un(r"\H\bold\N\ \.in+4\\.ti-2\\.sk+1\\.ce\\.fi\\.nf\x"), "bold x");
    }

    #[test]
    fn charset_switch_and_local_escapes_are_removed() {
        assert_eq!(un(r"a\C2842\b\M2442\c\M242842\d\Zlocal\e"), "abcde");
    }

    #[test]
    fn unterminated_escape_is_kept_literally() {
        assert_eq!(un(r"50\% off"), r"50\% off");
        assert_eq!(un(r"ends with \"), r"ends with \");
        assert_eq!(un(r"\F"), r"\F");
    }

    #[test]
    fn unknown_sequence_is_kept_and_a_following_valid_one_still_decodes() {
        assert_eq!(un(r"C:\temp\file"), r"C:\temp\file");
        assert_eq!(un(r"\Q\F\"), r"\Q|");
        assert_eq!(un(r"\\"), r"\\");
        assert_eq!(un(r"\XZZ\ \X1\ \.xx\ \.sp+\"), r"\XZZ\ \X1\ \.xx\ \.sp+\");
        assert_eq!(un(r"\.é\ \.bré\"), r"\.é\ \.bré\");
    }

    #[test]
    fn escape_writes_separators_and_line_ends_as_sequences() {
        let seps = Separators::default();
        assert_eq!(escape("a|b^c&d~e\\f\rg\nh", &seps), r"a\F\b\S\c\T\d\R\e\E\f\X0D\g\X0A\h");
        let seps = Separators::from_msh(b"MSH|^~\\&#|").unwrap();
        assert_eq!(escape("#1", &seps), r"\P\1");
    }

    #[test]
    fn without_a_subcomponent_separator_an_ampersand_is_data_and_t_is_no_escape() {
        let seps = Separators::from_msh(b"MSH|^~\\|").unwrap();
        assert_eq!(escape("R&D|x", &seps), r"R&D\F\x");
        assert_eq!(unescape(r"R&D \T\ \F\", &seps, Charset::Utf8), r"R&D \T\ |");
    }

    fn separators() -> impl Strategy<Value = Separators> {
        let pool: Vec<u8> = (0x21..0x7F).filter(|b: &u8| !b.is_ascii_alphanumeric()).collect();
        // MSH-1 and three, four or five encoding characters.
        (prop::sample::subsequence(pool, 6).prop_shuffle(), 4..=6usize).prop_map(|(chars, used)| {
            let mut msh = b"MSH".to_vec();
            msh.extend_from_slice(&chars[..used]);
            Separators::from_msh(&msh).expect("distinct punctuation is valid")
        })
    }

    proptest! {
        #[test]
        fn unescape_inverts_escape_for_any_string(s in any::<String>(), seps in separators()) {
            let escaped = escape(&s, &seps);
            prop_assert!(!escaped.contains(['\r', '\n', seps.field, seps.component]));
            prop_assert_eq!(unescape(&escaped, &seps, Charset::Utf8), s.as_str());
            prop_assert_eq!(unescape(&escaped, &seps, Charset::Iso8859_1), s.as_str());
        }

        #[test]
        fn unescape_never_panics_even_on_non_ascii_text(
            s in "[\\\\A-Za-z0-9.+ FSTREPXHNCMZ|^&~#äü中😀-]{0,40}",
            charset in prop::sample::select(vec![Charset::Utf8, Charset::Iso8859_1, Charset::Gb18030, Charset::IsoIr87]),
        ) {
            // See CRATES.md: hl7-parser 0.3 panics here on non-ASCII text.
            let _ = unescape(&s, &Separators::default(), charset);
        }
    }
}
