//! The event log's stored-value reader (`zenedge::log::value`) on hostile bytes, and its
//! writer on arbitrary envelopes.
//!
//! Input: the first byte picks the mode; the rest is either a stored value as it could be found
//! in the `events` table (mode even: the compressed header is put in front, so most inputs reach
//! the zstd frame decoder) or an envelope to store (mode odd). Checked for every input:
//! * no panic; a value that does not read back is a `ValueFault`, and a value that reads back
//!   is at most `MAX_PLAIN_BYTES` (a hostile frame cannot make the reader allocate without
//!   bound: libFuzzer's RSS limit for this target is set well below what an unbounded frame
//!   would take);
//! * a plain value (no compressed mark) reads back as itself;
//! * whatever the writer stores reads back as the envelope it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zenedge::log::value::{FORMAT_ZSTD, MARK, MAX_PLAIN_BYTES, encode, is_compressed, plain};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let mut stored = vec![MARK, FORMAT_ZSTD];
        stored.extend_from_slice(rest);
        read(&stored);
        read(rest);
    } else {
        let stored = encode(rest.to_vec());
        let back = plain(&stored).expect("a value the writer stored reads back");
        assert_eq!(back.as_ref(), rest, "a stored value reads back as something else");
    }
});

fn read(stored: &[u8]) {
    match plain(stored) {
        Ok(out) => {
            assert!(out.len() <= MAX_PLAIN_BYTES, "a value read back larger than the cap");
            if !is_compressed(stored) {
                assert_eq!(out.as_ref(), stored, "a plain value reads back changed");
            }
        }
        Err(fault) => {
            let _ = fault.to_string();
        }
    }
}
