//! Synthetic HL7 messages (invented patients) and ACK inspection.

/// An ORM^O01 new order with accession `acc` in OBR-18.
pub fn orm(control_id: &str, acc: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|RIS|HOSP|ZENEDGE|EDGE|20261123101500||ORM^O01^ORM_O01|{control_id}|P|2.5.1\r\
         PID|1||PAT-{acc}^^^HOSP^MR~INS-77^^^INSURER^SS||Doe^Jane^Q||19700101|F\r\
         PV1|1|O\r\
         ORC|NW|PLC-{acc}|FIL-{acc}||SC\r\
         OBR|1|PLC-{acc}|FIL-{acc}|CTHEAD^CT Head^L|||20261123100000||||||Headache since 3 days|||1234^House^Greg||{acc}||||||CT\r"
    )
    .into_bytes()
}

/// The same message with different content (another accession) under one control id.
pub fn orm_other_content(control_id: &str) -> Vec<u8> {
    orm(control_id, "OTHER-ACC")
}

/// Segments of an ACK payload, split on CR.
pub fn segments(ack: &[u8]) -> Vec<Vec<String>> {
    let text = String::from_utf8_lossy(ack);
    text.split('\r').filter(|s| !s.is_empty()).map(|s| s.split('|').map(str::to_owned).collect()).collect()
}

/// MSA-1 (the acknowledgement code).
pub fn ack_code(ack: &[u8]) -> String {
    msa(ack)[1].clone()
}

/// The MSA segment's fields (`[0]` is "MSA").
pub fn msa(ack: &[u8]) -> Vec<String> {
    segments(ack).into_iter().find(|s| s[0] == "MSA").expect("an MSA segment")
}

/// A field of the ACK's MSH with HL7 numbering (MSH-1 is the field separator).
pub fn msh(ack: &[u8], n: usize) -> String {
    let seg = segments(ack).into_iter().next().expect("MSH");
    assert_eq!(seg[0], "MSH");
    if n == 1 { "|".into() } else { seg.get(n - 1).cloned().unwrap_or_default() }
}

/// An ORM^O01 for the order of [`orm`] with accession `acc`, with ORC-1 `control` (`XO`,
/// `CA`…), order status `status` and patient class `class`.
pub fn orm_change(control_id: &str, acc: &str, control: &str, status: &str, class: &str) -> Vec<u8> {
    let text = String::from_utf8(orm(control_id, acc)).expect("ASCII");
    text.replace(&format!("ORC|NW|PLC-{acc}|FIL-{acc}||SC"), &format!("ORC|{control}|PLC-{acc}|FIL-{acc}||{status}"))
        .replace("PV1|1|O", &format!("PV1|1|{class}"))
        .into_bytes()
}

/// The order of [`orm`] with accession `acc` sent again as a new order (`NW`, same placer
/// number) with OBR-18 corrected to `new_acc`, as a RIS corrects an accession number.
pub fn orm_corrected(control_id: &str, acc: &str, new_acc: &str) -> Vec<u8> {
    let text = String::from_utf8(orm(control_id, acc)).expect("ASCII");
    let corrected = text.replace(&format!("|1234^House^Greg||{acc}|"), &format!("|1234^House^Greg||{new_acc}|"));
    assert_ne!(corrected, text, "OBR-18 replaced");
    corrected.into_bytes()
}

/// ADT^A40: patient `prior` merged into `surviving`.
pub fn a40(control_id: &str, surviving: &str, prior: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|PAS|HOSP|ZENEDGE|EDGE|20261123101500||ADT^A40^ADT_A39|{control_id}|P|2.5.1\r\
         EVN|A40|20261123101500\r\
         PID|1||{surviving}^^^HOSP^MR||Doe^Jane||19700101|F\r\
         MRG|{prior}^^^HOSP^MR\r"
    )
    .into_bytes()
}
