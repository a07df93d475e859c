use super::*;

/// Implicit VR LE element bytes.
fn element(group: u16, element: u16, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(group.to_le_bytes());
    out.extend(element.to_le_bytes());
    out.extend((value.len() as u32).to_le_bytes());
    out.extend(value);
    out
}

fn header(group: u16, element: u16, len: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(group.to_le_bytes());
    out.extend(element.to_le_bytes());
    out.extend(len.to_le_bytes());
    out
}

#[test]
fn a_well_formed_identifier_with_a_sequence_passes_and_reads() {
    let mut sps = header(0xFFFE, 0xE000, u32::MAX);
    sps.extend(element(0x0008, 0x0060, b"CT"));
    sps.extend(header(0xFFFE, 0xE00D, 0));
    let mut bytes = element(0x0010, 0x0010, b"DOE^JOHN");
    bytes.extend(header(0x0040, 0x0100, sps.len() as u32));
    bytes.extend(&sps);
    check(&bytes, false).unwrap();
    let obj = read(&bytes, TRANSFER_SYNTAXES[1]).unwrap();
    assert_eq!(obj.element(dicom_dictionary_std::tags::PATIENT_NAME).unwrap().to_str().unwrap(), "DOE^JOHN");
}

#[test]
fn a_declared_length_beyond_the_bytes_is_refused_before_anything_is_allocated() {
    let mut bytes = element(0x0010, 0x0010, b"DOE^JOHN");
    bytes.extend(header(0x0010, 0x0020, u32::MAX - 1));
    assert!(check(&bytes, false).unwrap_err().to_string().contains("declares"));
    // Inside a defined-length sequence item: the item's end is the limit.
    let mut item = header(0xFFFE, 0xE000, 12);
    item.extend(header(0x0008, 0x0060, 100));
    item.extend(b"CTCT");
    let mut bytes = header(0x0040, 0x0100, item.len() as u32);
    bytes.extend(item);
    bytes.extend(vec![0u8; 100]);
    assert!(check(&bytes, false).is_err());
}

#[test]
fn deep_nesting_and_unclosed_sequences_are_refused() {
    let mut bytes = Vec::new();
    for _ in 0..MAX_DEPTH + 1 {
        bytes.extend(header(0x0040, 0x0100, u32::MAX));
        bytes.extend(header(0xFFFE, 0xE000, u32::MAX));
    }
    assert!(check(&bytes, false).unwrap_err().to_string().contains("nest"));
    let open = header(0x0040, 0x0100, u32::MAX);
    assert!(check(&open, false).is_err());
    assert!(check(&vec![0u8; MAX_IDENTIFIER_BYTES + 1], false).is_err());
}
