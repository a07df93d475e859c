use std::net::SocketAddr;

use bytes::BytesMut;
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::codec::Decoder;
use zenedge::mllp::codec::{Frame, MllpCodec, encode_frame};

use super::*;
use crate::message::tests::field;
use crate::{Cli, Command};

/// A receiver that answers AA to every frame, echoing MSH-10, until the client leaves.
async fn ack_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut codec, mut buf) = (MllpCodec::new(1 << 20), BytesMut::new());
                while stream.read_buf(&mut buf).await.unwrap_or(0) > 0 {
                    while let Ok(Some(Frame::Message(p))) = codec.decode(&mut buf) {
                        let text = String::from_utf8_lossy(&p).into_owned();
                        let ack = format!(
                            "MSH|^~\\&|Z|E|L|S|20261123||ACK^O01^ACK|A1|P|2.5.1\rMSA|AA|{}\r",
                            field(&text, "MSH", 10)
                        );
                        let mut out = BytesMut::new();
                        encode_frame(ack.as_bytes(), &mut out);
                        let _ = stream.write_all(&out).await;
                    }
                }
            });
        }
    });
    addr
}

/// A plan for `--count count` messages over `addr`, with `extra` options.
fn plan(addr: SocketAddr, count: u64, extra: &str) -> Plan {
    let line = format!("zenedge-load mllp --addr {addr} --count {count} --run-id T {extra}");
    let Command::Mllp(args) = Cli::parse_from(line.split_whitespace()).command else { unreachable!() };
    Plan::from_args(&args).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_counted_message_is_sent_once_and_acked_with_its_own_control_id() {
    let addr = ack_server().await;
    let stats = run_mllp(plan(addr, 50, "-c 3 --warmup 0s --acked-out x")).await.unwrap();
    assert_eq!((stats.sent, stats.codes[0], stats.msa2_mismatch), (50, 50, 0));
    let mut acked = stats.acked.clone();
    acked.sort_unstable();
    assert_eq!(acked, (0..50).collect::<Vec<u64>>());
    assert_eq!(stats.latency_us.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_messages_are_acked_and_listed_but_kept_out_of_the_figures() {
    let addr = ack_server().await;
    let stats = run_mllp(plan(addr, 2000, "-c 3 --warmup 50ms --acked-out x")).await.unwrap();
    assert!(stats.warmup_sent > 0);
    assert_eq!(stats.sent, stats.codes.iter().sum::<u64>());
    assert_eq!(stats.latency_us.len() as u64, stats.sent);
    assert_eq!(stats.acked.len() as u64, 2000, "the warm-up is part of --count");
    assert_eq!(stats.sent + stats.warmup_sent, 2000);
    assert_eq!(stats.warmup_failed, 0);
}

/// The README's `zenedge-load mllp --count 100` sends 100 messages, not 100 after a
/// second of warm-up (which was 803 more on a fast box): --count is the total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_is_the_total_number_of_messages_sent_and_all_are_measured_by_default() {
    let addr = ack_server().await;
    let line = format!("zenedge-load mllp --addr {addr} --count 100 --run-id T");
    let Command::Mllp(args) = Cli::parse_from(line.split_whitespace()).command else { unreachable!() };
    let plan = Plan::from_args(&args).unwrap();
    assert_eq!(plan.warmup, Duration::ZERO);
    let stats = run_mllp(plan).await.unwrap();
    assert_eq!((stats.sent, stats.warmup_sent, stats.codes[0]), (100, 0, 100));
    let line = "zenedge-load mllp --duration 5s";
    let Command::Mllp(args) = Cli::parse_from(line.split_whitespace()).command else { unreachable!() };
    assert_eq!(Plan::from_args(&args).unwrap().warmup, Duration::from_secs(1), "timed runs keep a warm-up");
}

#[tokio::test]
async fn a_receiver_that_never_answers_costs_a_timeout_and_a_reconnect_per_message() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let stats = run_mllp(plan(addr, 3, "--warmup 0s --timeout 50ms")).await.unwrap();
    assert_eq!((stats.sent, stats.timeouts, stats.reconnects), (3, 3, 2));
    assert_eq!(stats.codes.iter().sum::<u64>(), 0);
    held.abort();
}

#[tokio::test]
async fn a_receiver_that_is_not_listening_fails_the_run_at_connect() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    assert!(run_mllp(plan(addr, 1, "-c 3")).await.is_err());
}
