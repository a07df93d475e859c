//! Transfer syntaxes, early stop, and never reading pixel data.

use super::build::{
    DEFLATED_LE, EXPLICIT_BE, EXPLICIT_LE, Fence, IMPLICIT_LE, Layout, Raw, deflate, encapsulated, end_of_element,
    full_instance, write,
};
use super::{expected_full, expected_minimal, scan_bytes};
use crate::dicom_scan::{ScanError, ScanLimits, is_supported_transfer_syntax, scan};

const NAME: &str = "Müller^Jürgen";

fn scans_full_instance_in(ts: &str) {
    let bytes = write(&full_instance("ISO_IR 192", NAME), ts);
    let scanned = scan_bytes(&bytes, ts).unwrap_or_else(|e| panic!("{ts}: {e}"));
    assert_eq!(scanned, expected_full("ISO_IR 192", NAME), "{ts}");
}

#[test]
fn implicit_vr_little_endian_dataset_is_scanned() {
    scans_full_instance_in(IMPLICIT_LE);
}

#[test]
fn explicit_vr_little_endian_dataset_is_scanned() {
    scans_full_instance_in(EXPLICIT_LE);
}

#[test]
fn explicit_vr_big_endian_dataset_is_scanned() {
    scans_full_instance_in(EXPLICIT_BE);
}

#[test]
fn deflated_explicit_vr_little_endian_dataset_is_inflated_while_scanned() {
    let bytes = write(&full_instance("ISO_IR 192", NAME), DEFLATED_LE);
    assert!(scan_bytes(&bytes, EXPLICIT_LE).is_err(), "the test data really is deflated");
    scans_full_instance_in(DEFLATED_LE);
}

#[test]
fn jpip_referenced_deflate_syntaxes_are_inflated() {
    let bytes = deflate(&write(&full_instance("ISO_IR 192", NAME), EXPLICIT_LE));
    for ts in ["1.2.840.10008.1.2.4.95", "1.2.840.10008.1.2.4.205"] {
        assert_eq!(scan_bytes(&bytes, ts).expect(ts), expected_full("ISO_IR 192", NAME), "{ts}");
    }
}

/// Every encapsulated transfer syntax in PS3.6 Table A-1 (2025), including retired JPEG ones.
const ENCAPSULATED: &[&str] = &[
    "1.2.840.10008.1.2.1.98",
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.53",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.92",
    "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.94",
    "1.2.840.10008.1.2.4.100",
    "1.2.840.10008.1.2.4.100.1",
    "1.2.840.10008.1.2.4.101",
    "1.2.840.10008.1.2.4.101.1",
    "1.2.840.10008.1.2.4.102",
    "1.2.840.10008.1.2.4.102.1",
    "1.2.840.10008.1.2.4.103",
    "1.2.840.10008.1.2.4.103.1",
    "1.2.840.10008.1.2.4.104",
    "1.2.840.10008.1.2.4.104.1",
    "1.2.840.10008.1.2.4.105",
    "1.2.840.10008.1.2.4.105.1",
    "1.2.840.10008.1.2.4.106",
    "1.2.840.10008.1.2.4.106.1",
    "1.2.840.10008.1.2.4.107",
    "1.2.840.10008.1.2.4.108",
    "1.2.840.10008.1.2.4.110",
    "1.2.840.10008.1.2.4.111",
    "1.2.840.10008.1.2.4.112",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
    "1.2.840.10008.1.2.4.204",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.8.1",
];

#[test]
fn every_encapsulated_transfer_syntax_is_scanned_as_explicit_vr_little_endian() {
    let object = encapsulated(full_instance("ISO_IR 192", NAME));
    // dicom-rs writes the dataset of every one of these as explicit VR LE.
    let bytes = write(&object, "1.2.840.10008.1.2.4.50");
    for &ts in ENCAPSULATED {
        assert!(is_supported_transfer_syntax(ts), "{ts}");
        assert_eq!(scan_bytes(&bytes, ts).expect(ts), expected_full("ISO_IR 192", NAME), "{ts}");
    }
}

#[test]
fn unknown_image_compression_uid_is_treated_as_encapsulated_explicit_little_endian() {
    let bytes = write(&encapsulated(full_instance("ISO_IR 192", NAME)), EXPLICIT_LE);
    let scanned = scan_bytes(&bytes, "1.2.840.10008.1.2.4.999.1").expect("future codec");
    assert_eq!(scanned, expected_full("ISO_IR 192", NAME));
}

#[test]
fn unsupported_transfer_syntax_is_refused_with_a_sanitised_uid() {
    for ts in [
        "1.2.840.10008.1.2.6.1",
        "1.2.3",
        "",
        "1.2.840.10008.1.2.4.",
        "1.2.840.10008.1.2.4..1",
        "1.2.840.10008.1.2.4.x",
    ] {
        assert!(!is_supported_transfer_syntax(ts), "{ts}");
        assert!(matches!(scan_bytes(&[], ts), Err(ScanError::UnsupportedTransferSyntax(_))), "{ts}");
    }
    let hostile = format!("1.2\r\n\u{1b}[31m{}", "9".repeat(200));
    let Err(ScanError::UnsupportedTransferSyntax(shown)) = scan_bytes(&[], &hostile) else { panic!("refused") };
    assert!(shown.len() <= 32 && shown.chars().all(|c| c.is_ascii_graphic()), "{shown:?}");
}

#[test]
fn transfer_syntax_uid_padding_is_ignored() {
    let bytes = write(&full_instance("ISO_IR 192", NAME), EXPLICIT_LE);
    assert!(scan_bytes(&bytes, "1.2.840.10008.1.2.1\0").is_ok());
    assert!(scan_bytes(&bytes, "1.2.840.10008.1.2.1 ").is_ok());
}

#[test]
fn bytes_after_instance_number_are_never_read() {
    let bytes = write(&full_instance("ISO_IR 192", NAME), EXPLICIT_LE);
    let fence = end_of_element(&bytes, 0x0020, 0x0013);
    assert!(fence < bytes.len());
    for chunk in [1, 7, 4096, usize::MAX] {
        let scanned = scan(Fence::new(bytes.clone(), fence, chunk), EXPLICIT_LE, &ScanLimits::default());
        assert_eq!(scanned.expect("stops at the fence"), expected_full("ISO_IR 192", NAME), "chunk {chunk}");
    }
}

#[test]
fn scan_stops_at_the_first_tag_past_instance_number_when_that_is_absent() {
    let head = Raw::new(Layout::ExplicitLe).sop().study_series();
    let fence = head.len() + 4; // the next tag only
    let bytes = head.element(0x0028, 0x0010, "US", &[2, 0]).into_bytes();
    let scanned = scan(Fence::new(bytes, fence, 3), EXPLICIT_LE, &ScanLimits::default());
    assert_eq!(scanned.expect("stops at the tag"), expected_minimal());
}

#[test]
fn pixel_data_is_never_read() {
    // Series Instance UID is missing, so no early stop: the scan must stop at the pixel data.
    for (tag_element, vr) in [(0x0010, "OW"), (0x0008, "OF"), (0x0009, "OD")] {
        let head = Raw::new(Layout::ExplicitLe).sop().text(0x0020, 0x000D, "UI", super::STUDY);
        let fence = head.len() + 4;
        let bytes = head.header(0x7FE0, tag_element, vr, 0xFFFF_FFF0).bytes(&[0; 64]).into_bytes();
        let scanned = scan(Fence::new(bytes, fence, 5), EXPLICIT_LE, &ScanLimits::default());
        assert!(matches!(scanned, Err(ScanError::MissingAttribute("SeriesInstanceUID"))), "{scanned:?}");
    }
}

#[test]
fn encapsulated_pixel_data_is_never_walked() {
    let head = Raw::new(Layout::ExplicitLe).sop().text(0x0020, 0x000D, "UI", super::STUDY);
    let fence = head.len() + 4;
    let bytes = head.header(0x7FE0, 0x0010, "OB", u32::MAX).bytes(b"garbage fragments").into_bytes();
    let scanned = scan(Fence::new(bytes, fence, 64), "1.2.840.10008.1.2.4.50", &ScanLimits::default());
    assert!(matches!(scanned, Err(ScanError::MissingAttribute("SeriesInstanceUID"))), "{scanned:?}");
}

#[test]
fn trailing_padding_ends_the_scan() {
    let head = Raw::new(Layout::ExplicitLe).sop();
    let bytes = head.header(0xFFFC, 0xFFFC, "OB", 0xFFFF_FFF0).into_bytes();
    let scanned = scan_bytes(&bytes, EXPLICIT_LE);
    assert!(matches!(scanned, Err(ScanError::MissingAttribute("StudyInstanceUID"))), "{scanned:?}");
}

#[test]
fn dataset_ending_cleanly_without_pixel_data_is_scanned() {
    let bytes = Raw::new(Layout::ExplicitLe).sop().study_series().into_bytes();
    assert_eq!(scan_bytes(&bytes, EXPLICIT_LE).expect("complete"), expected_minimal());
}
