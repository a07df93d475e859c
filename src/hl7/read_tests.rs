//! End-to-end tests of [`read`]: realistic messages in several charsets and layouts,
//! rejections, and property tests that it never panics and round-trips escaped values.
//! All names and identifiers are invented.

use proptest::prelude::*;

use super::ack::{AckCode, build};
use super::escape::escape;
use super::*;

fn accept(raw: &[u8]) -> Received {
    read(raw, &ReadOptions::default()).expect("accepted")
}

fn reject(raw: &[u8]) -> Rejection {
    read(raw, &ReadOptions::default()).expect_err("rejected")
}

fn family_name(received: &Received) -> Option<&str> {
    received.summary.patient.as_ref()?.name.as_ref()?.family.as_deref()
}

const LATIN1_ADT: &[u8] =
    b"MSH|^~\\&|HIS|Klinikum S\xFCd|ZENEDGE|RAD|20260314083000||ADT^A08^ADT_A01|LAT0001|P|2.5||||||8859/1\r\
    PID|1||MRN55^^^KSUED^MR||M\xFCller^J\xFCrgen||19621224|M\r";

#[test]
fn latin1_message_is_decoded_per_msh18() {
    let r = accept(LATIN1_ADT);
    assert_eq!(family_name(&r), Some("Müller"));
    let name = r.summary.patient.as_ref().unwrap().name.as_ref().unwrap();
    assert_eq!(name.given.as_deref(), Some("Jürgen"));
    assert_eq!(r.sender(), ("HIS", "Klinikum Süd"));
    assert_eq!(r.summary.declared_charset.as_deref(), Some("8859/1"));
    let japanese = accept(&message_in(Charset::IsoIr87, "~ISO IR87", "山田"));
    assert_eq!(japanese.summary.declared_charset.as_deref(), Some("~ISO IR87"));
    assert_eq!((r.summary.charset.as_str(), r.summary.charset_fallback), ("8859/1", false));
    assert_eq!(r.header.charset, Charset::Iso8859_1);
}

#[test]
fn utf8_message_is_decoded_per_msh18() {
    let raw = "MSH|^~\\&|HIS|Sjukhus|ZENEDGE|RAD|20260314083000||ADT^A04|UTF0001|P|2.6||||||UNICODE UTF-8\r\
               PID|1||MRN56||Ødegård^Åse||19900101|F\r";
    let r = accept(raw.as_bytes());
    assert_eq!(family_name(&r), Some("Ødegård"));
    assert_eq!((r.summary.charset.as_str(), r.summary.charset_fallback), ("UNICODE UTF-8", false));
}

#[test]
fn unknown_charset_label_falls_back_and_is_flagged() {
    let raw =
        b"MSH|^~\\&|HIS|H|ZENEDGE|RAD|20260314||ADT^A08|UNK0001|P|2.5||||||WINDOWS-1252-ISH\rPID|1||M1||M\xFCller\r";
    let r = accept(raw);
    assert_eq!(family_name(&r), Some("Müller"));
    assert_eq!(r.summary.declared_charset.as_deref(), Some("WINDOWS-1252-ISH"));
    assert_eq!((r.summary.charset.as_str(), r.summary.charset_fallback), ("8859/1", true));
}

#[test]
fn bytes_invalid_in_the_declared_charset_fall_back_to_the_configured_charset() {
    let raw = b"MSH|^~\\&|HIS|H|ZENEDGE|RAD|20260314||ADT^A08|BAD0001|P|2.5||||||UNICODE UTF-8\rPID|1||M1||M\xFCller\r";
    let opts = ReadOptions { fallback_charset: Charset::Iso8859_15, ..ReadOptions::default() };
    let r = read(raw, &opts).unwrap();
    assert_eq!(family_name(&r), Some("Müller"));
    assert_eq!((r.summary.charset.as_str(), r.summary.charset_fallback), ("8859/15", true));
}

#[test]
fn undeclared_utf8_is_accepted_without_a_fallback_flag() {
    let r = accept("MSH|^~\\&|HIS|H|||20260314||ADT^A08|U1|P|2.5\rPID|1||M1||Müller\r".as_bytes());
    assert_eq!(family_name(&r), Some("Müller"));
    assert_eq!(
        (r.summary.charset.as_str(), r.summary.charset_fallback, r.summary.declared_charset),
        ("UNICODE UTF-8", false, None)
    );
}

/// A message whose PID-5 family name is `name`, encoded in `charset` and declaring `msh18`.
fn message_in(charset: Charset, msh18: &str, name: &str) -> Vec<u8> {
    let text = format!(
        "MSH|^~\\&|HIS|H|ZENEDGE|RAD|20260314||ADT^A08|MB1|P|2.5||||||{msh18}\rPID|1||M1||{name}^X||19700101|M\r"
    );
    charset.encode(&text)
}

#[test]
fn multibyte_charsets_are_decoded_before_splitting_so_separator_bytes_inside_characters_are_safe() {
    // 億 is 0x83 0x7C in GB 18030 (0x7C = '|'); 俞 is 0xAB 0x5C in Big5 (0x5C = '\') and
    // 乞 0xA4 0x5E (0x5E = '^'); 万 is ESC $ B 0x4B 0x7C in ISO-2022-JP.
    let cases = [
        (Charset::Gb18030, "GB 18030-2000", "王億"),
        (Charset::Big5, "BIG-5", "俞乞"),
        (Charset::IsoIr87, "~ISO IR87", "山田万"),
        (Charset::KsX1001, "KS X 1001", "김민수"),
    ];
    for (charset, msh18, name) in cases {
        let raw = message_in(charset, msh18, name);
        let r = accept(&raw);
        assert_eq!(family_name(&r), Some(name), "{charset}");
        assert_eq!(r.summary.patient.as_ref().unwrap().birth_date.as_deref(), Some("19700101"), "{charset}");
        assert!(!r.summary.charset_fallback, "{charset}");
    }
    let separator_bytes =
        |charset: Charset, name: &str| charset.encode(name).into_iter().filter(|b| b"|^~\\&".contains(b)).count();
    assert_eq!(separator_bytes(Charset::Gb18030, "王億"), 1);
    assert_eq!(separator_bytes(Charset::Big5, "俞乞"), 2);
    assert_eq!(separator_bytes(Charset::IsoIr87, "山田万"), 1);
}

#[test]
fn newline_segment_ends_are_accepted() {
    let raw = "MSH|^~\\&|RIS|H|ZENEDGE|RAD|20260314||ORM^O01|NL0001|P|2.3\nPID|1||MRN9||Doe^John\nORC|NW|P1|F1\nOBR|1|P1|F1|XR^Chest||||||||||||||ACC9\n\n";
    let r = accept(raw.as_bytes());
    assert_eq!(family_name(&r), Some("Doe"));
    assert_eq!(r.summary.orders[0].accession_number.as_deref(), Some("ACC9"));
    let crlf = raw.replace('\n', "\r\n");
    assert_eq!(accept(crlf.as_bytes()).summary, r.summary);
}

#[test]
fn custom_separators_are_honoured_end_to_end() {
    let raw = "MSH#*@!%#RIS#GENHOSP#ZENEDGE#RAD#20260314##ORM*O01*ORM_O01#CS0001#P#2.3\r\
               PID#1##MRN7***GENHOSP*MR@ALT8##|Pipes!F!In*Name\r\
               ORC#NW#P7#F7\r\
               OBR#1#P7#F7#CT1*CT Head!S!Neck##############ACC7\r";
    let r = accept(raw.as_bytes());
    let patient = r.summary.patient.as_ref().unwrap();
    assert_eq!(patient.identifiers.len(), 2);
    assert_eq!(patient.identifiers[0].assigning_authority.as_deref(), Some("GENHOSP"));
    assert_eq!(patient.name.as_ref().unwrap().family.as_deref(), Some("|Pipes#In"));
    let order = &r.summary.orders[0];
    assert_eq!(order.procedure.as_ref().unwrap().text.as_deref(), Some("CT Head*Neck"));
    assert_eq!(order.accession_number.as_deref(), Some("ACC7"));
    assert_eq!(r.header.separators.field, '#');
}

#[test]
fn leading_blank_lines_and_a_byte_order_mark_are_skipped() {
    let r = accept(b"\r\n\xEF\xBB\xBFMSH|^~\\&|A|B|C|D|||ADT^A01|B1|P|2.5\r");
    assert_eq!(r.control_id(), "B1");
}

#[test]
fn structural_problems_are_rejected_with_table_0357_codes() {
    let cases: [(&[u8], u16, Option<&str>, bool); 7] = [
        (b"", 100, Some("MSH^1"), false),
        (b" \r\n", 100, Some("MSH^1"), false),
        (b"PID|1||M1\r", 100, Some("MSH^1"), false),
        (b"MSH|^~\\\\|A\r", 102, Some("MSH^1^2"), false),
        (b"MSH\r", 102, Some("MSH^1^1"), false),
        (b"MSH|^~\\&|A|B|C|D|||ADT|1|P|2.5\r", 101, Some("MSH^1^9"), true),
        (b"MSH|^~\\&|A|B|C|D|||ADT^A01||P|2.5\r", 101, Some("MSH^1^10"), true),
    ];
    for (raw, code, location, has_header) in cases {
        let r = reject(raw);
        assert_eq!(
            (r.error.code, r.error.location.as_deref(), r.header.is_some()),
            (code, location, has_header),
            "{raw:?}"
        );
    }
}

/// As a laboratory system sends it: MSH-2 without the subcomponent separator (allowed since
/// v2.3 when no subcomponents are used), an `&` in the data.
const WITHOUT_SUBCOMPONENTS: &str = "MSH|^~\\|LABSYS|R&D LAB|ZENEDGE|RAD|20260314101500||ORU^R01|LAB-3CHAR-1|P|2.3\r\
    PID|1||MRN31^^^HOSP^MR||Sample^Kim||19750505|F\r\
    OBR|1|PL31|FI31|CT^CT Abdomen & Pelvis^L|||20260314093000|||||||||||ACC31||||||CT\r\
    OBX|1|TX|RPT^Report||Liver \\T\\ spleen normal||||||F\r";

#[test]
fn three_encoding_characters_are_accepted_and_an_ampersand_is_data() {
    let r = accept(WITHOUT_SUBCOMPONENTS.as_bytes());
    assert_eq!(r.header.separators.subcomponent, None);
    assert_eq!(r.sender(), ("LABSYS", "R&D LAB"));
    let order = &r.summary.orders[0];
    assert_eq!(order.procedure.as_ref().unwrap().text.as_deref(), Some("CT Abdomen & Pelvis"));
    assert_eq!(order.accession_number.as_deref(), Some("ACC31"));
    assert_eq!(order.modality.as_deref(), Some("CT"));
    let a = String::from_utf8(build(Some(&r.header), AckCode::Accept, None, "Z", jiff::Timestamp::UNIX_EPOCH).unwrap())
        .unwrap();
    assert!(a.starts_with("MSH|^~\\|ZENEDGE|RAD|LABSYS|R&D LAB|"), "{a}");
    assert!(a.ends_with("\rMSA|AA|LAB-3CHAR-1\r"), "{a}");
}

#[test]
fn an_unusable_msh2_is_refused_with_msh10_in_msa2_when_it_can_be_read() {
    for (msh2, text) in [("^~", "must hold 4 characters"), ("^~~\\", "same separator character twice")] {
        let raw = format!("MSH|{msh2}|RIS|H|ZE|RAD|20260314||ORM^O01|CTRL-BAD-1|P|2.5\rPID|1||M1\r");
        let r = reject(raw.as_bytes());
        assert_eq!((r.error.code, r.error.location.as_deref()), (102, Some("MSH^1^2")), "{msh2}");
        assert!(r.error.text.contains(text), "{}", r.error.text);
        let a = build(r.header.as_ref(), AckCode::Error, Some(&r.error), "Z", jiff::Timestamp::UNIX_EPOCH).unwrap();
        let a = String::from_utf8(a).unwrap();
        assert!(a.contains("\rMSA|AE|CTRL-BAD-1\r"), "{a}");
        assert!(a.starts_with("MSH|^~\\&|"), "the ACK uses the recommended separators: {a}");
    }
}

#[test]
fn control_id_and_sender_are_decoded() {
    let r = accept(b"MSH|^~\\&|HIS\\T\\X|FAC|||||ADT^A01|ID\\F\\7|P|2.5\r");
    assert_eq!(r.sender(), ("HIS&X", "FAC"));
    assert_eq!(r.control_id(), "ID|7");
    assert_eq!(r.header.control_id, "ID\\F\\7");
}

#[test]
fn summary_serialises_with_snake_case_names_and_round_trips() {
    let r = accept(LATIN1_ADT);
    let json = serde_json::to_value(&r.summary).unwrap();
    for key in ["message_code", "trigger_event", "control_id", "charset_fallback", "declared_charset"] {
        assert!(json.get(key).is_some(), "{key}");
    }
    // Absent values and empty lists are left out of the encoded form (an ADT has no orders).
    assert!(json.get("orders").is_none() && json.get("merge").is_none(), "{json}");
    assert_eq!(json["patient"]["identifiers"][0]["assigning_authority"], "KSUED");
    let back: Summary = serde_json::from_value(json).unwrap();
    assert_eq!(back, r.summary);
}

#[test]
fn large_pathological_input_is_read_in_linear_time() {
    let mut raw = b"MSH|^~\\&|A|B|C|D|||ORM^O01|1|P|2.5\rORC|NW\r".to_vec();
    raw.extend(b"OBR|1|".iter().chain(&b"\\".repeat(50_000)).chain(b"\r"));
    raw.extend(b"NTE|1|\\X41\\\\.br\\\\Q\\ ".repeat(50_000));
    // Order groups up to the limit (MAX_ORDER_SEGMENTS), then as many other segments.
    raw.extend(b"\rOBR|2|||||||||||||||||A\r".repeat(MAX_ORDER_SEGMENTS - 1));
    raw.extend(b"\rOBX|2|||||||||||||||||A\r".repeat(50_000));
    raw.extend(b"PID|1||".iter().chain(&b"~".repeat(200_000)));
    // Quadratic work on these ~2.5 MB would take hours (CI's time limit catches that);
    // linear work takes well under a second. No clock is asserted here.
    let r = accept(&raw);
    assert_eq!(r.summary.orders.len(), MAX_ORDER_SEGMENTS);
}

/// Valid messages to mutate.
const SEEDS: [&str; 5] = [
    WITHOUT_SUBCOMPONENTS,
    "MSH|^~\\&|RIS|H|ZE|RAD|20260314||ORM^O01|S1|P|2.3\rPID|1||M1^^^H^MR~M2||Doe^Jane||19800101|F\rPV1||I\rORC|NW|P1|F1||SC||^^^20260315\rOBR|1|P1|F1|CT^Head^L||||||||||x\\S\\y|||D1^Doc^A||ACC1||||||CT\rZDS|1.2.3^A^Application^DICOM\r",
    "MSH|^~\\&#|RIS|H|ZE|RAD|20260314||OMI^O23^OMI_O23|S2|P|2.7|||AL|NE||UNICODE UTF-8\rPID|1||M1\rORC|NW|P1\rTQ1|1||||||20260316\rOBR|1|P1||MR\rIPC|A1|R1|1.2.3|S1|MR\r",
    "MSH|^~\\&|HIS|H|||||ADT^A40|S3|P|2.5||||||8859/1\rEVN|A40\rPID|1||M1\rMRG|M2~M3||||||Old^Name\r",
    "MSH#*@!%#A#B#C#D###ADT*A01#S4#P#2.3\nPID#1##M1!F!x\n",
];

proptest! {
    #[test]
    fn read_never_panics_on_random_bytes(raw in prop::collection::vec(any::<u8>(), 0..400)) {
        exercise(&raw);
    }

    #[test]
    fn read_never_panics_on_random_bytes_after_a_valid_msh_start(tail in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut raw = b"MSH|^~\\&|".to_vec();
        raw.extend(tail);
        exercise(&raw);
    }

    #[test]
    fn read_never_panics_on_mutated_valid_messages(
        seed in 0..SEEDS.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0..3u8, any::<u8>()), 1..8),
    ) {
        let mut raw = SEEDS[seed].as_bytes().to_vec();
        for (index, kind, byte) in edits {
            let at = index.index(raw.len() + 1);
            match kind {
                0 if at < raw.len() => raw[at] = byte,
                1 => raw.insert(at, byte),
                _ if at < raw.len() => { raw.remove(at); }
                _ => raw.push(byte),
            }
        }
        exercise(&raw);
    }

    #[test]
    fn read_never_panics_on_token_soup(tokens in prop::collection::vec(prop::sample::select(TOKENS.to_vec()), 0..80)) {
        let mut raw = b"MSH|^~\\&|A|B|C|D|||ORM^O01|1|P|2.5|||||||".to_vec();
        raw.extend(tokens.concat());
        exercise(&raw);
    }

    #[test]
    fn any_escaped_name_is_read_back_exactly(name in any::<String>(), charset in prop::sample::select(vec![Charset::Utf8, Charset::Gb18030])) {
        prop_assume!(!name.is_empty() && name != "\"\"");
        // encoding_rs's GB 18030 encoder has a few unmappable code points.
        prop_assume!(charset.decode(&charset.encode(&name)).as_deref() == Some(name.as_str()));
        let raw = message_in(charset, charset.label(), &escape(&name, &Separators::default()));
        let r = accept(&raw);
        prop_assert!(!r.summary.charset_fallback);
        prop_assert_eq!(family_name(&r), Some(name.as_str()));
    }
}

/// Interesting byte strings to glue together after an MSH.
const TOKENS: [&[u8]; 24] = [
    b"|",
    b"^",
    b"~",
    b"\\",
    b"&",
    b"\r",
    b"\n",
    b"\"\"",
    b"ORC",
    b"OBR",
    b"PID",
    b"IPC",
    b"TQ1",
    b"MRG",
    b"ZDS",
    b"PV1",
    b"\\X",
    b"\\.br\\",
    b"\\F\\",
    b"A",
    b"1",
    b"\xFC",
    b"\xE4\xB8\xAD",
    b"8859/1",
];

/// Reads `raw` and builds every ACK it could lead to: none of it may panic.
fn exercise(raw: &[u8]) {
    let now = jiff::Timestamp::UNIX_EPOCH;
    match read(raw, &ReadOptions::default()) {
        Ok(received) => {
            assert!(!received.control_id().is_empty());
            for code in [AckCode::Accept, AckCode::Error, AckCode::Reject] {
                let _ = build(Some(&received.header), code, None, "Z", now);
            }
        }
        Err(rejection) => {
            let _ = build(rejection.header.as_ref(), AckCode::Error, Some(&rejection.error), "Z", now);
        }
    }
}

#[test]
fn two_messages_in_one_frame_are_refused_naming_the_first() {
    let raw = b"MSH|^~\\&|A|B|C|D|||ADT^A01|FIRST|P|2.5\rPID|1\rMSH|^~\\&|A|B|C|D|||ADT^A01|SECOND|P|2.5\rPID|1\r";
    let rejection = read(raw, &ReadOptions::default()).unwrap_err();
    assert_eq!(rejection.error.code, 100);
    assert!(rejection.error.text.contains("segment 3"), "{}", rejection.error.text);
    assert_eq!(rejection.header.unwrap().control_id, "FIRST", "the AE echoes the first MSH-10");
}

#[test]
fn an_hl7_batch_is_refused_with_a_text_that_says_so() {
    let raw = b"FHS|^~\\&|A\rBHS|^~\\&|A\rMSH|^~\\&|A|B|C|D|||ADT^A01|1|P|2.5\rBTS|1\rFTS|1\r";
    let rejection = read(raw, &ReadOptions::default()).unwrap_err();
    assert!(rejection.error.text.contains("batches"), "{}", rejection.error.text);
}

#[test]
fn more_patient_identifiers_or_order_groups_than_the_limits_are_refused_with_their_location() {
    let head = "MSH|^~\\&|RIS|HOSP|ZE|EDGE|20261123||ORM^O01|LIM-1|P|2.5.1\r";
    let ids = |n: usize| (0..n).map(|i| format!("ID{i}^^^H^MR")).collect::<Vec<_>>().join("~");
    let at_limit = format!("{head}PID|1||{}\r", ids(MAX_PATIENT_IDENTIFIERS));
    assert_eq!(accept(at_limit.as_bytes()).summary.patient.unwrap().identifiers.len(), MAX_PATIENT_IDENTIFIERS);
    let over = reject(format!("{head}PID|1||{}\r", ids(100_000)).as_bytes());
    assert_eq!((over.error.code, over.error.location.as_deref()), (102, Some("PID^1")));
    assert!(over.error.text.contains("100000 patient identifiers"), "{}", over.error.text);
    assert_eq!(over.header.unwrap().control_id, "LIM-1", "the AE names the message");
    let merge = reject(format!("{head}PID|1||P1\rMRG|{}\r", ids(MAX_PATIENT_IDENTIFIERS + 1)).as_bytes());
    assert_eq!(merge.error.location.as_deref(), Some("MRG^1"));
    let groups = |n: usize| (0..n).map(|i| format!("ORC|NW|PL-{i}\rOBR|{i}|PL-{i}\r")).collect::<String>();
    assert_eq!(accept(format!("{head}{}", groups(MAX_ORDER_SEGMENTS)).as_bytes()).summary.orders.len(), 1000);
    let over = reject(format!("{head}{}", groups(MAX_ORDER_SEGMENTS + 1)).as_bytes());
    assert_eq!((over.error.code, over.error.location.as_deref()), (102, Some("ORC")));
}
