use super::*;
use crate::sync::wire::EnvelopeHead;

#[test]
fn the_stream_is_postgresql_s_binary_copy_format_in_chunks() {
    let envelopes: Vec<Received> = (1..=3)
        .map(|seq| Received {
            head: EnvelopeHead {
                seq,
                event_id: uuid::Uuid::from_u128(u128::from(seq)),
                event_type: "T".into(),
                edge_id: "e".into(),
            },
            bytes: vec![0x80; 200_000],
        })
        .collect();
    let mut chunks = Vec::new();
    encode("e", 0, 7, &envelopes, |c| {
        chunks.push(c);
        true
    })
    .unwrap();
    assert!(chunks.len() >= 2, "{} chunks", chunks.len());
    let all: Vec<u8> = chunks.concat();
    assert!(all.starts_with(b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0"), "signature, flags, extension");
    assert!(all.ends_with(&[0xff, 0xff]), "the trailer");
    // The first row: 15 fields, then "e" as text (length 1).
    assert_eq!(&all[19..21], &15i16.to_be_bytes());
    assert_eq!(&all[21..26], &[0, 0, 0, 1, b'e']);
    // A receiver gone stops the encoding.
    let mut sent = 0;
    encode("e", 0, 7, &envelopes, |_| {
        sent += 1;
        false
    })
    .unwrap();
    assert_eq!(sent, 1);
}
