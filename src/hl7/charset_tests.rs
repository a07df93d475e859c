use super::*;

const ALL: [Charset; 18] = [
    Charset::Ascii,
    Charset::Iso8859_1,
    Charset::Iso8859_2,
    Charset::Iso8859_3,
    Charset::Iso8859_4,
    Charset::Iso8859_5,
    Charset::Iso8859_6,
    Charset::Iso8859_7,
    Charset::Iso8859_8,
    Charset::Iso8859_9,
    Charset::Iso8859_15,
    Charset::Utf8,
    Charset::IsoIr192,
    Charset::Gb18030,
    Charset::KsX1001,
    Charset::Big5,
    Charset::IsoIr87,
    Charset::IsoIr159,
];

#[test]
fn every_label_maps_back_to_its_charset() {
    for c in ALL {
        assert_eq!(Charset::from_msh18(c.label()), Some(c), "{c}");
        assert_eq!(c.label().parse::<Charset>(), Ok(c));
    }
}

#[test]
fn common_spellings_are_recognised() {
    assert_eq!(Charset::from_msh18(" utf-8 "), Some(Charset::Utf8));
    assert_eq!(Charset::from_msh18("ISO-8859-1"), Some(Charset::Iso8859_1));
    assert_eq!(Charset::from_msh18("ISO_IR 100"), Some(Charset::Iso8859_1));
    assert_eq!(Charset::from_msh18("iso-8859-15"), Some(Charset::Iso8859_15));
    assert_eq!(Charset::from_msh18("ISO_IR 192"), Some(Charset::IsoIr192));
    assert_eq!(Charset::from_msh18("GB18030"), Some(Charset::Gb18030));
    assert_eq!(Charset::from_msh18("UNICODE UTF-16"), None);
    assert_eq!(Charset::from_msh18("KLINGON"), None);
}

#[test]
fn unknown_config_value_explains_what_is_expected() {
    let err = "latin-42".parse::<Charset>().unwrap_err().to_string();
    assert!(err.contains("\"latin-42\"") && err.contains("8859/1"), "{err}");
}

#[test]
fn latin1_maps_every_byte_to_the_same_code_point() {
    let bytes: Vec<u8> = (0..=255).collect();
    let text = Charset::Iso8859_1.decode(&bytes).unwrap();
    assert!(text.chars().zip(0u32..).all(|(c, n)| u32::from(c) == n));
    assert_eq!(Charset::Iso8859_1.encode(&text), bytes);
}

#[test]
fn latin5_differs_from_latin1_in_six_turkish_letters() {
    let text = Charset::Iso8859_9.decode(b"\xDEi\xFEli \xD0\xFD \x80").unwrap();
    assert_eq!(text, "Şişli Ğı \u{80}");
    assert_eq!(Charset::Iso8859_9.encode(&text), b"\xDEi\xFEli \xD0\xFD \x80");
    assert_eq!(Charset::Iso8859_9.encode("Ð"), b"?");
}

#[test]
fn multibyte_charsets_round_trip_through_encoding_rs() {
    let cases = [
        (Charset::Gb18030, "张伟"),
        (Charset::Big5, "陳大文"),
        (Charset::KsX1001, "김민수"),
        (Charset::IsoIr87, "山田太郎"),
        (Charset::Iso8859_2, "Łódź"),
        (Charset::Iso8859_5, "Иванов"),
        (Charset::Iso8859_7, "Παπαδόπουλος"),
        (Charset::Iso8859_15, "€ Müller"),
    ];
    for (charset, text) in cases {
        let bytes = charset.encode(text);
        assert_eq!(charset.decode(&bytes).as_deref(), Some(text), "{charset}");
    }
}

#[test]
fn unencodable_characters_become_question_marks_not_html_references() {
    assert_eq!(Charset::Iso8859_2.encode("a€b张"), b"a?b?");
    assert_eq!(Charset::Ascii.encode("Müller"), b"M?ller");
    assert_eq!(Charset::Iso8859_1.encode("€"), b"?");
    assert!(!Charset::Big5.encode("Ж😀").contains(&b'&'));
}
