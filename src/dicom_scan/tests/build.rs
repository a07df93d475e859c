//! Test datasets: realistic ones written by dicom-object, hand-made (and broken) ones written
//! byte by byte, and readers that misbehave on purpose.

use std::io::{self, Read, Write};

use dicom_core::value::{DataSetSequence, PixelFragmentSequence};
use dicom_core::{DataElement, Length, PrimitiveValue, Tag as DTag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use flate2::Compression;
use flate2::write::DeflateEncoder;

pub(super) const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
pub(super) const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
pub(super) const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
pub(super) const DEFLATED_LE: &str = "1.2.840.10008.1.2.1.99";

pub(super) const SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.2";
pub(super) const SOP_INSTANCE: &str = "1.2.826.0.1.3680043.8.498.1001";
pub(super) const STUDY: &str = "1.2.826.0.1.3680043.8.498.2002";
pub(super) const SERIES: &str = "1.2.826.0.1.3680043.8.498.3003";

pub(super) const OTHER_PATIENT_IDS: DTag = DTag(0x0010, 0x1000);
pub(super) const OTHER_PATIENT_IDS_SEQUENCE: DTag = DTag(0x0010, 0x1002);

fn text(tag: DTag, vr: VR, value: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

/// A CT instance with every kept attribute, other IDs in both places, and native pixel data.
pub(super) fn full_instance(charset: &str, patient_name: &str) -> InMemDicomObject {
    let other_id = |id: &str| InMemDicomObject::from_element_iter([text(tags::PATIENT_ID, VR::LO, id)]);
    let sequence = DataSetSequence::new(vec![other_id("SEQ-1"), other_id("SEQ-2")], Length::UNDEFINED);
    let mut object = InMemDicomObject::from_element_iter([
        text(tags::SPECIFIC_CHARACTER_SET, VR::CS, charset),
        text(tags::SOP_CLASS_UID, VR::UI, SOP_CLASS),
        text(tags::SOP_INSTANCE_UID, VR::UI, SOP_INSTANCE),
        text(tags::STUDY_DATE, VR::DA, "20240131"),
        text(tags::STUDY_TIME, VR::TM, "101500"),
        text(tags::ACCESSION_NUMBER, VR::SH, "ACC-42"),
        text(tags::MODALITY, VR::CS, "CT"),
        text(tags::STUDY_DESCRIPTION, VR::LO, "CT HEAD"),
        text(tags::PATIENT_NAME, VR::PN, patient_name),
        text(tags::PATIENT_ID, VR::LO, "PID-001"),
        text(tags::ISSUER_OF_PATIENT_ID, VR::LO, "HOSP"),
        text(OTHER_PATIENT_IDS, VR::LO, "OLD-1\\OLD-2"),
        DataElement::new(OTHER_PATIENT_IDS_SEQUENCE, VR::SQ, sequence),
        text(tags::STUDY_INSTANCE_UID, VR::UI, STUDY),
        text(tags::SERIES_INSTANCE_UID, VR::UI, SERIES),
        text(tags::SERIES_NUMBER, VR::IS, "3"),
        text(tags::INSTANCE_NUMBER, VR::IS, "12"),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(2_u16)),
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(2_u16)),
    ]);
    object.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(vec![0_u8; 8])));
    object
}

/// The same instance with its pixel data as encapsulated fragments.
pub(super) fn encapsulated(mut object: InMemDicomObject) -> InMemDicomObject {
    let fragments = PixelFragmentSequence::new_fragments(vec![vec![0xFF, 0xD8, 0xFF, 0xD9]]);
    object.put(DataElement::new(tags::PIXEL_DATA, VR::OB, fragments));
    object
}

/// The dataset of `object` as dicom-object writes it in `ts_uid` (deflate done here, so
/// dicom-rs needs no deflate feature).
pub(super) fn write(object: &InMemDicomObject, ts_uid: &str) -> Vec<u8> {
    if ts_uid == DEFLATED_LE {
        return deflate(&write(object, EXPLICIT_LE));
    }
    let ts = TransferSyntaxRegistry.get(ts_uid).unwrap_or_else(|| panic!("dicom-rs knows {ts_uid}"));
    let mut out = Vec::new();
    object.write_dataset_with_ts(&mut out, ts).expect("dicom-object writes the dataset");
    out
}

pub(super) fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("deflate into a Vec");
    encoder.finish().expect("deflate into a Vec")
}

/// Hand-made datasets: any header, any length, any nesting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    Implicit,
    ExplicitLe,
    ExplicitBe,
}

#[derive(Debug, Clone)]
pub(super) struct Raw {
    layout: Layout,
    bytes: Vec<u8>,
}

impl Raw {
    pub(super) fn new(layout: Layout) -> Self {
        Raw { layout, bytes: Vec::new() }
    }

    fn u16(&mut self, v: u16) {
        let b = if self.layout == Layout::ExplicitBe { v.to_be_bytes() } else { v.to_le_bytes() };
        self.bytes.extend_from_slice(&b);
    }

    fn u32(&mut self, v: u32) {
        let b = if self.layout == Layout::ExplicitBe { v.to_be_bytes() } else { v.to_le_bytes() };
        self.bytes.extend_from_slice(&b);
    }

    /// Just a tag.
    pub(super) fn tag(mut self, group: u16, element: u16) -> Self {
        self.u16(group);
        self.u16(element);
        self
    }

    /// A header with any declared length; the VR is written only where the layout has one.
    pub(super) fn header(mut self, group: u16, element: u16, vr: &str, len: u32) -> Self {
        self = self.tag(group, element);
        if self.layout == Layout::Implicit || group == 0xFFFE {
            self.u32(len);
        } else if matches!(vr, "OB" | "OW" | "SQ" | "UN" | "UT" | "UC" | "UR" | "OD" | "OF" | "OL" | "OV" | "SV" | "UV")
        {
            self.bytes.extend_from_slice(vr.as_bytes());
            self.bytes.extend_from_slice(&[0, 0]);
            self.u32(len);
        } else {
            self.bytes.extend_from_slice(vr.as_bytes());
            self.u16(u16::try_from(len).expect("short length"));
        }
        self
    }

    /// Raw bytes appended as they are.
    pub(super) fn bytes(mut self, bytes: &[u8]) -> Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// An element with its value padded to even length (NUL for UI, space otherwise).
    pub(super) fn element(self, group: u16, element: u16, vr: &str, value: &[u8]) -> Self {
        let mut value = value.to_vec();
        if value.len() % 2 == 1 {
            value.push(if vr == "UI" { 0 } else { b' ' });
        }
        let len = u32::try_from(value.len()).expect("test value fits");
        self.header(group, element, vr, len).bytes(&value)
    }

    pub(super) fn text(self, group: u16, element: u16, vr: &str, value: &str) -> Self {
        self.element(group, element, vr, value.as_bytes())
    }

    /// A sequence of items; `defined` gives the sequence and its items defined lengths,
    /// otherwise both are delimited.
    pub(super) fn sequence(mut self, group: u16, element: u16, items: Vec<Raw>, defined: bool) -> Self {
        let mut body = Raw::new(self.layout);
        for item in items {
            body = if defined {
                let len = u32::try_from(item.bytes.len()).expect("test item fits");
                body.header(0xFFFE, 0xE000, "", len).bytes(&item.bytes)
            } else {
                body.header(0xFFFE, 0xE000, "", u32::MAX).bytes(&item.bytes).header(0xFFFE, 0xE00D, "", 0)
            };
        }
        if defined {
            let len = u32::try_from(body.bytes.len()).expect("test sequence fits");
            self = self.header(group, element, "SQ", len);
            self.bytes.extend_from_slice(&body.bytes);
        } else {
            self = self.header(group, element, "SQ", u32::MAX);
            self.bytes.extend_from_slice(&body.bytes);
            self = self.header(0xFFFE, 0xE0DD, "", 0);
        }
        self
    }

    pub(super) fn sop(self) -> Self {
        self.text(0x0008, 0x0016, "UI", SOP_CLASS).text(0x0008, 0x0018, "UI", SOP_INSTANCE)
    }

    pub(super) fn study_series(self) -> Self {
        self.text(0x0020, 0x000D, "UI", STUDY).text(0x0020, 0x000E, "UI", SERIES)
    }

    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }
}

/// A reader that serves `bytes[..allowed]` and fails any read that would need more, in
/// chunks of at most `chunk` bytes to exercise buffer refills.
#[derive(Debug)]
pub(super) struct Fence {
    bytes: Vec<u8>,
    pos: usize,
    allowed: usize,
    chunk: usize,
}

impl Fence {
    pub(super) fn new(bytes: Vec<u8>, allowed: usize, chunk: usize) -> Self {
        Fence { bytes, pos: 0, allowed, chunk }
    }
}

impl Read for Fence {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.allowed && self.pos < self.bytes.len() {
            return Err(io::Error::other("read past the fence"));
        }
        let end = self.allowed.min(self.bytes.len()).min(self.pos + self.chunk.min(buf.len()));
        let n = end.saturating_sub(self.pos);
        buf[..n].copy_from_slice(&self.bytes[self.pos..end]);
        self.pos = end;
        Ok(n)
    }
}

/// Offset just past the first element with tag (group, element) in an explicit VR LE
/// dataset with short-length VRs only before it; for placing fences.
pub(super) fn end_of_element(bytes: &[u8], group: u16, element: u16) -> usize {
    let needle = [group.to_le_bytes(), element.to_le_bytes()].concat();
    let at = bytes.windows(4).position(|w| w == needle.as_slice()).expect("element present");
    let len = u16::from_le_bytes([bytes[at + 6], bytes[at + 7]]);
    at + 8 + usize::from(len)
}
