use super::*;
use proptest::prelude::*;

fn un(s: &str) -> String {
    unescape(s, &Separators::default(), Charset::Utf8).into_owned()
}

#[test]
fn separator_escapes_decode_to_the_messages_own_separators() {
    assert_eq!(un(r"A\F\B\S\C\T\D\R\E\E\F"), r"A|B^C&D~E\F");
    let custom = Separators::from_msh(b"MSH#*@!%#").unwrap();
    let s = unescape("a!F!b!S!c!E!d", &custom, Charset::Utf8);
    assert_eq!(s, "a#b*c!d");
}

#[test]
fn text_without_escape_character_is_borrowed() {
    assert!(matches!(unescape("plain", &Separators::default(), Charset::Utf8), Cow::Borrowed(_)));
}

#[test]
fn truncation_escape_needs_a_declared_truncation_character() {
    assert_eq!(un(r"a\P\b"), r"a\P\b");
    let seps = Separators::from_msh(b"MSH|^~\\&#|").unwrap();
    assert_eq!(unescape(r"a\P\b", &seps, Charset::Utf8), "a#b");
}

#[test]
fn hex_escapes_are_decoded_in_the_message_charset() {
    assert_eq!(un(r"M\XC3BC\ller"), "Müller");
    let seps = Separators::default();
    assert_eq!(unescape(r"M\XFC\ller", &seps, Charset::Iso8859_1), "Müller");
    assert_eq!(unescape(r"\XFC\", &seps, Charset::Utf8), "ü", "invalid UTF-8 falls back to Latin-1");
    assert_eq!(un(r"a\X0D0A\b"), "a\r\nb");
}

#[test]
fn line_break_commands_become_newlines_and_layout_commands_vanish() {
    assert_eq!(un(r"one\.br\two\.sp\three\.sp2\four"), "one\ntwo\nthree\nfour");
    assert_eq!(un(r"\H\bold\N\ \.in+4\\.ti-2\\.sk+1\\.ce\\.fi\\.nf\x"), "bold x");
}

#[test]
fn charset_switch_and_local_escapes_are_removed() {
    assert_eq!(un(r"a\C2842\b\M2442\c\M242842\d\Zlocal\e"), "abcde");
}

#[test]
fn unterminated_escape_is_kept_literally() {
    assert_eq!(un(r"50\% off"), r"50\% off");
    assert_eq!(un(r"ends with \"), r"ends with \");
    assert_eq!(un(r"\F"), r"\F");
}

#[test]
fn unknown_sequence_is_kept_and_a_following_valid_one_still_decodes() {
    assert_eq!(un(r"C:\temp\file"), r"C:\temp\file");
    assert_eq!(un(r"\Q\F\"), r"\Q|");
    assert_eq!(un(r"\\"), r"\\");
    assert_eq!(un(r"\XZZ\ \X1\ \.xx\ \.sp+\"), r"\XZZ\ \X1\ \.xx\ \.sp+\");
    assert_eq!(un(r"\.é\ \.bré\"), r"\.é\ \.bré\");
}

#[test]
fn escape_writes_separators_and_line_ends_as_sequences() {
    let seps = Separators::default();
    assert_eq!(escape("a|b^c&d~e\\f\rg\nh", &seps), r"a\F\b\S\c\T\d\R\e\E\f\X0D\g\X0A\h");
    let seps = Separators::from_msh(b"MSH|^~\\&#|").unwrap();
    assert_eq!(escape("#1", &seps), r"\P\1");
}

#[test]
fn without_a_subcomponent_separator_an_ampersand_is_data_and_t_is_no_escape() {
    let seps = Separators::from_msh(b"MSH|^~\\|").unwrap();
    assert_eq!(escape("R&D|x", &seps), r"R&D\F\x");
    assert_eq!(unescape(r"R&D \T\ \F\", &seps, Charset::Utf8), r"R&D \T\ |");
}

fn separators() -> impl Strategy<Value = Separators> {
    let pool: Vec<u8> = (0x21..0x7F).filter(|b: &u8| !b.is_ascii_alphanumeric()).collect();
    // MSH-1 and three, four or five encoding characters.
    (prop::sample::subsequence(pool, 6).prop_shuffle(), 4..=6usize).prop_map(|(chars, used)| {
        let mut msh = b"MSH".to_vec();
        msh.extend_from_slice(&chars[..used]);
        Separators::from_msh(&msh).expect("distinct punctuation is valid")
    })
}

proptest! {
    #[test]
    fn unescape_inverts_escape_for_any_string(s in any::<String>(), seps in separators()) {
        let escaped = escape(&s, &seps);
        prop_assert!(!escaped.contains(['\r', '\n', seps.field, seps.component]));
        prop_assert_eq!(unescape(&escaped, &seps, Charset::Utf8), s.as_str());
        prop_assert_eq!(unescape(&escaped, &seps, Charset::Iso8859_1), s.as_str());
    }

    #[test]
    fn unescape_never_panics_even_on_non_ascii_text(
        s in "[\\\\A-Za-z0-9.+ FSTREPXHNCMZ|^&~#äü中😀-]{0,40}",
        charset in prop::sample::select(vec![Charset::Utf8, Charset::Iso8859_1, Charset::Gb18030, Charset::IsoIr87]),
    ) {
        // See CRATES.md: hl7-parser 0.3 panics here on non-ASCII text.
        let _ = unescape(&s, &Separators::default(), charset);
    }
}
