use super::*;

#[test]
fn an_event_written_before_the_normalized_digest_is_recognised_by_the_same_digest() {
    use sha2::Digest;
    let raw = b"MSH|^~\\&|A|B|C|D|||ADT^A08|1|P|2.5\rPID|1\r".to_vec();
    let expected: [u8; 32] = sha2::Sha256::digest(&raw[..raw.len() - 1]).into();
    let json = serde_json::json!({
        "raw": raw, "message_type": "ADT^A08", "control_id": "1", "sending_application": "A",
        "sending_facility": "B", "content_sha256": "00", "control_id_conflict": false, "peer": "p",
        "summary": crate::hl7::read(&raw, &crate::hl7::ReadOptions::default()).unwrap().summary,
    });
    let mut old: Hl7MessageReceived = serde_json::from_value(json).unwrap();
    assert_eq!(old.normalized_sha256, None);
    assert_eq!(old.dedupe_sha256(), expected);
    old.normalized_sha256 = Some(crate::ids::hex(&expected));
    assert_eq!(old.dedupe_sha256(), expected);
}
