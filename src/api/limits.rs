//! Per-source rate limits: a token bucket per source address, in a table of bounded size.
//!
//! Each address (an IPv6 address by its /64, which one host usually holds whole) has a bucket
//! of `burst` tokens refilled at `per_second`; a request takes one, an empty bucket answers
//! with the time until the next token. The table holds at most [`MAX_SOURCES`] buckets: when
//! it is full, buckets that have refilled (the same as a fresh one, so nothing is forgotten)
//! are dropped; if every bucket is still in use, one of them is, so a flood from many
//! addresses costs bounded memory (at the price of that one address's history).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most addresses remembered at once.
pub(super) const MAX_SOURCES: usize = 16_384;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Refills for the time since the last call, then takes `cost` if a whole token is there.
    fn take(&mut self, per_second: f64, burst: f64, now: Instant, cost: f64) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= cost;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / per_second))
        }
    }
}

/// One client's own request rate (`[[http.clients]] requests_per_second`), bursts of as many.
#[derive(Debug)]
pub(super) struct ClientRate {
    per_second: f64,
    bucket: Mutex<Bucket>,
}

impl ClientRate {
    pub(super) fn new(per_second: u32) -> ClientRate {
        let per_second = f64::from(per_second.max(1));
        ClientRate { per_second, bucket: Mutex::new(Bucket { tokens: per_second, at: Instant::now() }) }
    }

    /// Takes a token; `Err` with the wait until one is there.
    pub(super) fn take(&self) -> Result<(), Duration> {
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        bucket.take(self.per_second, self.per_second, Instant::now(), 1.0)
    }
}

/// Token buckets by source address.
#[derive(Debug)]
pub(super) struct RateTable {
    per_second: f64,
    burst: f64,
    capacity: usize,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateTable {
    pub(super) fn new(per_second: f64, burst: f64) -> RateTable {
        RateTable::with_capacity(per_second, burst, MAX_SOURCES)
    }

    pub(super) fn with_capacity(per_second: f64, burst: f64, capacity: usize) -> RateTable {
        RateTable { per_second, burst: burst.max(1.0), capacity: capacity.max(1), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token of `ip`'s bucket; `Err` with the wait until one is there.
    pub(super) fn take(&self, ip: IpAddr) -> Result<(), Duration> {
        self.take_at(ip, Instant::now(), 1.0)
    }

    /// Whether `ip` has a token left, without taking it.
    pub(super) fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.take_at(ip, Instant::now(), 0.0)
    }

    pub(super) fn take_at(&self, ip: IpAddr, now: Instant, cost: f64) -> Result<(), Duration> {
        let key = source_key(ip);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(&key) && buckets.len() >= self.capacity {
            self.make_room(&mut buckets, now);
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: self.burst, at: now });
        bucket.take(self.per_second, self.burst, now, cost)
    }

    /// How many addresses the table holds.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }

    fn make_room(&self, buckets: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        buckets.retain(|_, b| self.refilled(b, now) < self.burst);
        if buckets.len() >= self.capacity
            && let Some(victim) = buckets.keys().next().copied()
        {
            buckets.remove(&victim);
        }
    }
}

/// An IPv4 address as it is; an IPv6 address by its /64 (an IPv4-mapped one as IPv4).
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
