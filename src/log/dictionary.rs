//! Compression dictionaries trained on the site's own events, kept in the database.
//!
//! zstd alone halves an HL7 envelope; most of what is left is what every message of a site
//! repeats (segment names, the sending and receiving applications, field layouts, the
//! envelope's own keys). A dictionary trained on a few thousand of the site's events holds
//! those once, and each value then stores only what is its own.
//!
//! # Where dictionaries live
//!
//! * `value_dictionaries: id -> bytes` ([`VALUE_DICTIONARIES`]), in the same file as the events that need them. A
//!   dictionary is never deleted or changed: every value written with it names its id
//!   ([`super::value`]), and stays readable as long as the file does.
//! * `meta.value_dictionary`: the id of the dictionary new values are written with (absent:
//!   none yet, values use zstd without a dictionary).
//! * The id is derived from the bytes (the first four bytes of their SHA-256, never 0), so an
//!   id names one dictionary in every file and in this process's registry; a row whose bytes
//!   do not hash to its id is corruption and the file is refused at open
//!   ([`super::OpenError::CorruptDictionary`]).
//!
//! Opening a file registers its dictionaries process-wide ([`super::value::register`]), so
//! every reader (the API, rebuild, verify, the sync, backups) decodes without being handed
//! anything.
//!
//! # Training and retraining
//!
//! The [`Trainer`] runs beside the writer, off its thread: training takes a few hundred
//! milliseconds of CPU and must not hold up an ACK. Once the log holds `after` events it takes
//! the newest [`SAMPLES`] envelopes, trains a [`DICTIONARY_BYTES`] dictionary on nine in ten
//! of them and measures it on the tenth. It is adopted when it stores that held-out tenth in
//! at most [`ADOPT_BELOW`] of the bytes the current way does. Adopting is a request to the
//! writer: the dictionary's row, `meta.value_dictionary` and the values that use it commit in
//! one transaction, so no value can name a dictionary the file does not hold.
//!
//! Afterwards the trainer checks every [`CHECK_EVERY`] (at most, and only once `after` more
//! events arrived) how the newest values compress under the current dictionary; when that
//! ratio has grown past [`RETRAIN_ABOVE`] × the ratio measured at adoption (the site's
//! traffic changed: a new modality, a new interface engine), it trains again, and adopts only
//! a dictionary that pays. Values written before keep naming their dictionary.

use std::time::Duration;

use redb::ReadableTable;
use tokio_util::sync::CancellationToken;

use super::reader::{LogReader, ReadError, Storage};
use super::store::{CURRENT_DICTIONARY, EVENTS, META, VALUE_DICTIONARIES};
use super::txn::{AppendError, Applier, Txn};
pub use super::value::{Dictionary, LEVEL, id_of, lookup, register};
use super::writer::LogHandle;

/// Size of a trained dictionary.
pub const DICTIONARY_BYTES: usize = 64 << 10;
/// How many of the newest events a training or a check reads.
pub const SAMPLES: usize = 4000;
/// A new dictionary must store the held-out samples in at most this share of today's bytes.
pub const ADOPT_BELOW: f64 = 0.85;
/// Retrain when the newest values take this many times the bytes they took at adoption.
pub const RETRAIN_ABOVE: f64 = 1.25;
/// Ratio checks after the first dictionary: at most this often.
pub const CHECK_EVERY: Duration = Duration::from_secs(60);
/// A dictionary trained on `samples` (`None` when zstd cannot train one from them, e.g. too
/// few or too alike).
pub fn train(samples: &[Vec<u8>]) -> Option<Vec<u8>> {
    zstd::dict::from_samples(samples, DICTIONARY_BYTES).ok()
}

/// Bytes `samples` take compressed with `dictionary` (or none), over their plain bytes.
pub fn ratio(dictionary: Option<&'static Dictionary>, samples: &[Vec<u8>]) -> f64 {
    let plain: usize = samples.iter().map(Vec::len).sum();
    let stored: usize = samples.iter().map(|s| super::value::compressed_len(dictionary, s)).sum();
    if plain == 0 { 1.0 } else { stored as f64 / plain as f64 }
}

/// The plain envelopes of the newest `count` events (newest first).
pub fn newest(reader: &LogReader, count: usize) -> Result<Vec<Vec<u8>>, ReadError> {
    let txn = reader.begin_read()?;
    let events = txn.open_table(EVENTS).storage()?;
    let mut out = Vec::with_capacity(count);
    for row in events.iter().storage()?.rev().take(count) {
        let (seq, stored) = row.storage()?;
        out.push(super::reader::plain_envelope(seq.value(), stored.value())?);
    }
    Ok(out)
}

/// What a check found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The current way still compresses as well as at adoption (or no better dictionary).
    Keep { ratio: f64 },
    /// Adopt this dictionary: it stores the held-out samples in `ratio` of their bytes,
    /// against `before` the current way.
    Adopt { bytes: Vec<u8>, before: f64, ratio: f64 },
}

/// One check over `samples`: train when there is no dictionary or the current one's ratio
/// degraded past [`RETRAIN_ABOVE`] × `baseline`, and adopt what pays ([`ADOPT_BELOW`]).
pub fn check(current: Option<&'static Dictionary>, baseline: Option<f64>, samples: &[Vec<u8>]) -> Verdict {
    let now = ratio(current, samples);
    if let (Some(_), Some(baseline)) = (current, baseline)
        && now <= baseline * RETRAIN_ABOVE
    {
        return Verdict::Keep { ratio: now };
    }
    let (held_out, training): (Vec<_>, Vec<_>) = samples.iter().enumerate().partition(|(i, _)| i % 10 == 0);
    let training: Vec<Vec<u8>> = training.into_iter().map(|(_, s)| s.clone()).collect();
    let held_out: Vec<Vec<u8>> = held_out.into_iter().map(|(_, s)| s.clone()).collect();
    let Some(bytes) = train(&training) else { return Verdict::Keep { ratio: now } };
    let before = ratio(current, &held_out);
    let candidate = register(&bytes);
    let after = ratio(Some(candidate), &held_out);
    if after <= before * ADOPT_BELOW {
        Verdict::Adopt { bytes, before, ratio: after }
    } else {
        Verdict::Keep { ratio: now }
    }
}

/// Has the writer store `bytes` and write new values with it from its next value on.
pub async fn adopt<A: Applier>(log: &LogHandle<A>, bytes: Vec<u8>) -> Result<u32, AppendError> {
    log.request(bytes, install::<A>).await
}

fn install<A: Applier>(t: &mut Txn<'_, '_, A>, bytes: Vec<u8>) -> Result<Result<u32, AppendError>, redb::Error> {
    let dictionary = register(&bytes);
    t.txn().open_table(VALUE_DICTIONARIES)?.insert(dictionary.id, bytes.as_slice())?;
    t.txn().open_table(META)?.insert(CURRENT_DICTIONARY, dictionary.id.to_string().as_str())?;
    t.dirty = true;
    super::value::use_dictionary(Some(dictionary));
    Ok(Ok(dictionary.id))
}

/// The background trainer of one log.
#[derive(Debug)]
pub struct Trainer<A: Applier> {
    pub reader: LogReader,
    pub log: LogHandle<A>,
    /// Events in the log before the first training (0: never train).
    pub after: u64,
    pub metrics: std::sync::Arc<crate::telemetry::Metrics>,
}

impl<A: Applier> Trainer<A> {
    /// Checks whenever `after` more events arrived (and, once a dictionary is in use, at most
    /// every [`CHECK_EVERY`]) until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        if self.after == 0 {
            return;
        }
        let mut checked_at = 0u64;
        let mut baseline: Option<f64> = None;
        let mut current = current_of(&self.reader);
        self.metrics.log_value_dictionary.set(current.map_or(0, |d| i64::from(d.id)));
        loop {
            let pause = if current.is_some() { CHECK_EVERY } else { Duration::from_secs(1) };
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
            let last = self.log.state.last_seq.load(std::sync::atomic::Ordering::Acquire);
            if last < checked_at + self.after {
                continue;
            }
            checked_at = last;
            let reader = self.reader.clone();
            let verdict = tokio::task::spawn_blocking(move || {
                newest(&reader, SAMPLES).map(|samples| check(current, baseline, &samples))
            })
            .await;
            match verdict {
                Ok(Ok(Verdict::Keep { ratio })) => {
                    baseline.get_or_insert(ratio);
                }
                Ok(Ok(Verdict::Adopt { bytes, before, ratio })) => match adopt(&self.log, bytes).await {
                    Ok(id) => {
                        tracing::info!(dictionary = id, before, ratio, "event values: compression dictionary adopted");
                        current = lookup(id);
                        baseline = Some(ratio);
                        self.metrics.log_value_dictionary.set(i64::from(id));
                        self.metrics.log_value_dictionaries_adopted.inc();
                    }
                    Err(e) => tracing::warn!(error = %e, "event values: the new compression dictionary was not stored"),
                },
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "event values: cannot read samples for a compression dictionary")
                }
                Err(e) => tracing::warn!(error = %e, "event values: the dictionary check failed"),
            }
        }
    }
}

/// The dictionary `meta` names for new values.
fn current_of(reader: &LogReader) -> Option<&'static Dictionary> {
    let txn = reader.begin_read().ok()?;
    let meta = txn.open_table(META).ok()?;
    let id = meta.get(CURRENT_DICTIONARY).ok()??.value().parse().ok()?;
    lookup(id)
}

/// The stored form of the dictionaries of a file, for the trainer's tests.
#[cfg(test)]
pub(crate) fn stored(reader: &LogReader) -> Vec<u32> {
    let txn = reader.begin_read().unwrap();
    let table = txn.open_table(VALUE_DICTIONARIES).unwrap();
    table.iter().unwrap().map(|r| r.unwrap().0.value()).collect()
}

#[cfg(test)]
#[path = "dictionary_tests.rs"]
mod tests;
