//! Known attack shapes on every port. Each is refused (a negative ACK, a DICOM failure status
//! or A-ABORT, an HTTP error or a closed connection) in bounded memory and bounded time,
//! nothing already stored is lost, and other clients are served while it goes on.
//!
//! Time limits are the daemon's own, configured small here; a test waits for the close with a
//! generous guard only so that a regression fails instead of hanging. Memory is measured on
//! the real binary: the growth of its peak resident set (`VmHWM`) over the attack.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dicom_ul::pdu::{AssociationRQ, Pdu, PresentationContextProposed, UserVariableItem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::dataset::{Instance, dataset};
use crate::support::hl7msg::{ack_code, msa, orm};
use crate::support::process::{RealDaemon, spawn, write_config_with};
use crate::support::scu::{self, CT_IMAGE_STORAGE, DEFLATED, EXPLICIT_LE};
use crate::support::{MllpClient, TestDaemon};

/// Longest a test waits for the daemon to close an attacking connection; far above every
/// limit configured here.
const GUARD: Duration = Duration::from_secs(30);
/// How fast a slow-loris sender sends: one byte per tick, well inside every idle and read
/// timeout configured here, so only a per-frame/PDU/header deadline can end it.
const TICK: Duration = Duration::from_millis(50);
/// Growth of the daemon's peak resident memory allowed during an attack.
const MEMORY_BOUND_KIB: u64 = 64 * 1024;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("client thread")
}

/// Sends one byte from `next` every [`TICK`] until the daemon closes the connection; returns
/// what it sent back meanwhile. Panics if the connection is still open after [`GUARD`].
async fn trickle_until_closed(stream: &mut TcpStream, mut next: impl FnMut() -> u8) -> Vec<u8> {
    let mut received = Vec::new();
    let (mut rd, mut wr) = stream.split();
    let mut tick = tokio::time::interval(TICK);
    let closed = async {
        let mut buf = [0u8; 4096];
        loop {
            tokio::select! {
                read = rd.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                },
                _ = tick.tick() => {
                    if wr.write_all(&[next()]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::time::timeout(GUARD, closed).await.expect("the trickling sender still held its connection after the guard");
    received
}

/// Reads until the daemon closes the connection; panics if it is still open after [`GUARD`].
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let closed = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(GUARD, closed).await.expect("the connection was still open after the guard");
    received
}

/// The real binary with `extra` config lines, on a fresh state directory.
async fn real_daemon(extra: &'static [(&'static str, &'static str)]) -> (tempfile::TempDir, RealDaemon) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zenedge.toml");
    write_config_with(&config, &dir.path().join("state"), extra);
    let daemon = blocking(move || spawn(&config)).await;
    (dir, daemon)
}

async fn event_count(http: SocketAddr) -> usize {
    let page = crate::support::http::get(http, "/api/v1/events?after=0&limit=1000").await.json();
    page["items"].as_array().unwrap().len()
}

// --- MLLP -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mllp_frame_that_never_ends_is_dropped_past_the_size_limit_in_bounded_memory() {
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 256;
    let (_dir, mut daemon) = real_daemon(&[("mllp", "max_message_bytes = \"1MiB\"")]).await;
    let before = daemon.peak_rss_kib();
    let mut attacker = MllpClient::connect(daemon.mllp).await;
    attacker.write(b"\x0bMSH|^~\\&|RIS|HOSP|ZE|EDGE|20261123||ORM^O01|ENDLESS-1|P|2.5.1\rNTE|1||").await;
    let filler = vec![b'x'; CHUNK];
    for i in 0..CHUNKS {
        attacker.write(&filler).await;
        if i == CHUNKS / 2 {
            // Another sender is served while 128 times the limit has streamed in.
            let ack = MllpClient::connect(daemon.mllp).await.send(&orm("DURING-1", "A1")).await;
            assert_eq!(ack_code(&ack), "AA");
        }
    }
    let peak = daemon.peak_rss_kib();
    // When the end finally comes, the frame is refused as oversized and named.
    attacker.write(b"\x1c\x0d").await;
    let ack = attacker.read_ack().await.expect("an answer to the oversized frame");
    assert_eq!((ack_code(&ack).as_str(), msa(&ack)[2].as_str()), ("AE", "ENDLESS-1"));
    assert_eq!(event_count(daemon.http).await, 1, "only the other sender's message is stored");
    daemon.kill();
    let growth = peak.saturating_sub(before);
    println!("peak RSS grew {} MiB while {} MiB of one frame streamed in", growth / 1024, (CHUNKS * CHUNK) >> 20);
    assert!(growth < MEMORY_BOUND_KIB, "peak RSS grew {growth} KiB over a 1 MiB frame limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mllp_frame_trickled_a_byte_at_a_time_is_cut_off_at_the_frame_timeout() {
    let d = TestDaemon::start_with("[mllp]\nidle_timeout = \"10s\"\nframe_timeout = \"300ms\"\n").await;
    assert_eq!(ack_code(&d.client().await.send(&orm("BEFORE-1", "A1")).await), "AA");
    let mut attacker = TcpStream::connect(d.mllp).await.unwrap();
    attacker.write_all(b"\x0bMSH|^~\\&|RIS|HOSP|ZE|EDGE|20261123||ORM^O01|SLOW-1|P|2.5.1\rNTE|1||").await.unwrap();
    let served = async { d.client().await.send(&orm("DURING-1", "A2")).await };
    let (received, ack) = tokio::join!(trickle_until_closed(&mut attacker, || b'x'), served);
    assert!(received.is_empty(), "closed without an answer: {received:?}");
    assert_eq!(ack_code(&ack), "AA");
    let metrics = d.get("/metrics").await.body;
    assert!(metrics.contains("zenedge_mllp_frames_rejected_total{reason=\"frame_timeout\"} 1"), "{metrics}");
    let ids: Vec<_> = d.events().await.iter().map(|e| e["data"]["control_id"].clone()).collect();
    assert_eq!(ids, ["BEFORE-1", "DURING-1"]);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mllp_junk_trickled_between_frames_is_cut_off_at_the_frame_timeout() {
    let d = TestDaemon::start_with("[mllp]\nidle_timeout = \"10s\"\nframe_timeout = \"300ms\"\n").await;
    let mut attacker = TcpStream::connect(d.mllp).await.unwrap();
    let received = trickle_until_closed(&mut attacker, || b'z').await;
    assert!(received.is_empty(), "{received:?}");
    assert_eq!(ack_code(&d.client().await.send(&orm("AFTER-1", "A1")).await), "AA");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mllp_line_ends_between_frames_do_not_start_the_frame_timeout() {
    // A sender that ends each frame with CR LF and then idles is not cut off: only the idle
    // timeout applies to it.
    let d = TestDaemon::start_with("[mllp]\nidle_timeout = \"10s\"\nframe_timeout = \"300ms\"\n").await;
    let mut c = d.client().await;
    assert_eq!(ack_code(&c.send(&orm("CRLF-1", "A1")).await), "AA");
    c.write(b"\r\n").await;
    // Longer than the frame timeout, shorter than the idle timeout: the next frame is served
    // on the same connection. A second connection's attack paces the wait.
    let mut pace = TcpStream::connect(d.mllp).await.unwrap();
    trickle_until_closed(&mut pace, || b'z').await;
    assert_eq!(ack_code(&c.send(&orm("CRLF-2", "A2")).await), "AA");
    d.stop().await.unwrap();
}

// --- HL7 --------------------------------------------------------------------------------

/// An ORM^O01 of a few MB: `identifiers` repetitions in PID-3, 100,000 components in PID-5,
/// 100,000 subcomponents in PID-11, 100,000 repetitions of the accession field, 1,000 order
/// groups and 5,000 NTE segments.
fn huge_message(control_id: &str, identifiers: usize) -> Vec<u8> {
    let repetitions: Vec<String> = (0..identifiers).map(|i| format!("ID{i}^^^H^MR")).collect();
    let accessions: Vec<String> = (0..100_000).map(|i| format!("ACC{i}")).collect();
    let mut m = format!(
        "MSH|^~\\&|RIS|HOSP|ZE|EDGE|20261123101500||ORM^O01^ORM_O01|{control_id}|P|2.5.1\r\
         PID|1||{}||{}||19700101|F|||{}\rPV1|1|O\r",
        repetitions.join("~"),
        vec!["x"; 100_000].join("^"),
        vec!["y"; 100_000].join("&"),
    );
    for i in 0..1_000 {
        let mut obr = vec![String::new(); 25];
        obr[0] = "OBR".into();
        obr[1] = i.to_string();
        (obr[2], obr[3], obr[4]) = (format!("PL-{i}"), format!("FL-{i}"), "CT^CT".into());
        obr[18] = if i == 0 { accessions.join("~") } else { format!("ACC-{i}") };
        obr[24] = "CT".into();
        m.push_str(&format!("ORC|NW|PL-{i}|FL-{i}||SC\r{}\r", obr.join("|")));
    }
    for i in 0..5_000 {
        m.push_str(&format!("NTE|{i}||note {i}\r"));
    }
    m.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hl7_message_with_100000_repetitions_and_thousands_of_segments_is_answered_in_bounded_memory() {
    let (_dir, mut daemon) = real_daemon(&[]).await;
    let before = daemon.peak_rss_kib();
    let mut c = MllpClient::connect(daemon.mllp).await;
    // 100,000 patient identifiers: refused (each would be indexed for each of the 1,000
    // orders). The guard only keeps a regression from hanging.
    let message = huge_message("HUGE-1", 100_000);
    assert!(message.len() < 16 << 20, "within the default frame limit: {} bytes", message.len());
    let ack = tokio::time::timeout(GUARD, c.send(&message)).await.expect("answered");
    assert_eq!((ack_code(&ack).as_str(), msa(&ack)[2].as_str()), ("AE", "HUGE-1"), "{}", String::from_utf8_lossy(&ack));
    // The same within the identifier limit: stored.
    let message = huge_message("HUGE-2", zenedge::ids::MAX_PATIENT_IDENTIFIERS);
    let ack = tokio::time::timeout(GUARD, c.send(&message)).await.expect("answered");
    assert_eq!((ack_code(&ack).as_str(), msa(&ack)[2].as_str()), ("AA", "HUGE-2"));
    let after = MllpClient::connect(daemon.mllp).await.send(&orm("AFTER-1", "A1")).await;
    assert_eq!(ack_code(&after), "AA");
    let peak = daemon.peak_rss_kib();
    assert_eq!(event_count(daemon.http).await, 2);
    daemon.kill();
    let growth = peak.saturating_sub(before);
    println!("peak RSS grew {} MiB over two messages of {} KiB", growth / 1024, message.len() / 1024);
    assert!(growth < MEMORY_BOUND_KIB, "peak RSS grew {growth} KiB for a {} byte message", message.len());
}

// --- DICOM ------------------------------------------------------------------------------

/// One explicit VR little endian element with a 2-byte length (`vr` of the short form) or a
/// 4-byte one (OB, SQ, UN...).
fn element(group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut out = [group.to_le_bytes(), elem.to_le_bytes()].concat();
    out.extend_from_slice(vr);
    if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(value);
    out
}

/// A UID value padded to even length.
fn uid(text: &str) -> Vec<u8> {
    let mut v = text.as_bytes().to_vec();
    if v.len() % 2 == 1 {
        v.push(0);
    }
    v
}

/// SOP Class and Instance UIDs of `i`: the start of a data set.
fn sop_elements(i: &Instance) -> Vec<u8> {
    [element(0x0008, 0x0016, b"UI", &uid(CT_IMAGE_STORAGE)), element(0x0008, 0x0018, b"UI", &uid(&i.sop))].concat()
}

/// Study and Series Instance UIDs of `i`: the end of a data set.
fn study_series_elements(i: &Instance) -> Vec<u8> {
    [element(0x0020, 0x000D, b"UI", &uid(&i.study)), element(0x0020, 0x000E, b"UI", &uid(&i.series))].concat()
}

/// Stores `data` as instance `i` on a new association; returns the answer.
async fn store(addr: SocketAddr, i: &Instance, ts: &'static str, data: Vec<u8>) -> scu::Answer {
    let sop = i.sop.clone();
    blocking(move || {
        let mut scu = scu::connect_ct(addr, ts);
        let answer = scu.store(CT_IMAGE_STORAGE, &sop, &data, 16_000);
        scu.release();
        answer
    })
    .await
}

/// Stores a well-formed instance `n` and checks it succeeded.
async fn store_good(addr: SocketAddr, n: u32) {
    let i = Instance::ct(70, 1, n);
    let answer = store(addr, &i, EXPLICIT_LE, dataset(&i, EXPLICIT_LE)).await;
    assert_eq!(answer.status, 0, "{:?}", answer.comment);
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

/// Stored instance files (not the spool) under a state directory, relative to it.
fn stored_files(state: &Path) -> Vec<PathBuf> {
    files_under(state)
        .into_iter()
        .filter(|p| p.starts_with("instances") && !p.starts_with("instances/.spool"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dicom_command_set_elements_longer_than_the_command_set_are_aborted_in_bounded_memory() {
    let (_dir, mut daemon) = real_daemon(&[]).await;
    let addr = daemon.dicom;
    store_good(addr, 1).await;
    let before = daemon.peak_rss_kib();
    let answers = blocking(move || {
        let mut answers = Vec::new();
        // (0000,1030) declaring 256 MiB with 4 bytes present.
        let mut scu = scu::connect_ct(addr, EXPLICIT_LE);
        let id = scu.next_message_id();
        let mut command = scu::store_command(CT_IMAGE_STORAGE, "1.2.3.4", id);
        command.extend_from_slice(&[0x00, 0x00, 0x30, 0x10]);
        command.extend_from_slice(&(256u32 << 20).to_le_bytes());
        command.extend_from_slice(b"CT01");
        answers.push(scu.send_command_bytes(CT_IMAGE_STORAGE, &command));
        // 4,000 levels of nested sequences of undefined length.
        let mut scu = scu::connect_ct(addr, EXPLICIT_LE);
        let id = scu.next_message_id();
        let mut command = scu::store_command(CT_IMAGE_STORAGE, "1.2.3.4", id);
        for _ in 0..4_000 {
            command.extend_from_slice(&[0x08, 0x00, 0x10, 0x11, 0xFF, 0xFF, 0xFF, 0xFF]);
            command.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        answers.push(scu.send_command_bytes(CT_IMAGE_STORAGE, &command));
        answers
    })
    .await;
    for answer in answers {
        assert!(matches!(answer, Ok(Pdu::AbortRQ { .. })), "{answer:?}");
    }
    store_good(addr, 2).await;
    let peak = daemon.peak_rss_kib();
    assert_eq!(event_count(daemon.http).await, 2, "the instances before and after are stored");
    daemon.kill();
    let growth = peak.saturating_sub(before);
    assert!(growth < MEMORY_BOUND_KIB, "peak RSS grew {growth} KiB for a command set of a few bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dicom_data_set_elements_longer_than_the_data_set_are_refused() {
    let d = TestDaemon::start().await;
    store_good(d.dicom, 1).await;
    let i = Instance::ct(71, 1, 1);
    // A private OB element declaring 4 GiB - 16 with 100 bytes present, before the UIDs.
    let mut lying_ob = sop_elements(&i);
    lying_ob.extend_from_slice(&[0x09, 0x00, 0x10, 0x10, b'O', b'B', 0, 0]);
    lying_ob.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    lying_ob.extend_from_slice(&[0; 100]);
    // A well-formed data set cut inside the Study Instance UID.
    let whole = dataset(&i, EXPLICIT_LE);
    let at = whole.windows(4).position(|w| w == [0x20, 0x00, 0x0D, 0x00]).unwrap();
    let cut = whole[..at + 8 + 4].to_vec();
    for data in [lying_ob, cut] {
        let answer = store(d.dicom, &i, EXPLICIT_LE, data).await;
        assert_eq!(answer.status, 0xC000, "{:?}", answer.comment);
        assert_eq!(answer.comment.as_deref(), Some("cannot understand: dataset truncated"));
    }
    store_good(d.dicom, 2).await;
    assert_eq!(d.events().await.len(), 2);
    assert_eq!(stored_files(d.dir.path()).len(), 2, "{:?}", files_under(d.dir.path()));
    d.stop().await.unwrap();
}

/// The bytes of an A-ASSOCIATE-RQ for CT storage in explicit VR little endian.
fn associate_rq() -> Vec<u8> {
    let rq = Pdu::AssociationRQ(AssociationRQ {
        protocol_version: 1,
        calling_ae_title: "CT01".into(),
        called_ae_title: "ZENEDGE".into(),
        application_context_name: "1.2.840.10008.3.1.1.1".into(),
        presentation_contexts: vec![PresentationContextProposed {
            id: 1,
            abstract_syntax: CT_IMAGE_STORAGE.into(),
            transfer_syntaxes: vec![EXPLICIT_LE.into()],
        }],
        user_variables: vec![
            UserVariableItem::MaxLength(16_384),
            UserVariableItem::ImplementationClassUID("1.2.826.0.1.3680043.10.999.0".into()),
        ],
    });
    let mut out = Vec::new();
    dicom_ul::pdu::write_pdu(&mut out, &rq).unwrap();
    out
}

/// A raw association: the request sent, the A-ASSOCIATE-AC read.
async fn raw_association(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&associate_rq()).await.unwrap();
    let mut header = [0u8; 6];
    stream.read_exact(&mut header).await.unwrap();
    assert_eq!(header[0], 0x02, "A-ASSOCIATE-AC");
    let mut body = vec![0u8; u32::from_be_bytes(header[2..6].try_into().unwrap()) as usize];
    stream.read_exact(&mut body).await.unwrap();
    stream
}

/// A P-DATA-TF header declaring `len` bytes, then the start of one data PDV on context 1.
fn pdata_start(len: u32) -> Vec<u8> {
    let mut out = vec![0x04, 0x00];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&(len - 4).to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00]);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dicom_pdu_longer_than_what_is_sent_or_a_quiet_peer_is_aborted_at_the_read_timeout() {
    let d = TestDaemon::start_with("[dicom]\nread_timeout = \"300ms\"\n").await;
    let mut attacker = raw_association(d.dicom).await;
    let mut start = pdata_start(16_000);
    start.extend_from_slice(&[0x5A; 100]);
    attacker.write_all(&start).await.unwrap();
    let (received, ()) = tokio::join!(read_until_closed(&mut attacker), store_good(d.dicom, 1));
    assert_eq!(received.first(), Some(&0x07), "an A-ABORT before the close: {received:?}");
    // An association that goes quiet between PDUs is aborted the same way.
    let mut quiet = raw_association(d.dicom).await;
    assert_eq!(read_until_closed(&mut quiet).await.first(), Some(&0x07));
    assert_eq!(d.events().await.len(), 1);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dicom_pdu_trickled_a_byte_at_a_time_is_aborted_at_the_pdu_timeout() {
    let d = TestDaemon::start_with("[dicom]\nread_timeout = \"10s\"\npdu_timeout = \"300ms\"\n").await;
    store_good(d.dicom, 1).await;
    // Inside an association: a P-DATA-TF of 16,000 bytes, one byte per tick.
    let mut attacker = raw_association(d.dicom).await;
    attacker.write_all(&pdata_start(16_000)).await.unwrap();
    let (received, ()) = tokio::join!(trickle_until_closed(&mut attacker, || 0x5A), store_good(d.dicom, 2));
    assert_eq!(received.first(), Some(&0x07), "an A-ABORT before the close: {received:?}");
    // Before an association: an A-ASSOCIATE-RQ trickled from its first byte.
    let mut attacker = TcpStream::connect(d.dicom).await.unwrap();
    let rq = associate_rq();
    let mut bytes = rq[..2].iter().copied().chain((100_000u32).to_be_bytes()).chain(rq[6..].iter().copied());
    let received = trickle_until_closed(&mut attacker, || bytes.next().unwrap_or(0)).await;
    assert!(received.is_empty(), "{received:?}");
    store_good(d.dicom, 3).await;
    assert_eq!(d.events().await.len(), 3);
    d.stop().await.unwrap();
}

/// Explicit VR little endian: `levels` sequences of undefined length, each in an item of the
/// one before.
fn nested_undefined(levels: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(levels * 32);
    for _ in 0..levels {
        out.extend_from_slice(&[0x08, 0x00, 0x10, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
    }
    for _ in 0..levels {
        out.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        out.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    }
    out
}

/// The same nesting with defined lengths: level k is a sequence of 20 * (levels - k) bytes
/// holding one item that holds level k + 1.
fn nested_defined(levels: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(levels * 20);
    for k in 0..levels {
        let inner = (20 * (levels - k - 1)) as u32;
        out.extend_from_slice(&[0x08, 0x00, 0x10, 0x11, b'S', b'Q', 0, 0]);
        out.extend_from_slice(&(inner + 8).to_le_bytes());
        out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
        out.extend_from_slice(&inner.to_le_bytes());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dicom_ten_thousand_nested_sequences_are_refused_or_skipped_without_recursion() {
    let d = TestDaemon::start().await;
    store_good(d.dicom, 1).await;
    let undefined = Instance::ct(72, 1, 1);
    let data = [sop_elements(&undefined), nested_undefined(10_000), study_series_elements(&undefined)].concat();
    let answer = store(d.dicom, &undefined, EXPLICIT_LE, data).await;
    assert_eq!(answer.status, 0xC000, "{:?}", answer.comment);
    assert_eq!(answer.comment.as_deref(), Some("cannot understand: sequences nested too deeply"));
    // With defined lengths the sequence is skipped whole: the instance is stored as received.
    let defined = Instance::ct(72, 1, 2);
    let data = [sop_elements(&defined), nested_defined(10_000), study_series_elements(&defined)].concat();
    let answer = store(d.dicom, &defined, EXPLICIT_LE, data.clone()).await;
    assert_eq!(answer.status, 0, "{:?}", answer.comment);
    store_good(d.dicom, 2).await;
    let events = d.events().await;
    assert_eq!(events.len(), 3);
    let file = d.dir.path().join(events[1]["data"]["file_path"].as_str().unwrap());
    assert_eq!(crate::support::dataset::dataset_bytes(&file).1, data);
    d.stop().await.unwrap();
}

/// A deflated data set whose private element between the SOP and the study UIDs inflates to
/// `inflated` bytes of zeros.
fn deflate_bomb(i: &Instance, inflated: u32) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&sop_elements(i)).unwrap();
    z.write_all(&[0x09, 0x00, 0x10, 0x10, b'O', b'B', 0, 0]).unwrap();
    z.write_all(&inflated.to_le_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..inflated >> 20 {
        z.write_all(&zeros).unwrap();
    }
    z.write_all(&study_series_elements(i)).unwrap();
    z.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dicom_deflate_bomb_is_refused_after_inflating_at_most_the_scan_limit() {
    let d = TestDaemon::start().await;
    store_good(d.dicom, 1).await;
    let i = Instance::ct(73, 1, 1);
    let bomb = blocking({
        let i = i.clone();
        move || deflate_bomb(&i, 1 << 30)
    })
    .await;
    println!("deflate bomb: {} KiB inflating to 1 GiB", bomb.len() / 1024);
    let (answer, ()) = tokio::join!(store(d.dicom, &i, DEFLATED, bomb), store_good(d.dicom, 2));
    assert_eq!(answer.status, 0xC000, "{:?}", answer.comment);
    // The Error Comment is cut at 64 characters: "... in the first 67108864 bytes".
    let comment = answer.comment.unwrap_or_default();
    assert!(comment.starts_with("cannot understand: attributes not found in the first 67108864"), "{comment}");
    assert_eq!(d.events().await.len(), 2);
    assert_eq!(stored_files(d.dir.path()).len(), 2);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dicom_uids_that_try_path_traversal_are_refused_and_nothing_is_written_outside() {
    let d = TestDaemon::start().await;
    store_good(d.dicom, 1).await;
    let state = d.dir.path().to_owned();
    let outside = std::env::temp_dir().join(format!("zenedge-hostile-{}", uuid::Uuid::new_v4()));
    let absolute = outside.display().to_string();
    let long = format!("1.{}3", "2.".repeat(2_000));
    let base = Instance::ct(74, 1, 1);
    let mut cases = Vec::new();
    for (field, value) in [
        ("study", "../../etc"),
        ("study", absolute.as_str()),
        ("series", "../../../../.."),
        ("series", absolute.as_str()),
        ("sop", "../../../x"),
        ("sop", absolute.as_str()),
        ("study", "1.2\0/../../x"),
        ("sop", long.as_str()),
    ] {
        let mut i = base.clone();
        match field {
            "study" => i.study = value.to_owned(),
            "series" => i.series = value.to_owned(),
            _ => i.sop = value.to_owned(),
        }
        cases.push((field, i));
    }
    for (field, i) in cases {
        let answer = store(d.dicom, &i, EXPLICIT_LE, dataset(&i, EXPLICIT_LE)).await;
        assert_eq!(answer.status, 0xC000, "{field} {:?}: {:?}", i, answer.comment);
        assert!(answer.comment.as_deref().unwrap_or("").contains("invalid UID"), "{:?}", answer.comment);
    }
    store_good(d.dicom, 2).await;
    assert!(!outside.exists(), "{} was created", outside.display());
    assert!(!state.parent().unwrap().join("etc").join(&base.series).exists());
    let files = files_under(&state);
    for file in &files {
        let allowed = file.starts_with("instances/1.2.826.0.1.3680043.10.999.70")
            || file.starts_with("instances/.spool")
            || file.to_string_lossy().starts_with("zenedge.redb")
            || file.as_os_str() == "local-api.token"
            || file.as_os_str() == "activity.msgpack";
        assert!(allowed, "unexpected file {} in {files:?}", file.display());
    }
    assert_eq!(stored_files(&state).len(), 2, "{files:?}");
    assert_eq!(d.events().await.len(), 2);
    d.stop().await.unwrap();
}

// --- HTTP -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_client_trickling_its_headers_is_closed_at_the_header_timeout() {
    let d = TestDaemon::start_with("[http]\nheader_timeout = \"300ms\"\n").await;
    let mut attacker = TcpStream::connect(d.http).await.unwrap();
    attacker.write_all(b"GET /healthz HTTP/1.1\r\nHost: zenedge\r\nX-Slow: ").await.unwrap();
    let (received, health) = tokio::join!(trickle_until_closed(&mut attacker, || b'a'), d.get("/healthz"));
    assert_eq!(health.status, 200);
    assert!(!String::from_utf8_lossy(&received).contains(" 200 "), "{}", String::from_utf8_lossy(&received));
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connection_that_sends_nothing_or_idles_after_a_request_is_closed_at_the_header_timeout() {
    let d = TestDaemon::start_with("[http]\nheader_timeout = \"300ms\"\n").await;
    let mut silent = TcpStream::connect(d.http).await.unwrap();
    let (received, health) = tokio::join!(read_until_closed(&mut silent), d.get("/healthz"));
    assert!(received.is_empty(), "{received:?}");
    assert_eq!(health.status, 200);
    // A kept-alive connection after one answered request.
    let mut idle = TcpStream::connect(d.http).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: zenedge\r\n\r\n").await.unwrap();
    let received = read_until_closed(&mut idle).await;
    assert!(String::from_utf8_lossy(&received).starts_with("HTTP/1.1 200 "), "{}", String::from_utf8_lossy(&received));
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_body_trickled_after_the_headers_does_not_hold_the_connection() {
    // Handlers read no request body: the answer goes out and the connection closes however
    // slowly (or never) the announced body comes.
    let d = TestDaemon::start_with("[http]\nheader_timeout = \"10s\"\n").await;
    let mut attacker = TcpStream::connect(d.http).await.unwrap();
    attacker
        .write_all(b"POST /api/v1/dead-letters/1/retry HTTP/1.1\r\nHost: zenedge\r\nContent-Length: 1000000\r\n\r\n")
        .await
        .unwrap();
    let (received, health) = tokio::join!(trickle_until_closed(&mut attacker, || b'b'), d.get("/healthz"));
    assert_eq!(health.status, 200);
    assert!(String::from_utf8_lossy(&received).starts_with("HTTP/1.1 401 "), "{}", String::from_utf8_lossy(&received));
    d.stop().await.unwrap();
}
