//! Properties: no input panics, results do not depend on how the reader chunks its bytes,
//! written attributes come back as written, and UID validation matches its definition.

use proptest::prelude::*;

use super::build::{DEFLATED_LE, EXPLICIT_BE, EXPLICIT_LE, Fence, IMPLICIT_LE, deflate, full_instance, write};
use super::expected_full;
use crate::dicom_scan::{ScanLimits, scan};
use crate::ids::is_valid_uid;

const SYNTAXES: [&str; 5] = [IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE, DEFLATED_LE, "1.2.840.10008.1.2.4.50"];

/// Tight limits so random data reaches the limit paths too.
fn small_limits() -> ScanLimits {
    ScanLimits { max_element_bytes: 256, max_depth: 4, max_header_bytes: 4096 }
}

/// An edit to a valid dataset.
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Set(at, b)),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..12)).prop_map(|(at, b)| Mutation::Insert(at, b)),
        1 => (any::<usize>(), 1..16_usize).prop_map(|(at, n)| Mutation::Remove(at, n)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len().max(1);
    match mutation {
        Mutation::Set(at, b) => {
            if let Some(slot) = bytes.get_mut(at % len) {
                *slot = *b;
            }
        }
        Mutation::Insert(at, extra) => {
            let at = at % len;
            bytes.splice(at..at, extra.iter().copied());
        }
        Mutation::Remove(at, n) => {
            let at = at % len;
            bytes.drain(at..(at + n).min(bytes.len()));
        }
        Mutation::Truncate(at) => bytes.truncate(at % len),
    }
}

/// A few interesting 32-bit values to splice in as lengths and tags.
fn hostile_word() -> impl Strategy<Value = [u8; 4]> {
    prop_oneof![
        Just(u32::MAX.to_le_bytes()),
        Just(0xFFFF_FFF0_u32.to_le_bytes()),
        Just([0xFE, 0xFF, 0x00, 0xE0]),
        Just([0xFE, 0xFF, 0xDD, 0xE0]),
        Just([0xFE, 0xFF, 0x0D, 0xE0]),
        Just(*b"SQ\0\0"),
        Just(*b"UN\0\0"),
        any::<[u8; 4]>(),
    ]
}

proptest! {
    #[test]
    fn random_bytes_never_panic_in_any_transfer_syntax(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        ts in prop::sample::select(SYNTAXES.as_slice()),
    ) {
        let _ = scan(bytes.as_slice(), ts, &small_limits());
        let _ = scan(bytes.as_slice(), ts, &ScanLimits::default());
    }

    #[test]
    fn random_words_spliced_into_a_dataset_never_panic(
        words in prop::collection::vec((any::<usize>(), hostile_word()), 1..6),
        ts in prop::sample::select(&[IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE][..]),
    ) {
        let mut bytes = write(&full_instance("ISO_IR 192", "Müller^Jürgen"), ts);
        for (at, word) in &words {
            let at = at % (bytes.len() - 4);
            bytes[at..at + 4].copy_from_slice(word);
        }
        let _ = scan(bytes.as_slice(), ts, &small_limits());
        let _ = scan(bytes.as_slice(), ts, &ScanLimits::default());
    }

    #[test]
    fn mutated_valid_datasets_never_panic(
        mutations in prop::collection::vec(mutation(), 1..8),
        ts in prop::sample::select(SYNTAXES.as_slice()),
        charset in prop::sample::select(&["ISO_IR 192", "ISO_IR 100", "\\ISO 2022 IR 87", "GB18030", "bogus"][..]),
    ) {
        let mut bytes = write(&full_instance(charset, "Yamada^Tarou"), if ts == DEFLATED_LE { EXPLICIT_LE } else { ts });
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        if ts == DEFLATED_LE {
            bytes = deflate(&bytes);
        }
        let _ = scan(bytes.as_slice(), ts, &small_limits());
        let _ = scan(bytes.as_slice(), ts, &ScanLimits::default());
    }

    #[test]
    fn mutated_deflate_streams_never_panic(mutations in prop::collection::vec(mutation(), 1..8)) {
        let mut bytes = write(&full_instance("ISO_IR 192", "Müller^Jürgen"), DEFLATED_LE);
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        let _ = scan(bytes.as_slice(), DEFLATED_LE, &ScanLimits::default());
    }

    #[test]
    fn result_does_not_depend_on_how_the_reader_chunks_its_bytes(
        chunk in 1..300_usize,
        ts in prop::sample::select(SYNTAXES.as_slice()),
    ) {
        let bytes = write(&full_instance("ISO_IR 192", "Müller^Jürgen"), ts);
        let len = bytes.len();
        let scanned = scan(Fence::new(bytes, len, chunk), ts, &ScanLimits::default());
        prop_assert_eq!(scanned.expect("valid"), expected_full("ISO_IR 192", "Müller^Jürgen"));
    }

    #[test]
    fn written_patient_names_come_back_as_written(
        name in "[A-Za-zÀ-ÿ0-9][A-Za-zÀ-ÿ0-9 ^=.'-]{0,40}[A-Za-zÀ-ÿ0-9]",
        charset in prop::sample::select(&["ISO_IR 192", "ISO_IR 100"][..]),
        ts in prop::sample::select(SYNTAXES.as_slice()),
    ) {
        let bytes = write(&full_instance(charset, &name), ts);
        let scanned = scan(bytes.as_slice(), ts, &ScanLimits::default()).expect("valid");
        prop_assert_eq!(scanned.patient_name.as_deref(), Some(name.as_str()));
        prop_assert!(!scanned.charset_fallback);
    }

    #[test]
    fn generated_uids_are_valid(components in prop::collection::vec(0..100_000_u32, 1..8)) {
        let uid = components.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
        prop_assert!(is_valid_uid(&uid), "{}", uid);
    }

    #[test]
    fn uids_with_anything_but_digits_and_dots_are_invalid(
        prefix in "[0-9]{1,10}",
        bad in "[^0-9.]",
        suffix in "[0-9]{0,10}",
    ) {
        let uid = format!("{prefix}{bad}{suffix}");
        prop_assert!(!is_valid_uid(&uid));
    }
}
