use super::*;

#[test]
fn msh18_is_found_at_byte_level() {
    let msh = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5|||||| 8859/1 ~ISO IR87\rPID|";
    assert_eq!(declared_in(msh, &Separators::default()), Declared::Known(Charset::Iso8859_1));
    let msh = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\r";
    assert_eq!(declared_in(msh, &Separators::default()), Declared::Nothing);
    let msh = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5||||||UNICODE UTF-16";
    assert_eq!(declared_in(msh, &Separators::default()), Declared::Unknown);
}

#[test]
fn japanese_code_extension_after_ascii_selects_iso_2022_jp() {
    let msh = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5||||||~ISO IR87";
    assert_eq!(declared_in(msh, &Separators::default()), Declared::Known(Charset::IsoIr87));
    let msh = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5||||||ASCII~ISO IR87";
    assert_eq!(declared_in(msh, &Separators::default()), Declared::Known(Charset::IsoIr87));
}

#[test]
fn undeclared_non_ascii_is_utf8_when_valid_else_fallback() {
    let d = decode_message("Jürgen".as_bytes(), Declared::Nothing, Charset::Iso8859_1);
    assert_eq!((d.text.as_ref(), d.charset, d.fallback), ("Jürgen", Charset::Utf8, false));
    let d = decode_message(b"J\xFCrgen", Declared::Nothing, Charset::Iso8859_1);
    assert_eq!((d.text.as_ref(), d.charset, d.fallback), ("Jürgen", Charset::Iso8859_1, true));
    let d = decode_message(b"Juergen", Declared::Nothing, Charset::Iso8859_1);
    assert_eq!((d.charset, d.fallback), (Charset::Ascii, false));
}

#[test]
fn bytes_invalid_in_the_declared_charset_fall_back_and_are_flagged() {
    let declared = Declared::Known(Charset::Utf8);
    let d = decode_message(b"M\xFCller", declared, Charset::Iso8859_1);
    assert_eq!((d.text.as_ref(), d.fallback), ("Müller", true));
    let d = decode_message(b"M\xFCller", Declared::Unknown, Charset::Iso8859_15);
    assert_eq!((d.charset, d.fallback), (Charset::Iso8859_15, true));
}

#[test]
fn a_fallback_that_cannot_decode_replaces_instead_of_failing() {
    let d = decode_message(b"M\xFCller", Declared::Unknown, Charset::Utf8);
    assert_eq!(d.text, "M\u{FFFD}ller");
    let d = decode_message(b"M\xFCller", Declared::Unknown, Charset::Ascii);
    assert_eq!(d.text, "M\u{FFFD}ller");
}
