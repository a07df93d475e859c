//! The attributes the scanner keeps: tags, keywords and value representations.
//!
//! This table is also the implicit VR dictionary: implicit VR datasets carry no VR, and the
//! only VRs the scanner needs are those of the attributes it keeps (PS3.6 §6).

use std::fmt;

/// A data element tag (group, element).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag {
    pub group: u16,
    pub element: u16,
}

impl Tag {
    pub const fn new(group: u16, element: u16) -> Self {
        Tag { group, element }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:04X},{:04X})", self.group, self.element)
    }
}

pub(super) const SPECIFIC_CHARACTER_SET: Tag = Tag::new(0x0008, 0x0005);
pub(super) const PATIENT_ID: Tag = Tag::new(0x0010, 0x0020);
pub(super) const OTHER_PATIENT_IDS_SEQUENCE: Tag = Tag::new(0x0010, 0x1002);
/// The largest tag kept: once past it with the required attributes seen, the scan stops.
pub(super) const LAST_KEPT: Tag = Tag::new(0x0020, 0x0013);
/// Item, Item Delimitation Item, Sequence Delimitation Item (PS3.5 §7.5).
pub(super) const ITEM: Tag = Tag::new(0xFFFE, 0xE000);
pub(super) const ITEM_DELIMITATION: Tag = Tag::new(0xFFFE, 0xE00D);
pub(super) const SEQUENCE_DELIMITATION: Tag = Tag::new(0xFFFE, 0xE0DD);

/// Top-level tags the scan stops at: pixel data of any kind and Data Set Trailing Padding.
pub(super) fn ends_scan(tag: Tag) -> bool {
    matches!((tag.group, tag.element), (0x7FE0, 0x0008..=0x0010) | (0xFFFC, 0xFFFC))
}

/// How a kept value is turned into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Text {
    /// UI: ASCII, only trailing NUL/space padding removed, then validated.
    Uid,
    /// CS, DA, TM, IS: ASCII, leading and trailing spaces removed.
    Ascii,
    /// PN, LO, SH: decoded per Specific Character Set, leading and trailing spaces removed.
    Decoded,
}

/// One kept top-level attribute.
#[derive(Debug, Clone, Copy)]
pub(super) struct Field {
    pub(super) tag: Tag,
    /// DICOM keyword, used in error messages (never the value).
    pub(super) keyword: &'static str,
    pub(super) text: Text,
    pub(super) required: bool,
}

const fn field(group: u16, element: u16, keyword: &'static str, text: Text, required: bool) -> Field {
    Field { tag: Tag::new(group, element), keyword, text, required }
}

/// Indexes into [`FIELDS`].
pub(super) mod ix {
    pub const SPECIFIC_CHARACTER_SET: usize = 0;
    pub const SOP_CLASS_UID: usize = 1;
    pub const SOP_INSTANCE_UID: usize = 2;
    pub const STUDY_DATE: usize = 3;
    pub const STUDY_TIME: usize = 4;
    pub const ACCESSION_NUMBER: usize = 5;
    pub const MODALITY: usize = 6;
    pub const STUDY_DESCRIPTION: usize = 7;
    pub const PATIENT_NAME: usize = 8;
    pub const PATIENT_ID: usize = 9;
    pub const ISSUER_OF_PATIENT_ID: usize = 10;
    pub const OTHER_PATIENT_IDS: usize = 11;
    pub const STUDY_INSTANCE_UID: usize = 12;
    pub const SERIES_INSTANCE_UID: usize = 13;
    pub const SERIES_NUMBER: usize = 14;
    pub const INSTANCE_NUMBER: usize = 15;
}

/// Kept top-level attributes in tag order (VR in the comment).
pub(super) const FIELDS: [Field; 16] = [
    field(0x0008, 0x0005, "SpecificCharacterSet", Text::Ascii, false), // CS
    field(0x0008, 0x0016, "SOPClassUID", Text::Uid, true),             // UI
    field(0x0008, 0x0018, "SOPInstanceUID", Text::Uid, true),          // UI
    field(0x0008, 0x0020, "StudyDate", Text::Ascii, false),            // DA
    field(0x0008, 0x0030, "StudyTime", Text::Ascii, false),            // TM
    field(0x0008, 0x0050, "AccessionNumber", Text::Decoded, false),    // SH
    field(0x0008, 0x0060, "Modality", Text::Ascii, false),             // CS
    field(0x0008, 0x1030, "StudyDescription", Text::Decoded, false),   // LO
    field(0x0010, 0x0010, "PatientName", Text::Decoded, false),        // PN
    field(0x0010, 0x0020, "PatientID", Text::Decoded, false),          // LO
    field(0x0010, 0x0021, "IssuerOfPatientID", Text::Decoded, false),  // LO
    field(0x0010, 0x1000, "OtherPatientIDs", Text::Decoded, false),    // LO, multi-valued
    field(0x0020, 0x000D, "StudyInstanceUID", Text::Uid, true),        // UI
    field(0x0020, 0x000E, "SeriesInstanceUID", Text::Uid, true),       // UI
    field(0x0020, 0x0011, "SeriesNumber", Text::Ascii, false),         // IS
    field(0x0020, 0x0013, "InstanceNumber", Text::Ascii, false),       // IS
];

/// The index of the kept top-level attribute with this tag.
pub(super) fn index_of(tag: Tag) -> Option<usize> {
    FIELDS.binary_search_by(|f| f.tag.cmp(&tag)).ok()
}

/// Bit set of the required fields, for "all required seen" checks.
pub(super) const REQUIRED_MASK: u32 = {
    let mut mask = 0;
    let mut i = 0;
    while i < FIELDS.len() {
        if FIELDS[i].required {
            mask |= 1 << i;
        }
        i += 1;
    }
    mask
};
