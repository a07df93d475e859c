//! Bad and awkward input: a clear negative answer (AE with an ERR segment) for what is
//! wrong, tolerance for what real interface engines do, and nothing stored lost.

use tokio::io::AsyncWriteExt;

use crate::support::TestDaemon;
use crate::support::hl7msg::{ack_code, msa, orm, segments};
use crate::support::mllp::frame;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_without_msh_gets_ae_with_an_err_segment_and_is_not_stored() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    let ack = c.send(b"PID|1||X^^^H^MR\rOBR|1\r").await;
    assert_eq!(ack_code(&ack), "AE");
    let err = segments(&ack).into_iter().find(|s| s[0] == "ERR").expect("ERR segment");
    assert!(err.join("|").contains("HL70357"), "{err:?}");
    // The connection is still usable and the next good message is stored.
    assert_eq!(ack_code(&c.send(&orm("AFTER-BAD", "A1")).await), "AA");
    assert_eq!(d.events().await.len(), 1);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_control_id_or_type_gets_ae_naming_the_field() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    let no_id = c.send(b"MSH|^~\\&|RIS|HOSP|ZE|EDGE|20261123||ORM^O01||P|2.5.1\rPID|1\r").await;
    assert_eq!(ack_code(&no_id), "AE");
    assert!(String::from_utf8_lossy(&no_id).contains("MSH^1^10"), "{}", String::from_utf8_lossy(&no_id));
    let no_type = c.send(b"MSH|^~\\&|RIS|HOSP|ZE|EDGE|20261123|||X-1|P|2.5.1\rPID|1\r").await;
    assert_eq!(ack_code(&no_type), "AE");
    assert_eq!(msa(&no_type)[2], "X-1");
    assert!(String::from_utf8_lossy(&no_type).contains("MSH^1^9"));
    assert!(d.events().await.is_empty());
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_separators_are_read_from_msh1_and_msh2() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    let message = "MSH#*@!%#RIS#HOSP#ZE#EDGE#20261123##ORM*O01#SEP-1#P#2.5.1\r\
                   PID#1##P-9*!!*!!*HOSP*!!*MR##Roe*Richard\r\
                   ORC#NW#PL-1\rOBR#1#PL-1##CT1*CT Chest##############ACC-SEP";
    let ack = c.send(message.as_bytes()).await;
    let text = String::from_utf8_lossy(&ack).to_string();
    assert!(text.starts_with("MSH#*@!%#ZE#EDGE#RIS#HOSP#"), "ACK uses the sender's separators: {text}");
    assert!(text.contains("MSA#AA#SEP-1"), "{text}");
    let e = &d.events().await[0];
    assert_eq!(e["data"]["summary"]["patient"]["name"]["family"], "Roe");
    assert_eq!(e["data"]["summary"]["orders"][0]["accession_number"], "ACC-SEP");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latin1_and_utf8_names_are_decoded_and_raw_bytes_kept() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    let latin1 = [
        b"MSH|^~\\&|RIS|HOSP|ZE|EDGE|20261123||ADT^A01|L1-1|P|2.5||||||8859/1\rPID|1||P-1^^^H^MR||M".as_slice(),
        &[0xfc], // ü in Latin-1
        b"ller^J".as_slice(),
        &[0xfc],
        b"rgen\r".as_slice(),
    ]
    .concat();
    let utf8 =
        "MSH|^~\\&|RIS|HOSP|ZE|EDGE|20261123||ADT^A01|U8-1|P|2.5||||||UNICODE UTF-8\rPID|1||P-2^^^H^MR||Øster^Åsa\r";
    assert_eq!(ack_code(&c.send(&latin1).await), "AA");
    assert_eq!(ack_code(&c.send(utf8.as_bytes()).await), "AA");
    let events = d.events().await;
    assert_eq!(events[0]["data"]["summary"]["patient"]["name"]["family"], "Müller");
    assert_eq!(events[0]["data"]["summary"]["patient"]["name"]["given"], "Jürgen");
    assert_eq!(events[0]["data"]["summary"]["charset_fallback"], false);
    assert_eq!(events[1]["data"]["summary"]["patient"]["name"]["family"], "Øster");
    assert!(events[0]["data"]["raw_text"].as_str().unwrap().contains("Müller"));
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_charset_is_stored_acked_and_flagged() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    let message = [
        b"MSH|^~\\&|RIS|HOSP|ZE|EDGE|20261123||ADT^A08|CS-1|P|2.5||||||KLINGON-1\rPID|1||P-3^^^H^MR||B".as_slice(),
        &[0xe9],
        b"rard^Ren".as_slice(),
        &[0xe9],
        b"\r".as_slice(),
    ]
    .concat();
    assert_eq!(ack_code(&c.send(&message).await), "AA");
    let e = &d.events().await[0];
    assert_eq!(e["data"]["summary"]["charset_fallback"], true);
    assert_eq!(e["data"]["summary"]["patient"]["name"]["family"], "Bérard", "decoded with the 8859/1 fallback");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_split_at_any_byte_is_reassembled() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    let message = b"MSH|^~\\&|RIS|HOSP|ZE|EDGE|20261123||ADT^A04|SPLIT-0|P|2.5\rPID|1||P-4^^^H^MR||Poe^Al\r".to_vec();
    let whole = frame(&message);
    for cut in 1..whole.len() {
        let id = format!("SPLIT-{cut}");
        let m = String::from_utf8(message.clone()).unwrap().replace("SPLIT-0", &id);
        let f = frame(m.as_bytes());
        c.write(&f[..cut]).await;
        c.stream.flush().await.unwrap();
        tokio::task::yield_now().await;
        c.write(&f[cut..]).await;
        let ack = c.read_ack().await.expect("ACK");
        assert_eq!(msa(&ack)[2], id, "cut at {cut}");
        assert_eq!(ack_code(&ack), "AA");
    }
    assert_eq!(d.events().await.len(), whole.len() - 1);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_line_ends_between_frames_are_skipped() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    let mut stream = b"\r\n\r\n".to_vec();
    stream.extend(frame(&orm("G-1", "A1")));
    stream.extend(b"\r\nnoise\x00\xff\n");
    stream.extend(frame(&orm("G-2", "A2")));
    c.write(&stream).await;
    let a1 = c.read_ack().await.unwrap();
    let a2 = c.read_ack().await.unwrap();
    assert_eq!((msa(&a1)[2].as_str(), msa(&a2)[2].as_str()), ("G-1", "G-2"));
    assert_eq!(d.events().await.len(), 2);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame_then_disconnect_stores_nothing_and_is_counted() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    let f = frame(&orm("TRUNC-1", "A1"));
    c.write(&f[..f.len() / 2]).await;
    drop(c);
    // The daemon is unaffected: a new connection is served and only its message is stored.
    let mut c2 = d.client().await;
    assert_eq!(ack_code(&c2.send(&orm("TRUNC-2", "A2")).await), "AA");
    let events = d.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["control_id"], "TRUNC-2");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_gets_ae_and_the_connection_stays_usable() {
    let d = TestDaemon::start_with("[mllp]\nmax_message_bytes = \"4KiB\"\n").await;
    let mut c = d.client().await;
    let mut big = String::from_utf8(orm("BIG-1", "A1")).unwrap();
    big.push_str(&format!("NTE|1||{}\r", "x".repeat(20_000)));
    let ack = c.send(big.as_bytes()).await;
    assert_eq!(ack_code(&ack), "AE");
    assert_eq!(msa(&ack)[2], "BIG-1", "the AE names the refused message");
    assert_eq!(ack_code(&c.send(&orm("SMALL-1", "A2")).await), "AA");
    let events = d.events().await;
    assert_eq!(events.len(), 1);
    let metrics = d.get("/metrics").await.body;
    assert!(metrics.contains("zenedge_mllp_frames_rejected_total{reason=\"oversized\"} 1"), "{metrics}");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_message_types_are_stored_and_acknowledged() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    let oru =
        "MSH|^~\\&|LAB|HOSP|ZE|EDGE|20261123||ORU^R01^ORU_R01|ORU-1|P|2.5\rPID|1||P-5^^^H^MR\rOBX|1|ST|GLU||5.5\r";
    let ack = c.send(oru.as_bytes()).await;
    assert_eq!(ack_code(&ack), "AA");
    assert_eq!(crate::support::hl7msg::msh(&ack, 9), "ACK^R01^ACK");
    assert_eq!(d.events().await[0]["data"]["message_type"], "ORU^R01");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let d = TestDaemon::start_with("[mllp]\nidle_timeout = \"100ms\"\n").await;
    let mut c = d.client().await;
    assert_eq!(ack_code(&c.send(&orm("IDLE-1", "A")).await), "AA");
    // Send nothing: the daemon closes the connection (read returns EOF, not an ACK).
    assert!(c.read_ack().await.is_none());
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let d = TestDaemon::start_with("[mllp]\nmax_connections = 1\n").await;
    let mut first = d.client().await;
    assert_eq!(ack_code(&first.send(&orm("LIM-1", "A")).await), "AA");
    let mut second = d.client().await;
    second.write(&frame(&orm("LIM-2", "A"))).await;
    let metrics = d.get("/metrics").await.body;
    assert!(metrics.contains("zenedge_mllp_connections_total 1\n"), "the second is not accepted yet:\n{metrics}");
    drop(first);
    let ack = second.read_ack().await.expect("served once the first closed");
    assert_eq!(msa(&ack)[2], "LIM-2");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_or_http_on_the_mllp_port_closes_the_connection_at_once() {
    let d = TestDaemon::start().await;
    // The start of a TLS 1.2 ClientHello, then an HTTP request.
    for (first, reason) in [
        (&b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..], "tls_on_plain_port"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "http_on_mllp_port"),
    ] {
        let mut c = d.client().await;
        c.write(first).await;
        assert!(c.read_ack().await.is_none(), "{reason}: closed without an answer");
        let metrics = d.get("/metrics").await.body;
        assert!(metrics.contains(&format!("reason=\"{reason}\"}} 1")), "{metrics}");
    }
    assert_eq!(ack_code(&d.client().await.send(&orm("AFTER", "A")).await), "AA");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_block_inside_a_message_gets_ae_and_nothing_is_stored() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    let message = String::from_utf8(orm("FS-1", "A")).unwrap();
    let (head, tail) = message.split_at(message.find("PV1").unwrap());
    let corrupt = [head.as_bytes(), b"\x1c", tail.as_bytes()].concat();
    let ack = c.send(&corrupt).await;
    assert_eq!(ack_code(&ack), "AE", "a message cut at a stray 0x1C must not be acknowledged");
    assert_eq!(msa(&ack)[2], "FS-1");
    assert!(d.events().await.is_empty());
    assert_eq!(ack_code(&c.send(&orm("FS-2", "A")).await), "AA");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_that_leaves_out_the_final_cr_is_still_answered() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    let f = frame(&orm("NOCR-1", "A"));
    c.write(&f[..f.len() - 1]).await;
    let ack = c.read_ack().await.expect("answered after the end-block grace period");
    assert_eq!(msa(&ack)[2], "NOCR-1");
    assert_eq!(ack_code(&ack), "AA");
    d.stop().await.unwrap();
}
