//! Character sets, trimming, and UID validation.

use encoding_rs::{GB18030, ISO_8859_5, ISO_8859_7};

use super::build::{EXPLICIT_LE, Layout, Raw, full_instance, write};
use super::{expected_full, expected_minimal, scan_bytes};
use crate::dicom_scan::{InstanceAttributes, ScanError};

/// A minimal dataset with a declared character set and a raw patient name.
fn with_name(charset: Option<&str>, name: &[u8]) -> InstanceAttributes {
    let mut raw = Raw::new(Layout::ExplicitLe);
    if let Some(charset) = charset {
        raw = raw.text(0x0008, 0x0005, "CS", charset);
    }
    let bytes = raw.sop().element(0x0010, 0x0010, "PN", name).study_series().into_bytes();
    scan_bytes(&bytes, EXPLICIT_LE).expect("valid dataset")
}

#[test]
fn latin1_patient_name_is_decoded() {
    let bytes = write(&full_instance("ISO_IR 100", "Müller^Jürgen"), EXPLICIT_LE);
    assert!(bytes.windows(6).any(|w| w == b"M\xfcller"), "dicom-object wrote Latin-1");
    assert_eq!(scan_bytes(&bytes, EXPLICIT_LE).expect("valid"), expected_full("ISO_IR 100", "Müller^Jürgen"));
}

#[test]
fn utf8_patient_name_is_decoded() {
    let bytes = write(&full_instance("ISO_IR 192", "Müller^Jürgen"), EXPLICIT_LE);
    assert!(bytes.windows(7).any(|w| w == "Müller".as_bytes()), "dicom-object wrote UTF-8");
    assert_eq!(scan_bytes(&bytes, EXPLICIT_LE).expect("valid"), expected_full("ISO_IR 192", "Müller^Jürgen"));
}

#[test]
fn latin1_bytes_map_to_their_own_code_points_not_windows_1252() {
    let scanned = with_name(Some("ISO_IR 100"), b"A\x80\x9f\xa4");
    assert_eq!(scanned.patient_name.as_deref(), Some("A\u{80}\u{9f}\u{a4}"));
}

#[test]
fn single_byte_character_sets_are_decoded() {
    let (cyrillic, _, _) = ISO_8859_5.encode("Иванов^Иван");
    assert_eq!(with_name(Some("ISO_IR 144"), &cyrillic).patient_name.as_deref(), Some("Иванов^Иван"));
    let (greek, _, _) = ISO_8859_7.encode("Διονυσιος");
    assert_eq!(with_name(Some("ISO_IR 126"), &greek).patient_name.as_deref(), Some("Διονυσιος"));
    let latin9 = with_name(Some("ISO_IR 203"), b"\xa4uro");
    assert_eq!(latin9.patient_name.as_deref(), Some("€uro"));
}

#[test]
fn gb18030_patient_name_is_decoded() {
    let (bytes, _, _) = GB18030.encode("Wang^XiaoDong=王^小東=");
    let scanned = with_name(Some("GB18030"), &bytes);
    assert_eq!(scanned.patient_name.as_deref(), Some("Wang^XiaoDong=王^小東="));
    assert!(!scanned.charset_fallback);
}

#[test]
fn iso_2022_japanese_patient_name_is_decoded() {
    // PS3.5 Annex H.3.1, Yamada^Tarou in romaji, kanji and hiragana.
    let name: &[u8] = b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B";
    let scanned = with_name(Some("\\ISO 2022 IR 87"), name);
    assert_eq!(scanned.patient_name.as_deref(), Some("Yamada^Tarou=山田^太郎=やまだ^たろう"));
    assert!(!scanned.charset_fallback);
}

#[test]
fn iso_2022_japanese_half_width_katakana_is_decoded() {
    // PS3.5 Annex H.3.2: ISO 2022 IR 13 (katakana in G1) with IR 87.
    let name: &[u8] = b"\xd4\xcf\xc0\xde^\xc0\xdb\xb3=\x1b$B;3ED\x1b(J^\x1b$BB@O:\x1b(J=";
    let scanned = with_name(Some("ISO 2022 IR 13\\ISO 2022 IR 87"), name);
    assert_eq!(scanned.patient_name.as_deref(), Some("ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎="));
}

#[test]
fn iso_2022_korean_patient_name_is_decoded() {
    // PS3.5 Annex I.2: Hong^Gildong in romaja, hanja and hangul.
    let name: &[u8] = b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf";
    let scanned = with_name(Some("\\ISO 2022 IR 149"), name);
    assert_eq!(scanned.patient_name.as_deref(), Some("Hong^Gildong=洪^吉洞=홍^길동"));
}

#[test]
fn iso_2022_with_a_single_byte_g1_is_decoded() {
    let scanned = with_name(Some("ISO 2022 IR 100"), b"M\xfcller");
    assert_eq!(scanned.patient_name.as_deref(), Some("Müller"));
    let switched = with_name(Some("ISO 2022 IR 6\\ISO 2022 IR 144"), b"A\x1b-L\xb8\x1b(B");
    assert_eq!(switched.patient_name.as_deref(), Some("AИ"));
}

#[test]
fn unknown_character_set_falls_back_to_latin1_and_says_so() {
    let scanned = with_name(Some("ISO_IR 999"), b"M\xfcller");
    assert_eq!(scanned.patient_name.as_deref(), Some("Müller"));
    assert_eq!(scanned.specific_character_set.as_deref(), Some("ISO_IR 999"));
    assert!(scanned.charset_fallback);
}

#[test]
fn bytes_invalid_in_the_declared_character_set_fall_back_to_latin1() {
    let scanned = with_name(Some("ISO_IR 192"), b"M\xfcller");
    assert_eq!(scanned.patient_name.as_deref(), Some("Müller"));
    assert!(scanned.charset_fallback);
    let bad_escape = with_name(Some("\\ISO 2022 IR 87"), b"A\x1b%Z\xfc");
    assert_eq!(bad_escape.patient_name.as_deref(), Some("A\u{1b}%Z\u{fc}"));
    assert!(bad_escape.charset_fallback);
}

#[test]
fn undeclared_non_ascii_text_is_decoded_best_effort_and_flagged() {
    let utf8 = with_name(None, "Jürgen".as_bytes());
    assert_eq!((utf8.patient_name.as_deref(), utf8.charset_fallback), (Some("Jürgen"), true));
    let latin1 = with_name(None, b"J\xfcrgen");
    assert_eq!((latin1.patient_name.as_deref(), latin1.charset_fallback), (Some("Jürgen"), true));
    let ascii = with_name(Some("ISO_IR 6"), b"Smith^John");
    assert_eq!((ascii.patient_name.as_deref(), ascii.charset_fallback), (Some("Smith^John"), false));
}

#[test]
fn character_set_spelling_variants_are_understood() {
    for declared in ["ISO-IR 100", "iso_ir 100", "ISO_IR100", "ISO_IR 100\\"] {
        let scanned = with_name(Some(declared), b"M\xfcller");
        assert_eq!(scanned.patient_name.as_deref(), Some("Müller"), "{declared}");
        assert!(!scanned.charset_fallback, "{declared}");
    }
}

#[test]
fn multi_valued_ids_are_split_after_decoding_so_multibyte_backslashes_survive() {
    // In GB18030 the trail byte of a two-byte character may be 0x5C, the value delimiter.
    let (tricky, _, _) = GB18030.encode("乗");
    assert_eq!(tricky.last(), Some(&b'\\'));
    let mut value = tricky.to_vec();
    value.extend_from_slice(b"\\B");
    let bytes = Raw::new(Layout::ExplicitLe)
        .text(0x0008, 0x0005, "CS", "GB18030")
        .sop()
        .element(0x0010, 0x1000, "LO", &value)
        .study_series()
        .into_bytes();
    assert_eq!(scan_bytes(&bytes, EXPLICIT_LE).expect("valid").other_patient_ids, ["乗", "B"]);
}

#[test]
fn text_values_are_trimmed_and_empty_ones_are_absent() {
    let bytes = Raw::new(Layout::ExplicitLe)
        .sop()
        .text(0x0008, 0x0050, "SH", "")
        .text(0x0008, 0x0060, "CS", " MR ")
        .element(0x0010, 0x0010, "PN", b"  Doe^Jane \0")
        .text(0x0010, 0x0020, "LO", "    ")
        .study_series()
        .text(0x0020, 0x0011, "IS", " 7 ")
        .into_bytes();
    let scanned = scan_bytes(&bytes, EXPLICIT_LE).expect("valid");
    assert_eq!(scanned.accession_number, None);
    assert_eq!(scanned.modality.as_deref(), Some("MR"));
    assert_eq!(scanned.patient_name.as_deref(), Some("Doe^Jane"));
    assert_eq!(scanned.patient_id, None);
    assert_eq!(scanned.series_number.as_deref(), Some("7"));
}

#[test]
fn uids_padded_with_nul_or_space_are_accepted() {
    let bytes = Raw::new(Layout::ExplicitLe)
        .element(0x0008, 0x0016, "UI", format!("{}\0", super::SOP_CLASS).as_bytes())
        .element(0x0008, 0x0018, "UI", format!("{} ", super::SOP_INSTANCE).as_bytes())
        .study_series()
        .into_bytes();
    assert_eq!(scan_bytes(&bytes, EXPLICIT_LE).expect("valid"), expected_minimal());
}

#[test]
fn invalid_required_uids_are_refused_by_attribute_keyword() {
    let too_long = format!("1.{}", "2".repeat(63));
    assert_eq!(too_long.len(), 65);
    for bad in ["../../etc", "1.2.3/4", too_long.as_str(), "1..2", " 1.2", "1.2.03", "", "1.2.3\x001"] {
        let bytes = Raw::new(Layout::ExplicitLe)
            .sop()
            .text(0x0020, 0x000D, "UI", super::STUDY)
            .element(0x0020, 0x000E, "UI", bad.as_bytes())
            .into_bytes();
        let scanned = scan_bytes(&bytes, EXPLICIT_LE);
        assert!(
            matches!(scanned, Err(ScanError::InvalidUid { attribute: "SeriesInstanceUID" })),
            "{bad:?}: {scanned:?}"
        );
    }
}

#[test]
fn missing_required_attribute_is_named_by_keyword() {
    let class = |r: Raw| r.text(0x0008, 0x0016, "UI", super::SOP_CLASS);
    let instance = |r: Raw| r.text(0x0008, 0x0018, "UI", super::SOP_INSTANCE);
    let study = |r: Raw| r.text(0x0020, 0x000D, "UI", super::STUDY);
    let series = |r: Raw| r.text(0x0020, 0x000E, "UI", super::SERIES);
    let cases: [(Raw, &str); 4] = [
        (series(study(instance(Raw::new(Layout::ExplicitLe)))), "SOPClassUID"),
        (series(study(class(Raw::new(Layout::ExplicitLe)))), "SOPInstanceUID"),
        (series(instance(class(Raw::new(Layout::ExplicitLe)))), "StudyInstanceUID"),
        (study(instance(class(Raw::new(Layout::ExplicitLe)))), "SeriesInstanceUID"),
    ];
    for (raw, keyword) in cases {
        let scanned = scan_bytes(&raw.into_bytes(), EXPLICIT_LE);
        assert!(matches!(scanned, Err(ScanError::MissingAttribute(k)) if k == keyword), "{keyword}: {scanned:?}");
    }
}
