//! Splitting decoded message text into segments, fields, repetitions, components and
//! subcomponents. No I/O, no allocation per value: everything borrows the message text.
//!
//! Numbering follows the standard: positions start at 1, MSH-1 is the field separator
//! itself and MSH-2 the encoding characters (both returned verbatim, never split or
//! unescaped), MSH-3 is the first field after them; in every other segment SEG-1 is the
//! first field after the segment name. A position that is not present reads as empty.
//!
//! Every level can be read as a leaf: `raw()` (still escaped), `unescaped()`, `is_null()`
//! for the explicit null `""` ("delete this value"), and `value()`, which is `None` for
//! empty, `Some("")` for the explicit null and `Some(text)` otherwise. Asking a component
//! for a subcomponent it does not have is fine: `component(1)` of a plain value is the value.

use std::borrow::Cow;

use super::charset::Charset;
use super::error::{ErrorDetail, codes};
use super::escape::unescape;
use super::path::FieldPath;
use super::separators::Separators;

/// The explicit null: two double quotes.
const NULL: &str = "\"\"";

/// What every value needs to split and unescape itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Context {
    /// The message's delimiters, for splitting and unescaping.
    seps: Separators,
    /// The charset the text was decoded from, for `\X…\` escapes.
    charset: Charset,
}

/// A parsed message: its separators and its segments, borrowing the decoded text.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// Shared by all segments.
    ctx: Context,
    /// Never empty: the first one is MSH.
    segments: Vec<Segment<'a>>,
}

/// One segment, split into fields.
#[derive(Debug, Clone)]
pub struct Segment<'a> {
    /// Handed down to every field.
    ctx: Context,
    /// `fields[0]` is the segment name and `fields[n]` is SEG-n (MSH-1 included for MSH).
    fields: Vec<&'a str>,
}

/// One field (SEG-n), possibly repeating.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    /// The text as written, escape sequences included.
    raw: &'a str,
    /// Separators and charset, to split further and to unescape.
    ctx: Context,
    /// MSH-1 and MSH-2: taken verbatim, never split or unescaped.
    literal: bool,
}

/// One repetition of a field.
#[derive(Debug, Clone, Copy)]
pub struct Repetition<'a> {
    /// The text as written, escape sequences included.
    raw: &'a str,
    /// Separators and charset, to split further and to unescape.
    ctx: Context,
    /// Inherited from MSH-1/MSH-2: never split or unescaped.
    literal: bool,
}

/// One component of a repetition.
#[derive(Debug, Clone, Copy)]
pub struct Component<'a> {
    /// The text as written, escape sequences included.
    raw: &'a str,
    /// Separators and charset, to split further and to unescape.
    ctx: Context,
    /// Inherited from MSH-1/MSH-2: never split or unescaped.
    literal: bool,
}

/// One subcomponent of a component.
#[derive(Debug, Clone, Copy)]
pub struct Subcomponent<'a> {
    /// The text as written, escape sequences included.
    raw: &'a str,
    /// Separators and charset, to split further and to unescape.
    ctx: Context,
    /// Inherited from MSH-1/MSH-2: never split or unescaped.
    literal: bool,
}

impl<'a> Message<'a> {
    /// Splits `text` (already decoded from `charset`) into segments.
    ///
    /// Segments may end with `\r`, `\n` or `\r\n`; empty lines are skipped. The first
    /// segment must be MSH (code 100) with usable separators (code 102).
    pub fn parse(text: &'a str, charset: Charset) -> Result<Self, ErrorDetail> {
        let mut lines = text.split(['\r', '\n']).filter(|line| !line.is_empty());
        let first = lines.next().unwrap_or_default();
        if !first.starts_with("MSH") {
            return Err(sequence_error(first.as_bytes()));
        }
        let ctx = Context { seps: Separators::from_msh(first.as_bytes())?, charset };
        let segments = std::iter::once(first).chain(lines).map(|line| Segment::split(line, ctx)).collect();
        Ok(Self { ctx, segments })
    }

    /// The separators declared in MSH-1 and MSH-2.
    pub fn separators(&self) -> &Separators {
        &self.ctx.seps
    }

    /// The charset the text was decoded from (used for `\X…\` escapes).
    pub fn charset(&self) -> Charset {
        self.ctx.charset
    }

    /// All segments in order; the first is MSH.
    pub fn segments(&self) -> &[Segment<'a>] {
        &self.segments
    }

    /// The MSH segment.
    pub fn msh(&self) -> &Segment<'a> {
        &self.segments[0]
    }

    /// The first segment with this name.
    pub fn segment(&self, name: &str) -> Option<&Segment<'a>> {
        self.segments.iter().find(|s| s.name() == name)
    }
}

/// The error for input that does not start with an MSH segment (code 100).
pub(crate) fn sequence_error(raw: &[u8]) -> ErrorDetail {
    let what = if raw.is_empty() {
        "the message is empty"
    } else if raw.starts_with(b"FHS") || raw.starts_with(b"BHS") {
        "HL7 batches (FHS/BHS) are not accepted: send one message per frame"
    } else {
        "the first segment is not MSH"
    };
    ErrorDetail::new(codes::SEGMENT_SEQUENCE_ERROR, Some("MSH^1"), what)
}

/// A second MSH: the frame holds more than one message. Storing it as one would answer a
/// single ACK for several messages, so it is refused as a whole.
pub(crate) fn second_message(message: &Message<'_>) -> Option<ErrorDetail> {
    let index = message.segments().iter().skip(1).position(|s| s.name() == "MSH")? + 2;
    let text = format!("segment {index} starts a second message (MSH): send one message per frame");
    Some(ErrorDetail::new(codes::SEGMENT_SEQUENCE_ERROR, Some("MSH"), &text))
}

impl<'a> Segment<'a> {
    fn split(line: &'a str, ctx: Context) -> Self {
        let mut fields: Vec<&'a str> = line.split(ctx.seps.field).collect();
        // MSH-1 is the field separator itself: insert it so that fields[n] is MSH-n.
        if fields[0] == "MSH" && line.len() > 3 {
            let separator = &line[3..3 + ctx.seps.field.len_utf8()];
            fields.insert(1, separator);
        }
        Self { ctx, fields }
    }

    /// The segment name, e.g. `PID` (whatever precedes the first field separator).
    pub fn name(&self) -> &'a str {
        self.fields[0]
    }

    /// The highest field position present.
    pub fn field_count(&self) -> usize {
        self.fields.len() - 1
    }

    /// Field `n` (1-based; empty when absent).
    pub fn field(&self, n: usize) -> Field<'a> {
        let raw = if n == 0 { "" } else { self.fields.get(n).copied().unwrap_or_default() };
        Field { raw, ctx: self.ctx, literal: self.name() == "MSH" && (n == 1 || n == 2) }
    }

    /// The value a [`FieldPath`] points at, in the first repetition of the field.
    pub fn get(&self, path: &FieldPath) -> Subcomponent<'a> {
        self.field(path.field()).component(path.component()).subcomponent(path.subcomponent())
    }
}

/// Part `n` (1-based) of `raw` split on `sep`, or "" when absent.
fn part(raw: &str, sep: char, n: usize) -> &str {
    match n {
        0 => "",
        n => raw.split(sep).nth(n - 1).unwrap_or_default(),
    }
}

impl<'a> Field<'a> {
    /// Repetition `n` (1-based).
    pub fn repetition(&self, n: usize) -> Repetition<'a> {
        let raw = if self.literal { literal_part(self.raw, n) } else { part(self.raw, self.ctx.seps.repetition, n) };
        Repetition { raw, ctx: self.ctx, literal: self.literal }
    }

    /// All repetitions in order (one empty repetition for an empty field).
    pub fn repetitions(&self) -> impl Iterator<Item = Repetition<'a>> + use<'a> {
        let (ctx, literal) = (self.ctx, self.literal);
        let sep = if literal { None } else { Some(ctx.seps.repetition) };
        split_all(self.raw, sep).map(move |raw| Repetition { raw, ctx, literal })
    }

    /// Component `n` of the first repetition.
    pub fn component(&self, n: usize) -> Component<'a> {
        self.repetition(1).component(n)
    }
}

impl<'a> Repetition<'a> {
    /// Component `n` (1-based).
    pub fn component(&self, n: usize) -> Component<'a> {
        let raw = if self.literal { literal_part(self.raw, n) } else { part(self.raw, self.ctx.seps.component, n) };
        Component { raw, ctx: self.ctx, literal: self.literal }
    }

    /// All components in order.
    pub fn components(&self) -> impl Iterator<Item = Component<'a>> + use<'a> {
        let (ctx, literal) = (self.ctx, self.literal);
        let sep = if literal { None } else { Some(ctx.seps.component) };
        split_all(self.raw, sep).map(move |raw| Component { raw, ctx, literal })
    }
}

impl<'a> Component<'a> {
    /// Subcomponent `n` (1-based).
    pub fn subcomponent(&self, n: usize) -> Subcomponent<'a> {
        let raw = match self.ctx.seps.subcomponent {
            Some(sep) if !self.literal => part(self.raw, sep, n),
            // No subcomponent separator (three-character MSH-2): the component is its only part.
            _ => literal_part(self.raw, n),
        };
        Subcomponent { raw, ctx: self.ctx, literal: self.literal }
    }

    /// All subcomponents in order.
    pub fn subcomponents(&self) -> impl Iterator<Item = Subcomponent<'a>> + use<'a> {
        let (ctx, literal) = (self.ctx, self.literal);
        let sep = if literal { None } else { ctx.seps.subcomponent };
        split_all(self.raw, sep).map(move |raw| Subcomponent { raw, ctx, literal })
    }
}

/// A literal value (MSH-1/MSH-2) has exactly one part at every level.
fn literal_part(raw: &str, n: usize) -> &str {
    if n == 1 { raw } else { "" }
}

/// `raw` split on `sep`, or `raw` whole when there is no separator to split on.
fn split_all(raw: &str, sep: Option<char>) -> impl Iterator<Item = &str> {
    let sep = sep.unwrap_or('\r'); // CR never occurs inside a segment
    raw.split(sep)
}

/// The accessors every level shares.
macro_rules! leaf_accessors {
    ($($level:ident),*) => {$(
        impl<'a> $level<'a> {
            /// The text as it appears in the message (escape sequences not decoded).
            pub fn raw(&self) -> &'a str {
                self.raw
            }

            /// True when nothing was sent here.
            pub fn is_empty(&self) -> bool {
                self.raw.is_empty()
            }

            /// True for the explicit null `""` (the sender asks to delete the value).
            pub fn is_null(&self) -> bool {
                self.raw == NULL
            }

            /// The text with escape sequences decoded (verbatim for MSH-1 and MSH-2).
            pub fn unescaped(&self) -> Cow<'a, str> {
                if self.literal {
                    Cow::Borrowed(self.raw)
                } else {
                    unescape(self.raw, &self.ctx.seps, self.ctx.charset)
                }
            }

            /// `None` when empty, `Some("")` for the explicit null, else the unescaped text.
            pub fn value(&self) -> Option<Cow<'a, str>> {
                match self.raw {
                    "" => None,
                    NULL => Some(Cow::Borrowed("")),
                    _ => Some(self.unescaped()),
                }
            }

            /// [`Self::value`] as an owned `String`.
            pub fn text(&self) -> Option<String> {
                self.value().map(Cow::into_owned)
            }
        }
    )*};
}

leaf_accessors!(Field, Repetition, Component, Subcomponent);

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
