use super::super::{ReadOptions, read};
use super::*;
use crate::hl7::Charset;
use crate::hl7::parse::Message;

const ORM: &str = "MSH|^~\\&|RIS|GENHOSP|ZENEDGE|RAD|20260314100000||ORM^O01^ORM_O01|CTRL\\F\\01|P|2.5.1\rPID|1||M1\r";

fn now() -> Timestamp {
    "2026-03-14T09:30:05Z".parse().unwrap()
}

fn header(text: &str) -> Header {
    match read(text.as_bytes(), &ReadOptions::default()) {
        Ok(received) => received.header,
        Err(rejection) => rejection.header.expect("a partial header"),
    }
}

fn ack(text: &str, code: AckCode, error: Option<&ErrorDetail>) -> String {
    let bytes = build(Some(&header(text)), code, error, "ZE-1", now()).expect("an ACK is wanted");
    String::from_utf8(bytes).expect("ASCII ACK")
}

/// Field `n` of the first `name` segment, raw.
fn field(ack: &str, name: &str, n: usize) -> String {
    let message = Message::parse(ack, Charset::Utf8).expect("the ACK parses");
    message.segment(name).map(|s| s.field(n).raw().to_owned()).unwrap_or_default()
}

#[test]
fn accept_swaps_sender_and_receiver_and_echoes_the_rest() {
    let a = ack(ORM, AckCode::Accept, None);
    assert_eq!(
        a,
        "MSH|^~\\&|ZENEDGE|RAD|RIS|GENHOSP|20260314093005+0000||ACK^O01^ACK|ZE-1|P|2.5.1\r\
         MSA|AA|CTRL\\F\\01\r"
    );
}

#[test]
fn msa2_echoes_the_inbound_control_id_with_its_escapes() {
    assert_eq!(field(&ack(ORM, AckCode::Accept, None), "MSA", 2), "CTRL\\F\\01");
}

#[test]
fn generated_values_are_escaped() {
    let error = ErrorDetail::new(101, Some("PID^1^3"), "bad | value ^ ~ \\ & here\rsecond line");
    let bytes = build(Some(&header(ORM)), AckCode::Error, Some(&error), "ID|^~\\&", now()).unwrap();
    let a = String::from_utf8(bytes).unwrap();
    assert_eq!(a.matches('\r').count(), 3, "only segment ends: {a:?}");
    assert_eq!(field(&a, "MSH", 10), "ID\\F\\\\S\\\\R\\\\E\\\\T\\");
    assert_eq!(field(&a, "ERR", 8), "bad \\F\\ value \\S\\ \\R\\ \\E\\ \\T\\ here\\X0D\\second line");
}

#[test]
fn custom_separators_are_used_for_the_ack() {
    let inbound = "MSH#*@!%#RIS#GENHOSP#ZENEDGE#RAD#20260314100000##ORM*O01#C1#P#2.5\r";
    let error = ErrorDetail::new(101, Some("PID^1^3"), "x*y");
    let a = ack(inbound, AckCode::Error, Some(&error));
    assert!(a.starts_with("MSH#*@!%#ZENEDGE#RAD#RIS#GENHOSP#20260314093005+0000##ACK*O01*ACK#ZE-1#P#2.5\r"), "{a}");
    assert!(a.contains("\rMSA#AE#C1\r"), "{a}");
    assert!(a.ends_with("ERR##PID*1*3#101*Required field missing*HL70357#E####x!S!y\r"), "{a}");
}

#[test]
fn a_message_without_subcomponent_separator_gets_an_ack_with_the_same_three_characters() {
    let inbound = "MSH|^~\\|RIS|R&D|ZENEDGE|RAD|20260314100000||ORM^O01|C&1|P|2.3\r";
    let a = ack(inbound, AckCode::Accept, None);
    assert_eq!(a, "MSH|^~\\|ZENEDGE|RAD|RIS|R&D|20260314093005+0000||ACK^O01^ACK|ZE-1|P|2.3\rMSA|AA|C&1\r");
    let error = ErrorDetail::new(101, Some("PID^1^3"), "R&D");
    let a = ack(inbound, AckCode::Error, Some(&error));
    assert!(a.ends_with("MSA|AE|C&1|R&D\rERR|PID^1^3^101\r"), "{a}");
}

#[test]
fn enhanced_mode_sends_only_the_acks_msh15_asks_for() {
    let with_msh15 = |v: &str| header(&format!("MSH|^~\\&|A|B|C|D|||ORM^O01|1|P|2.5|||{v}|NE"));
    let error = ErrorDetail::new(101, None, "x");
    let expected = [
        ("AL", [Some("CA"), Some("CE"), Some("CR")]),
        ("ER", [None, Some("CE"), Some("CR")]),
        ("SU", [Some("CA"), None, None]),
        ("NE", [None, None, None]),
        ("XX", [Some("CA"), Some("CE"), Some("CR")]),
        ("", [Some("AA"), Some("AE"), Some("AR")]),
    ];
    for (msh15, codes) in expected {
        let h = with_msh15(msh15);
        for (code, want) in [AckCode::Accept, AckCode::Error, AckCode::Reject].into_iter().zip(codes) {
            let got = build(Some(&h), code, Some(&error), "Z", now())
                .map(|b| field(&String::from_utf8(b).unwrap(), "MSA", 1));
            assert_eq!(got.as_deref(), want, "MSH-15 {msh15:?}, {code:?}");
        }
    }
}

#[test]
fn latin1_inbound_gets_a_latin1_ack_with_msh18_echoed() {
    let inbound = b"MSH|^~\\&|RIS|Klinik M\xFCnchen|ZENEDGE|RAD|20260314||ADT^A08|L1|P|2.5||||||8859/1\rPID|1||M1||M\xFCller^J\xFCrgen\r";
    let h = read(inbound, &ReadOptions::default()).unwrap().header;
    let bytes = build(Some(&h), AckCode::Accept, None, "Z", now()).unwrap();
    let expected = b"MSH|^~\\&|ZENEDGE|RAD|RIS|Klinik M\xFCnchen|20260314093005+0000||ACK^A08^ACK|Z|P|2.5||||||8859/1\rMSA|AA|L1\r";
    assert_eq!(bytes, expected);
}

#[test]
fn v25_and_later_report_errors_in_err2_err3_and_err8() {
    let error = ErrorDetail::new(101, Some("MSH^1^10"), "MSH-10 is empty");
    let a = ack(ORM, AckCode::Error, Some(&error));
    assert!(
        a.ends_with("MSA|AE|CTRL\\F\\01\rERR||MSH^1^10|101^Required field missing^HL70357|E||||MSH-10 is empty\r"),
        "{a}"
    );
}

#[test]
fn before_v25_errors_go_in_err1_and_msa3() {
    let inbound = "MSH|^~\\&|RIS|H|ZE|RAD|20260314||ORM^O01|C9|P|2.3.1\r";
    let error = ErrorDetail::new(101, Some("PID^1^3^1^1"), "PID-3 is empty");
    let a = ack(inbound, AckCode::Error, Some(&error));
    assert!(a.ends_with("MSA|AE|C9|PID-3 is empty\rERR|PID^1^3^101&Required field missing&HL70357\r"), "{a}");
    let a = ack(inbound, AckCode::Error, Some(&ErrorDetail::new(100, None, "no MSH")));
    assert!(a.ends_with("ERR|^^^100&Segment sequence error&HL70357\r"), "{a}");
}

#[test]
fn reject_without_detail_reports_application_internal_error() {
    let a = ack(ORM, AckCode::Reject, None);
    assert!(a.contains("\rMSA|AR|CTRL\\F\\01\r"), "{a}");
    assert!(a.ends_with("ERR|||207^Application internal error^HL70357|E||||Application internal error\r"), "{a}");
    let custom = ErrorDetail::new(206, None, "record locked");
    assert!(ack(ORM, AckCode::Reject, Some(&custom)).contains("|206^Application record locked^HL70357|"));
}

#[test]
fn accept_ignores_an_error_detail_and_error_without_detail_has_no_err() {
    let error = ErrorDetail::new(101, None, "x");
    assert!(!ack(ORM, AckCode::Accept, Some(&error)).contains("ERR"));
    assert!(!ack(ORM, AckCode::Error, None).contains("ERR"));
}

#[test]
fn unknown_codes_use_the_error_text_as_description() {
    let error = ErrorDetail::new(999, None, "custom");
    assert!(ack(ORM, AckCode::Error, Some(&error)).contains("|999^custom^HL70357|"));
}

#[test]
fn without_msh_a_minimal_ack_is_built_with_default_separators() {
    let error = ErrorDetail::new(100, Some("MSH^1"), "the first segment is not MSH");
    let bytes = build(None, AckCode::Error, Some(&error), "Z7", now()).unwrap();
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        "MSH|^~\\&|||||20260314093005+0000||ACK|Z7|P|2.5\rMSA|AE\r\
         ERR||MSH^1|100^Segment sequence error^HL70357|E||||the first segment is not MSH\r"
    );
}

#[test]
fn a_rejection_header_still_addresses_the_ack() {
    let rejection = read(b"MSH|^~\\&|RIS|H|ZE|RAD|20260314||ORM^O01||P|2.5\r", &ReadOptions::default()).unwrap_err();
    let bytes = build(rejection.header.as_ref(), AckCode::Error, Some(&rejection.error), "Z", now()).unwrap();
    let a = String::from_utf8(bytes).unwrap();
    assert!(a.starts_with("MSH|^~\\&|ZE|RAD|RIS|H|"), "{a}");
    assert!(a.contains("|MSH^1^10|101^"), "{a}");
}
