use super::*;
use crate::audit::kinds;

fn row() -> StoredRecord {
    let at = jiff::Timestamp::from_nanosecond(1_800_000_000_123_456_789).unwrap();
    StoredRecord { id: 7, recorded_at: at, record: kinds::application_activity("edge 1", true, at) }
}

#[test]
fn a_message_has_the_rfc_5424_header_with_the_ihe_msgid_and_the_xml_after_a_bom() {
    let source = AuditSource { source_id: "edge 1".into(), site_id: "h1".into() };
    let bytes = message(&row(), &source, 42);
    let text = String::from_utf8(bytes).unwrap();
    let (header, xml) = text.split_once(" - \u{FEFF}").expect("no structured data, then the BOM");
    assert_eq!(header, "<85>1 2027-01-15T08:00:00.123456Z edge_1 zenedge 42 IHE+RFC-3881");
    assert!(xml.starts_with("<?xml") && xml.ends_with("</AuditMessage>"), "{xml}");
}

#[test]
fn octet_counting_prefixes_the_length_in_bytes() {
    assert_eq!(octet_counted("<85>1 é".as_bytes()), "8 <85>1 é".as_bytes());
}
