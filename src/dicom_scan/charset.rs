//! Decoding PN/LO/SH/LT/ST/UT bytes to UTF-8 per Specific Character Set (0008,0005).
//!
//! Defined terms are in PS3.3 §C.12.1.1.2; code extension rules in PS3.5 §6.1.2.5. Decoding
//! never fails: an unknown declaration, or bytes that are invalid in the declared set, are
//! decoded as ISO 8859-1 (every byte is a code point) and reported as a fallback.

use encoding_rs::{
    EUC_JP, EUC_KR, Encoding, GB18030, GBK, ISO_8859_2, ISO_8859_3, ISO_8859_4, ISO_8859_5, ISO_8859_6, ISO_8859_7,
    ISO_8859_8, ISO_8859_15, SHIFT_JIS, WINDOWS_874, WINDOWS_1254,
};

/// Text decoded from one value, and whether the declared character set could not be honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Decoded {
    pub(super) text: String,
    pub(super) fallback: bool,
}

/// A decoder built from the value of Specific Character Set.
#[derive(Debug, Clone, Copy)]
pub(super) struct Charset {
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// ISO-IR 6 (ASCII): no or an empty declaration.
    Default,
    /// ISO_IR 100: each byte is the code point.
    Latin1,
    /// ISO_IR 192.
    Utf8,
    /// A single-byte or multi-byte set without code extensions, decoded by encoding_rs.
    Whole(&'static Encoding),
    /// ISO 2022 code extensions: escape sequences switch G0/G1 within a value.
    Iso2022(Iso2022State),
    /// A declaration we do not know: decode as ISO 8859-1 and report it.
    Unknown,
}

impl Charset {
    /// The decoder for the raw (0008,0005) value, `None` when the attribute is absent.
    pub(super) fn from_declared(raw: Option<&[u8]>) -> Self {
        let Some(raw) = raw else { return Charset { kind: Kind::Default } };
        let mut terms: Vec<String> = latin1(raw).split('\\').map(normalise).collect();
        while terms.len() > 1 && terms.last().is_some_and(String::is_empty) {
            terms.pop();
        }
        let kind = match terms.as_slice() {
            [] => Kind::Default,
            [single] => single_term(single).unwrap_or(Kind::Unknown),
            [first, rest @ ..] => iso2022(first, rest).map_or(Kind::Unknown, Kind::Iso2022),
        };
        Charset { kind }
    }

    /// True when the declared character set is one we do not know.
    pub(super) fn is_unknown(&self) -> bool {
        matches!(self.kind, Kind::Unknown)
    }

    /// Decodes one value; the caller trims padding afterwards.
    pub(super) fn decode(&self, bytes: &[u8]) -> Decoded {
        let strict = match self.kind {
            Kind::Default if bytes.is_ascii() => Some(latin1(bytes)),
            // Undeclared non-ASCII is common; UTF-8 that validates is almost never meant as
            // Latin-1, so prefer it, but still report that the declaration was not honoured.
            Kind::Default => {
                let text = String::from_utf8(bytes.to_vec()).unwrap_or_else(|_| latin1(bytes));
                return Decoded { text, fallback: true };
            }
            Kind::Latin1 => Some(latin1(bytes)),
            Kind::Utf8 => std::str::from_utf8(bytes).ok().map(str::to_owned),
            Kind::Whole(encoding) => whole(encoding, bytes),
            Kind::Iso2022(state) => state.decode(bytes),
            Kind::Unknown => None,
        };
        match strict {
            Some(text) => Decoded { text, fallback: false },
            None => Decoded { text: latin1(bytes), fallback: true },
        }
    }
}

/// ISO 8859-1: each byte is its own code point.
pub(super) fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn whole(encoding: &'static Encoding, bytes: &[u8]) -> Option<String> {
    encoding.decode_without_bom_handling_and_without_replacement(bytes).map(|text| text.into_owned())
}

/// "ISO_IR 100", "ISO-IR 100", "iso_ir100" → "ISOIR100"; tolerates common misspellings.
fn normalise(term: &str) -> String {
    term.chars().filter(|c| !matches!(c, ' ' | '_' | '-' | '\0')).map(|c| c.to_ascii_uppercase()).collect()
}

/// A single-valued declaration; ISO 2022 terms alone still get the code-extension decoder.
fn single_term(term: &str) -> Option<Kind> {
    Some(match term {
        "" | "ISOIR6" => Kind::Default,
        "ISOIR100" => Kind::Latin1,
        "ISOIR192" => Kind::Utf8,
        "GB18030" => Kind::Whole(GB18030),
        "GBK" => Kind::Whole(GBK),
        // JIS X 0201: Shift_JIS decodes its single bytes (romaji and half-width katakana).
        "ISOIR13" => Kind::Whole(SHIFT_JIS),
        _ => match term.strip_prefix("ISOIR").and_then(single_byte) {
            Some(G1::Single(encoding)) => Kind::Whole(encoding),
            Some(_) => return None,
            None => return iso2022(term, &[]).map(Kind::Iso2022),
        },
    })
}

/// The ISO 8859 family (and their windows supersets in encoding_rs) by ISO-IR number.
fn single_byte(number: &str) -> Option<G1> {
    Some(G1::Single(match number {
        "100" => return Some(G1::Latin1),
        "101" => ISO_8859_2,
        "109" => ISO_8859_3,
        "110" => ISO_8859_4,
        "144" => ISO_8859_5,
        "127" => ISO_8859_6,
        "126" => ISO_8859_7,
        "138" => ISO_8859_8,
        // encoding_rs decodes ISO 8859-9 and TIS-620 as their windows supersets.
        "148" => WINDOWS_1254,
        "166" => WINDOWS_874,
        "203" => ISO_8859_15,
        _ => return None,
    }))
}

/// The code-extension decoder: `first` sets the initial G0/G1, the rest may be designated by
/// escape sequences. Every value must be an ISO 2022 term (or empty).
fn iso2022(first: &str, rest: &[String]) -> Option<Iso2022State> {
    let mut initial = match first {
        "" | "ISO2022IR6" => Iso2022State { g0: G0::Ascii, g1: G1::None },
        "ISO2022IR13" => Iso2022State { g0: G0::Romaji, g1: G1::Katakana },
        "ISO2022IR87" | "ISO2022IR159" | "ISO2022IR149" | "ISO2022IR58" => Iso2022State { g0: G0::Ascii, g1: G1::None },
        _ => Iso2022State { g0: G0::Ascii, g1: single_byte(first.strip_prefix("ISO2022IR")?)? },
    };
    for term in std::iter::once(first).chain(rest.iter().map(String::as_str)) {
        let designates_g1 = match term {
            "" => continue,
            "ISO2022IR149" => Some(G1::Ksx1001),
            "ISO2022IR58" => Some(G1::Gb2312),
            _ if term.starts_with("ISO2022IR") => None,
            _ => return None,
        };
        // Some writers omit the G1 escape for Korean/Chinese; best effort: assume it.
        if let (Some(g1), G1::None) = (designates_g1, initial.g1) {
            initial.g1 = g1;
        }
    }
    Some(initial)
}

/// What is designated to G0 (bytes 0x21–0x7E).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum G0 {
    Ascii,
    /// JIS X 0201 romaji; decoded as ASCII (its ¥ and ‾ are rarely meant).
    Romaji,
    /// JIS X 0208, two bytes per character.
    Jis0208,
    /// JIS X 0212, two bytes per character.
    Jis0212,
}

/// What is designated to G1 (bytes 0xA1–0xFE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum G1 {
    None,
    Latin1,
    Single(&'static Encoding),
    /// JIS X 0201 half-width katakana.
    Katakana,
    /// KS X 1001, two bytes per character (EUC-KR).
    Ksx1001,
    /// GB 2312, two bytes per character (EUC-CN, decoded by GBK).
    Gb2312,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Iso2022State {
    g0: G0,
    g1: G1,
}

const ESC: u8 = 0x1B;

impl Iso2022State {
    /// Decodes a value with code extensions; `None` on an unknown escape or an invalid byte.
    fn decode(self, bytes: &[u8]) -> Option<String> {
        let initial = self;
        let mut state = self;
        let mut out = String::with_capacity(bytes.len());
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            if b == ESC {
                i += state.escape(&bytes[i + 1..])? + 1;
                continue;
            }
            let (text, used) = state.character(b, bytes.get(i + 1).copied())?;
            out.push_str(&text);
            i += used;
            // PS3.5 §6.1.2.5.3: the initial sets are active again at each delimiter. Writers
            // must switch back themselves; only honoured while G0 is single-byte, where these
            // bytes cannot be half of a character.
            if used == 1 && b < 0x80 && is_delimiter(b) {
                state = initial;
            }
        }
        Some(out)
    }

    /// Applies the escape sequence that starts after ESC; returns its length without ESC.
    fn escape(&mut self, seq: &[u8]) -> Option<usize> {
        let (g0, g1, len) = match seq {
            [b'(', b'B', ..] => (Some(G0::Ascii), None, 2),
            [b'(', b'J', ..] => (Some(G0::Romaji), None, 2),
            [b'$', b'B' | b'@', ..] => (Some(G0::Jis0208), None, 2),
            [b'$', b'(', b'D', ..] => (Some(G0::Jis0212), None, 3),
            [b')', b'I', ..] => (None, Some(G1::Katakana), 2),
            [b'$', b')', b'C', ..] => (None, Some(G1::Ksx1001), 3),
            [b'$', b')', b'A', ..] => (None, Some(G1::Gb2312), 3),
            [b'-', final_byte, ..] => (None, Some(g1_for_final(*final_byte)?), 2),
            _ => return None,
        };
        self.g0 = g0.unwrap_or(self.g0);
        self.g1 = g1.unwrap_or(self.g1);
        Some(len)
    }

    /// Decodes one character starting with `b`; returns its text and byte count.
    fn character(&self, b: u8, next: Option<u8>) -> Option<(String, usize)> {
        if b < 0x80 {
            return match self.g0 {
                G0::Ascii | G0::Romaji => Some((char::from(b).to_string(), 1)),
                // Controls and space stay single bytes in a two-byte G0.
                _ if b <= 0x20 || b == 0x7F => Some((char::from(b).to_string(), 1)),
                G0::Jis0208 => pair(EUC_JP, &[b | 0x80, next? | 0x80], next?, false),
                G0::Jis0212 => pair(EUC_JP, &[0x8F, b | 0x80, next? | 0x80], next?, false),
            };
        }
        match self.g1 {
            G1::None => None,
            G1::Latin1 => Some((char::from(b).to_string(), 1)),
            G1::Single(encoding) => Some((whole(encoding, &[b])?, 1)),
            G1::Katakana if (0xA1..=0xDF).contains(&b) => {
                Some((char::from_u32(0xFF61 + u32::from(b - 0xA1))?.to_string(), 1))
            }
            G1::Katakana => None,
            G1::Ksx1001 => pair(EUC_KR, &[b, next?], next?, true),
            G1::Gb2312 => pair(GBK, &[b, next?], next?, true),
        }
    }
}

/// Decodes a two-byte character (re-encoded as EUC in `bytes`) whose second byte as read is
/// `second`; `in_g1` says whether that byte must have its high bit set (GR) or clear (GL).
fn pair(encoding: &'static Encoding, bytes: &[u8], second: u8, in_g1: bool) -> Option<(String, usize)> {
    if !(0x21..=0x7E).contains(&(second & 0x7F)) || (second >= 0x80) != in_g1 {
        return None;
    }
    Some((whole(encoding, bytes)?, 2))
}

fn g1_for_final(final_byte: u8) -> Option<G1> {
    single_byte(match final_byte {
        b'A' => "100",
        b'B' => "101",
        b'C' => "109",
        b'D' => "110",
        b'L' => "144",
        b'G' => "127",
        b'F' => "126",
        b'H' => "138",
        b'M' => "148",
        b'T' => "166",
        b'b' => "203",
        _ => return None,
    })
}

fn is_delimiter(b: u8) -> bool {
    matches!(b, b'\\' | b'^' | b'=' | b'\r' | b'\n' | b'\t' | 0x0C)
}
