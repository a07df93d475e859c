//! Character sets (MSH-18, HL7 table 0211): names, decoding bytes, encoding an ACK.
//!
//! Which charset a message gets is decided in `super::decode`; this module knows the names
//! and does the conversions, through encoding_rs except for ASCII, UTF-8, ISO 8859-1 and
//! ISO 8859-9. Those two ISO sets are done by hand because encoding_rs follows the WHATWG
//! rule that maps their labels to windows-1252/1254, which differ in 0x80–0x9F (8859-1 is
//! simply byte value = code point).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use encoding_rs::Encoding;

/// A character set from HL7 table 0211 that zenedge can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Charset {
    /// `ASCII`: 7-bit US-ASCII (also what an empty MSH-18 means).
    Ascii,
    /// `8859/1`: Latin-1, Western European.
    Iso8859_1,
    /// `8859/2`: Latin-2, Central European.
    Iso8859_2,
    /// `8859/3`: Latin-3, South European.
    Iso8859_3,
    /// `8859/4`: Latin-4, North European.
    Iso8859_4,
    /// `8859/5`: Cyrillic.
    Iso8859_5,
    /// `8859/6`: Arabic.
    Iso8859_6,
    /// `8859/7`: Greek.
    Iso8859_7,
    /// `8859/8`: Hebrew.
    Iso8859_8,
    /// `8859/9`: Latin-5, Turkish.
    Iso8859_9,
    /// `8859/15`: Latin-9, Western European with the euro sign.
    Iso8859_15,
    /// `UNICODE UTF-8`.
    Utf8,
    /// `ISO IR192`: UTF-8 under its ISO-IR registration name.
    IsoIr192,
    /// `GB 18030-2000`: Chinese.
    Gb18030,
    /// `KS X 1001`: Korean, as EUC-KR.
    KsX1001,
    /// `BIG-5`: traditional Chinese.
    Big5,
    /// `ISO IR87`: JIS X 0208 Kanji, decoded as ISO-2022-JP.
    IsoIr87,
    /// `ISO IR159`: JIS X 0212 supplementary Kanji, decoded as ISO-2022-JP (encoding_rs has
    /// no JIS X 0212, so text that really uses it falls back).
    IsoIr159,
}

impl Charset {
    /// The charset an MSH-18 value names, or `None` if unknown or unsupported.
    ///
    /// Matching ignores case, spaces and punctuation, so the DICOM spellings some senders
    /// copy (`ISO_IR 100`, `ISO_IR 192`) and common labels (`UTF-8`, `ISO-8859-1`) work too.
    pub fn from_msh18(value: &str) -> Option<Charset> {
        let key: String = value.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect();
        let key = match key.strip_prefix("ISO") {
            Some(rest) if rest.starts_with("8859") => rest,
            _ => &key,
        };
        Some(match key {
            "ASCII" | "USASCII" | "ISOIR6" => Charset::Ascii,
            "88591" | "ISOIR100" | "LATIN1" => Charset::Iso8859_1,
            "88592" | "ISOIR101" => Charset::Iso8859_2,
            "88593" | "ISOIR109" => Charset::Iso8859_3,
            "88594" | "ISOIR110" => Charset::Iso8859_4,
            "88595" | "ISOIR144" => Charset::Iso8859_5,
            "88596" | "ISOIR127" => Charset::Iso8859_6,
            "88597" | "ISOIR126" => Charset::Iso8859_7,
            "88598" | "ISOIR138" => Charset::Iso8859_8,
            "88599" | "ISOIR148" => Charset::Iso8859_9,
            "885915" | "ISOIR203" => Charset::Iso8859_15,
            "UNICODEUTF8" | "UTF8" => Charset::Utf8,
            "ISOIR192" => Charset::IsoIr192,
            "GB180302000" | "GB18030" => Charset::Gb18030,
            "KSX1001" | "EUCKR" | "ISOIR149" => Charset::KsX1001,
            "BIG5" => Charset::Big5,
            "ISOIR87" | "ISO2022JP" => Charset::IsoIr87,
            "ISOIR159" => Charset::IsoIr159,
            _ => return None,
        })
    }

    /// The HL7 table 0211 name, as written in MSH-18.
    pub fn label(&self) -> &'static str {
        match self {
            Charset::Ascii => "ASCII",
            Charset::Iso8859_1 => "8859/1",
            Charset::Iso8859_2 => "8859/2",
            Charset::Iso8859_3 => "8859/3",
            Charset::Iso8859_4 => "8859/4",
            Charset::Iso8859_5 => "8859/5",
            Charset::Iso8859_6 => "8859/6",
            Charset::Iso8859_7 => "8859/7",
            Charset::Iso8859_8 => "8859/8",
            Charset::Iso8859_9 => "8859/9",
            Charset::Iso8859_15 => "8859/15",
            Charset::Utf8 => "UNICODE UTF-8",
            Charset::IsoIr192 => "ISO IR192",
            Charset::Gb18030 => "GB 18030-2000",
            Charset::KsX1001 => "KS X 1001",
            Charset::Big5 => "BIG-5",
            Charset::IsoIr87 => "ISO IR87",
            Charset::IsoIr159 => "ISO IR159",
        }
    }

    /// The encoding_rs codec, for the charsets not decoded by hand.
    fn codec(self) -> Option<&'static Encoding> {
        Some(match self {
            Charset::Iso8859_2 => encoding_rs::ISO_8859_2,
            Charset::Iso8859_3 => encoding_rs::ISO_8859_3,
            Charset::Iso8859_4 => encoding_rs::ISO_8859_4,
            Charset::Iso8859_5 => encoding_rs::ISO_8859_5,
            Charset::Iso8859_6 => encoding_rs::ISO_8859_6,
            Charset::Iso8859_7 => encoding_rs::ISO_8859_7,
            Charset::Iso8859_8 => encoding_rs::ISO_8859_8,
            Charset::Iso8859_15 => encoding_rs::ISO_8859_15,
            Charset::Gb18030 => encoding_rs::GB18030,
            Charset::KsX1001 => encoding_rs::EUC_KR,
            Charset::Big5 => encoding_rs::BIG5,
            Charset::IsoIr87 | Charset::IsoIr159 => encoding_rs::ISO_2022_JP,
            Charset::Ascii | Charset::Iso8859_1 | Charset::Iso8859_9 | Charset::Utf8 | Charset::IsoIr192 => {
                return None;
            }
        })
    }

    /// Decodes `bytes`, or `None` if they are not valid in this charset.
    pub fn decode(self, bytes: &[u8]) -> Option<Cow<'_, str>> {
        if let Some(codec) = self.codec() {
            return codec.decode_without_bom_handling_and_without_replacement(bytes);
        }
        match self {
            Charset::Ascii => bytes.is_ascii().then(|| Cow::Borrowed(std::str::from_utf8(bytes).unwrap_or_default())),
            Charset::Utf8 | Charset::IsoIr192 => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
            _ => Some(self.decode_lossy(bytes)),
        }
    }

    /// Decodes `bytes`, replacing what is invalid with U+FFFD. Never fails.
    pub fn decode_lossy(self, bytes: &[u8]) -> Cow<'_, str> {
        // encoding_rs first: ISO-2022-JP is all 7-bit, yet not ASCII-compatible.
        if let Some(codec) = self.codec() {
            return codec.decode_without_bom_handling(bytes).0;
        }
        if let Ok(ascii) = std::str::from_utf8(bytes)
            && ascii.is_ascii()
        {
            return Cow::Borrowed(ascii);
        }
        match self {
            Charset::Iso8859_1 => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
            Charset::Iso8859_9 => Cow::Owned(bytes.iter().map(|&b| latin5_char(b)).collect()),
            Charset::Ascii => {
                Cow::Owned(bytes.iter().map(|&b| if b.is_ascii() { char::from(b) } else { '\u{FFFD}' }).collect())
            }
            _ => String::from_utf8_lossy(bytes),
        }
    }

    /// Encodes `text` in this charset; characters it cannot represent become `?`.
    pub fn encode(self, text: &str) -> Vec<u8> {
        match self {
            Charset::Utf8 | Charset::IsoIr192 => text.as_bytes().to_vec(),
            Charset::Ascii => text.chars().map(|c| u8::try_from(c).ok().filter(u8::is_ascii).unwrap_or(b'?')).collect(),
            Charset::Iso8859_1 => text.chars().map(|c| u8::try_from(c).unwrap_or(b'?')).collect(),
            Charset::Iso8859_9 => text.chars().map(latin5_byte).collect(),
            _ => self.encode_with_codec(text),
        }
    }

    fn encode_with_codec(self, text: &str) -> Vec<u8> {
        let Some(codec) = self.codec() else {
            return text.as_bytes().to_vec();
        };
        // encoding_rs writes unmappable characters as HTML `&#…;`, and `&` is a separator:
        // replace them with `?` first.
        let text: String = text.chars().map(|c| if is_mappable(codec, c) { c } else { '?' }).collect();
        codec.encode(&text).0.into_owned()
    }
}

/// Whether `codec` can encode `c` (ASCII always can in the charsets we support).
fn is_mappable(codec: &'static Encoding, c: char) -> bool {
    if c.is_ascii() {
        return true;
    }
    let mut buf = [0u8; 4];
    let mut out = [0u8; 16];
    let (result, _, _) =
        codec.new_encoder().encode_from_utf8_without_replacement(c.encode_utf8(&mut buf), &mut out, true);
    result == encoding_rs::EncoderResult::InputEmpty
}

/// ISO 8859-9 is Latin-1 with six Turkish letters in place of Icelandic ones.
const LATIN5_DIFFERENCES: [(u8, char); 6] =
    [(0xD0, 'Ğ'), (0xDD, 'İ'), (0xDE, 'Ş'), (0xF0, 'ğ'), (0xFD, 'ı'), (0xFE, 'ş')];

fn latin5_char(b: u8) -> char {
    LATIN5_DIFFERENCES.iter().find(|(byte, _)| *byte == b).map_or(char::from(b), |&(_, c)| c)
}

fn latin5_byte(c: char) -> u8 {
    if let Some(&(b, _)) = LATIN5_DIFFERENCES.iter().find(|(_, ch)| *ch == c) {
        return b;
    }
    match u8::try_from(c) {
        Ok(b) if !LATIN5_DIFFERENCES.iter().any(|(byte, _)| *byte == b) => b,
        _ => b'?',
    }
}

impl fmt::Display for Charset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A configured charset name that zenedge does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown character set {0:?}: expected an HL7 table 0211 name such as \"8859/1\", \
     \"8859/15\", \"UNICODE UTF-8\" or \"ASCII\""
)]
pub struct UnknownCharset(pub String);

impl FromStr for Charset {
    type Err = UnknownCharset;

    /// Parses a configuration value; accepts what [`Charset::from_msh18`] accepts.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Charset::from_msh18(s).ok_or_else(|| UnknownCharset(s.to_owned()))
    }
}

#[cfg(test)]
#[path = "charset_tests.rs"]
mod tests;
