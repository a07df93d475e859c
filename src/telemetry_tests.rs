use super::*;

#[test]
fn message_type_labels_are_bounded() {
    let m = Metrics::new();
    for i in 0..(MAX_MESSAGE_TYPES + 10) {
        m.hl7_answered(&format!("Z{i:02}^A01"), "AA");
    }
    m.hl7_answered("bad label\"", "AA");
    let text = m.encode();
    assert!(text.contains("message_type=\"other\""), "{text}");
    let distinct = text.lines().filter(|l| l.starts_with("zenedge_hl7_messages_total{")).count();
    assert_eq!(distinct, MAX_MESSAGE_TYPES + 1);
}
