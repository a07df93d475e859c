//! Synthesized ORM^O01 orders (no I/O) and what the load tool reads from their ACKs.

use std::fmt::Write as _;

use bytes::BytesMut;
use zenedge::mllp::codec::encode_frame;

/// A cheap, well-mixed hash: picks invented data deterministically from the counter.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn pick<'a>(items: &[&'a str], h: u64) -> &'a str {
    items[(h % items.len() as u64) as usize]
}

const FAMILY: &[&str] = &["NOVAK", "OKAFOR", "LINDQVIST", "MORENO", "TANAKA", "BRENNAN", "HAAS", "DUBOIS"];
const GIVEN: &[&str] = &["ANNA", "KWAME", "INGRID", "LUIS", "HARUTO", "SIOBHAN", "FELIX", "CLAIRE"];
const STREET: &[&str] = &["12 ELM ST", "4 HARBOR RD", "77 MILL LN", "301 RIVER AVE", "9 ORCHARD WAY"];
const CITY: &[&str] = &["SPRINGFIELD^IL^62701", "RIVERTON^WY^82501", "FAIRVIEW^OR^97024"];
const DOCTOR: &[&str] = &["1001^HOUSE^GREGORY^^^DR", "1002^GREY^MEREDITH^^^DR", "1003^ROSS^DOUG^^^DR"];
/// Procedure code ^ text ^ coding system, and the DICOM modality of OBR-24.
const PROCEDURE: &[(&str, &str)] = &[
    ("CTHEADWO^CT HEAD WITHOUT CONTRAST^LOCAL", "CT"),
    ("CTCHESTW^CT CHEST WITH CONTRAST^LOCAL", "CT"),
    ("MRKNEEL^MRI KNEE LEFT^LOCAL", "MR"),
    ("XRCHEST2V^XR CHEST 2 VIEWS^LOCAL", "CR"),
    ("USABDCOMP^US ABDOMEN COMPLETE^LOCAL", "US"),
];
const NOTE: &[&str] = &[
    "Patient reports intermittent headaches for two weeks, no trauma.",
    "Creatinine 0.9 mg/dL on file, contrast cleared by ordering physician.",
    "Follow-up of incidental finding on prior study, compare with previous.",
    "Claustrophobic, please schedule in the wide-bore scanner if possible.",
    "Interpreter needed for the appointment; contact ward clerk.",
];

/// Builds the framed bytes of one synthesized ORM^O01 and remembers where MSH ends.
#[derive(Debug, Default)]
pub(crate) struct OrderWriter {
    /// The framed message: `0x0B` payload `0x1C 0x0D`.
    pub(crate) frame: BytesMut,
    /// Payload text, reused between messages.
    text: String,
    /// Offset in `frame` just past the MSH segment's terminator.
    msh_end: usize,
}

impl OrderWriter {
    /// Writes message `n` with MSH-10 `control_id` and MSH-7 `now`, padded to ~`size` bytes.
    pub(crate) fn write(&mut self, n: u64, control_id: &str, now: &str, size: usize) {
        let h = mix(n);
        let t = &mut self.text;
        t.clear();
        let acc = format!("A{control_id}");
        let (proc_code, modality) = PROCEDURE[(h % PROCEDURE.len() as u64) as usize];
        let doctor = pick(DOCTOR, h >> 8);
        // MSH-9 ORM^O01^ORM_O01, MSH-10 control id, MSH-11 P, MSH-12 2.5.1, MSH-15/16 AL/NE.
        let _ = write!(
            t,
            "MSH|^~\\&|RIS_LOADGEN|ST_ELSEWHERE|ZENEDGE|EDGE|{now}||ORM^O01^ORM_O01|{control_id}|P|2.5.1|||AL|NE\r"
        );
        let msh_len = t.len();
        let (year, month, day) = (1930 + h % 90, 1 + (h >> 12) % 12, 1 + (h >> 16) % 28);
        let _ = write!(
            t,
            "PID|1||{mrn:08}^^^STE^MR||{family}^{given}^{initial}||{year}{month:02}{day:02}|{sex}|||{street}^^{city}^USA||(555)555-{phone:04}\r",
            mrn = h % 100_000_000,
            family = pick(FAMILY, h >> 20),
            given = pick(GIVEN, h >> 24),
            initial = (b'A' + ((h >> 28) % 26) as u8) as char,
            sex = if (h >> 32) & 1 == 0 { "F" } else { "M" },
            street = pick(STREET, h >> 33),
            city = pick(CITY, h >> 36),
            phone = (h >> 40) % 10_000,
        );
        let _ = write!(t, "PV1|1|O|RAD^^^STE||||{doctor}|||||||||||V{visit:09}\r", visit = h % 1_000_000_000);
        // ORC-2 placer order number, ORC-3 filler order number (the accession).
        let _ = write!(t, "ORC|NW|P{control_id}^RIS|{acc}^RIS||SC||1^^^{now}^^R||{now}|||{doctor}\r");
        // OBR-2 placer, OBR-3 filler, OBR-4 procedure, OBR-7 time, OBR-16 orderer,
        // OBR-18 accession, OBR-19 requested procedure, OBR-20 scheduled step, OBR-24 modality.
        let _ = write!(
            t,
            "OBR|1|P{control_id}^RIS|{acc}^RIS|{proc_code}|||{now}|||||||||{doctor}||{acc}|RP{n}|SPS{n}||||{modality}|O\r"
        );
        let mut i = 1;
        while t.len() < size {
            let _ = write!(t, "NTE|{i}|L|{}\r", pick(NOTE, mix(h + i)));
            i += 1;
        }
        self.frame.clear();
        encode_frame(t.as_bytes(), &mut self.frame);
        self.msh_end = 1 + msh_len;
    }

    /// The three writes of `--nagle`: start block + MSH, rest of the payload, end block.
    pub(crate) fn nagle_parts(&self) -> [&[u8]; 3] {
        let end = self.frame.len() - 2;
        [&self.frame[..self.msh_end], &self.frame[self.msh_end..end], &self.frame[end..]]
    }
}

pub(crate) fn hl7_now() -> String {
    jiff::Zoned::now().strftime("%Y%m%d%H%M%S%z").to_string()
}

// ---------------------------------------------------------------------------------------
// mllp: ACKs
// ---------------------------------------------------------------------------------------

/// What the load tool reads from an ACK.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Ack<'a> {
    /// MSA-1.
    pub(crate) code: &'a [u8],
    /// MSA-2: must be the MSH-10 that was sent.
    pub(crate) control_id: &'a [u8],
    /// MSH-9 starts with `ACK`.
    pub(crate) is_ack_type: bool,
}

impl Ack<'_> {
    /// MSA-2 names the message that was sent.
    pub(crate) fn acknowledges(&self, control_id: &str) -> bool {
        self.control_id == control_id.as_bytes()
    }

    /// AA or CA for the message that was sent.
    pub(crate) fn is_positive_for(&self, control_id: &str) -> bool {
        self.acknowledges(control_id) && matches!(self.code, b"AA" | b"CA")
    }
}

/// Reads MSH-9 and MSA-1/2, with the field separator taken from MSH-1.
pub(crate) fn parse_ack(payload: &[u8]) -> Option<Ack<'_>> {
    if payload.len() < 4 || !payload.starts_with(b"MSH") {
        return None;
    }
    let fs = payload[3];
    let mut segments = payload.split(|&b| b == b'\r' || b == b'\n');
    // fields[0] is "MSH", fields[1] is MSH-2, so MSH-9 is fields[8].
    let msh9 = segments.next()?.split(|&b| b == fs).nth(8).unwrap_or(b"");
    let msa = segments.find(|s| s.len() > 3 && s.starts_with(b"MSA") && s[3] == fs)?;
    let mut fields = msa.split(|&b| b == fs).skip(1);
    Some(Ack {
        code: fields.next().unwrap_or(b""),
        control_id: fields.next().unwrap_or(b""),
        is_ack_type: msh9.starts_with(b"ACK"),
    })
}

/// MSA-1 codes, in report order; anything else is "other".
pub(crate) const CODES: [&str; 6] = ["AA", "AE", "AR", "CA", "CE", "CR"];

#[cfg(test)]
#[path = "message_tests.rs"]
pub(crate) mod tests;
