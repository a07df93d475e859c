//! The last 24 hours in one-minute buckets: answers and negative answers per listener, and
//! the free disk space, in a ring of [`MINUTES`] buckets indexed by the minute since the
//! epoch modulo [`MINUTES`]. A bucket whose minute is not the one asked for is from an
//! earlier day and counts as empty, so nothing has to be cleared as time passes.
//!
//! # The file
//! The ring is saved as `activity.msgpack` in the state directory, every minute and at
//! shutdown: written to `activity.msgpack.tmp`, flushed, renamed over the old file (a crash
//! leaves the old file or the new one, never half of one). MessagePack of
//! `{"version": 1, "buckets": [{"minute", "answered", "negative", "disk_free"}, ...]}` with only
//! the buckets of the last 24 hours that hold something: a few kilobytes.
//!
//! A file and not a table of the database: this is no event and no projection (it must not
//! reach the hub, cannot be rebuilt from the log, and losing it costs a day of plots), and a
//! commit through the single writer every minute would grow the log and compete with the
//! intake for nothing. A missing file starts an empty history (first start, or a restore
//! from a backup, which does not hold it); an unreadable one too, with a warning.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Buckets in the ring: one per minute of 24 hours.
pub const MINUTES: usize = 1440;
/// Listeners counted per bucket (`super::Listener::ALL`).
const LISTENERS: usize = 5;
/// The file's format.
const VERSION: u32 = 1;
/// The file's name in the state directory.
pub const FILE: &str = "activity.msgpack";

/// One minute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Bucket {
    /// Minutes since the epoch.
    minute: i64,
    answered: [u32; LISTENERS],
    negative: [u32; LISTENERS],
    /// Free bytes under the state directory, last sampled in this minute.
    disk_free: Option<u64>,
}

impl Bucket {
    fn is_empty(&self) -> bool {
        self.answered == [0; LISTENERS] && self.disk_free.is_none()
    }
}

/// The ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    buckets: Vec<Bucket>,
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    buckets: Vec<Bucket>,
}

/// Why a saved history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a saved history: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

fn minute_of(at: Timestamp) -> i64 {
    at.as_second().div_euclid(60)
}

fn slot(minute: i64) -> usize {
    minute.rem_euclid(MINUTES as i64) as usize
}

impl History {
    pub fn new() -> History {
        History { buckets: vec![Bucket { minute: -1, ..Bucket::default() }; MINUTES] }
    }

    /// The bucket of `minute`, emptied first if it held an earlier day.
    fn bucket_mut(&mut self, minute: i64) -> Option<&mut Bucket> {
        let bucket = &mut self.buckets[slot(minute)];
        if bucket.minute > minute {
            return None; // the clock went back more than a day: not worth a bucket
        }
        if bucket.minute != minute {
            *bucket = Bucket { minute, ..Bucket::default() };
        }
        Some(bucket)
    }

    fn bucket(&self, minute: i64) -> Option<&Bucket> {
        Some(&self.buckets[slot(minute)]).filter(|b| b.minute == minute)
    }

    /// One answer of listener `index` at `at`.
    pub(super) fn count(&mut self, index: usize, at: Timestamp, negative: bool) {
        if let Some(bucket) = self.bucket_mut(minute_of(at)) {
            bucket.answered[index] = bucket.answered[index].saturating_add(1);
            if negative {
                bucket.negative[index] = bucket.negative[index].saturating_add(1);
            }
        }
    }

    pub(super) fn disk_free(&mut self, at: Timestamp, free: u64) {
        if let Some(bucket) = self.bucket_mut(minute_of(at)) {
            bucket.disk_free = Some(free);
        }
    }

    /// The buckets of the `minutes` minutes up to and including `now`'s, oldest first
    /// (`None` where nothing was recorded).
    fn window(&self, now: Timestamp, minutes: usize) -> impl Iterator<Item = Option<&Bucket>> {
        let last = minute_of(now);
        (0..minutes.min(MINUTES) as i64).rev().map(move |back| self.bucket(last - back))
    }

    /// Answers and negative answers of listener `index` in the last `minutes` minutes.
    pub(super) fn sum(&self, index: usize, now: Timestamp, minutes: usize) -> (u64, u64) {
        self.window(now, minutes)
            .flatten()
            .fold((0, 0), |(a, n), b| (a + u64::from(b.answered[index]), n + u64::from(b.negative[index])))
    }

    pub(super) fn per_minute(&self, indexes: &[usize], now: Timestamp) -> Vec<u64> {
        self.window(now, MINUTES)
            .map(|b| b.map_or(0, |b| indexes.iter().map(|&i| u64::from(b.answered[i])).sum()))
            .collect()
    }

    pub(super) fn disk_consumed_per_second(&self, now: Timestamp) -> Option<f64> {
        let mut samples = self.window(now, MINUTES).flatten().filter_map(|b| Some((b.minute, b.disk_free?)));
        let (first_minute, first_free) = samples.next()?;
        let (last_minute, last_free) = samples.last()?;
        let seconds = (last_minute - first_minute) * 60;
        (seconds >= 600).then(|| (first_free as f64 - last_free as f64) / seconds as f64)
    }

    /// The buckets of the 24 hours up to `now` that hold something, as the file holds them.
    pub fn encode(&self, now: Timestamp) -> Vec<u8> {
        let buckets = self.window(now, MINUTES).flatten().filter(|b| !b.is_empty()).cloned().collect();
        rmp_serde::to_vec_named(&Saved { version: VERSION, buckets }).unwrap_or_default()
    }

    /// A history from the bytes of [`History::encode`].
    pub fn decode(bytes: &[u8]) -> Result<History, String> {
        let saved: Saved = rmp_serde::from_slice(bytes).map_err(|e| e.to_string())?;
        if saved.version != VERSION {
            return Err(format!("format version {} (this build reads {VERSION})", saved.version));
        }
        let mut history = History::new();
        for bucket in saved.buckets {
            let at = &mut history.buckets[slot(bucket.minute)];
            if bucket.minute > at.minute {
                *at = bucket;
            }
        }
        Ok(history)
    }

    /// The history saved under `dir`; `Ok(None)` when there is none.
    pub fn load(dir: &Path) -> Result<Option<History>, LoadError> {
        let path = dir.join(FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LoadError::Read { path, source }),
        };
        History::decode(&bytes).map(Some).map_err(|reason| LoadError::Corrupt { path, reason })
    }
}

/// Writes `bytes` as the saved history under `dir`: a temporary file, flushed, renamed over
/// the old one.
pub fn save(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let path = dir.join(FILE);
    let temporary = dir.join(format!("{FILE}.tmp"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_data()?;
    drop(file);
    std::fs::rename(&temporary, &path)
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
