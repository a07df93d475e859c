use jiff::Timestamp;
use quick_xml::events::Event as X;

use super::*;
use crate::audit::record::{Action, AuditObject, AuditRecord, Code, Outcome, Participant};

/// One element as a parser reads it back: name, attributes (normalised as XML requires), text.
#[derive(Debug, Default)]
pub(crate) struct Node {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&Node> {
        self.children.iter().filter(|c| c.name == name).collect()
    }

    pub fn one(&self, name: &str) -> &Node {
        self.all(name).first().copied().unwrap_or_else(|| panic!("no {name} in {}", self.name))
    }
}

/// Parses `xml` (well-formed, or panics) into its root element.
pub(crate) fn read_back(xml: &str) -> Node {
    assert!(
        xml.chars().all(|c| c == '\u{FFFD}'
            || !matches!(c, '\0'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')),
        "a character XML 1.0 does not allow: {xml:?}"
    );
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Node> = vec![Node::default()];
    let open = |e: &quick_xml::events::BytesStart<'_>| Node {
        name: e.name().as_ref().to_owned(),
        attrs: e
            .attributes()
            .map(|a| {
                let a = a.expect("attribute");
                let value = a.normalized_value(quick_xml::XmlVersion::Explicit1_0).expect("attribute value");
                (a.key.as_ref().to_owned(), value.into_owned())
            })
            .collect(),
        ..Node::default()
    };
    loop {
        match reader.read_event().expect("well-formed XML") {
            X::Start(e) => stack.push(open(&e)),
            X::Empty(e) => stack.last_mut().unwrap().children.push(open(&e)),
            X::End(_) => {
                let done = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(done);
            }
            X::Text(t) => stack.last_mut().unwrap().text.push_str(&t.xml10_content()),
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
                stack.last_mut().unwrap().text.push(c);
            }
            X::Decl(_) => {}
            X::Eof => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(stack.len(), 1, "unclosed elements");
    let mut top = stack.pop().unwrap().children;
    assert_eq!(top.len(), 1, "one root element");
    top.pop().unwrap()
}

fn hostile() -> String {
    "A&B<C>\"D'E\u{1}\u{0}\tF\r\nG]]>\u{FFFE}é😀".to_owned()
}

fn record(text: &str) -> AuditRecord {
    AuditRecord {
        event: Code::dcm("110104", "DICOM Instances Transferred"),
        action: Action::Create,
        at: Timestamp::from_second(1_800_000_000).unwrap(),
        outcome: Outcome::MinorFailure,
        outcome_description: Some(text.to_owned()),
        event_types: vec![Code::dcm("110122", text)],
        participants: vec![Participant {
            user_id: text.to_owned(),
            alternative_user_id: Some(text.to_owned()),
            user_name: Some(text.to_owned()),
            requestor: true,
            network_access_point: Some("10.0.0.1".into()),
            role: Some(Code::dcm("110153", "Source Role ID")),
        }],
        objects: vec![AuditObject {
            type_code: 1,
            role: 1,
            id_type: Code::rfc3881("2", "Patient Number"),
            id: text.to_owned(),
            name: Some(text.to_owned()),
            description: Some(text.to_owned()),
            details: vec![(text.to_owned(), text.to_owned())],
        }],
    }
}

fn source() -> AuditSource {
    AuditSource { source_id: "edge-1".into(), site_id: "hospital-1".into() }
}

#[test]
fn a_message_has_the_four_parts_of_ps3_15_a_5_in_schema_order() {
    let root = read_back(&render(&record("x"), &source()));
    assert_eq!(root.name, "AuditMessage");
    let names: Vec<&str> = root.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["EventIdentification", "ActiveParticipant", "AuditSourceIdentification", "ParticipantObjectIdentification"]
    );
    let event = root.one("EventIdentification");
    assert_eq!(event.attr("EventActionCode"), Some("C"));
    assert_eq!(event.attr("EventOutcomeIndicator"), Some("4"));
    assert_eq!(event.attr("EventDateTime"), Some("2027-01-15T08:00:00Z"));
    assert_eq!(event.one("EventID").attr("csd-code"), Some("110104"));
    assert_eq!(event.one("EventID").attr("codeSystemName"), Some("DCM"));
    let participant = root.one("ActiveParticipant");
    assert_eq!(participant.attr("UserIsRequestor"), Some("true"));
    assert_eq!(participant.attr("NetworkAccessPointTypeCode"), Some("2"));
    assert_eq!(participant.one("RoleIDCode").attr("csd-code"), Some("110153"));
    let source = root.one("AuditSourceIdentification");
    assert_eq!(source.attr("AuditSourceID"), Some("edge-1"));
    assert_eq!(source.attr("AuditEnterpriseSiteID"), Some("hospital-1"));
    let object = root.one("ParticipantObjectIdentification");
    assert_eq!(object.attr("ParticipantObjectTypeCode"), Some("1"));
    assert_eq!(object.attr("ParticipantObjectTypeCodeRole"), Some("1"));
    assert_eq!(object.one("ParticipantObjectIDTypeCode").attr("csd-code"), Some("2"));
}

#[test]
fn hostile_values_parse_back_as_given_with_characters_xml_cannot_carry_replaced() {
    let text = hostile();
    let xml = render(&record(&text), &source());
    let root = read_back(&xml);
    let expected = as_read_back(&text);
    assert!(expected.contains('\u{FFFD}') && expected.contains("\t") && expected.contains("\r\n"));
    let participant = root.one("ActiveParticipant");
    for name in ["UserID", "AlternativeUserID", "UserName"] {
        assert_eq!(participant.attr(name), Some(expected.as_str()), "{name}");
    }
    let event = root.one("EventIdentification");
    assert_eq!(event.one("EventOutcomeDescription").text, expected);
    assert_eq!(event.one("EventTypeCode").attr("originalText"), Some(expected.as_str()));
    let object = root.one("ParticipantObjectIdentification");
    assert_eq!(object.attr("ParticipantObjectID"), Some(expected.as_str()));
    assert_eq!(object.one("ParticipantObjectName").text, expected);
    assert_eq!(object.one("ParticipantObjectDescription").text, expected);
    let detail = object.one("ParticipantObjectDetail");
    assert_eq!(detail.attr("type"), Some(expected.as_str()));
    let value = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, detail.attr("value").unwrap());
    assert_eq!(value.unwrap(), text.as_bytes(), "detail values travel as base64, byte for byte");
}

#[test]
fn a_participant_named_by_host_name_gets_type_code_1() {
    let mut r = record("x");
    r.participants[0].network_access_point = Some("modality.example.org".into());
    let root = read_back(&render(&r, &source()));
    assert_eq!(root.one("ActiveParticipant").attr("NetworkAccessPointTypeCode"), Some("1"));
}
