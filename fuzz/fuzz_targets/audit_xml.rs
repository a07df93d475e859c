//! The audit message builder (`zenedge::audit::render`): a record whose every text field is
//! hostile (markup, quotes, control characters, U+FFFE, invalid UTF-8 made lossy) renders as
//! a well-formed document that a real XML parser (quick-xml) reads back with each value as
//! given, characters XML 1.0 cannot carry replaced by U+FFFD (`xml::as_read_back`), and
//! detail values byte for byte after base64.
//!
//! Input: text fields separated by 0xFF bytes (missing ones are empty), each decoded lossily.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use quick_xml::events::Event as X;
use zenedge::audit::xml::as_read_back;
use zenedge::audit::{Action, AuditObject, AuditRecord, AuditSource, Code, Outcome, Participant, render};

fuzz_target!(|data: &[u8]| {
    let mut fields = data.split(|&b| b == 0xFF).map(|f| String::from_utf8_lossy(f).into_owned());
    let mut next = || fields.next().unwrap_or_default();
    let code = |text: String| Code { code: text.clone(), system: text.clone(), display: text };
    let record = AuditRecord {
        event: code(next()),
        action: Action::Read,
        at: jiff::Timestamp::UNIX_EPOCH,
        outcome: Outcome::Success,
        outcome_description: Some(next()),
        event_types: vec![code(next())],
        participants: vec![Participant {
            user_id: next(),
            alternative_user_id: Some(next()),
            user_name: Some(next()),
            requestor: false,
            network_access_point: Some(next()),
            role: Some(code(next())),
        }],
        objects: vec![AuditObject {
            type_code: 1,
            role: 1,
            id_type: code(next()),
            id: next(),
            name: Some(next()),
            description: Some(next()),
            details: vec![(next(), next())],
        }],
    };
    let source = AuditSource { source_id: next(), site_id: next() };
    let xml = render(&record, &source);
    let read = read_back(&xml);
    let p = &record.participants[0];
    let o = &record.objects[0];
    let mut expected: Vec<String> = vec![
        // Attributes and texts in document order.
        record.action.letter().to_owned(),
        record.at.to_string(),
        record.outcome.number().to_owned(),
    ];
    for c in [&record.event, &record.event_types[0]] {
        expected.extend([c.code.clone(), c.system.clone(), c.display.clone()]);
    }
    expected.push(record.outcome_description.clone().unwrap());
    expected.extend([p.user_id.clone(), p.alternative_user_id.clone().unwrap(), p.user_name.clone().unwrap(), "false".into()]);
    let access = p.network_access_point.clone().unwrap();
    let type_code = if access.parse::<std::net::IpAddr>().is_ok() { "2" } else { "1" };
    expected.extend([access, type_code.into()]);
    let role = p.role.as_ref().unwrap();
    expected.extend([role.code.clone(), role.system.clone(), role.display.clone()]);
    expected.extend([source.site_id.clone(), source.source_id.clone(), "4".into(), "DCM".into(), "Application Server Process".into()]);
    expected.extend([o.id.clone(), "1".into(), "1".into(), o.id_type.code.clone(), o.id_type.system.clone(), o.id_type.display.clone()]);
    expected.push(o.name.clone().unwrap());
    let (kind, value) = &o.details[0];
    expected.extend([kind.clone(), base64::engine::general_purpose::STANDARD.encode(value), o.description.clone().unwrap()]);
    let expected: Vec<String> = expected.iter().map(|v| as_read_back(v)).collect();
    assert_eq!(read, expected, "{xml}");
});

/// Every attribute value and every element's text, in document order, as a parser reads them;
/// panics unless `xml` is well-formed with only characters XML 1.0 allows.
fn read_back(xml: &str) -> Vec<String> {
    assert!(
        xml.chars().all(|c| !matches!(c, '\0'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')),
        "a character XML 1.0 does not allow: {xml:?}"
    );
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut values = Vec::new();
    let mut text: Option<String> = None;
    let mut depth = 0usize;
    loop {
        match reader.read_event().expect("well-formed XML") {
            X::Start(e) => {
                depth += 1;
                attributes(&e, &mut values);
                text = Some(String::new());
            }
            X::Empty(e) => {
                // An element with a child holds no text of its own.
                attributes(&e, &mut values);
                text = None;
            }
            X::End(_) => {
                depth -= 1;
                // The text of an element without children (which ended their parent's).
                if let Some(t) = text.take() {
                    values.push(t);
                }
            }
            X::Text(t) => text.get_or_insert_with(String::new).push_str(&t.xml10_content()),
            X::GeneralRef(r) => {
                let c = match r.resolve_char_ref().expect("char ref") {
                    Some(c) => c,
                    None => match &*r {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => panic!("unknown entity {other}"),
                    },
                };
                text.get_or_insert_with(String::new).push(c);
            }
            X::Decl(_) => {}
            X::Eof => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(depth, 0, "unclosed elements");
    values
}

fn attributes(e: &quick_xml::events::BytesStart<'_>, values: &mut Vec<String>) {
    for a in e.attributes() {
        let a = a.expect("attribute");
        values.push(a.normalized_value(quick_xml::XmlVersion::Explicit1_0).expect("attribute value").into_owned());
    }
}
