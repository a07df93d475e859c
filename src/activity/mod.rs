//! What each listener did lately, for the status page: its address and whether it accepts,
//! when it last answered, how many answers and negative answers it gave in the last hour and
//! day, its last error; and the free disk space sampled once a minute.
//!
//! The counts live in a ring of one-minute buckets over the last 24 hours ([`history`]), kept
//! in memory and saved to a small file in the state directory every minute and at shutdown,
//! so the plots and the day's counts survive a restart. What is counted since the start
//! (answers, negatives, the last error) is not saved: it says what this run did.
//!
//! Nothing here holds patient data: counts, times, addresses, and error texts that the
//! listeners write from structural facts (the HL7 ERR text, the C-STORE failure comment).

pub mod history;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use jiff::Timestamp;

pub use history::{History, LoadError, MINUTES};

/// A listener the page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Mllp,
    MllpTls,
    Dicom,
    DicomTls,
    /// The modality worklist (C-FIND) on the DICOM listeners.
    Worklist,
}

impl Listener {
    pub const ALL: [Listener; 5] =
        [Listener::Mllp, Listener::MllpTls, Listener::Dicom, Listener::DicomTls, Listener::Worklist];
    /// The listeners whose answers are HL7 messages.
    pub const HL7: [Listener; 2] = [Listener::Mllp, Listener::MllpTls];
    /// The listeners whose answers are stored DICOM instances.
    pub const INSTANCES: [Listener; 2] = [Listener::Dicom, Listener::DicomTls];

    /// As the config and the metrics name it.
    pub fn name(self) -> &'static str {
        match self {
            Listener::Mllp => "mllp",
            Listener::MllpTls => "mllp_tls",
            Listener::Dicom => "dicom",
            Listener::DicomTls => "dicom_tls",
            Listener::Worklist => "worklist",
        }
    }

    /// As a person reads it.
    pub fn title(self) -> &'static str {
        match self {
            Listener::Mllp => "MLLP",
            Listener::MllpTls => "MLLP/TLS",
            Listener::Dicom => "DICOM",
            Listener::DicomTls => "DICOM/TLS",
            Listener::Worklist => "Worklist (C-FIND)",
        }
    }

    /// What one answer of it is.
    pub fn unit(self) -> &'static str {
        match self {
            Listener::Mllp | Listener::MllpTls => "messages",
            Listener::Dicom | Listener::DicomTls => "instances",
            Listener::Worklist => "queries",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The last negative answer or failure of a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    pub at: Timestamp,
    pub text: String,
}

/// One listener's live state.
#[derive(Debug, Default)]
struct ListenerState {
    /// Where it listens; `None`: not configured (the page leaves it out).
    address: Mutex<Option<String>>,
    /// Its accept loop runs.
    up: AtomicBool,
    /// When it last answered, µs since the epoch (0: not since the start).
    last_answer_us: AtomicI64,
    answered: AtomicU64,
    negative: AtomicU64,
    last_error: Mutex<Option<LastError>>,
}

/// A listener as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerView {
    pub listener: Listener,
    pub address: String,
    pub up: bool,
    /// When it last answered since the start.
    pub last_answer_at: Option<Timestamp>,
    /// Answers in the last 60 minutes and the last 24 hours (the ring, across restarts).
    pub last_hour: u64,
    pub last_day: u64,
    /// Negative answers in the last 24 hours (the ring).
    pub negative_last_day: u64,
    /// Since the start.
    pub answered: u64,
    pub negative: u64,
    pub last_error: Option<LastError>,
}

/// Every listener's activity and the 24 hours' history.
#[derive(Debug)]
pub struct Activity {
    /// When the daemon (this value) started.
    pub started: Timestamp,
    listeners: [ListenerState; 5],
    history: Mutex<History>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

impl Activity {
    pub fn new() -> Activity {
        Activity { started: Timestamp::now(), listeners: Default::default(), history: Mutex::new(History::new()) }
    }

    fn state(&self, listener: Listener) -> &ListenerState {
        &self.listeners[listener.index()]
    }

    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `listener` accepts at `address` from now on.
    pub fn opened(&self, listener: Listener, address: impl Into<String>) {
        let state = self.state(listener);
        *state.address.lock().unwrap_or_else(|e| e.into_inner()) = Some(address.into());
        state.up.store(true, Ordering::Release);
    }

    /// `listener` stopped accepting.
    pub fn closed(&self, listener: Listener) {
        self.state(listener).up.store(false, Ordering::Release);
    }

    /// `listener` answered, now; `negative` is the reason of a negative answer.
    pub fn answered(&self, listener: Listener, negative: Option<&str>) {
        self.answered_at(listener, Timestamp::now(), negative);
    }

    /// `listener` answered at `at`.
    pub fn answered_at(&self, listener: Listener, at: Timestamp, negative: Option<&str>) {
        let state = self.state(listener);
        state.answered.fetch_add(1, Ordering::Relaxed);
        state.last_answer_us.fetch_max(at.as_microsecond(), Ordering::Relaxed);
        if let Some(text) = negative {
            state.negative.fetch_add(1, Ordering::Relaxed);
            self.failed_at(listener, at, text);
        }
        self.history().count(listener.index(), at, negative.is_some());
    }

    /// A failure of `listener` that is not an answer (an association refused, say).
    pub fn failed_at(&self, listener: Listener, at: Timestamp, text: &str) {
        let error = LastError { at, text: text.to_owned() };
        *self.state(listener).last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    /// Records the free disk space at `at` (once a minute).
    pub fn disk_free_at(&self, at: Timestamp, free: u64) {
        self.history().disk_free(at, free);
    }

    /// The configured listeners, in [`Listener::ALL`] order.
    pub fn listeners(&self, now: Timestamp) -> Vec<ListenerView> {
        let history = self.history();
        Listener::ALL
            .into_iter()
            .filter_map(|listener| {
                let state = self.state(listener);
                let address = state.address.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
                let last_us = state.last_answer_us.load(Ordering::Relaxed);
                let (last_hour, _) = history.sum(listener.index(), now, 60);
                let (last_day, negative_last_day) = history.sum(listener.index(), now, MINUTES);
                Some(ListenerView {
                    listener,
                    address,
                    up: state.up.load(Ordering::Acquire),
                    last_answer_at: (last_us > 0).then(|| Timestamp::from_microsecond(last_us).ok()).flatten(),
                    last_hour,
                    last_day,
                    negative_last_day,
                    answered: state.answered.load(Ordering::Relaxed),
                    negative: state.negative.load(Ordering::Relaxed),
                    last_error: state.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                })
            })
            .collect()
    }

    /// Answers per minute of `listeners` together over the last 24 hours, oldest first
    /// ([`MINUTES`] values, the last one the current minute).
    pub fn per_minute(&self, listeners: &[Listener], now: Timestamp) -> Vec<u64> {
        let indexes: Vec<usize> = listeners.iter().map(|l| l.index()).collect();
        self.history().per_minute(&indexes, now)
    }

    /// Bytes of disk consumed per second over the last 24 hours' samples (negative: space
    /// was freed); `None` with less than ten minutes between the oldest and newest sample.
    pub fn disk_consumed_per_second(&self, now: Timestamp) -> Option<f64> {
        self.history().disk_consumed_per_second(now)
    }

    /// The history as saved ([`history::History::encode`]).
    pub fn encode(&self, now: Timestamp) -> Vec<u8> {
        self.history().encode(now)
    }

    /// Replaces the history with a saved one.
    pub fn restore(&self, history: History) {
        *self.history() = history;
    }
}

#[cfg(test)]
mod tests;
