//! The MLLP framer (`zenedge::mllp::codec`) on an arbitrary byte stream in arbitrary reads.
//!
//! Input: byte 0 picks `max_frame_bytes`, byte 1 seeds the read sizes and says whether the
//! connection's end-block grace period fires (`finish_pending`); the rest is the stream.
//! Checked for every input:
//! * no panic, and `decode` never errors (only `decode_eof` may, with `Truncated`);
//! * frames keep their contracts: a message is at most the limit and holds no block byte;
//!   an oversized or malformed frame keeps exactly `min(len, OVERSIZED_HEAD_BYTES)` bytes;
//! * memory stays bounded: after a read is decoded at most `max_frame_bytes` plus that read
//!   is buffered;
//! * time stays linear: each byte is examined at most once;
//! * without the grace period, the frames do not depend on how the stream was split
//!   (compared with decoding it in one read);
//! * every message frame encodes and decodes back to itself.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};
use zenedge::mllp::codec::{END_BLOCK, Frame, MllpCodec, OVERSIZED_HEAD_BYTES, START_BLOCK};

/// What decoding a whole stream produced.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    frames: Vec<Frame>,
    /// `Some(bytes)` when the stream ended inside a frame.
    truncated: Option<usize>,
}

/// A small deterministic generator for read sizes and grace-period decisions.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        // xorshift32
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }

    fn read_len(&mut self) -> usize {
        let r = self.next();
        if r % 8 == 0 { 1 + (r >> 8) as usize % 2048 } else { 1 + (r >> 8) as usize % 16 }
    }
}

fuzz_target!(|data: &[u8]| {
    let [limit, seed, stream @ ..] = data else { return };
    let max = 1 + usize::from(*limit & 0x7f) * 40;
    let grace = seed & 0x80 != 0;
    let mut rng = Rng(0x9E37_79B9 ^ u32::from(*seed) ^ ((stream.len() as u32) << 8));
    let chunked = decode_in_reads(stream, max, grace, &mut rng);
    if !grace {
        let whole = decode_in_reads(stream, max, false, &mut Rng(0));
        assert_eq!(chunked, whole, "the frames depend on how the stream was split");
    }
    for frame in &chunked.frames {
        if let Frame::Message(payload) = frame {
            let mut codec = MllpCodec::new(max);
            let mut wire = BytesMut::new();
            codec.encode(&payload[..], &mut wire).expect("a decoded payload holds no block byte");
            let again = codec.decode(&mut wire).expect("decode never errors");
            assert_eq!(again.as_ref(), Some(frame), "a message frame does not round-trip");
        }
    }
});

/// Feeds `stream` in reads of `rng`'s sizes (one read when `rng` is `Rng(0)`), decoding as a
/// connection does, then ends the stream.
fn decode_in_reads(stream: &[u8], max: usize, grace: bool, rng: &mut Rng) -> Outcome {
    let mut codec = MllpCodec::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let (mut fed, mut added_crs) = (0usize, 0usize);
    let mut rest = stream;
    while !rest.is_empty() {
        let n = if rng.0 == 0 { rest.len() } else { rng.read_len().min(rest.len()) };
        let (read, tail) = rest.split_at(n);
        rest = tail;
        buf.extend_from_slice(read);
        fed += n;
        drain(&mut codec, &mut buf, max, &mut frames);
        assert!(buf.len() <= max + n, "{} bytes buffered with a limit of {max} after a read of {n}", buf.len());
        if grace && codec.end_block_pending() && rng.next() % 2 == 0 {
            added_crs += 1;
            if let Some(frame) = codec.finish_pending(&mut buf) {
                check(&frame, max);
                frames.push(frame);
            }
            drain(&mut codec, &mut buf, max, &mut frames);
        }
    }
    let mut truncated = None;
    loop {
        if codec.end_block_pending() {
            added_crs += 1;
        }
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => {
                check(&frame, max);
                frames.push(frame);
            }
            Ok(None) => break,
            Err(zenedge::mllp::codec::CodecError::Truncated { bytes }) => {
                truncated = Some(bytes);
                break;
            }
            Err(e) => panic!("unexpected error at end of stream: {e}"),
        }
    }
    let examined = codec.examined_bytes();
    assert!(examined <= (fed + added_crs) as u64, "examined {examined} bytes of {fed} (+{added_crs} CR)");
    Outcome { frames, truncated }
}

/// Decodes every complete frame in `buf`.
fn drain(codec: &mut MllpCodec, buf: &mut BytesMut, max: usize, frames: &mut Vec<Frame>) {
    loop {
        match codec.decode(buf) {
            Ok(Some(frame)) => {
                check(&frame, max);
                frames.push(frame);
            }
            Ok(None) => return,
            Err(e) => panic!("decode errored: {e}"),
        }
    }
}

/// The contract of each kind of frame.
fn check(frame: &Frame, max: usize) {
    match frame {
        Frame::Message(payload) => {
            assert!(payload.len() <= max, "message of {} bytes over the limit {max}", payload.len());
            assert!(!payload.iter().any(|&b| b == START_BLOCK || b == END_BLOCK), "block byte in a message");
        }
        Frame::Oversized { head, len } => {
            assert!(*len > max, "oversized frame of {len} bytes within the limit {max}");
            assert_eq!(head.len(), (*len).min(OVERSIZED_HEAD_BYTES));
            assert!(!head.iter().any(|&b| b == START_BLOCK || b == END_BLOCK), "block byte in an oversized head");
        }
        Frame::Malformed { head, len } => {
            assert_eq!(head.len(), (*len).min(OVERSIZED_HEAD_BYTES));
            assert!(!head.contains(&START_BLOCK), "start block in a malformed head");
        }
    }
}
