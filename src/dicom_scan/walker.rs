//! The element walker: reads element headers, keeps the few values wanted, skips the rest.
//!
//! Sequences are walked only when they must be: undefined-length ones (whose end is found by
//! walking their items to the delimiters, PS3.5 §7.5.2) and the Other Patient IDs Sequence
//! (whose items hold values we keep). Every other defined-length value, sequences included,
//! is skipped by length. The walk uses an explicit stack whose depth `max_depth` bounds, so
//! nesting costs no native stack.

use std::io::Read;

use super::fields::{
    FIELDS, ITEM, ITEM_DELIMITATION, LAST_KEPT, OTHER_PATIENT_IDS_SEQUENCE, PATIENT_ID, REQUIRED_MASK,
    SEQUENCE_DELIMITATION, SPECIFIC_CHARACTER_SET, Tag, ends_scan, index_of,
};
use super::reader::Source;
use super::syntax::Encoding;
use super::{ScanError, ScanLimits};

/// The value length meaning "undefined, look for a delimiter" (PS3.5 §7.1.1).
const UNDEFINED: u32 = 0xFFFF_FFFF;

/// What each value kept from the Other Patient IDs Sequence costs beyond its bytes.
const KEPT_OVERHEAD: u64 = 8;

/// What the walk collected: raw bytes of the kept values, decoded afterwards.
#[derive(Debug, Default)]
pub(super) struct Collected {
    /// Values of [`FIELDS`], by index.
    pub(super) values: [Option<Vec<u8>>; FIELDS.len()],
    /// Bit `i` set when `values[i]` was read.
    pub(super) seen: u32,
    /// Patient ID (0010,0020) of each Other Patient IDs Sequence item, in order.
    pub(super) sequence_ids: Vec<SequenceId>,
    /// Specific Character Set values found inside Other Patient IDs Sequence items.
    pub(super) item_charsets: Vec<Vec<u8>>,
    /// Bytes kept from the sequence so far, plus [`KEPT_OVERHEAD`] per value, so that many
    /// empty values cannot add up either; together bounded by `max_element_bytes`.
    sequence_bytes: u64,
}

impl Collected {
    fn required_seen(&self) -> bool {
        self.seen & REQUIRED_MASK == REQUIRED_MASK
    }
}

/// One Patient ID from an Other Patient IDs Sequence item.
#[derive(Debug)]
pub(super) struct SequenceId {
    pub(super) value: Vec<u8>,
    /// Index into [`Collected::item_charsets`] when the item declared its own character set.
    pub(super) charset: Option<usize>,
}

/// Walks the dataset in `source` and collects the kept values.
pub(super) fn walk<R: Read>(
    source: &mut Source<R>,
    encoding: Encoding,
    limits: &ScanLimits,
) -> Result<Collected, ScanError> {
    let dataset = Frame { kind: Kind::Dataset, end: None, bound: None, encoding, keep: false, charset: None };
    let mut walker = Walker { source, limits, stack: vec![dataset], depth: 0, out: Collected::default() };
    walker.run()?;
    Ok(walker.out)
}

/// A value representation as its two bytes (PS3.5 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Vr([u8; 2]);

impl Vr {
    const SQ: Vr = Vr(*b"SQ");
    const UN: Vr = Vr(*b"UN");

    /// VRs with 2 reserved bytes and a 4-byte length in explicit VR (PS3.5 Table 7.1-1).
    fn has_long_length(self) -> bool {
        matches!(
            &self.0,
            b"OB" | b"OD" | b"OF" | b"OL" | b"OV" | b"OW" | b"SQ" | b"SV" | b"UC" | b"UN" | b"UR" | b"UT" | b"UV"
        )
    }

    fn is_short(self) -> bool {
        matches!(
            &self.0,
            b"AE"
                | b"AS"
                | b"AT"
                | b"CS"
                | b"DA"
                | b"DS"
                | b"DT"
                | b"FD"
                | b"FL"
                | b"IS"
                | b"LO"
                | b"LT"
                | b"PN"
                | b"SH"
                | b"SL"
                | b"SS"
                | b"ST"
                | b"TM"
                | b"UI"
                | b"UL"
                | b"US"
        )
    }
}

/// An element header as read: `vr` is `None` in implicit VR and for items and delimiters.
#[derive(Debug, Clone, Copy)]
struct Header {
    tag: Tag,
    vr: Option<Vr>,
    /// Value length in bytes, or [`UNDEFINED`]; even unless undefined.
    len: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dataset,
    Sequence,
    Item,
}

/// One level of the walk.
#[derive(Debug, Clone, Copy)]
struct Frame {
    kind: Kind,
    /// Offset where a defined-length sequence or item ends; `None` when delimited.
    end: Option<u64>,
    /// The nearest enclosing defined end: nothing inside may cross it.
    bound: Option<u64>,
    /// Encoding of the content (implicit VR LE inside an undefined-length UN, PS3.5 §6.2.2).
    encoding: Encoding,
    /// Inside the top-level Other Patient IDs Sequence, whose items' Patient IDs are kept.
    keep: bool,
    /// The item's own Specific Character Set, as an index into `item_charsets`.
    charset: Option<usize>,
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

struct Walker<'a, R> {
    /// Where the bytes come from; also tracks the offset and the header limit.
    source: &'a mut Source<R>,
    /// Element size and depth limits.
    limits: &'a ScanLimits,
    /// The walk's current nesting; never empty while walking: the dataset frame stays at
    /// the bottom. At most `2 * max_depth + 1` frames (a sequence and an item per level).
    stack: Vec<Frame>,
    /// Number of sequence frames on the stack, checked against `max_depth`.
    depth: u32,
    /// What has been kept so far.
    out: Collected,
}

impl<R: Read> Walker<'_, R> {
    fn run(&mut self) -> Result<(), ScanError> {
        while let Some(&frame) = self.stack.last() {
            if frame.kind == Kind::Dataset {
                if self.dataset_element(frame)? == Flow::Stop {
                    return Ok(());
                }
                continue;
            }
            let pos = self.source.position();
            if frame.end == Some(pos) {
                self.pop(frame);
                continue;
            }
            if frame.bound.is_some_and(|bound| pos >= bound) {
                return Err(ScanError::Malformed("sequence item not delimited"));
            }
            let tag = self.read_tag(frame.encoding)?;
            let header = self.read_header(tag, frame)?;
            match frame.kind {
                Kind::Sequence => self.sequence_entry(frame, header)?,
                Kind::Item => self.item_entry(frame, header)?,
                Kind::Dataset => {}
            }
        }
        Ok(())
    }

    /// One top-level element; decides the early stop (see the module doc of `scan`).
    fn dataset_element(&mut self, frame: Frame) -> Result<Flow, ScanError> {
        if self.source.at_end()? {
            return Ok(Flow::Stop);
        }
        let tag = self.read_tag(frame.encoding)?;
        if ends_scan(tag) || (tag > LAST_KEPT && self.out.required_seen()) {
            return Ok(Flow::Stop);
        }
        let header = self.read_header(tag, frame)?;
        if tag.group == 0xFFFE {
            return Err(ScanError::Malformed("item or delimiter outside a sequence"));
        }
        match index_of(tag) {
            Some(index) => self.keep_field(index, header)?,
            None => self.enter_or_skip(frame, header, tag == OTHER_PATIENT_IDS_SEQUENCE)?,
        }
        let done = tag >= LAST_KEPT && self.out.required_seen() && self.stack.len() == 1;
        Ok(if done { Flow::Stop } else { Flow::Continue })
    }

    /// An entry directly inside a sequence: an item or the sequence delimiter.
    fn sequence_entry(&mut self, frame: Frame, header: Header) -> Result<(), ScanError> {
        match header.tag {
            ITEM if header.len == UNDEFINED => self.push(Kind::Item, None, frame.encoding, frame.keep),
            ITEM if frame.keep => {
                let end = self.source.position() + u64::from(header.len);
                self.push(Kind::Item, Some(end), frame.encoding, true)
            }
            ITEM => self.source.skip(u64::from(header.len)),
            SEQUENCE_DELIMITATION => self.close(frame, header),
            _ => Err(ScanError::Malformed("expected an item in a sequence")),
        }
    }

    /// An entry inside an item: an element or the item delimiter.
    fn item_entry(&mut self, frame: Frame, header: Header) -> Result<(), ScanError> {
        match header.tag {
            ITEM_DELIMITATION => self.close(frame, header),
            tag if tag.group == 0xFFFE => Err(ScanError::Malformed("unexpected delimiter in an item")),
            PATIENT_ID if frame.keep => {
                let value = self.keep_in_sequence(header)?;
                self.out.sequence_ids.push(SequenceId { value, charset: frame.charset });
                Ok(())
            }
            SPECIFIC_CHARACTER_SET if frame.keep => {
                let value = self.keep_in_sequence(header)?;
                self.out.item_charsets.push(value);
                if let Some(top) = self.stack.last_mut() {
                    top.charset = Some(self.out.item_charsets.len() - 1);
                }
                Ok(())
            }
            _ => self.enter_or_skip(frame, header, false),
        }
    }

    /// Walks into an element that must be walked (undefined length, or the kept sequence),
    /// or skips its value.
    fn enter_or_skip(&mut self, frame: Frame, header: Header, keep: bool) -> Result<(), ScanError> {
        if header.len == UNDEFINED {
            // Undefined length is a sequence (in implicit VR by definition; in explicit VR an
            // SQ, an UN holding implicit VR LE, or encapsulated fragments, all walked alike).
            let encoding = if header.vr == Some(Vr::UN) { Encoding::ImplicitLe } else { frame.encoding };
            return self.push(Kind::Sequence, None, encoding, keep);
        }
        if keep && header.vr.is_none_or(|vr| vr == Vr::SQ) {
            let end = self.source.position() + u64::from(header.len);
            return self.push(Kind::Sequence, Some(end), frame.encoding, true);
        }
        self.source.skip(u64::from(header.len))
    }

    fn keep_field(&mut self, index: usize, header: Header) -> Result<(), ScanError> {
        let bit = 1 << index;
        if self.out.seen & bit != 0 {
            return Err(ScanError::Malformed("duplicate attribute"));
        }
        let value = self.read_kept(header, header.tag)?;
        self.out.values[index] = Some(value);
        self.out.seen |= bit;
        Ok(())
    }

    /// Reads a value kept from the Other Patient IDs Sequence; all of them together are
    /// bounded by `max_element_bytes`, as if they were one element.
    fn keep_in_sequence(&mut self, header: Header) -> Result<Vec<u8>, ScanError> {
        self.out.sequence_bytes += u64::from(header.len) + KEPT_OVERHEAD;
        if self.out.sequence_bytes > u64::from(self.limits.max_element_bytes) {
            return Err(ScanError::ElementTooLarge { tag: OTHER_PATIENT_IDS_SEQUENCE });
        }
        self.read_kept(header, OTHER_PATIENT_IDS_SEQUENCE)
    }

    fn read_kept(&mut self, header: Header, reported: Tag) -> Result<Vec<u8>, ScanError> {
        if header.len == UNDEFINED {
            return Err(ScanError::Malformed("undefined length on a text attribute"));
        }
        if header.len > self.limits.max_element_bytes {
            return Err(ScanError::ElementTooLarge { tag: reported });
        }
        let mut value = Vec::new();
        self.source.read_into(header.len, &mut value)?;
        Ok(value)
    }

    fn push(&mut self, kind: Kind, end: Option<u64>, encoding: Encoding, keep: bool) -> Result<(), ScanError> {
        if kind == Kind::Sequence {
            if self.depth >= self.limits.max_depth {
                return Err(ScanError::TooDeep);
            }
            self.depth += 1;
        }
        let bound = end.or_else(|| self.stack.last().and_then(|parent| parent.bound));
        self.stack.push(Frame { kind, end, bound, encoding, keep, charset: None });
        Ok(())
    }

    /// Ends an undefined-length sequence or item at its delimiter.
    fn close(&mut self, frame: Frame, header: Header) -> Result<(), ScanError> {
        if frame.end.is_some() {
            return Err(ScanError::Malformed("delimiter inside a defined-length item"));
        }
        if header.len != 0 {
            return Err(ScanError::Malformed("delimiter with a non-zero length"));
        }
        self.pop(frame);
        Ok(())
    }

    fn pop(&mut self, frame: Frame) {
        if frame.kind == Kind::Sequence {
            self.depth -= 1;
        }
        self.stack.pop();
    }

    fn read_tag(&mut self, encoding: Encoding) -> Result<Tag, ScanError> {
        let [a, b, c, d] = self.source.take::<4>()?;
        Ok(Tag::new(encoding.u16([a, b]), encoding.u16([c, d])))
    }

    /// Reads the rest of the header after the tag (PS3.5 §7.1.2, §7.1.3, §7.5).
    fn read_header(&mut self, tag: Tag, frame: Frame) -> Result<Header, ScanError> {
        let encoding = frame.encoding;
        let (vr, len) = if !encoding.is_explicit() || tag.group == 0xFFFE {
            (None, encoding.u32(self.source.take::<4>()?))
        } else {
            let vr = Vr(self.source.take::<2>()?);
            if vr.has_long_length() {
                self.source.take::<2>()?; // reserved
                (Some(vr), encoding.u32(self.source.take::<4>()?))
            } else if vr.is_short() {
                (Some(vr), u32::from(encoding.u16(self.source.take::<2>()?)))
            } else {
                return Err(ScanError::Malformed("unknown value representation"));
            }
        };
        if len != UNDEFINED && len % 2 == 1 {
            return Err(ScanError::Malformed("odd value length"));
        }
        let value_end = self.source.position() + if len == UNDEFINED { 0 } else { u64::from(len) };
        if frame.bound.is_some_and(|bound| value_end > bound) {
            return Err(ScanError::Malformed("element overruns its sequence item"));
        }
        Ok(Header { tag, vr, len })
    }
}
