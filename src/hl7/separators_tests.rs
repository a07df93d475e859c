use super::*;

fn read(s: &str) -> Result<Separators, ErrorDetail> {
    Separators::from_msh(s.as_bytes())
}

#[test]
fn recommended_separators_are_read_from_msh1_and_msh2() {
    let seps = read("MSH|^~\\&|APP|").unwrap();
    assert_eq!(seps, Separators::default());
    assert_eq!(seps.encoding_characters(), "^~\\&");
}

#[test]
fn non_default_separators_are_read_in_order() {
    let seps = read("MSH#*@!%#APP").unwrap();
    assert_eq!(
        (seps.field, seps.component, seps.repetition, seps.escape, seps.subcomponent),
        ('#', '*', '@', '!', Some('%'))
    );
    assert_eq!(seps.truncation, None);
}

#[test]
fn v27_truncation_character_is_optional_fifth_encoding_character() {
    let seps = read("MSH|^~\\&#|APP").unwrap();
    assert_eq!(seps.truncation, Some('#'));
    assert_eq!(seps.encoding_characters(), "^~\\&#");
    assert!(seps.is_delimiter('#'));
}

#[test]
fn msh2_may_end_the_segment() {
    assert!(read("MSH|^~\\&\rPID|").is_ok());
    assert!(read("MSH|^~\\&").is_ok());
}

#[test]
fn missing_field_separator_is_rejected_at_msh1() {
    for s in ["MSH", "MSH\r", "MSH\nPID|"] {
        let e = read(s).unwrap_err();
        assert_eq!((e.code, e.location.as_deref()), (102, Some("MSH^1^1")), "{s:?}");
    }
}

#[test]
fn alphanumeric_or_whitespace_field_separator_is_rejected() {
    for s in ["MSHA^~\\&A", "MSH1^~\\&1", "MSH ^~\\& ", "MSH\t^~\\&\t"] {
        assert_eq!(read(s).unwrap_err().code, 102, "{s:?}");
    }
}

#[test]
fn three_encoding_characters_mean_no_subcomponent_separator() {
    for s in ["MSH|^~\\|APP", "MSH|^~\\", "MSH|^~\\\rPID|"] {
        let seps = read(s).unwrap();
        assert_eq!((seps.component, seps.repetition, seps.escape), ('^', '~', '\\'), "{s:?}");
        assert_eq!((seps.subcomponent, seps.truncation), (None, None), "{s:?}");
        assert_eq!(seps.encoding_characters(), "^~\\", "{s:?}");
        assert!(!seps.is_delimiter('&'), "{s:?}");
    }
}

#[test]
fn short_or_long_encoding_characters_are_rejected_at_msh2() {
    for s in ["MSH||APP", "MSH|^|APP", "MSH|^~|APP", "MSH|^~\\&#$|APP", "MSH|\r", "MSH|^~\r"] {
        let e = read(s).unwrap_err();
        assert_eq!((e.code, e.location.as_deref()), (102, Some("MSH^1^2")), "{s:?}");
    }
}

#[test]
fn repeated_separator_characters_are_rejected() {
    for s in ["MSH|^^\\&|", "MSH|^~\\^|", "MSH|^~\\&&|", "MSH|^~\\&^|", "MSH|^^\\|", "MSH|^~~|", "MSH|~~\\|"] {
        assert_eq!(read(s).unwrap_err().code, 102, "{s:?}");
    }
}

#[test]
fn letters_digits_and_non_ascii_encoding_characters_are_rejected() {
    for s in ["MSH|^~X&|", "MSH|^~\\9|", "MSH|^~ &|"] {
        assert_eq!(read(s).unwrap_err().code, 102, "{s:?}");
    }
    assert_eq!(Separators::from_msh(b"MSH|^~\\\xa7|").unwrap_err().code, 102);
}
