use super::*;

pub(crate) fn field<'a>(payload: &'a str, segment: &str, n: usize) -> &'a str {
    let seg = payload.split('\r').find(|s| s.starts_with(segment)).expect(segment);
    // For MSH, field 1 is the separator itself, so MSH-n is split index n-1.
    let index = if segment == "MSH" { n - 1 } else { n };
    seg.split('|').nth(index).unwrap_or("")
}

fn order(n: u64, size: usize) -> (OrderWriter, String) {
    let mut w = OrderWriter::default();
    w.write(n, &format!("RUN-{n}"), "20261123114200+0000", size);
    let payload = String::from_utf8(w.frame[1..w.frame.len() - 2].to_vec()).unwrap();
    (w, payload)
}

#[test]
fn synthesized_order_carries_control_id_and_accession_where_receivers_look() {
    let (_, p) = order(42, 1024);
    assert_eq!(field(&p, "MSH", 9), "ORM^O01^ORM_O01");
    assert_eq!(field(&p, "MSH", 10), "RUN-42");
    assert_eq!(field(&p, "ORC", 3), "ARUN-42^RIS");
    assert_eq!(field(&p, "OBR", 3), "ARUN-42^RIS");
    assert_eq!(field(&p, "OBR", 18), "ARUN-42");
    assert_eq!(field(&p, "OBR", 24).len(), 2, "modality");
    let segments: Vec<&str> = p.split('\r').filter(|s| !s.is_empty()).map(|s| &s[..3]).collect();
    assert_eq!(segments[..5], ["MSH", "PID", "PV1", "ORC", "OBR"]);
}

#[test]
fn synthesized_order_is_about_the_requested_size() {
    let (_, bare) = order(7, 0);
    assert!(bare.len() < 1024, "{}", bare.len());
    for size in [1024, 8192] {
        let (_, p) = order(7, size);
        assert!(p.len() >= size && p.len() < size + 100, "{size}: {}", p.len());
    }
}

#[test]
fn nagle_parts_are_start_block_with_msh_then_rest_then_end_block() {
    let (w, _) = order(1, 1024);
    let [a, b, c] = w.nagle_parts();
    assert!(a.starts_with(b"\x0bMSH|") && a.ends_with(b"\r"));
    assert_eq!(a.iter().filter(|&&x| x == b'\r').count(), 1);
    assert!(b.starts_with(b"PID|"));
    assert_eq!(c, b"\x1c\r");
    assert_eq!([a, b, c].concat(), w.frame.to_vec());
}

#[test]
fn ack_parse_reads_code_and_control_id_with_the_senders_separator() {
    let ack = parse_ack(b"MSH#^~\\&#A#B#C#D#20261123##ACK^O01^ACK#X1#P#2.5.1\rMSA#AE#RUN-1#bad\r");
    let expected = Ack { code: b"AE", control_id: b"RUN-1", is_ack_type: true };
    assert_eq!(ack, Some(expected));
    assert_eq!(parse_ack(b"MSH|^~\\&|A\rPID|1\r"), None);
    assert!(!parse_ack(b"MSH|^~\\&|||||||ADT^A01|1|P|2.5\nMSA|AA|1").unwrap().is_ack_type);
}
