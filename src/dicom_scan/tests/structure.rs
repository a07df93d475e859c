//! Sequences, limits, and structurally broken datasets.

use std::io::{self, Read};

use super::build::{DEFLATED_LE, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE, Layout, Raw, deflate};
use super::{expected_minimal, scan_bytes};
use crate::dicom_scan::{MAX_OTHER_PATIENT_IDS, ScanError, ScanLimits, Tag, scan};

const LAYOUTS: [(Layout, &str); 3] =
    [(Layout::Implicit, IMPLICIT_LE), (Layout::ExplicitLe, EXPLICIT_LE), (Layout::ExplicitBe, EXPLICIT_BE)];

/// An item holding a few elements, one of them a nested sequence of the given kind.
fn item_with_nested(layout: Layout, defined: bool) -> Raw {
    let inner = Raw::new(layout).text(0x0008, 0x0100, "SH", "CODE").text(0x0008, 0x0104, "LO", "Meaning");
    Raw::new(layout).text(0x0008, 0x0100, "SH", "X").sequence(0x0040, 0xA043, vec![inner], defined)
}

#[test]
fn sequences_before_the_attributes_are_passed_in_every_layout() {
    for (layout, ts) in LAYOUTS {
        for (outer, nested) in [(false, false), (false, true), (true, false), (true, true)] {
            let items = vec![item_with_nested(layout, nested), item_with_nested(layout, !nested)];
            let bytes = Raw::new(layout)
                .sequence(0x0008, 0x0006, items, outer)
                .sop()
                .sequence(0x0009, 0x1010, vec![item_with_nested(layout, nested)], outer)
                .study_series()
                .into_bytes();
            let scanned = scan_bytes(&bytes, ts).unwrap_or_else(|e| panic!("{ts} {outer} {nested}: {e}"));
            assert_eq!(scanned, expected_minimal(), "{ts} outer defined {outer}, nested defined {nested}");
        }
    }
}

#[test]
fn patient_id_inside_an_unrelated_sequence_is_not_taken_as_the_patients() {
    let item = Raw::new(Layout::ExplicitLe).text(0x0010, 0x0020, "LO", "NOT-THE-PATIENT");
    let bytes =
        Raw::new(Layout::ExplicitLe).sop().sequence(0x0008, 0x1120, vec![item], false).study_series().into_bytes();
    let scanned = scan_bytes(&bytes, EXPLICIT_LE).expect("valid");
    assert_eq!(scanned.patient_id, None);
    assert!(scanned.other_patient_ids.is_empty());
}

#[test]
fn other_patient_ids_sequence_is_read_with_defined_and_undefined_lengths() {
    for (layout, ts) in LAYOUTS {
        for defined in [true, false] {
            let item = |id: &str| Raw::new(layout).text(0x0010, 0x0020, "LO", id).text(0x0010, 0x0022, "CS", "TEXT");
            let bytes = Raw::new(layout)
                .sop()
                .text(0x0010, 0x1000, "LO", "A\\\\B ")
                .sequence(0x0010, 0x1002, vec![item("S1"), item(" "), item("S2")], defined)
                .study_series()
                .into_bytes();
            let scanned = scan_bytes(&bytes, ts).unwrap_or_else(|e| panic!("{ts}: {e}"));
            assert_eq!(scanned.other_patient_ids, ["A", "B", "S1", "S2"], "{ts} defined {defined}");
        }
    }
}

#[test]
fn other_patient_id_item_with_its_own_character_set_is_decoded_with_it() {
    let item = Raw::new(Layout::ExplicitLe).text(0x0008, 0x0005, "CS", "ISO_IR 100").element(
        0x0010,
        0x0020,
        "LO",
        b"J\xfcrgen",
    );
    let bytes = Raw::new(Layout::ExplicitLe)
        .text(0x0008, 0x0005, "CS", "ISO_IR 192")
        .sop()
        .element(0x0010, 0x0010, "PN", "Jürgen".as_bytes())
        .sequence(0x0010, 0x1002, vec![item], false)
        .study_series()
        .into_bytes();
    let scanned = scan_bytes(&bytes, EXPLICIT_LE).expect("valid");
    assert_eq!(scanned.patient_name.as_deref(), Some("Jürgen"));
    assert_eq!(scanned.other_patient_ids, ["Jürgen"]);
    assert!(!scanned.charset_fallback);
}

#[test]
fn undefined_length_un_element_is_walked_as_implicit_vr() {
    // PS3.5 §6.2.2: an UN of undefined length holds an implicit VR LE sequence, even in BE.
    for (layout, ts) in [(Layout::ExplicitLe, EXPLICIT_LE), (Layout::ExplicitBe, EXPLICIT_BE)] {
        let inner = Raw::new(Layout::Implicit)
            .header(0xFFFE, 0xE000, "", u32::MAX)
            .text(0x0009, 0x0010, "LO", "PRIVATE")
            .header(0xFFFE, 0xE00D, "", 0)
            .header(0xFFFE, 0xE0DD, "", 0);
        let bytes = Raw::new(layout)
            .sop()
            .header(0x0009, 0x1010, "UN", u32::MAX)
            .bytes(&inner.into_bytes())
            .study_series()
            .into_bytes();
        assert_eq!(scan_bytes(&bytes, ts).unwrap_or_else(|e| panic!("{ts}: {e}")), expected_minimal());
    }
}

#[test]
fn encapsulated_fragments_inside_a_sequence_item_are_walked() {
    let icon = Raw::new(Layout::ExplicitLe)
        .text(0x0028, 0x0010, "US", "\u{2}\0")
        .header(0x7FE0, 0x0010, "OB", u32::MAX)
        .header(0xFFFE, 0xE000, "", 0)
        .header(0xFFFE, 0xE000, "", 4)
        .bytes(&[0xFF, 0xD8, 0xFF, 0xD9])
        .header(0xFFFE, 0xE0DD, "", 0);
    let bytes =
        Raw::new(Layout::ExplicitLe).sop().sequence(0x0009, 0x1010, vec![icon], false).study_series().into_bytes();
    assert_eq!(scan_bytes(&bytes, "1.2.840.10008.1.2.4.50").expect("valid"), expected_minimal());
}

/// `levels` nested undefined-length sequences, each in an undefined-length item.
fn nested(levels: usize, close: bool) -> Vec<u8> {
    let mut raw = Raw::new(Layout::ExplicitLe).sop();
    for _ in 0..levels {
        raw = raw.header(0x0009, 0x1010, "SQ", u32::MAX).header(0xFFFE, 0xE000, "", u32::MAX);
    }
    if close {
        for _ in 0..levels {
            raw = raw.header(0xFFFE, 0xE00D, "", 0).header(0xFFFE, 0xE0DD, "", 0);
        }
    }
    raw.study_series().into_bytes()
}

#[test]
fn depth_bomb_of_a_thousand_nested_sequences_is_refused() {
    let scanned = scan_bytes(&nested(1000, true), EXPLICIT_LE);
    assert!(matches!(scanned, Err(ScanError::TooDeep)), "{scanned:?}");
    let scanned = scan_bytes(&nested(1000, false), EXPLICIT_LE);
    assert!(matches!(scanned, Err(ScanError::TooDeep)), "{scanned:?}");
}

#[test]
fn nesting_up_to_max_depth_is_accepted_and_one_more_is_not() {
    let limits = ScanLimits::default();
    let levels = usize::try_from(limits.max_depth).expect("small");
    assert_eq!(scan(nested(levels, true).as_slice(), EXPLICIT_LE, &limits).expect("at the limit"), expected_minimal());
    let deeper = scan(nested(levels + 1, true).as_slice(), EXPLICIT_LE, &limits);
    assert!(matches!(deeper, Err(ScanError::TooDeep)), "{deeper:?}");
}

#[test]
fn truncated_element_value_is_reported_as_truncated() {
    let bytes = Raw::new(Layout::ExplicitLe).sop().study_series().into_bytes();
    for cut in [bytes.len() - 1, bytes.len() - 20, 9, 30] {
        let scanned = scan_bytes(&bytes[..cut], EXPLICIT_LE);
        assert!(matches!(scanned, Err(ScanError::Truncated)), "cut at {cut}: {scanned:?}");
    }
}

#[test]
fn truncated_element_header_is_reported_as_truncated() {
    let bytes = Raw::new(Layout::ExplicitLe).sop().bytes(&[0x20, 0x00, 0x0D]).into_bytes();
    assert!(matches!(scan_bytes(&bytes, EXPLICIT_LE), Err(ScanError::Truncated)));
}

#[test]
fn huge_declared_length_on_a_kept_element_is_refused_before_reading() {
    let implicit = Raw::new(Layout::Implicit).sop().header(0x0010, 0x0010, "PN", 0xFFFF_FFF0).into_bytes();
    let explicit = Raw::new(Layout::ExplicitLe).sop().header(0x0010, 0x0010, "UN", 0xFFFF_FFF0).into_bytes();
    for (bytes, ts) in [(implicit, IMPLICIT_LE), (explicit, EXPLICIT_LE)] {
        let scanned = scan_bytes(&bytes, ts);
        let patient_name = Tag::new(0x0010, 0x0010);
        assert!(matches!(scanned, Err(ScanError::ElementTooLarge { tag }) if tag == patient_name), "{scanned:?}");
    }
}

#[test]
fn huge_declared_length_on_a_skipped_element_is_truncated_without_allocating() {
    // Limits raised to the maximum: only the bytes actually present are ever read.
    let limits = ScanLimits { max_element_bytes: u32::MAX - 1, max_depth: 8, max_header_bytes: u64::MAX };
    let bytes = Raw::new(Layout::ExplicitLe).sop().header(0x0009, 0x1010, "OB", 0xFFFF_FFF0).bytes(&[0; 100]);
    let scanned = scan(bytes.into_bytes().as_slice(), EXPLICIT_LE, &limits);
    assert!(matches!(scanned, Err(ScanError::Truncated)), "{scanned:?}");
    let kept = Raw::new(Layout::Implicit).sop().header(0x0010, 0x0010, "PN", 0xFFFF_FFF0).bytes(&[b'A'; 100]);
    let scanned = scan(kept.into_bytes().as_slice(), IMPLICIT_LE, &limits);
    assert!(matches!(scanned, Err(ScanError::Truncated)), "{scanned:?}");
}

#[test]
fn attributes_beyond_the_header_limit_are_refused() {
    let limits = ScanLimits { max_header_bytes: 1_000, ..ScanLimits::default() };
    let bytes = Raw::new(Layout::ExplicitLe).sop().element(0x0009, 0x1010, "OB", &[0; 4_000]).study_series();
    let scanned = scan(bytes.into_bytes().as_slice(), EXPLICIT_LE, &limits);
    assert!(matches!(scanned, Err(ScanError::HeaderLimitExceeded { limit: 1_000 })), "{scanned:?}");
}

#[test]
fn inflated_bytes_count_against_the_header_limit() {
    let limits = ScanLimits { max_header_bytes: 10_000, ..ScanLimits::default() };
    let bomb = Raw::new(Layout::ExplicitLe).sop().element(0x0009, 0x1010, "OB", &[0; 1_000_000]).study_series();
    let bytes = deflate(&bomb.into_bytes());
    assert!(bytes.len() < 10_000);
    let scanned = scan(bytes.as_slice(), DEFLATED_LE, &limits);
    assert!(matches!(scanned, Err(ScanError::HeaderLimitExceeded { .. })), "{scanned:?}");
}

#[test]
fn other_patient_ids_together_are_bounded_by_the_element_limit() {
    let limits = ScanLimits { max_element_bytes: 64, ..ScanLimits::default() };
    let items = (0..10).map(|_| Raw::new(Layout::ExplicitLe).text(0x0010, 0x0020, "LO", &"9".repeat(16))).collect();
    let bytes = Raw::new(Layout::ExplicitLe).sop().sequence(0x0010, 0x1002, items, false).study_series();
    let scanned = scan(bytes.into_bytes().as_slice(), EXPLICIT_LE, &limits);
    let sequence = Tag::new(0x0010, 0x1002);
    assert!(matches!(scanned, Err(ScanError::ElementTooLarge { tag }) if tag == sequence), "{scanned:?}");
}

#[test]
fn other_patient_ids_are_kept_once_each_and_refused_beyond_the_limit() {
    let scan_ids = |ids: &[String]| {
        let items = ids.iter().map(|id| Raw::new(Layout::ExplicitLe).text(0x0010, 0x0020, "LO", id)).collect();
        let bytes = Raw::new(Layout::ExplicitLe)
            .sop()
            .text(0x0010, 0x1000, "LO", &ids.join("\\"))
            .sequence(0x0010, 0x1002, items, false)
            .study_series();
        scan_bytes(&bytes.into_bytes(), EXPLICIT_LE)
    };
    // Every id twice (the value, then the sequence): kept once, in order.
    let at_limit: Vec<String> = (0..MAX_OTHER_PATIENT_IDS).map(|i| format!("P{i}")).collect();
    assert_eq!(scan_ids(&at_limit).expect("at the limit").other_patient_ids, at_limit);
    let over: Vec<String> = (0..=MAX_OTHER_PATIENT_IDS).map(|i| format!("P{i}")).collect();
    let scanned = scan_ids(&over);
    assert!(matches!(scanned, Err(ScanError::TooManyPatientIds)), "{scanned:?}");
    let comment = scanned.unwrap_err().to_string();
    assert!(comment.len() <= 64 - "cannot understand: ".len(), "{comment}");
}

#[test]
fn many_empty_other_patient_ids_cannot_add_up_unbounded() {
    let items = (0..10_000).map(|_| Raw::new(Layout::ExplicitLe).header(0x0010, 0x0020, "LO", 0)).collect();
    let bytes = Raw::new(Layout::ExplicitLe).sop().sequence(0x0010, 0x1002, items, false).study_series();
    let scanned = scan_bytes(&bytes.into_bytes(), EXPLICIT_LE);
    assert!(matches!(scanned, Err(ScanError::ElementTooLarge { .. })), "{scanned:?}");
}

fn malformed(bytes: Vec<u8>, ts: &str) -> &'static str {
    match scan_bytes(&bytes, ts) {
        Err(ScanError::Malformed(why)) => why,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn odd_length_is_malformed() {
    let bytes = Raw::new(Layout::ExplicitLe).sop().header(0x0009, 0x1010, "OB", 3).bytes(&[1, 2, 3, 4]).into_bytes();
    assert_eq!(malformed(bytes, EXPLICIT_LE), "odd value length");
}

#[test]
fn unknown_vr_is_malformed() {
    let bytes = Raw::new(Layout::ExplicitLe).sop().tag(0x0009, 0x1010).bytes(b"zz\x02\x00ab").into_bytes();
    assert_eq!(malformed(bytes, EXPLICIT_LE), "unknown value representation");
}

#[test]
fn item_outside_a_sequence_is_malformed() {
    let bytes = Raw::new(Layout::ExplicitLe).sop().header(0xFFFE, 0xE000, "", 0).into_bytes();
    assert_eq!(malformed(bytes, EXPLICIT_LE), "item or delimiter outside a sequence");
}

#[test]
fn non_item_inside_a_sequence_is_malformed() {
    let bytes = Raw::new(Layout::ExplicitLe).sop().header(0x0009, 0x1010, "SQ", u32::MAX).study_series().into_bytes();
    assert_eq!(malformed(bytes, EXPLICIT_LE), "expected an item in a sequence");
}

#[test]
fn element_overrunning_its_item_is_malformed() {
    let item = Raw::new(Layout::ExplicitLe).text(0x0010, 0x0020, "LO", "ID").into_bytes();
    let bytes = Raw::new(Layout::ExplicitLe)
        .sop()
        .header(0x0010, 0x1002, "SQ", 8 + 6)
        .header(0xFFFE, 0xE000, "", 6) // the item claims 6 bytes, its element needs 10
        .bytes(&item)
        .study_series()
        .into_bytes();
    assert_eq!(malformed(bytes, EXPLICIT_LE), "element overruns its sequence item");
}

#[test]
fn undelimited_item_inside_a_defined_length_sequence_is_malformed() {
    let bytes = Raw::new(Layout::ExplicitLe)
        .sop()
        .header(0x0010, 0x1002, "SQ", 8) // walked, as its items are kept
        .header(0xFFFE, 0xE000, "", u32::MAX)
        .study_series()
        .into_bytes();
    assert_eq!(malformed(bytes, EXPLICIT_LE), "sequence item not delimited");
}

#[test]
fn delimiter_with_a_length_is_malformed() {
    let bytes = Raw::new(Layout::ExplicitLe)
        .sop()
        .header(0x0009, 0x1010, "SQ", u32::MAX)
        .header(0xFFFE, 0xE0DD, "", 4)
        .into_bytes();
    assert_eq!(malformed(bytes, EXPLICIT_LE), "delimiter with a non-zero length");
}

#[test]
fn duplicate_kept_attribute_is_malformed() {
    let bytes = Raw::new(Layout::ExplicitLe).sop().text(0x0008, 0x0018, "UI", "1.2.3").study_series().into_bytes();
    assert_eq!(malformed(bytes, EXPLICIT_LE), "duplicate attribute");
}

#[test]
fn corrupt_deflate_stream_is_malformed() {
    assert_eq!(malformed(vec![0xFF; 64], DEFLATED_LE), "corrupt deflate stream");
}

#[test]
fn deflate_stream_cut_short_is_truncated() {
    let whole = deflate(&Raw::new(Layout::ExplicitLe).sop().study_series().into_bytes());
    for cut in [0, 1, whole.len() / 2, whole.len() - 1] {
        let scanned = scan_bytes(&whole[..cut], DEFLATED_LE);
        assert!(matches!(scanned, Err(ScanError::Truncated)), "cut at {cut}: {scanned:?}");
    }
}

#[test]
fn empty_input_reports_the_first_missing_attribute() {
    for (bytes, ts) in
        [(vec![], IMPLICIT_LE), (vec![], EXPLICIT_LE), (vec![], EXPLICIT_BE), (deflate(&[]), DEFLATED_LE)]
    {
        assert!(matches!(scan_bytes(&bytes, ts), Err(ScanError::MissingAttribute("SOPClassUID"))), "{ts}");
    }
}

struct Failing;

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::ConnectionReset, "peer went away"))
    }
}

#[test]
fn reader_errors_are_reported_as_io_errors_even_through_deflate() {
    for ts in [EXPLICIT_LE, DEFLATED_LE] {
        let scanned = scan(Failing, ts, &ScanLimits::default());
        assert!(
            matches!(&scanned, Err(ScanError::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset),
            "{ts}: {scanned:?}"
        );
    }
}

#[test]
fn error_messages_fit_a_dicom_error_comment() {
    let errors = [
        ScanError::UnsupportedTransferSyntax("1.2.840.10008.1.2.4.100.1.99999".into()),
        ScanError::Truncated,
        ScanError::Malformed("element overruns its sequence item"),
        ScanError::TooDeep,
        ScanError::ElementTooLarge { tag: Tag::new(0x0010, 0x1002) },
        ScanError::HeaderLimitExceeded { limit: 64 * 1024 * 1024 },
        ScanError::MissingAttribute("SeriesInstanceUID"),
        ScanError::InvalidUid { attribute: "SeriesInstanceUID" },
    ];
    for error in errors {
        let message = error.to_string();
        assert!(message.len() <= 64, "{message} is {} characters", message.len());
    }
}
