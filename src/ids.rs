//! Identifiers and digests as text, shared by the parsers and by everything above them: the
//! DICOM UID check, SHA-256 digests in hex, and the bound on the patient ids one message or
//! instance may carry. Pure functions, no I/O; the one module of the crate a parser may use.

/// Most patient identifiers one HL7 message may carry in PID-2, PID-3 and PID-4 together (and,
/// apart, in MRG-1 and MRG-4), and most distinct Other Patient IDs one DICOM instance may carry.
/// Every identifier is indexed for every order of the message and looked up for case grouping;
/// real messages and instances carry a handful, so one with more is refused rather than stored.
/// 100,000 repetitions of PID-3 (1.4 MB, well within the frame limit) took minutes of the log
/// writer before this limit.
pub const MAX_PATIENT_IDENTIFIERS: usize = 100;

/// A UID per PS3.5 §9.1: 1–64 characters, digits and dots, no empty component, no leading
/// zero in a component other than "0" itself. Only such UIDs become file names and keys.
pub fn is_valid_uid(uid: &str) -> bool {
    (1..=64).contains(&uid.len())
        && uid.split('.').all(|component| match component.as_bytes() {
            [] => false,
            [b'0', _, ..] => false,
            digits => digits.iter().all(u8::is_ascii_digit),
        })
}

/// Lower-case hex of a digest, as events carry SHA-256 values.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// The bytes of a hex string written by [`hex`] (an invalid digit reads as zero: the hex came
/// from us; [`sha256_from_hex`] checks).
pub fn hex_to_bytes(hex: &str) -> Vec<u8> {
    hex.as_bytes().chunks(2).map(|pair| pair.iter().fold(0u8, |acc, &c| acc << 4 | nibble(c).unwrap_or(0))).collect()
}

/// A SHA-256 digest from its 64 hex digits; `None` if `hex` is not one.
pub fn sha256_from_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// The value of one hex digit.
fn nibble(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
#[path = "ids_tests.rs"]
mod tests;
