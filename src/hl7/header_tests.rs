use super::*;

fn header(text: &str) -> Header {
    Header::read(&Message::parse(text, Charset::Ascii).unwrap())
}

#[test]
fn raw_fields_keep_their_escapes() {
    let h = header(
        "MSH|^~\\&|HIS^1.2.3^ISO|GEN\\T\\HOSP|ZE|RAD|20260101||ORM^O01^ORM_O01|ID\\F\\1|P|2.3.1|||AL|NE||8859/1\r",
    );
    assert_eq!(h.sending_application, "HIS^1.2.3^ISO");
    assert_eq!(h.sending_facility, "GEN\\T\\HOSP");
    assert_eq!(h.control_id, "ID\\F\\1");
    assert_eq!(
        (h.message_code.as_str(), h.trigger_event.as_str(), h.message_structure.as_str()),
        ("ORM", "O01", "ORM_O01")
    );
    assert_eq!((h.accept_ack_type.as_str(), h.application_ack_type.as_str()), ("AL", "NE"));
    assert_eq!(h.character_set, "8859/1");
    assert_eq!(h.version(), Some((2, 3)));
    assert!(h.is_enhanced_mode());
    assert_eq!(h.check(), Ok(()));
}

#[test]
fn missing_message_code_trigger_or_control_id_is_a_required_field_error() {
    let cases = [
        ("MSH|^~\\&|A|B|C|D|||^A01|1|P|2.5", "MSH^1^9"),
        ("MSH|^~\\&|A|B|C|D|||ADT|1|P|2.5", "MSH^1^9"),
        ("MSH|^~\\&|A|B|C|D|||ADT^A01||P|2.5", "MSH^1^10"),
        ("MSH|^~\\&|A|B|C|D|||ADT^A01|\"\"|P|2.5", "MSH^1^10"),
        ("MSH|^~\\&|A|B|C|D", "MSH^1^9"),
        ("MSH|^~\\&|A|B|C|D|||ADT^A01|\\H\\|P|2.5", "MSH^1^10"),
    ];
    for (text, location) in cases {
        let err = header(text).check().unwrap_err();
        assert_eq!((err.code, err.location.as_deref()), (101, Some(location)), "{text}");
    }
}

#[test]
fn v21_trigger_event_is_taken_from_evn1() {
    let h = header("MSH|^~\\&|A|B|C|D|||ADT|1|P|2.1\rEVN|A04|20260101\r");
    assert_eq!(h.trigger_event, "A04");
    assert_eq!(h.check(), Ok(()));
}

#[test]
fn msh10_is_found_by_the_field_separator_when_msh2_is_unusable() {
    let id = |raw: &[u8]| control_id_only(raw);
    assert_eq!(id(b"MSH|^~|RIS|H|ZE|RAD|20260314||ORM^O01|CTRL-7|P|2.5\rPID|1"), Some("CTRL-7".into()));
    assert_eq!(id(b"MSH#^^\\&#A#B#C#D#2026##ADT*A01#X|Y#P"), Some("X\\F\\Y".into()), "escaped for the ACK");
    assert_eq!(id(b"MSH|^~|RIS|H|ZE|RAD|20260314||ORM^O01|\rPID|1|2|3|4|5|6|7|8|9"), None, "MSH-10 empty");
    assert_eq!(id(b"MSH|^~|RIS|H|ZE|RAD|20260314||ORM^O01"), None, "no MSH-10");
    assert_eq!(id(b"MSH|^~|RIS|H|ZE|RAD|20260314||ORM^O01|\"\"|P"), None, "the explicit null");
    assert_eq!(id(b"MSHA^~A1A2A3A4A5A6A7A8A9"), None, "no usable field separator");
    assert_eq!(id(b"MSH|RIS|H|ZE|RAD|20260314||ORM^O01|C1|P|2.5"), None, "MSH-2 left out: fields shifted");
    assert_eq!(id(b"MSH||RIS|H|ZE|RAD|20260314||ORM^O01|C1|P|2.5"), None, "MSH-2 empty");
    assert_eq!(id(b"MSH|^~|RIS|H\xFC|ZE|RAD|20260314||ORM^O01|C1|P"), None, "not plain ASCII before it");
}

#[test]
fn version_parses_major_and_minor() {
    let version = |v: &str| header(&format!("MSH|^~\\&|||||||ADT^A01|1|P|{v}")).version();
    assert_eq!(version("2.5.1"), Some((2, 5)));
    assert_eq!(version("2.4"), Some((2, 4)));
    assert_eq!(version("2.10^DEU"), Some((2, 10)));
    assert_eq!(version("2"), Some((2, 0)));
    assert_eq!(version(""), None);
    assert_eq!(version("v2.x"), None);
}
