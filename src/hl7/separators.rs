//! The message's own delimiters, read from MSH-1 and MSH-2.
//!
//! HL7 v2 lets every message choose its delimiters: MSH-1 is the character right after
//! `MSH` (the field separator) and MSH-2 lists, in this order, the component, repetition,
//! escape and subcomponent separators, plus (v2.7+) an optional truncation character.
//! `|^~\&` and `#` are only the recommended values, so nothing in this module hard-codes
//! them except [`Separators::default`], which is used when there is no message to copy
//! from (the minimal ACK for input without an MSH segment).
//!
//! MSH-2 may also hold just three characters (`^~\`): v2.3 §2.7 lets a sender that uses no
//! subcomponents leave the subcomponent separator out, and real senders do. Such a message
//! has no subcomponent separator at all ([`Separators::subcomponent`] is `None`): an `&` in
//! it is data. Fewer than three characters, more than five, or one character used twice
//! stays refused: the positions would then be guesswork.
//!
//! We insist on printable, non-alphanumeric ASCII separators that are all distinct. The
//! standard recommends exactly that, and it is what lets [`super::charset`] find MSH-18 at
//! byte level before the message is decoded.

use super::error::{ErrorDetail, codes};

/// The delimiters a message declares in MSH-1 and MSH-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Separators {
    /// MSH-1: between fields (recommended `|`).
    pub field: char,
    /// MSH-2, 1st character: between components (recommended `^`).
    pub component: char,
    /// MSH-2, 2nd character: between repetitions of a field (recommended `~`).
    pub repetition: char,
    /// MSH-2, 3rd character: starts and ends escape sequences (recommended `\`).
    pub escape: char,
    /// MSH-2, 4th character: between subcomponents (recommended `&`); `None` when MSH-2
    /// holds only three characters (no subcomponents in this message).
    pub subcomponent: Option<char>,
    /// MSH-2, 5th character (v2.7+, optional): the truncation character (recommended `#`).
    pub truncation: Option<char>,
}

impl Default for Separators {
    /// The recommended `|^~\&` (no truncation character), for messages we write from scratch.
    fn default() -> Self {
        Self { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: Some('&'), truncation: None }
    }
}

impl Separators {
    /// Reads the separators from the start of an MSH segment (`MSH|^~\&|…`).
    ///
    /// `msh` must start with `MSH`; it may run on past the segment end. Errors carry HL7
    /// table 0357 code 102 (data type error) and the location `MSH^1^1` or `MSH^1^2`.
    pub fn from_msh(msh: &[u8]) -> Result<Self, ErrorDetail> {
        // MSH-1: the single character right after the segment name.
        let field = match msh.get(3) {
            None | Some(b'\r' | b'\n') => {
                return Err(bad_msh1("MSH-1 (field separator) is missing"));
            }
            Some(&b) if !is_valid_separator(b) => {
                return Err(bad_msh1("MSH-1 (field separator) must be printable ASCII and not a letter or digit"));
            }
            Some(&b) => b,
        };
        // MSH-2: everything up to the next field separator or the end of the segment.
        let rest = &msh[4..];
        let end = rest.iter().position(|&b| b == field || b == b'\r' || b == b'\n').unwrap_or(rest.len());
        let chars = &rest[..end];
        if !(3..=5).contains(&chars.len()) {
            return Err(bad_msh2(
                "MSH-2 (encoding characters) must hold 4 characters (3 without subcomponents, 5 with a truncation character)",
            ));
        }
        if !chars.iter().all(|&b| is_valid_separator(b)) {
            return Err(bad_msh2("MSH-2 (encoding characters) must be printable ASCII and not letters or digits"));
        }
        let all_distinct = chars.iter().enumerate().all(|(i, &b)| b != field && !chars[i + 1..].contains(&b));
        if !all_distinct {
            return Err(bad_msh2("MSH-1 and MSH-2 must not use the same separator character twice"));
        }
        Ok(Self {
            field: char::from(field),
            component: char::from(chars[0]),
            repetition: char::from(chars[1]),
            escape: char::from(chars[2]),
            subcomponent: chars.get(3).map(|&b| char::from(b)),
            truncation: chars.get(4).map(|&b| char::from(b)),
        })
    }

    /// The MSH-2 value these separators produce, e.g. `^~\&`, `^~\&#` or `^~\`.
    pub fn encoding_characters(&self) -> String {
        let mut s = String::with_capacity(5);
        s.extend([self.component, self.repetition, self.escape]);
        s.extend(self.subcomponent);
        s.extend(self.truncation);
        s
    }

    /// True when `c` is one of the delimiters (the truncation character included).
    pub fn is_delimiter(&self, c: char) -> bool {
        c == self.field
            || c == self.component
            || c == self.repetition
            || c == self.escape
            || Some(c) == self.subcomponent
            || Some(c) == self.truncation
    }
}

/// Printable ASCII that is not a letter or digit (this excludes space, CR, LF and controls).
pub(crate) fn is_valid_separator(b: u8) -> bool {
    b.is_ascii_graphic() && !b.is_ascii_alphanumeric()
}

fn bad_msh1(text: &str) -> ErrorDetail {
    ErrorDetail::new(codes::DATA_TYPE_ERROR, Some("MSH^1^1"), text)
}

fn bad_msh2(text: &str) -> ErrorDetail {
    ErrorDetail::new(codes::DATA_TYPE_ERROR, Some("MSH^1^2"), text)
}

#[cfg(test)]
#[path = "separators_tests.rs"]
mod tests;
