//! Forwarding: every stored instance goes to each `[[forward.destinations]]` (the central
//! archive), sent as stored, and the archive's answer becomes an event.
//!
//! # Guarantees
//!
//! * **Nothing skipped, in order per study.** Each destination has a durable cursor over the
//!   log ([`cursor`]); a round reads up to `batch` `InstanceStored` events after it, sends
//!   them, and records every answer (`InstanceForwarded`, stored or refused) together with the
//!   cursor's move in one transaction. A crash or a failed round sends the round again: the
//!   archive may see a SOP instance twice, never miss one. The round's instances are grouped
//!   by study and the groups spread over `associations` associations in parallel (one study
//!   per association where there are enough studies); a study's instances go in log order.
//! * **Sent as stored.** The Part 10 file's data set in its own transfer syntax, read in
//!   fragments that fit the archive's maximum PDU ([`scu`]); a syntax the archive refuses is
//!   that instance's refusal, never a transcoding.
//! * **Refusals are dead letters, the rest flows.** A failure status (`0xA7xx`, `0xA9xx`,
//!   `0xCxxx`, any other non-success), a refused presentation context or a missing file is
//!   sent again, after a backoff, up to `refused_attempts` sends in all; still refused, it
//!   records `InstanceForwarded` with `status: refused` and the archive's words, is parked as
//!   a dead letter of that destination ([`dead_letters`]) and the cursor passes it. An operator
//!   retries (the worker sends it once more, outside the cursor's order) or skips it
//!   (`/api/v1/forward/dead-letters`, audited). Such an instance is never confirmed, so
//!   retention keeps its file, skipped or not.
//! * **The archive away stops nothing but forwarding.** A connection, association or
//!   protocol failure fails the round: retried with exponential backoff and full jitter
//!   ([`crate::sync::backoff`]) and a circuit breaker per destination ([`crate::sync::Breaker`]),
//!   while intake goes on and the lag grows. Each failure is logged at WARN with its reason
//!   (never patient data); `/readyz` shows the lag but stays 200.
//! * **Confirmation.** With `confirm = "commitment"` (the default) the archive confirms by
//!   DICOM Storage Commitment ([`commit`]): each study's stored instances get a transaction
//!   in their `InstanceForwarded` events, the worker sends the N-ACTION once that is durable,
//!   and the archive's N-EVENT-REPORT to our SCP becomes an `InstancesCommitted`, which is what
//!   retention counts on; a report that does not come within `commitment_timeout` is asked for
//!   again. With `confirm = "store"` the archive's C-STORE Success is its confirmation
//!   (`"confirmed": true` in the event; the daemon warns at start that such a destination is
//!   trusted on its word).
//!
//! One thread per destination (`zenedge-fwd-<n>`), plus one per association during a round:
//! dicom-ul's requestor is blocking, and the writer is reached through the runtime handle.

mod commit;
pub mod cursor;
pub mod dead_letters;
pub mod lag;
pub mod scu;
mod worker;

use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::Destination;
use crate::log::{LogHandle, LogReader};
use crate::projections::Projections;
use crate::telemetry::Metrics;

/// Where one destination stands, as `/readyz`, `/api/v1/status` and `zenedge status` show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DestinationStatus {
    pub name: String,
    pub required: bool,
    /// Every `InstanceStored` up to here has the destination's answer recorded.
    pub cursor: u64,
    /// Events after the cursor (instances and others) at the last look.
    pub lag_events: u64,
    /// Instances stored after the cursor, their files' bytes, and the age in seconds of the
    /// oldest event after it, at the last look.
    pub lag_instances: u64,
    pub lag_bytes: u64,
    pub lag_seconds: f64,
    /// Instances of the round being sent.
    pub in_flight: u64,
    /// `closed`, `half_open` or `open`.
    pub breaker: &'static str,
    pub consecutive_failures: u32,
    /// Failed rounds since start.
    pub failures_total: u64,
    /// Instances recorded as refused since start (dead letters).
    pub refused_total: u64,
    /// Instances stored (and, with `confirm = "store"`, confirmed) since start.
    pub stored_total: u64,
    pub last_error: Option<String>,
    /// When the destination last confirmed an instance by its store (`confirm = "store"`).
    pub last_confirmed_at: Option<jiff::Timestamp>,
    /// The destination's dead letters by status, as last counted.
    pub dead_letters: dead_letters::LetterCounts,
    /// With `confirm = "commitment"`: Storage Commitment requests awaiting the archive's report.
    pub commitments_pending: u64,
}

/// Every destination's status, shared by the workers and the API.
#[derive(Debug, Default)]
pub struct ForwardShared {
    destinations: Vec<Mutex<DestinationStatus>>,
    /// Per destination: wakes its worker (an operator changed one of its dead letters).
    wake: Vec<tokio::sync::Notify>,
}

/// The tables forwarding keeps besides the projections (for the file's schema).
pub fn tables() -> Vec<crate::log::TableSpec> {
    vec![dead_letters::table_spec()]
}

impl ForwardShared {
    pub fn new(destinations: &[Destination]) -> ForwardShared {
        ForwardShared {
            destinations: destinations
                .iter()
                .map(|d| {
                    Mutex::new(DestinationStatus {
                        name: d.name.clone(),
                        required: d.required,
                        breaker: "closed",
                        ..DestinationStatus::default()
                    })
                })
                .collect(),
            wake: destinations.iter().map(|_| tokio::sync::Notify::new()).collect(),
        }
    }

    /// Whether `name` is a configured destination.
    pub fn knows(&self, name: &str) -> bool {
        self.index_of(name).is_some()
    }

    /// Wakes `name`'s worker (to resend a letter, or count the letters again).
    pub fn wake(&self, name: &str) {
        if let Some(i) = self.index_of(name) {
            self.wake[i].notify_one();
        }
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.destinations.iter().position(|d| d.lock().unwrap_or_else(|e| e.into_inner()).name == name)
    }

    /// A copy of every destination's status.
    pub fn snapshot(&self) -> Vec<DestinationStatus> {
        self.destinations.iter().map(|d| d.lock().unwrap_or_else(|e| e.into_inner()).clone()).collect()
    }

    fn update(&self, index: usize, change: impl FnOnce(&mut DestinationStatus)) {
        if let Some(d) = self.destinations.get(index) {
            change(&mut d.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }
}

/// What a forwarding worker needs.
#[derive(Clone)]
pub struct ForwardParts {
    pub state_dir: std::path::PathBuf,
    pub log: LogHandle<Projections>,
    pub reader: LogReader,
    pub metrics: Arc<Metrics>,
    pub shared: Arc<ForwardShared>,
}

impl std::fmt::Debug for ForwardParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardParts").finish_non_exhaustive()
    }
}

/// Starts one worker thread per destination; each ends soon after `stop` (a round in flight
/// finishes first, bounded by the destination's `timeout` per read or write). Call from
/// within the tokio runtime.
pub fn spawn(
    destinations: &[Destination],
    parts: ForwardParts,
    stop: CancellationToken,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let runtime = tokio::runtime::Handle::current();
    let mut threads = Vec::new();
    for (index, destination) in destinations.iter().enumerate() {
        if destination.confirm == crate::config::Confirm::Store {
            tracing::warn!(
                destination = %destination.name,
                required = destination.required,
                "forwarding destination trusts its C-STORE Success as confirmation (confirm = \"store\"): retention counts on it"
            );
        }
        let worker = worker::Worker::new(index, destination.clone(), parts.clone(), runtime.clone(), stop.clone());
        threads.push(std::thread::Builder::new().name(format!("zenedge-fwd-{index}")).spawn(move || worker.run())?);
    }
    Ok(threads)
}
