#[test]
fn only_the_terminators_after_the_last_segment_are_left_out() {
    let cases: [(&[u8], &[u8]); 6] = [
        (b"MSH|1\rPID|2\r", b"MSH|1\rPID|2"),
        (b"MSH|1\rPID|2\r\n\r\n", b"MSH|1\rPID|2"),
        (b"MSH|1\rPID|2", b"MSH|1\rPID|2"),
        (b"MSH|1\r\rPID|2 \r", b"MSH|1\r\rPID|2 "),
        (b"\r\n", b""),
        (b"", b""),
    ];
    for (raw, body) in cases {
        assert_eq!(super::without_final_terminators(raw), body, "{raw:?}");
    }
}
