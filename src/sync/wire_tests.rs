use super::*;

fn envelope(seq: u64, edge: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct E<'a> {
        seq: u64,
        event_id: uuid::Uuid,
        event_type: &'a str,
        edge_id: &'a str,
        data: serde_bytes::ByteBuf,
    }
    let e = E { seq, event_id: uuid::Uuid::nil(), event_type: "X", edge_id: edge, data: vec![7; 40].into() };
    rmp_serde::to_vec_named(&e).unwrap()
}

#[test]
fn a_batch_round_trips_byte_for_byte() {
    let stored: Vec<_> = (5..9).map(|s| envelope(s, "edge-1")).collect();
    let body = encode_batch(stored.iter().map(Vec::as_slice), 1);
    let got = decode_batch(&body, 1 << 20).unwrap();
    assert_eq!(got.iter().map(|r| r.head.seq).collect::<Vec<_>>(), vec![5, 6, 7, 8]);
    assert_eq!(got.iter().map(|r| r.bytes.clone()).collect::<Vec<_>>(), stored);
    check_batch("edge-1", 5, 8, &got, &[]).unwrap();
}

#[test]
fn a_large_batch_goes_in_two_gzip_members_and_round_trips() {
    let stored: Vec<_> = (1..=6000).map(|s| envelope(s, "edge-1")).collect();
    let total: usize = stored.iter().map(Vec::len).sum();
    assert!(total > PARALLEL_ABOVE, "the test batch must be large: {total}");
    let body = encode_batch(stored.iter().map(Vec::as_slice), 1);
    let members = body.windows(3).filter(|w| w == &[0x1f, 0x8b, 0x08]).count();
    assert!(members >= 2, "{members} gzip members");
    let got = decode_batch(&body, 64 << 20).unwrap();
    assert_eq!(got.iter().map(|r| r.bytes.clone()).collect::<Vec<_>>(), stored);
    check_batch("edge-1", 1, 6000, &got, &[]).unwrap();
    let single = flate2::read::GzDecoder::new(body.as_slice());
    let first_member = std::io::Read::bytes(single).count();
    assert!(first_member < total, "the first member alone is not the whole batch");
}

#[test]
fn skipped_sequence_numbers_fill_the_range() {
    let stored: Vec<_> = [5, 7].iter().map(|&s| envelope(s, "edge-1")).collect();
    let got = decode_batch(&encode_batch(stored.iter().map(Vec::as_slice), 1), 1 << 20).unwrap();
    check_batch("edge-1", 5, 8, &got, &[6, 8]).unwrap();
    let gap = check_batch("edge-1", 5, 8, &got, &[6]).unwrap_err();
    assert!(gap.error.contains("holds 4"), "{gap:?}");
    let wrong = check_batch("edge-1", 5, 8, &got, &[5, 6]).unwrap_err();
    assert_eq!(wrong.seq, Some(5), "{wrong:?}");
    let empty = decode_batch(&encode_batch(std::iter::empty(), 1), 1 << 20).unwrap();
    check_batch("edge-1", 9, 9, &empty, &[9]).unwrap();
}

#[test]
fn another_edges_event_is_named() {
    let stored = [envelope(1, "edge-2")];
    let got = decode_batch(&encode_batch(stored.iter().map(Vec::as_slice), 1), 1 << 20).unwrap();
    let refusal = check_batch("edge-1", 1, 1, &got, &[]).unwrap_err();
    assert_eq!(refusal.seq, Some(1));
    assert!(refusal.error.contains("edge-2"));
}

#[test]
fn bodies_that_are_not_batches_are_refused() {
    assert!(matches!(decode_batch(b"not gzip", 1 << 20), Err(WireError::Gzip(_))));
    let bomb = encode_batch([vec![0u8; 1 << 20].as_slice()].into_iter(), 9);
    assert!(bomb.len() < 10_000);
    assert_eq!(decode_batch(&bomb, 1 << 16).unwrap_err(), WireError::TooLarge(1 << 16));
    let not_envelope = encode_batch([&[0xc0u8][..]].into_iter(), 1);
    assert!(matches!(decode_batch(&not_envelope, 1 << 20), Err(WireError::Envelope { index: 0, .. })));
    let mut trailing = Vec::new();
    let mut gz = flate2::write::GzEncoder::new(&mut trailing, flate2::Compression::fast());
    gz.write_all(&[0x90, 0x01]).unwrap();
    gz.finish().unwrap();
    assert_eq!(decode_batch(&trailing, 1 << 20).unwrap_err(), WireError::Trailing(1));
}

#[test]
fn a_position_tells_an_absent_event_from_a_hub_that_does_not_say() {
    let id = uuid::Uuid::from_u128(9);
    let said: Stored =
        serde_json::from_str(&format!(r#"{{"stored_through": 4, "last_event": {{"seq": 3, "event_id": "{id}"}}}}"#))
            .unwrap();
    assert_eq!(said.last_event, Some(Some(EventRef { seq: 3, event_id: id })));
    let none: Stored = serde_json::from_str(r#"{"stored_through": 4, "last_event": null}"#).unwrap();
    assert_eq!(none.last_event, Some(None), "null: the hub stores no event up there");
    let older: Stored = serde_json::from_str(r#"{"stored_through": 4}"#).unwrap();
    assert_eq!(older.last_event, None, "absent: the hub does not say");
    let written = serde_json::to_value(Stored { stored_through: 4, last_event: Some(None) }).unwrap();
    assert_eq!(written, serde_json::json!({"stored_through": 4, "last_event": null}), "the hub always says");
}

#[test]
fn skipped_headers_parse_strictly() {
    assert_eq!(parse_skipped(&format_skipped(&[3, 9, 12])).unwrap(), vec![3, 9, 12]);
    assert_eq!(parse_skipped("").unwrap(), Vec::<u64>::new());
    assert!(parse_skipped("9,3").is_err());
    assert!(parse_skipped("3,3").is_err());
    assert!(parse_skipped("x").is_err());
}
