use super::*;

#[test]
fn is_valid_uid_follows_ps3_5_section_9() {
    for good in
        ["0", "1.2", "1.2.840.10008.1.2.4.50", "2.25.0", &"1.".repeat(31).chars().chain(['9', '9']).collect::<String>()]
    {
        assert!(is_valid_uid(good), "{good}");
    }
    for bad in ["", ".", "1.", ".1", "1..2", "01.2", "1.00", "1.2a", "1,2", "1.2 ", "١.٢", &"1".repeat(65)] {
        assert!(!is_valid_uid(bad), "{bad}");
    }
}

#[test]
fn a_digest_reads_back_from_its_hex() {
    let digest: Vec<u8> = (0..32).map(|i| i * 7).collect();
    let text = hex(&digest);
    assert_eq!(text.len(), 64);
    assert_eq!(hex_to_bytes(&text), digest);
    assert_eq!(sha256_from_hex(&text).map(Vec::from), Some(digest));
    for bad in ["", "00", &"0g".repeat(32), &"0".repeat(63)] {
        assert_eq!(sha256_from_hex(bad), None, "{bad}");
    }
}
