use super::*;

fn parse(text: &str) -> Message<'_> {
    Message::parse(text, Charset::Utf8).expect("valid message")
}

const ADT: &str = "MSH|^~\\&|HIS|GENHOSP|ZENEDGE|RAD|20260314083000||ADT^A01^ADT_A01|MSG0001|P|2.5\r\
                   PID|1||MRN123^^^GENHOSP^MR~INS987^^^ACME^PI||Doe^Jane^Q||19800101|F\r";

#[test]
fn msh_fields_are_numbered_with_msh1_as_the_separator() {
    let msg = parse(ADT);
    let msh = msg.msh();
    assert_eq!(msh.field(1).raw(), "|");
    assert_eq!(msh.field(2).raw(), "^~\\&");
    assert_eq!(msh.field(3).raw(), "HIS");
    assert_eq!(msh.field(9).component(2).raw(), "A01");
    assert_eq!(msh.field(10).raw(), "MSG0001");
    assert_eq!(msh.field(12).raw(), "2.5");
}

#[test]
fn msh2_is_not_split_or_unescaped() {
    let msg = parse(ADT);
    let msh2 = msg.msh().field(2);
    assert_eq!(msh2.component(1).raw(), "^~\\&");
    assert_eq!(msh2.repetitions().count(), 1);
    assert_eq!(msh2.unescaped(), "^~\\&");
}

#[test]
fn other_segments_count_fields_after_the_name() {
    let msg = parse(ADT);
    let pid = msg.segment("PID").unwrap();
    assert_eq!(pid.field(1).raw(), "1");
    assert_eq!(pid.field(8).raw(), "F");
    assert_eq!(pid.field(0).raw(), "");
    assert_eq!(pid.field(99).raw(), "");
    assert_eq!(pid.field_count(), 8);
}

#[test]
fn repetitions_components_and_subcomponents_are_reachable() {
    let msg = parse("MSH|^~\\&|A|B|C|D|||ADT^A01|1|P|2.5\rPID|||1^^^HOSP&1.2.3&ISO^MR~2^^^X^PI\r");
    let pid3 = msg.segment("PID").unwrap().field(3);
    assert_eq!(pid3.repetitions().count(), 2);
    assert_eq!(pid3.repetition(2).component(5).raw(), "PI");
    assert_eq!(pid3.component(4).subcomponent(2).raw(), "1.2.3");
    assert_eq!(pid3.repetition(3).raw(), "");
    assert_eq!(pid3.component(4).subcomponents().map(|s| s.raw()).collect::<Vec<_>>(), ["HOSP", "1.2.3", "ISO"]);
    assert_eq!(pid3.component(1).subcomponent(1).raw(), "1", "a plain value is its own first subcomponent");
}

#[test]
fn explicit_null_is_distinguished_from_empty() {
    let msg = parse("MSH|^~\\&|A|B|C|D|||ADT^A08|1|P|2.5\rPID|||1||\"\"|\r");
    let pid = msg.segment("PID").unwrap();
    assert!(pid.field(5).is_null());
    assert_eq!(pid.field(5).value().as_deref(), Some(""));
    assert!(!pid.field(6).is_null() && pid.field(6).is_empty());
    assert_eq!(pid.field(6).value(), None);
    assert_eq!(pid.field(5).component(1).text().as_deref(), Some(""));
}

#[test]
fn values_are_unescaped_with_the_messages_separators() {
    let msg = parse("MSH#*@!%#A#B#C#D###ORM*O01#1#P#2.3\rOBR#1###CT*Head!S!Neck!T!x\r");
    let obr4 = msg.segment("OBR").unwrap().field(4);
    assert_eq!(obr4.component(2).raw(), "Head!S!Neck!T!x");
    assert_eq!(obr4.component(2).unescaped(), "Head*Neck%x");
    assert_eq!(msg.msh().field(9).component(2).raw(), "O01");
}

#[test]
fn every_segment_terminator_is_accepted() {
    for end in ["\r", "\n", "\r\n", "\n\r"] {
        let text = format!("MSH|^~\\&|A|B|C|D|||ADT^A01|1|P|2.5{end}EVN|A01{end}PID|1{end}{end}{end}");
        let names: Vec<_> = parse(&text).segments().iter().map(Segment::name).collect();
        assert_eq!(names, ["MSH", "EVN", "PID"], "{end:?}");
    }
}

#[test]
fn leading_blank_lines_are_skipped() {
    assert_eq!(parse("\r\n\rMSH|^~\\&|A|B|C|D|||ADT^A01|1|P|2.5").msh().field(3).raw(), "A");
}

#[test]
fn empty_input_and_a_first_segment_other_than_msh_are_sequence_errors() {
    for text in ["", "\r\n", "PID|1\rMSH|^~\\&|", "msh|^~\\&|"] {
        let err = Message::parse(text, Charset::Utf8).unwrap_err();
        assert_eq!((err.code, err.location.as_deref()), (100, Some("MSH^1")), "{text:?}");
    }
}

#[test]
fn a_segment_path_reads_the_first_repetition() {
    let msg = parse("MSH|^~\\&|A|B|C|D|||ORM^O01|1|P|2.5\rOBR|1|P1|F1^LAB|||||||||||||||ACC1~ACC2\r");
    let obr = msg.segment("OBR").unwrap();
    assert_eq!(obr.get(&"OBR-18".parse().unwrap()).raw(), "ACC1");
    assert_eq!(obr.get(&"OBR-3.2".parse().unwrap()).raw(), "LAB");
}
