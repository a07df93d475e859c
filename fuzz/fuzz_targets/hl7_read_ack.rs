//! The HL7 v2 reader (`zenedge::hl7::read`) on arbitrary bytes, and the ACK builder
//! (`zenedge::hl7::ack::build`) on whatever it reads.
//!
//! Input: the bytes of one message, as the MLLP framer hands them over. Read with the default
//! options (Latin-1 fallback) and with a second fallback charset picked by the input's length.
//! Checked for every input:
//! * no panic, in reading or in building any ACK;
//! * an accepted message has a non-empty control id;
//! * a round trip: every ACK built for an accepted message reads back as an accepted message
//!   (unless the message itself did not fit its MSH-18 and was read with the fallback: the
//!   ACK echoes that MSH-18 and copies the sender's bytes, so it fits it no better), and,
//!   decoded in the charset it was written in, has the inbound separators, MSH-3..6
//!   swapped, MSH-11/12/18 echoed, our control id in MSH-10 and the inbound MSH-10 in MSA-2
//!   (as far as the charset can carry them: characters it cannot are `?`);
//! * an ACK holds no MLLP block byte (`0x0B`, `0x1C`) unless the inbound message did.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zenedge::hl7::ack::{AckCode, build};
use zenedge::hl7::{Charset, ErrorDetail, Header, Message, ReadOptions, read};

/// Our control id for the ACK (MSH-10).
const ACK_ID: &str = "ZE-1";

/// Fallback charsets worth trying besides the default Latin-1.
const FALLBACKS: [Charset; 5] = [Charset::Utf8, Charset::Ascii, Charset::Gb18030, Charset::IsoIr87, Charset::Iso8859_9];

fuzz_target!(|data: &[u8]| {
    exercise(data, &ReadOptions::default());
    let fallback_charset = FALLBACKS[data.len() % FALLBACKS.len()];
    exercise(data, &ReadOptions { fallback_charset, ..ReadOptions::default() });
});

fn exercise(data: &[u8], opts: &ReadOptions) {
    let now: jiff::Timestamp = "2026-03-14T09:30:05Z".parse().expect("a valid timestamp");
    let framed = !data.iter().any(|&b| b == 0x0B || b == 0x1C);
    match read(data, opts) {
        Ok(received) => {
            assert!(!received.control_id().is_empty(), "accepted with an empty control id");
            let detail = ErrorDetail::new(101, Some("PID^1^3"), "bad | value ^ ~ \\ & here\rsecond line");
            for (code, error) in [(AckCode::Accept, None), (AckCode::Error, Some(&detail)), (AckCode::Reject, None)] {
                if let Some(ack) = build(Some(&received.header), code, error, ACK_ID, now) {
                    assert!(!framed || !has_block_byte(&ack), "an ACK holds an MLLP block byte");
                    round_trip(&received.header, code, &ack, !received.summary.charset_fallback);
                }
            }
        }
        Err(rejection) => {
            let ack = build(rejection.header.as_ref(), AckCode::Error, Some(&rejection.error), ACK_ID, now);
            if let Some(ack) = ack {
                assert!(ack.starts_with(b"MSH"), "a negative ACK that does not start with MSH");
                assert!(!framed || !has_block_byte(&ack), "a negative ACK holds an MLLP block byte");
            }
        }
    }
}

fn has_block_byte(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b == 0x0B || b == 0x1C)
}

/// The ACK of an accepted message is itself a message that says what it should.
fn round_trip(inbound: &Header, code: AckCode, ack: &[u8], fits_msh18: bool) {
    let charset = inbound.charset;
    let again = ReadOptions { fallback_charset: charset, ..ReadOptions::default() };
    if let (true, Err(rejection)) = (fits_msh18, read(ack, &again)) {
        panic!("the ACK does not read back: {} {}", rejection.error.code, rejection.error.text);
    }
    let text = charset.decode(ack).expect("an ACK decodes in the charset it was encoded in");
    let message = Message::parse(&text, charset).expect("the ACK parses");
    assert_eq!(*message.separators(), inbound.separators, "the ACK uses other separators");
    // What a copied field looks like after the trip through the ACK's charset.
    let carried = |field: &str| charset.decode_lossy(&charset.encode(field)).into_owned();
    let msh = message.msh();
    let expected = [
        (3, carried(&inbound.receiving_application)),
        (4, carried(&inbound.receiving_facility)),
        (5, carried(&inbound.sending_application)),
        (6, carried(&inbound.sending_facility)),
        (11, carried(&inbound.processing_id)),
        (12, carried(&inbound.version_id)),
        (18, carried(&inbound.character_set)),
    ];
    for (n, want) in expected {
        assert_eq!(msh.field(n).raw(), want, "ACK MSH-{n}");
    }
    // Generated, so escaped: `-` in "ZE-1" is a separator in some messages.
    assert_eq!(msh.field(10).unescaped(), ACK_ID, "ACK MSH-10");
    let msa = message.segment("MSA").expect("the ACK has an MSA segment");
    assert_eq!(msa.field(1).raw(), code.msa_code(inbound.is_enhanced_mode()), "ACK MSA-1");
    assert_eq!(msa.field(2).raw(), carried(&inbound.control_id), "ACK MSA-2 does not echo MSH-10");
}
