//! When to try the hub again: exponential backoff with full jitter, and a circuit breaker.
//!
//! Both are pure (time and randomness come in as arguments), so their bounds and
//! transitions are tested without waiting.

use std::time::{Duration, Instant};

/// The wait after the `n`-th failure in a row (`n` ≥ 1): a uniformly random duration in
/// `0 ..= min(cap, base · 2^(n-1))` ("full jitter"), so that many edges coming back after
/// an outage do not hit the hub in step.
pub fn backoff(rng: &mut fastrand::Rng, base: Duration, cap: Duration, n: u32) -> Duration {
    Duration::from_nanos(rng.u64(0..=ceiling(base, cap, n).as_nanos().min(u64::MAX as u128) as u64))
}

/// The upper bound of [`backoff`] after `n` failures.
pub fn ceiling(base: Duration, cap: Duration, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(cap)
}

/// The breaker's state, the value of `zenedge_sync_breaker_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Batches flow; failures back off.
    Closed,
    /// The open period is over: one probe batch decides.
    HalfOpen,
    /// Too many failures in a row: no tries until the open period ends.
    Open,
}

impl BreakerState {
    pub fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }
}

/// A circuit breaker: `threshold` failures in a row open it for `open_for`; then one probe
/// closes it (success) or opens it again (failure).
#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    state: BreakerState,
    /// Consecutive failures (reset by any answer that follows the contract).
    failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub fn new(threshold: u32, open_for: Duration) -> Breaker {
        Breaker { threshold: threshold.max(1), open_for, state: BreakerState::Closed, failures: 0, open_until: None }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// While open: when the open period ends.
    pub fn open_until(&self) -> Option<Instant> {
        if self.state == BreakerState::Open { self.open_until } else { None }
    }

    /// The open period is over: the next batch is the probe. Returns whether the state changed.
    pub fn half_open(&mut self) -> bool {
        let changed = self.state == BreakerState::Open;
        if changed {
            self.state = BreakerState::HalfOpen;
            self.open_until = None;
        }
        changed
    }

    /// The hub answered per the contract. Returns the previous state if it was not closed.
    pub fn on_success(&mut self) -> Option<BreakerState> {
        self.failures = 0;
        let previous = std::mem::replace(&mut self.state, BreakerState::Closed);
        self.open_until = None;
        (previous != BreakerState::Closed).then_some(previous)
    }

    /// A failure at `now`. Returns true when the breaker (re)opened.
    pub fn on_failure(&mut self, now: Instant) -> bool {
        self.failures = self.failures.saturating_add(1);
        let open = match self.state {
            BreakerState::HalfOpen => true,
            BreakerState::Closed => self.failures >= self.threshold,
            BreakerState::Open => false,
        };
        if open {
            self.state = BreakerState::Open;
            self.open_until = Some(now + self.open_for);
        }
        open
    }
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;
