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
        stats.record_open(c.opened_in);
        *conn = Some(c);
    }
    conn.as_mut()
}

/// Drives one connection until the plan says stop; returns its counters.
async fn drive(index: u64, first: Conn, shared: Arc<Shared>) -> ConnStats {
    let plan = &shared.plan;
    let mut stats = ConnStats::new();
    stats.record_open(first.opened_in);
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
#[path = "driver_tests.rs"]
mod tests;
