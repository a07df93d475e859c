//! Synthetic DICOM data sets (invented patients) in any transfer syntax the tests need.

use std::io::Write;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::scu::{CT_IMAGE_STORAGE, DEFLATED, DX_FOR_PRESENTATION, EXPLICIT_LE};

/// What distinguishes one test instance from another.
#[derive(Debug, Clone)]
pub struct Instance {
    /// SOP Class UID, also the file's Media Storage SOP Class.
    pub sop_class: String,
    pub study: String,
    pub series: String,
    pub sop: String,
    pub patient_id: String,
    pub patient_name: String,
    pub accession: String,
    pub modality: String,
    /// (0008,0005); `None` for the default repertoire.
    pub charset: Option<String>,
    /// Bytes of pixel data (OW), to vary the size.
    pub pixel_bytes: usize,
}

impl Instance {
    /// Instance `n` of series `series` of study `study` (UIDs under 1.2.826.0.1.3680043.10.999).
    pub fn ct(study: u32, series: u32, n: u32) -> Instance {
        let root = "1.2.826.0.1.3680043.10.999";
        Instance {
            sop_class: CT_IMAGE_STORAGE.into(),
            study: format!("{root}.{study}"),
            series: format!("{root}.{study}.{series}"),
            sop: format!("{root}.{study}.{series}.{n}"),
            patient_id: format!("PAT-{study}"),
            patient_name: "Doe^Jane".into(),
            accession: format!("ACC-{study}"),
            modality: "CT".into(),
            charset: None,
            pixel_bytes: 512,
        }
    }

    /// A Digital X-Ray "For Presentation" instance: a SOP class whose name does not end in
    /// "Storage".
    pub fn dx(study: u32, series: u32, n: u32) -> Instance {
        Instance { sop_class: DX_FOR_PRESENTATION.into(), modality: "DX".into(), ..Instance::ct(study, series, n) }
    }
}

fn element(tag: dicom_core::Tag, vr: VR, value: impl Into<PrimitiveValue>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, value.into())
}

fn object(i: &Instance, with_pixels: bool) -> InMemDicomObject {
    let mut elements = vec![
        element(tags::SOP_CLASS_UID, VR::UI, i.sop_class.as_str()),
        element(tags::SOP_INSTANCE_UID, VR::UI, i.sop.as_str()),
        element(tags::STUDY_DATE, VR::DA, "20261123"),
        element(tags::STUDY_TIME, VR::TM, "101500"),
        element(tags::ACCESSION_NUMBER, VR::SH, i.accession.as_str()),
        element(tags::MODALITY, VR::CS, i.modality.as_str()),
        element(tags::PATIENT_NAME, VR::PN, i.patient_name.as_str()),
        element(tags::PATIENT_ID, VR::LO, i.patient_id.as_str()),
        element(tags::STUDY_INSTANCE_UID, VR::UI, i.study.as_str()),
        element(tags::SERIES_INSTANCE_UID, VR::UI, i.series.as_str()),
        element(tags::SERIES_NUMBER, VR::IS, "1"),
        element(tags::INSTANCE_NUMBER, VR::IS, "1"),
        element(tags::ROWS, VR::US, 16_u16),
        element(tags::COLUMNS, VR::US, (i.pixel_bytes / 32).max(1) as u16),
    ];
    if let Some(cs) = &i.charset {
        elements.push(element(tags::SPECIFIC_CHARACTER_SET, VR::CS, cs.as_str()));
    }
    if with_pixels {
        elements.push(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(vec![0x11_u8; i.pixel_bytes])));
    }
    InMemDicomObject::from_element_iter(elements)
}

/// The data set of `i` encoded in transfer syntax `ts`.
pub fn dataset(i: &Instance, ts: &str) -> Vec<u8> {
    match ts {
        DEFLATED => {
            let plain = dataset(i, EXPLICIT_LE);
            let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(&plain).unwrap();
            z.finish().unwrap()
        }
        ts if ts.starts_with("1.2.840.10008.1.2.4.") || ts == "1.2.840.10008.1.2.5" => {
            // Encapsulated: explicit VR LE elements, then pixel data as fragments.
            let mut out = dataset_without_pixels(i, EXPLICIT_LE);
            out.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
            out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]); // empty offset table
            let fragment = vec![0xD8_u8; i.pixel_bytes.next_multiple_of(2)];
            out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
            out.extend_from_slice(&(fragment.len() as u32).to_le_bytes());
            out.extend_from_slice(&fragment);
            out.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]); // sequence delimiter
            out
        }
        ts => write(&object(i, true), ts),
    }
}

/// The data set without pixel data (the head of a big streamed instance).
pub fn dataset_without_pixels(i: &Instance, ts: &str) -> Vec<u8> {
    write(&object(i, false), ts)
}

fn write(obj: &InMemDicomObject, ts: &str) -> Vec<u8> {
    let ts = TransferSyntaxRegistry.get(ts).unwrap_or_else(|| panic!("unknown transfer syntax {ts}"));
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, ts).unwrap();
    out
}

/// Writes `i` as a Part 10 file in transfer syntax `ts` under `dir`; returns its path.
pub fn write_file(dir: &std::path::Path, i: &Instance, ts: &str) -> std::path::PathBuf {
    let mut bytes = vec![0u8; 128];
    bytes.extend_from_slice(b"DICM");
    dicom_object::meta::FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(i.sop_class.as_str())
        .media_storage_sop_instance_uid(i.sop.as_str())
        .transfer_syntax(ts)
        .implementation_class_uid("1.2.826.0.1.3680043.10.999.0")
        .build()
        .unwrap()
        .write(&mut bytes)
        .unwrap();
    bytes.extend_from_slice(&dataset(i, ts));
    let path = dir.join(format!("{}.dcm", i.sop));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The data set of a Part 10 file, parsed (to compare what was sent with what was stored).
pub fn read_dataset(path: &std::path::Path) -> InMemDicomObject {
    dicom_object::OpenFileOptions::new()
        .open_file(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_inner()
}

/// The data set bytes of a Part 10 file (after its File Meta Information) and its transfer
/// syntax.
pub fn dataset_bytes(path: &std::path::Path) -> (String, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[128..132], b"DICM", "{}", path.display());
    // (0002,0000) UL, explicit VR LE: tag 4, VR 2, length 2, value 4.
    let group_len = u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize;
    let start = 144 + group_len;
    let meta = dicom_object::meta::FileMetaTable::from_reader(&bytes[128..start]).unwrap();
    (meta.transfer_syntax().to_owned(), bytes[start..].to_vec())
}
