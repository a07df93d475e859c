//! The `mllp` run: open every connection, then drive each one (paced or closed loop)
//! until the plan says stop, and sum their counters.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::conn::{Conn, ConnStats, Failure};
use crate::message::{OrderWriter, hl7_now};
use crate::plan::{Plan, Stop};

/// A scheduled send that starts later than this behind its slot counts as late (tokio's
/// timer has a 1 ms tick, so smaller delays are the timer, not the receiver).
const LATE_AFTER: Duration = Duration::from_millis(2);

/// Run-wide state every connection reads.
#[derive(Debug)]
struct Shared {
    plan: Plan,
    /// Next message counter to use.
    next: AtomicU64,
    /// Messages still to send, warm-up included (`Stop::Count`).
    remaining: AtomicU64,
    /// When sending starts (all connections are open).
    t0: Instant,
    /// When the measured phase starts.
    warm_end: Instant,
}

impl Shared {
    /// Whether one more message (a warm-up one if `warmup`) may be sent at `now`.
    fn claim(&self, now: Instant, warmup: bool) -> bool {
        match self.plan.stop {
            Stop::Count(_) => {
                self.remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1)).is_ok()
            }
            Stop::After(_) if warmup => true,
            Stop::After(d) => now < self.warm_end + d,
        }
    }
}

/// Waits for slot `*slot` of connection `index` on the `--rate` schedule and moves to the
/// next slot; returns whether the send starts late.
async fn pace(shared: &Shared, interval: Duration, index: u64, slot: &mut u64) -> bool {
    // Connections are staggered so the sends spread evenly over time.
    let phase = interval.mul_f64(index as f64 / shared.plan.connections as f64);
    let due = shared.t0 + phase + interval.mul_f64(*slot as f64);
    *slot += 1;
    tokio::time::sleep_until(due.into()).await;
    Instant::now().saturating_duration_since(due) > LATE_AFTER
}

/// The open connection, reopening it after a failure; `None` if it cannot be reopened.
async fn reopen_if_closed<'c>(conn: &'c mut Option<Conn>, plan: &Plan, stats: &mut ConnStats) -> Option<&'c mut Conn> {
    if conn.is_none() {
        let Ok(c) = Conn::open(plan).await else {
            stats.reconnect_failures += 1;
            return None;
        };
        stats.reconnects += 1;
        *conn = Some(c);
    }
    conn.as_mut()
}

/// Drives one connection until the plan says stop; returns its counters.
async fn drive(index: u64, first: Conn, shared: Arc<Shared>) -> ConnStats {
    let plan = &shared.plan;
    let mut stats = ConnStats::new();
    let mut conn = Some(first);
    let mut order = OrderWriter::default();
    let mut slot = 0u64;
    loop {
        let late = match plan.interval {
            Some(interval) => pace(&shared, interval, index, &mut slot).await,
            None => false,
        };
        let now = Instant::now();
        let warmup = now < shared.warm_end;
        if !shared.claim(now, warmup) {
            break;
        }
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        let control_id = plan.control_id(n);
        order.write(n, &control_id, &hl7_now(), plan.size);
        let Some(c) = reopen_if_closed(&mut conn, plan, &mut stats).await else {
            break;
        };
        let t_write = Instant::now();
        let reply = tokio::time::timeout(plan.timeout, c.exchange(&order, plan.nagle)).await;
        let t_ack = Instant::now();
        let outcome = reply.unwrap_or(Err(Failure::Timeout));
        if outcome.is_err() {
            conn = None;
        }
        let positive = if warmup {
            stats.record_warmup(&outcome, &control_id)
        } else {
            stats.sent += 1;
            stats.late_sends += u64::from(late);
            stats.first_send.get_or_insert(t_write);
            stats.record_measured(outcome, &control_id, t_write, t_ack)
        };
        if positive && plan.keep_acked_ids {
            stats.acked.push(n);
        }
    }
    stats
}

/// Opens every connection, then drives them all; `Err` only if a connection can't open.
pub(crate) async fn run_mllp(plan: Plan) -> Result<ConnStats, io::Error> {
    let mut opening = Vec::new();
    for _ in 0..plan.connections {
        opening.push(Conn::open(&plan));
    }
    let mut conns = Vec::new();
    for conn in opening {
        conns.push(conn.await?);
    }
    let t0 = Instant::now();
    let remaining = match plan.stop {
        Stop::Count(n) => n,
        Stop::After(_) => 0,
    };
    let shared = Arc::new(Shared {
        next: AtomicU64::new(plan.start),
        remaining: AtomicU64::new(remaining),
        t0,
        warm_end: t0 + plan.warmup,
        plan,
    });
    let tasks: Vec<_> = (0u64..).zip(conns).map(|(i, conn)| tokio::spawn(drive(i, conn, shared.clone()))).collect();
    let mut total = ConnStats::new();
    for task in tasks {
        total.add(task.await.expect("connection task panicked"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
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
}
