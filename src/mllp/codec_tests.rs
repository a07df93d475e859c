//! Tests of the MLLP codec: splits at every byte, junk, restarts, limits, linear time.

use super::*;
use proptest::prelude::*;

const MIB: usize = 1 << 20;
/// A typical TCP payload per segment on Ethernet: the read size senders produce.
const MTU_READ: usize = 1460;

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_frame(payload, &mut buf);
    buf.to_vec()
}

fn message(payload: &[u8]) -> Frame {
    Frame::Message(Bytes::copy_from_slice(payload))
}

/// Feeds `chunks` one read at a time, draining every frame after each read.
fn decode_chunks<'a>(codec: &mut MllpCodec, chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Frame> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(frame) = codec.decode(&mut buf).expect("decode") {
            frames.push(frame);
        }
    }
    frames
}

/// A payload of `len` bytes that looks like HL7 and holds no block characters.
fn hl7_payload(len: usize) -> Vec<u8> {
    let msh = b"MSH|^~\\&|RIS|HOSP|ZENEDGE|EDGE|20261105120000||ORM^O01^ORM_O01|CTRL42|P|2.5.1\r";
    let filler = b"NTE|1||lorem ipsum dolor sit amet\r";
    msh.iter().chain(filler.iter().cycle()).take(len).copied().collect()
}

#[test]
fn frame_split_in_two_reads_at_every_offset_decodes_both_frames() {
    let (a, b) = (hl7_payload(300), hl7_payload(120));
    let stream = [framed(&a), framed(&b)].concat();
    for split in 0..=stream.len() {
        let mut codec = MllpCodec::new(MIB);
        let (first, second) = stream.split_at(split);
        let frames = decode_chunks(&mut codec, [first, second]);
        assert_eq!(frames, [message(&a), message(&b)], "split at {split}");
        assert_eq!(codec.skipped_bytes(), 0);
    }
}

#[test]
fn frames_fed_one_byte_at_a_time_decode_and_each_byte_is_examined_once() {
    let (a, b) = (hl7_payload(300), hl7_payload(0));
    let stream = [framed(&a), framed(&b)].concat();
    let mut codec = MllpCodec::new(MIB);
    let frames = decode_chunks(&mut codec, stream.chunks(1));
    assert_eq!(frames, [message(&a), message(&b)]);
    assert!(codec.examined_bytes() <= stream.len() as u64);
}

#[test]
fn several_frames_in_one_read_decode_in_order() {
    let payloads: Vec<Vec<u8>> = (1..=5).map(|i| hl7_payload(i * 50)).collect();
    let stream: Vec<u8> = payloads.iter().flat_map(|p| framed(p)).collect();
    let frames = decode_chunks(&mut MllpCodec::new(MIB), [&stream[..]]);
    let expected: Vec<Frame> = payloads.iter().map(|p| message(p)).collect();
    assert_eq!(frames, expected);
}

#[test]
fn empty_payload_is_a_message() {
    let frames = decode_chunks(&mut MllpCodec::new(MIB), [&framed(b"")[..]]);
    assert_eq!(frames, [message(b"")]);
}

#[test]
fn cr_lf_and_junk_between_frames_are_skipped_and_counted() {
    let (a, b) = (hl7_payload(80), hl7_payload(90));
    let stream = [&b"\r\n"[..], &framed(&a), b"\r\n", b"junk", &framed(&b), b"\n"].concat();
    let mut codec = MllpCodec::new(MIB);
    let frames = decode_chunks(&mut codec, [&stream[..]]);
    assert_eq!(frames, [message(&a), message(&b)]);
    assert_eq!(codec.skipped_bytes(), 2 + 2 + 4 + 1);
}

// hl7-mllp 0.2.0's `MllpFramer` never yields a frame once a byte precedes 0x0B.
#[test]
fn stray_cr_lf_before_the_start_block_still_yields_the_frame() {
    let a = hl7_payload(64);
    let stream = [&b"\r\n"[..], &framed(&a)].concat();
    for split in 0..=stream.len() {
        let mut codec = MllpCodec::new(MIB);
        let (first, second) = stream.split_at(split);
        assert_eq!(decode_chunks(&mut codec, [first, second]), [message(&a)]);
        assert_eq!(codec.skipped_bytes(), 2);
    }
}

#[test]
fn missing_cr_after_the_end_block_is_tolerated() {
    let stream = b"\x0bMSH|a\x1c\x0bMSH|b\x1c\r\x0bMSH|c\x1c";
    let mut codec = MllpCodec::new(MIB);
    let mut buf = BytesMut::from(&stream[..]);
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode(&mut buf).unwrap() {
        frames.push(frame);
    }
    // The last 0x1C has nothing after it yet; the caller ends it after a grace period.
    assert!(codec.end_block_pending());
    frames.extend(codec.finish_pending(&mut buf));
    assert_eq!(frames, [message(b"MSH|a"), message(b"MSH|b"), message(b"MSH|c")]);
    assert_eq!(codec.skipped_bytes(), 0);
    assert!(!codec.end_block_pending());
}

#[test]
fn an_end_block_ending_a_read_waits_for_the_next_byte() {
    let mut codec = MllpCodec::new(MIB);
    let mut buf = BytesMut::from(&b"\x0bMSH|a\x1c"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(codec.end_block_pending());
    buf.extend_from_slice(b"\r");
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(message(b"MSH|a")));
    assert!(!codec.end_block_pending());
}

#[test]
fn a_pending_end_block_at_eof_ends_the_frame() {
    let mut codec = MllpCodec::new(MIB);
    let mut buf = BytesMut::from(&b"\x0bMSH|a\x1c"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), Some(message(b"MSH|a")));
}

// A 0x1C inside the payload must not cut the message short: the part before it would be
// acknowledged and the rest lost.
#[test]
fn a_stray_end_block_inside_the_payload_makes_the_frame_malformed() {
    let (good, next) = (hl7_payload(200), hl7_payload(50));
    let corrupt = [&hl7_payload(40)[..], b"\x1cPID|1", &hl7_payload(60)[..]].concat();
    let stream = [&b"\x0b"[..], &corrupt, b"\x1c\r", &framed(&good), &framed(&next)].concat();
    for split in 0..=stream.len() {
        let mut codec = MllpCodec::new(MIB);
        let (first, second) = stream.split_at(split);
        let frames = decode_chunks(&mut codec, [first, second]);
        let head = Bytes::copy_from_slice(&corrupt);
        assert_eq!(
            frames,
            [Frame::Malformed { head, len: corrupt.len() }, message(&good), message(&next)],
            "split at {split}"
        );
        assert!(codec.examined_bytes() <= stream.len() as u64);
    }
}

#[test]
fn a_stray_end_block_inside_an_oversized_payload_makes_it_malformed() {
    let max = 1024;
    let corrupt = [&hl7_payload(3000)[..], b"\x1cX", &hl7_payload(3000)[..]].concat();
    let stream = [&b"\x0b"[..], &corrupt, b"\x1c\r"].concat();
    let frames = decode_chunks(&mut MllpCodec::new(max), stream.chunks(700));
    let head = Bytes::copy_from_slice(&corrupt[..OVERSIZED_HEAD_BYTES]);
    assert_eq!(frames, [Frame::Malformed { head, len: corrupt.len() }]);
}

#[test]
fn start_block_inside_an_unfinished_frame_restarts_the_frame() {
    let b = hl7_payload(100);
    let stream = [&b"\x0bMSH|^~\\&|abandoned"[..], &framed(&b)].concat();
    for split in 0..=stream.len() {
        let mut codec = MllpCodec::new(MIB);
        let (first, second) = stream.split_at(split);
        assert_eq!(decode_chunks(&mut codec, [first, second]), [message(&b)]);
        assert_eq!(codec.restarted_frames(), 1);
    }
}

#[test]
fn oversized_frame_yields_its_head_and_length_and_the_next_frame_still_decodes() {
    let max = 64 * 1024;
    let (big, next) = (hl7_payload(MIB), hl7_payload(200));
    let stream = [framed(&big), framed(&next)].concat();
    for chunk in [MTU_READ, stream.len()] {
        let mut codec = MllpCodec::new(max);
        let frames = decode_chunks(&mut codec, stream.chunks(chunk));
        let head = Bytes::copy_from_slice(&big[..OVERSIZED_HEAD_BYTES]);
        let oversized = Frame::Oversized { head, len: MIB };
        assert_eq!(frames, [oversized, message(&next)], "reads of {chunk}");
    }
}

#[test]
fn payload_of_exactly_the_limit_is_a_message_and_one_byte_more_is_oversized() {
    let max = 100;
    let (fits, over) = (hl7_payload(max), hl7_payload(max + 1));
    let stream = [framed(&fits), framed(&over)].concat();
    for chunk in 1..=stream.len() {
        let frames = decode_chunks(&mut MllpCodec::new(max), stream.chunks(chunk));
        let oversized = Frame::Oversized { head: Bytes::from(over.clone()), len: max + 1 };
        assert_eq!(frames, [message(&fits), oversized], "reads of {chunk}");
    }
}

#[test]
fn oversized_head_is_filled_even_when_the_limit_is_below_the_head_size() {
    let (max, payload) = (10, hl7_payload(OVERSIZED_HEAD_BYTES * 3));
    let frames = decode_chunks(&mut MllpCodec::new(max), framed(&payload).chunks(7));
    let head = Bytes::copy_from_slice(&payload[..OVERSIZED_HEAD_BYTES]);
    assert_eq!(frames, [Frame::Oversized { head, len: payload.len() }]);
}

#[test]
fn buffer_stays_within_the_limit_plus_one_read_while_a_huge_frame_streams_in() {
    let max = 64 * 1024;
    let stream = framed(&hl7_payload(8 * MIB));
    let mut codec = MllpCodec::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in stream.chunks(MTU_READ) {
        buf.extend_from_slice(chunk);
        assert!(buf.len() <= max + MTU_READ);
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
        assert!(buf.len() <= max);
        // BytesMut grows by doubling, so capacity may reach twice what was needed.
        assert!(buf.capacity() <= 2 * (max + MTU_READ), "{}", buf.capacity());
    }
    assert!(matches!(frames[..], [Frame::Oversized { len, .. }] if len == 8 * MIB));
}

// hl7-mllp 0.2.0 rescans its whole buffer per `next_frame()`: ~3,600 passes here.
#[test]
fn five_mib_frame_in_mtu_sized_reads_examines_each_byte_once() {
    let payload = hl7_payload(5 * MIB);
    let stream = framed(&payload);
    let mut codec = MllpCodec::new(8 * MIB);
    let frames = decode_chunks(&mut codec, stream.chunks(MTU_READ));
    assert!(matches!(&frames[..], [Frame::Message(p)] if p[..] == payload[..]));
    assert!(codec.examined_bytes() <= stream.len() as u64);
}

#[test]
fn truncated_frame_then_eof_is_an_error_with_its_length() {
    let mut codec = MllpCodec::new(MIB);
    let partial = b"MSH|^~\\&|trunc";
    let mut buf = BytesMut::from(&[&b"\r\n\x0b"[..], partial].concat()[..]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    let err = codec.decode_eof(&mut buf).unwrap_err();
    assert!(matches!(err, CodecError::Truncated { bytes } if bytes == partial.len()));
    // The codec is back between frames and decodes the next stream.
    let frames = decode_chunks(&mut codec, [&framed(b"MSH|next")[..]]);
    assert_eq!(frames, [message(b"MSH|next")]);
}

#[test]
fn truncated_oversized_frame_then_eof_reports_every_byte_received() {
    let mut codec = MllpCodec::new(100);
    let mut buf = BytesMut::new();
    buf.put_u8(START_BLOCK);
    buf.extend_from_slice(&hl7_payload(1000));
    assert!(codec.decode(&mut buf).unwrap().is_none());
    let err = codec.decode_eof(&mut buf).unwrap_err();
    assert!(matches!(err, CodecError::Truncated { bytes: 1000 }), "{err:?}");
}

#[test]
fn eof_between_frames_is_a_clean_end() {
    let mut codec = MllpCodec::new(MIB);
    let mut buf = BytesMut::from(&[&framed(b"MSH|a")[..], b"\r\n"].concat()[..]);
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), Some(message(b"MSH|a")));
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
}

#[test]
fn encoder_wraps_the_payload_in_start_and_end_blocks() {
    let mut dst = BytesMut::new();
    MllpCodec::new(MIB).encode(&b"MSH|x"[..], &mut dst).unwrap();
    assert_eq!(&dst[..], b"\x0bMSH|x\x1c\r");
}

#[test]
fn encoder_refuses_a_payload_holding_a_block_character() {
    let mut dst = BytesMut::new();
    let err = MllpCodec::new(MIB).encode(&b"MSH|\x1cx"[..], &mut dst).unwrap_err();
    assert!(matches!(err, CodecError::BlockByteInPayload { byte: 0x1c, offset: 4 }));
    assert!(dst.is_empty());
}

#[test]
fn debug_output_shows_sizes_not_patient_data() {
    let frame = message(b"PID|1||123^^^HOSP^MR||DOE^JANE");
    assert_eq!(format!("{frame:?}"), "Message { len: 30 }");
}

/// A stream of random frames, each preceded by a little junk (never `0x0B`).
fn frames_with_junk() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    let payload_byte = any::<u8>().prop_filter("block byte", |b| ![0x0B, 0x1C].contains(b));
    let junk_byte = prop::sample::select(vec![b'\r', b'\n', b'x', 0x1C, 0x00]);
    let payload = prop::collection::vec(payload_byte, 0..600);
    let junk = prop::collection::vec(junk_byte, 0..3);
    prop::collection::vec((junk, payload), 0..12)
}

proptest! {
    #[test]
    fn any_chunking_of_a_frame_stream_decodes_exactly_those_frames(
        frames in frames_with_junk(),
        max in 0usize..700,
        cuts in prop::collection::vec(1usize..200, 1..40),
    ) {
        let mut stream = Vec::new();
        for (junk, payload) in &frames {
            stream.extend_from_slice(junk);
            stream.extend_from_slice(&framed(payload));
        }
        let mut chunks = Vec::new();
        let mut rest = &stream[..];
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at((*cut).min(rest.len()));
            chunks.push(chunk);
            rest = tail;
        }
        let mut codec = MllpCodec::new(max);
        let decoded = decode_chunks(&mut codec, chunks);
        let expected: Vec<Frame> = frames
            .iter()
            .map(|(_, p)| match p.len() > max {
                true => Frame::Oversized {
                    head: Bytes::copy_from_slice(&p[..p.len().min(OVERSIZED_HEAD_BYTES)]),
                    len: p.len(),
                },
                false => message(p),
            })
            .collect();
        prop_assert_eq!(decoded, expected);
        let junk: usize = frames.iter().map(|(j, _)| j.len()).sum();
        prop_assert_eq!(codec.skipped_bytes(), junk as u64);
        prop_assert!(codec.examined_bytes() <= stream.len() as u64);
    }
}

#[test]
fn in_frame_is_true_from_the_start_block_to_the_end_of_the_frame_oversized_or_not() {
    let mut codec = MllpCodec::new(8);
    let mut buf = BytesMut::from(&b"\r\njunk"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(!codec.in_frame(), "bytes between frames are not a frame");
    buf.extend_from_slice(b"\x0bMSH|");
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(codec.in_frame());
    buf.extend_from_slice(&[b'x'; 64]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(codec.in_frame(), "still in the frame while its oversized bytes are dropped");
    buf.extend_from_slice(b"\x1c\x0d");
    assert!(matches!(codec.decode(&mut buf).unwrap(), Some(Frame::Oversized { len: 68, .. })));
    assert!(!codec.in_frame());
}
