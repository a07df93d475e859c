//! The validated `mllp` run: when it stops, how it is paced, and the control id prefix.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::tls::Tls;
use crate::{BoxError, MllpArgs};

/// When the measured phase ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stop {
    /// After this many messages across all connections, warm-up included: `--count 100`
    /// sends 100 messages, not 100 after however many a second of warm-up took.
    Count(u64),
    /// When this much time has passed since the warmup ended.
    After(Duration),
}

/// The validated run, shared by every connection.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) addr: SocketAddr,
    pub(crate) connections: u64,
    pub(crate) stop: Stop,
    /// Time between two sends on one connection (`connections / rate`), if paced.
    pub(crate) interval: Option<Duration>,
    /// Nagle on and three writes per frame, like a naive interface engine.
    pub(crate) nagle: bool,
    /// Sending time before the measured phase (ramp-up, connection warmup in the receiver).
    pub(crate) warmup: Duration,
    /// Control id prefix; unique per run so reruns never look like resends.
    pub(crate) run_id: String,
    /// First counter value, so a run can continue another run's numbering.
    pub(crate) start: u64,
    /// Approximate payload bytes per message.
    pub(crate) size: usize,
    /// Longest wait for one ACK before the exchange counts as a timeout.
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    /// Remember positively acknowledged counters (only with `--acked-out`: it costs memory).
    pub(crate) keep_acked_ids: bool,
    /// MLLP over TLS (`--tls-ca`).
    pub(crate) tls: Option<Tls>,
}

impl Plan {
    pub(crate) fn from_args(args: &MllpArgs) -> Result<Self, BoxError> {
        if !(args.rate.is_finite() && args.rate >= 0.0) {
            return Err("--rate must be a number >= 0".into());
        }
        let interval = (args.rate > 0.0).then(|| Duration::from_secs_f64(args.connections as f64 / args.rate));
        let stop = match (args.count, args.duration) {
            (Some(n), _) => Stop::Count(n),
            (None, d) => Stop::After(d.unwrap_or(Duration::from_secs(10))),
        };
        Ok(Self {
            addr: args.addr,
            connections: args.connections,
            stop,
            interval,
            nagle: args.nagle,
            warmup: args.warmup.unwrap_or(match stop {
                Stop::Count(_) => Duration::ZERO,
                Stop::After(_) => Duration::from_secs(1),
            }),
            run_id: args.run_id.clone().unwrap_or_else(default_run_id),
            start: args.start,
            size: args.size,
            timeout: args.timeout,
            connect_timeout: args.connect_timeout,
            keep_acked_ids: args.acked_out.is_some(),
            tls: Tls::from_args(&args.tls)?,
        })
    }

    pub(crate) fn control_id(&self, n: u64) -> String {
        format!("{}-{n}", self.run_id)
    }
}

/// The current time in milliseconds, base 36: separate runs get separate control ids.
fn default_run_id() -> String {
    let mut ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut digits = Vec::new();
    while ms > 0 || digits.is_empty() {
        digits.push(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[(ms % 36) as usize]);
        ms /= 36;
    }
    digits.reverse();
    String::from_utf8(digits).expect("ascii")
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
