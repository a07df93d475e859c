use super::*;

#[test]
fn display_names_code_location_and_text() {
    let e = ErrorDetail::new(101, Some("MSH^1^10"), "MSH-10 is empty");
    assert_eq!(e.to_string(), "HL7 error 101 at MSH^1^10: MSH-10 is empty");
    let e = ErrorDetail::application_internal_error("store unavailable");
    assert_eq!(e.to_string(), "HL7 error 207: store unavailable");
}

#[test]
fn table_0357_texts_cover_the_codes_we_use() {
    for code in [0, 100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207] {
        assert!(table_0357_text(code).is_some(), "{code}");
    }
    assert_eq!(table_0357_text(999), None);
}
