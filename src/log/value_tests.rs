use super::*;

/// An HL7-like envelope body, repetitive as real ones are.
fn sample() -> Vec<u8> {
    let mut plain = vec![0x8d];
    for n in 0..20 {
        plain.extend_from_slice(format!("OBR|{n}|PL{n}|FI{n}|CTHEAD^CT Head^L|||20261123100000\r").as_bytes());
    }
    plain
}

fn header(dictionary: u8) -> Vec<u8> {
    vec![MARK, FORMAT_ZSTD, dictionary]
}

#[test]
fn a_compressible_envelope_is_stored_compressed_and_reads_back_the_same() {
    let plain = sample();
    let stored = encode(plain.clone());
    assert!(is_compressed(&stored));
    assert!(stored.len() < plain.len() / 2, "{} of {}", stored.len(), plain.len());
    assert_eq!(decode(7, &stored).unwrap().as_ref(), plain.as_slice());
}

#[test]
fn a_plain_value_written_before_compression_reads_back_as_it_is() {
    let plain = sample();
    assert!(matches!(decode(1, &plain).unwrap(), Cow::Borrowed(b) if b == plain.as_slice()));
}

#[test]
fn a_small_or_incompressible_envelope_stays_plain() {
    let small = vec![0x81, 0xa1, b'a', 0x01];
    assert_eq!(encode(small.clone()), small);
    let mut noise = vec![0x8d];
    let mut x: u32 = 0x1234_5678;
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push(x as u8);
    }
    assert_eq!(encode(noise.clone()), noise);
}

#[test]
fn a_value_naming_an_unknown_dictionary_is_corrupt_with_its_seq() {
    let mut stored = encode(sample());
    stored[2] = 5;
    let err = decode(42, &stored).unwrap_err();
    assert_eq!(err, CorruptValue { seq: 42, fault: ValueFault::UnknownDictionary(5) });
    assert!(err.to_string().contains("event 42"), "{err}");
}

#[test]
fn an_unknown_format_or_a_truncated_header_is_corrupt() {
    assert_eq!(decode(1, &[MARK]).unwrap_err().fault, ValueFault::Truncated);
    assert_eq!(decode(1, &[MARK, 9, 0]).unwrap_err().fault, ValueFault::UnknownFormat(9));
    assert_eq!(decode(1, &[MARK, FORMAT_ZSTD, 0x80]).unwrap_err().fault, ValueFault::Truncated);
    assert_eq!(decode(1, &[MARK, FORMAT_ZSTD, 0xff, 0xff, 0xff, 0xff, 0x7f]).unwrap_err().fault, ValueFault::Truncated);
}

#[test]
fn a_damaged_frame_is_corrupt_not_a_panic() {
    let stored = encode(sample());
    for cut in [3, 6, stored.len() / 2, stored.len() - 1] {
        assert!(decode(3, &stored[..cut]).is_err(), "cut at {cut}");
    }
    let mut flipped = stored.clone();
    let at = flipped.len() - 5;
    flipped[at] ^= 0xff;
    if let Ok(out) = decode(3, &flipped) {
        assert_ne!(out.as_ref(), sample().as_slice(), "a damaged frame decoded to the original");
    }
}

#[test]
fn a_frame_declaring_more_than_the_cap_is_refused_before_allocating() {
    // A frame header (magic; descriptor: 8-byte content size, single segment) claiming 1 TiB.
    let mut stored = header(0);
    stored.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd, 0xe0]);
    stored.extend_from_slice(&(1u64 << 40).to_le_bytes());
    stored.extend_from_slice(&[0x01, 0x00, 0x00]);
    assert_eq!(decode(9, &stored).unwrap_err().fault, ValueFault::TooLarge(1 << 40));
}

#[test]
fn a_frame_without_a_content_size_is_refused() {
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    std::io::Write::write_all(&mut encoder, &sample()).unwrap();
    let frame = encoder.finish().unwrap();
    let mut stored = header(0);
    stored.extend_from_slice(&frame);
    assert_eq!(decode(9, &stored).unwrap_err().fault, ValueFault::NoContentSize);
}

#[test]
fn bytes_that_begin_with_the_mark_are_stored_compressed_and_read_back() {
    for value in [vec![MARK], vec![MARK, 0x01], [vec![MARK], sample()].concat()] {
        let stored = encode(value.clone());
        assert!(is_compressed(&stored), "{value:?} would be read as a compressed value");
        assert_eq!(plain(&stored).unwrap().as_ref(), value.as_slice());
    }
}

#[test]
fn fuzz_regression_an_envelope_beginning_with_the_mark_reads_back() {
    // The fuzz target's first byte picks the mode (odd: store the rest); the rest is one MARK.
    let input = include_bytes!("../../fuzz/regressions/value_decode/envelope-beginning-with-the-mark");
    let envelope = &input[1..];
    assert_eq!(plain(&encode(envelope.to_vec())).unwrap().as_ref(), envelope);
}

#[test]
fn a_projection_row_is_stored_like_a_value_and_a_plain_row_written_before_still_reads() {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Row {
        order_id: String,
        text: String,
    }
    let row = Row { order_id: "O-1".into(), text: "OBR|1|PL1|FI1|CTHEAD^CT Head^L\r".repeat(10) };
    let stored = crate::log::encode_row("orders", &row).unwrap();
    assert!(is_compressed(&stored), "a large row is stored compressed");
    assert_eq!(crate::log::read_row::<Row>("orders", &stored).unwrap(), row);
    let before = rmp_serde::to_vec_named(&row).unwrap();
    assert_eq!(crate::log::read_row::<Row>("orders", &before).unwrap(), row, "plain msgpack reads as it is");
    assert_eq!(crate::log::decode_row::<Row>("orders", &stored).unwrap(), row, "views read either form");
    let err = crate::log::read_row::<Row>("orders", &[MARK, 9]).unwrap_err();
    assert!(err.to_string().contains("orders"), "{err}");
}
