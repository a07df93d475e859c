use super::*;
use crate::audit::{StoredRecord, kinds};

fn stored(id: u64) -> Vec<u8> {
    let at = Timestamp::from_second(1_700_000_000 + id as i64).unwrap();
    let row = StoredRecord { id, recorded_at: at, record: kinds::application_activity("edge-1", true, at) };
    rmp_serde::to_vec_named(&row).unwrap()
}

#[test]
fn a_page_of_stored_records_round_trips_byte_for_byte_with_its_ids() {
    let rows: Vec<_> = [3, 4, 9].into_iter().map(stored).collect();
    let body = encode_audit_page(rows.iter().map(Vec::as_slice));
    let got = decode_audit_page(&body, 1 << 20).unwrap();
    assert_eq!(got.iter().map(|r| r.head.id).collect::<Vec<_>>(), [3, 4, 9]);
    assert_eq!(got.iter().map(|r| r.bytes.clone()).collect::<Vec<_>>(), rows);
    let back: StoredRecord = rmp_serde::from_slice(&got[2].bytes).unwrap();
    assert_eq!(back.recorded_at, got[2].head.recorded_at);
}

#[test]
fn ids_that_do_not_ascend_bytes_that_are_no_record_and_oversized_pages_are_refused() {
    let rows: Vec<_> = [5, 5].into_iter().map(stored).collect();
    let body = encode_audit_page(rows.iter().map(Vec::as_slice));
    assert!(matches!(decode_audit_page(&body, 1 << 20), Err(WireError::Envelope { index: 1, .. })));
    let junk = [rmp_serde::to_vec_named(&("x", 1)).unwrap()];
    let body = encode_audit_page(junk.iter().map(Vec::as_slice));
    assert!(matches!(decode_audit_page(&body, 1 << 20), Err(WireError::Envelope { index: 0, .. })));
    let rows: Vec<_> = (1..50).map(stored).collect();
    let body = encode_audit_page(rows.iter().map(Vec::as_slice));
    assert_eq!(decode_audit_page(&body, 100).unwrap_err(), WireError::TooLarge(100));
}
