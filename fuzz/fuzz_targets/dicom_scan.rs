//! The data-set header scan of C-STORE intake (`zenedge::dicom_scan::scan`) on arbitrary
//! bytes, in every dataset layout, under varied `ScanLimits`.
//!
//! Input: byte 0 picks the transfer syntax, byte 1 the limits and byte 2 seeds the sizes of
//! the reads the scanner gets; the rest is the data set. Checked: no panic; a scan that
//! succeeds returns four valid UIDs and at most `MAX_OTHER_PATIENT_IDS` distinct Other
//! Patient IDs; the outcome does not depend on how the bytes arrive
//! (compared with reading them in one piece).
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use zenedge::dicom_scan::{InstanceAttributes, MAX_OTHER_PATIENT_IDS, ScanError, ScanLimits, scan};
use zenedge::ids::is_valid_uid;

/// The indexes of `SYNTAXES` whose data set is deflated.
const DEFLATED: [usize; 2] = [3, 5];

const SYNTAXES: [&str; 8] = [
    "1.2.840.10008.1.2",      // implicit VR little endian
    "1.2.840.10008.1.2.1",    // explicit VR little endian
    "1.2.840.10008.1.2.2",    // explicit VR big endian
    "1.2.840.10008.1.2.1.99", // deflated explicit VR little endian
    "1.2.840.10008.1.2.4.50", // JPEG baseline: explicit VR little endian
    "1.2.840.10008.1.2.4.95", // JPIP referenced deflate
    "1.2.840.10008.1.2.1\0",  // padded UID
    "1.2.840.10008.1.2.4.0x", // not a transfer syntax we read
];

/// Gives out the data in reads of varying sizes.
struct Trickle<'a> {
    data: &'a [u8],
    state: u32,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // xorshift32
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        let want = if self.state % 4 == 0 { 1 + self.state as usize % 9000 } else { 1 + self.state as usize % 7 };
        let n = want.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let [syntax, limits, seed, dataset @ ..] = data else { return };
    let index = usize::from(*syntax) % SYNTAXES.len();
    let ts = SYNTAXES[index];
    let limits = ScanLimits {
        max_element_bytes: [0, 8, 64, 1024, 64 * 1024][usize::from(limits & 7) % 5],
        max_depth: u32::from((limits >> 3) & 7) + if limits & 0x40 != 0 { 8 } else { 0 },
        max_header_bytes: if limits & 0x80 != 0 { 1 << 20 } else { 64 + u64::from(*seed) * 16 },
    };
    let whole = scan(dataset, ts, &limits);
    if let Ok(attributes) = &whole {
        for uid in [
            &attributes.sop_class_uid,
            &attributes.sop_instance_uid,
            &attributes.study_instance_uid,
            &attributes.series_instance_uid,
        ] {
            assert!(is_valid_uid(uid), "an invalid UID was accepted");
        }
        let ids = &attributes.other_patient_ids;
        assert!(ids.len() <= MAX_OTHER_PATIENT_IDS, "{} other patient ids accepted", ids.len());
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "an other patient id kept twice");
    }
    let trickled = scan(Trickle { data: dataset, state: 0x2545_F491 ^ u32::from(*seed) }, ts, &limits);
    let describe = |r: &Result<InstanceAttributes, ScanError>| match r {
        Ok(a) => Ok(a.clone()),
        Err(e) => Err(e.to_string()),
    };
    let (whole, trickled) = (describe(&whole), describe(&trickled));
    let deflate_fault = |r: &Result<InstanceAttributes, String>| matches!(r, Err(e) if e.contains("deflate stream") || e == "dataset truncated");
    if DEFLATED.contains(&index) && (deflate_fault(&whole) || deflate_fault(&trickled)) {
        return;
    }
    assert_eq!(whole, trickled, "the outcome depends on how the bytes arrive");
});
